//! OAuth 2.0 client credentials (RFC 6749 §4.4): POST /oauth/token, its §5.2 errors, the
//! access tokens on the SCIM endpoints, revocation, expiry and signing-key rotation.

use actix_web::test::TestRequest;
use actix_web::web;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use scimitar::auth::{oauth, Scope};
use scimitar::http::AppState;
use scimitar::provisioning::tenancy as admin;
use scimitar::scim::time::now_micros;
use scimitar::storage;
use scimitar::storage::sql::{Bind, Sql};

use crate::common::*;

fn client(state: &web::Data<AppState>, tenant: &str, scope: Scope) -> (String, String) {
    let mut conn = state.service.pool.get().unwrap();
    if storage::tenancy::find_tenant(&mut conn.db(), &tenant.into())
        .unwrap()
        .is_none()
    {
        admin::create_tenant(&mut conn, tenant).unwrap();
    }
    admin::create_client(&mut conn, tenant, Some("entra"), scope).unwrap()
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A POST to the token endpoint with `payload` as `content_type`.
fn token_request(content_type: &str, payload: &str) -> TestRequest {
    TestRequest::post()
        .uri("/oauth/token")
        .insert_header(("Content-Type", content_type))
        .set_payload(payload.to_string())
}

/// A token request with a form body (as RFC 6749 has it).
fn form(body: &str) -> TestRequest {
    token_request("application/x-www-form-urlencoded", body)
}

/// A client-credentials grant with HTTP Basic client authentication.
fn basic_grant(id: &str, secret: &str) -> TestRequest {
    form("grant_type=client_credentials").insert_header(("Authorization", basic(id, secret)))
}

async fn token_for<S: TestApp>(app: &S, id: &str, secret: &str) -> String {
    let r = send(app, basic_grant(id, secret)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["access_token"].as_str().unwrap().to_string()
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[track_caller]
fn oauth_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.raw);
    assert_eq!(r.body["error"], code, "{}", r.raw);
    assert!(r.body["error_description"].is_string());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
}

#[actix_web::test]
async fn client_credentials_issue_a_token_the_scim_endpoints_accept() {
    let (_db, app, state) = app_state().await;
    let (id, secret) = client(&state, "acme", Scope::Write);
    assert!(secret.starts_with("scimitar_"));

    // HTTP Basic.
    let r = send(&app, basic_grant(&id, &secret)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    assert_eq!(r.body["scope"], "write");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let header = jwt_part(&token, 0);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].is_string());
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["tid"], "acme");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, oauth::ACCESS_TOKEN_SECS);

    // Form credentials (scope may be asked for; the client's own is granted).
    let body =
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=scim");
    let r = send(&app, form(&body)).await;
    assert_eq!(r.status, 200, "{}", r.raw);

    // The token works on SCIM, in the client's tenant, and events name the client.
    let r = post_user(&app, &token, "o@acme", "1", "o@acme.example").await;
    r.expect(201);
    let mut conn = state.service.pool.get().unwrap();
    assert_eq!(
        storage::feed::event_credentials(&mut conn.db(), &"acme".into()).unwrap(),
        vec![Some(id.clone())]
    );
    let r = get(&app, TOKEN, "/scim/v2/Users").await;
    assert_eq!(
        r.body["totalResults"], 0,
        "the default tenant sees nothing of acme"
    );
    let listed = storage::tenancy::list_clients(&mut conn.db(), &"acme".into()).unwrap();
    assert_eq!(listed[0].id, id);
    assert!(listed[0].last_used.is_some());
}

