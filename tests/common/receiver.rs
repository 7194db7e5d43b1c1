//! The webhook receiver of the tests: actix-web's own HTTP server (https with a given
//! certificate when asked) on 127.0.0.1, on a thread of its own, recording every request and
//! answering the status set; and `verify`, the check a Standard Webhooks receiver makes,
//! with the specification's own library (not Scimitar's signing code).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

use scimitar::config::ServeArgs;
use scimitar::http::AppState;

use super::{admin_token, app_with, args, TestApp, TestDb};

/// How long to wait for something asynchronous (a webhook delivery, a dead letter).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    headers: HashMap<String, String>,
    pub body: String,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {}: {e}", self.body))
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// What the server thread shares with the test: how to answer (a status, and where a 3xx
/// points) and what came in.
#[derive(Default)]
struct Shared {
    status: AtomicU16,
    location: Mutex<Option<String>>,
    hits: Mutex<Vec<Hit>>,
}

/// Records one request, answers the status set.
async fn record(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let answered = shared.status.load(Ordering::SeqCst);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).to_string();
            (k.as_str().to_ascii_lowercase(), v)
        })
        .collect();
    shared.hits.lock().unwrap().push(Hit {
        path: req.uri().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        answered,
    });
    let mut out = HttpResponse::build(StatusCode::from_u16(answered).expect("status"));
    if let Some(to) = shared.location.lock().unwrap().as_deref() {
        if (300..400).contains(&answered) {
            out.insert_header(("location", to));
        }
    }
    out.finish()
}

/// A receiver on 127.0.0.1; stopped when dropped.
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start(status: u16) -> Receiver {
        Receiver::serve(status, None)
    }

    /// An https receiver presenting `cert_pem` (with its key); its URL names `localhost`.
    /// A client that does not trust the certificate fails the handshake: nothing recorded.
    pub fn start_tls(status: u16, cert_pem: &str, key_pem: &str) -> Receiver {
        use openssl::ssl::{SslAcceptor, SslMethod};
        let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes()).expect("key");
        tls.set_private_key(&key).expect("set key");
        let cert = openssl::x509::X509::from_pem(cert_pem.as_bytes()).expect("certificate");
        tls.set_certificate(&cert).expect("set certificate");
        Receiver::serve(status, Some(tls))
    }

    fn serve(status: u16, tls: Option<openssl::ssl::SslAcceptorBuilder>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let url = match &tls {
            Some(_) => format!("https://localhost:{port}/hooks/scimitar"),
            None => format!("http://127.0.0.1:{port}/hooks/scimitar"),
        };
        let shared = Arc::new(Shared::default());
        shared.status.store(status, Ordering::SeqCst);
        let data = web::Data::from(shared.clone());
        let (started, handle) = std::sync::mpsc::channel();
        // Its own thread and actix system: independent of the test's runtime.
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(16 << 20))
                        .default_service(web::to(record))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0);
                let server = match tls {
                    Some(tls) => server.listen_openssl(listener, tls),
                    None => server.listen(listener),
                }
                .expect("receiver listens")
                .run();
                started.send(server.handle()).expect("receiver started");
                let _ = server.await;
            });
        });
        let server = handle.recv().expect("receiver started");
        Receiver {
            url,
            shared,
            server,
            thread: Some(thread),
        }
    }

    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Answers 302 pointing at `to`.
    pub fn redirect(&self, to: &str) {
        *self.shared.location.lock().unwrap() = Some(to.to_string());
        self.answer(302);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests so far; panics after PATIENCE.
    pub async fn until(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
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

    /// Waits until a delivery is accepted, checks every request so far with `verify` and
    /// `secret`, and returns the event of the first accepted one.
    pub async fn first_delivered(&self, what: &str, secret: &str) -> Value {
        let hits = self.until(what, |h| h.iter().any(Hit::ok)).await;
        for h in &hits {
            verify(h, secret);
        }
        hits.iter()
            .find(|h| h.ok())
            .expect("an accepted delivery")
            .event()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The stop command is sent at once; its completion is the thread's end.
        drop(self.server.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks a delivery as a receiver following Standard Webhooks would, with the
/// specification's own Rust library (`standardwebhooks`, not Scimitar's signing code): the
/// `v1` signature over `{webhook-id}.{webhook-timestamp}.{body}` keyed by the secret after
/// `whsec_`, a timestamp within five minutes; and the id in the body.
#[track_caller]
pub fn verify(hit: &Hit, secret: &str) {
    assert_eq!(hit.header("content-type"), "application/json");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = http::HeaderValue::from_str(hit.header(name)).expect("header value");
        headers.insert(name, value);
    }
    standardwebhooks::Webhook::new(secret)
        .expect("a whsec_ secret")
        .verify(hit.body.as_bytes(), &headers)
        .unwrap_or_else(|e| panic!("not a valid Standard Webhooks delivery ({e}): {hit:?}"));
    assert_eq!(
        hit.event()["id"],
        hit.header("webhook-id"),
        "webhook-id is the event id"
    );
}

/// Serve arguments with a quick retry schedule for the tests, and the receivers' loopback
/// allowed (the default policy refuses it).
pub fn hook_args(db: &TestDb) -> ServeArgs {
    let mut a = args(db);
    a.webhooks.webhook_allowed_hosts = "loopback".into();
    a.webhooks.webhook_timeout_ms = 2_000;
    a.webhooks.webhook_backoff_ms = 20;
    a.webhooks.webhook_max_backoff_ms = 100;
    a.webhooks.webhook_poll_ms = 20;
    a.webhooks.webhook_retry_horizon_secs = 3600;
    a
}

/// The app on a fresh database with `hook_args`, `change` made to them first: the database
/// (keep it alive), the serve arguments (for `start_webhooks`), the app, its state and an
/// admin token of the default tenant (`admin_token`).
pub async fn hook_app(
    change: impl FnOnce(&mut ServeArgs),
) -> (TestDb, ServeArgs, impl TestApp, web::Data<AppState>, String) {
    let db = TestDb::new();
    let mut a = hook_args(&db);
    change(&mut a);
    let (app, state) = app_with(a.clone()).await;
    let admin = admin_token(&state);
    (db, a, app, state, admin)
}
