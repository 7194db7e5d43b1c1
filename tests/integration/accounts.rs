//! The product side (docs/api-v1.md): SCIM writes as Entra ID and Okta send them, and what
//! they make of accounts, roles, the review queues, the change feed and signed webhook
//! deliveries, all driven over HTTP through the app (`/scim/v2` with the SCIM token,
//! `/api/v1` with an admin token). Webhooks go to a small receiver on 127.0.0.1 that checks
//! every signature itself.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use scimitar::config::ServeArgs;

use crate::common::*;

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PROV: &str = "urn:ietf:params:scim:event:prov:";

/// How long to wait for something asynchronous (a webhook delivery, a dead letter).
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Calling /api/v1

pub(crate) async fn api<S, B>(
    app: &S,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = test::TestRequest::default().method(m).uri(uri);
    if !token.is_empty() {
        r = r.insert_header(("Authorization", format!("Bearer {token}")));
    }
    if let Some(b) = body {
        r = r
            .insert_header(("Content-Type", "application/json"))
            .set_payload(b.to_string());
    }
    send(app, r).await
}

/// Asserts a success of `/api/v1`: the status and, with a body, `application/json`.
#[track_caller]
pub(crate) fn ok(r: &Resp, status: u16) -> &Value {
    assert_eq!(
        r.status.as_u16(),
        status,
        "unexpected status; body: {}",
        r.raw
    );
    if !r.raw.is_empty() {
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "body: {}",
            r.raw
        );
    }
    &r.body
}

/// Asserts an error of `/api/v1`: `{"status", "error", "detail"}` as application/json.
#[track_caller]
pub(crate) fn api_error(r: &Resp, status: u16, code: &str) -> String {
    assert_eq!(
        r.status.as_u16(),
        status,
        "unexpected status; body: {}",
        r.raw
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "body: {}",
        r.raw
    );
    assert_eq!(r.body["status"], json!(status), "body: {}", r.raw);
    assert_eq!(r.body["error"], code, "body: {}", r.raw);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty(), "no detail: {}", r.raw);
    detail.to_string()
}

/// The items of a list answer.
#[track_caller]
pub(crate) fn items(r: &Resp) -> Vec<Value> {
    ok(r, 200);
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.raw))
        .clone()
}

/// The account of a SCIM user (looked up in `GET /api/v1/accounts`).
pub(crate) async fn account_of<S, B>(app: &S, admin: &str, scim_id: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = api(app, admin, "GET", "/api/v1/accounts?limit=1000", None).await;
    let found = items(&r)
        .into_iter()
        .find(|a| a["scimId"] == scim_id)
        .unwrap_or_else(|| panic!("no account for user {scim_id}: {}", r.raw));
    // The same through the single-account endpoint (which adds the whole SCIM `user`).
    let id = found["id"].as_str().unwrap().to_string();
    let one = api(app, admin, "GET", &format!("/api/v1/accounts/{id}"), None).await;
    let mut one = ok(&one, 200).clone();
    assert!(one.as_object_mut().unwrap().remove("user").is_some());
    assert_eq!(one, found);
    found
}

async fn get_account<S, B>(app: &S, admin: &str, id: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = api(app, admin, "GET", &format!("/api/v1/accounts/{id}"), None).await;
    // As the other account answers, without the SCIM `user` only this one adds.
    let mut one = ok(&r, 200).clone();
    assert!(one.as_object_mut().unwrap().remove("user").is_some());
    one
}

/// A webhook's dead letters (the first page).
async fn dead_letters<S, B>(app: &S, admin: &str, hook: &str) -> Vec<Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = api(
        app,
        admin,
        "GET",
        &format!("/api/v1/webhooks/{hook}/dead-letters"),
        None,
    )
    .await;
    items(&r)
}

/// Every event of the feed (from seq 1).
async fn feed<S, B>(app: &S, admin: &str) -> Vec<Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = api(app, admin, "GET", "/api/v1/events?limit=1000", None).await;
    items(&r)
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub(crate) async fn create_role<S, B>(app: &S, admin: &str, name: &str, ents: Value) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = api(
        app,
        admin,
        "POST",
        "/api/v1/roles",
        Some(json!({"name": name, "entitlements": ents})),
    )
    .await;
    let body = ok(&r, 201);
    assert_eq!(body["name"], name);
    assert_eq!(body["entitlements"], ents);
    body["id"].as_str().expect("role id").to_string()
}

pub(crate) async fn create_rule<S, B>(app: &S, admin: &str, rule: Value) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = api(app, admin, "POST", "/api/v1/rules", Some(rule.clone())).await;
    let body = ok(&r, 201);
    for (k, v) in rule.as_object().unwrap() {
        assert_eq!(&body[k], v, "rule attribute {k}: {}", r.raw);
    }
    body["id"].as_str().expect("rule id").to_string()
}

pub(crate) async fn put_policy<S, B>(app: &S, admin: &str, provisioning: &str, deprovisioning: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let policy = json!({"provisioning": provisioning, "deprovisioning": deprovisioning});
    let r = api(app, admin, "PUT", "/api/v1/policy", Some(policy.clone())).await;
    assert_eq!(ok(&r, 200), &policy);
    let r = api(app, admin, "GET", "/api/v1/policy", None).await;
    assert_eq!(ok(&r, 200), &policy);
}

/// Subscribes `url` to `events`; returns (subscription id, secret).
pub(crate) async fn subscribe<S, B>(
    app: &S,
    admin: &str,
    url: &str,
    events: &[&str],
    secret: Option<&str>,
) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut body = json!({"url": url, "events": events});
    if let Some(s) = secret {
        body["secret"] = json!(s);
    }
    let r = api(app, admin, "POST", "/api/v1/webhooks", Some(body)).await;
    let b = ok(&r, 201);
    assert_eq!(b["url"], url);
    assert_eq!(b["events"], json!(events));
    let secret_out = b["secret"].as_str().expect("secret shown once").to_string();
    assert!(secret_out.starts_with("whsec_"), "secret {secret_out}");
    if let Some(s) = secret {
        assert_eq!(secret_out, s);
    }
    let id = b["id"].as_str().expect("webhook id").to_string();
    // Never shown again.
    let r = api(app, admin, "GET", &format!("/api/v1/webhooks/{id}"), None).await;
    assert!(ok(&r, 200).get("secret").is_none(), "{}", r.raw);
    let r = api(app, admin, "GET", "/api/v1/webhooks", None).await;
    let listed = items(&r);
    assert!(listed.iter().any(|w| w["id"] == id.as_str()));
    assert!(
        listed.iter().all(|w| w.get("secret").is_none()),
        "{}",
        r.raw
    );
    (id, secret_out)
}

// ---------------------------------------------------------------------------------------
// The identity providers' requests

/// A user as Microsoft Entra ID creates it (enterprise extension, externalId, work email).
pub(crate) fn entra_user(user_name: &str, department: &str, title: &str) -> Value {
    json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": uuid::Uuid::new_v4().to_string(),
        "userName": user_name,
        "active": true,
        "displayName": format!("{user_name} display"),
        "title": title,
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Given Family", "familyName": "Family", "givenName": "Given"},
        "roles": [],
        ENTERPRISE: {"department": department, "employeeNumber": "1701"}
    })
}

/// A user as Okta creates it.
pub(crate) fn okta_user(user_name: &str, department: &str, title: &str) -> Value {
    json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Given Family",
        "locale": "en-US",
        "externalId": format!("00u{}", uuid::Uuid::new_v4().simple()),
        "groups": [],
        "password": "1mz050nq",
        "active": true,
        "title": title,
        ENTERPRISE: {"department": department}
    })
}

/// Okta's deactivation (and reactivation): `replace` of `active` with a boolean.
pub(crate) fn okta_active(active: bool) -> Value {
    patch_body(json!([{"op": "replace", "path": "active", "value": active}]))
}

/// Entra's "Disable User" / "Enable User": `Replace` of `active` with the string form.
fn entra_active(active: bool) -> Value {
    let v = if active { "True" } else { "False" };
    patch_body(json!([{"op": "Replace", "path": "active", "value": v}]))
}

