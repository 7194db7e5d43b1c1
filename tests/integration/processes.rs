//! Several `scimitar serve` processes on one database (the deployment shape on Postgres;
//! on SQLite, several processes on one file): concurrent membership changes lose nothing, 16
//! writers through two servers keep one gap-free feed, and a server killed (SIGKILL) under
//! batched load loses no write it acknowledged; the first substring search after a restart
//! answers as a warm one does.

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

/// A request that may find the server gone (None then).
fn try_post(agent: &ureq::Agent, url: &str, body: &Value) -> Option<(u16, Value)> {
    let mut r = agent
        .post(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/scim+json")
        .send(body.to_string())
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.body_mut().read_json::<Value>().ok()?))
}

/// The default tenant's feed numbers, read from the database.
fn feed_seqs(db: &TestDb) -> Vec<i64> {
    let pool = scimitar::storage::pool::open(&db.url, scimitar::config::SqliteSync::Normal, 1)
        .expect("open");
    let mut conn = pool.get().expect("conn");
    scimitar::storage::feed::all(&mut conn.db(), &"default".into())
        .expect("feed")
        .into_iter()
        .map(|e| e.seq)
        .collect()
}

fn new_user(name: String) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

/// kill -9 while 16 clients create users (their writes batched): after a restart every
/// acknowledged user is there, and the feed has no gap.
#[test]
fn a_killed_server_loses_no_acknowledged_write() {
    use std::sync::{Arc, Mutex};
    let db = TestDb::new();
    let server = spawn(&db);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (base, acked) = (server.base.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = agent();
                for i in 0..10_000 {
                    let body = new_user(format!("k{c}-{i}"));
                    match try_post(&agent, &format!("{base}/Users"), &body) {
                        Some((201, u)) => acked
                            .lock()
                            .unwrap()
                            .push(u["id"].as_str().unwrap().to_string()),
                        Some((status, body)) => panic!("{status}: {body}"),
                        // The server is gone: what it acknowledged is all that counts.
                        None => return,
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 400 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(server); // SIGKILL, mid-load
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let again = spawn(&db);
    let client = agent();
    for id in &acked {
        let (status, body) = send(&client, "GET", &format!("{}/Users/{id}", again.base), None);
        assert_eq!(status, 200, "acknowledged user {id} lost: {body}");
    }
    let seqs = feed_seqs(&db);
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "the feed has a gap after the kill");
    assert!(seqs.len() >= acked.len());
}

/// Two servers on one database, 8 writers each on one tenant: every write acknowledged once,
/// and a reader polling the feed meanwhile never sees a gap or a number go back.
#[test]
fn two_servers_sixteen_writers_keep_one_gap_free_feed() {
    const EACH: usize = 25;
    let db = TestDb::new();
    let (a, b) = (spawn(&db), spawn(&db));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pool = scimitar::storage::pool::open(&db.url, scimitar::config::SqliteSync::Normal, 1)
        .expect("open");
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last = 0i64;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let mut conn = pool.get().expect("conn");
                let w = scimitar::storage::feed::SeqWindow {
                    after: last,
                    limit: 1000,
                };
                for e in scimitar::storage::feed::after(&mut conn.db(), &"default".into(), w)
                    .expect("feed")
                {
                    assert_eq!(e.seq, last + 1, "the feed skipped or reordered a number");
                    last = e.seq;
                }
                if finished {
                    return last;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let base = if w % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            std::thread::spawn(move || {
                let agent = agent();
                for i in 0..EACH {
                    let (status, body) = send(
                        &agent,
                        "POST",
                        &format!("{base}/Users"),
                        Some(new_user(format!("t{w}-{i}"))),
                    );
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let last = reader.join().unwrap();
    let seqs = feed_seqs(&db);
    assert_eq!(seqs.len() as i64, last);
    let expected: Vec<i64> = (1..=last).collect();
    assert_eq!(seqs, expected);
    let (status, users) = send(&agent(), "GET", &format!("{}/Users?count=1", a.base), None);
    assert_eq!(status, 200);
    assert_eq!(users["totalResults"], 16 * EACH);
}

/// Substring searches choose which trigrams to read from counts the process keeps (SQLite):
/// the first search after start (nothing counted yet), a warm one, and the first after a
/// restart answer the same rows.
#[test]
fn first_substring_search_after_a_restart_matches_a_warm_one() {
    let db = TestDb::new();
    let server = spawn(&db);
    let client = agent();
    let mut want = std::collections::BTreeSet::new();
    for i in 0..40 {
        let domain = if i % 3 == 0 {
            "alias.example.org"
        } else {
            "home.test"
        };
        let mut body = new_user(format!("s{i}"));
        body["emails"] = json!([{"value": format!("p{i}@{domain}"), "type": "work"}]);
        let (status, u) = send(
            &client,
            "POST",
            &format!("{}/Users", server.base),
            Some(body),
        );
        assert_eq!(status, 201, "{u}");
        if i % 3 == 0 {
            want.insert(u["id"].as_str().unwrap().to_string());
        }
    }
    let search = |base: &str, operand: &str| {
        let filter: String = url::form_urlencoded::byte_serialize(
            format!("emails.value co \"{operand}\"").as_bytes(),
        )
        .collect();
        let (status, body) = send(
            &client,
            "GET",
            &format!("{base}/Users?count=100&attributes=id&filter={filter}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["Resources"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| r["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cold: std::collections::BTreeSet<String> = search(&server.base, "@alias.ex");
    assert_eq!(cold, want, "first search after start");
    let warm: std::collections::BTreeSet<String> = search(&server.base, "@alias.ex");
    assert_eq!(warm, want, "warm search");
    drop(server);
    let again = spawn(&db);
    let restarted: std::collections::BTreeSet<String> = search(&again.base, "@alias.ex");
    assert_eq!(restarted, want, "first search after a restart");
    // A substring no value holds (its trigrams counted as absent) matches nothing, cold or warm.
    assert!(search(&again.base, "@aliaz").is_empty());
    assert!(search(&again.base, "@aliaz").is_empty());
}
