//! From a SCIM deactivation to the webhook on loopback: p50/p99 over N deactivations, and
//! the SCIM request latency of deactivations with and without a webhook subscription; then
//! fairness: tenant B's deactivation-to-webhook latency while tenant A's receiver is
//! healthy, and while it hangs (never accepts) with a backlog queued for it.
//!
//!   cargo bench --bench webhooks
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench webhooks
//!
//! SCIMITAR_BENCH_DEACTIVATIONS (default 10000) per phase, SCIMITAR_BENCH_CLIENTS (default 4),
//! SCIMITAR_BENCH_WEBHOOK_CONCURRENCY (default 16), SCIMITAR_BENCH_RATE (deactivations per
//! second of the paced run, default 200); for fairness SCIMITAR_BENCH_FAIRNESS_EVENTS
//! (tenant B's deactivations per phase, default 1000), SCIMITAR_BENCH_FAIRNESS_RATE (per
//! tenant, default 50/s) and SCIMITAR_BENCH_HANGING_BACKLOG (tenant A's deliveries queued
//! before the phase, default 1000). A quick check of the code:
//! SCIMITAR_BENCH_DEACTIVATIONS=50 SCIMITAR_BENCH_FAIRNESS_EVENTS=50 SCIMITAR_BENCH_HANGING_BACKLOG=100.
//!
//! Two runs with the webhook: flat out (the clients send as fast as the server answers, so
//! the 2 cores are saturated and the delivery latency is mostly queueing), and paced at a
//! steady rate below capacity, which is what an IdP's pushes look like. The fairness runs
//! are paced: A and B each deactivate at the fairness rate at the same time.

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
    start_receiver_at("/hook", arrivals)
}

fn start_receiver_at(path: &str, arrivals: Arrivals) -> String {
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
    format!("http://{addr}{path}")
}

/// Creates `n` users through /Bulk (1,000 per request) with the bench token; returns their
/// ids.
fn create_users(base: &str, n: usize, offset: usize, run: u32) -> Vec<String> {
    create_users_as(base, &auth(), n, offset, run)
}

/// `create_users` in the tenant of `bearer` (an `Authorization` value).
fn create_users_as(base: &str, bearer: &str, n: usize, offset: usize, run: u32) -> Vec<String> {
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
            .header("Authorization", bearer)
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
    deactivate_as(base, &auth(), ids, clients, rate)
}

/// `deactivate` in the tenant of `bearer`.
fn deactivate_as(
    base: &str,
    bearer: &str,
    ids: Arc<Vec<String>>,
    clients: usize,
    rate: Option<f64>,
) -> (Stats, Sent) {
    let sent: Sent = Arc::default();
    let scim: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let (b, s, l) = (base.to_string(), sent.clone(), scim.clone());
    let bearer = bearer.to_string();
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
                .header("Authorization", &bearer)
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
    let deadline = Instant::now() + Duration::from_secs(300);
    let n = ids.len();
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
    let workers = env_usize("SCIMITAR_BENCH_WEBHOOK_CONCURRENCY", 16);
    let rate = env_usize("SCIMITAR_BENCH_RATE", 200) as f64;
    let fair = Fairness {
        events: env_usize("SCIMITAR_BENCH_FAIRNESS_EVENTS", 1_000),
        rate: env_usize("SCIMITAR_BENCH_FAIRNESS_RATE", 50) as f64,
        backlog: env_usize("SCIMITAR_BENCH_HANGING_BACKLOG", 1_000),
    };
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
        "scimitar webhook benchmark: backend {backend}, {n} deactivations per phase, {clients} clients, {workers} attempts at once"
    );
    let t = Instant::now();
    let without: Arc<Vec<String>> = Arc::new(create_users(&base, n, 0, run));
    let flat: Arc<Vec<String>> = Arc::new(create_users(&base, n, n, run));
    let paced: Arc<Vec<String>> = Arc::new(create_users(&base, n, 2 * n, run));
    // The block counts' deltas folded, as the statistics thread does each round.
    scimitar::storage::search::blocks::compact_resource_blocks(&mut pool.get().expect("conn").db())
        .expect("fold block counts");
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

    fairness(&base, &pool, &fair, run);
}