#[actix_web::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let (_db, app, state) = app_state().await;
    let (id, secret) = client(&state, "acme", Scope::Write);

    // Wrong secret and unknown client: the same 401 invalid_client with a Basic challenge.
    let wrong = send(&app, basic_grant(&id, "scimitar_nope")).await;
    oauth_error(&wrong, 401, "invalid_client");
    assert_eq!(
        wrong.header("www-authenticate").as_deref(),
        Some("Basic realm=\"scimitar\"")
    );
    let unknown = send(&app, basic_grant("someone", &secret)).await;
    oauth_error(&unknown, 401, "invalid_client");
    assert_eq!(wrong.raw, unknown.raw);
    // Other bad credentials (401 invalid_client), then request errors (400).
    let grant = |credentials: &str| format!("grant_type=client_credentials&{credentials}");
    for (case, request, status, code) in [
        (
            "a wrong secret in the form",
            form(&grant(&format!("client_id={id}&client_secret=bad"))),
            401,
            "invalid_client",
        ),
        (
            "no credentials",
            form("grant_type=client_credentials"),
            401,
            "invalid_client",
        ),
        (
            "Basic credentials that are not base64",
            form("grant_type=client_credentials").insert_header(("Authorization", "Basic !!!")),
            401,
            "invalid_client",
        ),
        (
            "no grant_type",
            form(&format!("client_id={id}&client_secret={secret}")),
            400,
            "invalid_request",
        ),
        (
            "the password grant",
            form(&format!(
                "grant_type=password&client_id={id}&client_secret={secret}"
            )),
            400,
            "unsupported_grant_type",
        ),
        (
            "credentials both in Basic and in the form",
            form(&grant(&format!("client_id={id}&client_secret={secret}")))
                .insert_header(("Authorization", basic(&id, &secret))),
            400,
            "invalid_request",
        ),
        (
            "grant_type twice",
            form(&grant(&grant(&format!(
                "client_id={id}&client_secret={secret}"
            )))),
            400,
            "invalid_request",
        ),
        (
            "a JSON body",
            token_request(
                "application/json",
                &json!({"grant_type": "client_credentials"}).to_string(),
            ),
            400,
            "invalid_request",
        ),
    ] {
        let r = send(&app, request).await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"].as_str()),
            (status, Some(code)),
            "{case}: {}",
            r.raw
        );
        oauth_error(&r, status, code);
    }
    let r = send(&app, TestRequest::get().uri("/oauth/token")).await;
    assert_eq!(r.status, 405);
}

#[actix_web::test]
async fn revoked_clients_and_read_clients() {
    let (_db, app, state) = app_state().await;
    let (id, secret) = client(&state, "acme", Scope::Write);
    let token = token_for(&app, &id, &secret).await;
    get(&app, &token, "/scim/v2/Users").await.expect(200);
    let mut conn = state.service.pool.get().unwrap();
    assert_eq!(admin::revoke_client(&mut conn, &id).unwrap(), "acme");
    // Its access token stops at once, and it gets no new one.
    let r = get(&app, &token, "/scim/v2/Users").await;
    r.expect_invalid_token();
    let r = send(&app, basic_grant(&id, &secret)).await;
    oauth_error(&r, 401, "invalid_client");

    let (rid, rsecret) = client(&state, "acme", Scope::Read);
    let read = token_for(&app, &rid, &rsecret).await;
    get(&app, &read, "/scim/v2/Users").await.expect(200);
    post_user(&app, &read, "r@acme", "r", "r@acme.example")
        .await
        .expect_error(403, None);

    // Deleting the tenant ends its clients' tokens too.
    let (did, dsecret) = client(&state, "doomed", Scope::Write);
    let doomed = token_for(&app, &did, &dsecret).await;
    admin::delete_tenant(&mut conn, "doomed").unwrap();
    get(&app, &doomed, "/scim/v2/Users").await.expect(401);
}

