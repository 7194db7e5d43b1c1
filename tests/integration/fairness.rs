//! One tenant, one query or one client never slows the server for everyone (issue 13):
//! statement deadlines, cancellation of a gone client's statement, caps on what one write
//! may store, per-tenant admission and per-tenant wake-ups. Both backends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;
use scimitar::config::SqliteSync;
use scimitar::storage::conn::{Conn, DbUrl};
use scimitar::storage::sql::{Bind, Sql};

/// A connection of the test's own to the test database (outside the server's pool).
fn side(db: &TestDb) -> Conn {
    Conn::establish(&DbUrl::parse(&db.url).unwrap(), SqliteSync::Normal).expect("side conn")
}

/// `n` users of the default tenant written straight into `resources` (no attribute values),
/// so a filter that scans them all is slow on both backends.
/// What the plan tests read: `users` seeded users, `rows` written beside them on a side
/// connection (returned), the statistics thread off (the state is kept while the test runs).
fn planned(
    users: u32,
    rows: &[&str],
) -> (TestDb, actix_web::web::Data<scimitar::http::AppState>, Conn) {
    let db = TestDb::new();
    let mut a = args(&db);
    a.db_analyze_every_secs = 0;
    let state = state(&a);
    seed_users(&db, users);
    let mut c = side(&db);
    for q in rows {
        c.db().execute(&Sql::new(q)).expect(q);
    }
    (db, state, c)
}

/// The condition on `resources r` of a User filter of tenant `default` (`search::matching`).
fn user_matching(c: &mut Conn, text: &str) -> Sql {
    use scimitar::scim::filter::{parse_filter, resolve, Limits};
    use scimitar::scim::schema::{Registry, Rtype};
    let registry = Registry::load().unwrap();
    let parsed = parse_filter(text, &Limits::default()).unwrap();
    let cond = resolve(&registry, Rtype::User, &parsed).unwrap();
    scimitar::storage::search::matching(
        &mut c.db(),
        &scimitar::storage::TenantId::from("default"),
        Rtype::User,
        Some(&cond),
    )
    .unwrap()
}

fn seed_users(db: &TestDb, n: u32) {
    let mut c = side(db);
    let q = if db.is_postgres() {
        format!(
            "INSERT INTO resources (tenant_id, id, rtype, user_name, user_name_ci, display_name, \
             display_ci, doc, version, created, modified) \
             SELECT 'default', 'seed-' || i, 'User', 'seed' || i, 'seed' || i, 'Seed ' || i, \
             'seed ' || i, '{{}}', 1, 0, 0 FROM generate_series(1, {n}) AS i"
        )
    } else {
        format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             INSERT INTO resources (tenant_id, id, rtype, user_name, user_name_ci, display_name, \
             display_ci, doc, version, created, modified) \
             SELECT 'default', 'seed-' || i, 'User', 'seed' || i, 'seed' || i, 'Seed ' || i, \
             'seed ' || i, '{{}}', 1, 0, 0 FROM s"
        )
    };
    c.db().execute(&Sql::new(&q)).expect("seed users");
}

/// A valid filter that scans every user a hundred times (two-character `co` operands use no
/// trigram index).
fn runaway_filter() -> String {
    let terms: Vec<String> = (0..100)
        .map(|i| {
            let a = (b'a' + (i % 26) as u8) as char;
            let b = (b'a' + (i / 26) as u8) as char;
            let attr = if i % 2 == 0 {
                "userName"
            } else {
                "displayName"
            };
            format!("{attr} co \"{a}{b}\"")
        })
        .collect();
    terms.join(" or ")
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Holds the write lock other writers wait for: on SQLite `BEGIN IMMEDIATE`, on Postgres an
/// `ACCESS EXCLUSIVE` lock on `resources` (reads of it wait too). Released by `release`.
fn hold_writes(db: &TestDb) -> Conn {
    let mut c = side(db);
    if db.is_postgres() {
        c.db().execute(&Sql::new("BEGIN")).unwrap();
        c.db()
            .execute(&Sql::new("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE"))
            .unwrap();
    } else {
        c.db().execute(&Sql::new("BEGIN IMMEDIATE")).unwrap();
    }
    c
}

fn release(mut c: Conn) {
    c.db().execute(&Sql::new("ROLLBACK")).unwrap();
}

fn user(name: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
    })
}

