use serde_json::json;

use crate::common::*;

fn full_user() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "ext-BJ",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "password": "t1meMa$heen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "department": "Tour Operations"
        }
    })
}

#[actix_web::test]
async fn create_get_replace_delete_a_user() {
    let (app, _db) = app().await;
    let r = call(&app, "POST", "/scim/v2/Users", Some(full_user())).await;
    r.expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    let location = format!("http://scim.test/scim/v2/Users/{id}");
    assert_eq!(r.header("location").as_deref(), Some(location.as_str()));
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/scim+json")
    );
    assert_eq!(r.body["meta"]["location"], location);
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert!(
        r.body.get("password").is_none(),
        "password is never returned"
    );
    assert_eq!(r.body["userName"], "bjensen@example.com");
    assert_eq!(
        r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Tour Operations"
    );

    let g = get(&app, TOKEN, &format!("/scim/v2/Users/{id}")).await;
    g.expect(200);
    assert_eq!(g.body, r.body);

    // PUT replaces: omitted attributes are cleared, readOnly ones ignored, active kept.
    let put = call(
        &app,
        "PUT",
        &format!("/scim/v2/Users/{id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "ignored", "userName": "bjensen@example.com", "nickName": "Babs",
            "meta": {"version": "W/\"99\""}
        })),
    )
    .await;
    put.expect(200);
    assert_eq!(put.body["id"], id.as_str());
    assert_eq!(put.body["nickName"], "Babs");
    assert!(put.body.get("emails").is_none() && put.body.get("title").is_none());
    assert!(put
        .body
        .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        .is_none());
    assert_eq!(
        put.body["active"], true,
        "active omitted in PUT keeps its value"
    );
    assert_eq!(put.body["meta"]["version"], "W/\"2\"");
    assert_eq!(put.header("etag").as_deref(), Some("W/\"2\""));

    delete(&app, TOKEN, &format!("/scim/v2/Users/{id}"))
        .await
        .expect(204);
    get(&app, TOKEN, &format!("/scim/v2/Users/{id}"))
        .await
        .expect(404);
    delete(&app, TOKEN, &format!("/scim/v2/Users/{id}"))
        .await
        .expect(404);
}

#[actix_web::test]
async fn user_name_is_unique_case_insensitively_but_stored_as_sent() {
    let (app, _db) = app().await;
    let id = create_user(&app, "Alice.Smith").await;
    let dup = call(
        &app,
        "POST",
        "/scim/v2/Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice.SMITH"})),
    )
    .await;
    dup.expect_error(409, Some("uniqueness"));
    let r = get(&app, TOKEN, &format!("/scim/v2/Users/{id}")).await;
    assert_eq!(r.body["userName"], "Alice.Smith");
    // Renaming another user onto a taken name is a conflict too, and changes nothing.
    let other = create_user(&app, "bob").await;
    let put = call(
        &app,
        "PUT",
        &format!("/scim/v2/Users/{other}"),
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ALICE.smith"})),
    )
    .await;
    put.expect_error(409, Some("uniqueness"));
    let b = get(&app, TOKEN, &format!("/scim/v2/Users/{other}")).await;
    assert_eq!(b.body["userName"], "bob");
    assert_eq!(b.body["meta"]["version"], "W/\"1\"");
}

#[actix_web::test]
async fn concurrent_creates_of_one_user_name_give_one_201_and_409s() {
    let (_db, app, _) = app_state().await;
    let body =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "race"});
    let futs: Vec<_> = (0..8)
        .map(|_| call(&app, "POST", "/scim/v2/Users", Some(body.clone())))
        .collect();
    let results = futures_util::future::join_all(futs).await;
    let created = results.iter().filter(|r| r.status.as_u16() == 201).count();
    assert_eq!(created, 1);
    for r in results.iter().filter(|r| r.status.as_u16() != 201) {
        r.expect_error(409, Some("uniqueness"));
    }
}

