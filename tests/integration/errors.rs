use actix_web::test::TestRequest;
use serde_json::{json, Value};

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
    for (method, uri, body, status) in [
        ("GET", "/scim/v2/Widgets", None, 404),
        ("GET", "/nowhere", None, 404),
        ("DELETE", "/scim/v2/Users", None, 405),
        ("POST", "/scim/v2/Users/abc", Some(json!({})), 405),
        ("GET", "/scim/v2/Users/does-not-exist", None, 404),
    ] {
        let r = call(&app, method, uri, body).await;
        expect_row(&r, &format!("{method} {uri}"), status, None);
    }
}

#[actix_web::test]
async fn malformed_bodies_are_invalid_syntax_and_change_nothing() {
    let (app, _db) = app().await;
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "j"});
    for (content_type, payload, status, scim_type) in [
        (
            "application/scim+json",
            Some("{\"userName\": ".to_string()),
            400,
            Some("invalidSyntax"),
        ),
        ("application/json", None, 400, Some("invalidSyntax")),
        (
            "application/scim+json",
            Some(json!([1, 2]).to_string()),
            400,
            Some("invalidSyntax"),
        ),
        ("text/plain", Some("{}".into()), 415, None),
        // Plain application/json is accepted.
        (
            "application/json; charset=utf-8",
            Some(user.to_string()),
            201,
            None,
        ),
    ] {
        let mut sent = req("POST", "/scim/v2/Users").insert_header(("Content-Type", content_type));
        if let Some(p) = &payload {
            sent = sent.set_payload(p.clone());
        }
        let r = send(&app, sent).await;
        expect_row(
            &r,
            &format!("{content_type} {payload:?}"),
            status,
            scim_type,
        );
    }
    assert_eq!(total(&app, "/scim/v2/Users").await, 1);
}

#[actix_web::test]
async fn schema_violations_are_invalid_value() {
    let (app, _db) = app().await;
    let users = [
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 42}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "emails": "x@y"}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "shoeSize": 9}),
        json!({"schemas": ["urn:example:other"], "userName": "x"}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x",
               "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
    ];
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]});
    let cases =
        (users.into_iter().map(|u| ("/scim/v2/Users", u))).chain([("/scim/v2/Groups", group)]);
    for (path, body) in cases {
        let r = call(&app, "POST", path, Some(body.clone())).await;
        r.expect_case(&format!("{path} {body}"), 400, Some("invalidValue"));
    }
    assert_eq!(total(&app, "/scim/v2/Users").await, 0);
    assert_eq!(total(&app, "/scim/v2/Groups").await, 0);
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
    let r = call(&app, "POST", "/scim/v2/Users", Some(big)).await;
    r.expect(413);
    assert_eq!(total(&app, "/scim/v2/Users").await, 0);
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
    // In order: a stale PATCH, a current one (version 2), reads of an old and the current
    // version, a stale DELETE, a current one.
    for (method, header, version, status) in [
        ("PATCH", "If-Match", "W/\"7\"", 412),
        ("PATCH", "If-Match", "W/\"1\"", 200),
        ("GET", "If-None-Match", "W/\"2\"", 304),
        ("GET", "If-None-Match", "W/\"1\"", 200),
        ("DELETE", "If-Match", "W/\"1\"", 412),
        ("DELETE", "If-Match", "W/\"2\"", 204),
    ] {
        let sent = as_(TOKEN, method, &path, (method == "PATCH").then_some(&body));
        let r = send(&app, sent.insert_header((header, version))).await;
        expect_row(&r, &format!("{method} {header}: {version}"), status, None);
    }
}

/// What a row of `search_endpoints` must get: the fields of a 200 (by JSON pointer), or the
/// scimType of a 400.
type Answer = Result<Vec<(&'static str, Value)>, &'static str>;

#[actix_web::test]
async fn search_endpoints() {
    let (app, _db) = app().await;
    let u = create_user(&app, "searcher").await;
    create_group(&app, "Searchers", &[&u]).await;
    let search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    // Each request, then the totalResults (and first resource) of its answer, or its error.
    let cases: [(&str, Value, Answer); 5] = [
        (
            "/scim/v2/Users/.search",
            json!({"schemas": [search], "filter": "userName sw \"search\"",
                   "attributes": ["userName"], "count": 10}),
            Ok(vec![
                ("/totalResults", json!(1)),
                ("/Resources/0/userName", json!("searcher")),
            ]),
        ),
        (
            "/scim/v2/.search",
            json!({"schemas": [search], "excludedAttributes": ["members"]}),
            Ok(vec![("/totalResults", json!(2))]),
        ),
        // A filter that only Users understand selects only Users at the root.
        (
            "/scim/v2/.search",
            json!({"schemas": [search], "filter": "userName pr"}),
            Ok(vec![("/totalResults", json!(1))]),
        ),
        (
            "/scim/v2/.search",
            json!({"filter": "userName pr"}),
            Err("invalidSyntax"),
        ),
        (
            "/scim/v2/.search",
            json!({"schemas": [search], "filter": "nope pr"}),
            Err("invalidFilter"),
        ),
    ];
    for (path, body, want) in cases {
        let r = call(&app, "POST", path, Some(body.clone())).await;
        let case = format!("{path} {body}");
        match want {
            Ok(fields) => {
                expect_row(&r, &case, 200, None);
                assert_fields(&r, &case, &fields);
            }
            Err(scim_type) => expect_row(&r, &case, 400, Some(scim_type)),
        }
    }
}

#[actix_web::test]
async fn nul_characters_and_oversized_strings_are_invalid_value() {
    let (app, _db) = app().await;
    let user = |extra: Value| {
        let mut u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]});
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Some(u)
    };
    let users = "/scim/v2/Users";
    for (method, uri, body, status, scim_type) in [
        (
            "POST",
            users,
            user(json!({"userName": "a\u{0}b"})),
            400,
            Some("invalidValue"),
        ),
        (
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22%5Cu0000%22",
            None,
            400,
            Some("invalidFilter"),
        ),
        (
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22a%00%22",
            None,
            400,
            Some("invalidValue"),
        ),
        ("GET", "/scim/v2/Users/a%00b", None, 404, None),
        (
            "POST",
            users,
            user(json!({"userName": "u", "title": "t".repeat(3000)})),
            400,
            Some("invalidValue"),
        ),
        // Binary values may be long (certificates): stored, not indexed.
        (
            "POST",
            users,
            user(json!({"userName": "c", "x509Certificates": [{"value": "A".repeat(4000)}]})),
            201,
            None,
        ),
    ] {
        let case = match &body {
            Some(b) => format!("{method} {uri}, userName {}", b["userName"]),
            None => format!("{method} {uri}"),
        };
        let r = call(&app, method, uri, body).await;
        expect_row(&r, &case, status, scim_type);
    }
    assert_eq!(total(&app, users).await, 1);
}
