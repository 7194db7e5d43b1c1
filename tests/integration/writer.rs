//! Group commit (`provisioning::writer`): writes that arrive together share one transaction,
//! each in its own savepoint. A batch's failed writes are answered as if they had run alone
//! and leave nothing behind; the feed stays gap-free and in commit order under concurrent
//! writers. (Several processes, and a killed one: tests/integration/processes.rs.)

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::common::*;
use scimitar::auth::{Principal, Scope};
use scimitar::provisioning::Error;
use scimitar::scim::compat::Compat;
use scimitar::storage::feed::{self, SeqWindow};
use scimitar::storage::sql::Sql;
use scimitar::storage::{StorageError, TenantId};

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": true})
}

fn group_with_missing_member() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Ghosts",
        "members": [{"value": "no-such-user"}]
    })
}

/// A server for `one_batch` of up to 12 writes: every request of the batch holds a pooled
/// connection while it waits its turn, and all of one tenant's run at once (admission would
/// hold some back).
fn batch_args(db: &TestDb) -> scimitar::config::ServeArgs {
    let mut a = args(db);
    a.db.db_pool_size = 12;
    a.tenant_max_concurrency = Some(12);
    a
}

/// Sequence numbers of the default tenant's feed, in order.
fn seqs(state: &actix_web::web::Data<scimitar::http::AppState>) -> Vec<i64> {
    let mut conn = state.service.pool.get().expect("conn");
    feed::all(&mut conn.db(), &TenantId::from("default"))
        .expect("feed")
        .into_iter()
        .map(|e| e.seq)
        .collect()
}

/// The failing and the succeeding writes of one batch: each answered as if alone, nothing
/// of the failed ones written.
#[actix_web::test]
async fn a_batch_answers_each_write_as_if_it_ran_alone() {
    let db = TestDb::new();
    let (app, data) = app_with(batch_args(&db)).await;
    create_user(&app, "taken").await;
    let alice = create_user(&app, "alice").await;
    let bob = create_user(&app, "bob").await;
    let before = events(&data).len();

    let requests = vec![
        scim_post("/scim/v2/Users", user("new-1")),
        scim_post("/scim/v2/Users", user("taken")),
        patch_title(&alice, "W/\"7\"", "Stale"),
        scim_post("/scim/v2/Groups", group_with_missing_member()),
        patch_title(&alice, "W/\"1\"", "Boss"),
        scim_post("/scim/v2/Users", user("new-2")),
        req("DELETE", &format!("/scim/v2/Users/{bob}")),
    ];
    let answers = one_batch(&app, &data, requests).await;

    answers[0].expect(201);
    answers[1].expect_error(409, Some("uniqueness"));
    answers[2].expect(412);
    answers[3].expect_error(400, Some("invalidValue"));
    answers[4].expect(200);
    assert_eq!(answers[4].body["title"], "Boss");
    assert_eq!(answers[4].header("etag").as_deref(), Some("W/\"2\""));
    answers[5].expect(201);
    answers[6].expect(204);

    // The failed ones, alone now, answer exactly the same.
    let again = [
        send(&app, scim_post("/scim/v2/Users", user("taken"))).await,
        send(&app, patch_title(&alice, "W/\"7\"", "Stale")).await,
        send(
            &app,
            scim_post("/scim/v2/Groups", group_with_missing_member()),
        )
        .await,
    ];
    for (alone, batched) in again.iter().zip([&answers[1], &answers[2], &answers[3]]) {
        assert_eq!(alone.status, batched.status);
        assert_eq!(alone.body, batched.body);
    }

    // Nothing of the failed ones is written; all of the others are.
    let groups = call(&app, "GET", "/scim/v2/Groups", None).await;
    assert_eq!(groups.body["totalResults"], 0);
    let users = call(&app, "GET", "/scim/v2/Users?sortBy=userName", None).await;
    let names: Vec<&str> = strs(&users.body["Resources"], "userName");
    assert_eq!(names, ["alice", "new-1", "new-2", "taken"]);
    let a = call(&app, "GET", &format!("/scim/v2/Users/{alice}"), None).await;
    assert_eq!(a.body["title"], "Boss");
    assert_eq!(a.body["meta"]["version"], "W/\"2\"");
    call(&app, "GET", &format!("/scim/v2/Users/{bob}"), None)
        .await
        .expect(404);
    // A filter on the patched attribute finds the new value only (its index row rewritten).
    assert_eq!(
        total(&app, "/scim/v2/Users?filter=title%20eq%20%22Boss%22").await,
        1
    );
    assert_eq!(
        total(&app, "/scim/v2/Users?filter=title%20co%20%22Stale%22").await,
        0
    );

    // The feed: the held writes' events only, numbered on from before, without a gap.
    let after = seqs(&data);
    let expected: Vec<i64> = (1..=i64::try_from(after.len()).unwrap()).collect();
    assert_eq!(after, expected);
    let mut touched: Vec<String> = events(&data)[before..]
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    touched.sort();
    touched.dedup();
    let new1 = answers[0].body["id"].as_str().unwrap().to_string();
    let new2 = answers[5].body["id"].as_str().unwrap().to_string();
    let mut expected = vec![new1, alice, new2, bob];
    expected.sort();
    assert_eq!(touched, expected, "SCIM events of the held writes only");
}

