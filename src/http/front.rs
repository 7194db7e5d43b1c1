//! The front door of every authenticated request: one blocking hop, one pooled connection.
//! On it the credential is resolved to a principal (tenant, credential id, scope), the
//! credential's rate limit is checked, then the use case runs on the same connection. This is
//! where a request's tenant becomes known: per-tenant admission belongs here, and the
//! request's span and log line (`observe`) learn the tenant and credential id from here.
//!
//! What can be checked without the database is checked before the hop: a request without a
//! credential is 401 at once, and its body is read (size, type, JSON) by its extractor.
//! Everything else the handler checks (query parameters, projections) runs inside the hop
//! after authentication, so a bad credential is always answered as such.
//!
//! A credential is a bearer token (SCIM and `/api/v1`) or, on `/api/v1` only, the admin
//! console's session cookie: the session is found and its credential re-checked on the same
//! connection, in the same hop, and a state change must carry the session's CSRF token.

use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};

use super::admission;
use super::error::ApiError;
use super::AppState;
use crate::auth::session::{self, Session};
use crate::auth::{self, AuthError, Principal, Scope};
use crate::provisioning::{self, Service};
use crate::scim::compat::Compat;
use crate::scim::time::now_micros;
use crate::storage::conn::Conn;
use crate::storage::watch::Cancel;
use crate::storage::{StorageError, TenantId};

/// The bearer credential of a request, as sent (checked in `enter`). No credential is 401
/// before anything else.
pub struct Bearer(String, Reads);

/// Whether the request only reads (GET or HEAD): only such requests may run at low priority
/// (`admission::Admission::run`).
#[derive(Clone, Copy)]
struct Reads(bool);

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Ready<Result<Bearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let reads = Reads(matches!(*req.method(), Method::GET | Method::HEAD));
        ready(
            bearer(req)
                .map(|t| Bearer(t, reads))
                .ok_or(AuthError::Missing.into()),
        )
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// The console's session cookie over plain http.
pub const COOKIE: &str = "scimitar_session";
/// Over https: the `__Host-` prefix makes the browser refuse it unless it is `Secure`, has
/// `Path=/` and no `Domain`, so a sibling subdomain cannot plant or shadow it.
pub const SECURE_COOKIE: &str = "__Host-scimitar_session";
/// The header a state-changing request made with the session cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `scheme://host` of a base URL, lower-cased (`https://scim.example.com`).
pub fn origin_of(base_url: &str) -> String {
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("http", base_url));
    let host = rest.split('/').next().unwrap_or_default();
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// How the console's session cookie is named, and whether it is `Secure`: over https (the
/// public base URL's scheme) it is, with the `__Host-` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCookies {
    pub secure: bool,
}

impl SessionCookies {
    pub fn for_base_url(base_url: &str) -> SessionCookies {
        SessionCookies {
            secure: origin_of(base_url).starts_with("https://"),
        }
    }

    pub fn name(self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }
}

/// The console's session as a request presents it: the cookie, and the CSRF token it sent
/// (only a state change needs one).
pub struct SessionCredential {
    cookie: String,
    /// `X-CSRF-Token` of a POST, PUT, PATCH or DELETE ("" when absent); None for GET, HEAD
    /// and OPTIONS, which change nothing. The browser sends the cookie on its own; only the
    /// console's code sends the token.
    csrf: Option<String>,
}

impl SessionCredential {
    /// The session credential of a request, when it carries the session cookie.
    pub fn of(req: &HttpRequest, cookies: SessionCookies) -> Option<SessionCredential> {
        let cookie = req
            .cookie(cookies.name())
            .map(|c| c.value().to_string())
            .filter(|v| !v.is_empty())?;
        let csrf =
            (!matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)).then(|| {
                req.headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            });
        Some(SessionCredential { cookie, csrf })
    }

    /// The cookie's value (the session id; never logged).
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

/// Who a request says it is.
pub enum Caller {
    Bearer(Bearer),
    /// The admin console's session (`/api/v1` only; SCIM takes bearer tokens alone).
    Session(SessionCredential),
}

impl From<Bearer> for Caller {
    fn from(b: Bearer) -> Caller {
        Caller::Bearer(b)
    }
}

impl Caller {
    /// Whether the request only reads (see `Reads`); a console session's requests are taken
    /// as writes.
    fn reads(&self) -> bool {
        match self {
            Caller::Bearer(Bearer(_, Reads(r))) => *r,
            Caller::Session(_) => false,
        }
    }

