//! HTTP benchmark: requests/s and p50/p99 latency for create, get-by-id, `userName eq`
//! filter and list page, against a real `scimitar` server (same wiring as `main`) on
//! loopback, with a directory of 10,000 users.
//!
//!   cargo bench --bench api                                  # SQLite, temp file
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench api
//!
//! Knobs: SCIMITAR_BENCH_USERS (10000), SCIMITAR_BENCH_CLIENTS (8), SCIMITAR_BENCH_REQUESTS
//! (requests per read phase, 5000). The Postgres database should be empty (a fresh one).

mod common;

use std::sync::Arc;

use common::*;
use rand::Rng;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let users = env_usize("SCIMITAR_BENCH_USERS", 10_000);
    let clients = env_usize("SCIMITAR_BENCH_CLIENTS", 8);
    let reads = env_usize("SCIMITAR_BENCH_REQUESTS", 5_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(dir.path());
    let backend = url.split("://").next().unwrap_or("?").to_string();
    let (base, pool) = start_server(&url);
    let auth = auth();
    let run_id: u32 = rand::thread_rng().gen();
    println!("scimitar HTTP benchmark: backend {backend}, {users} users, {clients} clients, {reads} requests per read phase");
    header();

    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); users]));
    let (b, a, ids2) = (base.clone(), auth.clone(), ids.clone());
    report(
        "create (POST /Users)",
        &phase(clients, users, move |ag, i| {
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
    // The block counts' deltas folded, as the statistics thread does each round.
    scimitar::storage::search::blocks::compact_resource_blocks(&mut pool.get().expect("conn").db())
        .expect("fold block counts");
    // Fresh statistics after the load, as autovacuum would have them in a running system.
    scimitar::storage::conn::analyze(&mut pool.get().expect("conn").db()).expect("analyze");

    let (b, a, ids2) = (base.clone(), auth.clone(), ids.clone());
    report(
        "get by id",
        &phase(clients, reads, move |ag, _| {
            let id = &ids2[rand::thread_rng().gen_range(0..ids2.len())];
            matches!(ag.get(format!("{b}/Users/{id}")).header("Authorization", &a).call(), Ok(r) if r.status() == 200)
        }),
    );
    let (b, a) = (base.clone(), auth.clone());
    report(
        "filter userName eq",
        &phase(clients, reads, move |ag, _| {
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
        &phase(clients, reads / 5, move |ag, _| {
            let start = rand::thread_rng().gen_range(1..users.max(2));
            matches!(
                ag.get(format!("{b}/Users?startIndex={start}&count=100")).header("Authorization", &a).call(),
                Ok(r) if r.status() == 200
            )
        }),
    );
}
