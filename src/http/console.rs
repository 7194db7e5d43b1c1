//! The admin console (issue 17) at `/admin`: a small single-page app over `/api/v1`, its
//! assets embedded in the binary and served under a strict Content-Security-Policy, and the
//! session endpoints (`session`) under the same headers. The console is a client of the same
//! `/api/v1` every integration uses; its session cookie is checked by the front door
//! (`front`). Must not depend on diesel.

use std::sync::OnceLock;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};

use super::api::AdminError;
use super::error::ApiError;
use super::session;

/// The policy every console response carries: nothing from another origin, no inline script
/// or style, no framing, no `<base>`, forms and fetches to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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
                .route(web::post().to(session::sign_in))
                .route(web::get().to(session::current))
                .route(web::delete().to(session::sign_out))
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
}