/// Two PATCHes of one user (different attributes, no If-Match) in one batch: neither change
/// is lost, and each answer shows the user as that PATCH left it.
#[actix_web::test]
async fn two_patches_of_one_user_in_one_batch_both_hold() {
    let db = TestDb::new();
    let (app, data) = app_with(batch_args(&db)).await;
    let alice = create_user(&app, "alice").await;
    let patch = |ops: Value| {
        req("PATCH", &format!("/scim/v2/Users/{alice}"))
            .insert_header(("Content-Type", "application/scim+json"))
            .set_payload(patch_body(ops).to_string())
    };
    let answers = one_batch(
        &app,
        &data,
        vec![
            patch(json!([{"op": "replace", "path": "title", "value": "Boss"}])),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
        ],
    )
    .await;
    for a in &answers {
        a.expect(200);
    }
    // Whichever ran first answers version 2 with its own change only; the other version 3
    // with both.
    let (first, second) = if answers[0].header("etag").as_deref() == Some("W/\"2\"") {
        (&answers[0], &answers[1])
    } else {
        (&answers[1], &answers[0])
    };
    assert_eq!(first.header("etag").as_deref(), Some("W/\"2\""));
    assert_eq!(second.header("etag").as_deref(), Some("W/\"3\""));
    assert_eq!(second.body["title"], "Boss");
    assert_eq!(second.body["active"], false);
    assert!(
        (first.body["title"] == "Boss") != (first.body["active"] == false),
        "the first answer shows its own change only: {}",
        first.body
    );

    let now = call(&app, "GET", &format!("/scim/v2/Users/{alice}"), None).await;
    assert_eq!(now.body["title"], "Boss");
    assert_eq!(now.body["active"], false);
    assert_eq!(now.body["meta"]["version"], "W/\"3\"");
    // The index rows follow the stored document, and the account its deactivation.
    assert_eq!(
        total(
            &app,
            "/scim/v2/Users?filter=title%20eq%20%22Boss%22%20and%20active%20eq%20false"
        )
        .await,
        1
    );
    let kinds: Vec<String> = events(&data)
        .into_iter()
        .filter(|(id, _)| id == &alice)
        .map(|(_, k)| k)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "patch:full").count(), 2);
}

/// 16 writers at once on one tenant: every write is acknowledged once, and a reader polling
/// the feed meanwhile never sees a gap or a number go back.
#[actix_web::test]
async fn sixteen_concurrent_writers_keep_the_feed_gap_free_and_in_order() {
    const WRITERS: usize = 16;
    const EACH: usize = 15;
    let db = TestDb::new();
    let mut a = args(&db);
    a.db.db_pool_size = 24;
    a.tenant_max_concurrency = Some(24);
    let (app, data) = app_with(a).await;
    let pool = data.service.pool.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let tenant = TenantId::from("default");
            let mut last = 0i64;
            let mut polls = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let mut conn = pool.get().expect("conn");
                let page = feed::after(
                    &mut conn.db(),
                    &tenant,
                    SeqWindow {
                        after: last,
                        limit: 1000,
                    },
                )
                .expect("feed");
                for e in page {
                    assert_eq!(e.seq, last + 1, "the feed skipped or reordered a number");
                    last = e.seq;
                }
                polls += 1;
                if finished {
                    return (last, polls);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let writes = (0..WRITERS).map(|w| {
        let app = &app;
        async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let r = send(
                    app,
                    scim_post("/scim/v2/Users", user(&format!("w{w}-u{i}"))),
                )
                .await;
                r.expect(201);
                ids.push(r.body["id"].as_str().unwrap().to_string());
            }
            ids
        }
    });
    let ids: Vec<String> = join_all(writes).await.into_iter().flatten().collect();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (last, _) = reader.join().expect("reader");
    let all = seqs(&data);
    assert_eq!(all.len() as i64, last, "the reader saw every event");
    let expected: Vec<i64> = (1..=last).collect();
    assert_eq!(all, expected);
    // One create event per acknowledged user, none for anything else.
    let created: std::collections::HashSet<String> = events(&data)
        .into_iter()
        .filter(|(_, k)| k == "create:full")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(created.len(), WRITERS * EACH);
    assert!(ids.iter().all(|id| created.contains(id)));
    assert!(data.service.writer.stats().changes >= (WRITERS * EACH) as u64);
}

