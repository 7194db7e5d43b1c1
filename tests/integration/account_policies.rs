//! The account policies (docs/api-v1.md), as Entra ID and Okta drive them over SCIM and an
//! operator over `/api/v1`: review (approval, by cohort), auto (an Okta deactivation
//! suspends in the same transaction) and notify (flagged removals until confirmed), with
//! roles granted by filter and group rules and their entitlements merged.

use serde_json::{json, Value};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// Review policy, roles by filter rules, merged entitlements, signed webhook

#[actix_web::test]
async fn review_policy_approval_grants_merged_roles_and_signs_the_webhook() {
    let (_db, a, app, state, admin) = hook_app(|_| {}).await;
    let rx = Receiver::start(200);
    let workers = scimitar::server::start_webhooks(&a, &state);

    let r = get(&app, &admin, "/api/v1/policy").await;
    assert_eq!(
        ok(&r, 200),
        &json!({"provisioning": "auto", "deprovisioning": "auto"})
    );
    put_policy(&app, &admin, "review", "auto").await;

    let manager = card_role(&app, &admin, "finance-manager", 5000, true).await;
    let staff = card_role(&app, &admin, "finance-staff", 1000, false).await;
    let finance = in_department("Finance");
    let finance_managers = format!("{finance} and title co \"Manager\"");
    filter_rule(&app, &admin, &manager, &finance_managers).await;
    filter_rule(&app, &admin, &staff, &finance).await;
    let r = get(&app, &admin, "/api/v1/rules").await;
    assert_eq!(items(&r).len(), 2);
    let (hook, secret) = subscribe(&app, &admin, &rx.url, &["account.activated"], None).await;

    // Entra creates the users: candidates, no roles yet.
    let ada = scim_create(
        &app,
        entra_user("ada@example.com", "Finance", "Finance Manager"),
    )
    .await;
    let bob = scim_create(
        &app,
        entra_user("bob@example.com", "Sales", "Sales Manager"),
    )
    .await;
    let acc = account_of(&app, &admin, &ada).await;
    assert_eq!(acc["state"], "pending", "{acc}");
    assert_eq!(acc["userName"], "ada@example.com");
    assert_eq!(acc["roles"], json!([]));
    assert_eq!(acc["entitlements"], json!({}));
    assert_eq!(acc["removalPending"], Value::Null);
    let ada_acc = acc["id"].as_str().unwrap().to_string();
    let bob_acc = account_id(&app, &admin, &bob).await;
    let r = get(&app, &admin, "/api/v1/candidates").await;
    let cands = items(&r);
    let mut ids: Vec<&str> = cands.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = vec![ada_acc.as_str(), bob_acc.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(cands.iter().all(|c| c["state"] == "pending"));
    let pending: Vec<Value> = feed(&app, &admin)
        .await
        .into_iter()
        .filter(|e| e["type"] == "account.pending")
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().any(|e| e["accountId"] == ada_acc.as_str()));

    // Approval: both Finance roles; the highest limit and `true` win.
    let r = approve(&app, &admin, &ada_acc).await;
    let approved = ok(&r, 200).clone();
    assert_eq!(approved["state"], "active");
    assert_eq!(approved["scimId"], ada.as_str());
    assert_eq!(
        approved["roles"],
        json!([{"id": manager, "name": "finance-manager"}, {"id": staff, "name": "finance-staff"}])
    );
    assert_eq!(
        approved["entitlements"],
        json!({"card.monthly_limit": 5000, "card.enabled": true})
    );
    assert_eq!(get_account(&app, &admin, &ada_acc).await, approved);
    let r = get(&app, &admin, "/api/v1/candidates").await;
    let left: Vec<Value> = items(&r);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], bob_acc.as_str());
    let r = get(&app, &admin, &format!("/api/v1/accounts?role={manager}")).await;
    let holders = items(&r);
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0]["id"], ada_acc.as_str());

    // The product hears of it through a signed webhook.
    let ev = rx
        .first_delivered("account.activated of ada", &secret)
        .await;
    assert_eq!(ev["type"], "account.activated");
    assert_eq!(ev["accountId"], ada_acc.as_str());
    assert_eq!(ev["resourceType"], "User");
    assert_eq!(ev["resourceId"], ada.as_str());
    assert_eq!(ev["data"]["account"]["state"], "active");
    assert_eq!(
        ev["data"]["account"]["entitlements"],
        json!({"card.monthly_limit": 5000, "card.enabled": true})
    );
    let in_feed = feed(&app, &admin).await;
    assert!(
        in_feed.contains(&ev),
        "the delivery is the feed event: {ev}"
    );

    // Approving again: not a candidate any more.
    let r = approve(&app, &admin, &ada_acc).await;
    api_error(&r, 409, "conflict");
    assert_eq!(get_account(&app, &admin, &ada_acc).await, approved);

    // Bob matches no rule: active, nothing granted.
    let r = approve(&app, &admin, &bob_acc).await;
    let b = ok(&r, 200);
    assert_eq!(b["state"], "active");
    assert_eq!(b["roles"], json!([]));
    assert_eq!(b["entitlements"], json!({}));
    let hits = rx
        .until("account.activated of bob", |h| {
            h.iter()
                .any(|h| h.ok() && h.event()["accountId"] == bob_acc.as_str())
        })
        .await;
    for h in &hits {
        verify(h, &secret);
        assert_eq!(
            h.event()["type"],
            "account.activated",
            "only subscribed types"
        );
    }
    assert_eq!(dead_letters(&app, &admin, &hook).await, Vec::<Value>::new());
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// Auto policy, Okta deactivation in the same transaction

