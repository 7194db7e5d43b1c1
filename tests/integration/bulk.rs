//! /Bulk (RFC 7644 §3.7): the RFC's examples, bulkId references in both directions,
//! circular references, failOnErrors and the limits.

use serde_json::{json, Value};

use crate::common::*;

fn bulk(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
}

fn statuses(r: &Resp) -> Vec<String> {
    r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_string())
        .collect()
}

fn id_from_location(op: &Value) -> String {
    op["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[actix_web::test]
async fn rfc_example_post_put_patch_delete() {
    let (_db, app, state) = app_state().await;
    let put_id = create_user(&app, "Jim").await;
    let patch_id = create_user(&app, "Kim").await;
    let del_id = create_user(&app, "Tim").await;
    let r = call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(bulk(json!([
            {"method": "POST", "path": "/Users", "bulkId": "qwerty",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice"}},
            {"method": "PUT", "path": format!("/Users/{put_id}"), "version": "W/\"1\"",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": put_id, "userName": "Bob"}},
            {"method": "PATCH", "path": format!("/Users/{patch_id}"), "version": "W/\"1\"",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "remove", "path": "nickName"}, {"op": "replace", "path": "userName", "value": "Dave"}]}},
            {"method": "DELETE", "path": format!("/Users/{del_id}"), "version": "W/\"1\""}
        ]))),
    )
    .await;
    r.expect(200);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    assert_eq!(statuses(&r), ["201", "200", "200", "204"]);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["bulkId"], "qwerty");
    assert_eq!(ops[0]["method"], "POST");
    assert_eq!(ops[0]["version"], "W/\"1\"");
    assert_eq!(ops[1]["version"], "W/\"2\"");
    assert_eq!(
        ops[1]["location"],
        format!("http://scim.test/scim/v2/Users/{put_id}")
    );
    let alice = id_from_location(&ops[0]);
    assert_eq!(
        get(&app, TOKEN, &format!("/scim/v2/Users/{alice}"))
            .await
            .body["userName"],
        "Alice"
    );
    assert_eq!(
        get(&app, TOKEN, &format!("/scim/v2/Users/{put_id}"))
            .await
            .body["userName"],
        "Bob"
    );
    assert_eq!(
        get(&app, TOKEN, &format!("/scim/v2/Users/{patch_id}"))
            .await
            .body["userName"],
        "Dave"
    );
    get(&app, TOKEN, &format!("/scim/v2/Users/{del_id}"))
        .await
        .expect(404);
    // Events exactly as single requests write them.
    let ev = events(&state);
    assert!(ev.contains(&(alice.clone(), "create:full".into())));
    assert!(ev.contains(&(put_id.clone(), "put:full".into())));
    assert!(ev.contains(&(del_id.clone(), "delete".into())));
}

#[actix_web::test]
async fn bulk_id_references_resolve_in_either_order() {
    let (app, _db) = app().await;
    // The group comes before its members in the list (RFC 7644 §3.7.2).
    let r = call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(bulk(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "ytrewq",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides",
                      "members": [{"type": "User", "value": "bulkId:qwerty"}, {"value": "bulkId:manager"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "qwerty",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                      "userName": "Alice",
                      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:manager"}}}},
            {"method": "POST", "path": "/Users", "bulkId": "manager",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Boss"}},
            {"method": "PATCH", "path": "/Groups/bulkId:ytrewq",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "displayName", "value": "Guides"}]}}
        ]))),
    )
    .await;
    r.expect(200);
    assert_eq!(statuses(&r), ["201", "201", "201", "204"], "{}", r.raw);
    let ops = r.body["Operations"].as_array().unwrap();
    let (gid, alice, boss) = (
        id_from_location(&ops[0]),
        id_from_location(&ops[1]),
        id_from_location(&ops[2]),
    );
    let g = get(&app, TOKEN, &format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(g.body["displayName"], "Guides");
    let mut members: Vec<&str> = strs(&g.body["members"], "value");
    members.sort();
    let mut want = vec![alice.as_str(), boss.as_str()];
    want.sort();
    assert_eq!(members, want);
    let a = get(&app, TOKEN, &format!("/scim/v2/Users/{alice}")).await;
    assert_eq!(
        a.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        boss.as_str()
    );
}

