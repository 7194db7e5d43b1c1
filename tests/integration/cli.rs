//! The admin commands, run as the built binary against the test database (SQLite file, or
//! the test's Postgres schema), while the test's server holds the same database open.
//! Secrets go alone to standard output; bad input fails with a clear message and a non-zero
//! exit; and the server's log never shows a secret.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::common::*;

fn scimitar(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .args(args)
        .args(["--database-url", &db.url])
        .env_remove("SCIMITAR_DATABASE_URL")
        .output()
        .expect("run scimitar")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stdout(o), stderr(o));
    stdout(o)
}

#[track_caller]
fn fails(o: &Output, message: &str) {
    assert!(!o.status.success(), "succeeded: {}", stdout(o));
    assert!(stderr(o).contains(message), "stderr: {}", stderr(o));
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
}

#[actix_web::test]
async fn admin_commands_work_while_the_server_runs() {
    let (db, app, _state) = app_state().await;

    // Tenants.
    ok(&scimitar(&db, &["tenant", "create", "acme"]));
    fails(
        &scimitar(&db, &["tenant", "create", "acme"]),
        "tenant `acme` already exists",
    );
    fails(
        &scimitar(&db, &["tenant", "create", "bad name"]),
        "invalid tenant name",
    );
    let list = ok(&scimitar(&db, &["tenant", "list"]));
    assert!(list.lines().any(|l| l.starts_with("acme ")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("default ")), "{list}");

    // Tokens: the token alone on stdout, details on stderr.
    let out = scimitar(
        &db,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--label",
            "okta",
            "--expires-in",
            "30d",
        ],
    );
    let token = ok(&out);
    assert_eq!(token.lines().count(), 1);
    let token = token.trim().to_string();
    assert!(
        token.starts_with("scimitar_") && token.len() == 73,
        "{token}"
    );
    assert!(stderr(&out).contains("tenant `acme`") && stderr(&out).contains("expires 20"));
    assert!(!stderr(&out).contains(&token));
    fails(
        &scimitar(&db, &["token", "create", "--tenant", "nope"]),
        "no tenant named `nope`",
    );
    fails(
        &scimitar(
            &db,
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--expires-in",
                "soon",
            ],
        ),
        "invalid duration",
    );
    let o = scimitar(
        &db,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--scope",
            "superuser",
        ],
    );
    assert!(!o.status.success() && o.stdout.is_empty());
    let read = ok(&scimitar(
        &db,
        &["token", "create", "--tenant", "acme", "--scope", "read"],
    ));
    let read = read.trim().to_string();

    // The server accepts them at once: created by another process on the same database.
    post_user(&app, &token, "cli@acme", "c", "cli@acme.example")
        .await
        .expect(201);
    get(&app, &read, "/scim/v2/Users").await.expect(200);
    delete(&app, &read, "/scim/v2/Users/x").await.expect(403);

    let tokens = ok(&scimitar(&db, &["token", "list", "--tenant", "acme"]));
    assert!(tokens.starts_with("ID"), "{tokens}");
    assert!(tokens.contains("okta") && tokens.contains("read") && tokens.contains("active"));
    assert!(!tokens.contains("scimitar_"), "never the secret: {tokens}");
    fails(
        &scimitar(&db, &["token", "list", "--tenant", "nope"]),
        "no tenant named `nope`",
    );
    let id = tokens
        .lines()
        .find(|l| l.contains("okta"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    ok(&scimitar(&db, &["token", "revoke", &id]));
    get(&app, &token, "/scim/v2/Users").await.expect(401);
    assert!(ok(&scimitar(&db, &["token", "list", "--tenant", "acme"])).contains("revoked"));
    fails(
        &scimitar(&db, &["token", "revoke", "no-such"]),
        "no token with id",
    );

    // OAuth clients: id, then secret, each alone on a line.
    let out = ok(&scimitar(&db, &["client", "create", "--tenant", "acme"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let (client_id, secret) = (lines[0].to_string(), lines[1].to_string());
    assert!(client_id.starts_with("scimitar-client-") && secret.starts_with("scimitar_"));
    fails(
        &scimitar(&db, &["client", "create", "--tenant", "nope"]),
        "no tenant named `nope`",
    );
    let basic = format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")));
    let r = send(
        &app,
        actix_web::test::TestRequest::post()
            .uri("/oauth/token")
            .insert_header(("Authorization", basic))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload("grant_type=client_credentials"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let access = r.body["access_token"].as_str().unwrap().to_string();
    let r = get(&app, &access, "/scim/v2/Users").await;
    assert_eq!(r.body["totalResults"], 1);
    assert!(ok(&scimitar(&db, &["client", "list", "--tenant", "acme"])).contains(&client_id));

    // Keys: rotation keeps the issued token valid.
    let kid = ok(&scimitar(&db, &["keys", "rotate"]));
    assert_eq!(kid.lines().count(), 1);
    assert!(ok(&scimitar(&db, &["keys", "list"])).contains(kid.trim()));
    get(&app, &access, "/scim/v2/Users").await.expect(200);

    // Dialect settings and the external issuer.
    ok(&scimitar(&db, &["tenant", "set", "acme", "--strict"]));
    assert!(ok(&scimitar(&db, &["tenant", "list"])).contains("dialect: strict"));
    fails(
        &scimitar(
            &db,
            &["tenant", "set", "acme", "--tolerance", "nonsense=on"],
        ),
        "unknown tolerance",
    );
    fails(
        &scimitar(&db, &["tenant", "set", "nope", "--strict"]),
        "no tenant named `nope`",
    );
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt/rsa-public.pem"
    );
    let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/jwks.json");
    // `tenant jwt acme` with the issuer and audience, and `key` (its key and algorithm).
    let trust = |key: &[&str]| {
        let mut a = vec![
            "tenant",
            "jwt",
            "acme",
            "--issuer",
            "https://idp.example/",
            "--audience",
            "scim",
        ];
        a.extend_from_slice(key);
        scimitar(&db, &a)
    };
    ok(&trust(&["--pem", pem, "--alg", "RS256"]));
    let shown = ok(&scimitar(&db, &["tenant", "jwt", "acme"]));
    assert!(
        shown.contains("issuer: https://idp.example/") && shown.contains("pem RS256"),
        "{shown}"
    );
    fails(&trust(&["--jwks", jwks]), "names no `alg`");
    ok(&trust(&["--jwks", jwks, "--alg", "RS256"]));
    fails(&trust(&["--pem", pem, "--alg", "HS256"]), "not accepted");
    ok(&scimitar(&db, &["tenant", "jwt", "acme", "--remove"]));
    fails(
        &scimitar(&db, &["tenant", "jwt", "nope"]),
        "no tenant named `nope`",
    );

    // Delete: without --yes nothing changes.
    fails(&scimitar(&db, &["tenant", "delete", "acme"]), "--yes");
    assert!(ok(&scimitar(&db, &["tenant", "list"])).contains("acme "));
    get(&app, &access, "/scim/v2/Users").await.expect(200);
    fails(
        &scimitar(&db, &["tenant", "delete", "nope", "--yes"]),
        "no tenant named `nope`",
    );
    ok(&scimitar(&db, &["tenant", "delete", "acme", "--yes"]));
    assert!(!ok(&scimitar(&db, &["tenant", "list"])).contains("acme "));
    get(&app, &access, "/scim/v2/Users").await.expect(401);
    get(&app, &read, "/scim/v2/Users").await.expect(401);
}

/// Kills and reaps the server however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A real `scimitar serve` at the default log level: after tokens, OAuth and failed
/// attempts, its output contains none of the secrets.
#[test]
fn secrets_never_appear_in_the_server_log() {
    let db = TestDb::new();
    let token = ok(&scimitar(&db, &["token", "create", "--tenant", "default"]))
        .trim()
        .to_string();
    let client = ok(&scimitar(&db, &["client", "create", "--tenant", "default"]));
    let mut lines = client.lines();
    let (id, secret) = (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    );
    let bootstrap = "bootstrap-secret-value";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = Running(
        Command::new(env!("CARGO_BIN_EXE_scimitar"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &db.url,
                "--workers",
                "1",
            ])
            .env("SCIMITAR_BOOTSTRAP_TOKEN", bootstrap)
            .env("RUST_LOG", "info")
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let a = agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = a
            .get(format!("{base}/scim/v2/ServiceProviderConfig"))
            .header("Authorization", format!("Bearer {bootstrap}"))
            .call();
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = a
        .post(format!("{base}/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ))
        .unwrap();
    assert_eq!(r.status(), 200);
    let access: serde_json::Value = r.into_body().read_json().unwrap();
    let access = access["access_token"].as_str().unwrap().to_string();
    for credential in [
        &token,
        &access,
        &"wrong-token".to_string(),
        &format!("{secret}x"),
    ] {
        a.get(format!("{base}/scim/v2/Users?filter=userName%20pr"))
            .header("Authorization", format!("Bearer {credential}"))
            .call()
            .unwrap();
    }
    a.post(format!("{base}/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!(
            "grant_type=client_credentials&client_id={id}&client_secret=wrong-{secret}"
        ))
        .unwrap();
    drop(server);
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        text.contains("/scim/v2/Users"),
        "the request lines are logged: {text}"
    );
    for s in [&token, &secret, &access, &bootstrap.to_string()] {
        assert!(
            !text.contains(s.as_str()),
            "a secret is in the log:\n{text}"
        );
    }
}
