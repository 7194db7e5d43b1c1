//! Every request's observation, as the outermost middleware: its id (the client's
//! `X-Request-Id` when it is sane, else a new one; echoed in the response), a `request` span
//! the front door fills with the tenant and credential id once it knows them (never the
//! token), one access-log line when it ends (`scimitar::access`: method, route template,
//! `uri` with its query values redacted, status, latency, tenant, credential) and its
//! metrics (route template, method, status class; per tenant with `--metrics-per-tenant`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use super::{redact, AppState};

/// The request id's header, read and echoed.
pub const REQUEST_ID: &str = "x-request-id";

/// Who a request turned out to be: tenant and credential id.
type Who = Rc<RefCell<Option<(String, Option<String>)>>>;

tokio::task_local! {
    static WHO: Who;
}

/// Called by the front door once it knows the request's principal: recorded in the request's
/// span and log line, and its per-tenant metrics. Outside a request (a test calling a use
/// case directly) it does nothing.
pub fn identified(tenant: &str, credential: Option<&str>) {
    let _ = WHO.try_with(|w| {
        *w.borrow_mut() = Some((tenant.to_string(), credential.map(str::to_string)));
    });
    let span = tracing::Span::current();
    span.record("tenant", tenant);
    if let Some(c) = credential {
        span.record("credential", c);
    }
}

/// The client's request id when it is 1 to 128 of `A-Z a-z 0-9 - _ . : @ / + =`; anything
/// else (too long, spaces, control characters) is replaced by a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.' | ':' | '@' | '/' | '+' | '=')
                })
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string)
}

/// A route template as metrics and logs show it: each `{name}` or `{name:regex}` segment
/// as `:name` (`/scim/v2/{rtype:Users|Groups}/{id}` is `/scim/v2/:rtype/:id`).
pub fn route_label(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let inner = &rest[open + 1..];
        let close = inner.find('}').unwrap_or(inner.len());
        let name = inner[..close].split(':').next().unwrap_or_default();
        out.push(':');
        out.push_str(name);
        rest = inner.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// A resource's route label, as its own app data (`super::resource`): read once the request
/// was routed, so that the hot routes are not matched a second time against every route
/// template (`match_pattern` runs the router's regular expressions again: 3 % of a DELETE's
/// instructions under callgrind, more of a GET's).
pub struct Route(pub String);

/// The label of the route that served `req`: its resource's `Route`, else (a route built
/// without it) its template matched again; `unmatched` when no route took it.
fn route_of(req: &actix_web::HttpRequest) -> String {
    match req.app_data::<Route>() {
        Some(r) => r.0.clone(),
        None => req
            .match_pattern()
            .map_or_else(|| "unmatched".to_string(), |p| route_label(&p)),
    }
}

/// Probes and scrapes come every few seconds: their lines are debug-level when they succeed.
fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// The method as a metric label and log field: the standard ones by name, any other (a
/// client may send any token) as `OTHER`, so that clients cannot mint new series.
fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The middleware (`actix_web::middleware::from_fn(observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(req.headers());
    let method = method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let unredacted = state.as_ref().is_some_and(|s| s.ops.log_unredacted);
    let target = if unredacted {
        req.uri().to_string()
    } else {
        redact::target(req.path(), req.query_string())
    };
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %method,
        route = tracing::field::Empty,
        tenant = tracing::field::Empty,
        credential = tracing::field::Empty,
    );
    let who: Who = Rc::default();
    let result = WHO
        .scope(who.clone(), next.call(req).instrument(span.clone()))
        .await;
    // Known once routed (see `Route`); an error without a response has no request left.
    let (status, route) = match &result {
        Ok(r) => (r.status(), route_of(r.request())),
        Err(e) => (e.as_response_error().status_code(), "unmatched".to_string()),
    };
    span.record("route", route.as_str());
    let elapsed = started.elapsed();
    let (tenant, credential) = who.borrow().clone().unzip();
    let credential = credential.flatten();
    if let Some(s) = &state {
        s.service.metrics.observe_request(
            &route,
            method,
            status.as_u16(),
            tenant.as_deref(),
            elapsed,
        );
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    macro_rules! access {
        ($level:expr) => {
            tracing::event!(
                target: "scimitar::access",
                parent: None,
                $level,
                id = %id,
                peer = %peer,
                method = %method,
                route = %route,
                uri = %target,
                status = status.as_u16(),
                latency_ms = format_args!("{latency_ms:.1}"),
                tenant = tenant.as_deref().unwrap_or("-"),
                credential = credential.as_deref().unwrap_or("-"),
                "request"
            )
        };
    }
    if is_probe(&route) && status.is_success() {
        access!(tracing::Level::DEBUG);
    } else {
        access!(tracing::Level::INFO);
    }
    let mut res = result?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static(REQUEST_ID),
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn route_templates_become_labels() {
        assert_eq!(
            route_label("/scim/v2/{rtype:Users|Groups}/{id}"),
            "/scim/v2/:rtype/:id"
        );
        assert_eq!(route_label("/healthz"), "/healthz");
        assert_eq!(route_label("/a/{broken"), "/a/:broken");
    }

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced() {
        assert_eq!(request_id(&with("abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129), "quo\"te"] {
            let got = request_id(&with(bad));
            assert_ne!(got, bad);
            assert_eq!(got.len(), 32, "a new id: {got}");
        }
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }
}
