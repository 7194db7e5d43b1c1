//! Noisy neighbours (issue 13): tenant A runs SCIMITAR_BENCH_CLIENTS (12) clients of
//! `co`/`sw` filters over SCIMITAR_BENCH_USERS (20,000) users, each with a 10 s client
//! timeout, while tenant B reads its users by id from one client. Reports B's p50/p99 quiet
//! and during A's storm, A's answers by status, and the longest statement seen (Postgres:
//! `pg_stat_activity`; SQLite: the longest A request, an upper bound). The server runs as
//! `serve` does by default (8 connections, --db-statement-timeout-ms 15000,
//! --tenant-max-concurrency 4). On Postgres the schema is fresh and never analyzed (the
//! machine runs autovacuum off), as a database is right after a big import.
//!
//!   cargo bench --bench neighbours
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench neighbours
//!
//! Knobs: SCIMITAR_BENCH_USERS (20000), SCIMITAR_BENCH_CLIENTS (12), SCIMITAR_BENCH_SECONDS
//! (storm length, 30), SCIMITAR_BENCH_B_REQUESTS (B's requests per phase, 400).

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use rand::Rng;

use common::*;
use scimitar::config::{ServeArgs, SqliteSync};
use scimitar::storage::conn::{Conn, DbUrl};
use scimitar::storage::sql::Sql;
use scimitar::{http, server};

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The server as `serve` runs by default, on `url`; its base URL and state.
fn start(url: &str) -> (String, web::Data<http::AppState>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut args = ServeArgs::from_env();
    args.db.database_url = url.to_string();
    args.bootstrap_token = Some(TOKEN.into());
    args.listen = addr;
    args.base_url = None;
    let (state, _) = server::build_state(&args).expect("state");
    let state = web::Data::new(state);
    let s = state.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || App::new().configure(http::configure(s.clone())))
                .h1_allow_half_closed(false)
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("server")
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    (format!("http://{addr}/scim/v2"), state)
}

/// A fresh Postgres schema (dropped by the returned guard) or the SQLite URL as it is.
struct Db {
    url: String,
    pg: Option<(String, String)>,
}

impl Db {
    fn new(url: String) -> Db {
        if !url.starts_with("postgres") {
            return Db { url, pg: None };
        }
        let schema = format!("neighbours_{}", uuid::Uuid::new_v4().simple());
        let mut c = Conn::establish(&DbUrl::parse(&url).unwrap(), SqliteSync::Normal).unwrap();
        c.db()
            .execute(&Sql::new(&format!("CREATE SCHEMA {schema}")))
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        Db {
            url: format!("{url}{sep}options=-csearch_path%3D{schema}"),
            pg: Some((url, schema)),
        }
    }
}

/// The longest-running active statement now, other than this one (Postgres).
fn longest_running(c: &mut Conn) -> Option<Duration> {
    #[derive(diesel::QueryableByName)]
    struct Ms {
        #[diesel(sql_type = diesel::sql_types::Double)]
        ms: f64,
    }
    let q = Sql::new(
        "SELECT COALESCE(EXTRACT(EPOCH FROM MAX(now() - query_start)) * 1000, 0)::float8 AS ms \
         FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend' \
         AND datname = current_database()",
    );
    let r: Vec<Ms> = c.db().load(&q).ok()?;
    r.first()
        .map(|m| Duration::from_secs_f64(m.ms.max(0.0) / 1000.0))
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg {
            if let Ok(mut c) = Conn::establish(&DbUrl::parse(base).unwrap(), SqliteSync::Normal) {
                let _ = c
                    .db()
                    .execute(&Sql::new(&format!("DROP SCHEMA {schema} CASCADE")));
            }
        }
    }
}

