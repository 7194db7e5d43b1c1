//! The admin console's sessions over HTTP, `/admin/session`: sign-in (an `admin` credential
//! in; an HttpOnly cookie and the CSRF token out), the current session (a reload learns its
//! CSRF token again), sign-out. Sign-in is limited per client address and refused from
//! another origin (login CSRF). Each is one blocking hop (`front::hop`). The session rules
//! are `auth::session`'s; reading the cookie and checking the CSRF token, here and on
//! `/api/v1`, is the front door's (`front`). Must not depend on diesel.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::{Deserialize, Serialize};

use super::api::{AdminError, Body};
use super::error::ApiError;
use super::front::{self, SessionCookies, SessionCredential};
use super::ratelimit::RateLimiter;
use super::AppState;
use crate::auth::session::{self, Issued, Session};
use crate::auth::{self, AuthError};
use crate::config::RateLimit;
use crate::scim::error::ScimError;
use crate::scim::time::{format_micros, now_micros};
use crate::storage::conn::Conn;
use crate::storage::TenantId;

/// Who may try to sign in: the console's own origin, at a limited rate per client address.
pub struct SignInGuard {
    /// The origin of `--base-url` (`https://scim.example.com`), accepted as a sign-in origin
    /// behind a proxy that rewrites `Host`.
    pub origin: String,
    /// Sign-in attempts per client address (`--admin-sign-in-limit`).
    pub limiter: RateLimiter,
}

impl SignInGuard {
    pub fn new(base_url: &str, limit: RateLimit) -> SignInGuard {
        SignInGuard {
            origin: front::origin_of(base_url),
            limiter: RateLimiter::new(limit),
        }
    }
}

/// A sign-in or sign-out must come from the console's origin (login CSRF: a page elsewhere
/// must not sign a browser into the attacker's tenant). Browsers send `Sec-Fetch-Site` and
/// `Origin`; clients that send neither (scripts) are not browsers and cannot be forged that
/// way.
fn same_origin(req: &HttpRequest, guard: &SignInGuard) -> Result<(), ApiError> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            None,
            "this request must come from the console's own origin",
        )
    };
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if h("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err(forbidden());
    }
    if let Some(origin) = h("origin") {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let host = h("host").unwrap_or_default().to_ascii_lowercase();
        let own = origin
            .split_once("://")
            .is_some_and(|(_, rest)| !host.is_empty() && rest == host);
        if !own && origin != guard.origin {
            return Err(forbidden());
        }
    }
    Ok(())
}

fn build_cookie(cookies: SessionCookies, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(cookies.name(), value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(cookies.secure)
        .max_age(CookieDuration::seconds(max_age_secs.max(0)))
        .finish()
}

/// A JSON answer that no cache may keep (it carries the CSRF token).
fn json_no_store(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ))
    .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

/// The answer of a sign-in and of `GET /admin/session`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionInfo<'a> {
    tenant: &'a str,
    csrf_token: &'a str,
    /// RFC 3339: the session's absolute end.
    expires: String,
    idle_timeout_seconds: i64,
}

fn session_answer(
    b: &mut HttpResponseBuilder,
    tenant: &TenantId,
    csrf: &str,
    expires: i64,
) -> Result<HttpResponse, AdminError> {
    let info = SessionInfo {
        tenant: tenant.as_str(),
        csrf_token: csrf,
        expires: format_micros(expires),
        idle_timeout_seconds: session::IDLE_SECS,
    };
    let text = serde_json::to_string(&info).map_err(|e| AdminError(ApiError::internal(&e)))?;
    Ok(b.body(text))
}

const SIGN_IN_SHAPE: &str =
    "sign in with {\"token\": \"<admin credential>\"} or {\"clientId\", \"clientSecret\"}";

/// The body of `POST /admin/session`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SignInBody {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// How a sign-in proves itself.
enum SignIn {
    Bearer(String),
    Client { id: String, secret: String },
}

impl SignIn {
    fn parse(body: serde_json::Value) -> Result<SignIn, ApiError> {
        let bad = |d: String| ApiError::from(ScimError::invalid_value(d));
        let b: SignInBody =
            serde_json::from_value(body).map_err(|e| bad(format!("{SIGN_IN_SHAPE}: {e}")))?;
        let field = |v: Option<String>| v.map(|s| s.trim().to_string());
        match (field(b.token), field(b.client_id), field(b.client_secret)) {
            (Some(t), None, None) if !t.is_empty() => Ok(SignIn::Bearer(t)),
            (None, Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                Ok(SignIn::Client { id, secret })
            }
            _ => Err(bad(SIGN_IN_SHAPE.to_string())),
        }
    }
}

