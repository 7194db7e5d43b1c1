//! Test harness: the real app (same `configure` and state builder as `main`) on a fresh
//! database per test: a temp SQLite file, or a fresh Postgres schema when
//! SCIMITAR_TEST_POSTGRES_URL is set.

#![allow(dead_code)]

mod api;
mod batch;
mod idp;
mod receiver;
mod request;
mod tenants;

#[allow(unused_imports)]
pub use {api::*, batch::*, idp::*, receiver::*, request::*, tenants::*};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{test, web};
use serde_json::Value;

use scimitar::config::ServeArgs;
use scimitar::config::SqliteSync;
use scimitar::http::{self, AppState};
use scimitar::server;
use scimitar::storage::conn::{Conn, DbUrl};
use scimitar::storage::sql::Sql;
use scimitar::storage::{self, TenantId};

pub const TOKEN: &str = "test-token";

/// `NAME = "dir/file"` declares `const NAME: &str`, the text of `tests/fixtures/dir/file`
/// (read at build time), for each pair. (Not every test binary that includes `common` uses it.)
#[allow(unused_macros)]
macro_rules! fixtures {
    ($($(#[$doc:meta])* $name:ident = $file:literal),* $(,)?) => {
        $($(#[$doc])* const $name: &str = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $file
        ));)*
    };
}
#[allow(unused_imports)]
pub(crate) use fixtures;

/// The app under test as the helpers take it: an actix service of test requests, its
/// response body type named once here instead of a `Service` bound at every helper.
pub trait TestApp:
    Service<actix_http::Request, Response = ServiceResponse<Self::Body>, Error = actix_web::Error>
{
    type Body: MessageBody;
}

impl<S, B> TestApp for S
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Body = B;
}

/// A database for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn new() -> TestDb {
        match std::env::var("SCIMITAR_TEST_POSTGRES_URL") {
            Ok(base) if !base.is_empty() => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = Conn::establish(
                    &DbUrl::parse(&base).expect("postgres url"),
                    SqliteSync::Normal,
                )
                .expect("connect to SCIMITAR_TEST_POSTGRES_URL");
                conn.db()
                    .execute(&Sql::new(&format!("CREATE SCHEMA {schema}")))
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                TestDb {
                    url: format!("{base}{sep}options=-csearch_path%3D{schema}"),
                    _dir: None,
                    pg: Some((base, schema)),
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg {
            if let Ok(url) = DbUrl::parse(base) {
                if let Ok(mut conn) = Conn::establish(&url, SqliteSync::Normal) {
                    let _ = conn
                        .db()
                        .execute(&Sql::new(&format!("DROP SCHEMA {schema} CASCADE")));
                }
            }
        }
    }
}

/// Serve arguments for a test database, as `scimitar serve` would get them.
pub fn args(db: &TestDb) -> ServeArgs {
    let mut a = ServeArgs::from_env();
    a.db.database_url = db.url.clone();
    a.db.db_pool_size = 4;
    a.base_url = Some("http://scim.test/scim/v2".into());
    a.bootstrap_token = Some(TOKEN.into());
    a.strict = false;
    a
}

pub fn state(args: &ServeArgs) -> web::Data<AppState> {
    let (state, _) = server::build_state(args).expect("build state");
    web::Data::new(state)
}

/// The app and its database; keep the returned `TestDb` alive for the test.
pub async fn app_with(args: ServeArgs) -> (impl TestApp, web::Data<AppState>) {
    let data = state(&args);
    let app = test::init_service(http::app(data.clone())).await;
    (app, data)
}

/// The app on a fresh database, its state, and the database (keep it alive for the test).
pub async fn app_state() -> (TestDb, impl TestApp, web::Data<AppState>) {
    app_where(|_| {}).await
}

/// `app_state` with `change` made to the serve arguments first.
pub async fn app_where(
    change: impl FnOnce(&mut ServeArgs),
) -> (TestDb, impl TestApp, web::Data<AppState>) {
    let db = TestDb::new();
    let mut a = args(&db);
    change(&mut a);
    let (app, state) = app_with(a).await;
    (db, app, state)
}

pub async fn app() -> (impl TestApp, TestDb) {
    let db = TestDb::new();
    let (app, _) = app_with(args(&db)).await;
    (app, db)
}

/// A response: status, headers and JSON body (Null when empty).
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the status and, for errors, the SCIM error shape (RFC 7644 §3.12).
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        if status >= 400 {
            assert_eq!(
                self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
                "error body: {}",
                self.raw
            );
            assert_eq!(self.body["status"], status.to_string());
            assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
            assert_eq!(
                self.header("content-type").as_deref(),
                Some("application/scim+json")
            );
        }
        self
    }

    /// A 401 whose `WWW-Authenticate` names `invalid_token` (RFC 6750 §3.1).
    #[track_caller]
    pub fn expect_invalid_token(&self) -> &Resp {
        self.expect_error(401, None);
        let challenge = self.header("www-authenticate");
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.contains("invalid_token")),
            "WWW-Authenticate: {challenge:?}"
        );
        self
    }

    /// `expect_error` for a row of a case table: a wrong status or scimType names `case`.
    #[track_caller]
    pub fn expect_case(&self, case: &str, status: u16, scim_type: Option<&str>) -> &Resp {
        assert_eq!(
            (self.status.as_u16(), self.body["scimType"].as_str()),
            (status, scim_type),
            "{case}: body: {}",
            self.raw
        );
        self.expect_error(status, scim_type)
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, scim_type: Option<&str>) -> &Resp {
        self.expect(status);
        assert_eq!(
            self.body["scimType"].as_str(),
            scim_type,
            "body: {}",
            self.raw
        );
        self
    }
}

