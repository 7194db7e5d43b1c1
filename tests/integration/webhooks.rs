//! Webhooks in production (issue 12), through the app and the real delivery threads, on
//! SQLite and Postgres: https receivers with a private CA trusted through --webhook-ca-file
//! (and an untrusted one failing alone), the destination policy at registration and at
//! delivery, redirects not followed, one tenant's hanging receiver not delaying another's,
//! the circuit breaker, a panicking attempt recorded while the rest is delivered, pruning,
//! the subscription cap and the wake-up rung only by commits that queued deliveries.
//! Receivers listen on 127.0.0.1, so every test that delivers opts in to `loopback`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{json, Value};

use scimitar::auth::Scope;
use scimitar::config::ServeArgs;
use scimitar::http::AppState;
use scimitar::storage::sql::{Bind, Sql};

use crate::common::*;

const CREATE: &str = "urn:ietf:params:scim:event:prov:create:full";

/// `sql` with `binds` for its `?`s, in order.
fn statement(sql: &str, binds: Vec<Bind>) -> Sql {
    let mut q = Sql::new("");
    let mut parts = sql.split('?');
    q.push(parts.next().unwrap_or(""));
    for (part, b) in parts.zip(binds) {
        q.bind(b);
        q.push(part);
    }
    q
}

/// A count of the database, for what no API shows (the breaker's state).
fn count(state: &web::Data<AppState>, sql: &str, binds: Vec<Bind>) -> i64 {
    let mut conn = state.service.pool.get().expect("conn");
    conn.db().count(&statement(sql, binds)).expect("count")
}

/// `count` of a statement whose one `?` is a subscription's id.
fn count_of(state: &web::Data<AppState>, sql: &str, hook: &str) -> i64 {
    count(state, sql, vec![Bind::text(hook)])
}

/// How many deliveries a subscription has, whatever their status.
fn all_deliveries(state: &web::Data<AppState>, hook: &str) -> i64 {
    count_of(
        state,
        "SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = ?",
        hook,
    )
}

/// How many of a subscription's deliveries were attempted and failed last with `error`.
fn failed_with(state: &web::Data<AppState>, hook: &str, error: &str) -> i64 {
    count(
        state,
        "SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = ? AND attempts > 0 AND last_error = ?",
        vec![Bind::text(hook), Bind::text(error)],
    )
}

/// Changes rows behind the server's back (to age them).
fn execute(state: &web::Data<AppState>, sql: &str, binds: Vec<Bind>) {
    let mut conn = state.service.pool.get().expect("conn");
    conn.db().execute(&statement(sql, binds)).expect(sql);
}

/// Starts delivery as `serve` would, with `tweak` applied to its settings (test hooks).
fn start_with(
    state: &web::Data<AppState>,
    a: &ServeArgs,
    tweak: impl FnOnce(&mut scimitar::webhooks::Settings),
) -> scimitar::webhooks::Workers {
    let mut settings = scimitar::server::webhook_settings(&a.webhooks);
    tweak(&mut settings);
    scimitar::webhooks::start(
        state.service.pool.clone(),
        state.service.webhooks.clone(),
        settings,
    )
}

/// How many of a subscription's deliveries are in `status` (with `error`, when given).
fn deliveries(state: &web::Data<AppState>, hook: &str, status: &str, error: Option<&str>) -> i64 {
    match error {
        Some(e) => count(
            state,
            "SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = ? AND status = ? AND last_error = ?",
            vec![Bind::text(hook), Bind::text(status), Bind::text(e)],
        ),
        None => count(
            state,
            "SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = ? AND status = ?",
            vec![Bind::text(hook), Bind::text(status)],
        ),
    }
}