/// Creates a SCIM user (with the SCIM write token) and returns its id.
pub(crate) async fn scim_create<S, B>(app: &S, body: Value) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    post_id(app, "/scim/v2/Users", body).await
}

pub(crate) async fn scim_patch<S, B>(app: &S, path: &str, body: Value) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(app, "PATCH", path, Some(body)).await;
    // Okta and Entra both get the resource back (or 204): either way a success.
    assert!(
        r.status.as_u16() == 200 || r.status.as_u16() == 204,
        "PATCH {path}: {} {}",
        r.status,
        r.raw
    );
    r
}

/// An Entra-style group: created empty, then members added with a PATCH `Add`.
pub(crate) async fn entra_group<S, B>(app: &S, name: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    post_id(
        app,
        "/scim/v2/Groups",
        json!({
            "schemas": [CORE_GROUP],
            "externalId": uuid::Uuid::new_v4().to_string(),
            "displayName": name,
            "meta": {"resourceType": "Group"}
        }),
    )
    .await
}

pub(crate) async fn entra_add_members<S, B>(app: &S, group: &str, members: &[&str])
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let value: Vec<Value> = members
        .iter()
        .map(|m| json!({"$ref": null, "value": m}))
        .collect();
    scim_patch(
        app,
        &format!("/scim/v2/Groups/{group}"),
        patch_body(json!([{"op": "Add", "path": "members", "value": value}])),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// A webhook receiver

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub(crate) path: String,
    headers: HashMap<String, String>,
    pub(crate) body: String,
    /// The status the receiver answered.
    pub(crate) answered: u16,
}

impl Hit {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {}: {e}", self.body))
    }

    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// How a receiver answers: a status, and where a 3xx points.
#[derive(Default)]
struct Answer {
    status: AtomicU16,
    location: Mutex<Option<String>>,
}

/// An HTTP (or, with a TLS acceptor, https) server on 127.0.0.1 that records every request
/// and answers the status set.
pub(crate) struct Receiver {
    pub(crate) url: String,
    addr: SocketAddr,
    answer: Arc<Answer>,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start(status: u16) -> Receiver {
        Receiver::serve(status, None)
    }

    /// An https receiver presenting `identity`; its URL names `localhost`.
    pub(crate) fn start_tls(status: u16, identity: native_tls::Identity) -> Receiver {
        let tls = native_tls::TlsAcceptor::new(identity).expect("tls acceptor");
        Receiver::serve(status, Some(tls))
    }

    fn serve(status: u16, tls: Option<native_tls::TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let answer = Arc::new(Answer::default());
        answer.status.store(status, Ordering::SeqCst);
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, h, st) = (answer.clone(), hits.clone(), stop.clone());
        let url = match &tls {
            Some(_) => format!("https://localhost:{}/hooks/scimitar", addr.port()),
            None => format!("http://{addr}/hooks/scimitar"),
        };
        let tls = tls.map(Arc::new);
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (a, h, tls) = (a.clone(), h.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    match tls {
                        // A failed handshake (an untrusted certificate) records nothing.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(conn) {
                                serve_one(stream, &a, &h);
                            }
                        }
                        None => serve_one(conn, &a, &h),
                    }
                });
            }
        });
        Receiver {
            url,
            addr,
            answer,
            hits,
            stop,
            handle: Some(handle),
        }
    }

    pub(crate) fn answer(&self, status: u16) {
        self.answer.status.store(status, Ordering::SeqCst);
    }

    /// Answers 302 pointing at `to`.
    pub(crate) fn redirect(&self, to: &str) {
        *self.answer.location.lock().unwrap() = Some(to.to_string());
        self.answer(302);
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests so far; panics after PATIENCE.
    pub(crate) async fn until(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {:#?}",
                hits.iter()
                    .map(|h| (h.answered, h.body.clone()))
                    .collect::<Vec<_>>()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body), records it, answers.
fn serve_one<S: Read + Write>(mut conn: S, answer: &Answer, hits: &Mutex<Vec<Hit>>) {
    let mut reader = BufReader::new(&mut conn);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the wake-up connection of Drop, or a probe
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length") {
        let n: usize = n.parse().unwrap_or(0);
        body.resize(n, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let n =
                usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    drop(reader);
    let answered = answer.status.load(Ordering::SeqCst);
    hits.lock().unwrap().push(Hit {
        path,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        answered,
    });
    let location = match answer.location.lock().unwrap().as_deref() {
        Some(to) if (300..400).contains(&answered) => format!("location: {to}\r\n"),
        _ => String::new(),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {answered} Status\r\n{location}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let _ = conn.flush();
}

/// Checks a delivery as a receiver following Standard Webhooks would: the signature
/// (recomputed here, not with Scimitar's code), a fresh timestamp, the id in the body.
#[track_caller]
pub(crate) fn verify(hit: &Hit, secret: &str) {
    let id = hit.header("webhook-id");
    let ts = hit.header("webhook-timestamp");
    let sig = hit.header("webhook-signature");
    assert!(
        !id.is_empty() && !ts.is_empty() && !sig.is_empty(),
        "{hit:?}"
    );
    assert_eq!(hit.header("content-type"), "application/json");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{id}.{ts}.{}", hit.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    // The header may carry several space-separated signatures.
    assert!(
        sig.split(' ').any(|s| s == expected),
        "bad signature {sig}, expected {expected}"
    );
    let ts: i64 = ts.parse().expect("unix seconds");
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!((ts - now).abs() <= 300, "stale timestamp {ts} (now {now})");
    assert_eq!(hit.event()["id"], id, "webhook-id is the event id");
}

/// Serve arguments with a quick retry schedule for the tests, and the receivers' loopback
/// allowed (the default policy refuses it).
pub(crate) fn hook_args(db: &TestDb) -> ServeArgs {
    let mut a = args(db);
    a.webhooks.webhook_allowed_hosts = "loopback".into();
    a.webhooks.webhook_timeout_ms = 2_000;
    a.webhooks.webhook_backoff_ms = 20;
    a.webhooks.webhook_max_backoff_ms = 100;
    a.webhooks.webhook_poll_ms = 20;
    a.webhooks.webhook_retry_horizon_secs = 3600;
    a
}

// ---------------------------------------------------------------------------------------
// (a) Review policy, roles by filter rules, merged entitlements, signed webhook

#[actix_web::test]
async fn review_policy_approval_grants_merged_roles_and_signs_the_webhook() {
    let db = TestDb::new();
    let a = hook_args(&db);
    let (app, state) = app_with(a.clone()).await;
    let admin = admin_token(&state);
    let rx = Receiver::start(200);
    let workers = scimitar::server::start_webhooks(&a, &state);

    let r = api(&app, &admin, "GET", "/api/v1/policy", None).await;
    assert_eq!(
        ok(&r, 200),
        &json!({"provisioning": "auto", "deprovisioning": "auto"})
    );
    put_policy(&app, &admin, "review", "auto").await;

    let manager = create_role(
        &app,
        &admin,
        "finance-manager",
        json!({"card.monthly_limit": 5000, "card.enabled": true}),
    )
    .await;
    let staff = create_role(
        &app,
        &admin,
        "finance-staff",
        json!({"card.monthly_limit": 1000, "card.enabled": false}),
    )
    .await;
    create_rule(
        &app,
        &admin,
        json!({"role": manager, "filter": format!(
            "{ENTERPRISE}:department eq \"Finance\" and title co \"Manager\"")}),
    )
    .await;
    create_rule(
        &app,
        &admin,
        json!({"role": staff, "filter": format!("{ENTERPRISE}:department eq \"Finance\"")}),
    )
    .await;
    let r = api(&app, &admin, "GET", "/api/v1/rules", None).await;
    assert_eq!(items(&r).len(), 2);
    let (hook, secret) = subscribe(&app, &admin, &rx.url, &["account.activated"], None).await;

    // Entra creates the users: candidates, no roles yet.
    let ada = scim_create(
        &app,
        entra_user("ada@example.com", "Finance", "Finance Manager"),
    )
    .await;
    let bob = scim_create(
        &app,
        entra_user("bob@example.com", "Sales", "Sales Manager"),
    )
    .await;
    let acc = account_of(&app, &admin, &ada).await;
    assert_eq!(acc["state"], "pending", "{acc}");
    assert_eq!(acc["userName"], "ada@example.com");
    assert_eq!(acc["roles"], json!([]));
    assert_eq!(acc["entitlements"], json!({}));
    assert_eq!(acc["removalPending"], Value::Null);
    let ada_acc = acc["id"].as_str().unwrap().to_string();
    let bob_acc = account_of(&app, &admin, &bob).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api(&app, &admin, "GET", "/api/v1/candidates", None).await;
    let cands = items(&r);
    let mut ids: Vec<&str> = cands.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = vec![ada_acc.as_str(), bob_acc.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(cands.iter().all(|c| c["state"] == "pending"));
    let pending: Vec<Value> = feed(&app, &admin)
        .await
        .into_iter()
        .filter(|e| e["type"] == "account.pending")
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().any(|e| e["accountId"] == ada_acc.as_str()));

    // Approval: both Finance roles; the highest limit and `true` win.
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/candidates/{ada_acc}/approve"),
        None,
    )
    .await;
    let approved = ok(&r, 200).clone();
    assert_eq!(approved["state"], "active");
    assert_eq!(approved["scimId"], ada.as_str());
    assert_eq!(
        approved["roles"],
        json!([{"id": manager, "name": "finance-manager"}, {"id": staff, "name": "finance-staff"}])
    );
    assert_eq!(
        approved["entitlements"],
        json!({"card.monthly_limit": 5000, "card.enabled": true})
    );
    assert_eq!(get_account(&app, &admin, &ada_acc).await, approved);
    let r = api(&app, &admin, "GET", "/api/v1/candidates", None).await;
    let left: Vec<Value> = items(&r);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], bob_acc.as_str());
    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/accounts?role={manager}"),
        None,
    )
    .await;
    let holders = items(&r);
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0]["id"], ada_acc.as_str());

    // The product hears of it through a signed webhook.
    let hits = rx
        .until("account.activated of ada", |h| h.iter().any(Hit::ok))
        .await;
    for h in &hits {
        verify(h, &secret);
    }
    let ev = hits.iter().find(|h| h.ok()).unwrap().event();
    assert_eq!(ev["type"], "account.activated");
    assert_eq!(ev["accountId"], ada_acc.as_str());
    assert_eq!(ev["resourceType"], "User");
    assert_eq!(ev["resourceId"], ada.as_str());
    assert_eq!(ev["data"]["account"]["state"], "active");
    assert_eq!(
        ev["data"]["account"]["entitlements"],
        json!({"card.monthly_limit": 5000, "card.enabled": true})
    );
    let in_feed = feed(&app, &admin).await;
    assert!(
        in_feed.contains(&ev),
        "the delivery is the feed event: {ev}"
    );

    // Approving again: not a candidate any more.
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/candidates/{ada_acc}/approve"),
        None,
    )
    .await;
    api_error(&r, 409, "conflict");
    assert_eq!(get_account(&app, &admin, &ada_acc).await, approved);

    // Bob matches no rule: active, nothing granted.
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/candidates/{bob_acc}/approve"),
        None,
    )
    .await;
    let b = ok(&r, 200);
    assert_eq!(b["state"], "active");
    assert_eq!(b["roles"], json!([]));
    assert_eq!(b["entitlements"], json!({}));
    let hits = rx
        .until("account.activated of bob", |h| {
            h.iter()
                .any(|h| h.ok() && h.event()["accountId"] == bob_acc.as_str())
        })
        .await;
    for h in &hits {
        verify(h, &secret);
        assert_eq!(
            h.event()["type"],
            "account.activated",
            "only subscribed types"
        );
    }
    assert_eq!(dead_letters(&app, &admin, &hook).await, Vec::<Value>::new());
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (b) Auto policy, Okta deactivation in the same transaction

