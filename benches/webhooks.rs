//! From a SCIM deactivation to the webhook on loopback: p50/p99 over N deactivations, and
//! the SCIM request latency of deactivations with and without a webhook subscription.
//!
//!   cargo bench --bench webhooks
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench webhooks
//!
//! SCIMITAR_BENCH_DEACTIVATIONS (default 10000) per phase, SCIMITAR_BENCH_CLIENTS (default 4),
//! SCIMITAR_BENCH_WEBHOOK_WORKERS (default 2), SCIMITAR_BENCH_RATE (deactivations per second
//! of the paced run, default 200).
//!
//! Two runs with the webhook: flat out (the clients send as fast as the server answers, so
//! the 2 cores are saturated and the delivery latency is mostly queueing), and paced at a
//! steady rate below capacity, which is what an IdP's pushes look like.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use common::*;
use scimitar::auth::{self, Scope};
use scimitar::config::WebhookArgs;
use scimitar::scim::time::now_micros;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A receiver on loopback that notes when each account's `account.suspended` arrives.
fn start_receiver(arrivals: Arrivals) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let arrivals = arrivals.clone();
                App::new().default_service(web::to(move |body: web::Bytes| {
                    let arrivals = arrivals.clone();
                    async move {
                        let at = Instant::now();
                        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                            if let Some(id) = v["data"]["account"]["scimId"].as_str() {
                                if let Ok(mut a) = arrivals.lock() {
                                    a.entry(id.to_string()).or_insert(at);
                                }
                            }
                        }
                        HttpResponse::Ok().finish()
                    }
                }))
            })
            .workers(1)
            .listen(listener)
            .expect("listen")
            .run()
            .await
            .expect("receiver")
        })
    });
    format!("http://{addr}/hook")
}

/// Creates `n` users through /Bulk (1,000 per request); returns their ids.
fn create_users(base: &str, n: usize, offset: usize, run: u32) -> Vec<String> {
    let ag = agent();
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(1000) {
        let ops: Vec<Value> = (start..(start + 1000).min(n))
            .map(|i| {
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                       "data": user_json(offset + i, run)})
            })
            .collect();
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                          "Operations": ops});
        let mut r = ag
            .post(format!("{base}/Bulk"))
            .header("Authorization", &auth())
            .header("Content-Type", "application/scim+json")
            .send(body.to_string())
            .expect("bulk");
        assert_eq!(r.status(), 200, "bulk create");
        let v: Value = r.body_mut().read_json().expect("bulk response");
        for op in v["Operations"].as_array().expect("operations") {
            let loc = op["location"].as_str().expect("location");
            ids.push(loc.rsplit('/').next().unwrap_or_default().to_string());
        }
    }
    ids
}

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

/// Deactivates every user of `ids` (Okta's PATCH), `clients` at a time, flat out or at
/// `rate` per second; returns the SCIM latencies (as Stats) and when each request was sent.
fn deactivate(
    base: &str,
    ids: Arc<Vec<String>>,
    clients: usize,
    rate: Option<f64>,
) -> (Stats, Sent) {
    let sent: Sent = Arc::default();
    let scim: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let (b, s, l) = (base.to_string(), sent.clone(), scim.clone());
    let n = ids.len();
    let start = Instant::now();
    let mut stats = phase(clients, n, move |ag, i| {
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / r);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let id = &ids[i];
        let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#;
        let t = Instant::now();
        if let Ok(mut m) = s.lock() {
            m.insert(id.clone(), t);
        }
        let ok = matches!(
            ag.patch(format!("{b}/Users/{id}"))
                .header("Authorization", &auth())
                .header("Content-Type", "application/scim+json")
                .send(body),
            Ok(r) if r.status() == 200
        );
        if let Ok(mut l) = l.lock() {
            l.push(t.elapsed());
        }
        ok
    });
    let mut lat = scim.lock().expect("latencies").clone();
    lat.sort();
    stats.p50_ms = percentile(&lat, 0.50);
    stats.p99_ms = percentile(&lat, 0.99);
    (stats, sent)
}

