//! The change feed of `/api/v1` (docs/api-v1.md): gap-free, paged by `after`, long-polled
//! with `wait`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// The feed: gap-free, paged by `after`, long-polled with `wait`

#[actix_web::test]
async fn feed_is_gap_free_and_long_polls() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let app = std::rc::Rc::new(app);

    let r = get(&*app, &admin, "/api/v1/events").await;
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
    let r = get(&*app, &admin, "/api/v1/events?after=4").await;
    assert_eq!(items(&r), all[4..].to_vec());
    assert_eq!(r.body["next"], json!(n));
    let r = get(&*app, &admin, "/api/v1/events?after=2&limit=3").await;
    assert_eq!(items(&r), all[2..5].to_vec());
    assert_eq!(r.body["next"], 5);
    let r = get(&*app, &admin, &format!("/api/v1/events?after={n}")).await;
    assert_eq!(ok(&r, 200), &json!({"items": [], "next": n}));

    // A long-poll returns as soon as a change lands from another task.
    let writer = app.clone();
    let change = actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        scim_create(&*writer, entra_user("ivy@example.com", "R&D", "Researcher")).await
    });
    let started = Instant::now();
    let r = get(&*app, &admin, &format!("/api/v1/events?after={n}&wait=2")).await;
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
    let r = get(&*app, &admin, &format!("/api/v1/events?after={m}&wait=1")).await;
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
        let r = get(
            &*app,
            &admin,
            &format!("/api/v1/events?after={after}&wait=1"),
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
    let r = get(&*app, &admin, "/api/v1/accounts?limit=1000").await;
    let every: Vec<Value> = items(&r);
    assert_eq!(every.len(), 12);
    assert_eq!(r.body["nextCursor"], Value::Null);
    let mut paged = Vec::new();
    let mut uri = "/api/v1/accounts?limit=5".to_string();
    loop {
        let r = get(&*app, &admin, &uri).await;
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
    let r = get(&*app, &admin, &tl_uri).await;
    let whole = items(&r);
    assert!(whole.len() >= 2);
    let r = get(&*app, &admin, &format!("{tl_uri}?limit=1")).await;
    let first = items(&r);
    let c = r.body["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let r = get(&*app, &admin, &format!("{tl_uri}?limit=1000&cursor={c}")).await;
    let mut rest = items(&r);
    rest.insert(0, first[0].clone());
    assert_eq!(rest, whole);
    let r = get(&*app, &admin, &format!("{tl_uri}?cursor={c}x")).await;
    api_error(&r, 400, "bad_request");

    for bad in [
        "after=-1",
        "wait=61",
        "wait=-1",
        "limit=0",
        "limit=1001",
        "after=x",
    ] {
        let r = get(&*app, &admin, &format!("/api/v1/events?{bad}")).await;
        api_error(&r, 400, "bad_request");
    }
}