/// The `lastError` of a subscription's deliveries, newest first, as its tenant's admin
/// reads them (`GET /api/v1/webhooks/{id}/deliveries`).
async fn last_errors<S: TestApp>(app: &S, admin: &str, hook: &str) -> Vec<Value> {
    let r = get(app, admin, &format!("/api/v1/webhooks/{hook}/deliveries")).await;
    items(&r).iter().map(|d| d["lastError"].clone()).collect()
}

/// Waits until `done` holds; panics after PATIENCE naming `what`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a user in the tenant of `token` through SCIM.
async fn create_user_as<S: TestApp>(app: &S, token: &str, user_name: &str) -> String {
    let body = okta_user(user_name, "Ops", "Engineer");
    let r = send(app, as_(token, "POST", "/scim/v2/Users", Some(&body))).await;
    r.expect(201);
    r.body["id"].as_str().expect("id").to_string()
}

/// A tenant of its own with a SCIM token and an admin token.
fn tenant(state: &web::Data<AppState>, name: &str) -> (String, String) {
    (
        tenant_with_token(state, name, Scope::Write),
        tenant_with_token(state, name, Scope::Admin),
    )
}

// ---------------------------------------------------------------------------------------
// Certificates

/// A CA made for one test, and receiver certificates it signs.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).expect("self-signed ca");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1 and its key, as PEM.
    fn identity(&self) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer).expect("signed leaf");
        (cert.pem(), key.serialize_pem())
    }
}

// ---------------------------------------------------------------------------------------
// (1) https, trusted through --webhook-ca-file; an untrusted certificate fails alone

#[actix_web::test]
async fn https_receivers_trusted_through_the_ca_file_and_an_untrusted_one_fails_alone() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("dir");
    let ours = Ca::new("Scimitar test CA");
    let ca_file = dir.path().join("receivers.pem");
    std::fs::write(&ca_file, &ours.pem).expect("write ca file");
    let mut a = hook_args(&db);
    a.webhooks.webhook_ca_file = Some(ca_file);
    let (app, state) = app_with(a.clone()).await;
    let workers = scimitar::server::start_webhooks(&a, &state);

    // Tenant "good": an https receiver whose certificate our CA signed.
    let trusted = {
        let (cert, key) = ours.identity();
        Receiver::start_tls(200, &cert, &key)
    };
    assert!(
        trusted.url.starts_with("https://localhost:"),
        "{}",
        trusted.url
    );
    let (good_scim, good_admin) = tenant(&state, "good");
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    subscribe(&app, &good_admin, &trusted.url, &[CREATE], Some(&secret)).await;
    // The same receiver by address: verified against the certificate's IP name.
    let by_ip = trusted.url.replace("localhost", "127.0.0.1");
    subscribe(&app, &good_admin, &by_ip, &[CREATE], Some(&secret)).await;

    // Tenant "bad": an https receiver whose CA nobody trusts.
    let stranger = Ca::new("Somebody else's CA");
    let untrusted = {
        let (cert, key) = stranger.identity();
        Receiver::start_tls(200, &cert, &key)
    };
    let (bad_scim, bad_admin) = tenant(&state, "bad");
    let (bad_hook, _) = subscribe(&app, &bad_admin, &untrusted.url, &[CREATE], None).await;

    create_user_as(&app, &bad_scim, "first@bad.example").await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(create_user_as(&app, &good_scim, &format!("u{i}@good.example")).await);
        create_user_as(&app, &bad_scim, &format!("u{i}@bad.example")).await;
    }
    let hits = trusted
        .until("the good tenant's deliveries over https", |h| {
            h.iter().filter(|x| x.ok()).count() >= 6
        })
        .await;
    for h in &hits {
        verify(h, &secret);
    }
    let got: Vec<String> = hits
        .iter()
        .map(|h| h.event()["resourceId"].as_str().unwrap_or("").to_string())
        .collect();
    for u in &users {
        assert_eq!(got.iter().filter(|g| *g == u).count(), 2, "{u}: {got:?}");
    }
    // The untrusted receiver never got a request (the handshake failed), and its
    // subscription's deliveries say why.
    eventually("the untrusted subscription's failures", || {
        failed_with(&state, &bad_hook, "tls") >= 1
    })
    .await;
    assert!(untrusted.hits().is_empty(), "{:?}", untrusted.hits());
    assert_eq!(deliveries(&state, &bad_hook, "delivered", None), 0);
    assert!(last_errors(&app, &bad_admin, &bad_hook)
        .await
        .iter()
        .all(|e| e.is_null() || e == "tls"));
    workers.shutdown();

    // Without the CA file, our receiver is not trusted either (the trust came from it).
    let mut plain = a.clone();
    plain.webhooks.webhook_ca_file = None;
    let fresh = TestDb::new();
    plain.db.database_url = fresh.url.clone();
    let (app2, state2) = app_with(plain.clone()).await;
    let admin2 = admin_token(&state2);
    let (hook2, _) = subscribe(&app2, &admin2, &trusted.url, &[CREATE], None).await;
    let workers2 = scimitar::server::start_webhooks(&plain, &state2);
    let before = trusted.hits().len();
    create_user(&app2, "nobody@trust.example").await;
    eventually("a tls failure without the CA file", || {
        deliveries(&state2, &hook2, "pending", Some("tls")) >= 1
    })
    .await;
    assert_eq!(trusted.hits().len(), before);
    workers2.shutdown();
}

