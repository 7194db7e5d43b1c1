//! Substring search (`co`, `ew`) stays exact across the write path: SQLite writes its FTS5
//! trigram index once per transaction (migration 000013: the changed rows are noted by
//! triggers and written in by the transaction's closing statements, or before a substring
//! search inside it; removals wait for a few thousand, `dialect::Backend::settle_trigrams`),
//! Postgres keeps its pg_trgm index itself. Each test runs on both.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::common::*;
use scimitar::scim::filter::{parse_filter, resolve, Limits};
use scimitar::scim::schema::{Registry, Rtype};
use scimitar::storage::conn::{Conn, Db};
use scimitar::storage::dialect::{Backend, Lock};
use scimitar::storage::index::{IndexValue, Indexed};
use scimitar::storage::resources::{self, ResourceWrite};
use scimitar::storage::search::{self, Window};
use scimitar::storage::sql::Sql;
use scimitar::storage::{StorageError, TenantId};

fn titled(name: &str, title: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
           "title": title, "emails": [{"value": format!("{name}@mail.example"), "type": "work"}]})
}

#[derive(diesel::QueryableByName)]
struct Term {
    #[diesel(sql_type = diesel::sql_types::Text)]
    term: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    doc: i64,
}

#[derive(diesel::QueryableByName)]
struct Val {
    #[diesel(sql_type = diesel::sql_types::Text)]
    val: String,
}

/// How many values hold each trigram (each value once per trigram), as FTS5's vocabulary
/// counts its rows.
fn trigram_counts(vals: Vec<Val>) -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for v in vals {
        let chars: Vec<char> = v.val.chars().collect();
        let grams: BTreeSet<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
        for g in grams {
            *counts.entry(g).or_default() += 1;
        }
    }
    counts
}

fn vocabulary(db: &mut Db<'_>) -> BTreeMap<String, i64> {
    db.load::<Term>(&Sql::new("SELECT term, doc FROM attr_values_trgm_vocab"))
        .expect("vocabulary")
        .into_iter()
        .map(|t| (t.term, t.doc))
        .collect()
}

fn values(db: &mut Db<'_>, sql: &str) -> Vec<Val> {
    db.load(&Sql::new(sql)).expect("values")
}

fn notes(db: &mut Db<'_>, table: &str) -> i64 {
    db.count(&Sql::new(&format!("SELECT COUNT(*) AS n FROM {table}")))
        .expect("count")
}

/// SQLite: the trigram index holds exactly the values of `attr_values` and those of the
/// removals that wait (`dialect::Backend::settle_trigrams`): each trigram is indexed for as
/// many rows as hold it (read through the index's vocabulary, migration 000006), so a
/// missing or a stale entry shows; no addition waits once committed. Then, the waiting
/// removals written, exactly the values of `attr_values`. (FTS5's own `integrity-check`
/// against the content table cannot tell: it counts the rows without a string value, which
/// are never indexed.) Nothing to check on Postgres.
fn assert_trigram_index_exact(conn: &mut Conn) {
    if conn.db().backend() != Backend::Sqlite {
        return;
    }
    let db = &mut conn.db();
    db.execute(&Sql::new(
        "INSERT INTO attr_values_trgm (attr_values_trgm) VALUES ('integrity-check')",
    ))
    .expect("the trigram index is consistent");
    let current = values(db, "SELECT val FROM attr_values WHERE val IS NOT NULL");
    let waiting = values(db, "SELECT val FROM attr_values_trgm_removed");
    let mut expected = trigram_counts(current);
    for (g, n) in trigram_counts(waiting) {
        *expected.entry(g).or_default() += n;
    }
    assert!(!expected.is_empty(), "some values to index");
    assert_eq!(
        vocabulary(db),
        expected,
        "the index holds every value, the waiting removals', and only those"
    );
    assert_eq!(
        notes(db, "attr_values_trgm_added"),
        0,
        "no addition waits once committed"
    );
    conn.write_tx(|db| db.settle_all_trigrams())
        .expect("the waiting removals written");
    let db = &mut conn.db();
    let current = values(db, "SELECT val FROM attr_values WHERE val IS NOT NULL");
    assert_eq!(
        vocabulary(db),
        trigram_counts(current),
        "the index holds every value, and only those"
    );
    assert_eq!(notes(db, "attr_values_trgm_removed"), 0);
}