/// B's reads by id: `n` sequential GETs, their latencies sorted.
fn b_reads(base: &str, token: &str, ids: &[String], n: usize) -> (Vec<Duration>, usize) {
    let ag = agent();
    let mut lat = Vec::with_capacity(n);
    let mut failed = 0;
    for i in 0..n {
        let t = Instant::now();
        let ok = ag
            .get(format!("{base}/Users/{}", ids[i % ids.len()]))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .is_ok_and(|r| r.status() == 200);
        lat.push(t.elapsed());
        failed += usize::from(!ok);
    }
    lat.sort();
    (lat, failed)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users = env_usize("SCIMITAR_BENCH_USERS", 20_000);
    let clients = env_usize("SCIMITAR_BENCH_CLIENTS", 12);
    let seconds = env_usize("SCIMITAR_BENCH_SECONDS", 30);
    let b_requests = env_usize("SCIMITAR_BENCH_B_REQUESTS", 400);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::new(database_url(dir.path()));
    let backend = db.url.split("://").next().unwrap_or("?").to_string();
    let (base, state) = start(&db.url);
    let run: u32 = rand::thread_rng().gen();
    let t = Instant::now();
    load_users(&state.service.pool, 0, users, run);
    println!(
        "# backend {backend}: tenant A has {users} users (loaded in {:.1?}, never analyzed)",
        t.elapsed()
    );

    // Tenant B: its own token and 100 users.
    let b_token = {
        let mut conn = state.service.pool.get().unwrap();
        scimitar::provisioning::tenancy::create_tenant(&mut conn, "b").unwrap();
        let now = scimitar::scim::time::now_micros();
        conn.write_tx(|d| {
            scimitar::auth::create_token(
                d,
                &"b".into(),
                Some("bench"),
                scimitar::auth::Scope::Write,
                None,
                now,
            )
        })
        .unwrap()
        .1
    };
    let ag = agent();
    let b_ids: Vec<String> = (0..100)
        .map(|i| {
            let mut r = ag
                .post(format!("{base}/Users"))
                .header("Authorization", format!("Bearer {b_token}"))
                .header("Content-Type", "application/scim+json")
                .send(user_json(i, run).to_string())
                .expect("create B user");
            assert_eq!(r.status(), 201);
            let v: serde_json::Value = r.body_mut().read_json().unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();

    let (quiet, quiet_failed) = b_reads(&base, &b_token, &b_ids, b_requests);

    // A's storm.
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let a_longest: Arc<Mutex<Duration>> = Arc::default();
    let storm: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, statuses, a_longest, base) = (
                stop.clone(),
                statuses.clone(),
                a_longest.clone(),
                base.clone(),
            );
            std::thread::spawn(move || {
                let ag: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut rng = rand::thread_rng();
                let mut k = c;
                while !stop.load(Ordering::Relaxed) {
                    k += clients;
                    let n: u32 = rng.gen_range(0..10_000);
                    let filter = match k % 4 {
                        0 => format!("emails.value co \"{:x}{}\"", n % 256, n % 10),
                        1 => format!("userName sw \"user{}\"", n % 1000),
                        2 => format!("name.familyName co \"en{}\"", n % 10),
                        _ => format!("emails.value co \"u{}.\"", n),
                    };
                    let t = Instant::now();
                    let status = match ag
                        .get(format!("{base}/Users?count=10&filter={}", enc(&filter)))
                        .header("Authorization", auth())
                        .call()
                    {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(ureq::Error::Timeout(_)) => "client timeout (10 s)".into(),
                        Err(e) => format!("error: {e}"),
                    };
                    let took = t.elapsed();
                    let mut l = a_longest.lock().unwrap();
                    *l = (*l).max(took);
                    drop(l);
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    // The longest statement, sampled every 100 ms (Postgres).
    let sampler = {
        let stop = stop.clone();
        let pg = db.pg.clone();
        std::thread::spawn(move || {
            let (base, _) = pg?;
            let mut c = Conn::establish(&DbUrl::parse(&base).unwrap(), SqliteSync::Normal).ok()?;
            let mut longest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                if let Some(d) = longest_running(&mut c) {
                    longest = longest.max(d);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(longest)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let storm_started = Instant::now();
    let (busy, busy_failed) = b_reads(&base, &b_token, &b_ids, b_requests);
    let remaining = Duration::from_secs(seconds as u64).saturating_sub(storm_started.elapsed());
    std::thread::sleep(remaining);
    stop.store(true, Ordering::Relaxed);
    for h in storm {
        let _ = h.join();
    }
    let longest_statement = sampler.join().ok().flatten();

    println!(
        "# tenant A: {clients} clients of co/sw filters, 10 s client timeout, {seconds} s storm"
    );
    println!(
        "{:<36} {:>10} {:>10} {:>8}",
        "tenant B: GET /Users/{id}, 1 client", "p50 ms", "p99 ms", "errors"
    );
    let ms = |l: &[Duration], p| percentile(l, p);
    println!(
        "{:<36} {:>10.2} {:>10.2} {:>8}",
        "quiet",
        ms(&quiet, 0.5),
        ms(&quiet, 0.99),
        quiet_failed
    );
    println!(
        "{:<36} {:>10.2} {:>10.2} {:>8}",
        "during A's storm",
        ms(&busy, 0.5),
        ms(&busy, 0.99),
        busy_failed
    );
    println!(
        "B p99 storm / quiet: {:.1}x",
        ms(&busy, 0.99) / ms(&quiet, 0.99).max(0.001)
    );
    let total: usize = statuses.lock().unwrap().values().sum();
    println!("tenant A answers ({total}):");
    for (status, n) in statuses.lock().unwrap().iter() {
        println!("  {status}: {n}");
    }
    match longest_statement {
        Some(d) => println!("longest statement seen (pg_stat_activity): {:.2?}", d),
        None => println!(
            "longest A request (bounds its statements; SQLite has no statement view): {:.2?}",
            *a_longest.lock().unwrap()
        ),
    }
}
