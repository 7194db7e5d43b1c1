//! The `/api/v1` additions of issue 17 (docs/api-v1.md), over HTTP through the app: who an
//! account is (`profile`, `user`), what a candidate would get (`wouldGet`), accounts by SCIM
//! filter, rule previews, restoring a flagged account, the credential behind each timeline
//! event, a subscription's recent deliveries, and the tenant's groups.

use serde_json::{json, Value};

use scimitar::auth::Scope;
use scimitar::provisioning::tenancy as admin;

use crate::common::*;

/// A subscription's URL where nothing is ever delivered: these apps run no delivery workers.
const UNSENT: &str = "https://hooks.example.com/hooks";

#[actix_web::test]
async fn candidates_say_who_they_are_and_what_they_would_get() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let fin = card_role(&app, &admin, "finance-manager", 5000, true).await;
    let cards = card_role(&app, &admin, "cards", 250, false).await;
    filter_rule(&app, &admin, &fin, &in_department("Finance")).await;
    let group = entra_group(&app, "Spring cohort").await;
    create_rule(&app, &admin, json!({"role": cards, "group": group})).await;
    put_policy(&app, &admin, "review", "auto").await;

    let mut grace = entra_user("grace@example.com", "Finance", "CFO");
    grace["displayName"] = json!("Grace Hopper");
    let grace = scim_create(&app, grace).await;
    let mut ada = entra_user("ada@example.com", "Finance", "Finance Manager");
    // Entra sends the manager's id alone (its displayName is read-only in RFC 7643).
    ada[ENTERPRISE]["manager"] = json!({"value": grace});
    ada["displayName"] = json!("Ada Lovelace");
    let ada = scim_create(&app, ada).await;
    let bob = scim_create(&app, entra_user("bob@example.com", "Sales", "Rep")).await;
    entra_add_members(&app, &group, &[&ada]).await;

    let r = get(&app, &admin, "/api/v1/candidates").await;
    let list = items(&r);
    assert_eq!(list.len(), 3, "{}", r.raw);
    let a = list.iter().find(|c| c["scimId"] == ada.as_str()).unwrap();
    assert_eq!(
        a["profile"],
        json!({"displayName": "Ada Lovelace", "givenName": "Given", "familyName": "Family",
            "email": "ada@example.com", "title": "Finance Manager", "department": "Finance",
            "manager": {"value": grace, "displayName": "Grace Hopper"}, "active": true})
    );
    assert_eq!(a["groups"][0]["displayName"], "Spring cohort");
    // Both rules match: the roles by name, the entitlements merged (highest number, true wins).
    assert_eq!(
        a["wouldGet"],
        json!({"roles": [{"id": cards, "name": "cards"}, {"id": fin, "name": "finance-manager"}],
            "entitlements": {"card.enabled": true, "card.monthly_limit": 5000}})
    );
    // A candidate holds nothing yet.
    assert_eq!(a["roles"], json!([]));
    let b = list.iter().find(|c| c["scimId"] == bob.as_str()).unwrap();
    assert_eq!(b["wouldGet"], json!({"roles": [], "entitlements": {}}));

    // Approval gives exactly what was shown.
    let id = a["id"].as_str().unwrap();
    let r = approve(&app, &admin, id).await;
    let approved = ok(&r, 200);
    assert_eq!(approved["roles"], a["wouldGet"]["roles"]);
    assert_eq!(approved["entitlements"], a["wouldGet"]["entitlements"]);

    // Other lists carry the profile, not wouldGet; one account also carries its SCIM user.
    let r = get(&app, &admin, "/api/v1/accounts").await;
    for acc in items(&r) {
        assert!(acc["profile"].is_object(), "{acc}");
        assert!(acc.get("wouldGet").is_none(), "{acc}");
    }
    let r = get(&app, &admin, &format!("/api/v1/accounts/{id}")).await;
    let one = ok(&r, 200);
    assert_eq!(one["user"]["id"], ada.as_str());
    assert_eq!(one["user"]["userName"], "ada@example.com");
    assert_eq!(one["user"][ENTERPRISE]["department"], "Finance");
    assert!(one["user"].get("password").is_none());
    assert_eq!(one["profile"]["department"], "Finance");

    // A deleted user's account keeps its history but has no profile or user.
    let r = delete(&app, TOKEN, &format!("/scim/v2/Users/{bob}")).await;
    r.expect(204);
    let gone = account_of(&app, &admin, &bob).await;
    assert!(gone["profile"].is_null(), "{gone}");
    let gone_id = gone["id"].as_str().unwrap();
    let r = get(&app, &admin, &format!("/api/v1/accounts/{gone_id}")).await;
    assert!(ok(&r, 200)["user"].is_null());
}

