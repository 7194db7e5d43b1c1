//! The admin console's sessions (issue 17) over HTTP: sign-in with an `admin` credential
//! turns into an HttpOnly, SameSite=Strict cookie that `/api/v1` accepts instead of a bearer
//! token; state changes need the session's CSRF token; sessions expire, end at sign-out and
//! when their credential is revoked; a wrong credential answers alike whatever it is; every
//! console response carries the Content-Security-Policy; no credential reaches the log.

use std::io::Read;
use std::process::Stdio;

use actix_web::test::TestRequest;
use actix_web::web;
use serde_json::{json, Value};

use scimitar::auth::{self, Scope};
use scimitar::http::console::CSP;
use scimitar::http::front::{COOKIE, SECURE_COOKIE};
use scimitar::http::AppState;
use scimitar::provisioning::tenancy as admin;
use scimitar::scim::time::now_micros;
use scimitar::storage::sql::{Bind, Sql};

use crate::common::*;

/// A signed-in browser: the cookie's value and the CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

fn token(state: &web::Data<AppState>, scope: Scope, expires_in: Option<u64>) -> (String, String) {
    let mut conn = state.service.pool.get().unwrap();
    let d = expires_in.map(std::time::Duration::from_secs);
    let (id, token, _) = admin::create_token(&mut conn, "default", Some("console"), scope, d)
        .unwrap_or_else(|e| panic!("create token: {e}"));
    (id, token)
}

/// A sign-in with `payload` as `content_type`.
fn sign_in_as(content_type: &str, payload: &str) -> TestRequest {
    TestRequest::post()
        .uri("/admin/session")
        .insert_header(("Content-Type", content_type))
        .set_payload(payload.to_string())
}

fn sign_in_request(body: Value) -> TestRequest {
    sign_in_as("application/json", &body.to_string())
}

/// The `Set-Cookie` header of a response, asserted present.
#[track_caller]
fn set_cookie(r: &Resp) -> String {
    r.header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie; body: {}", r.raw))
}

/// The value of cookie `name` in a `Set-Cookie` header.
fn cookie_value(set_cookie: &str, name: &str) -> String {
    let first = set_cookie.split(';').next().unwrap_or_default();
    let (n, v) = first.split_once('=').unwrap();
    assert_eq!(n.trim(), name, "{set_cookie}");
    v.trim().to_string()
}

async fn sign_in<S: TestApp>(app: &S, body: Value) -> Browser {
    let r = send(app, sign_in_request(body)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    Browser {
        cookie: cookie_value(&set_cookie(&r), COOKIE),
        csrf: r.body["csrfToken"].as_str().unwrap().to_string(),
    }
}

/// An admin token of the default tenant (its id and secret) and a browser signed in with it.
async fn signed_in<S: TestApp>(app: &S, state: &web::Data<AppState>) -> (String, String, Browser) {
    let (id, token) = token(state, Scope::Admin, None);
    let b = sign_in(app, json!({"token": token})).await;
    (id, token, b)
}

/// An OAuth client of the default tenant: its id and secret.
fn client(state: &web::Data<AppState>, label: Option<&str>, scope: Scope) -> (String, String) {
    let mut conn = state.service.pool.get().unwrap();
    admin::create_client(&mut conn, "default", label, scope)
        .unwrap_or_else(|e| panic!("create client: {e}"))
}

/// A request as the console makes it: the cookie, no bearer token; `csrf` when given.
fn with_cookie(method: &str, uri: &str, b: &Browser, csrf: Option<&str>) -> TestRequest {
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = TestRequest::default()
        .method(m)
        .uri(uri)
        .insert_header(("Cookie", format!("{COOKIE}={}", b.cookie)));
    if let Some(c) = csrf {
        r = r.insert_header(("X-CSRF-Token", c.to_string()));
    }
    r
}

fn sql(state: &web::Data<AppState>, text: &str, binds: Vec<Bind>) -> usize {
    let mut conn = state.service.pool.get().unwrap();
    let mut q = Sql::new(text);
    for b in binds {
        q.push(" ").bind(b);
    }
    conn.db().execute(&q).unwrap()
}

fn session_rows(state: &web::Data<AppState>) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id_hash: String,
    }
    let mut conn = state.service.pool.get().unwrap();
    conn.db()
        .load::<Row>(&Sql::new("SELECT id_hash FROM admin_sessions"))
        .unwrap()
        .into_iter()
        .map(|r| r.id_hash)
        .collect()
}

