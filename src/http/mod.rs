//! The HTTP surface (actix-web): routes, the front door, extraction and error mapping. A
//! handler extracts, calls one use case through the front door (`front::enter`: one
//! blocking hop, one connection, authentication first) and maps the result. The only module
//! that imports actix-web; it calls `provisioning` and `auth`, never `storage` (beyond the
//! error variants its error table names).
//!
//! - `scim`: `/scim/v2` resources, lists, searches and bulk; `discovery`: its RFC 7644 §4
//!   endpoints; `api`: `/api/v1`; `oauth`: `/oauth/token`; `console`: the admin console at
//!   `/admin` (embedded assets) and `session`: its sign-in and sign-out;
//! - `ops`: `/healthz`, `/readyz`, `/metrics`; `observe`: the outermost middleware (request
//!   ids, spans, the access log with `redact`ed targets, request metrics);
//! - `front`: the front door (bearer credentials and console sessions); `extract`: bodies
//!   and query parameters; `error`: every error to its status, in one table; `ratelimit`:
//!   per-credential token buckets.

pub mod admission;
pub mod api;
pub mod console;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod front;
pub mod oauth;
pub mod observe;
pub mod openapi;
pub mod ops;
pub mod ratelimit;
pub mod redact;
pub mod scim;
pub mod session;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{middleware, web, App, HttpRequest, HttpResponse, Resource, Route};

use crate::provisioning::Service;

pub use error::{ApiError, SCIM_JSON};

/// What every request shares.
pub struct AppState {
    pub service: Service,
    /// SHA-256 of `SCIMITAR_BOOTSTRAP_TOKEN`, when set.
    pub bootstrap_hash: Option<String>,
    pub max_body_bytes: usize,
    /// Per-credential request rate limit (`--rate-limit`), when on.
    pub rate_limiter: Option<std::sync::Arc<ratelimit::RateLimiter>>,
    /// The admin console's session cookie: its name and flags.
    pub session_cookies: front::SessionCookies,
    /// Who may sign in to the admin console, how often.
    pub sign_in: session::SignInGuard,
    /// How many requests of one tenant run at once (`--tenant-max-concurrency`).
    pub admission: std::sync::Arc<admission::Admission>,
    /// Logging and metrics settings, and the readiness probe's state.
    pub ops: ops::Ops,
}

/// The application: every route (`configure`) behind the `observe` middleware. `main`, the
/// tests and the benches all serve this.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(middleware::from_fn(observe::observe))
        .configure(configure(state))
}

/// The routes. `main` and the tests both build the app with this.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let scim = web::scope(SCIM)
            .service(resource(
                "/ServiceProviderConfig",
                [web::get().to(discovery::service_provider_config)],
            ))
            .service(resource(
                "/{kind:ResourceTypes|Schemas}",
                [web::get().to(discovery::list)],
            ))
            .service(resource(
                "/{kind:ResourceTypes|Schemas}/{id}",
                [web::get().to(discovery::get)],
            ))
            .service(resource("/Bulk", [web::post().to(scim::bulk)]))
            .service(resource("/.search", [web::post().to(scim::search)]))
            .service(resource(
                "/{rtype:Users|Groups}/.search",
                [web::post().to(scim::search)],
            ))
            .service(resource(
                "/{rtype:Users|Groups}",
                [web::get().to(scim::list), web::post().to(scim::create)],
            ))
            .service(resource(
                "/{rtype:Users|Groups}/{id}",
                [
                    web::get().to(scim::get),
                    web::put().to(scim::change),
                    web::patch().to(scim::change),
                    web::delete().to(scim::delete),
                ],
            ));
        let metrics_here = state.ops.metrics_here;
        cfg.app_data(state)
            .configure(|cfg| ops::routes(cfg, metrics_here))
            .service(resource_in(
                "",
                "/oauth/token",
                [web::post().to(oauth::token)],
            ))
            .service(web::scope("/api/v1").configure(api::configure))
            .service(console::scope())
            .service(scim)
            .default_service(web::to(not_found));
    }
}

/// The SCIM endpoints' scope.
const SCIM: &str = "/scim/v2";

/// A path of the SCIM scope and the methods it answers; any other method is 405.
fn resource<const N: usize>(path: &str, routes: [Route; N]) -> Resource {
    resource_in(SCIM, path, routes)
}

/// A path of the scope at `scope` ("" at the top) and the methods it answers; any other
/// method is 405. It carries its route label (`observe::Route`).
fn resource_in<const N: usize>(scope: &str, path: &str, routes: [Route; N]) -> Resource {
    routes
        .into_iter()
        .fold(web::resource(path), Resource::route)
        .app_data(observe::Route(observe::route_label(&format!(
            "{scope}{path}"
        ))))
        .default_service(web::to(method_not_allowed))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}