#[actix_web::test]
async fn circular_and_unresolvable_references_fail_only_those_operations() {
    let (app, _db) = app().await;
    let r = call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(bulk(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "a",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "A", "members": [{"value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "b",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "B", "members": [{"value": "bulkId:a"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "same"}},
            {"method": "POST", "path": "/Users", "bulkId": "bad",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "same"}},
            {"method": "POST", "path": "/Groups", "bulkId": "c",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "C", "members": [{"value": "bulkId:bad"}]}},
            {"method": "POST", "path": "/Groups",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "D", "members": [{"value": "bulkId:nowhere"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "ok",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "fine"}}
        ]))),
    )
    .await;
    r.expect(200);
    assert_eq!(
        statuses(&r),
        ["409", "409", "201", "409", "409", "400", "201"],
        "{}",
        r.raw
    );
    let ops = r.body["Operations"].as_array().unwrap();
    assert!(ops[0]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("circular"));
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    assert!(ops[4]["response"]["detail"]
        .as_str()
        .unwrap()
        .contains("bulkId:bad"));
    assert_eq!(ops[5]["response"]["scimType"], "invalidValue");
    assert_eq!(
        ops[0]["response"]["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    // Only the two users were created.
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Groups").await.body["totalResults"],
        0
    );
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        2
    );
}

#[actix_web::test]
async fn fail_on_errors_stops_processing() {
    let (app, _db) = app().await;
    create_user(&app, "taken").await;
    let user = |b: &str, n: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": b,
        "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n}})
    };
    let mut body = bulk(json!([
        user("a", "taken"),
        user("b", "x1"),
        user("c", "taken"),
        user("d", "x2")
    ]));
    body["failOnErrors"] = json!(2);
    let r = call(&app, "POST", "/scim/v2/Bulk", Some(body)).await;
    r.expect(200);
    // Stopped after the second error: x2 was never attempted and is not listed.
    assert_eq!(statuses(&r), ["409", "201", "409"]);
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        2
    );
    let mut body = bulk(json!([user("e", "y")]));
    body["failOnErrors"] = json!(0);
    call(&app, "POST", "/scim/v2/Bulk", Some(body))
        .await
        .expect_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn limits_are_413_before_anything_is_applied() {
    let (_db, app, _) = app_where(|a| {
        a.bulk_max_operations = 3;
        a.max_body_bytes = 4096;
    })
    .await;
    let user = |n: usize| {
        json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
        "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{n}")}})
    };
    let r = call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(bulk(json!([user(1), user(2), user(3), user(4)]))),
    )
    .await;
    r.expect(413);
    assert!(r.body["detail"].as_str().unwrap().contains("maxOperations"));
    let big = json!({"method": "POST", "path": "/Users", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x".repeat(5000)}});
    call(&app, "POST", "/scim/v2/Bulk", Some(bulk(json!([big]))))
        .await
        .expect(413);
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        0
    );
    let spc = get(&app, TOKEN, "/scim/v2/ServiceProviderConfig").await;
    assert_eq!(
        spc.body["bulk"],
        json!({"supported": true, "maxOperations": 3, "maxPayloadSize": 4096})
    );
}

#[actix_web::test]
async fn bad_requests_and_bad_operations() {
    let (app, _db) = app().await;
    call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(json!({"Operations": []})),
    )
    .await
    .expect_error(400, Some("invalidSyntax"));
    call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]})),
    )
    .await
    .expect_error(400, Some("invalidSyntax"));
    get(&app, TOKEN, "/scim/v2/Bulk").await.expect(405);
    let id = create_user(&app, "v").await;
    let r = call(
        &app,
        "POST",
        "/scim/v2/Bulk",
        Some(bulk(json!([
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Widgets", "data": {}},
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x1"}},
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x2"}},
            {"method": "PATCH", "path": format!("/Users/{id}"), "version": "W/\"9\"",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "title", "value": "t"}]}},
            {"method": "DELETE", "path": "/Users/no-such-id"},
            {"method": "POST", "path": "/Users", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 7}}
        ]))),
    )
    .await;
    r.expect(200);
    assert_eq!(
        statuses(&r),
        ["400", "400", "201", "400", "412", "404", "400"],
        "{}",
        r.raw
    );
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["response"]["scimType"], "invalidSyntax");
    assert_eq!(ops[0]["method"], "GET");
    assert_eq!(ops[1]["response"]["scimType"], "invalidPath");
    assert_eq!(ops[3]["response"]["scimType"], "invalidValue");
    assert_eq!(ops[6]["response"]["scimType"], "invalidValue");
    // The stale PATCH changed nothing.
    assert!(get(&app, TOKEN, &format!("/scim/v2/Users/{id}"))
        .await
        .body
        .get("title")
        .is_none());
}
