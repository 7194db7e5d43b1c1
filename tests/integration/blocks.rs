//! The counted blocks of primary keys that deep index pages skip by (`resource_blocks`,
//! migrations 000018 and 000019): on Postgres, append-only deltas that no write waits on and
//! that `compact_resource_blocks` folds; on SQLite, one upserted row per block. Each test runs
//! on both; the waits are Postgres's (SQLite has one writer).

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::query::{index_pages, user_names};
use scimitar::config::{ServeArgs, SqliteSync};
use scimitar::provisioning::tenancy;
use scimitar::storage::conn::{Conn, DbUrl};
use scimitar::storage::dialect::{Backend, RESOURCE_BLOCK_FOLD};
use scimitar::storage::search::blocks::{compact_resource_blocks, Compaction};
use scimitar::storage::sql::{Bind, Sql};
use scimitar::storage::tenancy as storage_tenancy;
use scimitar::storage::TenantId;

#[derive(diesel::QueryableByName)]
struct Tenant {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tenant_id: String,
}

pub(crate) fn connect(db: &TestDb) -> Conn {
    Conn::establish(&DbUrl::parse(&db.url).unwrap(), SqliteSync::Normal).unwrap()
}

/// Postgres: a second connection's waits fail fast (a regression fails, not hangs).
fn impatient(db: &TestDb) -> Conn {
    let mut c = connect(db);
    if db.is_postgres() {
        for set in ["SET lock_timeout = '2s'", "SET statement_timeout = '10s'"] {
            c.db().execute(&Sql::new(set)).unwrap();
        }
    }
    c
}

/// Keys (tenant, type, block) of `resource_blocks` with more than one row: deltas not folded.
pub(crate) fn unfolded_keys(conn: &mut Conn) -> i64 {
    conn.db()
        .count(&Sql::new(
            "SELECT COUNT(*) AS n FROM (SELECT tenant_id FROM resource_blocks \
             GROUP BY tenant_id, rtype, block HAVING COUNT(*) > 1) k",
        ))
        .unwrap()
}

/// Keys whose summed count is not the number of resources in their block, either way.
pub(crate) fn miscounted_keys(conn: &mut Conn) -> i64 {
    let counted = "SELECT tenant_id, rtype, block, CAST(SUM(n) AS BIGINT) AS n \
                   FROM resource_blocks GROUP BY tenant_id, rtype, block HAVING SUM(n) <> 0";
    let actual = "SELECT tenant_id, rtype, pk >> 12 AS block, COUNT(*) AS n FROM resources \
                  GROUP BY tenant_id, rtype, pk >> 12";
    let mut db = conn.db();
    [(counted, actual), (actual, counted)]
        .iter()
        .map(|(a, b)| {
            db.count(&Sql::new(&format!(
                "SELECT COUNT(*) AS n FROM ({a} EXCEPT {b}) x"
            )))
            .unwrap()
        })
        .sum()
}

/// Compacts, and checks the counts are right and folded (one row per key on both backends).
fn compact_and_check(conn: &mut Conn) -> Compaction {
    let done = compact_resource_blocks(&mut conn.db()).unwrap();
    assert_eq!(miscounted_keys(conn), 0, "after {done:?}");
    assert_eq!(unfolded_keys(conn), 0, "after {done:?}");
    done
}

fn insert(conn: &mut Conn, tenant: &str, rtype: &str, id: &str) -> Result<usize, String> {
    conn.db()
        .execute(&Sql::with(
            "INSERT INTO resources (tenant_id, id, rtype, doc, version, created, modified) \
             VALUES (?, ?, ?, '{}', 1, 0, 0)",
            [Bind::text(tenant), Bind::text(id), Bind::text(rtype)],
        ))
        .map_err(|e| format!("insert {rtype} {id}: {e}"))
}

fn delete(conn: &mut Conn, id: &str) -> Result<usize, String> {
    conn.db()
        .execute(&Sql::with(
            "DELETE FROM resources WHERE id = ?",
            [Bind::text(id)],
        ))
        .map_err(|e| format!("delete {id}: {e}"))
}

/// Postgres: the backend process id of a connection.
fn backend_pid(conn: &mut Conn) -> i64 {
    conn.db()
        .count(&Sql::new("SELECT CAST(pg_backend_pid() AS BIGINT) AS n"))
        .unwrap()
}