#[actix_web::test]
async fn auto_policy_okta_deactivation_suspends_in_the_same_transaction() {
    let db = TestDb::new();
    let a = hook_args(&db);
    let (app, state) = app_with(a.clone()).await;
    let admin = admin_token(&state);
    let rx = Receiver::start(200);
    let workers = scimitar::server::start_webhooks(&a, &state);

    let eng = create_role(&app, &admin, "engineer", json!({"repo.write": true})).await;
    create_rule(
        &app,
        &admin,
        json!({"role": eng, "filter": format!("{ENTERPRISE}:department eq \"Engineering\"")}),
    )
    .await;
    let (_, secret) = subscribe(&app, &admin, &rx.url, &["account.suspended"], None).await;

    let user = scim_create(
        &app,
        okta_user("grace@example.com", "Engineering", "Engineer"),
    )
    .await;
    let acc = account_of(&app, &admin, &user).await;
    assert_eq!(acc["state"], "active");
    assert_eq!(acc["roles"], json!([{"id": eng, "name": "engineer"}]));
    assert_eq!(acc["entitlements"], json!({"repo.write": true}));
    let acc_id = acc["id"].as_str().unwrap().to_string();

    // Okta deactivates: the account is suspended by the time the PATCH answers.
    let path = format!("/scim/v2/Users/{user}");
    let r = scim_patch(&app, &path, okta_active(false)).await;
    if r.status.as_u16() == 200 {
        assert_eq!(r.body["active"], false);
    }
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["state"], "suspended", "{now}");
    assert_eq!(now["roles"], json!([]));
    assert_eq!(now["entitlements"], json!({}));
    assert_eq!(now["removalPending"], Value::Null);

    let hits = rx
        .until("account.suspended", |h| h.iter().any(Hit::ok))
        .await;
    for h in &hits {
        verify(h, &secret);
    }
    let ev = hits.iter().find(|h| h.ok()).unwrap().event();
    assert_eq!(ev["type"], "account.suspended");
    assert_eq!(ev["accountId"], acc_id.as_str());
    assert_eq!(ev["data"]["account"]["state"], "suspended");
    assert_eq!(ev["data"]["account"]["roles"], json!([]));

    // The feed: the SCIM deactivation and the product's suspension, in that order.
    let all = feed(&app, &admin).await;
    let seq_of = |t: &str| {
        all.iter()
            .find(|e| e["type"] == t && e["accountId"] == acc_id.as_str())
            .and_then(|e| e["seq"].as_i64())
            .unwrap_or_else(|| panic!("no {t} in the feed: {all:#?}"))
    };
    let deactivate = format!("{PROV}deactivate");
    assert!(seq_of(&deactivate) < seq_of("account.suspended"));
    let ev_in_feed = all.iter().find(|e| e["id"] == ev["id"]).expect("in feed");
    assert_eq!(ev_in_feed, &ev);

    // The timeline: every event of the account, oldest first.
    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/accounts/{acc_id}/timeline"),
        None,
    )
    .await;
    let mut tl = items(&r);
    assert!(tl.iter().all(|e| e["accountId"] == acc_id.as_str()));
    // The timeline adds the credential behind each event; the rest is the feed's.
    for e in &mut tl {
        assert!(e.as_object_mut().unwrap().remove("credential").is_some());
    }
    let seqs: Vec<i64> = tl.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let want = [
        format!("{PROV}create:full"),
        "account.activated".to_string(),
        format!("{PROV}patch:full"),
        deactivate.clone(),
        "account.suspended".to_string(),
    ];
    let got = types(&tl);
    let mut it = got.iter();
    for w in &want {
        assert!(it.any(|g| g == w), "timeline lacks {w} in order: {got:?}");
    }
    let feed_of_acc: Vec<&Value> = all
        .iter()
        .filter(|e| e["accountId"] == acc_id.as_str())
        .collect();
    assert_eq!(tl.iter().collect::<Vec<_>>(), feed_of_acc);

    // Okta reactivates: active again with its role (auto provisioning).
    scim_patch(&app, &path, okta_active(true)).await;
    let back = get_account(&app, &admin, &acc_id).await;
    assert_eq!(back["state"], "active");
    assert_eq!(back["roles"], json!([{"id": eng, "name": "engineer"}]));
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (c) Approving a cohort by SCIM group

