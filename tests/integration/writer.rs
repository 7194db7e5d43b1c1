//! Group commit (`provisioning::writer`): writes that arrive together share one transaction,
//! each in its own savepoint. A batch's failed writes are answered as if they had run alone
//! and leave nothing behind; the feed stays gap-free and in commit order under concurrent
//! writers. (Several processes, and a killed one: tests/integration/processes.rs.)

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::common::*;
use scimitar::storage::feed::{self, SeqWindow};
use scimitar::storage::TenantId;

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
    let mut a = args(&db);
    // Every request of the batch holds a pooled connection while it waits its turn.
    a.db.db_pool_size = 12;
    // All seven of one tenant run at once (admission would hold some back).
    a.tenant_max_concurrency = Some(12);
    let (app, data) = app_with(a).await;
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