/// Waits for every deactivation of `ids` to reach the receiver; prints the latencies.
fn delivered(label: &str, ids: &[String], sent: &Sent, arrivals: &Arrivals) {
    let n = ids.len();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got = {
            let a = arrivals.lock().expect("arrivals");
            ids.iter().filter(|id| a.contains_key(*id)).count()
        };
        if got >= n || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let arrivals = arrivals.lock().expect("arrivals");
    let sent = sent.lock().expect("sent");
    let mut e2e: Vec<Duration> = ids
        .iter()
        .filter_map(|id| Some(arrivals.get(id)?.duration_since(*sent.get(id)?)))
        .collect();
    e2e.sort();
    println!(
        "{label}: {} of {n} webhooks arrived; deactivation → webhook p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        e2e.len(),
        percentile(&e2e, 0.50),
        percentile(&e2e, 0.99),
        e2e.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let n = env_usize("SCIMITAR_BENCH_DEACTIVATIONS", 10_000);
    let clients = env_usize("SCIMITAR_BENCH_CLIENTS", 4);
    let workers = env_usize("SCIMITAR_BENCH_WEBHOOK_WORKERS", 2);
    let rate = env_usize("SCIMITAR_BENCH_RATE", 200) as f64;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(dir.path());
    let backend = url.split("://").next().unwrap_or("?").to_string();
    let hooks = WebhookArgs {
        webhook_concurrency: workers,
        webhook_timeout_ms: 10_000,
        webhook_backoff_ms: 100,
        webhook_max_backoff_ms: 5_000,
        webhook_retry_horizon_secs: 3600,
        webhook_poll_ms: 500,
        // The receivers are on loopback.
        webhook_allowed_hosts: "loopback".into(),
        ..scimitar::config::ServeArgs::from_env().webhooks
    };
    let (base, pool, _workers) = start_server_with(&url, Some(hooks));
    let run: u32 = rand::random();
    println!(
        "scimitar webhook benchmark: backend {backend}, {n} deactivations per phase, {clients} clients, {workers} delivery workers"
    );
    let t = Instant::now();
    let without: Arc<Vec<String>> = Arc::new(create_users(&base, n, 0, run));
    let flat: Arc<Vec<String>> = Arc::new(create_users(&base, n, n, run));
    let paced: Arc<Vec<String>> = Arc::new(create_users(&base, n, 2 * n, run));
    // Fresh planner statistics, as autovacuum's autoanalyze keeps them on any default
    // Postgres (the project machine's runs with autovacuum off).
    scimitar::storage::conn::analyze(&mut pool.get().expect("conn").db()).expect("analyze");
    println!(
        "loaded {} users in {:.1} s",
        3 * n,
        t.elapsed().as_secs_f64()
    );
    header();

    let (s, _) = deactivate(&base, without, clients, None);
    report("PATCH active=false, no webhook", &s);

    // Subscribe (admin API), then the same again with deliveries.
    let admin = {
        let mut conn = pool.get().expect("conn");
        conn.write_tx(|db| {
            auth::create_token(
                db,
                &"default".into(),
                Some("bench"),
                Scope::Admin,
                None,
                now_micros(),
            )
        })
        .expect("admin token")
        .1
    };
    let arrivals: Arrivals = Arc::default();
    let hook_url = start_receiver(arrivals.clone());
    let api = base.replace("/scim/v2", "/api/v1");
    let r = agent()
        .post(format!("{api}/webhooks"))
        .header("Authorization", &format!("Bearer {admin}"))
        .header("Content-Type", "application/json")
        .send(json!({"url": hook_url, "events": ["account.suspended"]}).to_string())
        .expect("subscribe");
    assert_eq!(r.status(), 201, "webhook subscription");

    let (s, sent) = deactivate(&base, flat.clone(), clients, None);
    report("PATCH active=false, webhook subscribed", &s);
    delivered("flat out", &flat, &sent, &arrivals);
    let (s, sent) = deactivate(&base, paced.clone(), clients, Some(rate));
    report(&format!("PATCH active=false, webhook, {rate}/s"), &s);
    delivered(&format!("paced at {rate}/s"), &paced, &sent, &arrivals);
}