#[actix_web::test]
async fn list_filters_by_core_columns_and_pages() {
    let (app, _db) = app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = call(
            &app,
            "POST",
            "/scim/v2/Users",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("user{i}"), "externalId": format!("EXT{i}"),
                        "displayName": format!("User Number {i}")}),
            ),
        )
        .await;
        r.expect(201);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let q = |f: &str| format!("/scim/v2/Users?filter={}", urlencode(f));
    let r = get(&app, TOKEN, &q("userName eq \"USER3\"")).await;
    r.expect(200);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], ids[3].as_str());
    // externalId is caseExact.
    assert_eq!(
        get(&app, TOKEN, &q("externalId eq \"EXT2\"")).await.body["totalResults"],
        1
    );
    assert_eq!(
        get(&app, TOKEN, &q("externalId eq \"ext2\"")).await.body["totalResults"],
        0
    );
    assert_eq!(
        get(&app, TOKEN, &q("displayName eq \"user number 4\""))
            .await
            .body["totalResults"],
        1
    );
    assert_eq!(
        get(&app, TOKEN, &q(&format!("id eq \"{}\"", ids[1])))
            .await
            .body["totalResults"],
        1
    );
    let both = get(
        &app,
        TOKEN,
        &q("userName eq \"user1\" and externalId eq \"EXT1\""),
    )
    .await;
    assert_eq!(both.body["totalResults"], 1);
    let none = get(
        &app,
        TOKEN,
        &q("userName eq \"user1\" and externalId eq \"EXT2\""),
    )
    .await;
    assert_eq!(none.body["totalResults"], 0);
    assert_eq!(none.body["Resources"], json!([]));

    // Paging: 1-based startIndex, count, count=0 gives only the total.
    let p = get(&app, TOKEN, "/scim/v2/Users?startIndex=2&count=2").await;
    p.expect(200);
    assert_eq!(p.body["totalResults"], 5);
    assert_eq!(p.body["startIndex"], 2);
    assert_eq!(p.body["itemsPerPage"], 2);
    assert_eq!(p.body["Resources"][0]["id"], ids[1].as_str());
    assert_eq!(p.body["Resources"][1]["id"], ids[2].as_str());
    let z = get(&app, TOKEN, "/scim/v2/Users?count=0").await;
    assert_eq!(z.body["totalResults"], 5);
    assert_eq!(z.body["itemsPerPage"], 0);
    let past = get(&app, TOKEN, "/scim/v2/Users?startIndex=50").await;
    assert_eq!(past.body["itemsPerPage"], 0);
    let zero = get(&app, TOKEN, "/scim/v2/Users?startIndex=0&count=1").await;
    assert_eq!(
        zero.body["startIndex"], 1,
        "startIndex below 1 is read as 1"
    );
    // Parameter names are matched case-insensitively.
    let ci = get(&app, TOKEN, "/scim/v2/Users?STARTINDEX=5&Count=1").await;
    assert_eq!(ci.body["Resources"][0]["id"], ids[4].as_str());
}

#[actix_web::test]
async fn filters_reach_every_attribute_through_sql() {
    let (app, _db) = app().await;
    call(&app, "POST", "/scim/v2/Users", Some(full_user()))
        .await
        .expect(201);
    create_user(&app, "other").await;
    let q = |f: &str| format!("/scim/v2/Users?filter={}", urlencode(f));
    let cases = [
        ("name.familyName eq \"jensen\"", 1),
        ("name.familyName sw \"Jen\"", 1),
        ("title co \"guide\"", 1),
        ("emails co \"JENSEN.org\"", 1),
        ("emails[type eq \"work\" and value ew \"@example.com\"]", 1),
        ("emails[type eq \"home\" and value ew \"@example.com\"]", 0),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"tour operations\"", 1),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber pr", 1),
        ("title pr", 1),
        ("not (title pr)", 1),
        ("title ne \"Tour Guide\"", 1),
        ("active eq true", 2),
        ("meta.created gt \"2000-01-01T00:00:00Z\"", 2),
        ("meta.lastModified lt \"2000-01-01T00:00:00Z\"", 0),
        ("userName eq \"other\" or title pr", 2),
        ("emails.value co \"%\"", 0),
    ];
    for (f, n) in cases {
        let r = get(&app, TOKEN, &q(f)).await;
        r.expect(200);
        assert_eq!(r.body["totalResults"], n, "filter {f}: {}", r.raw);
    }
}

