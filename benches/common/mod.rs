//! Shared benchmark plumbing: a real server on loopback (same wiring as `main`), HTTP
//! clients, a timed phase runner, and a fast loader that writes users through the storage
//! layer in large transactions (so a benchmark does not spend minutes on setup).

#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpServer};
use serde_json::{json, Value};

use scimitar::config::ServeArgs;
use scimitar::scim::compat::Compat;
use scimitar::scim::resource;
use scimitar::scim::schema::{Registry, Rtype};
use scimitar::scim::time::now_micros;
use scimitar::storage::pool::Pool;
use scimitar::storage::resources::{self, ResourceWrite};
use scimitar::storage::{feed, index, StorageError, TenantId};
use scimitar::{http, server};

pub const TOKEN: &str = "bench-token";

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The database URL: SCIMITAR_BENCH_DATABASE_URL, else a SQLite file in `dir`.
pub fn database_url(dir: &std::path::Path) -> String {
    std::env::var("SCIMITAR_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("bench.db").display()))
}

/// Starts the server on a free loopback port; returns its SCIM base URL and its pool.
pub fn start_server(url: &str) -> (String, Pool) {
    let (base, pool, _) = start_server_with(url, None);
    (base, pool)
}

/// `start_server`, plus webhook delivery workers (as `serve` starts them) when `webhooks`
/// names their settings; the workers run while the returned handle lives.
pub fn start_server_with(
    url: &str,
    webhooks: Option<scimitar::config::WebhookArgs>,
) -> (String, Pool, Option<scimitar::webhooks::Workers>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut args = ServeArgs::from_env();
    args.db.database_url = url.to_string();
    args.db.db_pool_size = 16;
    args.bootstrap_token = Some(TOKEN.into());
    args.listen = addr;
    args.base_url = None;
    args.max_page_size = 1000;
    // The destination policy is part of the state (subscriptions are checked against it).
    if let Some(w) = &webhooks {
        args.webhooks = w.clone();
    }
    let (state, _) = server::build_state(&args).expect("state");
    let workers = webhooks.map(|_| server::start_webhooks(&args, &state));
    // As `serve` runs: the statistics thread (stale tables analyzed, and on Postgres the
    // trigram sample taken at start).
    server::start_statistics(&args, &state);
    let state = web::Data::new(state);
    let pool = state.service.pool.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || http::app(state.clone()))
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("server")
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    (format!("http://{addr}/scim/v2"), pool, workers)
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(4)
        .build()
        .into()
}

pub fn auth() -> String {
    format!("Bearer {TOKEN}")
}

/// Latency figures of a phase.
pub struct Stats {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: usize,
    /// Every latency, in request order.
    pub latencies: Vec<Duration>,
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Runs `total` requests over `clients` threads; `f(agent, i)` performs request i and says
/// whether it succeeded.
pub fn phase(
    clients: usize,
    total: usize,
    f: impl Fn(&ureq::Agent, usize) -> bool + Send + Sync + 'static,
) -> Stats {
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            std::thread::spawn(move || {
                let a = agent();
                let mut lat = Vec::new();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    if !f(&a, i) {
                        failed += 1;
                    }
                    lat.push((i, t.elapsed()));
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    let mut failed = 0;
    for h in handles {
        let (l, f) = h.join().expect("client thread");
        all.extend(l);
        failed += f;
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by_key(|(i, _)| *i);
    let latencies: Vec<Duration> = all.into_iter().map(|(_, d)| d).collect();
    let mut sorted = latencies.clone();
    sorted.sort();
    Stats {
        per_sec: total as f64 / secs,
        p50_ms: percentile(&sorted, 0.50),
        p99_ms: percentile(&sorted, 0.99),
        failed,
        latencies,
    }
}

pub fn header() {
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>8}",
        "operation", "req/s", "p50 ms", "p99 ms", "errors"
    );
}

pub fn report(name: &str, s: &Stats) {
    println!(
        "{name:<40} {:>10.0} {:>10.2} {:>10.2} {:>8}",
        s.per_sec, s.p50_ms, s.p99_ms, s.failed
    );
}

/// The family names of `user_json`'s users: FAMILY + (i % 997).
pub const FAMILIES: &[&str] = &[
    "Smith", "Jensen", "Garcia", "Nguyen", "Okafor", "Muller", "Rossi", "Kowalski", "Tanaka",
    "Silva",
];

/// A realistic user: name, three emails, phone, title, enterprise extension.
pub fn user_json(i: usize, run: u32) -> Value {
    const DEPTS: &[&str] = &[
        "Finance",
        "Engineering",
        "Sales",
        "Support",
        "Legal",
        "Operations",
    ];
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("user{i}.{run}@example.com"),
        "externalId": format!("ext-{i}-{run}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("{}{}", FAMILIES[i % FAMILIES.len()], i % 997)},
        "displayName": format!("User {i}"),
        "title": if i.is_multiple_of(7) { "Finance Manager" } else { "Engineer" },
        "active": true,
        "emails": [
            {"value": format!("user{i}.{run}@example.com"), "type": "work", "primary": true},
            {"value": format!("u{i}.{run}@home.example"), "type": "home"},
            {"value": format!("u{i}.{run}@alias.example.org"), "type": "other"}
        ],
        "phoneNumbers": [{"value": format!("+1 555 {:07}", i), "type": "work"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": DEPTS[i % DEPTS.len()], "employeeNumber": format!("{i}"), "costCenter": format!("cc{}", i % 100)
        }
    })
}

/// Writes users `from..to` straight through the storage layer, 1,000 per transaction in
/// multi-row statements, with the same validation and indexing as POST /Users. Returns their
/// ids.
pub fn load_users(pool: &Pool, from: usize, to: usize, run: u32) -> Vec<String> {
    let registry = Registry::load().expect("registry");
    let compat = Compat::default();
    let mut ids = Vec::with_capacity(to - from);
    let mut conn = pool.get().expect("conn");
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        let now = now_micros();
        let prepared: Vec<(String, index::Indexed, String)> = (i..end)
            .map(|k| {
                let n = resource::normalize(&registry, Rtype::User, &user_json(k, run), &compat)
                    .expect("valid user");
                let ix = index::index(&registry, Rtype::User, &n.doc);
                (
                    uuid::Uuid::new_v4().to_string(),
                    ix,
                    serde_json::to_string(&n.doc).expect("json"),
                )
            })
            .collect();
        let writes: Vec<ResourceWrite<'_>> = prepared
            .iter()
            .map(|(_, ix, doc)| ResourceWrite {
                indexed: ix,
                doc,
                now,
            })
            .collect();
        let items: Vec<(&str, &ResourceWrite<'_>)> = prepared
            .iter()
            .zip(&writes)
            .map(|((id, _, _), w)| (id.as_str(), w))
            .collect();
        let tenant = TenantId::from("default");
        conn.write_tx(|db| {
            resources::insert_many(db, &tenant, Rtype::User, &items)?;
            // What the journal of a real create does: keep the tenant's user count.
            feed::adjust_resource_count(db, &tenant, Rtype::User, items.len() as i64)
        })
        .map_err(|e: StorageError| e)
        .expect("load batch");
        ids.extend(prepared.into_iter().map(|(id, _, _)| id));
        i = end;
    }
    ids
}