/// A failed sign-in: one answer whatever the reason (unknown, revoked, expired, not admin).
fn sign_in_failed(e: AuthError) -> ApiError {
    match e {
        AuthError::Storage(s) => s.into(),
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "sign-in failed: this is not a valid credential of scope `admin` \
             (create one with `scimitar token create --tenant NAME --scope admin`)",
        ),
    }
}

/// `POST /admin/session`: a credential in, a session cookie out (plus the CSRF token the
/// console sends back on every state-changing request).
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    same_origin(&req, &state.sign_in)?;
    let who = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    state.sign_in.limiter.check(&who).map_err(|secs| ApiError {
        retry_after: Some(secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            format!("too many sign-in attempts from this address; retry after {secs} s"),
        )
    })?;
    let how = SignIn::parse(body)?;
    let bootstrap = state.bootstrap_hash.clone();
    let now = now_micros();
    let issued: Issued = front::hop(&state, move |svc, conn| {
        let issued = match how {
            SignIn::Bearer(t) => {
                let compat = svc.settings.compat;
                auth::authenticate(conn, bootstrap.as_deref(), compat, &t, now)
                    .and_then(|p| session::sign_in_with_bearer(conn, &p, &t, now))
            }
            SignIn::Client { id, secret } => session::sign_in_with_client(conn, &id, &secret, now),
        };
        issued.map_err(sign_in_failed)
    })
    .await?;
    let max_age = (issued.expires - now) / 1_000_000;
    let cookie = build_cookie(state.session_cookies, issued.cookie, max_age);
    session_answer(
        json_no_store(StatusCode::OK).cookie(cookie),
        &issued.tenant,
        &issued.csrf,
        issued.expires,
    )
}

/// One hop with the live session `c` names (None when it names none), checked as the front
/// door checks it (CSRF token included), then `f` on the same connection.
async fn in_session<T: Send + 'static>(
    state: &web::Data<AppState>,
    c: SessionCredential,
    f: impl FnOnce(&mut Conn, &SessionCredential, Option<Session>) -> Result<T, ApiError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    front::hop(state, move |svc, conn| {
        let s = front::console_session(conn, svc.settings.compat, &c, now_micros())?;
        f(conn, &c, s)
    })
    .await
}

/// `GET /admin/session`: the session the cookie names (the console asks on every load).
pub async fn current(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let c = SessionCredential::of(&req, state.session_cookies).ok_or_else(front::no_session)?;
    let s = in_session(&state, c, |_, _, s| s.ok_or_else(front::no_session)).await?;
    session_answer(
        &mut json_no_store(StatusCode::OK),
        &s.principal.tenant,
        &s.csrf,
        s.expires,
    )
}

/// `DELETE /admin/session`: signs out (with the CSRF token, like every state change). The
/// session row is deleted, so every instance refuses the cookie from now on; the cookie is
/// cleared whether or not it still named a live session.
pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    same_origin(&req, &state.sign_in)?;
    if let Some(c) = SessionCredential::of(&req, state.session_cookies) {
        in_session(&state, c, |conn, c, s| match s {
            Some(_) => session::sign_out(conn, c.cookie())
                .map(drop)
                .map_err(sign_in_failed),
            None => Ok(()),
        })
        .await?;
    }
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(build_cookie(state.session_cookies, String::new(), 0))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_over_https() {
        let limit = "10/minute".parse().unwrap();
        let plain = SessionCookies::for_base_url("http://127.0.0.1:8080/scim/v2");
        assert!(!plain.secure);
        assert_eq!(plain.name(), front::COOKIE);
        assert_eq!(
            SignInGuard::new("http://127.0.0.1:8080/scim/v2", limit).origin,
            "http://127.0.0.1:8080"
        );
        let tls = SessionCookies::for_base_url("HTTPS://Scim.Example.com/scim/v2");
        assert!(tls.secure);
        assert_eq!(tls.name(), front::SECURE_COOKIE);
        assert_eq!(
            SignInGuard::new("HTTPS://Scim.Example.com/scim/v2", limit).origin,
            "https://scim.example.com"
        );
        let s = build_cookie(tls, "v".into(), 60).to_string();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(s.contains(part), "{s}");
        }
    }

    #[test]
    fn a_sign_in_names_one_kind_of_credential() {
        use serde_json::json;
        assert!(matches!(
            SignIn::parse(json!({"token": " t "})),
            Ok(SignIn::Bearer(t)) if t == "t"
        ));
        assert!(matches!(
            SignIn::parse(json!({"clientId": "c", "clientSecret": "s"})),
            Ok(SignIn::Client { .. })
        ));
        for bad in [
            json!({}),
            json!({"token": ""}),
            json!({"token": "t", "clientId": "c"}),
            json!({"clientId": "c"}),
            json!({"token": 5}),
            json!({"token": "t", "extra": 1}),
            json!([]),
        ] {
            assert!(SignIn::parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