#[actix_web::test]
async fn a_ca_file_that_holds_no_certificate_stops_the_server() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let mut a = args(&db);
    for (file, says) in [
        (bad, "--webhook-ca-file"),
        (dir.path().join("missing.pem"), "missing.pem"),
    ] {
        a.webhooks.webhook_ca_file = Some(file);
        let e = scimitar::server::build_state(&a).err().expect("refused");
        assert!(e.contains(says), "{e}");
    }
    a.webhooks.webhook_ca_file = None;
    a.webhooks.webhook_allowed_hosts = "10.0.0.0/33".into();
    let e = scimitar::server::build_state(&a).err().expect("refused");
    assert!(
        e.contains("--webhook-allowed-hosts") && e.contains("10.0.0.0/33"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// (2) The destination policy

/// Every refused form at registration: 400 naming the reason and the flag, nothing stored.
#[actix_web::test]
async fn every_refused_destination_is_a_400_naming_the_flag() {
    let (_db, app, state) = app_state().await; // the default policy: external
    let admin = admin_token(&state);
    let rx = Receiver::start(200);
    let register = |url: &str| {
        let body = json!({"url": url, "events": ["*"]});
        post(&app, &admin, "/api/v1/webhooks", Some(body))
    };
    // Refused by the destination policy: the detail names the reason and the flag.
    for (says, urls) in [
        (
            "loopback",
            vec![
                rx.url.as_str(),
                "http://127.0.0.1:5432/",
                "http://localhost/hook",
                "http://[::1]/",
                "http://2130706433/",
                "http://0x7f.1/",
                "http://0177.0.0.1/",
                "http://127.1/",
                "http://[::ffff:127.0.0.1]/",
                "http://[::ffff:7f00:1]/",
                "http://[::127.0.0.1]/",
            ],
        ),
        (
            "link-local",
            vec![
                "http://169.254.169.254/latest/meta-data/",
                "http://[fe80::1]/",
                "http://[::ffff:169.254.169.254]/",
            ],
        ),
        (
            "private",
            vec![
                "http://10.0.0.1/",
                "http://192.168.1.10/",
                "http://100.64.0.1/",
                "http://[fd00::1]/",
            ],
        ),
        (
            "unspecified",
            vec!["http://0/", "http://0.0.0.0:8080/", "http://[::]/"],
        ),
        ("multicast", vec!["http://224.0.0.1/", "http://[ff02::1]/"]),
        ("broadcast", vec!["http://255.255.255.255/"]),
        ("reserved", vec!["http://192.0.2.1/"]),
    ] {
        for url in urls {
            let r = register(url).await;
            assert_eq!(r.status.as_u16(), 400, "{url}: {}", r.raw);
            let detail = api_error(&r, 400, "bad_request");
            assert!(
                detail.contains(says) && detail.contains("--webhook-allowed-hosts"),
                "{url}: {detail}"
            );
        }
    }
    // Refused whatever the policy: the detail names the reason.
    for (url, says) in [
        ("https://user:secret@hooks.example.com/", "credentials"),
        ("https://hooks.example.com@10.0.0.1/", "credentials"),
        ("ftp://hooks.example.com/", "http and https"),
        ("gopher://hooks.example.com/", "http and https"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("not a url", "not a valid URL"),
    ] {
        let r = register(url).await;
        assert_eq!(r.status.as_u16(), 400, "{url}: {}", r.raw);
        let detail = api_error(&r, 400, "bad_request");
        assert!(detail.contains(says), "{url}: {detail}");
    }
    let r = get(&app, &admin, "/api/v1/webhooks").await;
    assert_eq!(items(&r), Vec::<Value>::new());
    // A public host is fine; its URL is stored normalised.
    let r = register("HTTPS://Hooks.Example.COM/scim").await;
    assert_eq!(ok(&r, 201)["url"], "https://hooks.example.com/scim");
    assert!(rx.hits().is_empty());
}

/// At delivery, the address actually connected to is checked: a subscription registered
/// while loopback was allowed (or a name that now resolves to it) is refused once the
/// policy refuses it, and nothing reaches the receiver; allowed again, it is delivered.
#[actix_web::test]
async fn the_policy_is_checked_again_at_delivery() {
    let db = TestDb::new();
    let open = hook_args(&db); // loopback allowed
    let mut closed = open.clone();
    closed.webhooks.webhook_allowed_hosts = "external".into();
    let (app, state) = app_with(open.clone()).await;
    let admin = admin_token(&state);
    let by_address = Receiver::start(200);
    let by_name = Receiver::start(200);
    let name_url = by_name.url.replace("127.0.0.1", "localhost");
    let (hook_a, _) = subscribe(&app, &admin, &by_address.url, &[CREATE], None).await;
    let (hook_n, _) = subscribe(&app, &admin, &name_url, &[CREATE], None).await;

    // Delivery by an instance that refuses loopback.
    let strict = state_of(&closed);
    let workers = scimitar::server::start_webhooks(&closed, &strict);
    create_user(&app, "refused@example.com").await;
    for hook in [&hook_a, &hook_n] {
        eventually("a refusal at delivery", || {
            deliveries(
                &state,
                hook,
                "pending",
                Some("refused by destination policy"),
            ) >= 1
        })
        .await;
    }
    workers.shutdown();
    assert!(by_address.hits().is_empty() && by_name.hits().is_empty());
    for hook in [&hook_a, &hook_n] {
        assert_eq!(
            last_errors(&app, &admin, hook).await,
            vec![json!("refused by destination policy")]
        );
    }

    // The instance that allows it delivers them.
    let workers = scimitar::server::start_webhooks(&open, &state);
    by_address
        .until("delivery once allowed", |h| !h.is_empty())
        .await;
    by_name
        .until("delivery by name once allowed", |h| !h.is_empty())
        .await;
    workers.shutdown();
}

fn state_of(a: &ServeArgs) -> web::Data<AppState> {
    crate::common::state(a)
}

#[actix_web::test]
async fn a_redirect_is_a_failed_attempt_never_followed() {
    let (_db, a, app, state, admin) = hook_app(|_| {}).await;
    let target = Receiver::start(200);
    let redirecting = Receiver::start(200);
    redirecting.redirect(&target.url);
    let (hook, _) = subscribe(&app, &admin, &redirecting.url, &[CREATE], None).await;
    let workers = scimitar::server::start_webhooks(&a, &state);
    create_user(&app, "redirected@example.com").await;
    redirecting.until("the attempt", |h| !h.is_empty()).await;
    eventually("the 302 recorded", || {
        deliveries(&state, &hook, "pending", Some("http 302")) == 1
    })
    .await;
    assert!(target.hits().is_empty(), "the redirect was followed");
    assert_eq!(
        last_errors(&app, &admin, &hook).await,
        vec![json!("http 302")]
    );
    assert_eq!(deliveries(&state, &hook, "delivered", None), 0);
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (3) Fairness

/// A listener that never accepts: connections wait in its backlog, attempts hang until
/// their timeout.
fn hanging() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hangs", l.local_addr().expect("addr"));
    (l, url)
}

/// Tenant A's receiver hangs on accept with 1,000 deliveries queued for it; tenant B's
/// deliveries arrive within 2 s anyway.
#[actix_web::test]
async fn a_hanging_receiver_with_a_thousand_queued_does_not_delay_another_tenant() {
    // Longer than the whole test: A's attempts hang throughout.
    let (_db, a, app, state, _) = hook_app(|a| a.webhooks.webhook_timeout_ms = 30_000).await;
    let workers = scimitar::server::start_webhooks(&a, &state);
    let (listener, hang_url) = hanging();
    let (a_scim, a_admin) = tenant(&state, "tenant-a");
    let (hook_a, _) = subscribe(&app, &a_admin, &hang_url, &[CREATE], None).await;
    let ops: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": okta_user(&format!("a{i}@a.example"), "Ops", "Engineer")})
        })
        .collect();
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                      "Operations": ops});
    let r = send(&app, as_(&a_scim, "POST", "/scim/v2/Bulk", Some(&bulk))).await;
    r.expect(200);
    assert_eq!(all_deliveries(&state, &hook_a), 1000);

    let (b_scim, b_admin) = tenant(&state, "tenant-b");
    let rx = Receiver::start(200);
    subscribe(&app, &b_admin, &rx.url, &[CREATE], None).await;
    // A's attempts are in flight and hanging by now.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5 {
        let t = Instant::now();
        let id = create_user_as(&app, &b_scim, &format!("b{i}@b.example")).await;
        let hits = rx
            .until("tenant B's delivery", |h: &[Hit]| {
                h.iter().any(|x| x.event()["resourceId"] == id.as_str())
            })
            .await;
        assert!(!hits.is_empty());
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "B's delivery {i} took {took:?}"
        );
    }
    // A's backlog holds no more than its share of the attempt threads: almost all of it
    // is still waiting, unattempted.
    let attempted = count_of(
        &state,
        "SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = ? AND (attempts > 0 OR lease_until > 0)",
        &hook_a,
    );
    let cap =
        i64::try_from(scimitar::server::webhook_settings(&a.webhooks).per_subscription()).unwrap();
    assert!(
        attempted <= cap,
        "{attempted} of A's deliveries taken (cap {cap})"
    );
    // Closing A's listener resets its hanging connections: the attempts end, are recorded.
    drop(listener);
    workers.shutdown();
    assert!(deliveries(&state, &hook_a, "pending", Some("connect")) >= 1);
}

