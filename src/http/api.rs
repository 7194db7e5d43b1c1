//! The admin and product API (`/api/v1`, docs/api-v1.md): plain JSON, errors as
//! `{"status", "error", "detail"}`, credentials of scope `admin` only (a bearer token, or the
//! admin console's session cookie with its CSRF token: see `front`). Each handler calls one
//! use case of `provisioning::api` through the front door and answers its typed result.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::HttpMethod;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{Params, ScimBody};
use super::front::{enter, hop, Access, Caller};
use super::openapi::{self, named, Answer, Op, Query};
use super::AppState;
use crate::auth::Principal;
use crate::product::Policy;
use crate::provisioning::api::feed;
use crate::provisioning::api::feed::{EventFeed, TimelineEvent};
use crate::provisioning::api::policy::{
    Role, RoleInput, Rule, RuleInput, RulePreview, RulePreviewInput,
};
use crate::provisioning::api::review::{
    AccountAnswer, AccountDetail, Candidate, GroupApproval, GroupApproved, GroupSummary, Queue,
};
use crate::provisioning::api::webhooks::{
    Deliveries, Delivery, Webhook, WebhookCreated, WebhookInput,
};
use crate::provisioning::api::{page_limit, ListParams};
use crate::provisioning::{Result as UseCase, Service};
use crate::scim::error::ScimError;
use crate::storage::conn::Conn;

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

/// Every error of this API: `{"status", "error", "detail"}`. A failed request changes nothing.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The HTTP status.
    #[schema(examples(404))]
    pub status: u16,
    pub error: ErrorCode,
    #[schema(examples("account 3f2... not found"))]
    pub detail: String,
}

/// bad_request (400), unauthorized (401), forbidden (403), not_found (404; also an unknown
/// path or a method its path does not support), conflict (409), payload_too_large (413),
/// unsupported_media_type (415), too_many_requests (429), internal (500), unavailable (503).
/// This API never answers 405 or 412 (it takes no If-Match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ErrorCode {
    fn of(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::Conflict,
            412 => ErrorCode::PreconditionFailed,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            429 => ErrorCode::TooManyRequests,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
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
        let body = ErrorBody {
            status: e.status.as_u16(),
            error: ErrorCode::of(e.status),
            detail: e.detail.clone(),
        };
        resp.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

/// The caller: a bearer credential, or the admin console's session cookie (checked with its
/// CSRF token in the front door). `/api/v1` answers their absence in its own error shape.
pub struct Admin(Caller);

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Admin, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Caller::of_api(req).map(Admin).map_err(AdminError))
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

type Reply = Result<HttpResponse, AdminError>;

fn json_answer(status: StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(text)
}

fn ok<T: Serialize>(status: StatusCode, v: &T) -> Reply {
    let text = serde_json::to_string(v).map_err(|e| AdminError(ApiError::internal(&e)))?;
    Ok(json_answer(status, text))
}

/// Runs one use case for an admin caller (see `front::enter`) and answers its result as JSON.
async fn call<T, F>(state: &web::Data<AppState>, admin: Admin, status: StatusCode, f: F) -> Reply
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Service, &mut Conn, &Principal) -> UseCase<T> + Send + 'static,
{
    let v = enter(state, admin.0, Access::Admin, f).await?;
    ok(status, &v)
}

/// The query of a paged list (checked after authentication, inside the use case's hop).
fn list_params(req: &HttpRequest) -> Result<ListParams, ScimError> {
    let params = Params::from_request(req)?;
    Ok(ListParams {
        state: params.text("state"),
        role: params.text("role"),
        group: params.text("group"),
        filter: params.text("filter"),
        status: params.text("status"),
        cursor: params.text("cursor"),
        limit: params.int("limit")?,
    })
}

/// A route under `/api/v1`: how it is served, and what the API description says of it.
pub struct Route {
    pub method: HttpMethod,
    /// Under `/api/v1`, in the syntax actix-web and OpenAPI share (`/roles/{id}`).
    pub path: &'static str,
    serve: fn(actix_web::Route) -> actix_web::Route,
    pub op: Op,
}

fn route(
    method: HttpMethod,
    path: &'static str,
    serve: fn(actix_web::Route) -> actix_web::Route,
    op: Op,
) -> Route {
    Route {
        method,
        path,
        serve,
        op,
    }
}

