//! The admin console (issue 17) at `/admin`: a small single-page app over `/api/v1`, its
//! assets embedded in the binary and served under a strict Content-Security-Policy, and the
//! sessions that let a browser call `/api/v1` with an HttpOnly cookie instead of a bearer
//! token (sign-in, sign-out, CSRF). The session rules live in `auth::session`; this module
//! only speaks HTTP. Must not depend on diesel.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::{HttpServiceFactory, Payload};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::api::{AdminError, Body};
use super::error::ApiError;
use super::extract::{rate_key, Auth};
use super::ratelimit::{RateLimit, RateLimiter};
use super::AppState;
use crate::auth::session::{self, Issued, Session};
use crate::auth::{AuthError, Principal};
use crate::scim::time::{format_micros, now_micros};

/// The policy every console response carries: nothing from another origin, no inline script
/// or style, no framing, no `<base>`, forms and fetches to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The header a state-changing `/api/v1` request made with the session cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session cookie's name over plain http.
pub const COOKIE: &str = "scimitar_session";
/// Over https: the `__Host-` prefix makes the browser refuse it unless it is `Secure`, has
/// `Path=/` and no `Domain`, so a sibling subdomain cannot plant or shadow it.
pub const SECURE_COOKIE: &str = "__Host-scimitar_session";

/// What the console needs besides the application state.
pub struct ConsoleState {
    /// `Secure` cookies (and the `__Host-` name): the public base URL is https.
    pub secure: bool,
    /// The origin of `--base-url` (`https://scim.example.com`), accepted as a sign-in origin
    /// behind a proxy that rewrites `Host`.
    pub origin: String,
    /// Sign-in attempts per client address.
    pub sign_in_limiter: RateLimiter,
}

impl ConsoleState {
    pub fn new(base_url: &str, sign_in_limit: RateLimit) -> ConsoleState {
        let (scheme, rest) = base_url.split_once("://").unwrap_or(("http", base_url));
        let host = rest.split('/').next().unwrap_or_default();
        ConsoleState {
            secure: scheme.eq_ignore_ascii_case("https"),
            origin: format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            ),
            sign_in_limiter: RateLimiter::new(sign_in_limit),
        }
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }
}

/// The service at `/admin`: the app's pages and assets and the session endpoints, every
/// response with the console's security headers.
pub fn scope() -> impl HttpServiceFactory {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add(("cross-origin-opener-policy", "same-origin"))
        .add(("cross-origin-resource-policy", "same-origin"));
    web::scope("/admin")
        .wrap(headers)
        .service(
            web::resource("/session")
                .route(web::post().to(sign_in))
                .route(web::get().to(current))
                .route(web::delete().to(sign_out))
                .default_service(web::to(no_such_method)),
        )
        .service(
            web::resource("/assets/{name}")
                .route(web::get().to(asset))
                .default_service(web::to(no_such_method)),
        )
        .service(
            web::resource(["", "/{page:.*}"])
                .route(web::get().to(page))
                .default_service(web::to(no_such_method)),
        )
}

// ---------------------------------------------------------------------------------------
// Assets

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../../assets/console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console, embedded: nothing is read from disk or another origin.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("signin.js", JS),
    asset!("review.js", JS),
    asset!("removals.js", JS),
    asset!("accounts.js", JS),
    asset!("policies.js", JS),
    asset!("roles.js", JS),
    asset!("webhooks.js", JS),
];

/// The ETag of each asset, by position in `ASSETS` (computed once).
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &crate::auth::hash_secret(a.body)[..32]))
            .collect()
    })
}

fn serve_asset(req: &HttpRequest, i: usize, status: StatusCode) -> HttpResponse {
    let a = &ASSETS[i];
    let tag = etags().get(i).cloned().unwrap_or_default();
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    // `no-cache`: revalidate every time, so a new binary's console is used at once.
    if fresh && status == StatusCode::OK {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish();
    }
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, a.content_type))
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(a.body)
}

fn find_asset(name: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.name == name)
}

async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    match find_asset(&name) {
        Some(i) if name.as_str() != "index.html" => Ok(serve_asset(&req, i, StatusCode::OK)),
        _ => Err(ApiError::not_found(format!("no console asset `{name}`")).into()),
    }
}

/// The console's pages (the app routes them itself); anything else is the app's "not
/// found" page with status 404.
fn is_page(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    match path.split_once('/') {
        None => matches!(
            path,
            "" | "review" | "removals" | "accounts" | "policies" | "roles" | "webhooks"
        ),
        Some(("accounts", id)) => !id.is_empty() && !id.contains('/'),
        Some(_) => false,
    }
}