/// Postgres: waits (at most 10 s, else fails) until the backend `pid` waits on a lock
/// (`pg_stat_activity.wait_event_type = 'Lock'`); its `wait_event` (`relation`,
/// `transactionid`, ...). A fresh connection reads it each time: within a transaction the
/// view is a snapshot.
fn waiting_on_a_lock(db: &TestDb, pid: i64) -> String {
    #[derive(diesel::QueryableByName)]
    struct Wait {
        #[diesel(sql_type = diesel::sql_types::Text)]
        wait_event: String,
    }
    let mut observer = connect(db);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let wait: Option<Wait> = observer
            .db()
            .first(&Sql::with(
                "SELECT wait_event FROM pg_stat_activity \
                 WHERE pid = CAST(? AS INTEGER) AND wait_event_type = 'Lock'",
                [Bind::Int(pid)],
            ))
            .unwrap();
        if let Some(w) = wait {
            return w.wait_event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backend {pid} never waited on a lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Postgres: runs `job` on a thread, on a new connection whose statements time out after
/// 10 s, and returns once it waits on a lock: the thread, and the lock's `wait_event`.
fn waiting<T: Send + 'static>(
    db: &TestDb,
    job: impl FnOnce(&mut Conn) -> T + Send + 'static,
) -> (std::thread::JoinHandle<T>, String) {
    let url = db.url.clone();
    let (pid_tx, pid) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut c = Conn::establish(&DbUrl::parse(&url).unwrap(), SqliteSync::Normal).unwrap();
        c.db()
            .execute(&Sql::new("SET statement_timeout = '10s'"))
            .unwrap();
        pid_tx.send(backend_pid(&mut c)).unwrap();
        job(&mut c)
    });
    let wait = waiting_on_a_lock(db, pid.recv().unwrap());
    (thread, wait)
}

/// A tenant with one user (`first`) created through the API; its id.
async fn tenant_of<S: TestApp>(app: &S, conn: &mut Conn, first: &str) -> String {
    let id = create_user(app, first).await;
    let t: Tenant = conn
        .db()
        .first(&Sql::with(
            "SELECT tenant_id FROM resources WHERE id = ?",
            [Bind::text(&id)],
        ))
        .unwrap()
        .unwrap();
    t.tenant_id
}

/// A test's app and database, with a user "u0" of its tenant, a connection and an impatient
/// second one (`impatient`), and the tenant's id.
async fn writers() -> (impl TestApp, TestDb, Conn, Conn, String) {
    let (app, db) = app().await;
    let mut first = connect(&db);
    let second = impatient(&db);
    let tenant = tenant_of(&app, &mut first, "u0").await;
    (app, db, first, second, tenant)
}

/// Two write transactions of one tenant, one inserting a User then a Group, the other a
/// Group then a User and deleting a User, overlap: on Postgres the second runs to COMMIT
/// while the first is still open (under 000018 it waited on the first's lock on the User
/// block's counter row, and with the first's Group insert the two deadlocked). A third that
/// rolls back leaves no count. Counts are right afterwards, folded or not, and deep pages too.
#[actix_web::test]
async fn write_transactions_of_one_tenant_do_not_wait_on_block_counts() {
    let (app, db, mut a, mut b, tenant) = writers().await;
    // Both counter keys exist before (000018 then locked the existing rows it upserted).
    insert(&mut a, &tenant, "User", "raw-c0").unwrap();
    insert(&mut a, &tenant, "Group", "raw-c1").unwrap();
    let second = |b: &mut Conn| -> Result<(), String> {
        b.begin().map_err(|e| e.to_string())?;
        insert(b, &tenant, "Group", "raw-b1")?;
        insert(b, &tenant, "User", "raw-b2")?;
        delete(b, "raw-c0")?;
        b.commit().map_err(|e| e.to_string())
    };
    a.begin().unwrap();
    insert(&mut a, &tenant, "User", "raw-a1").unwrap();
    if db.is_postgres() {
        // The first is open and has inserted a User: the second must not wait for it.
        second(&mut b).expect("the second transaction ran beside the open first one");
        insert(&mut a, &tenant, "Group", "raw-a2").unwrap();
        a.commit().unwrap();
    } else {
        // One writer: the second runs after the first.
        insert(&mut a, &tenant, "Group", "raw-a2").unwrap();
        a.commit().unwrap();
        second(&mut b).unwrap();
    }
    // A failed write (rolled back) counts nothing.
    b.begin().unwrap();
    insert(&mut b, &tenant, "User", "raw-r1").unwrap();
    delete(&mut b, "raw-a1").unwrap();
    b.rollback().unwrap();
    assert_eq!(miscounted_keys(&mut a), 0);
    if db.is_postgres() {
        assert!(unfolded_keys(&mut a) > 0, "deltas, not folded yet");
    }
    let done = compact_and_check(&mut a);
    assert_eq!(done.written > 0, db.is_postgres(), "{done:?}");
    // Without the raw rows (they have no document to list), pages over the users left.
    for id in ["raw-c1", "raw-a1", "raw-a2", "raw-b1", "raw-b2"] {
        assert_eq!(delete(&mut a, id), Ok(1), "{id}");
    }
    assert_eq!(miscounted_keys(&mut a), 0);
    let mut want = vec!["u0".to_string()];
    for i in 1..7 {
        create_user(&app, &format!("u{i}")).await;
        want.push(format!("u{i}"));
    }
    index_pages(&app, "/scim/v2/Users?x=1", 2, &want).await;
    compact_and_check(&mut a);
    index_pages(&app, "/scim/v2/Users?x=1", 2, &want).await;
}