const ACCOUNT_QUERY: &[Query] = &[
    Query::State,
    Query::Role,
    Query::Group,
    Query::Filter,
    Query::Limit,
    Query::Cursor,
];
const QUEUE_QUERY: &[Query] = &[
    Query::Role,
    Query::Group,
    Query::Filter,
    Query::Limit,
    Query::Cursor,
];
const PAGE_QUERY: &[Query] = &[Query::Limit, Query::Cursor];

fn json(status: u16, description: &'static str, schema: openapi::Named) -> Answer {
    Answer::Json(status, description, schema)
}

fn list(
    name: &'static str,
    item: openapi::Named,
    description: &'static str,
    paged: bool,
) -> Answer {
    Answer::List {
        name,
        item,
        description,
        paged,
    }
}

/// Every route of `/api/v1` (but its own description, `openapi.json`).
pub fn routes() -> Vec<Route> {
    use HttpMethod::{Delete, Get, Post, Put};
    let account = || json(200, "The account.", named::<AccountAnswer>());
    let accounts = || {
        list(
            "AccountList",
            named::<AccountAnswer>(),
            "A page of accounts with their profiles, in account id order.",
            true,
        )
    };
    let role = |status| json(status, "The role.", named::<Role>());
    let rule = |status| json(status, "The rule.", named::<Rule>());
    vec![
        route(Get, "/policy", |r| r.to(plain(Service::get_policy)), Op::new("getPolicy", "policy", "The tenant's policy")
            .answer(json(200, "The policy.", named::<Policy>()))),
        route(Put, "/policy", |r| r.to(with_body(StatusCode::OK, Service::put_policy)), Op::new("putPolicy", "policy", "Set the tenant's policy (both fields required)")
            .body(named::<Policy>())
            .answer(json(200, "The policy.", named::<Policy>()))),
        route(Get, "/roles", |r| r.to(plain(Service::list_all::<Role>)), Op::new("listRoles", "roles", "List roles")
            .about("Every role of the tenant in one response: `nextCursor` is always null. The list takes no query parameters (`limit` and `cursor` are ignored).")
            .answer(list("RoleList", named::<Role>(), "Every one of the tenant's roles, in one response (not paged).", false))),
        route(Post, "/roles", |r| r.to(with_body(StatusCode::CREATED, Service::create_role)), Op::new("createRole", "roles", "Create a role")
            .about("409 when the name is taken; 400 when an entitlement key would get another type than it has in another role.")
            .body(named::<RoleInput>()).answer(role(201)).errors(&[409])),
        route(Get, "/roles/{id}", |r| r.to(by_id(Service::get_one::<Role>)), Op::new("getRole", "roles", "One role")
            .of("Role id.").answer(role(200))),
        route(Put, "/roles/{id}", |r| r.to(by_id_with_body(Service::replace_role)), Op::new("replaceRole", "roles", "Replace a role's name and entitlements; accounts recomputed")
            .of("Role id.").body(named::<RoleInput>()).answer(role(200)).errors(&[409])),
        route(Delete, "/roles/{id}", |r| r.to(deleting(Service::delete_role)), Op::new("deleteRole", "roles", "Delete a role and its rules; accounts recomputed")
            .of("Role id.")),
        route(Get, "/rules", |r| r.to(plain(Service::list_all::<Rule>)), Op::new("listRules", "rules", "List rules")
            .about("Every rule of the tenant in one response: `nextCursor` is always null. The list takes no query parameters (`limit` and `cursor` are ignored).")
            .answer(list("RuleList", named::<Rule>(), "Every one of the tenant's rules, in one response (not paged).", false))),
        route(Post, "/rules", |r| r.to(with_body(StatusCode::CREATED, Service::create_rule)), Op::new("createRule", "rules", "Create a rule; accounts recomputed")
            .about("400 on a bad filter (the detail names the position); 404 on an unknown role or group.")
            .body(named::<RuleInput>()).answer(rule(201)).errors(&[404])),
        route(Post, "/rules/preview", |r| r.to(with_body(StatusCode::OK, Service::preview_rule)), Op::new("previewRule", "rules", "How many accounts a rule would match, before saving it")
            .about("Writes nothing. An invalid filter is an answer (`valid: false`, the parser's message and position), not an error; 404 on an unknown group.")
            .body(named::<RulePreviewInput>()).answer(json(200, "The preview.", named::<RulePreview>())).errors(&[404])),
        route(Get, "/rules/{id}", |r| r.to(by_id(Service::get_one::<Rule>)), Op::new("getRule", "rules", "One rule")
            .of("Rule id.").answer(rule(200))),
        route(Put, "/rules/{id}", |r| r.to(by_id_with_body(Service::replace_rule)), Op::new("replaceRule", "rules", "Replace a rule; accounts recomputed")
            .of("Rule id.").body(named::<RuleInput>()).answer(rule(200))),
        route(Delete, "/rules/{id}", |r| r.to(deleting(Service::delete_rule)), Op::new("deleteRule", "rules", "Delete a rule; accounts recomputed")
            .of("Rule id.")),
        route(Get, "/candidates", |r| r.to(listing(Service::list_candidates)), Op::new("listCandidates", "candidates", "Accounts in state `pending`")
            .about("Paged, in account id order; `role`, `group` and `filter` narrow it as for accounts (404 on an unknown role or group). Each candidate carries `profile` and `wouldGet`.")
            .query(QUEUE_QUERY)
            .answer(list("CandidateList", named::<Candidate>(), "A page of candidates, in account id order.", true)).errors(&[404])),
        route(Post, "/candidates/approve", |r| r.to(with_body(StatusCode::OK, Service::approve_group)), Op::new("approveGroup", "candidates", "Approve every pending member of a group, all or nothing")
            .about("404 on an unknown group.")
            .body(named::<GroupApproval>()).answer(json(200, "The approved accounts.", named::<GroupApproved>())).errors(&[404])),
        route(Post, "/candidates/{id}/approve", |r| r.to(by_id(Service::approve)), Op::new("approveCandidate", "candidates", "Approve: pending → active with its roles")
            .about("409 when the account is not pending.")
            .of("Account id.").answer(account()).errors(&[409])),
        route(Post, "/candidates/{id}/reject", |r| r.to(by_id(Service::reject)), Op::new("rejectCandidate", "candidates", "Reject: pending → removed")
            .about("409 when the account is not pending.")
            .of("Account id.").answer(account()).errors(&[409])),
        route(Get, "/removals", |r| r.to(listing(|s, c, p, q| s.list_accounts(c, p, Queue::Removals, q))), Op::new("listRemovals", "removals", "Accounts flagged for removal")
            .about("In account id order; `removalPending.since` gives each flag's age. `state`, `role` and `group` narrow it as for accounts.")
            .query(ACCOUNT_QUERY).answer(accounts()).errors(&[404])),
        route(Post, "/removals/{id}/confirm", |r| r.to(by_id(Service::confirm_removal)), Op::new("confirmRemoval", "removals", "Apply the flagged removal")
            .about("Ends in `suspended` (reason `deactivated`) or `removed` (reason `deleted`). 409 when the account is not flagged.")
            .of("Account id.").answer(account()).errors(&[409])),
        route(Post, "/removals/{id}/restore", |r| r.to(by_id(Service::restore)), Op::new("restoreAccount", "removals", "Keep a flagged account: clear the flag, keep its access")
            .about("Only for an account flagged because its user was deactivated; the account stays active with the roles its rules grant (`account.restored`). 409 when it is not flagged, or was flagged because its user was deleted.")
            .of("Account id.").answer(account()).errors(&[409])),
        route(Get, "/groups", |r| r.to(listing(Service::list_groups)), Op::new("listGroups", "accounts", "The tenant's SCIM groups, with their users and candidates")
            .about("Paged, in creation order.")
            .query(PAGE_QUERY)
            .answer(list("GroupList", named::<GroupSummary>(), "A page of groups, in creation order.", true))),
        route(Get, "/accounts", |r| r.to(listing(|s, c, p, q| s.list_accounts(c, p, Queue::All, q))), Op::new("listAccounts", "accounts", "List accounts")
            .about("Paged, in account id order. 400 on an unknown `state` or a bad `filter` (its detail names the position); 404 on an unknown `role` or `group`.")
            .query(ACCOUNT_QUERY).answer(accounts()).errors(&[404])),
        route(Get, "/accounts/{id}", |r| r.to(by_id(Service::get_account)), Op::new("getAccount", "accounts", "One account, with its SCIM user")
            .of("Account id.").answer(json(200, "The account.", named::<AccountDetail>()))),
        route(Get, "/accounts/{id}/timeline", |r| r.to(by_id_listing(Service::timeline)), Op::new("getTimeline", "accounts", "Every feed event of the account, oldest first")
            .about("Each event carries the credential whose request wrote it.")
            .of("Account id.").query(PAGE_QUERY)
            .answer(list("TimelineList", named::<TimelineEvent>(), "A page of events, each with its credential.", true))),
        route(Get, "/events", |r| r.to(events), Op::new("getEvents", "events", "The change feed")
            .about("`after=41` returns from seq 42 in order. With `wait` the request holds until an event arrives or the wait ends (then `items` is empty).")
            .query(&[Query::After, Query::Limit, Query::Wait])
            .answer(json(200, "Events after `after`, in order.", named::<EventFeed>()))),
        route(Get, "/webhooks", |r| r.to(plain(Service::list_all::<Webhook>)), Op::new("listWebhooks", "webhooks", "List subscriptions (no secrets)")
            .about("Every subscription of the tenant in one response: `nextCursor` is always null. The list takes no query parameters (`limit` and `cursor` are ignored).")
            .answer(list("WebhookList", named::<Webhook>(), "Every one of the tenant's subscriptions, in one response (not paged).", false))),
        route(Post, "/webhooks", |r| r.to(with_body(StatusCode::CREATED, Service::create_webhook)), Op::new("createWebhook", "webhooks", "Subscribe a URL to event types")
            .about("400 when the URL is refused by the server's destination policy (`--webhook-allowed-hosts`: public addresses only by default), is not http(s), or carries credentials; the `detail` names the reason. 409 when the tenant has `--webhook-max-subscriptions` subscriptions already. The URL is stored normalised.")
            .body(named::<WebhookInput>())
            .answer(json(201, "The subscription with its `secret` (shown once).", named::<WebhookCreated>())).errors(&[409])),
        route(Get, "/webhooks/{id}", |r| r.to(by_id(Service::get_one::<Webhook>)), Op::new("getWebhook", "webhooks", "One subscription")
            .of("Webhook id.").answer(json(200, "The subscription.", named::<Webhook>()))),
        route(Delete, "/webhooks/{id}", |r| r.to(deleting(Service::delete_webhook)), Op::new("deleteWebhook", "webhooks", "Delete a subscription and its queued deliveries")
            .of("Webhook id.")),
        route(Get, "/webhooks/{id}/deliveries", |r| r.to(by_id_listing(|s, c, p, id, q| s.deliveries(c, p, id, Deliveries::Recent, q))), Op::new("listDeliveries", "webhooks", "A subscription's deliveries, newest first")
            .about("Of any status, or of `status`; paged.")
            .of("Webhook id.").query(&[Query::Status, Query::Limit, Query::Cursor])
            .answer(list("DeliveryList", named::<Delivery>(), "A page of Delivery values.", true))),
        route(Get, "/webhooks/{id}/dead-letters", |r| r.to(by_id_listing(|s, c, p, id, q| s.deliveries(c, p, id, Deliveries::DeadLetters, q))), Op::new("listDeadLetters", "webhooks", "Deliveries that ran out of retries")
            .about("Paged, in feed order.")
            .of("Webhook id.").query(PAGE_QUERY)
            .answer(list("DeliveryList", named::<Delivery>(), "A page of Delivery values.", true))),
        route(Post, "/dead-letters/{id}/replay", |r| r.to(by_id(Service::replay)), Op::new("replayDeadLetter", "webhooks", "Queue a dead letter again (attempts reset)")
            .about("409 when the delivery is not dead.")
            .of("Delivery id.").answer(json(200, "The delivery.", named::<Delivery>())).errors(&[409])),
    ]
}