/// A request builder with the test token.
pub fn req(method: &str, uri: &str) -> test::TestRequest {
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    test::TestRequest::default()
        .method(m)
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
}

pub async fn send<S: TestApp>(app: &S, r: test::TestRequest) -> Resp {
    let resp = test::call_service(app, r.to_request()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = test::read_body(resp).await;
    let raw = String::from_utf8_lossy(&bytes).to_string();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&raw).unwrap_or(Value::String(raw.clone()))
    };
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

/// GETs `uri` with this `Authorization` header (a scheme and credential as the test writes it).
pub async fn get_authorized<S: TestApp>(app: &S, uri: &str, authorization: &str) -> Resp {
    send(
        app,
        test::TestRequest::get()
            .uri(uri)
            .insert_header(("Authorization", authorization)),
    )
    .await
}

pub async fn call<S: TestApp>(app: &S, method: &str, uri: &str, body: Option<Value>) -> Resp {
    request(app, TOKEN, method, uri, body).await
}

/// POSTs `body` to `path`, expects 201, returns the new resource's id.
pub async fn post_id<S: TestApp>(app: &S, path: &str, body: Value) -> String {
    let r = call(app, "POST", path, Some(body)).await;
    r.expect(201);
    r.body["id"].as_str().expect("id").to_string()
}

/// Creates a user and returns its id.
pub async fn create_user<S: TestApp>(app: &S, user_name: &str) -> String {
    post_id(
        app,
        "/scim/v2/Users",
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "displayName": format!("{user_name} display"),
            "active": true
        }),
    )
    .await
}

pub async fn create_group<S: TestApp>(app: &S, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members
        .iter()
        .map(|m| serde_json::json!({"value": m}))
        .collect();
    post_id(
        app,
        "/scim/v2/Groups",
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": members
        }),
    )
    .await
}

/// The SCIM events (RFC 9967) of a tenant's feed, as (resource id, kind) pairs, the kind
/// without its `urn:ietf:params:scim:event:prov:` prefix (`create:full`, `deactivate`, ...).
pub fn scim_events(state: &web::Data<AppState>, tenant: &str) -> Vec<(String, String)> {
    let mut conn = state.service.pool.get().expect("conn");
    storage::feed::all(&mut conn.db(), &TenantId::from(tenant))
        .expect("feed")
        .into_iter()
        .filter_map(|e| {
            let kind = e.kind.strip_prefix("urn:ietf:params:scim:event:prov:")?;
            Some((e.resource_id.unwrap_or_default(), kind.to_string()))
        })
        .collect()
}

/// `scim_events` of the default tenant.
pub fn events(state: &web::Data<AppState>) -> Vec<(String, String)> {
    scim_events(state, "default")
}

/// PATCHes `path` with the operations `ops` (a PatchOp message around them).
pub async fn patch<S: TestApp>(app: &S, path: &str, ops: Value) -> Resp {
    call(app, "PATCH", path, Some(patch_body(ops))).await
}

pub fn patch_body(ops: Value) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": ops
    })
}

/// A new credential of scope `admin` on the default tenant (for `/api/v1`).
pub fn admin_token(state: &web::Data<AppState>) -> String {
    let mut conn = state.service.pool.get().expect("conn");
    let now = scimitar::scim::time::now_micros();
    let (_, token) = conn
        .write_tx(|db| {
            scimitar::auth::create_token(
                db,
                &"default".into(),
                Some("admin"),
                scimitar::auth::Scope::Admin,
                None,
                now,
            )
        })
        .expect("create admin token");
    token
}

/// A `scimitar serve` process (the built binary, started as it is deployed) on a free
/// loopback port, with the test token as its bootstrap token; killed and reaped when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts the server on `db` with `extra` flags and `RUST_LOG` (its standard error goes
    /// to `stderr`), and waits until it answers.
    pub fn start(
        db: &TestDb,
        extra: &[&str],
        rust_log: &str,
        stderr: std::process::Stdio,
    ) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_scimitar"))
            .args(["serve", "--listen", &listen, "--database-url", &db.url])
            .args(extra)
            .env("SCIMITAR_BOOTSTRAP_TOKEN", TOKEN)
            .env("RUST_LOG", rust_log)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn scimitar");
        // Owned at once, so it is killed and reaped on every path (Drop).
        let server = ServerProcess {
            child,
            url: format!("http://{listen}"),
        };
        let agent = http_agent();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let ready = agent
                .get(format!("{}/scim/v2/ServiceProviderConfig", server.url))
                .header("Authorization", format!("Bearer {TOKEN}"))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("scimitar did not start");
    }
}

/// A blocking HTTP client that returns every status as a response (not an error).
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}