/// Compaction waits on no writer and no writer waits on it (Postgres): a fold runs while a
/// write transaction holds uncommitted deltas (which it leaves), and writes (insert and
/// delete) run while a fold is open and uncommitted. On SQLite it does nothing: one row per
/// block always.
#[actix_web::test]
async fn compaction_and_writers_do_not_wait_on_each_other() {
    let (_app, db, mut w, mut k, tenant) = writers().await;
    for i in 0..4 {
        insert(&mut w, &tenant, "User", &format!("raw-{i}")).unwrap();
    }
    if !db.is_postgres() {
        assert_eq!(unfolded_keys(&mut w), 0);
        assert_eq!(compact_and_check(&mut k), Compaction::default());
        return;
    }
    // An open writer's deltas are not the fold's to take.
    w.begin().unwrap();
    insert(&mut w, &tenant, "User", "raw-open").unwrap();
    let done = compact_resource_blocks(&mut k.db()).expect("the fold ran beside a writer");
    assert_eq!(
        (done.folded, done.written),
        (5, 1),
        "u0 and raw-0..3 folded"
    );
    w.commit().unwrap();
    assert_eq!(
        unfolded_keys(&mut k),
        1,
        "the writer's delta is left for the next round"
    );
    assert_eq!(miscounted_keys(&mut k), 0);
    // An open fold holds its deleted rows and the table lock: writers do not wait on either.
    insert(&mut w, &tenant, "User", "raw-5").unwrap();
    w.begin().unwrap();
    let done = compact_resource_blocks(&mut w.db()).unwrap();
    assert_eq!((done.folded, done.written), (3, 1));
    insert(&mut k, &tenant, "User", "raw-6").expect("an insert beside an open fold");
    delete(&mut k, "raw-0").expect("a delete beside an open fold");
    let mut reader = impatient(&db);
    assert_eq!(
        miscounted_keys(&mut reader),
        0,
        "a reader beside an open fold"
    );
    w.commit().unwrap();
    assert_eq!(miscounted_keys(&mut k), 0);
    let done = compact_and_check(&mut k);
    assert_eq!((done.folded, done.written), (3, 1));
    // Idempotent: nothing left to fold.
    assert_eq!(compact_and_check(&mut k), Compaction::default());
}

