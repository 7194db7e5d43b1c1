//! The admin and product API (`/api/v1`, docs/api-v1.md): plain JSON, errors as
//! `{"status", "error", "detail"}`, credentials of scope `admin` only. Each handler calls one
//! use case of `provisioning::api` through the front door and answers its typed result.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Params, ScimBody};
use super::front::{again, enter, Access, Bearer};
use super::AppState;
use crate::auth::Principal;
use crate::provisioning::api::feed;
use crate::provisioning::api::review::Queue;
use crate::provisioning::api::{page_limit, ListParams};
use crate::provisioning::{Result as UseCase, Service};
use crate::scim::error::ScimError;
use crate::storage::conn::Conn;

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

/// The caller's bearer credential; `/api/v1` answers its absence in its own error shape.
pub struct Admin(Bearer);

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Admin, AdminError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        std::future::ready(
            Bearer::from_request(req, payload)
                .into_inner()
                .map(Admin)
                .map_err(AdminError),
        )
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

fn json_answer(status: StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(text)
}

fn ok<T: Serialize>(status: StatusCode, v: &T) -> Answer {
    let text = serde_json::to_string(v).map_err(|e| AdminError(ApiError::internal(&e)))?;
    Ok(json_answer(status, text))
}

/// Runs one use case for an admin caller (see `front::enter`) and answers its result as JSON.
async fn call<T, F>(state: &web::Data<AppState>, admin: Admin, status: StatusCode, f: F) -> Answer
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Service, &mut Conn, &Principal) -> UseCase<T> + Send + 'static,
{
    let v = enter(state, admin.0, Access::Admin, f).await?;
    ok(status, &v)
}

/// Runs one use case that answers nothing: 204.
async fn call_empty<F>(state: &web::Data<AppState>, admin: Admin, f: F) -> Answer
where
    F: FnOnce(&Service, &mut Conn, &Principal) -> UseCase<()> + Send + 'static,
{
    enter(state, admin.0, Access::Admin, f).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The query of a paged list (checked after authentication, inside the use case's hop).
fn list_params(req: &HttpRequest) -> Result<ListParams, ScimError> {
    let params = Params::from_request(req)?;
    Ok(ListParams {
        state: params.text("state"),
        role: params.text("role"),
        group: params.text("group"),
        cursor: params.text("cursor"),
        limit: params.int("limit")?,
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
        .route("/rules/{id}", web::get().to(get_rule))
        .route("/rules/{id}", web::put().to(replace_rule))
        .route("/rules/{id}", web::delete().to(delete_rule))
        .route("/candidates", web::get().to(candidates))
        .route("/candidates/approve", web::post().to(approve_group))
        .route("/candidates/{id}/approve", web::post().to(approve))
        .route("/candidates/{id}/reject", web::post().to(reject))
        .route("/removals", web::get().to(removals))
        .route("/removals/{id}/confirm", web::post().to(confirm_removal))
        .route("/accounts", web::get().to(list_accounts))
        .route("/accounts/{id}", web::get().to(get_account))
        .route("/accounts/{id}/timeline", web::get().to(timeline))
        .route("/events", web::get().to(events))
        .route("/webhooks", web::get().to(list_webhooks))
        .route("/webhooks", web::post().to(create_webhook))
        .route("/webhooks/{id}", web::get().to(get_webhook))
        .route("/webhooks/{id}", web::delete().to(delete_webhook))
        .route("/webhooks/{id}/dead-letters", web::get().to(dead_letters))
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
    json_answer(StatusCode::OK, OPENAPI.to_string())
}

async fn get_policy(state: web::Data<AppState>, a: Admin) -> Answer {
    call(&state, a, StatusCode::OK, |s, c, p| s.get_policy(c, p)).await
}

async fn put_policy(state: web::Data<AppState>, a: Admin, Body(b): Body) -> Answer {
    call(&state, a, StatusCode::OK, |s, c, p| s.put_policy(c, p, b)).await
}

async fn list_roles(state: web::Data<AppState>, a: Admin) -> Answer {
    call(&state, a, StatusCode::OK, |s, c, p| s.list_roles(c, p)).await
}

async fn create_role(state: web::Data<AppState>, a: Admin, Body(b): Body) -> Answer {
    call(&state, a, StatusCode::CREATED, |s, c, p| {
        s.create_role(c, p, b)
    })
    .await
}

async fn get_role(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.get_role(c, p, &id)
    })
    .await
}

async fn replace_role(
    state: web::Data<AppState>,
    a: Admin,
    id: web::Path<String>,
    Body(b): Body,
) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.replace_role(c, p, &id, b)
    })
    .await
}

async fn delete_role(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call_empty(&state, a, move |s, c, p| s.delete_role(c, p, &id)).await
}

