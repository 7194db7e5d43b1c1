//! Large groups: a group grown to 100,000 members by PATCHes of 100 members, through the
//! real HTTP server. Reports the median latency of the first and last 10% of PATCHes (they
//! should be alike: adding members costs the members added, not the group's size) and the
//! p99 of `GET /Groups/{id}?excludedAttributes=members` at full size.
//!
//!   cargo bench --bench groups
//!   SCIMITAR_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo bench --bench groups
//!
//! Knobs: SCIMITAR_BENCH_MEMBERS (100000), SCIMITAR_BENCH_BATCH (100).

mod common;

use std::time::Duration;

use common::*;
use rand::Rng;

fn median(xs: &[Duration]) -> f64 {
    let mut v = xs.to_vec();
    v.sort();
    percentile(&v, 0.5)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let members = env_usize("SCIMITAR_BENCH_MEMBERS", 100_000);
    let batch = env_usize("SCIMITAR_BENCH_BATCH", 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(dir.path());
    let backend = url.split("://").next().unwrap_or("?").to_string();
    let (base, pool) = start_server(&url);
    let run: u32 = rand::thread_rng().gen();
    let t = std::time::Instant::now();
    let ids = load_users(&pool, 0, members, run);
    // The block counts' deltas folded, as the statistics thread does each round.
    scimitar::storage::search::blocks::compact_resource_blocks(&mut pool.get().expect("conn").db())
        .expect("fold block counts");
    scimitar::storage::conn::analyze(&mut pool.get().expect("conn").db()).expect("analyze");
    println!(
        "scimitar large-group benchmark: backend {backend}, {members} members by PATCHes of {batch} (users loaded in {:.1}s)",
        t.elapsed().as_secs_f64()
    );
    let a = agent();
    let mut r = a
        .post(format!("{base}/Groups"))
        .header("Authorization", &auth())
        .header("Content-Type", "application/scim+json")
        .send(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Everyone"}"#)
        .expect("create group");
    let group: serde_json::Value = r.body_mut().read_json().expect("json");
    let gid = group["id"].as_str().expect("id").to_string();

    // One client, sequential PATCHes: latency as a function of the group's size.
    let patches = members.div_ceil(batch);
    let (b, g, ids2) = (base.clone(), gid.clone(), ids.clone());
    let grow = phase(1, patches, move |ag, i| {
        let chunk = &ids2[i * batch..((i + 1) * batch).min(ids2.len())];
        let values: Vec<serde_json::Value> = chunk
            .iter()
            .map(|id| serde_json::json!({"value": id}))
            .collect();
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": values}]
        });
        matches!(
            ag.patch(format!("{b}/Groups/{g}"))
                .header("Authorization", &auth())
                .header("Content-Type", "application/scim+json")
                .send(body.to_string()),
            Ok(r) if r.status() == 204
        )
    });
    header();
    report(&format!("PATCH add {batch} members (all)"), &grow);
    let tenth = (patches / 10).max(1);
    let first = median(&grow.latencies[..tenth]);
    let last = median(&grow.latencies[patches - tenth..]);
    println!(
        "median of first 10% of PATCHes: {first:.2} ms; of last 10%: {last:.2} ms; ratio {:.2}",
        last / first
    );

    let (b, g) = (base.clone(), gid.clone());
    let get = phase(8, 5000, move |ag, _| {
        matches!(
            ag.get(format!("{b}/Groups/{g}?excludedAttributes=members")).header("Authorization", &auth()).call(),
            Ok(r) if r.status() == 200
        )
    });
    report("GET group excludedAttributes=members", &get);
    let (b, g, ids3) = (base.clone(), gid.clone(), ids.clone());
    let remove = phase(1, 200, move |ag, i| {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", ids3[i * 7])}]
        });
        matches!(
            ag.patch(format!("{b}/Groups/{g}"))
                .header("Authorization", &auth())
                .header("Content-Type", "application/scim+json")
                .send(body.to_string()),
            Ok(r) if r.status() == 204
        )
    });
    report("PATCH remove 1 member (full group)", &remove);
    let (b, g) = (base.clone(), gid.clone());
    let rename = phase(1, 200, move |ag, i| {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"displayName": format!("Everyone {i}")}}]
        });
        matches!(
            ag.patch(format!("{b}/Groups/{g}"))
                .header("Authorization", &auth())
                .header("Content-Type", "application/scim+json")
                .send(body.to_string()),
            Ok(r) if r.status() == 204
        )
    });
    report("PATCH rename (full group)", &rename);
}
