use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn missing_or_wrong_token_is_401_with_challenge() {
    let (app, _db) = app().await;
    let r = send(&app, TestRequest::get().uri("/scim/v2/Users")).await;
    r.expect(401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = get_authorized(&app, "/scim/v2/Users", "Bearer nope").await;
    r.expect_invalid_token();
    let r = get_authorized(&app, "/scim/v2/Users", &format!("Basic {TOKEN}")).await;
    r.expect(401);
}

#[actix_web::test]
async fn unknown_routes_and_methods_are_scim_errors() {
    let (app, _db) = app().await;
    get(&app, TOKEN, "/scim/v2/Widgets").await.expect(404);
    get(&app, TOKEN, "/nowhere").await.expect(404);
    delete(&app, TOKEN, "/scim/v2/Users").await.expect(405);
    call(&app, "POST", "/scim/v2/Users/abc", Some(json!({})))
        .await
        .expect(405);
    get(&app, TOKEN, "/scim/v2/Users/does-not-exist")
        .await
        .expect(404);
}

#[actix_web::test]
async fn malformed_bodies_are_invalid_syntax_and_change_nothing() {
    let (app, _db) = app().await;
    let bad = send(
        &app,
        req("POST", "/scim/v2/Users")
            .insert_header(("Content-Type", "application/scim+json"))
            .set_payload("{\"userName\": "),
    )
    .await;
    bad.expect_error(400, Some("invalidSyntax"));
    let empty = send(
        &app,
        req("POST", "/scim/v2/Users").insert_header(("Content-Type", "application/json")),
    )
    .await;
    empty.expect_error(400, Some("invalidSyntax"));
    let not_object = call(&app, "POST", "/scim/v2/Users", Some(json!([1, 2]))).await;
    not_object.expect_error(400, Some("invalidSyntax"));
    let wrong_type = send(
        &app,
        req("POST", "/scim/v2/Users")
            .insert_header(("Content-Type", "text/plain"))
            .set_payload("{}"),
    )
    .await;
    wrong_type.expect(415);
    // Plain application/json is accepted.
    let ok = send(
        &app,
        req("POST", "/scim/v2/Users")
            .insert_header(("Content-Type", "application/json; charset=utf-8"))
            .set_payload(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "j"})
                    .to_string(),
            ),
    )
    .await;
    ok.expect(201);
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        1
    );
}

#[actix_web::test]
async fn schema_violations_are_invalid_value() {
    let (app, _db) = app().await;
    let cases = [
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 42}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "emails": "x@y"}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "shoeSize": 9}),
        json!({"schemas": ["urn:example:other"], "userName": "x"}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x",
               "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
    ];
    for body in cases {
        let r = call(&app, "POST", "/scim/v2/Users", Some(body.clone())).await;
        r.expect_error(400, Some("invalidValue"));
    }
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        0
    );
    let g = call(
        &app,
        "POST",
        "/scim/v2/Groups",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]})),
    )
    .await;
    g.expect_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn bad_list_parameters() {
    let (app, _db) = app().await;
    let deep = format!(
        "/scim/v2/Users?filter={}title%20pr{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    for (uri, scim_type) in [
        ("/scim/v2/Users?filter=userName%20eq", "invalidFilter"),
        ("/scim/v2/Users?filter=shoeSize%20eq%201", "invalidFilter"),
        ("/scim/v2/Users?filter=active%20gt%20true", "invalidFilter"),
        ("/scim/v2/Users?filter=name%20eq%20%22x%22", "invalidFilter"),
        (
            "/scim/v2/Users?filter=password%20eq%20%22x%22",
            "invalidFilter",
        ),
        ("/scim/v2/Users?count=ten", "invalidValue"),
        ("/scim/v2/Users?startIndex=x", "invalidValue"),
        (deep.as_str(), "invalidFilter"),
    ] {
        let case = &uri[..uri.len().min(80)];
        get(&app, TOKEN, uri)
            .await
            .expect_case(case, 400, Some(scim_type));
    }
}

#[actix_web::test]
async fn oversized_bodies_are_413() {
    let (_db, app, _) = app_where(|a| a.max_body_bytes = 1024).await;
    let big = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x".repeat(2000)});
    call(&app, "POST", "/scim/v2/Users", Some(big))
        .await
        .expect(413);
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        0
    );
}