#[actix_web::test]
async fn accounts_are_searched_with_a_scim_filter() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    for (u, d, t) in [
        ("f1@example.com", "Finance", "Analyst"),
        ("f2@example.com", "Finance", "Manager"),
        ("s1@example.com", "Sales", "Manager"),
    ] {
        scim_create(&app, entra_user(u, d, t)).await;
    }
    let names = |r: &Resp| -> Vec<String> {
        let mut v: Vec<String> = items(r)
            .iter()
            .map(|a| a["userName"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let q = |f: &str| format!("/api/v1/accounts?filter={}", urlencode(f));
    let r = get(&app, &admin, &q(&in_department("Finance"))).await;
    assert_eq!(names(&r), ["f1@example.com", "f2@example.com"]);
    let managers = q("title eq \"Manager\"");
    let r = get(&app, &admin, &managers).await;
    assert_eq!(names(&r), ["f2@example.com", "s1@example.com"]);
    // With the other filters, and paged.
    let r = get(&app, &admin, &format!("{managers}&state=active&limit=1")).await;
    assert_eq!(items(&r).len(), 1);
    let next = r.body["nextCursor"].as_str().unwrap().to_string();
    let page = format!("{managers}&state=active&limit=1&cursor={next}");
    let r = get(&app, &admin, &page).await;
    assert_eq!(items(&r).len(), 1);
    assert!(r.body["nextCursor"].is_null());
    let r = get(&app, &admin, &format!("{managers}&state=suspended")).await;
    assert_eq!(items(&r).len(), 0);

    // Bad filters are explained; group membership is the `group` parameter's job.
    let r = get(&app, &admin, &q("title eq")).await;
    let detail = api_error(&r, 400, "bad_request");
    assert!(detail.contains("at position"), "{detail}");
    let r = get(&app, &admin, &q("nosuch eq \"x\"")).await;
    api_error(&r, 400, "bad_request");
    let r = get(&app, &admin, &q("groups.value eq \"x\"")).await;
    let detail = api_error(&r, 400, "bad_request");
    assert!(detail.contains("group"), "{detail}");
}

#[actix_web::test]
async fn rule_previews_count_matches_and_explain_bad_filters() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let mut ids = Vec::new();
    for i in 0..7 {
        let dept = if i < 6 { "Finance" } else { "Sales" };
        ids.push(
            scim_create(
                &app,
                entra_user(&format!("u{i}@example.com"), dept, "Analyst"),
            )
            .await,
        );
    }
    let group = entra_group(&app, "Pilots").await;
    entra_add_members(&app, &group, &[&ids[0], &ids[6]]).await;
    let feed_before = get(&app, &admin, "/api/v1/events?limit=1000").await;
    let preview = |body: Value| post(&app, &admin, "/api/v1/rules/preview", Some(body));

    let r = preview(json!({"filter": in_department("Finance")})).await;
    let p = ok(&r, 200);
    assert_eq!(p["valid"], true);
    assert_eq!(p["matches"], 6);
    assert_eq!(p["sample"].as_array().unwrap().len(), 5, "a sample of five");
    // The same body as a rule (with its role) is accepted.
    let r = preview(json!({"role": "anything", "filter": "userName eq \"u6@example.com\""})).await;
    assert_eq!(ok(&r, 200)["matches"], 1);
    assert_eq!(r.body["sample"], json!(["u6@example.com"]));
    let r = preview(json!({"group": group})).await;
    let p = ok(&r, 200);
    assert_eq!(p["matches"], 2);
    let mut sample: Vec<&str> = p["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    sample.sort_unstable();
    assert_eq!(sample, ["u0@example.com", "u6@example.com"]);

    // A filter that does not parse: the parser's message and the position it points at.
    let r = preview(json!({"filter": "title eq \"x\" and ("})).await;
    let p = ok(&r, 200);
    assert_eq!(p["valid"], false);
    assert_eq!(p["position"], 18, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("at position 18"),
        "{p}"
    );
    // One that parses but names what a rule cannot test: no position, the reason.
    for (f, word) in [
        ("nosuch eq \"x\"", "nosuch"),
        ("groups.value eq \"g\"", "group"),
    ] {
        let r = preview(json!({"filter": f})).await;
        let p = ok(&r, 200);
        assert_eq!(p["valid"], false, "{f}");
        assert!(p["position"].is_null(), "{p}");
        assert!(p["detail"].as_str().unwrap().contains(word), "{p}");
    }
    // Malformed requests are errors.
    for bad in [
        json!({}),
        json!({"filter": "a pr", "group": group}),
        json!({"filter": 5}),
        json!({"filter": "a pr", "extra": 1}),
        json!([]),
    ] {
        let r = preview(bad).await;
        api_error(&r, 400, "bad_request");
    }
    let r = preview(json!({"group": "no-such-group"})).await;
    api_error(&r, 404, "not_found");
    let r = post(
        &app,
        TOKEN,
        "/api/v1/rules/preview",
        Some(json!({"filter": "a pr"})),
    )
    .await;
    api_error(&r, 403, "forbidden");
    // A preview writes nothing.
    let r = get(&app, &admin, "/api/v1/rules").await;
    assert!(items(&r).is_empty());
    let feed_after = get(&app, &admin, "/api/v1/events?limit=1000").await;
    assert_eq!(feed_before.body, feed_after.body);
}

#[actix_web::test]
async fn a_flagged_account_can_be_restored_and_keeps_its_access() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let fin = create_role(&app, &admin, "finance", json!({"card.enabled": true})).await;
    filter_rule(&app, &admin, &fin, &in_department("Finance")).await;
    put_policy(&app, &admin, "auto", "notify").await;
    let (hook, _) = subscribe(&app, &admin, UNSENT, &["account.restored"], None).await;
    let ada = scim_create(&app, entra_user("ada@example.com", "Finance", "Analyst")).await;
    scim_patch(&app, &format!("/scim/v2/Users/{ada}"), okta_active(false)).await;
    let flagged = account_of(&app, &admin, &ada).await;
    assert_eq!(flagged["removalPending"]["reason"], "deactivated");
    let id = flagged["id"].as_str().unwrap().to_string();

    let r = action(&app, &admin, &format!("/api/v1/removals/{id}/restore")).await;
    let a = ok(&r, 200);
    assert_eq!(a["state"], "active");
    assert!(a["removalPending"].is_null());
    assert_eq!(a["roles"][0]["name"], "finance");
    assert_eq!(a["entitlements"], json!({"card.enabled": true}));
    assert_eq!(a["profile"]["active"], false, "the IdP still says inactive");
    let r = get(&app, &admin, "/api/v1/removals").await;
    assert!(items(&r).is_empty());
    // Announced (and queued for the subscription that asked for it).
    let r = get(&app, &admin, &format!("/api/v1/accounts/{id}/timeline")).await;
    let last = items(&r).last().cloned().unwrap();
    assert_eq!(last["type"], "account.restored");
    assert_eq!(last["data"]["account"]["state"], "active");
    let r = get(&app, &admin, &format!("/api/v1/webhooks/{hook}/deliveries")).await;
    let queued = items(&r);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["type"], "account.restored");

    // Twice is a conflict; so is a deleted user's account (confirm it instead).
    let r = action(&app, &admin, &format!("/api/v1/removals/{id}/restore")).await;
    api_error(&r, 409, "conflict");
    let r = delete(&app, TOKEN, &format!("/scim/v2/Users/{ada}")).await;
    r.expect(204);
    let r = action(&app, &admin, &format!("/api/v1/removals/{id}/restore")).await;
    let detail = api_error(&r, 409, "conflict");
    assert!(detail.contains("deleted"), "{detail}");
    assert_eq!(
        account_of(&app, &admin, &ada).await["removalPending"]["reason"],
        "deleted"
    );
    let r = post(&app, &admin, "/api/v1/removals/nope/restore", None).await;
    api_error(&r, 404, "not_found");
}

