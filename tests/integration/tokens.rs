//! Bearer tokens: the lifecycle (create, use, revoke, expire), scopes, answers to bad
//! credentials, per-credential rate limits, per-tenant dialect settings, the body limit in
//! ServiceProviderConfig, and the credential each event records.

use serde_json::json;

use scimitar::auth::{self, Scope};
use scimitar::provisioning::tenancy as admin;
use scimitar::scim::time::now_micros;
use scimitar::storage;

use crate::common::*;

#[actix_web::test]
async fn token_lifecycle_create_use_revoke_expire() {
    let (_db, app, state) = app_state().await;
    let mut conn = state.service.pool.get().unwrap();
    admin::create_tenant(&mut conn, "acme").unwrap();
    let (id, token, expires) =
        admin::create_token(&mut conn, "acme", Some("entra"), Scope::Write, None).unwrap();
    assert!(token.starts_with(auth::TOKEN_PREFIX));
    assert_eq!(expires, None);

    // Use: it works, and `token list` shows when (never the secret or its hash).
    let r = post_user(&app, &token, "u@acme", "1", "u@acme.example").await;
    r.expect(201);
    let listed = storage::tenancy::list_tokens(&mut conn.db(), &"acme".into()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].label.as_deref(), Some("entra"));
    assert!(listed[0].last_used.is_some());
    assert!(!format!("{listed:?}").contains(&token));
    // The event names the token.
    assert_eq!(
        storage::feed::event_credentials(&mut conn.db(), &"acme".into()).unwrap(),
        vec![Some(id.clone())]
    );

    // Revoke: refused from the next request on, and the refusal changes nothing.
    assert_eq!(admin::revoke_token(&mut conn, &id).unwrap(), "acme");
    let r = post_user(&app, &token, "v@acme", "2", "v@acme.example").await;
    r.expect_error(401, None);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"scimitar\", error=\"invalid_token\"")
    );
    get(&app, &token, "/scim/v2/Users").await.expect(401);
    assert!(admin::revoke_token(&mut conn, "no-such-id")
        .unwrap_err()
        .to_string()
        .contains("no token"));
    let fresh = tenant_with_token(&state, "acme", Scope::Read);
    let r = get(&app, &fresh, "/scim/v2/Users").await;
    assert_eq!(
        r.body["totalResults"], 1,
        "the revoked token's request created nothing"
    );

    // Expire: a token past its expiry is refused; one before it works.
    let now = now_micros();
    let (_, expired) = conn
        .write_tx(|db| {
            auth::create_token(db, &"acme".into(), None, Scope::Write, Some(now - 1), now)
        })
        .unwrap();
    let r = get(&app, &expired, "/scim/v2/Users").await;
    r.expect_invalid_token();
    let (_, later, exp) = admin::create_token(
        &mut conn,
        "acme",
        None,
        Scope::Write,
        Some(std::time::Duration::from_secs(3600)),
    )
    .unwrap();
    assert!(exp.unwrap() > now);
    get(&app, &later, "/scim/v2/Users").await.expect(200);

    // Unknown tenant.
    let e = admin::create_token(&mut conn, "nope", None, Scope::Write, None).unwrap_err();
    assert!(e.to_string().contains("no tenant named `nope`"), "{e}");
}

#[actix_web::test]
async fn bad_credentials_are_401_and_say_only_that() {
    let (app, _db) = app().await;
    let mut details = Vec::new();
    for credential in [
        "garbage",
        "scimitar_0000000000000000000000000000000000000000000000000000000000000000",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJzY2ltaXRhciJ9.",
    ] {
        let r = get_authorized(&app, "/scim/v2/Users", &format!("Bearer {credential}")).await;
        r.expect_error(401, None);
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"scimitar\", error=\"invalid_token\"")
        );
        details.push(r.body["detail"].clone());
    }
    details.dedup();
    assert_eq!(
        details.len(),
        1,
        "every bad credential gets the same answer"
    );
}

