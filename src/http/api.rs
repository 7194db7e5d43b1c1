//! The admin and product API (`/api/v1`, docs/api-v1.md): plain JSON, errors as
//! `{"status", "error", "detail"}`, credentials of scope `admin` only.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Params, ScimBody};
use super::{run, AppState};
use crate::auth::{Principal, Scope};
use crate::provisioning::admin_extras::Details;
use crate::provisioning::product::{page_limit, AccountList};

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// An error of this API: the same cases as SCIM's, in this API's shape.
#[derive(Debug)]
pub struct AdminError(pub ApiError);

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> AdminError {
        AdminError(e)
    }
}

impl From<crate::provisioning::Error> for AdminError {
    fn from(e: crate::provisioning::Error) -> AdminError {
        AdminError(e.into())
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "too_many_requests",
        503 => "unavailable",
        _ => "internal",
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.0;
        let mut resp = HttpResponse::build(e.status);
        resp.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        if let Some(c) = e.challenge {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(c)));
        }
        if let Some(s) = e.retry_after {
            resp.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        resp.body(
            json!({"status": e.status.as_u16(), "error": code(e.status), "detail": e.detail})
                .to_string(),
        )
    }
}

/// The caller, who must hold an `admin` credential: a bearer token, or the admin console's
/// session cookie (with its CSRF token on state changes; see `console::caller`).
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = super::console::caller(req, payload);
        Box::pin(async move {
            let p = caller.await?;
            if p.scope != Scope::Admin {
                return Err(AdminError(ApiError::new(
                    StatusCode::FORBIDDEN,
                    None,
                    "this API needs a credential of scope `admin`; SCIM tokens cannot call it",
                )));
            }
            Ok(Admin(p))
        })
    }
}

/// A JSON body (the same limits and checks as SCIM bodies).
pub struct Body(pub Value);

impl FromRequest for Body {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = ScimBody::from_request(req, payload);
        Box::pin(async move { Ok(Body(body.await?.0)) })
    }
}

type Answer = Result<HttpResponse, AdminError>;

fn ok(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(v.to_string())
}

fn list_query(req: &HttpRequest) -> Result<AccountList, AdminError> {
    let params = Params::from_request(req)?;
    Ok(AccountList {
        state: params.get("state").map(str::to_string),
        role: params.get("role").map(str::to_string),
        group: params.get("group").map(str::to_string),
        filter: params.get("filter").map(str::to_string),
        flagged: false,
        cursor: params.get("cursor").map(str::to_string),
        limit: params.int("limit")?,
        details: Details::Profile,
    })
}

/// The routes under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi))
        .route("/policy", web::get().to(get_policy))
        .route("/policy", web::put().to(put_policy))
        .route("/roles", web::get().to(list_roles))
        .route("/roles", web::post().to(create_role))
        .route("/roles/{id}", web::get().to(get_role))
        .route("/roles/{id}", web::put().to(replace_role))
        .route("/roles/{id}", web::delete().to(delete_role))
        .route("/rules", web::get().to(list_rules))
        .route("/rules", web::post().to(create_rule))
        .route("/rules/preview", web::post().to(preview_rule))
        .route("/rules/{id}", web::get().to(get_rule))
        .route("/rules/{id}", web::put().to(replace_rule))
        .route("/rules/{id}", web::delete().to(delete_rule))
        .route("/candidates", web::get().to(candidates))
        .route("/candidates/approve", web::post().to(approve_group))
        .route("/candidates/{id}/approve", web::post().to(approve))
        .route("/candidates/{id}/reject", web::post().to(reject))
        .route("/removals", web::get().to(removals))
        .route("/removals/{id}/confirm", web::post().to(confirm_removal))
        .route("/removals/{id}/restore", web::post().to(restore))
        .route("/groups", web::get().to(list_groups))
        .route("/accounts", web::get().to(list_accounts))
        .route("/accounts/{id}", web::get().to(get_account))
        .route("/accounts/{id}/timeline", web::get().to(timeline))
        .route("/events", web::get().to(events))
        .route("/webhooks", web::get().to(list_webhooks))
        .route("/webhooks", web::post().to(create_webhook))
        .route("/webhooks/{id}", web::get().to(get_webhook))
        .route("/webhooks/{id}", web::delete().to(delete_webhook))
        .route("/webhooks/{id}/dead-letters", web::get().to(dead_letters))
        .route("/webhooks/{id}/deliveries", web::get().to(deliveries))
        .route("/dead-letters/{id}/replay", web::post().to(replay))
        .default_service(web::to(unknown));
}

async fn unknown(req: HttpRequest) -> Answer {
    Err(AdminError(ApiError::not_found(format!(
        "no such endpoint: {} {} (see /api/v1/openapi.json)",
        req.method(),
        req.path()
    ))))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(OPENAPI)
}

/// Declares a handler that runs one service call on the blocking pool and answers its JSON.
macro_rules! call {
    ($state:expr, $status:expr, |$svc:ident| $body:expr) => {{
        let $svc = $state.service.clone();
        let v = run(move || $body).await?;
        Ok(ok($status, &v))
    }};
}

async fn get_policy(state: web::Data<AppState>, Admin(p): Admin) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.get_policy(&p))
}

async fn put_policy(state: web::Data<AppState>, Admin(p): Admin, Body(b): Body) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.put_policy(&p, &b))
}

async fn list_roles(state: web::Data<AppState>, Admin(p): Admin) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.list_roles(&p))
}

async fn create_role(state: web::Data<AppState>, Admin(p): Admin, Body(b): Body) -> Answer {
    call!(state, StatusCode::CREATED, |svc| svc.create_role(&p, &b))
}