/// A batch in which some writes fail: a later request's `co` search sees every value the
/// batch's successful writes left (and none they replaced or deleted), and nothing of the
/// failed ones.
#[actix_web::test]
async fn substring_search_after_a_batch_sees_its_writes_and_nothing_of_its_failures() {
    let (_db, app, data) = app_where(|a| {
        a.db.db_pool_size = 12;
        a.tenant_max_concurrency = Some(12);
    })
    .await;
    let created = |r: Resp| r.body["id"].as_str().expect("id").to_string();
    send(&app, scim_post("/scim/v2/Users", titled("taken", "Plain")))
        .await
        .expect(201);
    let alice = created(
        send(
            &app,
            scim_post("/scim/v2/Users", titled("alice", "Old Qalice")),
        )
        .await,
    );
    let bob = created(
        send(
            &app,
            scim_post("/scim/v2/Users", titled("bob", "Bobby Qbob")),
        )
        .await,
    );

    let requests = vec![
        scim_post("/scim/v2/Users", titled("new-1", "Keeper Qkept")),
        scim_post("/scim/v2/Users", titled("taken", "Ghost Qfailed")),
        patch_title(&alice, "W/\"7\"", "Stale Qfailed"),
        patch_title(&alice, "W/\"1\"", "Fresh Qalice"),
        req("DELETE", &format!("/scim/v2/Users/{bob}")),
        scim_post("/scim/v2/Users", titled("new-2", "Keeper Qkept")),
    ];
    let answers = one_batch(&app, &data, requests).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, [201, 409, 412, 200, 204, 201]);

    let co = |f: &str| filter_uri("Users", &format!("title co \"{f}\""));
    assert_eq!(total(&app, &co("Qkept")).await, 2, "the batch's creates");
    assert_eq!(total(&app, &co("eeper")).await, 2);
    assert_eq!(total(&app, &co("Qfailed")).await, 0, "the failed writes");
    assert_eq!(total(&app, &co("Ghost")).await, 0);
    assert_eq!(total(&app, &co("Stale")).await, 0);
    assert_eq!(
        total(&app, &co("Fresh Q")).await,
        1,
        "the patch's new value"
    );
    assert_eq!(total(&app, &co("Old Q")).await, 0, "the value it replaced");
    assert_eq!(total(&app, &co("Qalice")).await, 1);
    assert_eq!(
        total(&app, &co("Qbob")).await,
        0,
        "the deleted user's values"
    );
    let ew = filter_uri("Users", "emails.value ew \"2@mail.example\"");
    assert_eq!(
        total(&app, &ew).await,
        1,
        "new-2's email (a second value of its own)"
    );
    let ew = filter_uri("Users", "emails.value ew \"bob@mail.example\"");
    assert_eq!(total(&app, &ew).await, 0);

    let mut conn = data.service.pool.get().expect("conn");
    assert_trigram_index_exact(&mut conn);
}

/// A user row with one indexed `title`.
fn indexed(user_name: &str, title: &str) -> Indexed {
    Indexed {
        user_name: Some(user_name.to_string()),
        values: vec![IndexValue {
            path: "title".to_string(),
            elem: 0,
            val: Some(title.to_lowercase()),
            num: None,
        }],
        ..Indexed::default()
    }
}

fn insert(db: &mut Db<'_>, tenant: &TenantId, user_name: &str, title: &str) -> i64 {
    let ix = indexed(user_name, title);
    let w = ResourceWrite {
        indexed: &ix,
        doc: "{}",
        now: 1,
    };
    resources::insert(db, tenant, Rtype::User, user_name, &w, false)
        .expect("insert")
        .0
}

