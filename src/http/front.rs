//! The front door of every authenticated request: one blocking hop, one pooled connection.
//! On it the credential is resolved to a principal (tenant, credential id, scope), the
//! credential's rate limit is checked, then the use case runs on the same connection. This is
//! where a request's tenant becomes known: per-tenant admission and request spans belong
//! here.
//!
//! What can be checked without the database is checked before the hop: a request without a
//! bearer credential is 401 at once, and its body is read (size, type, JSON) by its extractor.
//! Everything else the handler checks (query parameters, projections) runs inside the hop
//! after authentication, so a bad credential is always answered as such.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use crate::auth::{self, AuthError, Principal, Scope};
use crate::provisioning::{self, Service};
use crate::scim::time::now_micros;
use crate::storage::conn::Conn;
use crate::storage::{StorageError, TenantId};

/// The bearer credential of a request, as sent (checked in `enter`). No credential is 401
/// before anything else.
pub struct Bearer(String);

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Ready<Result<Bearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(bearer(req).map(Bearer).ok_or(AuthError::Missing.into()))
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
    NotAdmin,
    UseCase(provisioning::Error),
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
            Refused::NotAdmin => ApiError::new(
                StatusCode::FORBIDDEN,
                None,
                "this API needs a credential of scope `admin`; SCIM tokens cannot call it",
            ),
            Refused::UseCase(e) => ApiError::from(e),
        }
    }
}

/// Runs `f` for the caller of `bearer` in one blocking hop: a pooled connection, the
/// credential checked on it (and its rate limit, and `access`), then `f` on the same
/// connection.
pub async fn enter<T, F>(
    state: &web::Data<AppState>,
    bearer: Bearer,
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
    let outcome = web::block(move || -> Result<T, Refused> {
        let mut conn = svc.conn()?;
        let compat = svc.settings.compat;
        let p = auth::authenticate(
            &mut conn,
            bootstrap.as_deref(),
            compat,
            &bearer.0,
            now_micros(),
        )?;
        if let Some(limiter) = &limiter {
            limiter
                .check(&rate_key(&p.tenant, p.credential.as_deref()))
                .map_err(Refused::TooMany)?;
        }
        if access == Access::Admin && p.scope != Scope::Admin {
            return Err(Refused::NotAdmin);
        }
        Ok(f(&svc, &mut conn, &p)?)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    outcome.map_err(ApiError::from)
}

/// Another hop for a caller already let in (a long-poll's next look): a pooled connection
/// and `f` on it.
pub async fn again<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Service, &mut Conn) -> provisioning::Result<T> + Send + 'static,
{
    let svc = state.service.clone();
    web::block(move || f(&svc, &mut *svc.conn()?))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}