#[actix_web::test]
async fn patch_errors() {
    let (app, _db) = app().await;
    let id = create_user(&app, "p").await;
    let path = format!("/scim/v2/Users/{id}");
    let cases = [
        (
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}),
            "invalidSyntax",
        ),
        (
            patch_body(json!([{"op": "jump", "path": "title", "value": "x"}])),
            "invalidSyntax",
        ),
        (
            patch_body(json!([{"op": "add", "path": "title[", "value": "x"}])),
            "invalidPath",
        ),
        (
            patch_body(json!([{"op": "add", "path": "shoeSize", "value": 1}])),
            "invalidPath",
        ),
        (
            patch_body(json!([{"op": "replace", "path": "emails[type eq ]", "value": "x"}])),
            "invalidPath",
        ),
        (patch_body(json!([{"op": "remove"}])), "noTarget"),
        (
            patch_body(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
            "invalidValue",
        ),
        (
            patch_body(json!([{"op": "replace", "path": "groups", "value": []}])),
            "mutability",
        ),
        (
            patch_body(json!([{"op": "replace", "path": "id", "value": "x"}])),
            "mutability",
        ),
        (
            patch_body(
                json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {"locality": "x"}}]),
            ),
            "noTarget",
        ),
        (
            // RFC 7644 §3.5.2.2: a required attribute removed is `mutability`.
            patch_body(json!([{"op": "remove", "path": "userName"}])),
            "mutability",
        ),
    ];
    for (body, scim_type) in cases {
        let r = call(&app, "PATCH", &path, Some(body.clone())).await;
        r.expect_error(400, Some(scim_type));
    }
    // All-or-nothing: a valid first op is not applied when the second fails.
    let r = patch(&app, &path, json!([{"op": "add", "path": "title", "value": "x"}, {"op": "add", "path": "active", "value": 3}]))
    .await;
    r.expect_error(400, Some("invalidValue"));
    let g = get(&app, TOKEN, &path).await;
    assert!(g.body.get("title").is_none());
    assert_eq!(g.body["meta"]["version"], "W/\"1\"");
}

#[actix_web::test]
async fn etags_if_match_and_if_none_match() {
    let (app, _db) = app().await;
    let id = create_user(&app, "e").await;
    let path = format!("/scim/v2/Users/{id}");
    let body = patch_body(json!([{"op": "replace", "path": "title", "value": "t"}]));
    let stale = send(
        &app,
        req("PATCH", &path)
            .insert_header(("Content-Type", "application/scim+json"))
            .insert_header(("If-Match", "W/\"7\""))
            .set_payload(body.to_string()),
    )
    .await;
    stale.expect(412);
    let ok = send(
        &app,
        req("PATCH", &path)
            .insert_header(("Content-Type", "application/scim+json"))
            .insert_header(("If-Match", "W/\"1\""))
            .set_payload(body.to_string()),
    )
    .await;
    ok.expect(200);
    let nm = send(
        &app,
        req("GET", &path).insert_header(("If-None-Match", "W/\"2\"")),
    )
    .await;
    assert_eq!(nm.status.as_u16(), 304);
    let changed = send(
        &app,
        req("GET", &path).insert_header(("If-None-Match", "W/\"1\"")),
    )
    .await;
    changed.expect(200);
    let del = send(
        &app,
        req("DELETE", &path).insert_header(("If-Match", "W/\"1\"")),
    )
    .await;
    del.expect(412);
    send(
        &app,
        req("DELETE", &path).insert_header(("If-Match", "W/\"2\"")),
    )
    .await
    .expect(204);
}

#[actix_web::test]
async fn search_endpoints() {
    let (app, _db) = app().await;
    let u = create_user(&app, "searcher").await;
    create_group(&app, "Searchers", &[&u]).await;
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users/.search",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "userName sw \"search\"", "attributes": ["userName"], "count": 10}),
        ),
    )
    .await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["userName"], "searcher");
    let root = call(
        &app,
        "POST",
        "/scim/v2/.search",
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "excludedAttributes": ["members"]})),
    )
    .await;
    root.expect(200);
    assert_eq!(root.body["totalResults"], 2, "{}", root.raw);
    // A filter that only Users understand selects only Users at the root.
    let root = call(
        &app,
        "POST",
        "/scim/v2/.search",
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName pr"})),
    )
    .await;
    assert_eq!(root.body["totalResults"], 1);
    let bad = call(
        &app,
        "POST",
        "/scim/v2/.search",
        Some(json!({"filter": "userName pr"})),
    )
    .await;
    bad.expect_error(400, Some("invalidSyntax"));
    let bad = call(
        &app,
        "POST",
        "/scim/v2/.search",
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "nope pr"})),
    )
    .await;
    bad.expect_error(400, Some("invalidFilter"));
}

#[actix_web::test]
async fn nul_characters_and_oversized_strings_are_invalid_value() {
    let (app, _db) = app().await;
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a\u{0}b"})),
    )
    .await;
    r.expect_error(400, Some("invalidValue"));
    get(
        &app,
        TOKEN,
        "/scim/v2/Users?filter=userName%20eq%20%22%5Cu0000%22",
    )
    .await
    .expect_error(400, Some("invalidFilter"));
    get(
        &app,
        TOKEN,
        "/scim/v2/Users?filter=userName%20eq%20%22a%00%22",
    )
    .await
    .expect_error(400, Some("invalidValue"));
    get(&app, TOKEN, "/scim/v2/Users/a%00b").await.expect(404);
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u", "title": "t".repeat(3000)})),
    )
    .await;
    r.expect_error(400, Some("invalidValue"));
    // Binary values may be long (certificates): stored, not indexed.
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "c",
                    "x509Certificates": [{"value": "A".repeat(4000)}]}),
        ),
    )
    .await;
    r.expect(201);
    assert_eq!(
        get(&app, TOKEN, "/scim/v2/Users").await.body["totalResults"],
        1
    );
}
