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
    let id = id_of(&r);
    let path = format!("/scim/v2/Users/{id}");
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

    let g = get_ok(&app, &path).await;
    assert_eq!(g.body, r.body);

    // PUT replaces: omitted attributes are cleared, readOnly ones ignored, active kept.
    let replacement = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "ignored", "userName": "bjensen@example.com", "nickName": "Babs",
        "meta": {"version": "W/\"99\""}
    });
    let put = call(&app, "PUT", &path, Some(replacement)).await;
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

    // Deleted, then gone.
    for (method, status) in [("DELETE", 204), ("GET", 404), ("DELETE", 404)] {
        let r = call(&app, method, &path, None).await;
        expect_row(&r, method, status, None);
    }
}

#[actix_web::test]
async fn user_name_is_unique_case_insensitively_but_stored_as_sent() {
    let (app, _db) = app().await;
    let id = create_user(&app, "Alice.Smith").await;
    let other = create_user(&app, "bob").await;
    // A new user with a taken name, and another user renamed onto it: conflicts, and
    // nothing changes.
    for (method, path, user_name) in [
        ("POST", "/scim/v2/Users".to_string(), "alice.SMITH"),
        ("PUT", format!("/scim/v2/Users/{other}"), "ALICE.smith"),
    ] {
        let body = json!({"schemas": [CORE_USER], "userName": user_name});
        let r = call(&app, method, &path, Some(body)).await;
        r.expect_case(&format!("{method} {user_name}"), 409, Some("uniqueness"));
    }
    let r = get(&app, TOKEN, &format!("/scim/v2/Users/{id}")).await;
    assert_eq!(r.body["userName"], "Alice.Smith");
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
        let user = json!({"schemas": [CORE_USER], "userName": format!("user{i}"),
                          "externalId": format!("EXT{i}"),
                          "displayName": format!("User Number {i}")});
        ids.push(post_id(&app, "/scim/v2/Users", user).await);
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
    let none = "userName eq \"user1\" and externalId eq \"EXT2\"";
    for (filter, n) in [
        // externalId is caseExact.
        ("externalId eq \"EXT2\"".to_string(), 1),
        ("externalId eq \"ext2\"".into(), 0),
        ("displayName eq \"user number 4\"".into(), 1),
        (format!("id eq \"{}\"", ids[1]), 1),
        ("userName eq \"user1\" and externalId eq \"EXT1\"".into(), 1),
        (none.into(), 0),
    ] {
        assert_eq!(matching(&app, "Users", &filter).await, n, "{filter}");
    }
    assert_eq!(get_ok(&app, &q(none)).await.body["Resources"], json!([]));

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
    let projected = "/scim/v2/Users?attributes=userName";
    let r = call(&app, "POST", projected, Some(full_user())).await;
    r.expect(201);
    let id = id_of(&r);
    assert_eq!(
        r.body.as_object().unwrap().len(),
        3,
        "schemas, id, userName: {}",
        r.raw
    );
    let excluded = format!("/scim/v2/Users/{id}?excludedAttributes=emails,name.givenName");
    let g = get(&app, TOKEN, &excluded).await;
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
    let id = post_id(&app, "/scim/v2/Users", full_user()).await;
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
    assert_eq!(matching(&app, "Users", "active eq false").await, 1);
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
    // RFC 9967: each change as sent, and the activation changes as their own events.
    assert_eq!(
        kinds(&state, &id),
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

/// Letters that do not compress (an LCG), so an index entry is as long as the value.
fn incompressible(n: usize, seed: u64) -> String {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

/// Values at the length limit (2,048 bytes) are stored, indexed (on Postgres a B-tree entry
/// holds at most about 2,700 bytes: the value index's other columns must fit beside it) and
/// found by every operator, also with long and many substring operands (SQLite counted
/// every trigram of them in one compound SELECT, past its 500 terms: a 500); one byte more is refused and nothing is written.
#[actix_web::test]
async fn values_at_the_length_limit_are_stored_and_found() {
    let (app, _db) = app().await;
    let long = incompressible(2048, 7);
    let mut u = full_user();
    u["title"] = json!(long);
    u["emails"][0]["value"] = json!(format!("{}@example.com", incompressible(2036, 9)));
    let r = call(&app, "POST", "/scim/v2/Users", Some(u)).await;
    r.expect(201);
    let id = id_of(&r);
    for filter in [
        format!("title eq \"{long}\""),
        format!("title sw \"{}\"", &long[..1500]),
        format!("title co \"{}\"", &long[1000..1100]),
        format!("title co \"{}\"", &long[500..1600]),
        format!("title ew \"{}\"", &long[1900..]),
        format!("title ew \"{}\"", &long[1024..]),
        // Twenty substrings: more trigrams than one SQLite statement may count.
        (0..20)
            .map(|i| format!("title co \"{}\"", &long[i * 90..i * 90 + 40]))
            .collect::<Vec<_>>()
            .join(" and "),
    ] {
        let path = format!(
            "/scim/v2/Users?filter={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let r = call(&app, "GET", &path, None).await;
        r.expect(200);
        assert_eq!(r.body["totalResults"], 1, "{}", &filter[..20]);
        assert_eq!(r.body["Resources"][0]["id"], id.as_str());
    }
    let mut over = full_user();
    over["userName"] = json!("over@example.com");
    over["title"] = json!(format!("{long}x"));
    let r = call(&app, "POST", "/scim/v2/Users", Some(over)).await;
    r.expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    let r = call(
        &app,
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22over@example.com%22",
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 0);
}

/// A case-insensitive value is indexed lower-cased, which can be longer than it was sent
/// (`İ`: 2 bytes, lower case 3): the limit holds for the indexed form too, and a value at the
/// limit is stored and found for a tenant with the longest name (64 characters), the other
/// columns of the value index's entries at their longest too.
#[actix_web::test]
async fn the_length_limit_holds_for_the_lower_cased_form() {
    let db = TestDb::new();
    let (app, state) = app_with(args(&db)).await;
    let tenant = format!("t{}", "x".repeat(63));
    let token = tenant_with_token(&state, &tenant, scimitar::auth::Scope::Write);
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let with_number = |name: &str, number: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", enterprise],
            "userName": name,
            enterprise: {"employeeNumber": number},
        })
    };
    let create = |name: &str, number: &str| {
        post(
            &app,
            &token,
            "/scim/v2/Users",
            Some(with_number(name, number)),
        )
    };
    // 2,048 bytes as sent (512 × `İ` at 2 bytes, 1,024 × `a`), 2,560 lower-cased (`i̇`: 3).
    let grows = format!("{}{}", "İ".repeat(512), "a".repeat(1024));
    assert_eq!(grows.len(), 2048);
    let r = create("grows", &grows).await;
    r.expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    assert!(
        r.body["detail"].as_str().unwrap().contains("lower case"),
        "{}",
        r.body
    );
    // 2,048 bytes both ways (`é` is 2 bytes, its own lower case), incompressible.
    let at_limit = format!("{}{}", "é".repeat(512), incompressible(1024, 3));
    assert_eq!(at_limit.len(), 2048);
    let r = create("fits", &at_limit).await;
    r.expect(201);
    let filter = format!(
        "{enterprise}:employeeNumber eq \"{}\"",
        at_limit.to_uppercase()
    );
    let r = get(&app, &token, &filter_uri("Users", &filter)).await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "fits");
    let r = get(&app, &token, &filter_uri("Users", "userName eq \"grows\"")).await;
    assert_eq!(
        r.body["totalResults"], 0,
        "the refused user was not written"
    );
}
