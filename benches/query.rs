//! The query language at scale (issue 18): loads SCIMITAR_BENCH_USERS (default 1,000,000)
//! realistic users (name, three emails, phone, enterprise extension), then measures, through
//! the real HTTP server, every query Entra ID, Okta and admins send, a sorted page and page
//! 5,000 of 100 by cursor and by index: p50/p99 at one client (what one IdP sync sees; every
//! query's first run after start is in it), then req/s at SCIMITAR_BENCH_CLIENTS (32), and
//! GET by id at 32 clients on the same database, the ceiling of this machine. Ends with a
//! table of each query beside the targets: p99 at one client, and req/s as a share
//! of GET by id.
//!
//!   cargo bench --bench query
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench query
//!
//! Knobs: SCIMITAR_BENCH_USERS, SCIMITAR_BENCH_CLIENTS (32), SCIMITAR_BENCH_REQUESTS (2000 per
//! query at 32 clients), SCIMITAR_BENCH_REQUESTS_ONE (200 per query at one client),
//! SCIMITAR_BENCH_LOAD_ONLY=1 (load, refresh statistics, print the run number, stop),
//! SCIMITAR_BENCH_ONLY=<text> (only the queries whose name contains it, then GET by id),
//! SCIMITAR_BENCH_PREWARM=0 (do not read the database's files into the page cache first),
//! SCIMITAR_BENCH_RUN (reuse a database loaded by an earlier run: give its
//! SCIMITAR_BENCH_DATABASE_URL and the run number in its userNames,
//! user{i}.{run}@example.com). Lookups ask for count=10 (clients matching one person); the
//! sorted page and the deep pages ask for 100.

mod common;

use std::sync::Arc;