/// The app with one pooled connection and a statement deadline of `timeout_ms`, and a user
/// `alice` in it; keep the database alive.
async fn alice_on_one_connection(timeout_ms: u64) -> (TestDb, impl TestApp) {
    let (db, app, _) = app_where(move |a| {
        a.db.db_pool_size = 1;
        a.db_statement_timeout_ms = timeout_ms;
    })
    .await;
    create_user(&app, "alice").await;
    (db, app)
}

#[actix_web::test]
async fn a_filter_past_the_deadline_is_400_too_many_and_the_pool_recovers() {
    // One connection: the one the runaway query ran on must serve the next request.
    let (db, app) = alice_on_one_connection(200).await;
    seed_users(&db, 300_000);
    let started = Instant::now();
    let r = call(
        &app,
        "GET",
        &format!(
            "/scim/v2/Users?count=5&filter={}",
            encode(&runaway_filter())
        ),
        None,
    )
    .await;
    eprintln!("runaway filter answered in {:?}", started.elapsed());
    r.expect_error(400, Some("tooMany"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("narrow"), "{detail}");
    for db_text in [
        "canceling",
        "interrupt",
        "statement_timeout",
        "locked",
        "SQL",
    ] {
        assert!(!detail.contains(db_text), "database text in {detail}");
    }
    // The same search as POST /.search is a list too.
    let r = call(
        &app,
        "POST",
        "/scim/v2/Users/.search",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": runaway_filter(),
            "count": 5
        })),
    )
    .await;
    r.expect_error(400, Some("tooMany"));
    // The pool's one connection is healthy.
    let r = get(&app, TOKEN, &filter_uri("Users", "userName eq \"alice\"")).await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 1);
    create_user(&app, "bob").await;
}

#[actix_web::test]
async fn a_write_past_the_deadline_is_503_with_retry_after_and_changes_nothing() {
    let (db, app) = alice_on_one_connection(300).await;
    let lock = hold_writes(&db);
    let r = call(&app, "POST", "/scim/v2/Users", Some(user("bob"))).await;
    r.expect(503);
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok()));
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("changed nothing"));
    release(lock);
    let r = call(
        &app,
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22bob%22",
        None,
    )
    .await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 0, "the timed-out write left a user");
    // And the one connection serves the same write now.
    create_user(&app, "bob").await;
}