#[actix_web::test]
async fn cohort_approval_by_group_approves_exactly_its_pending_members() {
    let db = TestDb::new();
    let (app, state) = app_with(args(&db)).await;
    let admin = admin_token(&state);

    // Already on board before the review policy.
    let veteran = scim_create(
        &app,
        entra_user("vera@example.com", "Engineering", "Engineer"),
    )
    .await;
    assert_eq!(account_of(&app, &admin, &veteran).await["state"], "active");
    put_policy(&app, &admin, "review", "auto").await;
    let mut hires = Vec::new();
    for n in ["nia", "omar", "pia"] {
        hires.push(
            scim_create(
                &app,
                entra_user(&format!("{n}@example.com"), "Engineering", "Engineer"),
            )
            .await,
        );
    }
    let outsider = scim_create(&app, entra_user("quinn@example.com", "Sales", "Rep")).await;

    let gid = entra_group(&app, "New hires 2026-12").await;
    let onboarding = create_role(&app, &admin, "new-hire", json!({"onboarding": true})).await;
    create_rule(&app, &admin, json!({"role": onboarding, "group": gid})).await;
    let mut members: Vec<&str> = hires.iter().map(String::as_str).collect();
    members.push(&veteran);
    entra_add_members(&app, &gid, &members).await;

    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/accounts?group={gid}"),
        None,
    )
    .await;
    assert_eq!(items(&r).len(), 4);
    // The veteran got the group's role from the membership change; the hires wait.
    let vet = account_of(&app, &admin, &veteran).await;
    assert_eq!(vet["state"], "active");
    assert_eq!(
        vet["roles"],
        json!([{"id": onboarding, "name": "new-hire"}])
    );
    let r = api(&app, &admin, "GET", "/api/v1/candidates", None).await;
    assert_eq!(items(&r).len(), 4);

    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/candidates/approve",
        Some(json!({"group": gid})),
    )
    .await;
    let approved = ok(&r, 200)["approved"]
        .as_array()
        .expect("approved")
        .clone();
    let mut got: Vec<&str> = approved
        .iter()
        .map(|a| a["scimId"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want: Vec<&str> = hires.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "exactly the pending members");
    for a in &approved {
        assert_eq!(a["state"], "active");
        assert_eq!(a["roles"], json!([{"id": onboarding, "name": "new-hire"}]));
        assert_eq!(a["entitlements"], json!({"onboarding": true}));
        assert_eq!(
            a["groups"],
            json!([{"id": gid, "displayName": "New hires 2026-12"}])
        );
    }
    let r = api(&app, &admin, "GET", "/api/v1/candidates", None).await;
    let left = items(&r);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["scimId"], outsider.as_str());
    assert_eq!(account_of(&app, &admin, &veteran).await, vet);
    let r = api(&app, &admin, "GET", "/api/v1/accounts?state=active", None).await;
    assert_eq!(items(&r).len(), 4);

    // Nobody left to approve in the group.
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/candidates/approve",
        Some(json!({"group": gid})),
    )
    .await;
    assert_eq!(ok(&r, 200)["approved"], json!([]));

    let before = feed(&app, &admin).await;
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/candidates/approve",
        Some(json!({"group": uuid::Uuid::new_v4().to_string()})),
    )
    .await;
    api_error(&r, 404, "not_found");
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/candidates/approve",
        Some(json!({"members": [outsider]})),
    )
    .await;
    api_error(&r, 400, "bad_request");
    assert_eq!(feed(&app, &admin).await, before);
    assert_eq!(
        account_of(&app, &admin, &outsider).await["state"],
        "pending"
    );
}

// ---------------------------------------------------------------------------------------
// (d) Notify policy: flagged removals and their confirmation

#[actix_web::test]
async fn notify_policy_flags_removals_until_confirmed() {
    let db = TestDb::new();
    let (app, state) = app_with(args(&db)).await;
    let admin = admin_token(&state);
    put_policy(&app, &admin, "auto", "notify").await;
    let vpn = create_role(&app, &admin, "vpn", json!({"vpn.enabled": true})).await;
    create_rule(&app, &admin, json!({"role": vpn, "filter": "userName pr"})).await;
    let vpn_roles = json!([{"id": vpn, "name": "vpn"}]);

    let carol = scim_create(&app, entra_user("carol@example.com", "Ops", "SRE")).await;
    let dave = scim_create(&app, entra_user("dave@example.com", "Ops", "SRE")).await;
    let eve = scim_create(&app, entra_user("eve@example.com", "Ops", "SRE")).await;
    let carol_acc = account_of(&app, &admin, &carol).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dave_acc = account_of(&app, &admin, &dave).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let eve_acc = account_of(&app, &admin, &eve).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Entra disables Carol ("False"): flagged, access kept.
    scim_patch(
        &app,
        &format!("/scim/v2/Users/{carol}"),
        entra_active(false),
    )
    .await;
    let r = call(&app, "GET", &format!("/scim/v2/Users/{carol}"), None).await;
    r.expect(200);
    assert_eq!(r.body["active"], false);
    let c = get_account(&app, &admin, &carol_acc).await;
    assert_eq!(c["state"], "active", "{c}");
    assert_eq!(c["removalPending"]["reason"], "deactivated");
    assert!(c["removalPending"]["since"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    assert_eq!(c["roles"], vpn_roles);
    assert_eq!(c["entitlements"], json!({"vpn.enabled": true}));
    let r = api(&app, &admin, "GET", "/api/v1/removals", None).await;
    let flagged = items(&r);
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["id"], carol_acc.as_str());
    let all = feed(&app, &admin).await;
    assert!(all
        .iter()
        .any(|e| e["type"] == "account.removal_pending" && e["accountId"] == carol_acc.as_str()));
    assert!(!all
        .iter()
        .any(|e| e["type"] == "account.suspended" && e["accountId"] == carol_acc.as_str()));

    let confirm = |id: &str| format!("/api/v1/removals/{id}/confirm");
    let r = api(&app, &admin, "POST", &confirm(&carol_acc), None).await;
    let c = ok(&r, 200).clone();
    assert_eq!(c["state"], "suspended");
    assert_eq!(c["roles"], json!([]));
    assert_eq!(c["entitlements"], json!({}));
    assert_eq!(c["removalPending"], Value::Null);
    assert_eq!(get_account(&app, &admin, &carol_acc).await, c);
    let r = api(&app, &admin, "GET", "/api/v1/removals", None).await;
    assert_eq!(items(&r), Vec::<Value>::new());
    let r = api(&app, &admin, "POST", &confirm(&carol_acc), None).await;
    api_error(&r, 409, "conflict");
    assert_eq!(get_account(&app, &admin, &carol_acc).await, c);
    assert!(feed(&app, &admin)
        .await
        .iter()
        .any(|e| e["type"] == "account.suspended" && e["accountId"] == carol_acc.as_str()));

    // Entra deletes Dave: flagged with reason `deleted`; confirmed, removed.
    let r = call(&app, "DELETE", &format!("/scim/v2/Users/{dave}"), None).await;
    r.expect(204);
    let d = get_account(&app, &admin, &dave_acc).await;
    assert_eq!(d["state"], "active", "{d}");
    assert_eq!(d["removalPending"]["reason"], "deleted");
    assert_eq!(d["roles"], vpn_roles);
    let r = api(&app, &admin, "GET", "/api/v1/removals", None).await;
    let flagged = items(&r);
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["id"], dave_acc.as_str());
    let r = api(&app, &admin, "POST", &confirm(&dave_acc), None).await;
    let d = ok(&r, 200).clone();
    assert_eq!(d["state"], "removed");
    assert_eq!(d["roles"], json!([]));
    assert_eq!(d["removalPending"], Value::Null);
    let r = api(&app, &admin, "POST", &confirm(&dave_acc), None).await;
    api_error(&r, 409, "conflict");
    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/accounts/{dave_acc}/timeline"),
        None,
    )
    .await;
    let got = types(&items(&r));
    let want = [
        format!("{PROV}delete"),
        "account.removal_pending".to_string(),
        "account.removed".to_string(),
    ];
    let mut it = got.iter();
    for w in &want {
        assert!(it.any(|g| g == w), "timeline lacks {w} in order: {got:?}");
    }

    // Eve is disabled and enabled again before anyone confirms: the flag goes.
    scim_patch(&app, &format!("/scim/v2/Users/{eve}"), entra_active(false)).await;
    assert_eq!(
        get_account(&app, &admin, &eve_acc).await["removalPending"]["reason"],
        "deactivated"
    );
    scim_patch(&app, &format!("/scim/v2/Users/{eve}"), entra_active(true)).await;
    let e = get_account(&app, &admin, &eve_acc).await;
    assert_eq!(e["state"], "active");
    assert_eq!(e["removalPending"], Value::Null);
    assert_eq!(e["roles"], vpn_roles);
    let r = api(&app, &admin, "GET", "/api/v1/removals", None).await;
    assert_eq!(items(&r), Vec::<Value>::new());
    let r = api(&app, &admin, "POST", &confirm(&eve_acc), None).await;
    api_error(&r, 409, "conflict");
}