async fn page(req: HttpRequest) -> HttpResponse {
    let tail = req.match_info().get("page").unwrap_or_default();
    let status = if is_page(tail) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    match find_asset("index.html") {
        Some(i) => serve_asset(&req, i, status),
        None => HttpResponse::InternalServerError().finish(),
    }
}

async fn no_such_method(req: HttpRequest) -> Result<HttpResponse, AdminError> {
    Err(ApiError::not_found(format!(
        "no such console endpoint: {} {}",
        req.method(),
        req.path()
    ))
    .into())
}

// ---------------------------------------------------------------------------------------
// Sessions

/// A sign-in request must come from this origin (login CSRF: a page elsewhere must not sign
/// a browser into the attacker's tenant). Browsers send `Sec-Fetch-Site` and `Origin`;
/// clients that send neither (scripts) are not browsers and cannot be forged that way.
fn same_origin(req: &HttpRequest, console: &ConsoleState) -> Result<(), ApiError> {
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
        if !own && origin != console.origin {
            return Err(forbidden());
        }
    }
    Ok(())
}

fn session_cookie(req: &HttpRequest, console: &ConsoleState) -> Option<String> {
    req.cookie(console.cookie_name())
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn build_cookie(console: &ConsoleState, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(console.cookie_name(), value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(console.secure)
        .max_age(CookieDuration::seconds(max_age_secs.max(0)))
        .finish()
}

/// A JSON answer that no cache may keep (it carries the CSRF token).
fn json_no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ))
    .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn session_json(tenant: &str, csrf: &str, expires: i64) -> Value {
    json!({
        "tenant": tenant,
        "csrfToken": csrf,
        "expires": format_micros(expires),
        "idleTimeoutSeconds": session::IDLE_SECS,
    })
}

/// How a sign-in proves itself.
enum SignIn {
    Bearer(String),
    Client { id: String, secret: String },
}

impl SignIn {
    fn parse(body: &Value) -> Result<SignIn, ApiError> {
        let shape =
            "sign in with {\"token\": \"<admin credential>\"} or {\"clientId\", \"clientSecret\"}";
        let bad = |d: &str| ApiError::from(crate::scim::error::ScimError::invalid_value(d));
        let obj = body.as_object().ok_or_else(|| bad(shape))?;
        let field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::trim);
        if obj
            .keys()
            .any(|k| !["token", "clientId", "clientSecret"].contains(&k.as_str()))
        {
            return Err(bad(shape));
        }
        match (field("token"), field("clientId"), field("clientSecret")) {
            (Some(t), None, None) if !t.is_empty() => Ok(SignIn::Bearer(t.to_string())),
            (None, Some(id), Some(s)) if !id.is_empty() && !s.is_empty() => Ok(SignIn::Client {
                id: id.to_string(),
                secret: s.to_string(),
            }),
            _ => Err(bad(shape)),
        }
    }
}

/// A failed sign-in: one answer whatever the reason (unknown, revoked, expired, not admin).
fn sign_in_failed(e: AuthError) -> ApiError {
    match e {
        AuthError::Storage(s) => ApiError::from(crate::provisioning::Error::Storage(s)),
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "sign-in failed: this is not a valid credential of scope `admin` \
             (create one with `scimitar token create --tenant NAME --scope admin`)",
        ),
    }
}