#[actix_web::test]
async fn the_timeline_names_the_credential_behind_each_event() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    let scim = {
        let mut conn = state.service.pool.get().unwrap();
        admin::create_token(
            &mut conn,
            "default",
            Some("Okta provisioning"),
            Scope::Write,
            None,
        )
        .unwrap()
    };
    put_policy(&app, &admin, "review", "auto").await;
    let r = post(
        &app,
        &scim.1,
        "/scim/v2/Users",
        Some(entra_user("ada@example.com", "Finance", "Analyst")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let user = r.body["id"].as_str().unwrap().to_string();
    // The bootstrap token (no stored credential) changes it too.
    scim_patch(
        &app,
        &format!("/scim/v2/Users/{user}"),
        patch_body(json!([{"op": "replace", "path": "title", "value": "Lead"}])),
    )
    .await;
    let id = account_id(&app, &admin, &user).await;
    let r = approve(&app, &admin, &id).await;
    ok(&r, 200);

    let r = get(&app, &admin, &format!("/api/v1/accounts/{id}/timeline")).await;
    let events = items(&r);
    let by_type = |t: &str| {
        events
            .iter()
            .find(|e| e["type"].as_str().unwrap().ends_with(t))
            .unwrap_or_else(|| panic!("no {t}: {}", r.raw))
            .clone()
    };
    assert_eq!(
        by_type("create:full")["credential"],
        json!({"id": scim.0, "kind": "token", "label": "Okta provisioning"})
    );
    assert_eq!(
        by_type("account.pending")["credential"]["id"],
        scim.0.as_str()
    );
    assert!(by_type("patch:full")["credential"].is_null(), "bootstrap");
    let approved = by_type("account.activated");
    assert_eq!(approved["credential"]["kind"], "token");
    assert_eq!(approved["credential"]["label"], "admin");
    // Webhooks and the feed are unchanged: no credential there.
    let r = get(&app, &admin, "/api/v1/events").await;
    assert!(items(&r).iter().all(|e| e.get("credential").is_none()));
}

#[actix_web::test]
async fn a_subscription_lists_its_recent_deliveries_and_groups_their_candidates() {
    let (_db, app, state) = app_state().await;
    let admin = admin_token(&state);
    put_policy(&app, &admin, "review", "auto").await;
    let (hook, _) = subscribe(&app, &admin, UNSENT, &["account.pending"], None).await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(scim_create(&app, entra_user(&format!("u{i}@example.com"), "Ops", "x")).await);
    }
    // Newest first, paged; this app runs no delivery workers, so all are pending.
    let path = format!("/api/v1/webhooks/{hook}/deliveries");
    let r = get(&app, &admin, &format!("{path}?limit=2")).await;
    let first = items(&r);
    assert_eq!(first.len(), 2);
    assert!(first[0]["seq"].as_i64() > first[1]["seq"].as_i64());
    assert!(first
        .iter()
        .all(|d| d["status"] == "pending" && d["nextAttemptAt"].is_string()));
    let next = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = get(&app, &admin, &format!("{path}?limit=2&cursor={next}")).await;
    let rest = items(&r);
    assert_eq!(rest.len(), 1);
    assert!(rest[0]["seq"].as_i64() < first[1]["seq"].as_i64());
    assert!(r.body["nextCursor"].is_null());
    let r = get(&app, &admin, &format!("{path}?status=dead")).await;
    assert!(items(&r).is_empty());
    let r = get(&app, &admin, &format!("{path}?status=pending")).await;
    assert_eq!(items(&r).len(), 3);
    let r = get(&app, &admin, &format!("{path}?status=lost")).await;
    api_error(&r, 400, "bad_request");
    let r = get(&app, &admin, &format!("{path}?cursor=bogus")).await;
    api_error(&r, 400, "bad_request");
    let r = get(&app, &admin, "/api/v1/webhooks/nope/deliveries").await;
    api_error(&r, 404, "not_found");

    // Groups: users with an account, and how many of them wait for review.
    let a = entra_group(&app, "Alpha").await;
    let b = entra_group(&app, "Beta").await;
    entra_add_members(&app, &a, &[&users[0], &users[1]]).await;
    entra_add_members(&app, &b, &[&users[2]]).await;
    let acc = account_of(&app, &admin, &users[2]).await;
    let r = approve(&app, &admin, acc["id"].as_str().unwrap()).await;
    ok(&r, 200);
    let r = get(&app, &admin, "/api/v1/groups?limit=1").await;
    let page1 = items(&r);
    assert_eq!(
        page1,
        [json!({"id": a, "displayName": "Alpha", "users": 2, "pending": 2})]
    );
    let next = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = get(
        &app,
        &admin,
        &format!("/api/v1/groups?limit=1&cursor={next}"),
    )
    .await;
    assert_eq!(
        items(&r),
        [json!({"id": b, "displayName": "Beta", "users": 1, "pending": 0})]
    );
    assert!(r.body["nextCursor"].is_null());
}