#[actix_web::test]
async fn read_tokens_may_only_get_and_search() {
    let (_db, app, state) = app_state().await;
    let id = create_user(&app, "existing@example.com").await;
    let read = tenant_with_token(&state, "default", Scope::Read);
    for uri in [
        "/scim/v2/Users".to_string(),
        format!("/scim/v2/Users/{id}"),
        "/scim/v2/Groups".into(),
        "/scim/v2/ServiceProviderConfig".into(),
        "/scim/v2/Schemas".into(),
    ] {
        get(&app, &read, &uri).await.expect(200);
    }
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName pr"});
    for uri in ["/scim/v2/Users/.search", "/scim/v2/.search"] {
        let r = post(&app, &read, uri, Some(search.clone())).await;
        r.expect(200);
        assert_eq!(r.body["totalResults"], 1);
    }
    let patch = patch_body(json!([{"op": "replace", "path": "displayName", "value": "x"}]));
    for (method, uri, body) in [
        (
            "POST",
            "/scim/v2/Users".to_string(),
            Some(user("new@example.com", "n", "n@example.com")),
        ),
        (
            "POST",
            "/scim/v2/Groups".into(),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"}),
            ),
        ),
        (
            "PUT",
            format!("/scim/v2/Users/{id}"),
            Some(user("existing@example.com", "n", "n@example.com")),
        ),
        ("PATCH", format!("/scim/v2/Users/{id}"), Some(patch)),
        ("DELETE", format!("/scim/v2/Users/{id}"), None),
    ] {
        let r = request(&app, &read, method, &uri, body).await;
        r.expect_error(403, None);
    }
    let r = get(&app, TOKEN, &format!("/scim/v2/Users/{id}")).await;
    assert_eq!(
        r.header("etag").as_deref(),
        Some("W/\"1\""),
        "nothing changed"
    );
    assert_eq!(total(&app, "/scim/v2/Users").await, 1);
}

#[actix_web::test]
async fn rate_limit_is_per_credential_with_429_and_retry_after() {
    let (_db, app, state) = app_where(|a| a.rate_limit = Some("3/minute".parse().unwrap())).await;
    let other = tenant_with_token(&state, "default", Scope::Write);
    for _ in 0..3 {
        get(&app, TOKEN, "/scim/v2/Users").await.expect(200);
    }
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users",
        Some(user("late@example.com", "l", "l@example.com")),
    )
    .await;
    r.expect_error(429, None);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another credential has its own budget; the limited request created nothing.
    let r = get(&app, &other, "/scim/v2/Users").await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 0);
}

#[actix_web::test]
async fn rate_limit_is_off_by_default() {
    let (app, _db) = app().await;
    for _ in 0..50 {
        get(&app, TOKEN, "/scim/v2/ServiceProviderConfig")
            .await
            .expect(200);
    }
}

#[actix_web::test]
async fn dialect_tolerances_are_per_tenant() {
    let (_db, app, state) = app_where(|a| a.strict = true).await;
    let lenient = tenant_with_token(&state, "lenient", Scope::Write);
    let strict = tenant_with_token(&state, "strict", Scope::Write);
    let mut conn = state.service.pool.get().unwrap();
    admin::update_settings(&mut conn, "lenient", |s| {
        s.set_all(true);
        Ok(())
    })
    .unwrap();
    // Entra ID's capitalised op and string boolean.
    let entra = patch_body(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    for (token, status) in [(&lenient, 200), (&strict, 400), (&TOKEN.to_string(), 400)] {
        let r = post_user(&app, token, "e@example.com", "e", "e@example.com").await;
        r.expect(201);
        let id = r.body["id"].as_str().unwrap();
        let r = request(
            &app,
            token,
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            Some(entra.clone()),
        )
        .await;
        r.expect(status);
    }
    // One tolerance at a time; back to the server default.
    admin::update_settings(&mut conn, "lenient", |s| {
        s.set("op_case_insensitive", false)
    })
    .unwrap();
    let r = get(&app, &lenient, "/scim/v2/Users").await;
    let id = r.body["Resources"][0]["id"].as_str().unwrap().to_string();
    request(
        &app,
        &lenient,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(entra.clone()),
    )
    .await
    .expect(400);
    let e = admin::update_settings(&mut conn, "nope", |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("no tenant named"));
}

#[actix_web::test]
async fn the_body_limit_is_advertised_and_enforced() {
    let (_db, app, _) = app_where(|a| a.max_body_bytes = 2048).await;
    let r = get(&app, TOKEN, "/scim/v2/ServiceProviderConfig").await;
    r.expect(200);
    assert_eq!(r.body["bulk"]["maxPayloadSize"], 2048);
    let big = user(&"x".repeat(3000), "b", "b@example.com");
    call(&app, "POST", "/scim/v2/Users", Some(big))
        .await
        .expect(413);
}

#[actix_web::test]
async fn bootstrap_token_keeps_working_for_the_default_tenant() {
    let (_db, app, state) = app_state().await;
    create_user(&app, "boot@example.com").await;
    let mut conn = state.service.pool.get().unwrap();
    assert_eq!(
        storage::feed::event_credentials(&mut conn.db(), &"default".into()).unwrap(),
        vec![None],
        "the bootstrap token is no stored credential"
    );
    // Another tenant's token does not see the default tenant's data.
    let other = tenant_with_token(&state, "other", Scope::Write);
    let r = send(&app, as_(&other, "GET", "/scim/v2/Users", None)).await;
    assert_eq!(r.body["totalResults"], 0);
}