#[actix_web::test]
async fn projection_on_get_list_and_post() {
    let (app, _db) = app().await;
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users?attributes=userName",
        Some(full_user()),
    )
    .await;
    r.expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body.as_object().unwrap().len(),
        3,
        "schemas, id, userName: {}",
        r.raw
    );
    let g = get(
        &app,
        TOKEN,
        &format!("/scim/v2/Users/{id}?excludedAttributes=emails,name.givenName"),
    )
    .await;
    assert!(g.body.get("emails").is_none());
    assert_eq!(
        g.body["name"],
        json!({"familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"})
    );
    assert_eq!(g.body["id"], id.as_str());
    let l = get(&app, TOKEN, "/scim/v2/Users?attributes=emails.value").await;
    assert_eq!(
        l.body["Resources"][0]["emails"],
        json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}])
    );
    get(&app, TOKEN, "/scim/v2/Users?attributes=bogus")
        .await
        .expect_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn patch_user_simple_sub_attribute_and_deactivate() {
    let (app, db) = app().await;
    let _ = &db;
    let r = call(&app, "POST", "/scim/v2/Users", Some(full_user())).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    let p = patch(&app, &path, json!([
            {"op": "replace", "path": "name.givenName", "value": "Barb"},
            {"op": "add", "path": "nickName", "value": "BJ"},
            {"op": "remove", "path": "title"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "barb@example.com"},
            {"op": "replace", "value": {"active": false}}
        ]))
    .await;
    p.expect(200);
    assert_eq!(p.body["name"]["givenName"], "Barb");
    assert_eq!(p.body["name"]["familyName"], "Jensen");
    assert_eq!(p.body["nickName"], "BJ");
    assert!(p.body.get("title").is_none());
    assert_eq!(p.body["emails"][0]["value"], "barb@example.com");
    assert_eq!(p.body["active"], false);
    assert_eq!(p.header("etag").as_deref(), Some("W/\"2\""));
    // A deactivated user stays readable and filterable.
    let f = get(
        &app,
        TOKEN,
        &format!("/scim/v2/Users?filter={}", urlencode("active eq false")),
    )
    .await;
    assert_eq!(f.body["totalResults"], 1);
    // Reactivate.
    let p2 = patch(
        &app,
        &path,
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .await;
    p2.expect(200);
    assert_eq!(p2.body["active"], true);
    // The old work email no longer matches; the new one does.
    assert_eq!(
        matching(&app, "Users", "emails.value eq \"barb@example.com\"").await,
        1
    );
}

#[actix_web::test]
async fn every_change_writes_an_event_in_its_transaction() {
    let (_db, app, state) = app_state().await;
    let id = create_user(&app, "evented").await;
    let path = format!("/scim/v2/Users/{id}");
    for (attr, value, status) in [
        ("title", json!("x"), 200),
        ("active", json!(false), 200),
        ("active", json!(true), 200),
        // A rejected request writes nothing.
        ("active", json!(7), 400),
    ] {
        let r = patch(
            &app,
            &path,
            json!([{"op": "replace", "path": attr, "value": value}]),
        )
        .await;
        assert_eq!(r.status.as_u16(), status, "{attr} = {value}: {}", r.raw);
        r.expect(status);
    }
    delete(&app, TOKEN, &path).await.expect(204);
    let kinds: Vec<String> = events(&state)
        .into_iter()
        .filter(|(r, _)| *r == id)
        .map(|(_, k)| k)
        .collect();
    // RFC 9967: each change as sent, and the activation changes as their own events.
    assert_eq!(
        kinds,
        [
            "create:full",
            "patch:full",
            "patch:full",
            "deactivate",
            "patch:full",
            "activate",
            "delete"
        ]
    );
}