/// The fairness phases' sizes.
struct Fairness {
    /// Tenant B's deactivations per phase (and tenant A's, alongside).
    events: usize,
    /// Deactivations per second, per tenant.
    rate: f64,
    /// Tenant A's deliveries queued for its hanging receiver before the phase.
    backlog: usize,
}

/// A tenant of its own: its SCIM bearer and its admin bearer.
fn bench_tenant(pool: &scimitar::storage::pool::Pool, name: &str) -> (String, String) {
    use scimitar::provisioning::tenancy as admin;
    let mut conn = pool.get().expect("conn");
    admin::create_tenant(&mut conn, name).expect("tenant");
    let mut token = |scope| {
        let (_, t, _) =
            admin::create_token(&mut conn, name, Some("bench"), scope, None).expect("token");
        format!("Bearer {t}")
    };
    (token(Scope::Write), token(Scope::Admin))
}

/// Subscribes the admin's tenant to `account.suspended` at `url`; returns the subscription.
fn subscribe(api: &str, admin: &str, url: &str) -> String {
    let mut r = agent()
        .post(format!("{api}/webhooks"))
        .header("Authorization", admin)
        .header("Content-Type", "application/json")
        .send(json!({"url": url, "events": ["account.suspended"]}).to_string())
        .expect("subscribe");
    assert_eq!(r.status(), 201, "webhook subscription");
    let v: Value = r.body_mut().read_json().expect("subscription");
    v["id"].as_str().expect("id").to_string()
}

/// Tenant B's deactivation → webhook latency, paced, while tenant A deactivates at the
/// same pace: first with A's receiver healthy, then with it hanging (a listener that never
/// accepts) and `backlog` of A's deliveries queued for it.
fn fairness(base: &str, pool: &scimitar::storage::pool::Pool, f: &Fairness, run: u32) {
    let api = base.replace("/scim/v2", "/api/v1");
    let (a_scim, a_admin) = bench_tenant(pool, &format!("fair-a-{run}"));
    let (b_scim, b_admin) = bench_tenant(pool, &format!("fair-b-{run}"));
    let a_users = create_users_as(base, &a_scim, 2 * f.events + f.backlog, 0, run);
    let b_users = create_users_as(base, &b_scim, 2 * f.events, 0, run);
    let b_arrivals: Arrivals = Arc::default();
    subscribe(&api, &b_admin, &start_receiver_at("/b", b_arrivals.clone()));
    let a_healthy = subscribe(&api, &a_admin, &start_receiver_at("/a", Arc::default()));
    println!(
        "fairness: tenants A and B each deactivating at {}/s, {} of B's per phase",
        f.rate, f.events
    );

    // Both receivers healthy.
    let run_both = |a_ids: Vec<String>, b_ids: Vec<String>| {
        let (base_a, a) = (base.to_string(), a_scim.clone());
        let (rate, a_ids) = (f.rate, Arc::new(a_ids));
        let side = std::thread::spawn(move || deactivate_as(&base_a, &a, a_ids, 1, Some(rate)));
        let b_ids = Arc::new(b_ids);
        let (_, sent) = deactivate_as(base, &b_scim, b_ids.clone(), 1, Some(f.rate));
        let _ = side.join();
        (b_ids, sent)
    };
    let (b_ids, sent) = run_both(a_users[..f.events].to_vec(), b_users[..f.events].to_vec());
    delivered("tenant B, A's receiver healthy", &b_ids, &sent, &b_arrivals);

    // A's receiver hangs: A's subscription now points at a listener that never accepts.
    let hang = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang_url = format!("http://{}/hangs", hang.local_addr().expect("addr"));
    let r = agent()
        .delete(format!("{api}/webhooks/{a_healthy}"))
        .header("Authorization", &a_admin)
        .call()
        .expect("unsubscribe");
    assert_eq!(r.status(), 204);
    subscribe(&api, &a_admin, &hang_url);
    let backlog = Arc::new(a_users[2 * f.events..].to_vec());
    deactivate_as(base, &a_scim, backlog, 4, None);
    let (b_ids, sent) = run_both(
        a_users[f.events..2 * f.events].to_vec(),
        b_users[f.events..].to_vec(),
    );
    delivered(
        &format!("tenant B, A's receiver hangs ({} queued)", f.backlog),
        &b_ids,
        &sent,
        &b_arrivals,
    );
    drop(hang);
}