// ---------------------------------------------------------------------------------------
// (e) The receiver is down, then up: nothing lost, per-account order kept

#[actix_web::test]
async fn deliveries_survive_a_receiver_outage_in_order() {
    let db = TestDb::new();
    let a = hook_args(&db);
    let (app, state) = app_with(a.clone()).await;
    let admin = admin_token(&state);
    let rx = Receiver::start(503);
    let workers = scimitar::server::start_webhooks(&a, &state);
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let (hook, _) = subscribe(&app, &admin, &rx.url, &["*"], Some(&secret)).await;
    let role = create_role(&app, &admin, "everyone", json!({"chat": true})).await;
    create_rule(&app, &admin, json!({"role": role, "filter": "userName pr"})).await;

    // Three users, several events each, while the receiver answers 503.
    let mut users = Vec::new();
    for n in ["ann", "ben", "cat"] {
        users.push(
            scim_create(
                &app,
                okta_user(&format!("{n}@example.com"), "Support", "Agent"),
            )
            .await,
        );
    }
    for u in &users {
        let path = format!("/scim/v2/Users/{u}");
        scim_patch(
            &app,
            &path,
            patch_body(json!([{"op": "replace", "path": "title", "value": "Lead"}])),
        )
        .await;
        scim_patch(&app, &path, okta_active(false)).await;
    }
    let gid = create_group(&app, "Support", &[&users[0], &users[1]]).await;
    scim_patch(
        &app,
        &format!("/scim/v2/Users/{}", users[2]),
        okta_active(true),
    )
    .await;
    scim_patch(
        &app,
        &format!("/scim/v2/Users/{}", users[0]),
        okta_active(true),
    )
    .await;

    // Retries happen while it is down.
    rx.until("retries against the 503s", |h| {
        let mut per: HashMap<&str, usize> = HashMap::new();
        for x in h {
            *per.entry(x.header("webhook-id")).or_default() += 1;
        }
        h.len() >= 6 && per.values().any(|n| *n >= 2)
    })
    .await;
    assert!(rx.hits().iter().all(|h| !h.ok()));
    rx.answer(200);

    let events = feed(&app, &admin).await;
    let want: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(want.len() >= 20, "{} events", want.len());
    let hits = rx
        .until("every event delivered", |h| {
            let got: HashSet<&str> = h
                .iter()
                .filter(|x| x.ok())
                .map(|x| x.header("webhook-id"))
                .collect();
            want.iter().all(|w| got.contains(w.as_str()))
        })
        .await;

    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    for h in &hits {
        verify(h, &secret);
        let ev = h.event();
        let id = ev["id"].as_str().unwrap();
        assert_eq!(
            by_id.get(id).copied(),
            Some(&ev),
            "a delivery is its feed event, as the feed shows it"
        );
    }
    // Per account (or group), first arrivals come in feed order, and no attempt of a later
    // event precedes the delivery of an earlier one.
    let key = |e: &Value| {
        e["accountId"]
            .as_str()
            .or(e["resourceId"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let mut seen = HashSet::new();
    let mut last_ok: HashMap<String, i64> = HashMap::new();
    let mut last_try: HashMap<String, i64> = HashMap::new();
    for h in &hits {
        let ev = h.event();
        let (k, seq) = (key(&ev), ev["seq"].as_i64().unwrap());
        let prev = last_try.insert(k.clone(), seq).unwrap_or(0);
        assert!(
            seq >= prev || seen.contains(ev["id"].as_str().unwrap()),
            "{k}: seq {seq} attempted after seq {prev}"
        );
        if h.ok() && seen.insert(ev["id"].as_str().unwrap().to_string()) {
            let prev = last_ok.insert(k.clone(), seq).unwrap_or(0);
            assert!(seq > prev, "{k}: seq {seq} delivered after seq {prev}");
        }
    }
    assert!(
        last_ok.contains_key(&gid),
        "the group's events are keyed by group"
    );
    assert_eq!(dead_letters(&app, &admin, &hook).await, Vec::<Value>::new());
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (f) Dead letters and their replay

#[actix_web::test]
async fn failing_deliveries_become_dead_letters_and_replay() {
    let db = TestDb::new();
    let mut a = hook_args(&db);
    a.webhooks.webhook_retry_horizon_secs = 1;
    // A failed attempt is recorded a timeout after it started: a short one, so the horizon
    // sees a few attempts.
    a.webhooks.webhook_timeout_ms = 300;
    let (app, state) = app_with(a.clone()).await;
    let admin = admin_token(&state);
    let rx = Receiver::start(500);
    let workers = scimitar::server::start_webhooks(&a, &state);
    let (hook, secret) = subscribe(&app, &admin, &rx.url, &["account.activated"], None).await;

    let user = scim_create(&app, okta_user("dora@example.com", "Legal", "Counsel")).await;
    let acc = account_of(&app, &admin, &user).await;
    let event = feed(&app, &admin)
        .await
        .into_iter()
        .find(|e| e["type"] == "account.activated")
        .expect("account.activated in the feed");

    let deadline = Instant::now() + PATIENCE;
    let dead = loop {
        let list = dead_letters(&app, &admin, &hook).await;
        if !list.is_empty() {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter after {PATIENCE:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let d = &dead[0];
    assert_eq!(d["status"], "dead");
    assert_eq!(d["webhook"], hook.as_str());
    assert_eq!(d["eventId"], event["id"]);
    assert_eq!(d["seq"], event["seq"]);
    assert_eq!(d["type"], "account.activated");
    assert!(d["attempts"].as_i64().unwrap() >= 2, "{d}");
    assert!(d["lastError"].as_str().unwrap_or("").contains("500"), "{d}");
    let hits = rx.hits();
    assert!(hits.len() >= 2);
    assert_eq!(
        i64::try_from(hits.len()).unwrap(),
        d["attempts"].as_i64().unwrap(),
        "one request per attempt"
    );
    for h in &hits {
        verify(h, &secret);
        assert_eq!(h.header("webhook-id"), event["id"].as_str().unwrap());
        assert_eq!(h.answered, 500);
    }
    // Dead: no more attempts.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), hits.len());

    // The receiver is fixed; the dead letter is replayed and delivered.
    rx.answer(200);
    let id = d["id"].as_str().unwrap();
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/dead-letters/{id}/replay"),
        None,
    )
    .await;
    let re = ok(&r, 200);
    assert_eq!(re["id"], id);
    assert_eq!(re["status"], "pending");
    assert_eq!(re["attempts"], 0);
    let hits = rx.until("the replay", |h| h.iter().any(Hit::ok)).await;
    for h in &hits {
        verify(h, &secret);
    }
    let ev = hits.iter().find(|h| h.ok()).unwrap().event();
    assert_eq!(ev, event);
    assert_eq!(ev["accountId"], acc["id"]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if dead_letters(&app, &admin, &hook).await.is_empty() {
            // Delivered now: not a dead letter, so it cannot be replayed.
            let r = api(
                &app,
                &admin,
                "POST",
                &format!("/api/v1/dead-letters/{id}/replay"),
                None,
            )
            .await;
            if r.status.as_u16() == 409 {
                api_error(&r, 409, "conflict");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the replay never settled");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/dead-letters/{}/replay", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    api_error(&r, 404, "not_found");
    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{}/dead-letters", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    api_error(&r, 404, "not_found");
    let hits_now = rx.hits().len();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), hits_now, "delivered once, then left alone");
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// (g) The feed: gap-free, paged by `after`, long-polled with `wait`

#[actix_web::test]
async fn feed_is_gap_free_and_long_polls() {
    let db = TestDb::new();
    let (app, state) = app_with(args(&db)).await;
    let admin = admin_token(&state);
    let app = std::rc::Rc::new(app);

    let r = api(&*app, &admin, "GET", "/api/v1/events", None).await;
    assert_eq!(ok(&r, 200), &json!({"items": [], "next": 0}));

    let mut users = Vec::new();
    for n in ["fay", "gus", "hal"] {
        users.push(
            scim_create(
                &*app,
                entra_user(&format!("{n}@example.com"), "R&D", "Researcher"),
            )
            .await,
        );
    }
    for u in users.iter().rev() {
        scim_patch(
            &*app,
            &format!("/scim/v2/Users/{u}"),
            patch_body(json!([{"op": "replace", "path": "title", "value": "Senior"}])),
        )
        .await;
    }
    let all = feed(&*app, &admin).await;
    let n = i64::try_from(all.len()).unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "gap-free from 1");
    assert!(n >= 9, "create, activation and patch of three users: {n}");
    let owners: HashSet<&str> = all
        .iter()
        .filter_map(|e| e["resourceId"].as_str())
        .collect();
    assert_eq!(owners.len(), 3, "across users");
    for e in &all {
        assert!(e["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(e["time"].as_str().is_some_and(|s| s.ends_with('Z')));
        assert_eq!(e["resourceType"], "User");
    }
    let create = all
        .iter()
        .find(|e| e["type"] == format!("{PROV}create:full"))
        .unwrap();
    assert!(create["data"]["events"][format!("{PROV}create:full")].is_object());
    assert!(create["data"]["jti"].is_string());

    // `after` gives only later events; `limit` pages.
    let r = api(&*app, &admin, "GET", "/api/v1/events?after=4", None).await;
    assert_eq!(items(&r), all[4..].to_vec());
    assert_eq!(r.body["next"], json!(n));
    let r = api(&*app, &admin, "GET", "/api/v1/events?after=2&limit=3", None).await;
    assert_eq!(items(&r), all[2..5].to_vec());
    assert_eq!(r.body["next"], 5);
    let r = api(
        &*app,
        &admin,
        "GET",
        &format!("/api/v1/events?after={n}"),
        None,
    )
    .await;
    assert_eq!(ok(&r, 200), &json!({"items": [], "next": n}));

    // A long-poll returns as soon as a change lands from another task.
    let writer = app.clone();
    let change = actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        scim_create(&*writer, entra_user("ivy@example.com", "R&D", "Researcher")).await
    });
    let started = Instant::now();
    let r = api(
        &*app,
        &admin,
        "GET",
        &format!("/api/v1/events?after={n}&wait=2"),
        None,
    )
    .await;
    let took = started.elapsed();
    let got = items(&r);
    let ivy = change.await.expect("the change ran");
    assert!(
        !got.is_empty(),
        "the long-poll returned empty after {took:?}"
    );
    assert_eq!(got[0]["seq"], json!(n + 1));
    assert_eq!(got[0]["type"], format!("{PROV}create:full"));
    assert_eq!(got[0]["resourceId"], ivy.as_str());
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(1500),
        "returned after {took:?}"
    );
    let m = feed(&*app, &admin).await.len();

    // Nothing happening: empty after the wait.
    let started = Instant::now();
    let r = api(
        &*app,
        &admin,
        "GET",
        &format!("/api/v1/events?after={m}&wait=1"),
        None,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(ok(&r, 200), &json!({"items": [], "next": m}));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "an idle wait=1 took {took:?}"
    );

    // Concurrent writers while a reader follows `next`: it sees every seq, in order, none
    // skipped (a later seq never becomes visible before an earlier one).
    let mut writers = Vec::new();
    for i in 0..8 {
        let w = app.clone();
        writers.push(actix_web::rt::spawn(async move {
            scim_create(
                &*w,
                entra_user(&format!("crowd{i}@example.com"), "R&D", "Researcher"),
            )
            .await
        }));
    }
    let total = i64::try_from(m).unwrap() + 16; // create:full and account.activated each
    let mut after = i64::try_from(m).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while after < total {
        assert!(Instant::now() < deadline, "the reader is stuck at {after}");
        let r = api(
            &*app,
            &admin,
            "GET",
            &format!("/api/v1/events?after={after}&wait=1"),
            None,
        )
        .await;
        for e in items(&r) {
            read.push(e["seq"].as_i64().unwrap());
        }
        after = r.body["next"].as_i64().unwrap();
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert_eq!(
        read,
        (i64::try_from(m).unwrap() + 1..=total).collect::<Vec<_>>()
    );
    let all = feed(&*app, &admin).await;
    assert_eq!(i64::try_from(all.len()).unwrap(), total);

    // Account pages follow their cursor to the end, in id order, without repeats.
    let r = api(&*app, &admin, "GET", "/api/v1/accounts?limit=1000", None).await;
    let every: Vec<Value> = items(&r);
    assert_eq!(every.len(), 12);
    assert_eq!(r.body["nextCursor"], Value::Null);
    let mut paged = Vec::new();
    let mut uri = "/api/v1/accounts?limit=5".to_string();
    loop {
        let r = api(&*app, &admin, "GET", &uri, None).await;
        let page = items(&r);
        assert!(page.len() <= 5);
        paged.extend(page);
        match r.body["nextCursor"].as_str() {
            Some(c) => uri = format!("/api/v1/accounts?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, every);
    let ids: Vec<&str> = every.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in account id order");

    // A timeline pages by cursor too.
    let acc = every[0]["id"].as_str().unwrap();
    let tl_uri = format!("/api/v1/accounts/{acc}/timeline");
    let r = api(&*app, &admin, "GET", &tl_uri, None).await;
    let whole = items(&r);
    assert!(whole.len() >= 2);
    let r = api(&*app, &admin, "GET", &format!("{tl_uri}?limit=1"), None).await;
    let first = items(&r);
    let c = r.body["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let r = api(
        &*app,
        &admin,
        "GET",
        &format!("{tl_uri}?limit=1000&cursor={c}"),
        None,
    )
    .await;
    let mut rest = items(&r);
    rest.insert(0, first[0].clone());
    assert_eq!(rest, whole);
    let r = api(&*app, &admin, "GET", &format!("{tl_uri}?cursor={c}x"), None).await;
    api_error(&r, 400, "bad_request");

    for bad in [
        "after=-1",
        "wait=61",
        "wait=-1",
        "limit=0",
        "limit=1001",
        "after=x",
    ] {
        let r = api(&*app, &admin, "GET", &format!("/api/v1/events?{bad}"), None).await;
        api_error(&r, 400, "bad_request");
    }
}

// ---------------------------------------------------------------------------------------
// (h) Bad input changes nothing

#[actix_web::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let db = TestDb::new();
    let (app, state) = app_with(args(&db)).await;
    let admin = admin_token(&state);
    let nobody = uuid::Uuid::new_v4().to_string();

    // Credentials: none, SCIM write, admin.
    let r = api(&app, "", "GET", "/api/v1/accounts", None).await;
    api_error(&r, 401, "unauthorized");
    let r = api(&app, "not-a-token", "GET", "/api/v1/roles", None).await;
    api_error(&r, 401, "unauthorized");
    let r = api(&app, TOKEN, "GET", "/api/v1/accounts", None).await;
    api_error(&r, 403, "forbidden");
    let r = api(
        &app,
        TOKEN,
        "POST",
        "/api/v1/roles",
        Some(json!({"name": "sneaky", "entitlements": {}})),
    )
    .await;
    api_error(&r, 403, "forbidden");
    let r = api(
        &app,
        TOKEN,
        "PUT",
        "/api/v1/policy",
        Some(json!({"provisioning": "review", "deprovisioning": "notify"})),
    )
    .await;
    api_error(&r, 403, "forbidden");
    // An admin token reads SCIM but does not write it.
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/scim/v2/Users")
            .insert_header(("Authorization", format!("Bearer {admin}")))
            .insert_header(("Content-Type", "application/scim+json"))
            .set_payload(okta_user("mallory@example.com", "X", "Y").to_string()),
    )
    .await;
    r.expect(403);
    let r = send(
        &app,
        test::TestRequest::get()
            .uri("/scim/v2/Users")
            .insert_header(("Authorization", format!("Bearer {admin}"))),
    )
    .await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 0);

    // Policy.
    for bad in [
        json!({"provisioning": "manual", "deprovisioning": "auto"}),
        json!({"provisioning": "auto", "deprovisioning": "never"}),
        json!({"provisioning": "review"}),
        json!({"provisioning": "review", "deprovisioning": "auto", "extra": 1}),
        json!("review"),
    ] {
        let r = api(&app, &admin, "PUT", "/api/v1/policy", Some(bad)).await;
        api_error(&r, 400, "bad_request");
    }

    // Roles.
    let role = create_role(&app, &admin, "base", json!({"seats": 1, "tier": "gold"})).await;
    for (path, method) in [
        (format!("/api/v1/roles/{nobody}"), "GET"),
        (format!("/api/v1/roles/{nobody}"), "DELETE"),
    ] {
        let r = api(&app, &admin, method, &path, None).await;
        api_error(&r, 404, "not_found");
    }
    let r = api(
        &app,
        &admin,
        "PUT",
        &format!("/api/v1/roles/{nobody}"),
        Some(json!({"name": "x", "entitlements": {}})),
    )
    .await;
    api_error(&r, 404, "not_found");
    for (body, status, code) in [
        (json!({"name": "base", "entitlements": {}}), 409, "conflict"),
        (
            json!({"name": "other", "entitlements": {"seats": true}}),
            400,
            "bad_request",
        ),
        (
            json!({"name": "other", "entitlements": {"tier": 3}}),
            400,
            "bad_request",
        ),
        (
            json!({"name": "other", "entitlements": {"x": {"nested": 1}}}),
            400,
            "bad_request",
        ),
        (
            json!({"name": "other", "entitlements": {"x": [1]}}),
            400,
            "bad_request",
        ),
        (json!({"name": "", "entitlements": {}}), 400, "bad_request"),
        (json!({"entitlements": {}}), 400, "bad_request"),
        (
            json!({"name": "other", "colour": "red"}),
            400,
            "bad_request",
        ),
    ] {
        let r = api(&app, &admin, "POST", "/api/v1/roles", Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.raw);
        api_error(&r, status, code);
    }
    let r = api(
        &app,
        &admin,
        "PUT",
        &format!("/api/v1/roles/{role}"),
        Some(json!({"name": "base", "entitlements": {"seats": "many"}})),
    )
    .await;
    // The only role: a type of its own may change.
    ok(&r, 200);
    let r = api(
        &app,
        &admin,
        "PUT",
        &format!("/api/v1/roles/{role}"),
        Some(json!({"name": "base", "entitlements": {"seats": 1, "tier": "gold"}})),
    )
    .await;
    ok(&r, 200);

    // Rules.
    for (path, method) in [
        (format!("/api/v1/rules/{nobody}"), "GET"),
        (format!("/api/v1/rules/{nobody}"), "DELETE"),
    ] {
        let r = api(&app, &admin, method, &path, None).await;
        api_error(&r, 404, "not_found");
    }
    let r = api(
        &app,
        &admin,
        "PUT",
        &format!("/api/v1/rules/{nobody}"),
        Some(json!({"role": role, "filter": "userName pr"})),
    )
    .await;
    api_error(&r, 404, "not_found");
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/rules",
        Some(json!({"role": role, "filter": "title co \"Manager\" and (department eq"})),
    )
    .await;
    let detail = api_error(&r, 400, "bad_request");
    assert!(detail.contains("position"), "names the position: {detail}");
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/rules",
        Some(json!({"role": role, "filter": "userName eq"})),
    )
    .await;
    let detail = api_error(&r, 400, "bad_request");
    assert!(
        detail.contains("position 11"),
        "names the position: {detail}"
    );
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/rules",
        Some(json!({"role": role, "filter": "shoeSize gt 40"})),
    )
    .await;
    api_error(&r, 400, "bad_request");
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/rules",
        Some(json!({"role": nobody, "filter": "userName pr"})),
    )
    .await;
    api_error(&r, 404, "not_found");
    let r = api(
        &app,
        &admin,
        "POST",
        "/api/v1/rules",
        Some(json!({"role": role, "group": nobody})),
    )
    .await;
    api_error(&r, 404, "not_found");
    for body in [
        json!({"role": role}),
        json!({"role": role, "filter": "userName pr", "group": nobody}),
        json!({"filter": "userName pr"}),
        json!({"role": role, "filter": 7}),
    ] {
        let r = api(&app, &admin, "POST", "/api/v1/rules", Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.raw);
        api_error(&r, 400, "bad_request");
    }

    // Accounts and queues.
    for (method, path) in [
        ("GET", format!("/api/v1/accounts/{nobody}")),
        ("GET", format!("/api/v1/accounts/{nobody}/timeline")),
        ("POST", format!("/api/v1/candidates/{nobody}/approve")),
        ("POST", format!("/api/v1/candidates/{nobody}/reject")),
        ("POST", format!("/api/v1/removals/{nobody}/confirm")),
        ("GET", format!("/api/v1/accounts?role={nobody}")),
        ("GET", format!("/api/v1/accounts?group={nobody}")),
        ("GET", format!("/api/v1/webhooks/{nobody}")),
        ("DELETE", format!("/api/v1/webhooks/{nobody}")),
        ("POST", format!("/api/v1/dead-letters/{nobody}/replay")),
        ("GET", "/api/v1/no-such-thing".to_string()),
    ] {
        let r = api(&app, &admin, method, &path, None).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path}: {}", r.raw);
        api_error(&r, 404, "not_found");
    }
    for path in [
        "/api/v1/accounts?state=frozen",
        "/api/v1/accounts?limit=0",
        "/api/v1/accounts?cursor=!!!",
        "/api/v1/accounts?cursor=bm9wZQ",
    ] {
        let r = api(&app, &admin, "GET", path, None).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.raw);
        api_error(&r, 400, "bad_request");
    }

    // Webhooks.
    for body in [
        json!({"url": "ftp://x", "events": ["*"]}),
        json!({"url": "https://hooks.example.com/x", "events": ["account.exploded"]}),
        json!({"url": "https://hooks.example.com/x", "events": []}),
        json!({"url": "https://hooks.example.com/x"}),
        json!({"events": ["*"]}),
        json!({"url": "https://hooks.example.com/x", "events": ["*"], "secret": "hunter2"}),
        json!({"url": "https://hooks.example.com/x", "events": ["*"], "colour": "red"}),
    ] {
        let r = api(&app, &admin, "POST", "/api/v1/webhooks", Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.raw);
        api_error(&r, 400, "bad_request");
    }

    // None of it changed anything.
    let r = api(&app, &admin, "GET", "/api/v1/policy", None).await;
    assert_eq!(
        ok(&r, 200),
        &json!({"provisioning": "auto", "deprovisioning": "auto"})
    );
    let r = api(&app, &admin, "GET", "/api/v1/roles", None).await;
    let roles = items(&r);
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["id"], role.as_str());
    assert_eq!(roles[0]["name"], "base");
    assert_eq!(
        roles[0]["entitlements"],
        json!({"seats": 1, "tier": "gold"})
    );
    for list in [
        "/api/v1/rules",
        "/api/v1/webhooks",
        "/api/v1/accounts",
        "/api/v1/candidates",
        "/api/v1/removals",
    ] {
        let r = api(&app, &admin, "GET", list, None).await;
        assert_eq!(items(&r), Vec::<Value>::new(), "{list}");
    }
    let r = api(&app, &admin, "GET", "/api/v1/events", None).await;
    assert_eq!(ok(&r, 200), &json!({"items": [], "next": 0}));
}

