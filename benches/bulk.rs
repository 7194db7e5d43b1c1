//! /Bulk against single requests: 10,000 users loaded by bulk requests of 1,000 operations,
//! and 10,000 users loaded by single POST /Users, each by one client (as an HRIS bridge or an
//! initial load runs), through the real HTTP server.
//!
//!   cargo bench --bench bulk
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench bulk
//!
//! Knobs: SCIMITAR_BENCH_USERS (10000), SCIMITAR_BENCH_BATCH (1000).

mod common;

use std::time::Instant;

use common::*;
use rand::Rng;
use serde_json::json;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users = env_usize("SCIMITAR_BENCH_USERS", 10_000);
    let batch = env_usize("SCIMITAR_BENCH_BATCH", 1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(dir.path());
    let backend = url.split("://").next().unwrap_or("?").to_string();
    let (base, _pool) = start_server(&url);
    let a = agent();
    let run: u32 = rand::thread_rng().gen();
    println!("scimitar bulk benchmark: backend {backend}, {users} users, bulk requests of {batch}, one client");

    let t = Instant::now();
    let mut failed = 0;
    for i in 0..users {
        let body = user_json(i, run);
        match a
            .post(format!("{base}/Users"))
            .header("Authorization", &auth())
            .header("Content-Type", "application/scim+json")
            .send(body.to_string())
        {
            Ok(r) if r.status() == 201 => {}
            _ => failed += 1,
        }
    }
    let single = t.elapsed().as_secs_f64();

    let run2 = run.wrapping_add(1);
    let t = Instant::now();
    let mut bulk_failed = 0;
    for start in (0..users).step_by(batch) {
        let ops: Vec<serde_json::Value> = (start..(start + batch).min(users))
            .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user_json(i, run2)}))
            .collect();
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
        match a
            .post(format!("{base}/Bulk"))
            .header("Authorization", &auth())
            .header("Content-Type", "application/scim+json")
            .send(body.to_string())
        {
            Ok(mut r) if r.status() == 200 => {
                let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
                bulk_failed += v["Operations"]
                    .as_array()
                    .map(|o| o.iter().filter(|x| x["status"] != "201").count())
                    .unwrap_or(batch);
            }
            _ => bulk_failed += batch,
        }
    }
    let bulk = t.elapsed().as_secs_f64();
    println!(
        "{:<34} {:>10} {:>12} {:>8}",
        "load", "seconds", "users/s", "errors"
    );
    println!(
        "{:<34} {:>10.2} {:>12.0} {:>8}",
        format!("{users} single POST /Users"),
        single,
        users as f64 / single,
        failed
    );
    println!(
        "{:<34} {:>10.2} {:>12.0} {:>8}",
        format!("{} POST /Bulk of {batch}", users.div_ceil(batch)),
        bulk,
        users as f64 / bulk,
        bulk_failed
    );
    println!("bulk is {:.1}x faster", single / bulk);
}
