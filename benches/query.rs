//! The query language at scale: loads SCIMITAR_BENCH_USERS (default 1,000,000) realistic users
//! (name, three emails, phone, enterprise extension) and measures p50/p99 at 32 concurrent
//! clients, through the real HTTP server, for the filters Entra ID, Okta and admins send,
//! a sorted page, and page 5,000 of 100 by cursor and by index.
//!
//!   cargo bench --bench query
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench query
//!
//! Knobs: SCIMITAR_BENCH_USERS, SCIMITAR_BENCH_CLIENTS (32), SCIMITAR_BENCH_REQUESTS (2000 per
//! query), SCIMITAR_BENCH_RUN (reuse a database loaded by an earlier run: give its
//! SCIMITAR_BENCH_DATABASE_URL and the run number in its userNames, user{i}.{run}@example.com). Lookups ask for count=10 (clients matching one person); the sorted page and the
//! deep pages ask for 100.

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

fn get_ok(ag: &ureq::Agent, url: &str) -> Option<serde_json::Value> {
    match ag.get(url).header("Authorization", &auth()).call() {
        Ok(mut r) if r.status() == 200 => r.body_mut().read_json().ok(),
        _ => None,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users = env_usize("SCIMITAR_BENCH_USERS", 1_000_000);
    let clients = env_usize("SCIMITAR_BENCH_CLIENTS", 32);
    let requests = env_usize("SCIMITAR_BENCH_REQUESTS", 2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(dir.path());
    let backend = url.split("://").next().unwrap_or("?").to_string();
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
    scimitar::storage::conn::analyze(&mut pool.get().expect("conn").db()).expect("analyze");
    println!(
        "scimitar query benchmark: backend {backend}, {users} users (loaded in {:.0}s), {clients} clients, {requests} requests per query",
        t.elapsed().as_secs_f64()
    );
    header();
    let base = Arc::new(base);
    let filter_phase = |name: &str,
                        make: Arc<dyn Fn(usize) -> String + Send + Sync>,
                        count: usize,
                        expect_hit: bool| {
        let b = base.clone();
        let s = phase(clients, requests, move |ag, _| {
            let i = rand::thread_rng().gen_range(0..users);
            let f = make(i);
            match get_ok(ag, &format!("{b}/Users?count={count}&filter={}", enc(&f))) {
                Some(v) => !expect_hit || v["totalResults"].as_i64().unwrap_or(0) > 0,
                None => false,
            }
        });
        report(name, &s);
    };
    filter_phase(
        "userName eq",
        Arc::new(move |i| format!("userName eq \"USER{i}.{run}@example.com\"")),
        10,
        true,
    );
    filter_phase(
        "externalId eq",
        Arc::new(move |i| format!("externalId eq \"ext-{i}-{run}\"")),
        10,
        true,
    );
    filter_phase(
        "emails[type eq \"work\"].value eq",
        Arc::new(move |i| {
            format!("emails[type eq \"work\"].value eq \"user{i}.{run}@example.com\"")
        }),
        10,
        true,
    );
    const FAMILIES: &[&str] = &[
        "Smith", "Jensen", "Garcia", "Nguyen", "Okafor", "Muller", "Rossi", "Kowalski", "Tanaka",
        "Silva",
    ];
    filter_phase(
        "name.familyName sw (about 100 matches)",
        // Family names are FAMILY + (i % 997); a three-digit suffix is no prefix of another
        // one, so each prefix matches about 100 users.
        Arc::new(|i| {
            format!(
                "name.familyName sw \"{}{}\"",
                FAMILIES[i % 10],
                100 + i % 897
            )
        }),
        10,
        true,
    );
    filter_phase(
        "emails.value co",
        Arc::new(move |i| format!("emails.value co \"{i}.{run}@alias\"")),
        10,
        true,
    );
    filter_phase(
        "and/or combination",
        Arc::new(move |i| {
            format!(
                "(userName eq \"user{i}.{run}@example.com\" or externalId eq \"ext-{}-{run}\") and active eq true and title pr",
                (i + 1) % users
            )
        }),
        10,
        true,
    );
    let b = base.clone();
    let sorted = phase(clients.min(8), (requests / 10).max(20), move |ag, _| {
        get_ok(
            ag,
            &format!("{b}/Users?sortBy=name.familyName&count=100&attributes=userName,name"),
        )
        .is_some()
    });
    report("sortBy=name.familyName, page of 100", &sorted);

    // Walk to page 5,000 by cursor once (one client), keeping the cursors around it.
    let target_page = (users / 100).min(5000);
    let a = agent();
    let mut cursor = String::new();
    let mut cursors = Vec::new();
    for page in 1..target_page {
        let v = get_ok(
            &a,
            &format!(
                "{base}/Users?count=100&attributes=id&cursor={}",
                enc(&cursor)
            ),
        )
        .expect("cursor page");
        cursor = v["nextCursor"].as_str().unwrap_or_default().to_string();
        if page + 20 >= target_page {
            cursors.push(cursor.clone());
        }
    }
    let cursors = Arc::new(cursors);
    let b = base.clone();
    let c2 = cursors.clone();
    let deep = phase(clients, requests, move |ag, i| {
        let c = &c2[i % c2.len()];
        get_ok(ag, &format!("{b}/Users?count=100&cursor={}", enc(c)))
            .is_some_and(|v| v["Resources"].as_array().is_some_and(|r| r.len() == 100))
    });
    report(&format!("page {target_page} of 100 by cursor"), &deep);
    let b = base.clone();
    let start = (target_page - 1) * 100 + 1;
    let index = phase(clients.min(8), (requests / 10).max(20), move |ag, _| {
        get_ok(ag, &format!("{b}/Users?count=100&startIndex={start}"))
            .is_some_and(|v| v["Resources"].as_array().is_some_and(|r| r.len() == 100))
    });
    report(&format!("page {target_page} of 100 by index"), &index);
}
