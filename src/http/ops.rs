//! The operator's endpoints, outside the SCIM base path and without credentials: `/healthz`
//! (the process answers), `/readyz` (it can serve: database, migrations, delivery threads)
//! and `/metrics` (Prometheus text), on the main address or, with `--metrics-listen`, on a
//! separate one. None of them names a tenant unless `--metrics-per-tenant` says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::metrics;

/// How long readiness waits for a pooled connection and its query.
pub const READY_WITHIN: Duration = Duration::from_secs(1);

/// The operations settings of the HTTP surface.
#[derive(Debug, Default)]
pub struct Ops {
    /// Log request targets verbatim (`--log-unredacted`), for local debugging only.
    pub log_unredacted: bool,
    /// Serve `/metrics` on the main address (no `--metrics-listen`).
    pub metrics_here: bool,
    /// A readiness check is running: the next probe does not start another (a hung
    /// database would otherwise pile up blocking threads); it answers 503 at once.
    pub probing: Arc<AtomicBool>,
}

/// `/healthz` and `/readyz`, and `/metrics` when `metrics` (the main app without
/// `--metrics-listen`, or the metrics address).
pub fn routes(cfg: &mut web::ServiceConfig, metrics: bool) {
    cfg.service(super::resource_in("", "/healthz", [web::get().to(healthz)]))
        .service(super::resource_in("", "/readyz", [web::get().to(readyz)]));
    if metrics {
        cfg.service(super::resource_in("", "/metrics", [web::get().to(scrape)]));
    }
}

/// The app served on `--metrics-listen`: the probes and the metrics, nothing else.
pub fn management(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state);
        routes(cfg, true);
        cfg.default_service(web::to(super::not_found));
    }
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(body.to_string())
}

/// 200 while the process answers; touches nothing else.
async fn healthz() -> HttpResponse {
    json_answer(StatusCode::OK, json!({"status": "ok"}))
}

/// Clears the probing flag however the check ends.
struct Probing(Arc<AtomicBool>);

impl Drop for Probing {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// 200 when this instance can serve, else 503; the body names each check's outcome.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let unready = |why: &str| {
        json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unready", "checks": {"database": why}}),
        )
    };
    if state.ops.probing.swap(true, Ordering::SeqCst) {
        return unready("the previous check has not finished");
    }
    let guard = Probing(state.ops.probing.clone());
    let svc = state.service.clone();
    let check = web::block(move || {
        let _guard = guard;
        svc.readiness(READY_WITHIN)
    });
    // The checkout waits READY_WITHIN at most; a query that hangs is cut off here (its
    // thread finishes on its own, and no other check starts meanwhile).
    match actix_web::rt::time::timeout(READY_WITHIN + Duration::from_millis(250), check).await {
        Ok(Ok(r)) => {
            let status = if r.ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_answer(status, json!(r.body()))
        }
        Ok(Err(e)) => {
            log::error!("readiness check failed: {e}");
            unready("the check failed; the server log has the details")
        }
        Err(_) => unready("no answer within 1 s"),
    }
}

/// The Prometheus text exposition of every metric.
async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let svc = state.service.clone();
    match web::block(move || svc.scrape()).await {
        Ok(text) => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .insert_header(("Cache-Control", "no-store"))
            .body(text),
        Err(e) => actix_web::ResponseError::error_response(&super::ApiError::internal(&e)),
    }
}