// ---------------------------------------------------------------------------------------
// The rest of the lifecycle table, conflict rules and recomputation

#[actix_web::test]
async fn lifecycle_edges_conflicts_and_recomputation() {
    let db = TestDb::new();
    let (app, state) = app_with(args(&db)).await;
    let admin = admin_token(&state);
    put_policy(&app, &admin, "review", "notify").await;

    // Created inactive: suspended under either provisioning policy.
    let mut inactive = okta_user("ina@example.com", "Ops", "SRE");
    inactive["active"] = json!(false);
    let ina = scim_create(&app, inactive).await;
    let ina_acc = account_of(&app, &admin, &ina).await;
    assert_eq!(ina_acc["state"], "suspended");
    let ina_acc = ina_acc["id"].as_str().unwrap().to_string();
    // Reactivated under review: a candidate, not active.
    scim_patch(&app, &format!("/scim/v2/Users/{ina}"), okta_active(true)).await;
    assert_eq!(
        get_account(&app, &admin, &ina_acc).await["state"],
        "pending"
    );

    // A candidate deactivated under notify never had access: suspended at once.
    let cand = scim_create(&app, entra_user("cid@example.com", "Ops", "SRE")).await;
    let cand_acc = account_of(&app, &admin, &cand).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    scim_patch(&app, &format!("/scim/v2/Users/{cand}"), entra_active(false)).await;
    let c = get_account(&app, &admin, &cand_acc).await;
    assert_eq!(c["state"], "suspended", "{c}");
    assert_eq!(c["removalPending"], Value::Null);

    // Reject: removed; rejecting again is a conflict.
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/candidates/{ina_acc}/reject"),
        None,
    )
    .await;
    assert_eq!(ok(&r, 200)["state"], "removed");
    let r = api(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/candidates/{ina_acc}/reject"),
        None,
    )
    .await;
    api_error(&r, 409, "conflict");
    assert!(feed(&app, &admin)
        .await
        .iter()
        .any(|e| e["type"] == "account.rejected" && e["accountId"] == ina_acc.as_str()));

    // Conflicts: highest number, `true`, and the string of the first role by name.
    put_policy(&app, &admin, "auto", "auto").await;
    let zeta = create_role(
        &app,
        &admin,
        "zeta",
        json!({"seats": 3, "sso": true, "tier": "silver"}),
    )
    .await;
    let alpha = create_role(
        &app,
        &admin,
        "alpha",
        json!({"seats": 2, "sso": false, "tier": "gold"}),
    )
    .await;
    let zeta_rule = create_rule(&app, &admin, json!({"role": zeta, "filter": "userName pr"})).await;
    create_rule(
        &app,
        &admin,
        json!({"role": alpha, "filter": "title eq \"SRE\""}),
    )
    .await;
    let u = scim_create(&app, okta_user("una@example.com", "Ops", "SRE")).await;
    let acc = account_of(&app, &admin, &u).await;
    let acc_id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(acc["state"], "active");
    assert_eq!(
        acc["roles"],
        json!([{"id": alpha, "name": "alpha"}, {"id": zeta, "name": "zeta"}])
    );
    assert_eq!(
        acc["entitlements"],
        json!({"seats": 3, "sso": true, "tier": "gold"})
    );

    // Replacing a role recomputes the accounts holding it.
    let r = api(
        &app,
        &admin,
        "PUT",
        &format!("/api/v1/roles/{zeta}"),
        Some(json!({"name": "zeta", "entitlements": {"seats": 9, "sso": false, "tier": "bronze"}})),
    )
    .await;
    ok(&r, 200);
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(
        now["entitlements"],
        json!({"seats": 9, "sso": false, "tier": "gold"})
    );
    let last = feed(&app, &admin).await.pop().unwrap();
    assert_eq!(last["type"], "account.roles_changed");
    assert_eq!(last["accountId"], acc_id.as_str());
    assert_eq!(last["data"]["account"]["entitlements"], now["entitlements"]);
    assert_eq!(
        last["data"]["previousRoles"],
        json!([{"id": alpha, "name": "alpha"}, {"id": zeta, "name": "zeta"}])
    );

    // Deleting a rule, then a role, recomputes too; the role's rules go with it.
    let r = api(
        &app,
        &admin,
        "DELETE",
        &format!("/api/v1/rules/{zeta_rule}"),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([{"id": alpha, "name": "alpha"}]));
    assert_eq!(
        now["entitlements"],
        json!({"seats": 2, "sso": false, "tier": "gold"})
    );
    let r = api(
        &app,
        &admin,
        "DELETE",
        &format!("/api/v1/roles/{alpha}"),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([]));
    assert_eq!(now["entitlements"], json!({}));
    let r = api(&app, &admin, "GET", "/api/v1/rules", None).await;
    assert_eq!(items(&r), Vec::<Value>::new());
    let r = api(&app, &admin, "GET", &format!("/api/v1/roles/{alpha}"), None).await;
    api_error(&r, 404, "not_found");

    // A group rule follows membership both ways (Entra's Add and Remove of members).
    let gid = entra_group(&app, "Pager").await;
    let pager = create_role(&app, &admin, "pager", json!({"pager": true})).await;
    create_rule(&app, &admin, json!({"role": pager, "group": gid})).await;
    entra_add_members(&app, &gid, &[&u]).await;
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([{"id": pager, "name": "pager"}]));
    assert_eq!(now["groups"], json!([{"id": gid, "displayName": "Pager"}]));
    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/accounts?role={pager}"),
        None,
    )
    .await;
    assert_eq!(items(&r).len(), 1);
    scim_patch(
        &app,
        &format!("/scim/v2/Groups/{gid}"),
        patch_body(
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": u}]}]),
        ),
    )
    .await;
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([]));
    assert_eq!(now["groups"], json!([]));

    // Deleting a webhook.
    let (hook, _) = subscribe(&app, &admin, "https://hooks.example.com/x", &["*"], None).await;
    let r = api(
        &app,
        &admin,
        "DELETE",
        &format!("/api/v1/webhooks/{hook}"),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let r = api(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{hook}"),
        None,
    )
    .await;
    api_error(&r, 404, "not_found");
}

