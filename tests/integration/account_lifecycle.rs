//! The edges of an account's lifecycle (docs/api-v1.md): conflicts, and roles recomputed
//! when rules, roles and SCIM attributes change.

use serde_json::{json, Value};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// The rest of the lifecycle table, conflict rules and recomputation

#[actix_web::test]
async fn lifecycle_edges_conflicts_and_recomputation() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    put_policy(&app, &admin, "review", "notify").await;

    // Created inactive: suspended under either provisioning policy.
    let mut inactive = okta_user("ina@example.com", "Ops", "SRE");
    inactive["active"] = json!(false);
    let ina = scim_create(&app, inactive).await;
    let ina_acc = account_of(&app, &admin, &ina).await;
    assert_eq!(ina_acc["state"], "suspended");
    let ina_acc = ina_acc["id"].as_str().unwrap().to_string();
    // Reactivated under review: a candidate, not active.
    scim_patch(&app, &format!("/scim/v2/Users/{ina}"), okta_active(true)).await;
    assert_eq!(
        get_account(&app, &admin, &ina_acc).await["state"],
        "pending"
    );

    // A candidate deactivated under notify never had access: suspended at once.
    let cand = scim_create(&app, entra_user("cid@example.com", "Ops", "SRE")).await;
    let cand_acc = account_id(&app, &admin, &cand).await;
    scim_patch(&app, &format!("/scim/v2/Users/{cand}"), entra_active(false)).await;
    let c = get_account(&app, &admin, &cand_acc).await;
    assert_eq!(c["state"], "suspended", "{c}");
    assert_eq!(c["removalPending"], Value::Null);

    // Reject: removed; rejecting again is a conflict.
    let r = reject(&app, &admin, &ina_acc).await;
    assert_eq!(ok(&r, 200)["state"], "removed");
    let r = reject(&app, &admin, &ina_acc).await;
    api_error(&r, 409, "conflict");
    assert!(feed(&app, &admin)
        .await
        .iter()
        .any(|e| e["type"] == "account.rejected" && e["accountId"] == ina_acc.as_str()));

    // Conflicts: highest number, `true`, and the string of the first role by name.
    put_policy(&app, &admin, "auto", "auto").await;
    let mut roles = Vec::new();
    for (name, entitlements) in [
        ("zeta", json!({"seats": 3, "sso": true, "tier": "silver"})),
        ("alpha", json!({"seats": 2, "sso": false, "tier": "gold"})),
    ] {
        roles.push(create_role(&app, &admin, name, entitlements).await);
    }
    let [zeta, alpha] = <[String; 2]>::try_from(roles).unwrap();
    let zeta_rule = filter_rule(&app, &admin, &zeta, "userName pr").await;
    filter_rule(&app, &admin, &alpha, "title eq \"SRE\"").await;
    let u = scim_create(&app, okta_user("una@example.com", "Ops", "SRE")).await;
    let acc = account_of(&app, &admin, &u).await;
    let acc_id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(acc["state"], "active");
    assert_eq!(
        acc["roles"],
        json!([{"id": alpha, "name": "alpha"}, {"id": zeta, "name": "zeta"}])
    );
    assert_eq!(
        acc["entitlements"],
        json!({"seats": 3, "sso": true, "tier": "gold"})
    );

    // Replacing a role recomputes the accounts holding it.
    let r = put(
        &app,
        &admin,
        &format!("/api/v1/roles/{zeta}"),
        json!({"name": "zeta", "entitlements": {"seats": 9, "sso": false, "tier": "bronze"}}),
    )
    .await;
    ok(&r, 200);
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(
        now["entitlements"],
        json!({"seats": 9, "sso": false, "tier": "gold"})
    );
    let last = feed(&app, &admin).await.pop().unwrap();
    assert_eq!(last["type"], "account.roles_changed");
    assert_eq!(last["accountId"], acc_id.as_str());
    assert_eq!(last["data"]["account"]["entitlements"], now["entitlements"]);
    assert_eq!(
        last["data"]["previousRoles"],
        json!([{"id": alpha, "name": "alpha"}, {"id": zeta, "name": "zeta"}])
    );

    // Deleting a rule, then a role, recomputes too; the role's rules go with it.
    let r = delete(&app, &admin, &format!("/api/v1/rules/{zeta_rule}")).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([{"id": alpha, "name": "alpha"}]));
    assert_eq!(
        now["entitlements"],
        json!({"seats": 2, "sso": false, "tier": "gold"})
    );
    let r = delete(&app, &admin, &format!("/api/v1/roles/{alpha}")).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([]));
    assert_eq!(now["entitlements"], json!({}));
    let r = get(&app, &admin, "/api/v1/rules").await;
    assert_eq!(items(&r), Vec::<Value>::new());
    let r = get(&app, &admin, &format!("/api/v1/roles/{alpha}")).await;
    api_error(&r, 404, "not_found");

    // A group rule follows membership both ways (Entra's Add and Remove of members).
    let gid = entra_group(&app, "Pager").await;
    let pager = create_role(&app, &admin, "pager", json!({"pager": true})).await;
    create_rule(&app, &admin, json!({"role": pager, "group": gid})).await;
    entra_add_members(&app, &gid, &[&u]).await;
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([{"id": pager, "name": "pager"}]));
    assert_eq!(now["groups"], json!([{"id": gid, "displayName": "Pager"}]));
    let r = get(&app, &admin, &format!("/api/v1/accounts?role={pager}")).await;
    assert_eq!(items(&r).len(), 1);
    scim_patch(
        &app,
        &format!("/scim/v2/Groups/{gid}"),
        patch_body(
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": u}]}]),
        ),
    )
    .await;
    let now = get_account(&app, &admin, &acc_id).await;
    assert_eq!(now["roles"], json!([]));
    assert_eq!(now["groups"], json!([]));

    // Deleting a webhook.
    let (hook, _) = subscribe(&app, &admin, "https://hooks.example.com/x", &["*"], None).await;
    let r = delete(&app, &admin, &format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    let r = get(&app, &admin, &format!("/api/v1/webhooks/{hook}")).await;
    api_error(&r, 404, "not_found");
}

