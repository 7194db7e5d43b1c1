//! Signed webhook deliveries of the account events (docs/api-v1.md) to a receiver on
//! 127.0.0.1 that checks every signature itself: nothing lost across a receiver outage and
//! per-account order kept, dead letters and their replay, queued deliveries surviving a
//! restart with two instances sending each once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// The receiver is down, then up: nothing lost, per-account order kept

#[actix_web::test]
async fn deliveries_survive_a_receiver_outage_in_order() {
    let (_db, a, app, state, admin) = hook_app(|_| {}).await;
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
    let users = scim_create_all(
        &app,
        ["ann", "ben", "cat"].map(|n| okta_user(&format!("{n}@example.com"), "Support", "Agent")),
    )
    .await;
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
// Dead letters and their replay

#[actix_web::test]
async fn failing_deliveries_become_dead_letters_and_replay() {
    let (_db, a, app, state, admin) = hook_app(|a| {
        a.webhooks.webhook_retry_horizon_secs = 1;
        // A failed attempt is recorded a timeout after it started: a short one, so the
        // horizon sees a few attempts.
        a.webhooks.webhook_timeout_ms = 300;
    })
    .await;
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
    let r = action(&app, &admin, &format!("/api/v1/dead-letters/{id}/replay")).await;
    let re = ok(&r, 200);
    assert_eq!(re["id"], id);
    assert_eq!(re["status"], "pending");
    assert_eq!(re["attempts"], 0);
    let ev = rx.first_delivered("the replay", &secret).await;
    assert_eq!(ev, event);
    assert_eq!(ev["accountId"], acc["id"]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if dead_letters(&app, &admin, &hook).await.is_empty() {
            // Delivered now: not a dead letter, so it cannot be replayed.
            let r = action(&app, &admin, &format!("/api/v1/dead-letters/{id}/replay")).await;
            if r.status.as_u16() == 409 {
                api_error(&r, 409, "conflict");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the replay never settled");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // An unknown dead letter or subscription.
    let nobody = uuid::Uuid::new_v4();
    for (method, path) in [
        ("POST", format!("/api/v1/dead-letters/{nobody}/replay")),
        ("GET", format!("/api/v1/webhooks/{nobody}/dead-letters")),
    ] {
        let r = request(&app, &admin, method, &path, None).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path}: {}", r.raw);
        api_error(&r, 404, "not_found");
    }
    let hits_now = rx.hits().len();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), hits_now, "delivered once, then left alone");
    workers.shutdown();
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