    /// The caller of an `/api/v1` request: its `Authorization` header when it has one (the
    /// request is judged by it alone), else the console's session cookie; with neither, 401.
    pub fn of_api(req: &HttpRequest) -> Result<Caller, ApiError> {
        if !req.headers().contains_key(header::AUTHORIZATION) {
            let session = req
                .app_data::<web::Data<AppState>>()
                .and_then(|s| SessionCredential::of(req, s.session_cookies));
            if let Some(s) = session {
                return Ok(Caller::Session(s));
            }
        }
        Ok(Caller::Bearer(
            Bearer::from_request(req, &mut Payload::None).into_inner()?,
        ))
    }
}

/// Which credentials a route admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// SCIM: every scope (the use cases refuse writes to `read` and `admin`).
    Scim,
    /// `/api/v1`: scope `admin` only.
    Admin,
}

/// The rate-limit bucket of a credential of `tenant` (the bootstrap token has no id).
pub fn rate_key(tenant: &TenantId, credential: Option<&str>) -> String {
    format!("{tenant}\u{0}{}", credential.unwrap_or("bootstrap"))
}

/// Why the front door turned a request away, or what its use case answered instead.
enum Refused {
    TooMany(u64),
    /// The tenant runs its share of requests (`--tenant-max-concurrency`) and its queue is
    /// full or the wait ran out.
    TenantBusy(usize),
    NotAdmin,
    /// The session cookie names no live session.
    NoSession,
    /// A state change with the session cookie lacks the session's CSRF token.
    Csrf,
    UseCase(provisioning::Error),
    /// The use case ended without an answer on a low-priority thread.
    Lost(admission::Lost),
}

impl From<provisioning::Error> for Refused {
    fn from(e: provisioning::Error) -> Refused {
        Refused::UseCase(e)
    }
}

impl From<StorageError> for Refused {
    fn from(e: StorageError) -> Refused {
        Refused::UseCase(e.into())
    }
}

impl From<AuthError> for Refused {
    fn from(e: AuthError) -> Refused {
        Refused::UseCase(e.into())
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> ApiError {
        match r {
            Refused::TooMany(retry_after) => ApiError::too_many_requests(retry_after),
            Refused::TenantBusy(max) => ApiError {
                retry_after: Some(admission::RETRY_AFTER),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    format!(
                        "this tenant already runs {max} requests at once \
                         (--tenant-max-concurrency) and more are waiting; retry after {} s",
                        admission::RETRY_AFTER
                    ),
                )
            },
            Refused::NotAdmin => ApiError::new(
                StatusCode::FORBIDDEN,
                None,
                "this API needs a credential of scope `admin`; SCIM tokens cannot call it",
            ),
            Refused::NoSession => ApiError {
                challenge: Some("Bearer realm=\"scimitar\""),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "the console session is not valid: it expired, was signed out, or its \
                     credential was revoked; sign in again at /admin",
                )
            },
            Refused::Csrf => ApiError::new(
                StatusCode::FORBIDDEN,
                None,
                "a state-changing request made with the console session must carry the \
                 session's CSRF token in the X-CSRF-Token header",
            ),
            Refused::UseCase(e) => ApiError::from(e),
            Refused::Lost(e) => ApiError::internal(&e),
        }
    }
}