/// The user names whose title contains `s`, as a search in `db`'s transaction finds them.
fn titles_containing(db: &mut Db<'_>, tenant: &TenantId, s: &str) -> Vec<String> {
    let registry = Registry::load().expect("registry");
    let f = parse_filter(&format!("title co \"{s}\""), &Limits::default()).expect("filter");
    let cond = resolve(&registry, Rtype::User, &f).expect("resolve");
    let window = Window::Offset {
        offset: 0,
        limit: 100,
    };
    let page =
        search::search(db, tenant, Rtype::User, Some(&cond), None, &window, false).expect("search");
    let mut ids: Vec<String> = page.rows.into_iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

/// Inside one write transaction a substring search sees the transaction's own writes so far;
/// a savepoint that rolls back takes its values with it, in the index too; after the commit
/// another connection sees exactly what was committed.
#[actix_web::test]
async fn substring_search_inside_a_transaction_sees_its_own_writes() {
    let (_db, _app, data) = app_state().await;
    let tenant = TenantId::from("default");
    let mut conn = data.service.pool.get().expect("conn");
    conn.write_tx(|db| {
        insert(db, &tenant, "before", "needle zero");
        Ok::<(), StorageError>(())
    })
    .expect("first transaction");

    conn.write_tx(|db| {
        insert(db, &tenant, "kept", "needle one");
        assert_eq!(titles_containing(db, &tenant, "needle"), ["before", "kept"]);
        // A change that fails after its writes (and after a search that wrote the index).
        let failed = db.savepoint(|db| {
            let pk = insert(db, &tenant, "rolled-back", "needle two");
            assert_eq!(
                titles_containing(db, &tenant, "needle"),
                ["before", "kept", "rolled-back"]
            );
            resources::delete(db, &tenant, pk)?;
            insert(db, &tenant, "rolled-back-2", "needle three");
            Err::<(), StorageError>(StorageError::VersionMismatch)
        });
        assert!(failed.is_err());
        assert_eq!(titles_containing(db, &tenant, "needle"), ["before", "kept"]);
        assert!(titles_containing(db, &tenant, "three").is_empty());
        // A change that holds: it deletes a row the index holds (the newest, so the insert
        // after it takes the same row id) and inserts another.
        db.savepoint(|db| {
            let kept =
                resources::get(db, &tenant, Rtype::User, "kept", Lock::Delete)?.expect("kept");
            resources::delete(db, &tenant, kept.pk)?;
            insert(db, &tenant, "later", "needle four");
            Ok::<(), StorageError>(())
        })
        .expect("savepoint");
        assert_eq!(
            titles_containing(db, &tenant, "needle"),
            ["before", "later"]
        );
        assert!(titles_containing(db, &tenant, "one").is_empty());
        Ok::<(), StorageError>(())
    })
    .expect("second transaction");

    let mut other = data.service.pool.get().expect("another conn");
    other
        .read_tx(|db| {
            assert_eq!(
                titles_containing(db, &tenant, "needle"),
                ["before", "later"]
            );
            assert!(titles_containing(db, &tenant, "one").is_empty());
            assert!(titles_containing(db, &tenant, "two").is_empty());
            Ok::<(), StorageError>(())
        })
        .expect("read");
    assert_trigram_index_exact(&mut other);
}

#[derive(diesel::QueryableByName, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct RowId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// SQLite writes a removed value out of its trigram index late (once
/// `TRIGRAM_REMOVALS_PER_FLUSH` wait): meanwhile a deleted user's values find nothing, and a
/// row id freed and taken again (SQLite gives a new row the highest id plus one) holds its
/// new value's trigrams, those it shares with the removed value too (FTS5 removes by row id:
/// the waiting removal is written before the new row). Postgres answers the same.
#[actix_web::test]
async fn a_removal_that_waits_finds_nothing_and_a_reused_row_id_keeps_its_new_value() {
    let (_db, _app, data) = app_state().await;
    let tenant = TenantId::from("default");
    let mut conn = data.service.pool.get().expect("conn");
    let sqlite = conn.db().backend() == Backend::Sqlite;
    conn.write_tx(|db| {
        insert(db, &tenant, "first", "needle alpha");
        insert(db, &tenant, "second", "needle beta");
        Ok::<(), StorageError>(())
    })
    .expect("inserts");
    // The newest user holds the highest row ids of attr_values.
    conn.write_tx(|db| {
        let second =
            resources::get(db, &tenant, Rtype::User, "second", Lock::Delete)?.expect("second");
        resources::delete(db, &tenant, second.pk)
    })
    .expect("delete");
    let freed: Vec<RowId> = if sqlite {
        let freed = conn
            .db()
            .load(&Sql::new("SELECT id FROM attr_values_trgm_removed"))
            .expect("waiting");
        assert!(!freed.is_empty(), "the removal waits");
        freed
    } else {
        Vec::new()
    };
    conn.read_tx(|db| {
        assert!(titles_containing(db, &tenant, "beta").is_empty());
        assert_eq!(titles_containing(db, &tenant, "needle"), ["first"]);
        Ok::<(), StorageError>(())
    })
    .expect("read");

    // A new user takes the freed row id; its title shares trigrams with the removed one.
    let third = conn
        .write_tx(|db| Ok::<i64, StorageError>(insert(db, &tenant, "third", "needle bets")))
        .expect("insert");
    if sqlite {
        let taken: Vec<RowId> = conn
            .db()
            .load(&Sql::with(
                "SELECT id FROM attr_values WHERE res_pk = ?",
                [scimitar::storage::sql::Bind::Int(third)],
            ))
            .expect("ids");
        assert!(
            taken.iter().any(|t| freed.contains(t)),
            "a freed row id taken again: {taken:?} of {freed:?}"
        );
    }
    conn.read_tx(|db| {
        assert_eq!(titles_containing(db, &tenant, "needle bets"), ["third"]);
        assert_eq!(titles_containing(db, &tenant, "bet"), ["third"]);
        assert!(titles_containing(db, &tenant, "beta").is_empty());
        assert_eq!(titles_containing(db, &tenant, "needle"), ["first", "third"]);
        Ok::<(), StorageError>(())
    })
    .expect("read");
    // Writes the waiting removals too: the new value keeps every trigram.
    assert_trigram_index_exact(&mut conn);
    conn.read_tx(|db| {
        assert_eq!(titles_containing(db, &tenant, "bet"), ["third"]);
        assert_eq!(titles_containing(db, &tenant, "needle"), ["first", "third"]);
        Ok::<(), StorageError>(())
    })
    .expect("read after the removals");
}

/// Merging SQLite's trigram index into one segment (`grams::merge_trigrams`, run by the
/// statistics thread) changes no answer: after writes in separate transactions (a segment
/// each, of similar sizes) and deletes, a merge is due and its steps do work; then none is
/// due; every substring search answers what it did before, with the index exact. On
/// Postgres nothing is merged.
#[actix_web::test]
async fn merging_the_trigram_index_changes_no_answer() {
    use scimitar::storage::search::grams::{merge_trigrams, MergeRound};
    let (_db, app, data) = app_where(|_| {}).await;
    let mut ids = Vec::new();
    for i in 0..24 {
        let r = send(
            &app,
            scim_post(
                "/scim/v2/Users",
                titled(&format!("m{i}"), &format!("Merge Q{i}x")),
            ),
        )
        .await;
        r.expect(201);
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    for id in ids.iter().step_by(3) {
        send(&app, req("DELETE", &format!("/scim/v2/Users/{id}")))
            .await
            .expect(204);
    }
    let operands = ["Q1", "Q2", "erge Q", "x", "Q13x", "m1@mail", "Q0x", "Q3x"];
    let uri = |o: &str| {
        let f = format!("title co \"{o}\" or emails.value co \"{o}\"");
        format!("{}&count=100", filter_uri("Users", &f))
    };
    let mut before = Vec::new();
    for o in operands {
        before.push(get_ok(&app, &uri(o)).await.body);
    }
    let mut conn = data.service.pool.get().expect("conn");
    let sqlite = conn.db().backend() == Backend::Sqlite;
    let zero = std::time::Duration::ZERO;
    let merge = |conn: &mut Conn| merge_trigrams(conn, 1000, zero, zero).expect("merge");
    let round = merge(&mut conn);
    assert_eq!(round.steps > 0, sqlite, "{round:?}");
    assert_eq!(round.done, sqlite, "{round:?}");
    assert!(!round.interrupted, "{round:?}");
    assert_eq!(merge(&mut conn), MergeRound::default(), "merged: none due");
    assert_trigram_index_exact(&mut conn);
    drop(conn);
    for (o, was) in operands.iter().zip(before) {
        let now = get_ok(&app, &uri(o)).await.body;
        assert_eq!(now["totalResults"], was["totalResults"], "{o}");
        assert_eq!(now["Resources"], was["Resources"], "{o}");
    }
    // The live users are found, the deleted ones not; a write after the merge is found, and
    // still after the next round (in an index this small, its segment is worth merging: the
    // policy itself is `grams::tests::a_merge_is_due_when_the_small_segments_hold_a_tenth`).
    assert_eq!(
        total(&app, &filter_uri("Users", "title co \"Merge Q\"")).await,
        16
    );
    send(
        &app,
        scim_post("/scim/v2/Users", titled("late", "Merge Qlate")),
    )
    .await
    .expect(201);
    assert_eq!(
        total(&app, &filter_uri("Users", "title co \"Qlate\"")).await,
        1
    );
    let mut conn = data.service.pool.get().expect("conn");
    merge(&mut conn);
    assert_trigram_index_exact(&mut conn);
    drop(conn);
    assert_eq!(
        total(&app, &filter_uri("Users", "title co \"Qlate\"")).await,
        1
    );
    assert_eq!(
        total(&app, &filter_uri("Users", "title co \"Merge Q\"")).await,
        17
    );
}

/// A trigram merge gives way to writes (`grams::merge_trigrams`): a commit by another
/// connection during its quiet wait ends the round before its first step, the index as it
/// was (the merge still due, and done by a later round without writes). FTS5 starts a merge
/// over when a new segment appears, so one interleaved with writes would never end. Nothing
/// to merge on Postgres.
#[actix_web::test]
async fn a_trigram_merge_gives_way_to_a_write() {
    use scimitar::storage::search::grams::{merge_trigrams, MergeRound};
    let (_db, app, data) = app_where(|_| {}).await;
    for i in 0..24 {
        send(
            &app,
            scim_post(
                "/scim/v2/Users",
                titled(&format!("w{i}"), &format!("Wait Q{i}x")),
            ),
        )
        .await
        .expect(201);
    }
    let connector = data.service.writer.connector().clone();
    let mut conn = connector.connect().expect("connect");
    let sqlite = conn.db().backend() == Backend::Sqlite;
    let merging = std::thread::spawn(move || {
        let quiet = std::time::Duration::from_secs(2);
        let round = merge_trigrams(&mut conn, 1000, quiet, std::time::Duration::ZERO);
        (round.expect("a round"), conn)
    });
    // A write while the round waits for quiet.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    send(
        &app,
        scim_post("/scim/v2/Users", titled("during", "Wait Qduring")),
    )
    .await
    .expect(201);
    let (round, mut conn) = merging.join().expect("the merging thread");
    assert_eq!(
        round,
        MergeRound {
            steps: 0,
            done: false,
            interrupted: sqlite,
        }
    );
    assert_trigram_index_exact(&mut conn);
    // Without writes, the next round merges.
    let zero = std::time::Duration::ZERO;
    let round = merge_trigrams(&mut conn, 1000, zero, zero).expect("a round");
    assert_eq!((round.steps > 0, round.done), (sqlite, sqlite), "{round:?}");
    assert_trigram_index_exact(&mut conn);
    assert_eq!(
        total(&app, &filter_uri("Users", "title co \"Wait Q\"")).await,
        25
    );
}
