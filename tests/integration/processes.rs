//! Several `scimitar serve` processes on one database (the deployment shape on Postgres;
//! on SQLite, several processes on one file): concurrent membership changes lose nothing.

use std::process::Stdio;

use serde_json::{json, Value};

use crate::common::*;

struct Server {
    _process: ServerProcess,
    base: String,
}

fn spawn(db: &TestDb) -> Server {
    let process = ServerProcess::start(db, &["--workers", "2"], "warn", Stdio::null());
    let base = format!("{}/scim/v2", process.url);
    Server {
        _process: process,
        base,
    }
}

fn agent() -> ureq::Agent {
    http_agent()
}

fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let resp = match (method, body) {
        ("POST", Some(b)) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/scim+json")
            .send(b.to_string()),
        ("PATCH", Some(b)) => agent
            .patch(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/scim+json")
            .send(b.to_string()),
        _ => agent.get(url).header("Authorization", &auth).call(),
    };
    let mut r = resp.expect("request");
    let status = r.status().as_u16();
    let body = r.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    (status, body)
}

#[test]
fn two_servers_adding_members_to_one_group_lose_none() {
    const PER_SERVER: usize = 1000;
    let db = TestDb::new();
    let a = spawn(&db);
    let b = spawn(&db);
    let client = agent();
    let (status, group) = send(
        &client,
        "POST",
        &format!("{}/Groups", a.base),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Shared"}),
        ),
    );
    assert_eq!(status, 201);
    let gid = group["id"].as_str().unwrap().to_string();

    // Each server gets its own users, created through it, then 4 threads per server add
    // them one PATCH each, all at once.
    let workers: Vec<_> = [a.base.clone(), b.base.clone()]
        .into_iter()
        .enumerate()
        .map(|(s, base)| {
            let gid = gid.clone();
            std::thread::spawn(move || {
                let client = agent();
                let ids: Vec<String> = (0..PER_SERVER)
                    .map(|i| {
                        let (st, u) = send(
                            &client,
                            "POST",
                            &format!("{base}/Users"),
                            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("s{s}-u{i}")})),
                        );
                        assert_eq!(st, 201, "{u}");
                        u["id"].as_str().unwrap().to_string()
                    })
                    .collect();
                let chunks: Vec<Vec<String>> = ids.chunks(PER_SERVER / 4).map(|c| c.to_vec()).collect();
                let threads: Vec<_> = chunks
                    .into_iter()
                    .map(|chunk| {
                        let (base, gid) = (base.clone(), gid.clone());
                        std::thread::spawn(move || {
                            let client = agent();
                            for id in chunk {
                                let (st, body) = send(
                                    &client,
                                    "PATCH",
                                    &format!("{base}/Groups/{gid}"),
                                    Some(patch_body(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]))),
                                );
                                assert_eq!(st, 204, "{body}");
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (status, g) = send(&client, "GET", &format!("{}/Groups/{gid}", b.base), None);
    assert_eq!(status, 200);
    assert_eq!(g["members"].as_array().map(Vec::len), Some(2 * PER_SERVER));
    // Every change bumped the version exactly once.
    assert_eq!(
        g["meta"]["version"],
        format!("W/\"{}\"", 2 * PER_SERVER + 1)
    );
}