#[actix_web::test]
async fn auto_policy_okta_deactivation_suspends_in_the_same_transaction() {
    let (_db, a, app, state, admin) = hook_app(|_| {}).await;
    let rx = Receiver::start(200);
    let workers = scimitar::server::start_webhooks(&a, &state);

    let eng = create_role(&app, &admin, "engineer", json!({"repo.write": true})).await;
    filter_rule(&app, &admin, &eng, &in_department("Engineering")).await;
    let (_, secret) = subscribe(&app, &admin, &rx.url, &["account.suspended"], None).await;

    let user = scim_create(
        &app,
        okta_user("grace@example.com", "Engineering", "Engineer"),
    )
    .await;
    let acc = account_of(&app, &admin, &user).await;
    assert_eq!(acc["state"], "active");
    assert_eq!(acc["roles"], json!([{"id": eng, "name": "engineer"}]));
    assert_eq!(acc["entitlements"], json!({"repo.write": true}));
    let acc_id = acc["id"].as_str().unwrap().to_string();

    // Okta deactivates: the account is suspended by the time the PATCH answers.
    let path = format!("/scim/v2/Users/{user}");
    let r = scim_patch(&app, &path, okta_active(false)).await;
    if r.status.as_u16() == 200 {
        assert_eq!(r.body["active"], false);
    }
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["state"], "suspended", "{now}");
    assert_eq!(now["roles"], json!([]));
    assert_eq!(now["entitlements"], json!({}));
    assert_eq!(now["removalPending"], Value::Null);

    let ev = rx.first_delivered("account.suspended", &secret).await;
    assert_eq!(ev["type"], "account.suspended");
    assert_eq!(ev["accountId"], acc_id.as_str());
    assert_eq!(ev["data"]["account"]["state"], "suspended");
    assert_eq!(ev["data"]["account"]["roles"], json!([]));

    // The feed: the SCIM deactivation and the product's suspension, in that order.
    let all = feed(&app, &admin).await;
    let seq_of = |t: &str| {
        all.iter()
            .find(|e| e["type"] == t && e["accountId"] == acc_id.as_str())
            .and_then(|e| e["seq"].as_i64())
            .unwrap_or_else(|| panic!("no {t} in the feed: {all:#?}"))
    };
    let deactivate = format!("{PROV}deactivate");
    assert!(seq_of(&deactivate) < seq_of("account.suspended"));
    let ev_in_feed = all.iter().find(|e| e["id"] == ev["id"]).expect("in feed");
    assert_eq!(ev_in_feed, &ev);

    // The timeline: every event of the account, oldest first.
    let r = get(&app, &admin, &format!("/api/v1/accounts/{acc_id}/timeline")).await;
    let mut tl = items(&r);
    assert!(tl.iter().all(|e| e["accountId"] == acc_id.as_str()));
    // The timeline adds the credential behind each event; the rest is the feed's.
    for e in &mut tl {
        assert!(e.as_object_mut().unwrap().remove("credential").is_some());
    }
    let seqs: Vec<i64> = tl.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let want = [
        format!("{PROV}create:full"),
        "account.activated".to_string(),
        format!("{PROV}patch:full"),
        deactivate.clone(),
        "account.suspended".to_string(),
    ];
    let got = types(&tl);
    let mut it = got.iter();
    for w in &want {
        assert!(it.any(|g| g == w), "timeline lacks {w} in order: {got:?}");
    }
    let feed_of_acc: Vec<&Value> = all
        .iter()
        .filter(|e| e["accountId"] == acc_id.as_str())
        .collect();
    assert_eq!(tl.iter().collect::<Vec<_>>(), feed_of_acc);

    // Okta reactivates: active again with its role (auto provisioning).
    scim_patch(&app, &path, okta_active(true)).await;
    let back = get_account(&app, &admin, &acc_id).await;
    assert_eq!(back["state"], "active");
    assert_eq!(back["roles"], json!([{"id": eng, "name": "engineer"}]));
    workers.shutdown();
}