/// Serves the routes under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi));
    for r in routes() {
        let method = match r.method {
            HttpMethod::Get => actix_web::http::Method::GET,
            HttpMethod::Post => actix_web::http::Method::POST,
            HttpMethod::Put => actix_web::http::Method::PUT,
            _ => actix_web::http::Method::DELETE,
        };
        cfg.route(r.path, (r.serve)(web::method(method)));
    }
    cfg.default_service(web::to(unknown));
}

async fn unknown(req: HttpRequest) -> Reply {
    Err(AdminError(ApiError::not_found(format!(
        "no such endpoint: {} {} (see /api/v1/openapi.json)",
        req.method(),
        req.path()
    ))))
}

async fn openapi() -> HttpResponse {
    json_answer(StatusCode::OK, openapi::json().to_string())
}

// The handlers, by what they take from the request besides the caller: each runs one use
// case (a `Service` method) through the front door and answers its result as JSON.

/// The use case of a route, by what it takes from the request.
type Plain<T> = fn(&Service, &mut Conn, &Principal) -> UseCase<T>;
type ById<T> = fn(&Service, &mut Conn, &Principal, &str) -> UseCase<T>;
type WithBody<T> = fn(&Service, &mut Conn, &Principal, Value) -> UseCase<T>;
type ByIdWithBody<T> = fn(&Service, &mut Conn, &Principal, &str, Value) -> UseCase<T>;
type Listing<T> = fn(&Service, &mut Conn, &Principal, &ListParams) -> UseCase<T>;
type ByIdListing<T> = fn(&Service, &mut Conn, &Principal, &str, &ListParams) -> UseCase<T>;