// ---------------------------------------------------------------------------------------
// Deliveries survive a restart; two instances on one database share them

#[actix_web::test]
async fn queued_deliveries_survive_a_restart_and_two_instances_send_each_once() {
    let db = TestDb::new();
    let a = hook_args(&db);
    let rx = Receiver::start(200);

    // The first instance runs no delivery threads: it stops (as if killed) with every
    // delivery still queued in the database.
    let events = {
        let (app, state) = app_with(a.clone()).await;
        let admin = admin_token(&state);
        subscribe(&app, &admin, &rx.url, &["*"], None).await;
        for i in 0..12 {
            let user = scim_create(
                &app,
                okta_user(&format!("restart{i}@example.com"), "Sales", "Rep"),
            )
            .await;
            scim_patch(&app, &format!("/scim/v2/Users/{user}"), okta_active(false)).await;
        }
        feed(&app, &admin).await
    };
    assert!(events.len() >= 36, "{} events", events.len());
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.hits().is_empty(), "nothing is sent without workers");

    // Two instances start on the same database, each with its own delivery threads.
    let one = state(&a);
    let two = state(&a);
    let w1 = scimitar::server::start_webhooks(&a, &one);
    let w2 = scimitar::server::start_webhooks(&a, &two);
    let want: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    rx.until("every queued event delivered", |h| {
        let got: HashSet<&str> = h.iter().map(|x| x.header("webhook-id")).collect();
        want.iter().all(|w| got.contains(w))
    })
    .await;
    // Give a second sender the time to (wrongly) send something again.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    w1.shutdown();
    w2.shutdown();

    let hits = rx.hits();
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    for h in &hits {
        assert!(h.ok());
        *per_event.entry(h.header("webhook-id")).or_default() += 1;
    }
    let twice: Vec<_> = per_event.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(per_event.len(), want.len());
    // In feed order per account.
    let mut last: HashMap<String, i64> = HashMap::new();
    for h in &hits {
        let ev = h.event();
        let key = ev["accountId"]
            .as_str()
            .or(ev["resourceId"].as_str())
            .unwrap_or("")
            .to_string();
        let seq = ev["seq"].as_i64().unwrap();
        let prev = last.insert(key.clone(), seq).unwrap_or(0);
        assert!(seq > prev, "{key}: seq {seq} arrived after seq {prev}");
    }
}