// ---------------------------------------------------------------------------------------
// Approving a cohort by SCIM group

#[actix_web::test]
async fn cohort_approval_by_group_approves_exactly_its_pending_members() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);

    // Already on board before the review policy.
    let veteran = scim_create(
        &app,
        entra_user("vera@example.com", "Engineering", "Engineer"),
    )
    .await;
    assert_eq!(account_of(&app, &admin, &veteran).await["state"], "active");
    put_policy(&app, &admin, "review", "auto").await;
    let hires = scim_create_all(
        &app,
        ["nia", "omar", "pia"]
            .map(|n| entra_user(&format!("{n}@example.com"), "Engineering", "Engineer")),
    )
    .await;
    let outsider = scim_create(&app, entra_user("quinn@example.com", "Sales", "Rep")).await;

    let gid = entra_group(&app, "New hires 2026-12").await;
    let onboarding = create_role(&app, &admin, "new-hire", json!({"onboarding": true})).await;
    create_rule(&app, &admin, json!({"role": onboarding, "group": gid})).await;
    let mut members: Vec<&str> = hires.iter().map(String::as_str).collect();
    members.push(&veteran);
    entra_add_members(&app, &gid, &members).await;

    let r = get(&app, &admin, &format!("/api/v1/accounts?group={gid}")).await;
    assert_eq!(items(&r).len(), 4);
    // The veteran got the group's role from the membership change; the hires wait.
    let vet = account_of(&app, &admin, &veteran).await;
    assert_eq!(vet["state"], "active");
    assert_eq!(
        vet["roles"],
        json!([{"id": onboarding, "name": "new-hire"}])
    );
    let r = get(&app, &admin, "/api/v1/candidates").await;
    assert_eq!(items(&r).len(), 4);

    let approve_cohort = |body: Value| post(&app, &admin, "/api/v1/candidates/approve", Some(body));
    let r = approve_cohort(json!({"group": gid})).await;
    let approved = ok(&r, 200)["approved"]
        .as_array()
        .expect("approved")
        .clone();
    let mut got: Vec<&str> = approved
        .iter()
        .map(|a| a["scimId"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want: Vec<&str> = hires.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "exactly the pending members");
    for a in &approved {
        assert_eq!(a["state"], "active");
        assert_eq!(a["roles"], json!([{"id": onboarding, "name": "new-hire"}]));
        assert_eq!(a["entitlements"], json!({"onboarding": true}));
        assert_eq!(
            a["groups"],
            json!([{"id": gid, "displayName": "New hires 2026-12"}])
        );
    }
    let r = get(&app, &admin, "/api/v1/candidates").await;
    let left = items(&r);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["scimId"], outsider.as_str());
    assert_eq!(account_of(&app, &admin, &veteran).await, vet);
    let r = get(&app, &admin, "/api/v1/accounts?state=active").await;
    assert_eq!(items(&r).len(), 4);

    // Nobody left to approve in the group.
    let r = approve_cohort(json!({"group": gid})).await;
    assert_eq!(ok(&r, 200)["approved"], json!([]));

    // An unknown group, and a body that names no group: refused, nothing changed.
    let before = feed(&app, &admin).await;
    for (body, status, code) in [
        (
            json!({"group": uuid::Uuid::new_v4().to_string()}),
            404,
            "not_found",
        ),
        (json!({"members": [outsider]}), 400, "bad_request"),
    ] {
        let r = approve_cohort(body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.raw);
        api_error(&r, status, code);
    }
    assert_eq!(feed(&app, &admin).await, before);
    assert_eq!(
        account_of(&app, &admin, &outsider).await["state"],
        "pending"
    );
}