fn plain<T: Serialize + Send + 'static>(
    f: Plain<T>,
) -> impl Handler<(web::Data<AppState>, Admin), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin| async move { call(&state, a, StatusCode::OK, f).await }
}

fn by_id<T: Serialize + Send + 'static>(
    f: ById<T>,
) -> impl Handler<(web::Data<AppState>, Admin, web::Path<String>), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin, id: web::Path<String>| async move {
        call(&state, a, StatusCode::OK, move |s, c, p| f(s, c, p, &id)).await
    }
}

fn with_body<T: Serialize + Send + 'static>(
    status: StatusCode,
    f: WithBody<T>,
) -> impl Handler<(web::Data<AppState>, Admin, Body), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin, Body(b): Body| async move {
        call(&state, a, status, move |s, c, p| f(s, c, p, b)).await
    }
}

fn by_id_with_body<T: Serialize + Send + 'static>(
    f: ByIdWithBody<T>,
) -> impl Handler<(web::Data<AppState>, Admin, web::Path<String>, Body), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin, id: web::Path<String>, Body(b): Body| async move {
        call(&state, a, StatusCode::OK, move |s, c, p| f(s, c, p, &id, b)).await
    }
}

/// A deletion: 204, no body.
fn deleting(
    f: ById<()>,
) -> impl Handler<(web::Data<AppState>, Admin, web::Path<String>), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin, id: web::Path<String>| async move {
        enter(&state, a.0, Access::Admin, move |s, c, p| f(s, c, p, &id)).await?;
        Ok(HttpResponse::NoContent().finish())
    }
}