/// A user's own PATCH reads the user's groups once for its answer and its account's event
/// (`Journal::user_groups`): both carry them. A PATCH whose answer leaves them out still
/// announces them (read for the event alone), and a PUT carries them in both too.
#[actix_web::test]
async fn a_users_own_change_shows_its_groups_in_the_answer_and_the_event() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let u = scim_create(&app, okta_user("grouped@example.com", "Ops", "SRE")).await;
    let gid = entra_group(&app, "Pager").await;
    entra_add_members(&app, &gid, &[&u]).await;
    let groups = json!([{"id": gid, "displayName": "Pager"}]);
    let last_account_event = |all: Vec<Value>, kind: &str| {
        all.into_iter()
            .rev()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the feed"))
    };
    let path = format!("/scim/v2/Users/{u}");

    let r = scim_patch(&app, &path, okta_active(false)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
    assert_eq!(r.body["groups"][0]["value"], gid.as_str(), "{}", r.raw);
    assert_eq!(r.body["groups"][0]["display"], "Pager", "{}", r.raw);
    let ev = last_account_event(feed(&app, &admin).await, "account.suspended");
    assert_eq!(ev["data"]["account"]["groups"], groups, "{ev}");

    let r = scim_patch(
        &app,
        &format!("{path}?excludedAttributes=groups"),
        okta_active(true),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
    assert!(r.body.get("groups").is_none(), "{}", r.raw);
    assert_eq!(r.body["active"], true);
    let ev = last_account_event(feed(&app, &admin).await, "account.activated");
    assert_eq!(ev["data"]["account"]["groups"], groups, "{ev}");

    let mut body = okta_user("grouped@example.com", "Ops", "SRE");
    body["active"] = json!(false);
    let r = call(&app, "PUT", &path, Some(body)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
    assert_eq!(r.body["groups"][0]["value"], gid.as_str(), "{}", r.raw);
    let ev = last_account_event(feed(&app, &admin).await, "account.suspended");
    assert_eq!(ev["data"]["account"]["groups"], groups, "{ev}");
}