/// A change that leaves its batch's connection unusable abandons the batch. On Postgres each
/// change of a batch runs in its own savepoint (`Db::batch_write`); when the batch's own
/// statement fails (the rollback of a failed change to its savepoint, or a change's
/// `SAVEPOINT`), the transaction may stay aborted with the earlier changes in it, and a
/// COMMIT of an aborted transaction ends it without an error, so the changes before it in
/// the batch would be answered as written. Instead they answer 503 (nothing written, retry),
/// the failing change its own error, and the next write runs in a new batch. SQLite runs a
/// change's savepoint through diesel, which has no such state: Postgres only.
#[test]
fn a_change_that_leaves_the_connection_unusable_abandons_its_batch() {
    // The rollback fails: the second change releases every savepoint of the batch, then
    // fails.
    abandoned_batch(
        None,
        &[
            "RELEASE SAVEPOINT batch_write",
            "RELEASE SAVEPOINT batch_write",
            "SELECT 1 / 0",
        ],
        "division by zero",
    );
}

/// As above, when a change's own `SAVEPOINT` fails: here because the change before it left
/// the transaction aborted (a statement whose error it ignored); a cancel that lands on the
/// `SAVEPOINT` does the same.
#[test]
fn a_change_whose_savepoint_fails_abandons_its_batch() {
    abandoned_batch(Some("SELECT 1 / 0"), &[], "current transaction is aborted");
}

/// A batch of two on Postgres: the first change inserts a row (then runs `first_ignored`
/// and ignores its error), the second runs `second` and must fail with an error whose text
/// holds `second_error`; the first must answer 503 and nothing of the batch be written.
fn abandoned_batch(first_ignored: Option<&'static str>, second: &[&str], second_error: &str) {
    let db = TestDb::new();
    if !db.is_postgres() {
        eprintln!("skipped: Postgres only (SCIMITAR_TEST_POSTGRES_URL)");
        return;
    }
    let data = state(&args(&db));
    let tenant = TenantId::from("default");
    let principal = Principal {
        tenant: tenant.clone(),
        credential: None,
        scope: Scope::Write,
        compat: Compat::default(),
    };
    let insert = |id: &str| {
        Sql::new(&format!(
            "INSERT INTO tenants (id, name, created) VALUES ('{id}', '{id}', 0)"
        ))
    };
    let written = |id: &str| -> i64 {
        let mut conn = data.service.pool.get().expect("conn");
        conn.db()
            .count(&Sql::new(&format!(
                "SELECT COUNT(*) AS n FROM tenants WHERE id = '{id}'"
            )))
            .expect("count")
    };
    let batches = data.service.writer.stats().batches;
    let (running_tx, running) = std::sync::mpsc::channel::<()>();
    // The first change holds its turn until the second waits after it: one batch of two.
    let first = {
        let (data, p, tenant) = (data.clone(), principal.clone(), tenant.clone());
        std::thread::spawn(move || {
            let mut conn = data.service.conn().expect("conn");
            data.service.write(&mut conn, &p, |db, _| {
                db.execute(&insert("batch-first"))
                    .map_err(StorageError::from)?;
                if let Some(sql) = first_ignored {
                    let _ = db.execute(&Sql::new(sql));
                }
                running_tx.send(()).expect("send");
                // It waits for the second to queue; a second that never does fails the test.
                let until = std::time::Instant::now() + Duration::from_secs(30);
                while data.service.writer.waiting(&tenant) == 0 {
                    assert!(
                        std::time::Instant::now() < until,
                        "the second change never queued"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            })
        })
    };
    running.recv().expect("the first change runs");
    let mut conn = data.service.conn().expect("conn");
    let second = data.service.write(&mut conn, &principal, |db, _| {
        for sql in second {
            db.execute(&Sql::new(sql)).map_err(StorageError::from)?;
        }
        Ok(())
    });
    let first = first.join().expect("first");
    assert!(
        matches!(&second, Err(Error::Storage(StorageError::Backend(e))) if e.to_string().contains(second_error)),
        "the failing change answers its own error ({second_error}): {second:?}"
    );
    assert!(
        matches!(first, Err(Error::Storage(StorageError::Connect(_)))),
        "the change before it in the abandoned batch answers 503: {first:?}"
    );
    assert_eq!(written("batch-first"), 0, "nothing of the batch is written");
    assert_eq!(
        data.service.writer.stats().batches,
        batches,
        "no batch committed"
    );

    // The tenant's writes go on, in a new batch on a new connection.
    data.service
        .write(&mut conn, &principal, |db, _| {
            db.execute(&insert("batch-next"))
                .map_err(StorageError::from)?;
            Ok(())
        })
        .expect("the next write");
    assert_eq!(written("batch-next"), 1);
}
