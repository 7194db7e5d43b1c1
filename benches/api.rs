//! HTTP benchmark: requests/s and p50/p99 latency for create, get-by-id, `userName eq`
//! filter and list page, against a real `scimitar` server (same wiring as `main`) on
//! loopback, with a directory of 10,000 users.
//!
//!   cargo bench --bench api                                  # SQLite, temp file
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench api
//!
//! Knobs: SCIMITAR_BENCH_USERS (10000), SCIMITAR_BENCH_CLIENTS (8), SCIMITAR_BENCH_REQUESTS
//! (requests per read phase, 5000). The Postgres database should be empty (a fresh one).

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use rand::Rng;

use scimitar::config::ServeArgs;
use scimitar::{http, server};

const TOKEN: &str = "bench-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start_server(url: &str) -> (String, scimitar::storage::Pool) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut args = ServeArgs::from_env();
    args.db.database_url = url.to_string();
    args.db.db_pool_size = 16;
    args.bootstrap_token = Some(TOKEN.into());
    args.listen = addr;
    args.base_url = None;
    let (state, _) = server::build_state(&args).expect("state");
    let state = web::Data::new(state);
    let pool = state.service.pool.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || App::new().configure(http::configure(state.clone())))
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("server")
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    (format!("http://{addr}/scim/v2"), pool)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(4)
        .build()
        .into()
}

/// Runs `total` requests over `clients` threads; `f(agent, i)` does request i and returns
/// whether it succeeded. Returns (requests/s, p50 ms, p99 ms, failures).
fn phase(
    clients: usize,
    total: usize,
    f: impl Fn(&ureq::Agent, usize) -> bool + Send + Sync + 'static,
) -> (f64, f64, f64, usize) {
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
                    lat.push(t.elapsed());
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
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    (total as f64 / secs, pct(0.50), pct(0.99), failed)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let users = env_usize("SCIMITAR_BENCH_USERS", 10_000);
    let clients = env_usize("SCIMITAR_BENCH_CLIENTS", 8);
    let reads = env_usize("SCIMITAR_BENCH_REQUESTS", 5_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = std::env::var("SCIMITAR_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let backend = url.split("://").next().unwrap_or("?").to_string();
    let (base, pool) = start_server(&url);
    let auth = format!("Bearer {TOKEN}");
    let run_id: u32 = rand::thread_rng().gen();
    println!("scimitar HTTP benchmark: backend {backend}, {users} users, {clients} clients, {reads} requests per read phase");
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>8}",
        "operation", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let report = |name: &str, r: (f64, f64, f64, usize)| {
        println!(
            "{name:<22} {:>10.0} {:>10.2} {:>10.2} {:>8}",
            r.0, r.1, r.2, r.3
        );
    };

    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); users]));
    let (b, a, ids2) = (base.clone(), auth.clone(), ids.clone());
    report(
        "create (POST /Users)",
        phase(clients, users, move |ag, i| {
            let body = format!(
                r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"user{i}.{run_id}@example.com","externalId":"ext-{i}-{run_id}","name":{{"givenName":"Given{i}","familyName":"Family{}"}},"displayName":"User {i}","active":true,"emails":[{{"value":"user{i}.{run_id}@example.com","type":"work","primary":true}},{{"value":"u{i}@home.example","type":"home"}}],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{{"department":"Dept{}","employeeNumber":"{i}"}}}}"#,
                i % 1000,
                i % 50
            );
            match ag
                .post(format!("{b}/Users"))
                .header("Authorization", &a)
                .header("Content-Type", "application/scim+json")
                .send(body)
            {
                Ok(mut r) if r.status() == 201 => {
                    let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
                    if let (Some(id), Ok(mut ids)) = (v["id"].as_str(), ids2.lock()) {
                        ids[i] = id.to_string();
                    }
                    true
                }
                _ => false,
            }
        }),
    );
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().map(|v| v.clone()).unwrap_or_default());
    // Fresh statistics after the load, as autovacuum would have them in a running system.
    scimitar::storage::analyze(&mut pool.get().expect("conn").db()).expect("analyze");

    let (b, a, ids2) = (base.clone(), auth.clone(), ids.clone());
    report(
        "get by id",
        phase(clients, reads, move |ag, _| {
            let id = &ids2[rand::thread_rng().gen_range(0..ids2.len())];
            matches!(ag.get(format!("{b}/Users/{id}")).header("Authorization", &a).call(), Ok(r) if r.status() == 200)
        }),
    );
    let (b, a) = (base.clone(), auth.clone());
    report(
        "filter userName eq",
        phase(clients, reads, move |ag, _| {
            let i = rand::thread_rng().gen_range(0..users);
            let f = format!("userName%20eq%20%22USER{i}.{run_id}%40example.com%22");
            match ag
                .get(format!("{b}/Users?filter={f}"))
                .header("Authorization", &a)
                .call()
            {
                Ok(mut r) if r.status() == 200 => {
                    let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
                    v["totalResults"] == 1
                }
                _ => false,
            }
        }),
    );
    let (b, a) = (base.clone(), auth.clone());
    report(
        "list page (count=100)",
        phase(clients, reads / 5, move |ag, _| {
            let start = rand::thread_rng().gen_range(1..users.max(2));
            matches!(
                ag.get(format!("{b}/Users?startIndex={start}&count=100")).header("Authorization", &a).call(),
                Ok(r) if r.status() == 200
            )
        }),
    );
}