fn listing<T: Serialize + Send + 'static>(
    f: Listing<T>,
) -> impl Handler<(web::Data<AppState>, Admin, HttpRequest), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin, req: HttpRequest| {
        let q = list_params(&req);
        async move { call(&state, a, StatusCode::OK, move |s, c, p| f(s, c, p, &q?)).await }
    }
}

fn by_id_listing<T: Serialize + Send + 'static>(
    f: ByIdListing<T>,
) -> impl Handler<(web::Data<AppState>, Admin, web::Path<String>, HttpRequest), Output = Reply> {
    move |state: web::Data<AppState>, a: Admin, id: web::Path<String>, req: HttpRequest| {
        let q = list_params(&req);
        async move {
            call(&state, a, StatusCode::OK, move |s, c, p| {
                f(s, c, p, &id, &q?)
            })
            .await
        }
    }
}

/// `GET /events?after=&limit=&wait=`: the feed in order; with `wait`, held until an event
/// arrives. This process's commits wake it at once; other instances' within a second.
async fn events(state: web::Data<AppState>, a: Admin, req: HttpRequest) -> Reply {
    let params = Params::from_request(&req);
    // Registered before the first look, so a commit between a look and the wait still wakes;
    // on the tenant's own channel, so other tenants' commits do not.
    let (p, after, limit, wait, mut feed, channel, mut notified) =
        enter(&state, a.0, Access::Admin, move |s, c, p| {
            let params = params?;
            let after = feed::check_after(params.int("after")?)?;
            let limit = page_limit(params.int("limit")?)?;
            let wait = feed::check_wait(params.int("wait")?)?;
            let channel = s.signal.channel(&p.tenant);
            let mut notified = Box::pin(channel.clone().notified_owned());
            notified.as_mut().enable();
            let feed = s.events(c, p, after, limit)?;
            Ok((p.clone(), after, limit, wait, feed, channel, notified))
        })
        .await?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    // Counted in `scimitar_feed_long_poll_waiters` until it answers.
    let _waiting = (wait > 0 && feed.items.is_empty()).then(|| state.service.metrics.waiting());
    loop {
        let now = Instant::now();
        if !feed.items.is_empty() || now >= deadline {
            return ok(StatusCode::OK, &feed);
        }
        let nap = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(nap, notified.as_mut()).await;
        notified = Box::pin(channel.clone().notified_owned());
        notified.as_mut().enable();
        let p = p.clone();
        feed = hop(&state, move |s, c| Ok(s.events(c, &p, after, limit)?)).await?;
    }
}