// ---------------------------------------------------------------------------------------
// Notify policy: flagged removals and their confirmation

#[actix_web::test]
async fn notify_policy_flags_removals_until_confirmed() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    put_policy(&app, &admin, "auto", "notify").await;
    let vpn = create_role(&app, &admin, "vpn", json!({"vpn.enabled": true})).await;
    create_rule(&app, &admin, json!({"role": vpn, "filter": "userName pr"})).await;
    let vpn_roles = json!([{"id": vpn, "name": "vpn"}]);

    let carol = scim_create(&app, entra_user("carol@example.com", "Ops", "SRE")).await;
    let dave = scim_create(&app, entra_user("dave@example.com", "Ops", "SRE")).await;
    let eve = scim_create(&app, entra_user("eve@example.com", "Ops", "SRE")).await;
    let carol_acc = account_id(&app, &admin, &carol).await;
    let dave_acc = account_id(&app, &admin, &dave).await;
    let eve_acc = account_id(&app, &admin, &eve).await;

    // Entra disables Carol ("False"): flagged, access kept.
    scim_patch(
        &app,
        &format!("/scim/v2/Users/{carol}"),
        entra_active(false),
    )
    .await;
    let r = get(&app, TOKEN, &format!("/scim/v2/Users/{carol}")).await;
    r.expect(200);
    assert_eq!(r.body["active"], false);
    let c = get_account(&app, &admin, &carol_acc).await;
    assert_eq!(c["state"], "active", "{c}");
    assert_eq!(c["removalPending"]["reason"], "deactivated");
    assert!(c["removalPending"]["since"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    assert_eq!(c["roles"], vpn_roles);
    assert_eq!(c["entitlements"], json!({"vpn.enabled": true}));
    let r = get(&app, &admin, "/api/v1/removals").await;
    let flagged = items(&r);
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["id"], carol_acc.as_str());
    let all = feed(&app, &admin).await;
    assert!(all
        .iter()
        .any(|e| e["type"] == "account.removal_pending" && e["accountId"] == carol_acc.as_str()));
    assert!(!all
        .iter()
        .any(|e| e["type"] == "account.suspended" && e["accountId"] == carol_acc.as_str()));

    let confirm = |id: &str| format!("/api/v1/removals/{id}/confirm");
    let r = post(&app, &admin, &confirm(&carol_acc), None).await;
    let c = ok(&r, 200).clone();
    assert_eq!(c["state"], "suspended");
    assert_eq!(c["roles"], json!([]));
    assert_eq!(c["entitlements"], json!({}));
    assert_eq!(c["removalPending"], Value::Null);
    assert_eq!(get_account(&app, &admin, &carol_acc).await, c);
    let r = get(&app, &admin, "/api/v1/removals").await;
    assert_eq!(items(&r), Vec::<Value>::new());
    let r = post(&app, &admin, &confirm(&carol_acc), None).await;
    api_error(&r, 409, "conflict");
    assert_eq!(get_account(&app, &admin, &carol_acc).await, c);
    assert!(feed(&app, &admin)
        .await
        .iter()
        .any(|e| e["type"] == "account.suspended" && e["accountId"] == carol_acc.as_str()));

    // Entra deletes Dave: flagged with reason `deleted`; confirmed, removed.
    let r = delete(&app, TOKEN, &format!("/scim/v2/Users/{dave}")).await;
    r.expect(204);
    let d = get_account(&app, &admin, &dave_acc).await;
    assert_eq!(d["state"], "active", "{d}");
    assert_eq!(d["removalPending"]["reason"], "deleted");
    assert_eq!(d["roles"], vpn_roles);
    let r = get(&app, &admin, "/api/v1/removals").await;
    let flagged = items(&r);
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["id"], dave_acc.as_str());
    let r = post(&app, &admin, &confirm(&dave_acc), None).await;
    let d = ok(&r, 200).clone();
    assert_eq!(d["state"], "removed");
    assert_eq!(d["roles"], json!([]));
    assert_eq!(d["removalPending"], Value::Null);
    let r = post(&app, &admin, &confirm(&dave_acc), None).await;
    api_error(&r, 409, "conflict");
    let r = get(
        &app,
        &admin,
        &format!("/api/v1/accounts/{dave_acc}/timeline"),
    )
    .await;
    let got = types(&items(&r));
    let want = [
        format!("{PROV}delete"),
        "account.removal_pending".to_string(),
        "account.removed".to_string(),
    ];
    let mut it = got.iter();
    for w in &want {
        assert!(it.any(|g| g == w), "timeline lacks {w} in order: {got:?}");
    }

    // Eve is disabled and enabled again before anyone confirms: the flag goes.
    scim_patch(&app, &format!("/scim/v2/Users/{eve}"), entra_active(false)).await;
    assert_eq!(
        get_account(&app, &admin, &eve_acc).await["removalPending"]["reason"],
        "deactivated"
    );
    scim_patch(&app, &format!("/scim/v2/Users/{eve}"), entra_active(true)).await;
    let e = get_account(&app, &admin, &eve_acc).await;
    assert_eq!(e["state"], "active");
    assert_eq!(e["removalPending"], Value::Null);
    assert_eq!(e["roles"], vpn_roles);
    let r = get(&app, &admin, "/api/v1/removals").await;
    assert_eq!(items(&r), Vec::<Value>::new());
    let r = post(&app, &admin, &confirm(&eve_acc), None).await;
    api_error(&r, 409, "conflict");
}