use common::*;
use rand::Rng;

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Reads the loaded database's files once, so that they are in the operating system's page
/// cache when the queries run, as a server in use keeps them (SCIMITAR_BENCH_PREWARM=0 skips
/// it). Without it the measured rows read from disk whatever the machine evicted since the
/// load, and the first rows at 32 clients paid for it: on this kind of machine a DAMON
/// scheme pages out a file left idle, and `vmstat` showed 5-44 MB/s read from disk during
/// the first rows of a run and none during GET by id, the last (the ceiling of the shares).
/// The server itself still starts cold: its caches, prepared statements and (SQLite)
/// trigram counts start empty, and each query's first run is in its one-client p99.
fn prewarm(url: &str, pool: &scimitar::storage::pool::Pool) {
    let t = std::time::Instant::now();
    let read = match scimitar::storage::conn::sqlite_file(url).expect("database URL") {
        // The database file and its write-ahead log, if any.
        Some(file) => {
            let mut wal = file.clone().into_os_string();
            wal.push("-wal");
            [file.into_os_string(), wal]
                .iter()
                .filter_map(|p| std::fs::File::open(p).ok())
                .map(|mut f| std::io::copy(&mut f, &mut std::io::sink()).expect("read"))
                .sum()
        }
        // Postgres: every table and index of the schema, read through its own buffers into
        // the page cache (pg_prewarm's `read` mode, which returns the blocks it read; the
        // extension ships with Postgres).
        None => {
            let mut c = pool.get().expect("conn");
            let mut db = c.db();
            let sql = scimitar::storage::sql::Sql::new;
            let read = db
                .execute(&sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
                .map_err(scimitar::storage::StorageError::from)
                .and_then(|_| {
                    db.count(&sql(
                        "SELECT (COALESCE(SUM(pg_prewarm(c.oid::regclass, 'read')), 0) \
                         * current_setting('block_size')::bigint)::bigint AS n \
                         FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
                         WHERE s.nspname = current_schema() AND c.relkind IN ('r', 'i')",
                    ))
                });
            match read {
                Ok(bytes) => bytes as u64,
                Err(e) => {
                    eprintln!("prewarm skipped (pg_prewarm: {e})");
                    return;
                }
            }
        }
    };
    eprintln!(
        "prewarm: {:.0} MB read into the page cache in {:.1} s",
        read as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
}

/// Answers other than 200, by status (or transport error), over the whole run.
static FAILURES: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// GET `url`: the body of a 200 answer; any other answer is counted in `FAILURES` by status
/// (and scimType), or by transport error.
fn get_200(ag: &ureq::Agent, url: &str) -> Option<Vec<u8>> {
    match ag.get(url).header("Authorization", &auth()).call() {
        Ok(mut r) if r.status() == 200 => r.body_mut().read_to_vec().ok(),
        Ok(mut r) => {
            let body: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
            failed(format!(
                "{} {}",
                r.status().as_u16(),
                body["scimType"].as_str().unwrap_or_default()
            ))
        }
        Err(e) => failed(format!("transport: {e}")),
    }
}

/// Counts a failed request under `what`.
fn failed<T>(what: String) -> Option<T> {
    *FAILURES.lock().unwrap().entry(what).or_default() += 1;
    None
}

/// GET `url`: a 200 answer's JSON tree (the setup's walk, which reads ids and cursors).
fn get_ok(ag: &ureq::Agent, url: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&get_200(ag, url)?).ok()
}

/// What a measured request checks of a 200 answer: well-formed JSON (every member is
/// scanned, the ones not named here without being kept), its `totalResults` and the number of
/// its `Resources`. Not a `serde_json::Value` tree: building one for a page of 100 users took
/// more CPU in the benchmark's own 32 clients than the server spent answering (59 % of all
/// samples of the cursor row under `perf record`), CPU this machine's two cores then did not
/// give the server, so the heavy rows measured the client as much as the server.
#[derive(serde::Deserialize)]
struct Checked {
    #[serde(rename = "totalResults")]
    total_results: Option<i64>,
    #[serde(rename = "Resources")]
    resources: Option<Vec<serde::de::IgnoredAny>>,
}

impl Checked {
    fn resources(&self) -> usize {
        self.resources.as_ref().map_or(0, Vec::len)
    }
}

/// GET `url`: its checked answer if 200 and well-formed (see `Checked`).
fn get_checked(ag: &ureq::Agent, url: &str) -> Option<Checked> {
    match serde_json::from_slice::<Checked>(&get_200(ag, url)?) {
        Ok(c) => Some(c),
        Err(e) => failed(format!("200 with a malformed body: {e}")),
    }
}

/// One row of the report: a query, measured at one client and at `clients`.
struct Row {
    name: String,
    one: Stats,
    many: Stats,
    /// The targets: p99 at one client (SQLite, Postgres) in ms, and the share of GET
    /// by id throughput at `clients`.
    target_p99: Option<(f64, f64)>,
    target_share: Option<f64>,
}

type Request = Arc<dyn Fn(&ureq::Agent, usize) -> bool + Send + Sync>;
/// A query: its name, its request, its targets (as in `Row`).
type Query = (String, Request, Option<(f64, f64)>, Option<f64>);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users = env_usize("SCIMITAR_BENCH_USERS", 1_000_000);
    let clients = env_usize("SCIMITAR_BENCH_CLIENTS", 32);
    let requests = env_usize("SCIMITAR_BENCH_REQUESTS", 2000);
    let requests_one = env_usize("SCIMITAR_BENCH_REQUESTS_ONE", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(dir.path());
    let backend = url.split("://").next().unwrap_or("?").to_string();
    let postgres = backend.starts_with("postgres");
    let (base, pool) = start_server(&url);
    // SCIMITAR_BENCH_RUN names the run of an already loaded database to reuse it (the users'
    // names carry it: user{i}.{run}@example.com); otherwise a new run is loaded.
    let reuse: Option<u32> = std::env::var("SCIMITAR_BENCH_RUN")
        .ok()
        .and_then(|v| v.parse().ok());
    let run: u32 = reuse.unwrap_or_else(|| rand::thread_rng().gen());
    let t = std::time::Instant::now();
    let mut loaded = if reuse.is_some() { users } else { 0 };
    while loaded < users {
        let next = (loaded + 50_000).min(users);
        load_users(&pool, loaded, next, run);
        loaded = next;
        eprintln!(
            "loaded {loaded} users ({:.0}/s)",
            loaded as f64 / t.elapsed().as_secs_f64()
        );
    }
    // What the server's statistics thread does within --db-analyze-every-secs of a big
    // change, done here before the server starts (the loader writes around the server's
    // write path): SQLite's trigram index merged into one segment (a database loaded before
    // this step existed is merged at its first reuse; once merged, nothing is due)...
    let t = std::time::Instant::now();
    let steps = scimitar::storage::search::grams::merge_trigrams(
        &mut pool.get().expect("conn"),
        usize::MAX,
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
    )
    .expect("merge the trigram index")
    .steps;
    if steps > 0 {
        eprintln!(
            "trigram index merged in {steps} steps, {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    if reuse.is_none() {
        // ... the block counts' deltas folded, then the statistics.
        scimitar::storage::search::blocks::compact_resource_blocks(
            &mut pool.get().expect("conn").db(),
        )
        .expect("fold block counts");
        scimitar::storage::conn::refresh_statistics(&mut pool.get().expect("conn").db())
            .expect("statistics");
        println!("loaded run {run}: rerun the queries with SCIMITAR_BENCH_RUN={run}");
    }
    if std::env::var("SCIMITAR_BENCH_LOAD_ONLY").is_ok_and(|v| v == "1") {
        return;
    }
    if std::env::var("SCIMITAR_BENCH_PREWARM").map_or(true, |v| v != "0") {
        prewarm(&url, &pool);
    }
    println!(
        "scimitar query benchmark: backend {backend}, {users} users, 1 client ({requests_one} requests) and {clients} clients ({requests} requests) per query"
    );
    let base = Arc::new(base);
    let filter = |make: fn(usize, u32) -> String, count: usize| -> Request {
        let b = base.clone();
        Arc::new(move |ag, _| {
            let i = rand::thread_rng().gen_range(0..users);
            let f = make(i, run);
            get_checked(ag, &format!("{b}/Users?count={count}&filter={}", enc(&f)))
                .is_some_and(|v| v.total_results.unwrap_or(0) > 0 && v.resources() > 0)
        })
    };
    let mut queries: Vec<Query> = vec![
        (
            "userName eq".into(),
            filter(
                |i, run| format!("userName eq \"USER{i}.{run}@example.com\""),
                10,
            ),
            Some((2.0, 4.0)),
            Some(0.5),
        ),
        (
            "externalId eq".into(),
            filter(|i, run| format!("externalId eq \"ext-{i}-{run}\""), 10),
            Some((2.0, 4.0)),
            Some(0.5),
        ),
        (
            "emails[type eq \"work\"].value eq".into(),
            filter(
                |i, run| format!("emails[type eq \"work\"].value eq \"user{i}.{run}@example.com\""),
                10,
            ),
            Some((2.0, 4.0)),
            Some(0.5),
        ),
        (
            // Family names are FAMILY + (i % 997); a three-digit suffix is no prefix of another
            // one, so each prefix matches about 100 users.
            "name.familyName sw (~100 matches, counted)".into(),
            filter(
                |i, _| {
                    format!(
                        "name.familyName sw \"{}{}\"",
                        FAMILIES[i % 10],
                        100 + i % 897
                    )
                },
                10,
            ),
            Some((5.0, 10.0)),
            Some(0.25),
        ),
        (
            "emails.value co".into(),
            filter(|i, run| format!("emails.value co \"{i}.{run}@alias\""), 10),
            Some((15.0, 15.0)),
            Some(0.10),
        ),
        (
            "(userName or externalId) and active and title pr".into(),
            filter(
                |i, run| {
                    format!(
                        "(userName eq \"user{i}.{run}@example.com\" or externalId eq \"ext-{i}-{run}\") and active eq true and title pr"
                    )
                },
                10,
            ),
            None,
            None,
        ),
    ];
    let b = base.clone();
    queries.push((
        "sortBy=name.familyName, first page of 100".into(),
        Arc::new(move |ag, _| {
            get_checked(
                ag,
                &format!("{b}/Users?sortBy=name.familyName&count=100&attributes=userName,name"),
            )
            .is_some_and(|v| v.resources() == 100)
        }),
        Some((6.0, 6.0)),
        Some(0.10),
    ));

    // Walk to page 5,000 by cursor once (one client), keeping the cursors around it and the
    // ids it saw (GET by id reads those).
    let target_page = (users / 100).min(5000);
    let a = agent();
    let mut cursor = String::new();
    let mut cursors = Vec::new();
    let mut ids = Vec::with_capacity(target_page * 100);
    for page in 1..target_page {
        let v = get_ok(
            &a,
            &format!(
                "{base}/Users?count=100&attributes=id&cursor={}",
                enc(&cursor)
            ),
        )
        .expect("cursor page");
        ids.extend(
            v["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["id"].as_str().map(String::from)),
        );
        cursor = v["nextCursor"].as_str().unwrap_or_default().to_string();
        if page + 20 >= target_page {
            cursors.push(cursor.clone());
        }
    }
    let cursors = Arc::new(cursors);
    let b = base.clone();
    queries.push((
        format!("page {target_page} of 100 by cursor"),
        Arc::new(move |ag, i| {
            let c = &cursors[i % cursors.len()];
            get_checked(ag, &format!("{b}/Users?count=100&cursor={}", enc(c)))
                .is_some_and(|v| v.resources() == 100)
        }),
        Some((8.0, 8.0)),
        Some(0.10),
    ));
    let b = base.clone();
    let start = (target_page - 1) * 100 + 1;
    queries.push((
        format!("page {target_page} of 100 by index"),
        Arc::new(move |ag, _| {
            get_checked(ag, &format!("{b}/Users?count=100&startIndex={start}"))
                .is_some_and(|v| v.resources() == 100)
        }),
        Some((20.0, 20.0)),
        Some(0.05),
    ));

    // SCIMITAR_BENCH_ONLY=<text> keeps the queries whose name contains it (for profiling one
    // row; GET by id, the ceiling, is always measured).
    if let Ok(only) = std::env::var("SCIMITAR_BENCH_ONLY") {
        queries.retain(|(name, ..)| name.contains(&only));
    }
    // One client first, every query (the first `co` after start is in its p99), then the
    // same at `clients`.
    header();
    let ones: Vec<Stats> = queries
        .iter()
        .map(|(name, f, ..)| {
            let f = f.clone();
            let s = phase(1, requests_one, move |ag, i| f(ag, i));
            report(&format!("{name} [1 client]"), &s);
            s
        })
        .collect();
    // Unmeasured: the server's threads and heaps first meet this concurrency here (without
    // it, the first measured query at 32 clients ran about 30% below a rerun of itself).
    if let Some((_, warm, ..)) = queries.first() {
        let warm = warm.clone();
        phase(clients, requests, move |ag, i| warm(ag, i));
    }
    let mut rows = Vec::new();
    for ((name, f, target_p99, target_share), one) in queries.into_iter().zip(ones) {
        let many = phase(clients, requests, move |ag, i| f(ag, i));
        report(&format!("{name} [{clients} clients]"), &many);
        rows.push(Row {
            name,
            one,
            many,
            target_p99,
            target_share,
        });
    }
    // The ceiling of this machine: GET by id on the same loaded database.
    let ids = Arc::new(ids);
    let b = base.clone();
    let by_id = phase(clients, requests.max(5000), move |ag, _| {
        let id = &ids[rand::thread_rng().gen_range(0..ids.len())];
        get_checked(ag, &format!("{b}/Users/{id}")).is_some()
    });
    report(&format!("GET by id [{clients} clients]"), &by_id);

    println!();
    println!(
        "| query ({backend}, {users} users) | 1 client p50 / p99 ms | target p99 | {clients} clients req/s | share of GET by id ({:.0}/s) | target share |",
        by_id.per_sec
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let p99_target = r.target_p99.map(|(s, p)| if postgres { p } else { s });
        let share = r.many.per_sec / by_id.per_sec;
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "| {} | {:.2} / {:.2}{} | {} | {:.0} | {:.1}% | {} |",
            r.name,
            r.one.p50_ms,
            r.one.p99_ms,
            if r.one.failed + r.many.failed > 0 {
                format!(" ({} errors)", r.one.failed + r.many.failed)
            } else {
                String::new()
            },
            p99_target.map_or("-".into(), |t| format!(
                "< {t} ms ({})",
                met(r.one.p99_ms < t)
            )),
            r.many.per_sec,
            share * 100.0,
            r.target_share.map_or("-".into(), |t| format!(
                "≥ {:.0}% ({})",
                t * 100.0,
                met(share >= t)
            )),
        );
    }
    let failures = FAILURES.lock().unwrap();
    if !failures.is_empty() {
        println!();
        println!("answers other than 200: {failures:?}");
    }
}