#[actix_web::test]
async fn the_openapi_document_describes_the_additions() {
    let (app, _db) = app().await;
    // No credential: the document is public.
    let r = get(&app, "", "/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = &r.body;
    for path in [
        "/api/v1/rules/preview",
        "/api/v1/removals/{id}/restore",
        "/api/v1/groups",
        "/api/v1/webhooks/{id}/deliveries",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
    // Every product event a subscription may name is in the document's event types.
    let types = doc["components"]["schemas"]["EventType"]["enum"]
        .as_array()
        .unwrap();
    for e in scimitar::product::PRODUCT_EVENTS {
        assert!(types.iter().any(|t| t == e), "{e} is not an EventType");
    }
    assert!(doc["components"]["securitySchemes"]["consoleSession"].is_object());
}

/// Reads of many rows by key run in batches of `ID_BATCH` keys per statement (the profiles of
/// a page of up to 1,000 accounts, their managers' names): every row comes back once, across
/// the batch boundaries, and keys of another tenant or none are left out.
#[test]
fn reads_by_key_cross_statement_batches() {
    use scimitar::scim::schema::Rtype;
    use scimitar::storage::index::Indexed;
    use scimitar::storage::resources::{self, ResourceWrite};
    use scimitar::storage::{StorageError, TenantId};

    let db = TestDb::new();
    let state = state(&args(&db));
    let mut conn = state.service.pool.get().unwrap();
    let tenant = TenantId::from("default");
    // 1,201 users: three statements of 500, 500 and 201 keys.
    let ids: Vec<String> = (0..1201).map(|i| format!("u-{i:04}")).collect();
    let indexed: Vec<Indexed> = ids
        .iter()
        .map(|id| Indexed {
            user_name: Some(format!("{id}@example.com")),
            ..Indexed::default()
        })
        .collect();
    let writes: Vec<ResourceWrite<'_>> = indexed
        .iter()
        .map(|ix| ResourceWrite {
            indexed: ix,
            doc: "{}",
            now: 1,
        })
        .collect();
    let items: Vec<(&str, &ResourceWrite<'_>)> =
        ids.iter().map(String::as_str).zip(&writes).collect();
    let pks = conn
        .write_tx(|d| resources::insert_many(d, &tenant, Rtype::User, &items))
        .map_err(|e: StorageError| e)
        .unwrap();

    let mut asked: Vec<i64> = pks.clone();
    asked.push(-1);
    let got = resources::by_pks(&mut conn.db(), &tenant, &asked).unwrap();
    assert_eq!(sorted(got.into_iter().map(|r| r.pk)), sorted(pks.clone()));

    let mut asked: Vec<String> = ids.clone();
    asked.push("no-such-user".into());
    let got = resources::users_by_id(&mut conn.db(), &tenant, &asked).unwrap();
    assert_eq!(sorted(got.into_iter().map(|r| r.id)), ids);

    // Another tenant's keys find nothing.
    let other = TenantId::from("other");
    assert!(resources::by_pks(&mut conn.db(), &other, &pks)
        .unwrap()
        .is_empty());
    assert!(resources::users_by_id(&mut conn.db(), &other, &ids)
        .unwrap()
        .is_empty());
}

/// The items in ascending order.
fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort_unstable();
    v
}