/// Sends `POST /scim/v2/Users` over a raw socket and returns the socket, without reading.
fn start_post(base: &str, name: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    let body = user(name).to_string();
    write!(
        s,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

/// The server's pooled connections in use now, from its `/metrics`.
fn pool_in_use(base: &str) -> i64 {
    let mut r = ureq::get(format!("{base}/metrics"))
        .call()
        .expect("metrics");
    let text = r.body_mut().read_to_string().expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix("scimitar_db_pool_in_use "))
        .and_then(|v| v.trim().parse().ok())
        .expect("scimitar_db_pool_in_use in /metrics")
}

/// The server's statements on `resources` that are running now (Postgres), seen from a
/// connection outside any transaction (so not from a snapshot).
fn running_inserts(db: &TestDb) -> i64 {
    let mut c = side(db);
    c.db()
        .count(&Sql::new(
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE state = 'active' \
             AND query LIKE 'INSERT INTO resources%' AND pid <> pg_backend_pid()",
        ))
        .unwrap()
}

#[test]
fn a_client_that_disconnects_has_its_statement_cancelled() {
    let db = TestDb::new();
    // One connection, and a deadline far away: only the cancel can free it in time.
    let server = ServerProcess::start(
        &db,
        &["--db-pool-size", "1", "--db-statement-timeout-ms", "120000"],
        "warn",
        Stdio::null(),
    );
    let lock = hold_writes(&db);
    let mut stream = start_post(&server.url, "gone");
    // Wait until the write is blocked inside its statement.
    if db.is_postgres() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while running_inserts(&db) == 0 {
            assert!(Instant::now() < deadline, "the write never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        // The write holds the pool's one connection while it waits for the lock.
        let deadline = Instant::now() + Duration::from_secs(30);
        while pool_in_use(&server.url) != 1 {
            assert!(
                Instant::now() < deadline,
                "the write never took the connection"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(stream.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the write answered before the client left"
    );
    let gone = Instant::now();
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(stream);
    if db.is_postgres() {
        // pg_stat_activity: the statement is gone while the lock it waited for is still held.
        let deadline = Instant::now() + Duration::from_secs(20);
        while running_inserts(&db) > 0 {
            assert!(
                Instant::now() < deadline,
                "the gone client's statement still runs"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("statement gone {:?} after the client", gone.elapsed());
    }
    // The pool's one connection serves another request while the lock is still held
    // (without the cancel it would wait for the lock: 10 s on SQLite, 120 s on Postgres).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let r = agent
        .get(format!("{}/scim/v2/ServiceProviderConfig", server.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .expect("the pool's connection is back");
    assert_eq!(r.status(), 200);
    eprintln!("connection back {:?} after the client left", gone.elapsed());
    release(lock);
    let mut r = agent
        .get(format!(
            "{}/scim/v2/Users?filter=userName%20eq%20%22gone%22",
            server.url
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(
        body["totalResults"], 0,
        "the cancelled write created the user"
    );
}

fn emails(n: usize, tag: &str) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"value": format!("{tag}{i}@example.com"), "type": "work"}))
        .collect()
}

#[actix_web::test]
async fn each_cap_answers_its_error_and_changes_nothing() {
    let db = TestDb::new();
    let mut a = args(&db);
    a.max_values_per_attribute = 10;
    a.max_resource_bytes = 4096;
    let (app, state) = app_with(a).await;
    let before = events(&state).len();

    // Too many values of one attribute: POST, PUT and PATCH.
    let mut body = user("many");
    body["emails"] = json!(emails(11, "m"));
    let r = call(&app, "POST", "/scim/v2/Users", Some(body)).await;
    r.expect_error(400, Some("invalidValue"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("emails") && detail.contains("10"),
        "{detail}"
    );
    assert!(detail.contains("--max-values-per-attribute"), "{detail}");

    let mut body = user("few");
    body["emails"] = json!(emails(10, "f"));
    let id = post_id(&app, "/scim/v2/Users", body.clone()).await;
    let stored = call(&app, "GET", &format!("/scim/v2/Users/{id}"), None).await;
    stored.expect(200);
    let r = call(
        &app,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_body(json!([
            {"op": "add", "path": "emails", "value": [{"value": "one-more@example.com"}]}
        ]))),
    )
    .await;
    r.expect_error(400, Some("invalidValue"));
    // Re-adding values it holds (object keys in another order) adds nothing, so it is in.
    let r = call(
        &app,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_body(json!([
            {"op": "add", "path": "emails", "value": [{"type": "work", "value": "f0@example.com"}]}
        ]))),
    )
    .await;
    r.expect(200);
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 10);
    body["emails"] = json!(emails(11, "g"));
    let r = call(&app, "PUT", &format!("/scim/v2/Users/{id}"), Some(body)).await;
    r.expect_error(400, Some("invalidValue"));

    // Too many bytes stored.
    let mut big = user("big");
    for attr in ["displayName", "nickName", "title"] {
        big[attr] = json!("x".repeat(2000));
    }
    let r = call(&app, "POST", "/scim/v2/Users", Some(big.clone())).await;
    r.expect(413);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("4096") && detail.contains("--max-resource-bytes"),
        "{detail}"
    );
    let r = call(
        &app,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(patch_body(json!([
            {"op": "replace", "path": "displayName", "value": "y".repeat(2000)},
            {"op": "replace", "path": "nickName", "value": "y".repeat(2000)},
            {"op": "replace", "path": "title", "value": "y".repeat(2000)}
        ]))),
    )
    .await;
    r.expect(413);

    // Nothing changed: no new user, the stored one as it was, no event but its creation.
    let r = call(&app, "GET", "/scim/v2/Users", None).await;
    assert_eq!(r.body["totalResults"], 1);
    let now = call(&app, "GET", &format!("/scim/v2/Users/{id}"), None).await;
    assert_eq!(now.body, stored.body);
    assert_eq!(events(&state).len(), before + 1);
}

#[actix_web::test]
async fn a_busy_tenant_past_its_share_gets_429_and_another_tenant_does_not() {
    let db = TestDb::new();
    let mut a = args(&db);
    a.tenant_max_concurrency = Some(1);
    a.db_statement_timeout_ms = 60_000;
    let (app, state) = app_with(a).await;
    let app = std::rc::Rc::new(app);
    let other = tenant_with_token(&state, "other", scimitar::auth::Scope::Write);
    let spc = |token: &str| {
        actix_web::test::TestRequest::get()
            .uri("/scim/v2/ServiceProviderConfig")
            .insert_header(("Authorization", format!("Bearer {token}")))
    };
    // The other tenant's credential is used once before (its first use writes `last_used`).
    send(&*app, spc(&other)).await.expect(200);

    // The default tenant's one slot is held by a write that waits for a lock.
    let lock = hold_writes(&db);
    let w = app.clone();
    let stuck = actix_web::rt::spawn(async move {
        call(&*w, "POST", "/scim/v2/Users", Some(user("stuck")))
            .await
            .status
    });
    let tenant = scimitar::storage::TenantId::from("default");
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.admission.running(&tenant) < 1 {
        assert!(Instant::now() < deadline, "the write never started");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    // Its queue (QUEUE_PER_SLOT per slot) fills up.
    let full = scimitar::http::admission::QUEUE_PER_SLOT;
    let queued: Vec<_> = (0..full)
        .map(|_| {
            let w = app.clone();
            actix_web::rt::spawn(async move { send(&*w, spc(TOKEN)).await.status })
        })
        .collect();
    while state.admission.waiting(&tenant) < full {
        assert!(Instant::now() < deadline, "the queue never filled");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    // Past it: 429 with Retry-After, for this tenant only.
    let r = send(&*app, spc(TOKEN)).await;
    r.expect(429);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("--tenant-max-concurrency"));
    send(&*app, spc(&other)).await.expect(200);
    release(lock);
    assert_eq!(stuck.await.unwrap().as_u16(), 201);
    for q in queued {
        assert_eq!(q.await.unwrap().as_u16(), 200);
    }
}

/// On Postgres a low-priority read's statement runs in the database's processes, where the
/// server cannot lower its priority: there (only) such reads take turns
/// (`--db-low-priority-slots`, default 1; 0 and `--tenant-low-priority-after 0` turn it off).
#[actix_web::test]
async fn low_priority_reads_take_turns_in_the_database_on_postgres_only() {
    let db = TestDb::new();
    let expected = if db.is_postgres() { 1 } else { 0 };
    let (_app, state) = app_with(args(&db)).await;
    assert_eq!(state.admission.db_lane_slots(), expected);
    let mut a = args(&db);
    a.db_low_priority_slots = 3;
    let (_app, state) = app_with(a).await;
    assert_eq!(state.admission.db_lane_slots(), expected * 3);
    let mut a = args(&db);
    a.db_low_priority_slots = 0;
    let (_app, state) = app_with(a).await;
    assert_eq!(state.admission.db_lane_slots(), 0);
    let mut a = args(&db);
    a.tenant_low_priority_after = 0;
    let (_app, state) = app_with(a).await;
    assert_eq!(state.admission.db_lane_slots(), 0);
}

/// Tables changed by more than 10 % since their last analyze are vacuumed and analyzed
/// (Postgres; SQLite runs `PRAGMA optimize`).
#[actix_web::test]
async fn statistics_are_refreshed_after_a_table_changed_by_a_tenth() {
    let db = TestDb::new();
    let (_app, state) = app_with(args(&db)).await;
    seed_users(&db, 2000);
    let mut conn = state.service.pool.get().unwrap();
    let first = scimitar::storage::conn::refresh_statistics(&mut conn.db()).unwrap();
    if db.is_postgres() {
        assert!(first.iter().any(|t| t == "resources"), "{first:?}");
        let analyzed = side(&db)
            .db()
            .count(&Sql::new(
                "SELECT COUNT(*) AS n FROM pg_stats WHERE schemaname = current_schema() \
                 AND tablename = 'resources'",
            ))
            .unwrap();
        assert!(analyzed > 0, "resources has no statistics");
        let vacuumed = side(&db)
            .db()
            .count(&Sql::new(
                "SELECT COUNT(*) AS n FROM pg_stat_user_tables WHERE schemaname = current_schema() \
                 AND relname = 'resources' AND last_vacuum IS NOT NULL",
            ))
            .unwrap();
        assert_eq!(
            vacuumed, 1,
            "resources was not vacuumed (no visibility map)"
        );
    } else {
        assert!(first.is_empty());
    }
}

/// Postgres: the statistics thread takes the sample of trigrams substring searches choose
/// their fragments from as it starts, so the first `co` after a start does not take it.
/// SQLite samples nothing this way.
#[actix_web::test]
async fn the_statistics_thread_takes_the_trigram_sample_at_start() {
    use scimitar::storage::search::grams;
    let db = TestDb::new();
    let mut a = args(&db);
    a.db_analyze_every_secs = 3600;
    let (_app, state) = app_with(a.clone()).await;
    seed_users(&db, 50);
    if !db.is_postgres() {
        let mut conn = state.service.pool.get().unwrap();
        assert!(!grams::refresh_trigram_sample(&mut conn.db()).unwrap());
        assert_eq!(grams::trigram_sample_age(), None);
        return;
    }
    grams::forget_trigram_sample();
    scimitar::server::start_statistics(&a, &state);
    // Taken before start_statistics returns (so before the server listens): no request
    // finds the sample missing and takes one of its own.
    let age = grams::trigram_sample_age().expect("no sample taken at start");
    assert!(age < Duration::from_secs(300), "{age:?}");
    // Fresh: a second refresh takes none.
    let mut conn = state.service.pool.get().unwrap();
    assert!(!grams::refresh_trigram_sample(&mut conn.db()).unwrap());
}

/// A query plan's lines: Postgres `EXPLAIN`, SQLite `EXPLAIN QUERY PLAN`.
fn plan(c: &mut Conn, postgres: bool, query: Sql) -> String {
    #[derive(diesel::QueryableByName)]
    struct PgLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    #[derive(diesel::QueryableByName)]
    struct SqliteLine {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let mut q = Sql::new(if postgres {
        "EXPLAIN "
    } else {
        "EXPLAIN QUERY PLAN "
    });
    q.append(query);
    let lines: Vec<String> = if postgres {
        let rows: Vec<PgLine> = c.db().load(&q).expect("explain");
        rows.into_iter().map(|r| r.line).collect()
    } else {
        let rows: Vec<SqliteLine> = c.db().load(&q).expect("explain");
        rows.into_iter().map(|r| r.detail).collect()
    };
    lines.join("\n")
}

/// The plans of selective filters start from their index whatever the statistics say: on a
/// fresh, never analyzed database (Postgres then estimates a tenant's resources at a row or
/// two and, left alone, joined every resource against every match), and again after ANALYZE.
#[actix_web::test]
async fn selective_filters_drive_from_their_index_with_or_without_statistics() {
    // Enough rows that, once analyzed, an index is the cheaper plan for every filter here
    // (at 5,000 users Postgres rightly seq-scanned the 15,000 values for `co` after the
    // value index grew by the resource key, migration 000020).
    let (db, _state, mut c) = planned(
        20000,
        &[
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val) SELECT pk, 'default', \
             'emails', 0, NULL FROM resources WHERE rtype = 'User'",
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val) SELECT pk, 'default', \
             'emails.value', 0, 'u' || pk || '@example.com' FROM resources WHERE rtype = 'User'",
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val) SELECT pk, 'default', \
             'emails.type', 0, 'work' FROM resources WHERE rtype = 'User'",
            "INSERT INTO resources (tenant_id, id, rtype, display_name, display_ci, doc, version, \
             created, modified) VALUES ('default', 'grp-1', 'Group', 'G', 'g', '{}', 1, 0, 0)",
            "INSERT INTO members (tenant_id, group_pk, member_pk) SELECT 'default', g.pk, u.pk \
             FROM resources g, resources u WHERE g.id = 'grp-1' AND u.rtype = 'User' \
             AND u.pk % 10 = 0",
        ],
    );
    let filters = [
        "emails.value co \"123\"",
        "emails.value sw \"u12\"",
        "emails.value eq \"u12@example.com\"",
        "emails[type eq \"work\" and value co \"123\"]",
        "groups.value eq \"grp-1\"",
        "userName sw \"seed\" and emails.value co \"123\"",
    ];
    for analyzed in [false, true] {
        if analyzed {
            // This test's tables only: a bare ANALYZE on Postgres analyzes every schema of
            // the database, so other tests' tables too, while they expect none.
            for t in [
                "ANALYZE resources",
                "ANALYZE attr_values",
                "ANALYZE members",
            ] {
                c.db().execute(&Sql::new(t)).expect(t);
            }
        }
        for text in filters {
            let mut q = Sql::new("SELECT r.pk FROM resources r WHERE ");
            q.append(user_matching(&mut c, text));
            let p = plan(&mut c, db.is_postgres(), q);
            let shown = format!("{text} (analyzed: {analyzed}):\n{p}");
            if db.is_postgres() {
                // The keys once (an InitPlan), then the resources by primary key: never a
                // scan of the tenant's resources with the matches joined per row.
                assert!(p.contains("InitPlan"), "{shown}");
                assert!(p.contains("resources_pkey"), "{shown}");
                assert!(p.contains("(pk = ANY ("), "{shown}");
                for bad in ["resources_list", "Seq Scan on resources r", "Join Filter"] {
                    assert!(!p.contains(bad), "{bad} in {shown}");
                }
            } else {
                // The matching keys read once (a list, not a correlated subquery per
                // resource), the resources looked up by key (rowid, or pk in the
                // (tenant_id, rtype, pk) index) unless another selective index drives.
                assert!(p.contains("LIST SUBQUERY"), "{shown}");
                assert!(!p.contains("CORRELATED"), "{shown}");
                assert!(!p.lines().any(|l| l.starts_with("SCAN r")), "{shown}");
                assert!(
                    text.starts_with("userName")
                        || p.lines().any(|l| l.starts_with("SEARCH r ")
                            && (l.contains("rowid=?") || l.contains("pk=?"))),
                    "{shown}"
                );
            }
            // The subquery starts from the selective index, not from a scan of the table.
            let start = if text.starts_with("groups") {
                if db.is_postgres() {
                    "resources_id"
                } else {
                    "INDEX resources_id"
                }
            } else if db.is_postgres() {
                "attr_values_"
            } else if text.contains(" co ") {
                "attr_values_trgm VIRTUAL TABLE"
            } else {
                "INDEX attr_values_val"
            };
            assert!(p.contains(start), "{start} not in {shown}");
        }
    }
}

/// `schemas eq "<extension URN>"` tests each candidate resource for a row under the URN's
/// paths: one range of the (res_pk, path, elem) index per resource, also with statistics, on
/// SQLite connections that plan without looking at bound values (`watch::stable_plans`: a
/// bound LIKE pattern there read every row of the resource).
#[actix_web::test]
async fn an_extension_test_reads_one_path_range_of_each_resource() {
    let (db, _state, mut c) = planned(
        2000,
        &[
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val) SELECT pk, 'default', \
             p.path, 0, 'v' FROM resources, (SELECT 'title' AS path UNION ALL SELECT 'nickname') p",
            // Half the users carry the extension; a path that sorts just past its range does
            // not count.
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val) SELECT pk, 'default', \
             'urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department', 0, 'v' \
             FROM resources WHERE pk % 2 = 0",
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val) SELECT pk, 'default', \
             'urn:ietf:params:scim:schemas:extension:enterprise:2.0:user;', 0, 'v' \
             FROM resources WHERE pk % 2 = 1",
            // Its own tables (a bare ANALYZE would take other tests' schemas too).
            "ANALYZE resources",
            "ANALYZE attr_values",
        ],
    );
    let base = user_matching(
        &mut c,
        "schemas eq \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"",
    );
    let mut count = Sql::new("SELECT COUNT(*) AS n FROM resources r WHERE ");
    count.append(base.clone());
    assert_eq!(c.db().count(&count).expect("count"), 1000);
    if !db.is_postgres() {
        // (On Postgres the prefix stays a LIKE, and with every user a candidate a hash join
        // of the extension's rows is the better plan.)
        let mut q = Sql::new("SELECT r.pk FROM resources r WHERE ");
        q.append(base);
        let p = plan(&mut c, false, q);
        let probe = "attr_values_res (res_pk=? AND path>? AND path<?)";
        assert!(p.contains(probe), "{probe} not in:\n{p}");
        // Why not a LIKE prefix: the server's connections plan without looking at bound
        // values, so SQLite cannot turn a bound pattern into a range.
        let like = Sql::with(
            "SELECT 1 FROM attr_values x WHERE x.res_pk = 5 AND x.path LIKE ? ESCAPE '\\'",
            [Bind::text("urn:ietf:%")],
        );
        let p = plan(&mut c, false, like);
        assert!(
            !p.contains("path>?"),
            "a bound pattern planned by its value:\n{p}"
        );
    }
}