/// `POST /admin/session`: a credential in, a session cookie out (plus the CSRF token the
/// app sends back on every state-changing request).
async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    Body(body): Body,
) -> Result<HttpResponse, AdminError> {
    same_origin(&req, &state.console)?;
    let who = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    state
        .console
        .sign_in_limiter
        .check(&who)
        .map_err(|secs| ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("too many sign-in attempts from this address; retry after {secs} s"),
            )
        })?;
    let how = SignIn::parse(&body)?;
    let svc = state.service.clone();
    let bootstrap = state.bootstrap_hash.clone();
    let now = now_micros();
    let issued: Issued = web::block(move || {
        let mut conn = svc
            .pool
            .get()
            .map_err(|e| AuthError::Storage(crate::storage::StorageError::Pool(e.to_string())))?;
        match how {
            SignIn::Bearer(t) => session::sign_in_with_bearer(
                &mut conn,
                bootstrap.as_deref(),
                svc.settings.compat,
                &t,
                now,
            ),
            SignIn::Client { id, secret } => {
                session::sign_in_with_client(&mut conn, &id, &secret, now)
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(sign_in_failed)?;
    let max_age = (issued.expires - now) / 1_000_000;
    let body = session_json(&issued.tenant, &issued.csrf, issued.expires);
    Ok(json_no_store(StatusCode::OK)
        .cookie(build_cookie(&state.console, issued.cookie, max_age))
        .body(body.to_string()))
}

/// Resolves the session a cookie names, on the blocking pool.
async fn resolve(state: &web::Data<AppState>, cookie: String) -> Result<Session, ApiError> {
    let svc = state.service.clone();
    web::block(move || {
        let mut conn = svc
            .pool
            .get()
            .map_err(|e| AuthError::Storage(crate::storage::StorageError::Pool(e.to_string())))?;
        session::resolve(&mut conn, svc.settings.compat, &cookie, now_micros())
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| match e {
        AuthError::Storage(s) => ApiError::from(crate::provisioning::Error::Storage(s)),
        _ => session_invalid(),
    })
}

fn session_invalid() -> ApiError {
    ApiError {
        challenge: Some("Bearer realm=\"scimitar\""),
        ..ApiError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "the console session is not valid: it expired, was signed out, or its credential \
             was revoked; sign in again at /admin",
        )
    }
}

/// `GET /admin/session`: the session the cookie names (the app asks on every load).
async fn current(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AdminError> {
    let cookie = session_cookie(&req, &state.console).ok_or_else(session_invalid)?;
    let s = resolve(&state, cookie).await?;
    let body = session_json(&s.principal.tenant, &s.csrf, s.expires);
    Ok(json_no_store(StatusCode::OK).body(body.to_string()))
}

/// `DELETE /admin/session`: signs out (with the CSRF token, like every state change). The
/// session row is deleted, so every instance refuses the cookie from now on.
async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    same_origin(&req, &state.console)?;
    if let Some(cookie) = session_cookie(&req, &state.console) {
        if let Ok(s) = resolve(&state, cookie.clone()).await {
            check_csrf(&req, &s)?;
            let svc = state.service.clone();
            web::block(move || {
                let mut conn = svc.pool.get().map_err(|e| {
                    AuthError::Storage(crate::storage::StorageError::Pool(e.to_string()))
                })?;
                session::sign_out(&mut conn, &cookie)
            })
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(sign_in_failed)?;
        }
    }
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(build_cookie(&state.console, String::new(), 0))
        .finish())
}

fn check_csrf(req: &HttpRequest, s: &Session) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given.is_empty() || !s.csrf_matches(given) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            None,
            "a state-changing request made with the console session must carry the session's \
             CSRF token in the X-CSRF-Token header",
        ));
    }
    Ok(())
}

/// Who an `/api/v1` request acts as: its bearer credential (`Authorization`) when it has
/// one, else the console session its cookie names. With the cookie, every method other than
/// GET, HEAD and OPTIONS must carry the session's CSRF token (`X-CSRF-Token`): the cookie is
/// sent by the browser on its own, the token only by the console's code.
pub fn caller(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let cookie = state
        .as_ref()
        .filter(|_| !req.headers().contains_key(header::AUTHORIZATION))
        .and_then(|s| session_cookie(req, &s.console));
    let (Some(state), Some(cookie)) = (state, cookie) else {
        let auth = Auth::from_request(req, payload);
        return Box::pin(async move { Ok(auth.await?.0) });
    };
    let req = req.clone();
    Box::pin(async move {
        let s = resolve(&state, cookie).await?;
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            check_csrf(&req, &s)?;
        }
        if let Some(limiter) = &state.rate_limiter {
            limiter
                .check(&rate_key(&s.principal))
                .map_err(ApiError::too_many_requests)?;
        }
        Ok(s.principal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_the_apps_routes() {
        for p in [
            "",
            "/",
            "review",
            "removals/",
            "accounts",
            "accounts/3f2a",
            "policies",
            "roles",
            "webhooks",
        ] {
            assert!(is_page(p), "{p}");
        }
        for p in ["nope", "accounts/a/b", "assets", "review/x", "session/x"] {
            assert!(!is_page(p), "{p}");
        }
    }

    #[test]
    fn every_asset_is_embedded_once() {
        let mut names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.body.is_empty()));
    }

    #[test]
    fn the_cookie_is_secure_over_https() {
        let limit = "10/minute".parse().unwrap();
        let plain = ConsoleState::new("http://127.0.0.1:8080/scim/v2", limit);
        assert!(!plain.secure);
        assert_eq!(plain.cookie_name(), COOKIE);
        assert_eq!(plain.origin, "http://127.0.0.1:8080");
        let tls = ConsoleState::new("HTTPS://Scim.Example.com/scim/v2", limit);
        assert!(tls.secure);
        assert_eq!(tls.cookie_name(), SECURE_COOKIE);
        assert_eq!(tls.origin, "https://scim.example.com");
        let c = build_cookie(&tls, "v".into(), 60);
        let s = c.to_string();
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
}