#[actix_web::test]
async fn sign_in_sets_an_http_only_strict_cookie_and_the_api_accepts_it() {
    let (_db, app, state) = app_state().await;
    let (_, admin_token) = token(&state, Scope::Admin, None);

    let r = send(&app, sign_in_request(json!({"token": admin_token}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let c = set_cookie(&r);
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(c.contains(part), "{part} missing: {c}");
    }
    assert!(
        !c.contains("Secure"),
        "plain http base URL: no Secure flag: {c}"
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("content-security-policy").as_deref(), Some(CSP));
    let cookie = cookie_value(&c, COOKIE);
    assert_eq!(cookie.len(), 64, "256 random bits, hex");
    let csrf = r.body["csrfToken"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, cookie);
    assert_eq!(r.body["tenant"], "default");
    assert_eq!(r.body["idleTimeoutSeconds"], 1800);
    assert!(
        !r.raw.contains(&admin_token),
        "the answer repeats the token"
    );

    // Only the SHA-256 of the cookie's value is stored.
    assert_eq!(session_rows(&state), vec![auth::hash_secret(&cookie)]);

    let b = Browser {
        cookie,
        csrf: csrf.to_string(),
    };
    let r = send(&app, with_cookie("GET", "/api/v1/accounts", &b, None)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = send(&app, with_cookie("GET", "/admin/session", &b, None)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["csrfToken"], b.csrf.as_str());
    // SCIM is the identity provider's wire: it takes bearer tokens only.
    let r = send(&app, with_cookie("GET", "/scim/v2/Users", &b, None)).await;
    r.expect(401);
}

#[actix_web::test]
async fn over_https_the_cookie_is_secure_and_host_prefixed() {
    let (_db, app, state) =
        app_where(|a| a.base_url = Some("https://scim.example.com/scim/v2".into())).await;
    let (_, admin_token) = token(&state, Scope::Admin, None);
    let r = send(&app, sign_in_request(json!({"token": admin_token}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let c = set_cookie(&r);
    assert!(c.starts_with(&format!("{SECURE_COOKIE}=")), "{c}");
    for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(part), "{part} missing: {c}");
    }
    // The plain name is not accepted on an https deployment.
    let b = Browser {
        cookie: cookie_value(&c, SECURE_COOKIE),
        csrf: String::new(),
    };
    let r = send(&app, with_cookie("GET", "/api/v1/accounts", &b, None)).await;
    api_error(&r, 401, "unauthorized");
    let r = send(
        &app,
        TestRequest::get()
            .uri("/api/v1/accounts")
            .insert_header(("Cookie", format!("{SECURE_COOKIE}={}", b.cookie))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[actix_web::test]
async fn state_changes_with_the_cookie_need_the_csrf_token() {
    let (_db, app, state) = app_state().await;
    let (_, admin_token, b) = signed_in(&app, &state).await;
    let body = json!({"provisioning": "review", "deprovisioning": "notify"}).to_string();
    let put = |csrf: Option<&str>| {
        with_cookie("PUT", "/api/v1/policy", &b, csrf)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.clone())
    };

    for csrf in [
        None,
        Some(""),
        Some("0".repeat(64).as_str()),
        Some(&b.cookie),
    ] {
        let r = send(&app, put(csrf)).await;
        api_error(&r, 403, "forbidden");
        assert!(r.body["detail"].as_str().unwrap().contains("X-CSRF-Token"));
    }
    // POST and DELETE alike.
    let r = send(
        &app,
        with_cookie("POST", "/api/v1/roles", &b, None)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(json!({"name": "r"}).to_string()),
    )
    .await;
    api_error(&r, 403, "forbidden");
    let r = send(&app, with_cookie("DELETE", "/api/v1/roles/x", &b, None)).await;
    api_error(&r, 403, "forbidden");
    // As with a bearer token, a malformed body is answered before the session is checked.
    let r = send(
        &app,
        with_cookie("PUT", "/api/v1/policy", &b, None)
            .insert_header(("Content-Type", "application/json"))
            .set_payload("{"),
    )
    .await;
    api_error(&r, 400, "bad_request");
    // Nothing changed.
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    assert_eq!(
        r.body,
        json!({"provisioning": "auto", "deprovisioning": "auto"})
    );
    let r = send(&app, with_cookie("GET", "/api/v1/roles", &b, None)).await;
    assert_eq!(r.body["items"], json!([]));

    let r = send(&app, put(Some(&b.csrf))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    assert_eq!(r.body["provisioning"], "review");

    // A bearer token needs no CSRF token (nothing sends it on its own), cookie or not.
    let r = send(
        &app,
        with_cookie("PUT", "/api/v1/policy", &b, None)
            .insert_header(("Authorization", format!("Bearer {admin_token}")))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(json!({"provisioning": "auto", "deprovisioning": "auto"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[actix_web::test]
async fn a_wrong_credential_answers_alike_whatever_it_is() {
    let (_db, app, state) =
        app_where(|a| a.admin_sign_in_limit = "100/minute".parse().unwrap()).await;
    let (revoked_id, revoked) = token(&state, Scope::Admin, None);
    admin::revoke_token(&mut state.service.pool.get().unwrap(), &revoked_id).unwrap();
    let (_, write) = token(&state, Scope::Write, None);
    let (_, read) = token(&state, Scope::Read, None);
    let (expired_id, expired) = token(&state, Scope::Admin, None);
    sql(
        &state,
        "UPDATE tokens SET expires = 1 WHERE id =",
        vec![Bind::Text(expired_id)],
    );
    let (write_client, write_secret) = client(&state, None, Scope::Write);
    let (admin_client, _) = client(&state, None, Scope::Admin);

    let unknown = auth::generate_token();
    let bodies = [
        json!({"token": unknown}),
        json!({"token": revoked}),
        json!({"token": expired}),
        json!({"token": write}),
        json!({"token": read}),
        json!({"token": TOKEN}),
        json!({"token": "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."}),
        json!({"clientId": write_client, "clientSecret": write_secret}),
        json!({"clientId": admin_client, "clientSecret": unknown}),
        json!({"clientId": "scimitar-client-nope", "clientSecret": unknown}),
    ];
    let mut answers = Vec::new();
    for b in bodies {
        let r = send(&app, sign_in_request(b.clone())).await;
        api_error(&r, 401, "unauthorized");
        assert!(r.header("set-cookie").is_none(), "{b}: {}", r.raw);
        answers.push(r.raw);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "answers differ: {answers:#?}"
    );
    assert!(session_rows(&state).is_empty());

    // Malformed sign-ins are the client's mistake, said so.
    for bad in [
        json!({}),
        json!({"token": ""}),
        json!({"token": 5}),
        json!({"token": "x", "clientId": "y", "clientSecret": "z"}),
        json!({"clientId": "y"}),
        json!({"password": "x"}),
    ] {
        let r = send(&app, sign_in_request(bad.clone())).await;
        api_error(&r, 400, "bad_request");
    }
    let r = send(
        &app,
        sign_in_as("application/x-www-form-urlencoded", "token=x"),
    )
    .await;
    api_error(&r, 415, "unsupported_media_type");
}

#[actix_web::test]
async fn client_credentials_and_access_tokens_sign_in_too() {
    let (_db, app, state) = app_state().await;
    let (id, secret) = client(&state, Some("console"), Scope::Admin);
    let b = sign_in(&app, json!({"clientId": id, "clientSecret": secret})).await;
    let r = send(&app, with_cookie("GET", "/api/v1/roles", &b, None)).await;
    assert_eq!(r.status, 200, "{}", r.raw);

    // An access token from /oauth/token: the session ends when the token would.
    let r = send(
        &app,
        TestRequest::post()
            .uri("/oauth/token")
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload(format!(
                "grant_type=client_credentials&client_id={id}&client_secret={secret}"
            )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let access = r.body["access_token"].as_str().unwrap().to_string();
    let r = send(&app, sign_in_request(json!({"token": access}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(set_cookie(&r).contains("Max-Age=3"), "{}", set_cookie(&r));
    let expires = time::OffsetDateTime::parse(
        r.body["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(3600),
        "session outlives its access token: {left}"
    );
    let by_token = Browser {
        cookie: cookie_value(&set_cookie(&r), COOKIE),
        csrf: r.body["csrfToken"].as_str().unwrap().to_string(),
    };

    // Revoking the client ends both sessions.
    admin::revoke_client(&mut state.service.pool.get().unwrap(), &id).unwrap();
    for s in [&b, &by_token] {
        let r = send(&app, with_cookie("GET", "/api/v1/roles", s, None)).await;
        api_error(&r, 401, "unauthorized");
    }
}

#[actix_web::test]
async fn sign_out_ends_the_session_everywhere() {
    let (db, app, state) = app_state().await;
    let (_, admin_token, b) = signed_in(&app, &state).await;
    let other = sign_in(&app, json!({"token": admin_token})).await;

    // Without the CSRF token sign-out is refused and the session lives on.
    let r = send(&app, with_cookie("DELETE", "/admin/session", &b, None)).await;
    api_error(&r, 403, "forbidden");
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    assert_eq!(r.status, 200);

    let r = send(
        &app,
        with_cookie("DELETE", "/admin/session", &b, Some(&b.csrf)),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.raw);
    let c = set_cookie(&r);
    assert!(
        c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0"),
        "{c}"
    );
    for uri in ["/api/v1/policy", "/admin/session"] {
        let r = send(&app, with_cookie("GET", uri, &b, None)).await;
        api_error(&r, 401, "unauthorized");
    }
    // Another instance on the same database refuses it too: the row is gone.
    let (app2, _) = app_with(args(&db)).await;
    let r = send(&app2, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    api_error(&r, 401, "unauthorized");
    // Other sessions of the same credential are untouched.
    let r = send(&app2, with_cookie("GET", "/api/v1/policy", &other, None)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(session_rows(&state).len(), 1);
}

/// Deleting a tenant deletes its console sessions with its credentials; another tenant's
/// sessions stay.
#[actix_web::test]
async fn deleting_a_tenant_ends_its_sessions_only() {
    let (_db, app, state) = app_state().await;
    let acme = tenant_with_token(&state, "acme", Scope::Admin);
    let (_, default_admin) = token(&state, Scope::Admin, None);
    let gone = sign_in(&app, json!({"token": acme})).await;
    let kept = sign_in(&app, json!({"token": default_admin})).await;
    assert_eq!(session_rows(&state).len(), 2);

    admin::delete_tenant(&mut state.service.pool.get().unwrap(), "acme").unwrap();
    assert_eq!(session_rows(&state), vec![auth::hash_secret(&kept.cookie)]);
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &gone, None)).await;
    api_error(&r, 401, "unauthorized");
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &kept, None)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[actix_web::test]
async fn a_revoked_or_expired_credential_ends_its_sessions() {
    let (_db, app, state) = app_state().await;
    let (id, _, b) = signed_in(&app, &state).await;
    admin::revoke_token(&mut state.service.pool.get().unwrap(), &id).unwrap();
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    api_error(&r, 401, "unauthorized");
    assert!(
        session_rows(&state).is_empty(),
        "a dead session is forgotten"
    );

    let (id, admin_token) = token(&state, Scope::Admin, Some(3600));
    let b = sign_in(&app, json!({"token": admin_token})).await;
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    assert_eq!(r.status, 200);
    sql(
        &state,
        "UPDATE tokens SET expires = 1 WHERE id =",
        vec![Bind::Text(id)],
    );
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    api_error(&r, 401, "unauthorized");
}

#[actix_web::test]
async fn sessions_expire_absolutely_and_when_idle() {
    let (_db, app, state) = app_state().await;
    let (_, admin_token) = token(&state, Scope::Admin, None);
    let now = now_micros();

    // Past its absolute end.
    let b = sign_in(&app, json!({"token": admin_token})).await;
    let hash = auth::hash_secret(&b.cookie);
    assert_eq!(
        sql(
            &state,
            "UPDATE admin_sessions SET expires = 5 WHERE id_hash =",
            vec![Bind::Text(hash)]
        ),
        1
    );
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    api_error(&r, 401, "unauthorized");

    // Idle for 31 minutes; 29 minutes is fine (and counts as activity).
    let b = sign_in(&app, json!({"token": admin_token})).await;
    let hash = auth::hash_secret(&b.cookie);
    let set_last_seen = |ago_secs: i64| {
        sql(
            &state,
            &format!(
                "UPDATE admin_sessions SET last_seen = {} WHERE id_hash =",
                now - ago_secs * 1_000_000
            ),
            vec![Bind::Text(hash.clone())],
        )
    };
    set_last_seen(29 * 60);
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    set_last_seen(31 * 60);
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &b, None)).await;
    api_error(&r, 401, "unauthorized");
    let r = send(&app, with_cookie("GET", "/admin/session", &b, None)).await;
    api_error(&r, 401, "unauthorized");
    // A tampered cookie is just another unknown session.
    let forged = Browser {
        cookie: "0".repeat(64),
        csrf: String::new(),
    };
    let r = send(&app, with_cookie("GET", "/api/v1/policy", &forged, None)).await;
    api_error(&r, 401, "unauthorized");
    assert!(session_rows(&state).is_empty());
}

#[actix_web::test]
async fn sign_in_is_rate_limited_and_checks_the_origin() {
    let (_db, app, state) =
        app_where(|a| a.admin_sign_in_limit = "3/minute".parse().unwrap()).await;
    let (_, admin_token) = token(&state, Scope::Admin, None);

    // A page on another origin cannot sign this browser in (login CSRF).
    for (name, value) in [
        ("Origin", "https://evil.example.com"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let r = send(
            &app,
            sign_in_request(json!({"token": admin_token})).insert_header((name, value)),
        )
        .await;
        api_error(&r, 403, "forbidden");
        assert!(r.header("set-cookie").is_none());
    }
    // Its own origin (as the Host header or the configured base URL names it) may.
    let r = send(
        &app,
        sign_in_request(json!({"token": admin_token}))
            .insert_header(("Host", "127.0.0.1:8080"))
            .insert_header(("Origin", "http://127.0.0.1:8080"))
            .insert_header(("Sec-Fetch-Site", "same-origin")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = send(
        &app,
        sign_in_request(json!({"token": "wrong"})).insert_header(("Origin", "http://scim.test")),
    )
    .await;
    api_error(&r, 401, "unauthorized");
    // Three attempts a minute from one address, good or bad.
    let r = send(&app, sign_in_request(json!({"token": admin_token}))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = send(&app, sign_in_request(json!({"token": admin_token}))).await;
    api_error(&r, 429, "too_many_requests");
    assert!(r.header("retry-after").is_some());
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("sign-in attempts"));
}

#[actix_web::test]
async fn console_pages_and_assets_carry_a_strict_csp() {
    let (app, _db) = app().await;
    let get = |uri: &str| TestRequest::get().uri(uri);
    for uri in ["/admin", "/admin/", "/admin/review", "/admin/accounts/abc"] {
        let r = send(&app, get(uri)).await;
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(r.header("content-security-policy").as_deref(), Some(CSP));
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"));
    }
    let html = send(&app, get("/admin")).await.raw;
    // No inline script or style: every script and stylesheet is a file of this origin.
    assert!(!html.contains("style="), "inline style");
    for handler in [
        "onclick=",
        "onload=",
        "onerror=",
        "onsubmit=",
        "javascript:",
    ] {
        assert!(!html.contains(handler), "inline script: {handler}");
    }
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for s in scripts {
        let tag = &s[..s.find('>').unwrap()];
        assert!(tag.contains("src=\"/admin/assets/"), "inline script: {tag}");
        assert!(s[s.find('>').unwrap() + 1..].starts_with("</script>"));
    }
    for (asset, ct) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = send(&app, get(&format!("/admin/assets/{asset}"))).await;
        assert_eq!(r.status, 200, "{asset}");
        assert_eq!(r.header("content-type").as_deref(), Some(ct));
        assert_eq!(r.header("content-security-policy").as_deref(), Some(CSP));
        let tag = r.header("etag").unwrap();
        let again = send(
            &app,
            get(&format!("/admin/assets/{asset}")).insert_header(("If-None-Match", tag)),
        )
        .await;
        assert_eq!(again.status, 304);
    }
    // Unknown pages are the app's "not found" (404); unknown assets and methods are 404 JSON.
    let r = send(&app, get("/admin/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-security-policy").as_deref(), Some(CSP));
    for (m, uri) in [
        ("GET", "/admin/assets/nope.js"),
        ("GET", "/admin/assets/index.html"),
        ("POST", "/admin/review"),
        ("PUT", "/admin/session"),
    ] {
        let r = send(
            &app,
            TestRequest::default()
                .method(actix_web::http::Method::from_bytes(m.as_bytes()).unwrap())
                .uri(uri),
        )
        .await;
        api_error(&r, 404, "not_found");
    }
}

/// The real server, logging at `debug`: neither the credential, nor the session id, nor the
/// CSRF token, nor a wrong credential appears in what it writes.
#[test]
fn no_credential_or_session_reaches_the_log() {
    let db = TestDb::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = ServerProcess::start(&db, &[], "debug", Stdio::from(log.reopen().unwrap()));
    let mut conn = scimitar::storage::pool::open(&db.url, scimitar::config::SqliteSync::Normal, 1)
        .unwrap()
        .get()
        .unwrap();
    let (_, admin_token, _) =
        admin::create_token(&mut conn, "default", None, Scope::Admin, None).unwrap();
    let agent = http_agent();
    let url = |p: &str| format!("{}{p}", server.url);
    let sign_in_with = |token: &str| {
        agent
            .post(url("/admin/session"))
            .header("Content-Type", "application/json")
            .send(json!({"token": token}).to_string())
            .unwrap()
    };

    let mut r = sign_in_with(&admin_token);
    assert_eq!(r.status(), 200);
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    let cookie = cookie_value(set, COOKIE);
    let body: Value = r.body_mut().read_json().unwrap();
    let csrf = body["csrfToken"].as_str().unwrap().to_string();
    let r = agent
        .get(url("/api/v1/accounts"))
        .header("Cookie", format!("{COOKIE}={cookie}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = agent
        .put(url("/api/v1/policy"))
        .header("Cookie", format!("{COOKIE}={cookie}"))
        .header("X-CSRF-Token", &csrf)
        .header("Content-Type", "application/json")
        .send(json!({"provisioning": "review", "deprovisioning": "auto"}).to_string())
        .unwrap();
    assert_eq!(r.status(), 200);
    let wrong = auth::generate_token();
    let r = sign_in_with(&wrong);
    assert_eq!(r.status(), 401);
    let r = agent
        .delete(url("/admin/session"))
        .header("Cookie", format!("{COOKIE}={cookie}"))
        .header("X-CSRF-Token", &csrf)
        .call()
        .unwrap();
    assert_eq!(r.status(), 204);
    drop(server);

    let mut text = String::new();
    log.reopen().unwrap().read_to_string(&mut text).unwrap();
    // The log is there and names the requests (so the check below can fail)...
    for line in [
        "method=POST route=/admin/session uri=/admin/session status=200",
        "method=GET route=/api/v1/accounts uri=/api/v1/accounts status=200",
        "method=POST route=/admin/session uri=/admin/session status=401",
    ] {
        assert!(text.contains(line), "no `{line}` in the log:\n{text}");
    }
    // ...but no secret.
    for (what, secret) in [
        ("the admin token", &admin_token),
        ("the session id", &cookie),
        ("the CSRF token", &csrf),
        ("the wrong token", &wrong),
    ] {
        assert!(!text.contains(secret.as_str()), "{what} is in the log");
    }
}