/// The live session a console credential names, checked on `conn` (see
/// `auth::session::resolve`: a dead one is deleted), and, for a state change, its CSRF token
/// (compared in constant time). None when there is no live session.
fn open_session(
    conn: &mut Conn,
    compat: Compat,
    c: &SessionCredential,
    now: i64,
) -> Result<Option<Session>, Refused> {
    let s = match session::resolve(conn, compat, &c.cookie, now) {
        Ok(s) => s,
        Err(AuthError::Storage(e)) => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    if let Some(sent) = &c.csrf {
        if sent.is_empty() || !s.csrf_matches(sent) {
            return Err(Refused::Csrf);
        }
    }
    Ok(Some(s))
}

/// `open_session` for the console's own endpoints (`/admin/session`), in their hop.
pub fn console_session(
    conn: &mut Conn,
    compat: Compat,
    c: &SessionCredential,
    now: i64,
) -> Result<Option<Session>, ApiError> {
    open_session(conn, compat, c, now).map_err(ApiError::from)
}

/// 401 for a console request whose cookie names no live session.
pub fn no_session() -> ApiError {
    Refused::NoSession.into()
}

/// Runs `f` for `caller` in one blocking hop: a pooled connection, the credential (or the
/// console session and its CSRF token) checked on it, its rate limit and `access`, then `f`
/// on the same connection.
pub async fn enter<T, F>(
    state: &web::Data<AppState>,
    caller: impl Into<Caller>,
    access: Access,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Service, &mut Conn, &Principal) -> provisioning::Result<T> + Send + 'static,
{
    let svc = state.service.clone();
    let bootstrap = state.bootstrap_hash.clone();
    let limiter = state.rate_limiter.clone();
    let caller = caller.into();
    let reads = caller.reads();
    let cancel = OnGone::new();
    let hold = cancel.hold();
    let admission = state.admission.clone();
    let (who, outcome) = web::block(move || {
        // Who the caller is, once known: for the request's span, log line and metrics.
        let mut who = None;
        let outcome = (|| -> Result<T, Refused> {
            let mut conn = svc.conn()?;
            let attached = hold.attach(&conn);
            let compat = svc.settings.compat;
            let now = now_micros();
            let p = match &caller {
                Caller::Bearer(b) => {
                    auth::authenticate(&mut conn, bootstrap.as_deref(), compat, &b.0, now)?
                }
                Caller::Session(c) => {
                    open_session(&mut conn, compat, c, now)?
                        .ok_or(Refused::NoSession)?
                        .principal
                }
            };
            who = Some((p.tenant.as_str().to_string(), p.credential.clone()));
            if let Some(limiter) = &limiter {
                limiter
                    .check(&rate_key(&p.tenant, p.credential.as_deref()))
                    .map_err(Refused::TooMany)?;
            }
            if access == Access::Admin && p.scope != Scope::Admin {
                return Err(Refused::NotAdmin);
            }
            // The tenant's share, and on Postgres a low-priority read's turn in the database
            // (see `admission`): both waited for without holding a connection, within one
            // deadline.
            let slot = admission.try_admit(&p.tenant);
            let turn = slot.as_ref().and_then(|slot| admission.turn(slot, reads));
            let (slot, turn, mut conn, _attached) = match (slot, turn) {
                (Some(slot), Some(turn)) => (slot, turn, conn, attached),
                (slot, _) => {
                    drop(attached);
                    drop(conn);
                    let until = Instant::now() + admission::QUEUE_WAIT;
                    let slot = match slot {
                        Some(slot) => slot,
                        None => admission
                            .admit(&p.tenant, until)
                            .ok_or(Refused::TenantBusy(admission.max()))?,
                    };
                    let turn = admission.wait_turn(&slot, reads, until, || hold.fired());
                    let conn = svc.conn()?;
                    let attached = hold.attach(&conn);
                    (slot, turn, conn, attached)
                }
            };
            // Over its share of the cores: at low priority (see `admission`).
            let svc = svc.clone();
            let out = admission
                .run(&slot, reads, move || f(&svc, &mut conn, &p))
                .map_err(Refused::Lost)?;
            drop(turn);
            Ok(out?)
        })();
        (who, outcome)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    cancel.done();
    if let Some((tenant, credential)) = &who {
        super::observe::identified(tenant, credential.as_deref());
    }
    outcome.map_err(ApiError::from)
}

/// Cancels a request's statement when its future is dropped before the blocking hop ended:
/// actix drops it when the client goes away. The hop's thread cannot be stopped, but its
/// statement can (`storage::watch::Cancel`), and its later statements fail at once, so its
/// connection goes back to the pool.
struct OnGone(Option<Arc<Cancel>>);

impl OnGone {
    fn new() -> OnGone {
        OnGone(Some(Arc::default()))
    }

    /// The hop's side of it.
    fn hold(&self) -> Arc<Cancel> {
        self.0.clone().unwrap_or_default()
    }

    /// The hop ended: nothing to cancel.
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for OnGone {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            // Off the executor: on Postgres the cancel is sent over a new connection.
            let spawned = std::thread::Builder::new()
                .name("cancel".into())
                .spawn(move || c.fire());
            if let Err(e) = spawned {
                log::warn!("cannot cancel the statement of a gone client: {e}");
            }
        }
    }
}

/// A blocking hop without `enter`'s credential check: a pooled connection and `f` on it. For
/// a long-poll's next look (its caller let in already) and the console's session endpoints
/// (a sign-in checks the credential it is given, the others the cookie, with
/// `console_session`).
pub async fn hop<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Service, &mut Conn) -> Result<T, ApiError> + Send + 'static,
{
    let svc = state.service.clone();
    let cancel = OnGone::new();
    let hold = cancel.hold();
    let out = web::block(move || {
        let mut conn = svc.conn()?;
        let _attached = hold.attach(&conn);
        f(&svc, &mut conn)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    cancel.done();
    out
}