async fn get_role(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.get_role(&p, &id))
}

async fn replace_role(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
    Body(b): Body,
) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.replace_role(&p, &id, &b))
}

async fn delete_role(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    let svc = state.service.clone();
    run(move || svc.delete_role(&p, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_rules(state: web::Data<AppState>, Admin(p): Admin) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.list_rules(&p))
}

async fn create_rule(state: web::Data<AppState>, Admin(p): Admin, Body(b): Body) -> Answer {
    call!(state, StatusCode::CREATED, |svc| svc.create_rule(&p, &b))
}

async fn get_rule(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.get_rule(&p, &id))
}

async fn replace_rule(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
    Body(b): Body,
) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.replace_rule(&p, &id, &b))
}

async fn delete_rule(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    let svc = state.service.clone();
    run(move || svc.delete_rule(&p, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn candidates(state: web::Data<AppState>, Admin(p): Admin, req: HttpRequest) -> Answer {
    let mut q = list_query(&req)?;
    q.state = Some("pending".into());
    q.details = Details::Candidate;
    call!(state, StatusCode::OK, |svc| svc.list_accounts(&p, &q))
}

async fn approve(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.approve(&p, &id))
}

async fn reject(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.reject(&p, &id))
}

async fn approve_group(state: web::Data<AppState>, Admin(p): Admin, Body(b): Body) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.approve_group(&p, &b))
}

async fn removals(state: web::Data<AppState>, Admin(p): Admin, req: HttpRequest) -> Answer {
    let mut q = list_query(&req)?;
    q.flagged = true;
    call!(state, StatusCode::OK, |svc| svc.list_accounts(&p, &q))
}

async fn confirm_removal(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.confirm_removal(&p, &id))
}

async fn list_accounts(state: web::Data<AppState>, Admin(p): Admin, req: HttpRequest) -> Answer {
    let q = list_query(&req)?;
    call!(state, StatusCode::OK, |svc| svc.list_accounts(&p, &q))
}

async fn get_account(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.get_account(&p, &id))
}

async fn timeline(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let q = list_query(&req)?;
    call!(state, StatusCode::OK, |svc| svc.timeline(&p, &id, &q))
}

/// The longest `wait` of a feed long-poll, in seconds.
const MAX_WAIT_SECS: i64 = 60;

/// `GET /events?after=&limit=&wait=`: the feed in order; with `wait`, held until an event
/// arrives. This process's commits wake it at once; other instances' within a second.
async fn events(state: web::Data<AppState>, Admin(p): Admin, req: HttpRequest) -> Answer {
    let params = Params::from_request(&req)?;
    let bad = |d: String| AdminError(crate::scim::error::ScimError::invalid_value(d).into());
    let after = params.int("after")?.unwrap_or(0);
    if after < 0 {
        return Err(bad(format!("after must be 0 or more, not {after}")));
    }
    let limit = page_limit(params.int("limit")?)?;
    let wait = params.int("wait")?.unwrap_or(0);
    if !(0..=MAX_WAIT_SECS).contains(&wait) {
        return Err(bad(format!(
            "wait must be between 0 and {MAX_WAIT_SECS} seconds, not {wait}"
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(wait.unsigned_abs());
    let signal = state.service.signal.clone();
    loop {
        // Registered before looking, so a commit between the look and the wait still wakes.
        let mut notified = std::pin::pin!(signal.notified());
        notified.as_mut().enable();
        let svc = state.service.clone();
        let p2 = p.clone();
        let items = run(move || svc.events(&p2, after, limit)).await?;
        let now = Instant::now();
        if !items.is_empty() || now >= deadline {
            let next = items
                .last()
                .and_then(|e| e["seq"].as_i64())
                .unwrap_or(after);
            return Ok(ok(StatusCode::OK, &json!({"items": items, "next": next})));
        }
        let nap = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(nap, notified).await;
    }
}

async fn list_webhooks(state: web::Data<AppState>, Admin(p): Admin) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.list_webhooks(&p))
}

async fn create_webhook(state: web::Data<AppState>, Admin(p): Admin, Body(b): Body) -> Answer {
    call!(state, StatusCode::CREATED, |svc| svc.create_webhook(&p, &b))
}

async fn get_webhook(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.get_webhook(&p, &id))
}

async fn delete_webhook(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
) -> Answer {
    let svc = state.service.clone();
    run(move || svc.delete_webhook(&p, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn dead_letters(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let q = list_query(&req)?;
    call!(state, StatusCode::OK, |svc| svc.dead_letters(&p, &id, &q))
}

async fn replay(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.replay(&p, &id))
}

// ---------------------------------------------------------------------------------------
// Added for the admin console (issue 17; `provisioning::admin_extras`)

async fn preview_rule(state: web::Data<AppState>, Admin(p): Admin, Body(b): Body) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.preview_rule(&p, &b))
}

async fn restore(state: web::Data<AppState>, Admin(p): Admin, id: web::Path<String>) -> Answer {
    call!(state, StatusCode::OK, |svc| svc.restore(&p, &id))
}

async fn list_groups(state: web::Data<AppState>, Admin(p): Admin, req: HttpRequest) -> Answer {
    let q = list_query(&req)?;
    call!(state, StatusCode::OK, |svc| svc.list_groups(&p, &q))
}

async fn deliveries(
    state: web::Data<AppState>,
    Admin(p): Admin,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let q = list_query(&req)?;
    let status = Params::from_request(&req)?
        .get("status")
        .map(str::to_string);
    call!(state, StatusCode::OK, |svc| svc.deliveries(
        &p,
        &id,
        status.as_deref(),
        &q
    ))
}