/// A DELETE finds the groups that hold the resource from the resource's unique key, never by
/// reading the tenant's resources: fresh (Postgres walked every user of the tenant through the
/// (tenant_id, rtype, pk) index to find one id) and analyzed; SQLite scanned the tenant's
/// resources for the groups' keys. Every delete ran it.
#[actix_web::test]
async fn a_delete_finds_its_groups_from_the_member_key() {
    use scimitar::scim::schema::Rtype;
    use scimitar::storage::members::groups_containing_sql;
    let (db, state, mut c) = planned(
        20000,
        &[
            "INSERT INTO resources (tenant_id, id, rtype, display_name, display_ci, doc, version, \
             created, modified) VALUES ('default', 'grp-1', 'Group', 'G', 'g', '{}', 1, 0, 0)",
            "INSERT INTO members (tenant_id, group_pk, member_pk) SELECT 'default', g.pk, u.pk \
             FROM resources g, resources u WHERE g.id = 'grp-1' AND u.rtype = 'User' \
             AND (u.pk % 10 = 0 OR u.id = 'seed-10') AND u.id <> 'seed-11'",
        ],
    );
    let tenant = scimitar::storage::TenantId::from("default");
    for analyzed in [false, true] {
        if analyzed {
            for t in ["ANALYZE resources", "ANALYZE members"] {
                c.db().execute(&Sql::new(t)).expect(t);
            }
        }
        let backend = c.db().backend();
        let q = groups_containing_sql(backend, &tenant, Rtype::User, "seed-10");
        let p = plan(&mut c, db.is_postgres(), q);
        let shown = format!("(analyzed: {analyzed}):\n{p}");
        if db.is_postgres() {
            assert!(p.contains("resources_id"), "{shown}");
            assert!(p.contains("resources_pkey"), "{shown}");
            for bad in ["resources_list", "Seq Scan on resources"] {
                assert!(!p.contains(bad), "{bad} in {shown}");
            }
        } else {
            assert!(
                p.contains("SEARCH u USING INDEX resources_id (tenant_id=? AND id=?)"),
                "{shown}"
            );
            assert!(
                p.contains("SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"),
                "{shown}"
            );
            assert!(!p.lines().any(|l| l.starts_with("SCAN")), "{shown}");
        }
    }
    // And it finds them: the member is in grp-1, another user in none.
    let mut conn = state.service.pool.get().unwrap();
    let mut d = conn.db();
    let found =
        scimitar::storage::members::groups_containing(&mut d, &tenant, Rtype::User, "seed-10")
            .expect("groups");
    assert_eq!(
        found.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["grp-1"]
    );
    let none =
        scimitar::storage::members::groups_containing(&mut d, &tenant, Rtype::User, "seed-11")
            .expect("groups");
    assert!(none.is_empty());
    // A user asked for as a Group finds nothing.
    let wrong =
        scimitar::storage::members::groups_containing(&mut d, &tenant, Rtype::Group, "seed-10")
            .expect("groups");
    assert!(wrong.is_empty());
}
