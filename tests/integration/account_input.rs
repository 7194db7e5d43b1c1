//! Bad input to the account side of `/api/v1` (docs/api-v1.md): refused with its JSON error,
//! and nothing changed.

use actix_web::test;
use serde_json::{json, Value};

use crate::common::*;

const BAD: (u16, &str) = (400, "bad_request");
const NOT_FOUND: (u16, &str) = (404, "not_found");

// ---------------------------------------------------------------------------------------
// Bad input changes nothing

#[actix_web::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let nobody = uuid::Uuid::new_v4().to_string();

    // Credentials: none, SCIM write, admin.
    let r = get(&app, "", "/api/v1/accounts").await;
    api_error(&r, 401, "unauthorized");
    let r = get(&app, "not-a-token", "/api/v1/roles").await;
    api_error(&r, 401, "unauthorized");
    let r = get(&app, TOKEN, "/api/v1/accounts").await;
    api_error(&r, 403, "forbidden");
    let r = post(
        &app,
        TOKEN,
        "/api/v1/roles",
        Some(json!({"name": "sneaky", "entitlements": {}})),
    )
    .await;
    api_error(&r, 403, "forbidden");
    let r = put(
        &app,
        TOKEN,
        "/api/v1/policy",
        json!({"provisioning": "review", "deprovisioning": "notify"}),
    )
    .await;
    api_error(&r, 403, "forbidden");
    // An admin token reads SCIM but does not write it.
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/scim/v2/Users")
            .insert_header(("Authorization", format!("Bearer {admin}")))
            .insert_header(("Content-Type", "application/scim+json"))
            .set_payload(okta_user("mallory@example.com", "X", "Y").to_string()),
    )
    .await;
    r.expect(403);
    let r = send(
        &app,
        test::TestRequest::get()
            .uri("/scim/v2/Users")
            .insert_header(("Authorization", format!("Bearer {admin}"))),
    )
    .await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 0);

    // Policy.
    for bad in [
        json!({"provisioning": "manual", "deprovisioning": "auto"}),
        json!({"provisioning": "auto", "deprovisioning": "never"}),
        json!({"provisioning": "review"}),
        json!({"provisioning": "review", "deprovisioning": "auto", "extra": 1}),
        json!("review"),
    ] {
        let r = put(&app, &admin, "/api/v1/policy", bad).await;
        api_error(&r, 400, "bad_request");
    }

    // Roles.
    let role = create_role(&app, &admin, "base", json!({"seats": 1, "tier": "gold"})).await;
    for (body, (status, code)) in [
        (
            json!({"name": "base", "entitlements": {}}),
            (409, "conflict"),
        ),
        (
            json!({"name": "other", "entitlements": {"seats": true}}),
            BAD,
        ),
        (json!({"name": "other", "entitlements": {"tier": 3}}), BAD),
        (
            json!({"name": "other", "entitlements": {"x": {"nested": 1}}}),
            BAD,
        ),
        (json!({"name": "other", "entitlements": {"x": [1]}}), BAD),
        (json!({"name": "", "entitlements": {}}), BAD),
        (json!({"entitlements": {}}), BAD),
        (json!({"name": "other", "colour": "red"}), BAD),
    ] {
        let r = post(&app, &admin, "/api/v1/roles", Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.raw);
        api_error(&r, status, code);
    }
    let r = put(
        &app,
        &admin,
        &format!("/api/v1/roles/{role}"),
        json!({"name": "base", "entitlements": {"seats": "many"}}),
    )
    .await;
    // The only role: a type of its own may change.
    ok(&r, 200);
    let r = put(
        &app,
        &admin,
        &format!("/api/v1/roles/{role}"),
        json!({"name": "base", "entitlements": {"seats": 1, "tier": "gold"}}),
    )
    .await;
    ok(&r, 200);

    // Rules.
    // Bad rules: the answer, and what its detail must name.
    for (body, (status, code), names) in [
        (
            json!({"role": role, "filter": "title co \"Manager\" and (department eq"}),
            BAD,
            Some("position"),
        ),
        (
            json!({"role": role, "filter": "userName eq"}),
            BAD,
            Some("position 11"),
        ),
        (json!({"role": role, "filter": "shoeSize gt 40"}), BAD, None),
        (
            json!({"role": nobody, "filter": "userName pr"}),
            NOT_FOUND,
            None,
        ),
        (json!({"role": role, "group": nobody}), NOT_FOUND, None),
        (json!({"role": role}), BAD, None),
        (
            json!({"role": role, "filter": "userName pr", "group": nobody}),
            BAD,
            None,
        ),
        (json!({"filter": "userName pr"}), BAD, None),
        (json!({"role": role, "filter": 7}), BAD, None),
    ] {
        let r = post(&app, &admin, "/api/v1/rules", Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.raw);
        let detail = api_error(&r, status, code);
        if let Some(names) = names {
            assert!(detail.contains(names), "{body}: names {names}: {detail}");
        }
    }

    // Unknown roles, rules, accounts, queue entries, subscriptions and paths.
    for (method, path, body) in [
        ("GET", format!("/api/v1/roles/{nobody}"), None),
        ("DELETE", format!("/api/v1/roles/{nobody}"), None),
        (
            "PUT",
            format!("/api/v1/roles/{nobody}"),
            Some(json!({"name": "x", "entitlements": {}})),
        ),
        ("GET", format!("/api/v1/rules/{nobody}"), None),
        ("DELETE", format!("/api/v1/rules/{nobody}"), None),
        (
            "PUT",
            format!("/api/v1/rules/{nobody}"),
            Some(json!({"role": role, "filter": "userName pr"})),
        ),
        ("GET", format!("/api/v1/accounts/{nobody}"), None),
        ("GET", format!("/api/v1/accounts/{nobody}/timeline"), None),
        ("POST", format!("/api/v1/candidates/{nobody}/approve"), None),
        ("POST", format!("/api/v1/candidates/{nobody}/reject"), None),
        ("POST", format!("/api/v1/removals/{nobody}/confirm"), None),
        ("GET", format!("/api/v1/accounts?role={nobody}"), None),
        ("GET", format!("/api/v1/accounts?group={nobody}"), None),
        ("GET", format!("/api/v1/webhooks/{nobody}"), None),
        ("DELETE", format!("/api/v1/webhooks/{nobody}"), None),
        (
            "POST",
            format!("/api/v1/dead-letters/{nobody}/replay"),
            None,
        ),
        ("GET", "/api/v1/no-such-thing".to_string(), None),
    ] {
        let r = request(&app, &admin, method, &path, body).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path}: {}", r.raw);
        api_error(&r, 404, "not_found");
    }
    for path in [
        "/api/v1/accounts?state=frozen",
        "/api/v1/accounts?limit=0",
        "/api/v1/accounts?cursor=!!!",
        "/api/v1/accounts?cursor=bm9wZQ",
    ] {
        let r = get(&app, &admin, path).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.raw);
        api_error(&r, 400, "bad_request");
    }

    // Webhooks.
    for body in [
        json!({"url": "ftp://x", "events": ["*"]}),
        json!({"url": "https://hooks.example.com/x", "events": ["account.exploded"]}),
        json!({"url": "https://hooks.example.com/x", "events": []}),
        json!({"url": "https://hooks.example.com/x"}),
        json!({"events": ["*"]}),
        json!({"url": "https://hooks.example.com/x", "events": ["*"], "secret": "hunter2"}),
        json!({"url": "https://hooks.example.com/x", "events": ["*"], "colour": "red"}),
    ] {
        let r = post(&app, &admin, "/api/v1/webhooks", Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.raw);
        api_error(&r, 400, "bad_request");
    }

    // None of it changed anything.
    let r = get(&app, &admin, "/api/v1/policy").await;
    assert_eq!(
        ok(&r, 200),
        &json!({"provisioning": "auto", "deprovisioning": "auto"})
    );
    let r = get(&app, &admin, "/api/v1/roles").await;
    let roles = items(&r);
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["id"], role.as_str());
    assert_eq!(roles[0]["name"], "base");
    assert_eq!(
        roles[0]["entitlements"],
        json!({"seats": 1, "tier": "gold"})
    );
    for list in [
        "/api/v1/rules",
        "/api/v1/webhooks",
        "/api/v1/accounts",
        "/api/v1/candidates",
        "/api/v1/removals",
    ] {
        let r = get(&app, &admin, list).await;
        assert_eq!(items(&r), Vec::<Value>::new(), "{list}");
    }
    let r = get(&app, &admin, "/api/v1/events").await;
    assert_eq!(ok(&r, 200), &json!({"items": [], "next": 0}));
}