/// Two compactors (two instances): with the table lock, the second waits for the first and
/// then finds nothing to fold. The fold statement alone, without the lock, is right too:
/// the second's DELETE waits on the rows the first deleted, then skips them once the first
/// commits, so each delta is summed once (the argument of `compact_resource_blocks`).
#[actix_web::test]
async fn two_compactors_count_each_delta_once() {
    let (app, db) = app().await;
    let mut first = connect(&db);
    let tenant = tenant_of(&app, &mut first, "u0").await;
    let deltas = |c: &mut Conn, from: usize| {
        for i in from..from + 4 {
            insert(
                c,
                &tenant,
                if i % 2 == 0 { "User" } else { "Group" },
                &format!("raw-{i}"),
            )
            .unwrap();
        }
    };
    deltas(&mut first, 0);
    if !db.is_postgres() {
        assert_eq!(compact_and_check(&mut first), Compaction::default());
        return;
    }
    for locked in [true, false] {
        deltas(&mut first, if locked { 10 } else { 20 });
        assert!(unfolded_keys(&mut first) > 0);
        first.begin().unwrap();
        let done = if locked {
            compact_resource_blocks(&mut first.db()).unwrap()
        } else {
            first
                .db()
                .first::<Compaction>(&Sql::new(RESOURCE_BLOCK_FOLD))
                .unwrap()
                .unwrap()
        };
        assert!(done.folded > 0, "{done:?}");
        // The second waits: on the table lock, or on the rows the first deleted.
        let (second, wait) = waiting(&db, move |c| {
            if locked {
                compact_resource_blocks(&mut c.db()).map_err(|e| e.to_string())
            } else {
                c.db()
                    .first::<Compaction>(&Sql::new(RESOURCE_BLOCK_FOLD))
                    .map(Option::unwrap_or_default)
                    .map_err(|e| e.to_string())
            }
        });
        let want = if locked { "relation" } else { "transactionid" };
        assert_eq!(wait, want, "locked {locked}");
        assert!(!second.is_finished(), "locked {locked}");
        first.commit().unwrap();
        let again = second.join().unwrap().unwrap();
        assert_eq!(again, Compaction::default(), "locked {locked}");
        assert_eq!(miscounted_keys(&mut first), 0, "locked {locked}");
        assert_eq!(unfolded_keys(&mut first), 0, "locked {locked}");
    }
    // Deep pages agree (the raw rows have no document to list).
    for i in (0..4).chain(10..14).chain(20..24) {
        delete(&mut first, &format!("raw-{i}")).unwrap();
    }
    let r = get(&app, TOKEN, "/scim/v2/Users?count=1&startIndex=1").await;
    assert_eq!(user_names(&r.body), ["u0"]);
    let r = get(&app, TOKEN, "/scim/v2/Users?count=1&startIndex=2").await;
    assert_eq!(user_names(&r.body), Vec::<String>::new());
    assert_eq!(r.body["totalResults"], json!(1));
}

/// Three delta rows (three statements) of raw Users of a new tenant `name`.
fn tenant_with_deltas(conn: &mut Conn, name: &str) {
    tenancy::create_tenant(conn, name).unwrap();
    for i in 0..3 {
        insert(conn, name, "User", &format!("raw-{name}-{i}")).unwrap();
    }
}

/// Rows of `resource_blocks` of the tenant `name`.
fn block_rows(conn: &mut Conn, name: &str) -> i64 {
    conn.db()
        .count(&Sql::with(
            "SELECT COUNT(*) AS n FROM resource_blocks WHERE tenant_id = ?",
            [Bind::text(name)],
        ))
        .unwrap()
}

