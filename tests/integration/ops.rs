//! Running it as a service: the probes (`/healthz`, `/readyz`, and readiness failing when the
//! database goes away), `/metrics` as Prometheus text whose counters move with requests, the
//! request id, and the access log's redaction, on both backends.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::common::*;

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

#[actix_web::test]
async fn healthz_and_readyz_answer_without_credentials() {
    let (app, _db) = app().await;
    let r = send(&app, get("/healthz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = send(&app, get("/readyz")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body,
        json!({"status": "ready", "checks": {"database": "ok", "migrations": "ok", "webhooks": "ok"}})
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    // Not under the SCIM base path, and other methods are refused.
    assert_eq!(send(&app, get("/scim/v2/healthz")).await.status, 404);
    assert_eq!(
        send(&app, TestRequest::post().uri("/readyz")).await.status,
        405
    );
}

/// A TCP relay to Postgres that can be cut: every relayed connection is shut and new ones
/// are refused, as when the database server stops.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, s) = (cut.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if c.load(Ordering::SeqCst) {
                    return; // drops the listener: connections are refused from now on
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                s.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, cut, streams }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop, which then ends
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

async fn ready_status<S: TestApp>(app: &S) -> Resp {
    send(app, get("/readyz")).await
}

/// Readiness is 503, naming the database, when the database cannot be reached: on SQLite
/// the file is gone or read-only, on Postgres the server stopped answering (a relay in
/// front of it is cut). Liveness stays 200 throughout.
#[actix_web::test]
async fn readiness_fails_when_the_database_is_unreachable() {
    let db = TestDb::new();
    let mut a = args(&db);
    let relay = if db.is_postgres() {
        let mut url = url::Url::parse(&db.url).unwrap();
        let upstream: SocketAddr =
            format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
                .parse()
                .unwrap();
        let relay = Relay::to(upstream);
        url.set_port(Some(relay.addr.port())).unwrap();
        a.db.database_url = url.to_string();
        Some(relay)
    } else {
        None
    };
    let (app, _state) = app_with(a).await;
    let r = ready_status(&app).await;
    assert_eq!(r.status, 200, "{}", r.raw);

    if let Some(relay) = &relay {
        relay.cut();
        for _ in 0..2 {
            // The first probe finds a pooled connection dead, the next cannot connect.
            let r = ready_status(&app).await;
            assert_eq!(r.status, 503, "{}", r.raw);
            assert_eq!(r.body["status"], "unready");
            let why = r.body["checks"]["database"].as_str().unwrap();
            assert!(
                why.contains("did not answer") || why.contains("no pooled connection"),
                "{why}"
            );
            assert!(
                !r.raw.contains("127.0.0.1"),
                "no connection details: {}",
                r.raw
            );
        }
    } else {
        let file = db.url.strip_prefix("sqlite://").unwrap().to_string();
        let moved = format!("{file}.away");
        std::fs::rename(&file, &moved).unwrap();
        let r = ready_status(&app).await;
        assert_eq!(r.status, 503, "{}", r.raw);
        assert_eq!(
            r.body["checks"]["database"],
            "the database file is missing, not a file, or read-only"
        );
        assert!(!r.raw.contains(&file), "no path in the answer: {}", r.raw);
        std::fs::rename(&moved, &file).unwrap();
        assert_eq!(ready_status(&app).await.status, 200);

        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
        assert_eq!(ready_status(&app).await.status, 503);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(ready_status(&app).await.status, 200);
    }
    assert_eq!(send(&app, get("/healthz")).await.status, 200);
}

/// The value of the sample of `name` whose labels include every pair of `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

async fn scrape<S: TestApp>(app: &S) -> prometheus_parse::Scrape {
    let r = send(app, get("/metrics")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    for line in r.raw.lines() {
        assert!(
            line.is_empty() || line.starts_with('#') || line.starts_with("scimitar_"),
            "not exposition format: {line}"
        );
    }
    parse_metrics(&r.raw)
}

const LIST: &str = "/scim/v2/:rtype";

#[actix_web::test]
async fn metrics_parse_and_the_request_counter_moves() {
    let (app, _db) = app().await;
    create_user(&app, "counted").await;
    let before = scrape(&app).await;
    let ok = [("route", LIST), ("method", "GET"), ("status", "2xx")];
    let n0 = sample(&before, "scimitar_http_requests_total", &ok).unwrap_or(0.0);
    for _ in 0..3 {
        call(&app, "GET", "/scim/v2/Users", None).await.expect(200);
    }
    // A 4xx is counted in its class, under the route's template.
    call(&app, "GET", "/scim/v2/Users?filter=bad%20filter", None)
        .await
        .expect(400);
    let after = scrape(&app).await;
    assert_eq!(
        sample(&after, "scimitar_http_requests_total", &ok),
        Some(n0 + 3.0)
    );
    assert_eq!(
        sample(
            &after,
            "scimitar_http_requests_total",
            &[("route", LIST), ("method", "GET"), ("status", "4xx")]
        ),
        Some(1.0)
    );
    let created = [("route", LIST), ("method", "POST"), ("status", "2xx")];
    assert_eq!(
        sample(&after, "scimitar_http_requests_total", &created),
        Some(1.0)
    );
    // The histogram, the pool, the write path and the delivery side are there too.
    assert!(after
        .samples
        .iter()
        .any(|s| s.metric == "scimitar_http_request_duration_seconds"));
    assert_eq!(sample(&after, "scimitar_db_pool_max", &[]), Some(4.0));
    assert!(sample(&after, "scimitar_db_pool_in_use", &[]).is_some());
    assert!(after
        .samples
        .iter()
        .any(|s| s.metric == "scimitar_write_commit_seconds"));
    for status in ["pending", "delivered", "dead"] {
        assert_eq!(
            sample(&after, "scimitar_webhook_deliveries", &[("status", status)]),
            Some(0.0),
            "{status}"
        );
    }
    assert_eq!(
        sample(&after, "scimitar_webhook_oldest_pending_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&after, "scimitar_webhook_deliveries_retrying", &[]),
        Some(0.0)
    );
    // No tenant without --metrics-per-tenant.
    assert!(after
        .samples
        .iter()
        .all(|s| s.labels.get("tenant").is_none()));
}

/// With `--metrics-per-tenant`, requests and deliveries are counted per tenant; pending
/// deliveries show in the delivery gauges and the feed head lag.
#[actix_web::test]
async fn per_tenant_metrics_and_delivery_gauges() {
    let (_db, app, state) = app_where(|a| {
        a.ops.metrics_per_tenant = true;
        a.webhooks.webhook_allowed_hosts = "*".into();
    })
    .await;
    let admin = admin_token(&state);
    let r = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/webhooks")
            .insert_header(("Authorization", format!("Bearer {admin}")))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(
                json!({"url": "https://receiver.invalid/hook", "events": ["*"]}).to_string(),
            ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    for i in 0..2 {
        create_user(&app, &format!("queued{i}")).await;
    }
    let m = scrape(&app).await;
    assert_eq!(
        sample(
            &m,
            "scimitar_tenant_requests_total",
            &[("tenant", "default"), ("status", "2xx")]
        ),
        Some(3.0),
        "the subscription and two creates"
    );
    // No delivery thread runs in this test app: the deliveries stay pending.
    let pending = sample(&m, "scimitar_webhook_deliveries", &[("status", "pending")]).unwrap();
    assert!(pending >= 2.0, "at least the two creations: {pending}");
    assert_eq!(
        sample(
            &m,
            "scimitar_tenant_webhook_deliveries",
            &[("tenant", "default"), ("status", "pending")]
        ),
        Some(pending)
    );
    let lag = sample(&m, "scimitar_feed_head_lag_events", &[]).unwrap();
    assert!(lag >= 2.0, "two events not yet delivered: {lag}");
}

#[actix_web::test]
async fn the_request_id_round_trips() {
    let (app, _db) = app().await;
    let r = send(
        &app,
        req("GET", "/scim/v2/Users").insert_header(("X-Request-Id", "trace-4711.a:b")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id").as_deref(), Some("trace-4711.a:b"));
    // Generated when absent or not sane, and on errors too.
    let r = send(&app, get("/scim/v2/Users")).await;
    assert_eq!(r.status, 401);
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let r = send(
        &app,
        get("/healthz").insert_header(("X-Request-Id", "has spaces; and more")),
    )
    .await;
    let id = r.header("x-request-id").unwrap();
    assert_ne!(id, "has spaces; and more");
    assert_eq!(id.len(), 32);
}

fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Every request is counted under its route's template: a SCIM resource (its label carried
/// by the resource, read once routed), the same resource answering 405 to a method it lacks,
/// an `/api/v1` route (its template matched again) and a path no route takes (`unmatched`).
#[actix_web::test]
async fn requests_are_counted_under_their_route_template() {
    let (app, _db) = app().await;
    call(&app, "GET", "/scim/v2/Users/no-such-id", None)
        .await
        .expect(404);
    call(&app, "POST", "/scim/v2/Users/no-such-id", Some(json!({})))
        .await
        .expect(405);
    // A SCIM token on /api/v1: its own JSON error, not SCIM's.
    let r = call(&app, "GET", "/api/v1/roles/no-such-role", None).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.raw);
    call(&app, "GET", "/no/such/route", None).await.expect(404);
    let m = scrape(&app).await;
    for (route, method, status) in [
        ("/scim/v2/:rtype/:id", "GET", "4xx"),
        ("/scim/v2/:rtype/:id", "POST", "4xx"),
        ("/api/v1/roles/:id", "GET", "4xx"),
        ("unmatched", "GET", "4xx"),
    ] {
        assert_eq!(
            sample(
                &m,
                "scimitar_http_requests_total",
                &[("route", route), ("method", method), ("status", status)]
            ),
            Some(1.0),
            "{method} {route}"
        );
    }
}

/// A real server logging JSON: the access line of a filtered list carries the request id,
/// route, tenant and credential id, and the filter with its value redacted; the email is
/// nowhere in the log. With `--log-unredacted` (text) the value is logged as sent.
#[test]
fn the_access_log_redacts_filter_values() {
    let db = TestDb::new();
    let email = "bjensen@example.com";
    let query = "/scim/v2/Users?filter=userName%20eq%20%22bjensen%40example.com%22&count=5";
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = ServerProcess::start(
        &db,
        &["--log-format", "json"],
        "info",
        Stdio::from(log.reopen().unwrap()),
    );
    let agent = http_agent();
    let r = agent
        .get(format!("{}{query}", server.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Request-Id", "redaction-test-1")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    let lines = lines_of(log.path());
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = entries
        .iter()
        .find(|e| e["id"] == "redaction-test-1")
        .unwrap_or_else(|| panic!("no access line: {lines:#?}"));
    assert_eq!(access["target"], "scimitar::access");
    assert_eq!(access["route"], LIST);
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 200);
    assert_eq!(access["tenant"], "default");
    assert_eq!(access["level"], "INFO");
    assert_eq!(
        access["uri"],
        r#"/scim/v2/Users?filter=userName eq "…"&count=5"#
    );
    assert!(access["credential"].is_string(), "{access}");
    for l in &lines {
        assert!(
            !l.contains(email) && !l.contains("bjensen"),
            "personal data: {l}"
        );
        assert!(!l.contains(TOKEN), "the token: {l}");
    }

    let log = tempfile::NamedTempFile::new().unwrap();
    let server = ServerProcess::start(
        &db,
        &["--log-unredacted"],
        "info",
        Stdio::from(log.reopen().unwrap()),
    );
    agent
        .get(format!("{}{query}", server.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    drop(server);
    let text = lines_of(log.path()).join("\n");
    assert!(text.contains(query), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

/// `--metrics-listen`: the metrics (and the probes) on their own address, and no longer on
/// the main one.
#[test]
fn metrics_on_a_separate_address() {
    let db = TestDb::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(&db, &["--metrics-listen", &addr], "warn", Stdio::null());
    let agent = http_agent();
    let r = agent.get(format!("{}/metrics", server.url)).call().unwrap();
    assert_eq!(r.status(), 404);
    let mut r = agent.get(format!("http://{addr}/metrics")).call().unwrap();
    assert_eq!(r.status(), 200);
    let text = r.body_mut().read_to_string().unwrap();
    let m = parse_metrics(&text);
    assert!(
        sample(&m, "scimitar_webhook_threads", &[("state", "expected")]).is_some_and(|v| v > 0.0),
        "this process delivers: {text}"
    );
    let mut r = agent.get(format!("http://{addr}/readyz")).call().unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["checks"]["webhooks"], "ok");
    let r = agent
        .get(format!("http://{addr}/scim/v2/Users"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 404, "SCIM is not served there");
}

fn scimitar_backup(database_url: &str, to: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_scimitar"));
    c.args(["backup", "--to"])
        .arg(to)
        .args(["--database-url", database_url])
        .env_remove("SCIMITAR_DATABASE_URL");
    c
}

/// `scimitar backup` while the server holds the database open and keeps writing: the copy
/// opens and serves every user acknowledged before the backup started. On Postgres the
/// command says to use pg_dump and changes nothing.
#[actix_web::test]
async fn backup_copies_every_acknowledged_write() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    if db.is_postgres() {
        let out = scimitar_backup(&db.url, &copy).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
        assert!(!copy.exists());
        return;
    }
    let (app, _state) = app_with(args(&db)).await;
    const BEFORE: usize = 300;
    for i in 0..BEFORE {
        create_user(&app, &format!("before-{i}")).await;
    }
    // The backup runs while this server keeps writing.
    let running = scimitar_backup(&db.url, &copy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..50 {
        create_user(&app, &format!("during-{i}")).await;
    }
    let out = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("backed up"), "{stderr}");
    assert!(out.stdout.is_empty(), "no progress bar off a terminal");
    assert!(!dir.path().join("copy.db.partial").exists());

    let mut a = args(&db);
    a.db.database_url = format!("sqlite://{}", copy.display());
    let (restored, _state) = app_with(a).await;
    let r = call(
        &restored,
        "GET",
        "/scim/v2/Users?filter=userName%20sw%20%22before-%22&count=1000&attributes=userName",
        None,
    )
    .await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], BEFORE, "{}", r.raw);
    let mut names: Vec<&str> = strs(&r.body["Resources"], "userName");
    names.sort_unstable();
    let mut expected: Vec<String> = (0..BEFORE).map(|i| format!("before-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(send(&restored, get("/readyz")).await.status, 200);

    // An existing file is never overwritten.
    let out = scimitar_backup(&db.url, &copy).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}