async fn list_rules(state: web::Data<AppState>, a: Admin) -> Answer {
    call(&state, a, StatusCode::OK, |s, c, p| s.list_rules(c, p)).await
}

async fn create_rule(state: web::Data<AppState>, a: Admin, Body(b): Body) -> Answer {
    call(&state, a, StatusCode::CREATED, |s, c, p| {
        s.create_rule(c, p, b)
    })
    .await
}

async fn get_rule(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.get_rule(c, p, &id)
    })
    .await
}

async fn replace_rule(
    state: web::Data<AppState>,
    a: Admin,
    id: web::Path<String>,
    Body(b): Body,
) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.replace_rule(c, p, &id, b)
    })
    .await
}

async fn delete_rule(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call_empty(&state, a, move |s, c, p| s.delete_rule(c, p, &id)).await
}

/// `GET /accounts`, `/candidates`, `/removals`.
async fn accounts_in(
    state: web::Data<AppState>,
    a: Admin,
    req: HttpRequest,
    queue: Queue,
) -> Answer {
    let q = list_params(&req);
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.list_accounts(c, p, queue, &q?)
    })
    .await
}

async fn candidates(state: web::Data<AppState>, a: Admin, req: HttpRequest) -> Answer {
    accounts_in(state, a, req, Queue::Candidates).await
}

async fn removals(state: web::Data<AppState>, a: Admin, req: HttpRequest) -> Answer {
    accounts_in(state, a, req, Queue::Removals).await
}

async fn list_accounts(state: web::Data<AppState>, a: Admin, req: HttpRequest) -> Answer {
    accounts_in(state, a, req, Queue::All).await
}

async fn approve(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.approve(c, p, &id)
    })
    .await
}

async fn reject(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.reject(c, p, &id)
    })
    .await
}

async fn approve_group(state: web::Data<AppState>, a: Admin, Body(b): Body) -> Answer {
    call(&state, a, StatusCode::OK, |s, c, p| {
        s.approve_group(c, p, b)
    })
    .await
}

async fn confirm_removal(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.confirm_removal(c, p, &id)
    })
    .await
}

async fn get_account(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.get_account(c, p, &id)
    })
    .await
}

async fn timeline(
    state: web::Data<AppState>,
    a: Admin,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let q = list_params(&req);
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.timeline(c, p, &id, &q?)
    })
    .await
}

/// `GET /events?after=&limit=&wait=`: the feed in order; with `wait`, held until an event
/// arrives. This process's commits wake it at once; other instances' within a second.
async fn events(state: web::Data<AppState>, a: Admin, req: HttpRequest) -> Answer {
    let params = Params::from_request(&req);
    // Registered before the first look, so a commit between a look and the wait still wakes.
    let signal = state.service.signal.clone();
    let mut notified = Box::pin(signal.notified());
    notified.as_mut().enable();
    let (p, after, limit, wait, mut feed) = enter(&state, a.0, Access::Admin, move |s, c, p| {
        let params = params?;
        let after = feed::check_after(params.int("after")?)?;
        let limit = page_limit(params.int("limit")?)?;
        let wait = feed::check_wait(params.int("wait")?)?;
        let feed = s.events(c, p, after, limit)?;
        Ok((p.clone(), after, limit, wait, feed))
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let now = Instant::now();
        if !feed.items.is_empty() || now >= deadline {
            return ok(StatusCode::OK, &feed);
        }
        let nap = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(nap, notified.as_mut()).await;
        notified = Box::pin(signal.notified());
        notified.as_mut().enable();
        let p = p.clone();
        feed = again(&state, move |s, c| s.events(c, &p, after, limit)).await?;
    }
}

async fn list_webhooks(state: web::Data<AppState>, a: Admin) -> Answer {
    call(&state, a, StatusCode::OK, |s, c, p| s.list_webhooks(c, p)).await
}

async fn create_webhook(state: web::Data<AppState>, a: Admin, Body(b): Body) -> Answer {
    call(&state, a, StatusCode::CREATED, |s, c, p| {
        s.create_webhook(c, p, b)
    })
    .await
}

async fn get_webhook(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.get_webhook(c, p, &id)
    })
    .await
}

async fn delete_webhook(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call_empty(&state, a, move |s, c, p| s.delete_webhook(c, p, &id)).await
}

async fn dead_letters(
    state: web::Data<AppState>,
    a: Admin,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let q = list_params(&req);
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.dead_letters(c, p, &id, &q?)
    })
    .await
}

async fn replay(state: web::Data<AppState>, a: Admin, id: web::Path<String>) -> Answer {
    call(&state, a, StatusCode::OK, move |s, c, p| {
        s.replay(c, p, &id)
    })
    .await
}