/// Two instances on one database, one keeping what it read of the tenant's policy, roles and
/// rules between writes: a rule, a policy or a deletion made through the other instance
/// decides its next write all the same (each is a new version of them, read in the write's
/// transaction), and so does a change made through itself or in SQL.
#[actix_web::test]
async fn a_rule_or_policy_changed_through_another_instance_decides_the_next_write() {
    let db = TestDb::new();
    let (a, state) = app_with(args(&db)).await;
    let (b, _) = app_with(args(&db)).await;
    let admin = admin_token(&state);
    let roles_of = |acc: &Value| -> Vec<String> {
        acc["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .map(|r| r["name"].as_str().expect("role name").to_string())
            .collect()
    };
    // B decides a first account with nothing set (and keeps that).
    let u0 = scim_create(&b, entra_user("u0@example.com", "Engineering", "Dev")).await;
    assert_eq!(
        roles_of(&account_of(&a, &admin, &u0).await),
        Vec::<String>::new()
    );
    // A adds a role and a rule: B's next two writes (the second from what B kept) grant it.
    let eng = create_role(&a, &admin, "engineer", json!({"repo.write": true})).await;
    let rule = filter_rule(&a, &admin, &eng, &in_department("Engineering")).await;
    for name in ["u1@example.com", "u2@example.com"] {
        let u = scim_create(&b, entra_user(name, "Engineering", "Dev")).await;
        assert_eq!(
            roles_of(&account_of(&a, &admin, &u).await),
            ["engineer"],
            "{name}"
        );
    }
    // A deletes the rule: B's next write grants nothing.
    let r = delete(&a, &admin, &format!("/api/v1/rules/{rule}")).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let u3 = scim_create(&b, entra_user("u3@example.com", "Engineering", "Dev")).await;
    assert_eq!(
        roles_of(&account_of(&a, &admin, &u3).await),
        Vec::<String>::new()
    );
    // A sets the review policy: B's next account waits for approval.
    put_policy(&a, &admin, "review", "auto").await;
    let u4 = scim_create(&b, entra_user("u4@example.com", "Sales", "Rep")).await;
    assert_eq!(account_of(&a, &admin, &u4).await["state"], "pending");
    // B's own change (a rule again, through B): B's next write follows it too.
    filter_rule(&b, &admin, &eng, &in_department("Sales")).await;
    put_policy(&b, &admin, "auto", "auto").await;
    let u5 = scim_create(&b, entra_user("u5@example.com", "Sales", "Rep")).await;
    let acc = account_of(&a, &admin, &u5).await;
    assert_eq!(acc["state"], "active");
    assert_eq!(roles_of(&acc), ["engineer"]);
    // A change no instance of this binary made (an older binary during a rolling upgrade, a
    // fix in SQL): the database's triggers note it, and B's next write follows it.
    {
        let mut conn = state.service.pool.get().expect("conn");
        conn.db()
            .execute(&scimitar::storage::sql::Sql::new(
                "DELETE FROM rules WHERE tenant_id = 'default'",
            ))
            .expect("delete the rules");
    }
    let u6 = scim_create(&b, entra_user("u6@example.com", "Sales", "Rep")).await;
    assert_eq!(
        roles_of(&account_of(&a, &admin, &u6).await),
        Vec::<String>::new()
    );
}