#[actix_web::test]
async fn forged_tampered_and_expired_access_tokens_are_refused() {
    let (_db, app, state) = app_state().await;
    let (id, secret) = client(&state, "acme", Scope::Write);
    let (_other_id, _) = client(&state, "other", Scope::Write);
    let token = token_for(&app, &id, &secret).await;
    let parts: Vec<&str> = token.split('.').collect();

    // Claims changed to another tenant, signature kept.
    let mut claims = jwt_part(&token, 1);
    claims["tid"] = json!("other");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    // alg none with our issuer.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    // An unknown kid.
    let mut header = jwt_part(&token, 0);
    header["kid"] = json!("nope");
    let unknown_kid = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        parts[1],
        parts[2]
    );
    // Signed properly but two hours ago: expired beyond the leeway.
    let mut conn = state.service.pool.get().unwrap();
    let row = storage::tenancy::find_client(&mut conn.db(), &id)
        .unwrap()
        .unwrap();
    let old = conn
        .write_tx(|db| oauth::issue(db, &row, now_micros() - 7200 * 1_000_000))
        .map_err(|e| e.to_string())
        .unwrap()
        .access_token;
    // Not yet valid: issued ten minutes in the future.
    let future = conn
        .write_tx(|db| oauth::issue(db, &row, now_micros() + 600 * 1_000_000))
        .map_err(|e| e.to_string())
        .unwrap()
        .access_token;
    // Just issued, within the leeway: fine.
    let skewed = conn
        .write_tx(|db| oauth::issue(db, &row, now_micros() + 30 * 1_000_000))
        .map_err(|e| e.to_string())
        .unwrap()
        .access_token;
    get(&app, &skewed, "/scim/v2/Users").await.expect(200);
    for bad in [&forged, &unsigned, &unknown_kid, &old, &future] {
        let r = get(&app, bad, "/scim/v2/Users").await;
        r.expect_invalid_token();
    }
    get(&app, &token, "/scim/v2/Users").await.expect(200);
}

#[actix_web::test]
async fn rotated_keys_verify_until_their_tokens_expire() {
    let (_db, app, state) = app_state().await;
    let (id, secret) = client(&state, "acme", Scope::Write);
    let before = token_for(&app, &id, &secret).await;
    let old_kid = jwt_part(&before, 0)["kid"].as_str().unwrap().to_string();

    let mut conn = state.service.pool.get().unwrap();
    let new_kid = admin::rotate_keys(&mut conn).unwrap();
    assert_ne!(new_kid, old_kid);
    let after = token_for(&app, &id, &secret).await;
    assert_eq!(
        jwt_part(&after, 0)["kid"],
        new_kid.as_str(),
        "new tokens use the new key"
    );
    // The old key still verifies the tokens it signed.
    get(&app, &before, "/scim/v2/Users").await.expect(200);
    get(&app, &after, "/scim/v2/Users").await.expect(200);

    // Once its tokens could all have expired, the old key verifies nothing.
    let long_ago = now_micros() - (oauth::RETIRED_KEY_GRACE_SECS + 1) * 1_000_000;
    let mut q = Sql::new("UPDATE signing_keys SET retired_at = ");
    q.bind(Bind::Int(long_ago))
        .push(" WHERE kid = ")
        .bind(Bind::Text(old_kid.clone()));
    conn.db().execute(&q).unwrap();
    get(&app, &before, "/scim/v2/Users").await.expect(401);
    get(&app, &after, "/scim/v2/Users").await.expect(200);
    // The next rotation prunes it.
    admin::rotate_keys(&mut conn).unwrap();
    assert!(storage::tenancy::signing_key(&mut conn.db(), &old_kid)
        .unwrap()
        .is_none());
    assert!(storage::tenancy::signing_key(&mut conn.db(), &new_kid)
        .unwrap()
        .is_some());
}

#[actix_web::test]
async fn token_endpoint_is_rate_limited_per_client() {
    let (_db, app, state) = app_where(|a| a.rate_limit = Some("2/minute".parse().unwrap())).await;
    let (id, secret) = client(&state, "acme", Scope::Write);
    let token = token_for(&app, &id, &secret).await;
    get(&app, &token, "/scim/v2/Users").await.expect(200);
    // The client's bucket is shared by the endpoint and its tokens.
    let r = get(&app, &token, "/scim/v2/Users").await;
    r.expect_error(429, None);
    assert!(r.header("retry-after").is_some());
    let r = send(&app, basic_grant(&id, &secret)).await;
    oauth_error(&r, 429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Others are unaffected.
    let t = tenant_with_token(&state, "acme", Scope::Read);
    get(&app, &t, "/scim/v2/Users").await.expect(200);
}
