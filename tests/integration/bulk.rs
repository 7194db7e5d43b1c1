//! /Bulk (RFC 7644 §3.7): the RFC's examples, bulkId references in both directions,
//! circular references, failOnErrors and the limits.

use serde_json::{json, Value};

use crate::common::*;

fn bulk(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
}

/// POSTs a BulkRequest of the operations `ops`; the answer, whatever its status.
async fn post_bulk<S: TestApp>(app: &S, ops: Value) -> Resp {
    call(app, "POST", "/scim/v2/Bulk", Some(bulk(ops))).await
}

/// A bulk POST of a user named `user_name` under `bulk_id`.
fn post_user(bulk_id: &str, user_name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
           "data": {"schemas": [CORE_USER], "userName": user_name}})
}

/// A bulk POST of a group `name` with the member values `members`, under `bulk_id` if any.
fn post_group(bulk_id: Option<&str>, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let mut op = json!({"method": "POST", "path": "/Groups",
                        "data": {"schemas": [CORE_GROUP], "displayName": name, "members": members}});
    if let Some(id) = bulk_id {
        op["bulkId"] = json!(id);
    }
    op
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
    let r = post_bulk(
        &app,
        json!([
            post_user("qwerty", "Alice"),
            {"method": "PUT", "path": format!("/Users/{put_id}"), "version": "W/\"1\"",
             "data": {"schemas": [CORE_USER], "id": put_id, "userName": "Bob"}},
            {"method": "PATCH", "path": format!("/Users/{patch_id}"), "version": "W/\"1\"",
             "data": patch_body(json!([{"op": "remove", "path": "nickName"},
                                       {"op": "replace", "path": "userName", "value": "Dave"}]))},
            {"method": "DELETE", "path": format!("/Users/{del_id}"), "version": "W/\"1\""}
        ]),
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
    for (id, user_name) in [(&alice, "Alice"), (&put_id, "Bob"), (&patch_id, "Dave")] {
        let u = get(&app, TOKEN, &format!("/scim/v2/Users/{id}")).await;
        assert_eq!(u.body["userName"], user_name, "{}", u.raw);
    }
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
    let mut guides = post_group(Some("ytrewq"), "Tour Guides", &[]);
    guides["data"]["members"] =
        json!([{"type": "User", "value": "bulkId:qwerty"}, {"value": "bulkId:manager"}]);
    let mut alice = post_user("qwerty", "Alice");
    alice["data"] = json!({"schemas": [CORE_USER, ENTERPRISE], "userName": "Alice",
                           ENTERPRISE: {"manager": {"value": "bulkId:manager"}}});
    let rename = json!({"method": "PATCH", "path": "/Groups/bulkId:ytrewq",
                        "data": patch_body(json!([{"op": "replace", "path": "displayName",
                                                   "value": "Guides"}]))});
    let ops = json!([guides, alice, post_user("manager", "Boss"), rename]);
    let r = post_bulk(&app, ops).await;
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
    assert_eq!(a.body[ENTERPRISE]["manager"]["value"], boss.as_str());
}

#[actix_web::test]
async fn circular_and_unresolvable_references_fail_only_those_operations() {
    let (app, _db) = app().await;
    // Each operation and the status it gets.
    let cases = [
        (post_group(Some("a"), "A", &["bulkId:b"]), "409"),
        (post_group(Some("b"), "B", &["bulkId:a"]), "409"),
        (post_user("dup", "same"), "201"),
        (post_user("bad", "same"), "409"),
        (post_group(Some("c"), "C", &["bulkId:bad"]), "409"),
        (post_group(None, "D", &["bulkId:nowhere"]), "400"),
        (post_user("ok", "fine"), "201"),
    ];
    let (ops, want): (Vec<Value>, Vec<&str>) = cases.into_iter().unzip();
    let r = post_bulk(&app, json!(ops)).await;
    r.expect(200);
    assert_eq!(statuses(&r), want, "{}", r.raw);
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
    assert_eq!(total(&app, "/scim/v2/Groups").await, 0);
    assert_eq!(total(&app, "/scim/v2/Users").await, 2);
}

#[actix_web::test]
async fn fail_on_errors_stops_processing() {
    let (app, _db) = app().await;
    create_user(&app, "taken").await;
    let mut body = bulk(json!([
        post_user("a", "taken"),
        post_user("b", "x1"),
        post_user("c", "taken"),
        post_user("d", "x2")
    ]));
    body["failOnErrors"] = json!(2);
    let r = call(&app, "POST", "/scim/v2/Bulk", Some(body)).await;
    r.expect(200);
    // Stopped after the second error: x2 was never attempted and is not listed.
    assert_eq!(statuses(&r), ["409", "201", "409"]);
    assert_eq!(total(&app, "/scim/v2/Users").await, 2);
    let mut body = bulk(json!([post_user("e", "y")]));
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
    let user = |n: usize| post_user(&format!("u{n}"), &format!("u{n}"));
    let r = post_bulk(&app, json!([user(1), user(2), user(3), user(4)])).await;
    r.expect(413);
    assert!(r.body["detail"].as_str().unwrap().contains("maxOperations"));
    let big = json!({"method": "POST", "path": "/Users",
                     "data": {"schemas": [CORE_USER], "userName": "x".repeat(5000)}});
    post_bulk(&app, json!([big])).await.expect(413);
    assert_eq!(total(&app, "/scim/v2/Users").await, 0);
    let spc = get(&app, TOKEN, "/scim/v2/ServiceProviderConfig").await;
    assert_eq!(
        spc.body["bulk"],
        json!({"supported": true, "maxOperations": 3, "maxPayloadSize": 4096})
    );
}

#[actix_web::test]
async fn bad_requests_and_bad_operations() {
    let (app, _db) = app().await;
    for body in [
        json!({"Operations": []}),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}),
    ] {
        let r = call(&app, "POST", "/scim/v2/Bulk", Some(body.clone())).await;
        r.expect_case(&body.to_string(), 400, Some("invalidSyntax"));
    }
    get(&app, TOKEN, "/scim/v2/Bulk").await.expect(405);
    let id = create_user(&app, "v").await;
    let stale_patch = json!({"method": "PATCH", "path": format!("/Users/{id}"), "version": "W/\"9\"",
                             "data": patch_body(json!([{"op": "add", "path": "title", "value": "t"}]))});
    let bad_user = json!({"method": "POST", "path": "/Users",
                          "data": {"schemas": [CORE_USER], "userName": 7}});
    // Each operation, the status it gets and the scimType of its error where checked.
    let cases = [
        (
            json!({"method": "GET", "path": "/Users"}),
            "400",
            Some("invalidSyntax"),
        ),
        (
            json!({"method": "POST", "path": "/Widgets", "data": {}}),
            "400",
            Some("invalidPath"),
        ),
        (post_user("x", "x1"), "201", None),
        (post_user("x", "x2"), "400", Some("invalidValue")),
        (stale_patch, "412", None),
        (
            json!({"method": "DELETE", "path": "/Users/no-such-id"}),
            "404",
            None,
        ),
        (bad_user, "400", Some("invalidValue")),
    ];
    let ops: Vec<Value> = cases.iter().map(|(op, _, _)| op.clone()).collect();
    let r = post_bulk(&app, json!(ops)).await;
    r.expect(200);
    let want: Vec<&str> = cases.iter().map(|(_, status, _)| *status).collect();
    assert_eq!(statuses(&r), want, "{}", r.raw);
    let answered = r.body["Operations"].as_array().unwrap();
    for ((op, _, scim_type), got) in cases.iter().zip(answered) {
        if let Some(t) = scim_type {
            assert_eq!(got["response"]["scimType"], *t, "{op}: {got}");
        }
    }
    assert_eq!(answered[0]["method"], "GET");
    // The stale PATCH changed nothing.
    assert!(get(&app, TOKEN, &format!("/scim/v2/Users/{id}"))
        .await
        .body
        .get("title")
        .is_none());
}