/// A fold and a tenant's deletion take turns on the fold's table lock (Postgres). The fold is
/// one statement, so its two halves run here one at a time, in its order, on a connection:
/// under the lock, delete the tenant's delta rows; then, once the deletion waits, insert
/// their sum, whose foreign-key check locks the tenant's row. Without the deletion's lock the
/// deletion held the tenant's row and waited on the deleted rows while the insert waited on
/// the row: "deadlock detected", one of the two failing. With it the deletion waits on the
/// table lock before touching the tenant's row, and both succeed. Then the other order: a
/// deletion open and uncommitted, a fold waits for it and then finds the tenant's rows gone.
/// On SQLite (one writer, nothing to fold) the deletion takes the tenant's counts with it.
#[actix_web::test]
async fn a_fold_and_a_tenant_deletion_take_turns() {
    let (_app, db) = app().await;
    let mut fold = impatient(&db);
    tenant_with_deltas(&mut fold, "t1");
    tenant_with_deltas(&mut fold, "t2");
    if !db.is_postgres() {
        assert_eq!(block_rows(&mut fold, "t1"), 1);
        let gone = tenancy::delete_tenant(&mut fold, "t1").unwrap();
        assert_eq!(gone.resources, 3);
        assert_eq!(block_rows(&mut fold, "t1"), 0);
        assert_eq!(compact_and_check(&mut fold), Compaction::default());
        return;
    }
    // The fold's first half: the lock, then the tenant's deltas deleted.
    fold.begin().unwrap();
    let lock = Backend::Postgres.resource_block_lock().unwrap();
    fold.db().execute(&Sql::new(lock)).unwrap();
    let deleted = fold
        .db()
        .execute(&Sql::new(
            "DELETE FROM resource_blocks WHERE tenant_id = 't1'",
        ))
        .unwrap();
    assert_eq!(deleted, 3);
    let (deletion, wait) = waiting(&db, |c| {
        tenancy::delete_tenant(c, "t1").map_err(|e| e.to_string())
    });
    assert_eq!(wait, "relation", "the deletion waits on the table lock");
    // The second half: the sum, its foreign key checked against the tenant's row.
    fold.db()
        .execute(&Sql::new(
            "INSERT INTO resource_blocks (tenant_id, rtype, block, n) VALUES ('t1', 'User', 0, 3)",
        ))
        .expect("the fold's insert beside a waiting tenant deletion");
    fold.commit().unwrap();
    let gone = deletion
        .join()
        .unwrap()
        .expect("the deletion after the fold");
    assert_eq!(gone.resources, 3);
    assert_eq!(block_rows(&mut fold, "t1"), 0);
    assert_eq!(miscounted_keys(&mut fold), 0);

    // The other order: a deletion open, a whole fold beside it.
    let mut deleting = impatient(&db);
    deleting.begin().unwrap();
    let t2 = TenantId::from("t2");
    let gone = storage_tenancy::delete_tenant(&mut deleting.db(), &t2).unwrap();
    assert_eq!(gone.resources, 3);
    let (folding, wait) = waiting(&db, |c| {
        compact_resource_blocks(&mut c.db()).map_err(|e| e.to_string())
    });
    assert_eq!(wait, "relation", "the fold waits on the table lock");
    deleting.commit().unwrap();
    let done = folding
        .join()
        .unwrap()
        .expect("the fold after the deletion");
    assert_eq!(
        (done.folded, done.written),
        (0, 0),
        "t2's deltas went with it, nothing else to fold"
    );
    assert_eq!(block_rows(&mut fold, "t2"), 0);
    assert_eq!(miscounted_keys(&mut fold), 0);
    assert_eq!(unfolded_keys(&mut fold), 0);
}

/// An app whose statistics thread (`server::start_statistics`) folds every second and
/// refreshes statistics every `analyze` seconds (0: never), with three users created before
/// it starts; returns once no key has unfolded deltas (at once on SQLite, which folds
/// nothing) and the counts are right, with a connection.
async fn folded_by_the_statistics_thread(analyze: u64) -> (impl TestApp, TestDb, Conn) {
    let db = TestDb::new();
    let a = ServeArgs {
        db_analyze_every_secs: analyze,
        db_fold_every_secs: 1,
        ..args(&db)
    };
    let (app, state) = app_with(a.clone()).await;
    for i in 0..3 {
        create_user(&app, &format!("u{i}")).await;
    }
    let mut conn = connect(&db);
    assert_eq!(unfolded_keys(&mut conn) > 0, db.is_postgres());
    scimitar::server::start_statistics(&a, &state);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while unfolded_keys(&mut conn) > 0 {
        assert!(std::time::Instant::now() < deadline, "not folded");
        std::thread::sleep(Duration::from_millis(50));
    }
    if !db.is_postgres() {
        // A round or two of the thread, if any, on SQLite.
        std::thread::sleep(Duration::from_millis(2500));
    }
    assert_eq!(miscounted_keys(&mut conn), 0);
    let r = get(&app, TOKEN, "/scim/v2/Users?count=1&startIndex=3").await;
    assert_eq!(user_names(&r.body), ["u2"]);
    (app, db, conn)
}

/// The statistics thread folds the deltas every `--db-fold-every-secs`, before refreshing
/// the statistics when both are due; on SQLite there is nothing to fold and the counts stay
/// right.
#[actix_web::test]
async fn the_statistics_thread_folds_block_counts() {
    folded_by_the_statistics_thread(1).await;
}

/// With the statistics refresh off (`--db-analyze-every-secs 0`) the thread still folds the
/// deltas (Postgres), and refreshes no statistics: no table of the schema is vacuumed. SQLite
/// has nothing to fold, so with the refresh off no thread runs; the counts stay right.
#[actix_web::test]
async fn the_statistics_thread_folds_with_the_statistics_refresh_off() {
    let (_app, db, mut conn) = folded_by_the_statistics_thread(0).await;
    if db.is_postgres() {
        let vacuumed = conn
            .db()
            .count(&Sql::new(
                "SELECT COUNT(*) AS n FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() AND last_vacuum IS NOT NULL",
            ))
            .unwrap();
        assert_eq!(vacuumed, 0, "statistics refreshed with the refresh off");
    }
}