/// A receiver that keeps failing is backed off as a whole: while its circuit is open its
/// backlog is not attempted (one probe at a time), and when it answers again everything
/// is delivered.
#[actix_web::test]
async fn a_failing_receiver_trips_its_circuit_and_recovers() {
    let (_db, a, app, state, admin) = hook_app(|a| {
        a.webhooks.webhook_timeout_ms = 200;
        a.webhooks.webhook_backoff_ms = 300;
        a.webhooks.webhook_max_backoff_ms = 600;
    })
    .await;
    let rx = Receiver::start(500);
    let (hook, _) = subscribe(&app, &admin, &rx.url, &[CREATE], None).await;
    let workers = scimitar::server::start_webhooks(&a, &state);
    let mut users = Vec::new();
    for i in 0..30 {
        users.push(create_user(&app, &format!("down{i}@example.com")).await);
    }
    let open = "SELECT COUNT(*) AS n FROM webhooks WHERE id = ? AND failures >= 5";
    eventually("the circuit to open", || count_of(&state, open, &hook) == 1).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let hits = rx.hits().len();
    // Without the breaker each of the 30 would have been tried, most of them twice or
    // more by now; with it, a handful plus one probe at a time.
    assert!(hits < 30, "{hits} attempts against a dead receiver");
    rx.answer(200);
    rx.until("every delivery after recovery", |h| {
        let ok: std::collections::HashSet<String> = h
            .iter()
            .filter(|x| x.ok())
            .map(|x| x.event()["resourceId"].as_str().unwrap_or("").to_string())
            .collect();
        users.iter().all(|u| ok.contains(u))
    })
    .await;
    let closed =
        "SELECT COUNT(*) AS n FROM webhooks WHERE id = ? AND failures = 0 AND open_until = 0";
    eventually("the circuit to close", || {
        count_of(&state, closed, &hook) == 1
    })
    .await;
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (4) No panic ends delivery

#[actix_web::test]
async fn a_panicking_attempt_is_a_failed_attempt_and_the_rest_is_delivered() {
    let (_db, a, app, state, admin) = hook_app(|_| {}).await;
    let rx = Receiver::start(200);
    let panics = format!("{}/panics", rx.url);
    let (bad, _) = subscribe(&app, &admin, &panics, &[CREATE], None).await;
    let (good, _) = subscribe(&app, &admin, &rx.url, &[CREATE], None).await;
    let workers = start_with(&state, &a, |s| {
        s.hook = Some(Arc::new(|url: &str| {
            if url.ends_with("/panics") {
                panic!("a bug in an attempt");
            }
        }))
    });
    for i in 0..20 {
        create_user(&app, &format!("p{i}@example.com")).await;
    }
    rx.until("the healthy subscription's deliveries", |h| {
        h.iter().filter(|x| x.ok()).count() >= 20
    })
    .await;
    eventually("the panics recorded as failed attempts", || {
        failed_with(&state, &bad, "internal error") >= 1
    })
    .await;
    eventually("the healthy deliveries recorded", || {
        deliveries(&state, &good, "delivered", None) == 20
    })
    .await;
    let errors = last_errors(&app, &admin, &bad).await;
    assert!(errors.contains(&json!("internal error")), "{errors:?}");
    assert!(rx.hits().iter().all(|h| h.path == "/hooks/scimitar"));
    // The threads live on: later deliveries still arrive.
    create_user(&app, "after@example.com").await;
    rx.until("a delivery after the panics", |h| {
        h.iter().filter(|x| x.ok()).count() >= 21
    })
    .await;
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (5) Bounded growth

#[actix_web::test]
async fn settled_deliveries_are_pruned_after_the_retention() {
    let (_db, a, app, state, admin) = hook_app(|a| a.webhooks.webhook_retention_hours = 1).await;
    let rx = Receiver::start(200);
    let (hook, _) = subscribe(&app, &admin, &rx.url, &[CREATE], None).await;
    let workers = start_with(&state, &a, |s| s.prune_every = Duration::from_millis(100));
    for i in 0..6 {
        create_user(&app, &format!("old{i}@example.com")).await;
    }
    eventually("six delivered", || {
        deliveries(&state, &hook, "delivered", None) == 6
    })
    .await;
    // Three settled two hours ago (one of them a dead letter), three just now.
    let two_hours_ago = scimitar::scim::time::now_micros() - 2 * 3_600_000_000;
    execute(
        &state,
        "UPDATE deliveries SET settled_at = ? WHERE id IN (SELECT id FROM deliveries \
         WHERE webhook_id = ? ORDER BY seq LIMIT 3)",
        vec![Bind::Int(two_hours_ago), Bind::text(&hook)],
    );
    execute(
        &state,
        "UPDATE deliveries SET status = 'dead' WHERE id IN (SELECT id FROM deliveries \
         WHERE webhook_id = ? ORDER BY seq LIMIT 1)",
        vec![Bind::text(&hook)],
    );
    eventually("the old ones pruned", || all_deliveries(&state, &hook) == 3).await;
    assert_eq!(deliveries(&state, &hook, "delivered", None), 3);
    // Pending deliveries are never pruned, whatever their age.
    rx.answer(503);
    create_user(&app, "pending@example.com").await;
    eventually("a pending retry", || {
        deliveries(&state, &hook, "pending", Some("http 503")) == 1
    })
    .await;
    execute(
        &state,
        "UPDATE deliveries SET created = ? WHERE webhook_id = ? AND status = 'pending'",
        vec![Bind::Int(two_hours_ago), Bind::text(&hook)],
    );
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(deliveries(&state, &hook, "pending", None), 1);
    workers.shutdown();
}

#[actix_web::test]
async fn a_tenant_has_at_most_the_subscriptions_the_server_allows() {
    let (_db, app, state) = app_where(|a| a.webhooks.webhook_max_subscriptions = 2).await;
    let admin = admin_token(&state);
    let (_, other_admin) = tenant(&state, "other");
    let body = |n: usize| json!({"url": format!("https://hooks{n}.example.com/"), "events": ["*"]});
    let mut ids = Vec::new();
    for n in 0..2 {
        let r = post(&app, &admin, "/api/v1/webhooks", Some(body(n))).await;
        ids.push(ok(&r, 201)["id"].as_str().unwrap().to_string());
    }
    let r = post(&app, &admin, "/api/v1/webhooks", Some(body(3))).await;
    let detail = api_error(&r, 409, "conflict");
    assert!(detail.contains("--webhook-max-subscriptions"), "{detail}");
    let r = get(&app, &admin, "/api/v1/webhooks").await;
    assert_eq!(items(&r).len(), 2);
    // Another tenant has its own allowance.
    let r = post(&app, &other_admin, "/api/v1/webhooks", Some(body(4))).await;
    ok(&r, 201);
    // One deleted, one more fits.
    let r = delete(&app, &admin, &format!("/api/v1/webhooks/{}", ids[0])).await;
    ok(&r, 204);
    let r = post(&app, &admin, "/api/v1/webhooks", Some(body(5))).await;
    ok(&r, 201);
}

/// Delivery is woken only by commits that queued deliveries: a tenant without webhooks
/// costs it nothing.
#[actix_web::test]
async fn only_commits_that_queued_deliveries_wake_delivery() {
    let (_db, app, state) = app_state().await;
    let hub = state.service.webhooks.clone();
    let before = hub.wakeups();
    for i in 0..5 {
        create_user(&app, &format!("quiet{i}@example.com")).await;
    }
    assert_eq!(hub.wakeups(), before, "no subscription, no wake-up");
    let admin = admin_token(&state);
    let r = post(
        &app,
        &admin,
        "/api/v1/webhooks",
        Some(json!({"url": "https://hooks.example.com/", "events": [CREATE]})),
    )
    .await;
    ok(&r, 201);
    create_user(&app, "heard@example.com").await;
    assert_eq!(hub.wakeups(), before + 1);
    // An event the subscription does not want queues nothing and wakes nothing.
    let id = scim_create(&app, okta_user("other@example.com", "X", "Y")).await;
    let woken = hub.wakeups();
    let r = patch(
        &app,
        &format!("/scim/v2/Users/{id}"),
        json!([{"op": "replace", "path": "title", "value": "Z"}]),
    )
    .await;
    r.expect(200);
    assert_eq!(hub.wakeups(), woken);
}
