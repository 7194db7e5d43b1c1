//! `/api/v1` as the tests call it: its success and error shapes, and the steps many stories
//! share (roles, rules, the policy, subscriptions, accounts, the feed).

use serde_json::{json, Value};

use super::{get, post, put, scim_create, Resp, TestApp, ENTERPRISE};

/// Asserts a success of `/api/v1`: the status and, with a body, `application/json`.
#[track_caller]
pub fn ok(r: &Resp, status: u16) -> &Value {
    assert_eq!(
        r.status.as_u16(),
        status,
        "unexpected status; body: {}",
        r.raw
    );
    if !r.raw.is_empty() {
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "body: {}",
            r.raw
        );
    }
    &r.body
}

/// Asserts an error of `/api/v1`: `{"status", "error", "detail"}` as application/json.
#[track_caller]
pub fn api_error(r: &Resp, status: u16, code: &str) -> String {
    assert_eq!(
        r.status.as_u16(),
        status,
        "unexpected status; body: {}",
        r.raw
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "body: {}",
        r.raw
    );
    assert_eq!(r.body["status"], json!(status), "body: {}", r.raw);
    assert_eq!(r.body["error"], code, "body: {}", r.raw);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty(), "no detail: {}", r.raw);
    detail.to_string()
}

/// The items of a list answer.
#[track_caller]
pub fn items(r: &Resp) -> Vec<Value> {
    ok(r, 200);
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.raw))
        .clone()
}

/// POSTs the `/api/v1` action at `path` (approve, reject, restore, replay: no body).
pub async fn action<S: TestApp>(app: &S, admin: &str, path: &str) -> Resp {
    post(app, admin, path, None).await
}

/// Approves the candidate `account` (`POST /api/v1/candidates/{account}/approve`).
pub async fn approve<S: TestApp>(app: &S, admin: &str, account: &str) -> Resp {
    action(app, admin, &format!("/api/v1/candidates/{account}/approve")).await
}

/// Rejects the candidate `account` (`POST /api/v1/candidates/{account}/reject`).
pub async fn reject<S: TestApp>(app: &S, admin: &str, account: &str) -> Resp {
    action(app, admin, &format!("/api/v1/candidates/{account}/reject")).await
}

/// The account of a SCIM user (looked up in `GET /api/v1/accounts`).
pub async fn account_of<S: TestApp>(app: &S, admin: &str, scim_id: &str) -> Value {
    let r = get(app, admin, "/api/v1/accounts?limit=1000").await;
    let found = items(&r)
        .into_iter()
        .find(|a| a["scimId"] == scim_id)
        .unwrap_or_else(|| panic!("no account for user {scim_id}: {}", r.raw));
    // The same through the single-account endpoint (which adds the whole SCIM `user`).
    let id = found["id"].as_str().unwrap().to_string();
    let one = get(app, admin, &format!("/api/v1/accounts/{id}")).await;
    let mut one = ok(&one, 200).clone();
    assert!(one.as_object_mut().unwrap().remove("user").is_some());
    assert_eq!(one, found);
    found
}

/// The id of a SCIM user's account.
pub async fn account_id<S: TestApp>(app: &S, admin: &str, scim_id: &str) -> String {
    let account = account_of(app, admin, scim_id).await;
    account["id"].as_str().expect("account id").to_string()
}

/// Creates each of `users` through SCIM (`scim_create`), in order; their ids.
pub async fn scim_create_all<S: TestApp>(
    app: &S,
    users: impl IntoIterator<Item = Value>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for u in users {
        ids.push(scim_create(app, u).await);
    }
    ids
}

pub async fn get_account<S: TestApp>(app: &S, admin: &str, id: &str) -> Value {
    let r = get(app, admin, &format!("/api/v1/accounts/{id}")).await;
    // As the other account answers, without the SCIM `user` only this one adds.
    let mut one = ok(&r, 200).clone();
    assert!(one.as_object_mut().unwrap().remove("user").is_some());
    one
}

/// A webhook's dead letters (the first page).
pub async fn dead_letters<S: TestApp>(app: &S, admin: &str, hook: &str) -> Vec<Value> {
    let r = get(app, admin, &format!("/api/v1/webhooks/{hook}/dead-letters")).await;
    items(&r)
}

/// Every event of the feed (from seq 1).
pub async fn feed<S: TestApp>(app: &S, admin: &str) -> Vec<Value> {
    let r = get(app, admin, "/api/v1/events?limit=1000").await;
    items(&r)
}

pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub async fn create_role<S: TestApp>(app: &S, admin: &str, name: &str, ents: Value) -> String {
    let r = post(
        app,
        admin,
        "/api/v1/roles",
        Some(json!({"name": name, "entitlements": ents})),
    )
    .await;
    let body = ok(&r, 201);
    assert_eq!(body["name"], name);
    assert_eq!(body["entitlements"], ents);
    body["id"].as_str().expect("role id").to_string()
}

/// `create_role` of a card role: a monthly limit and whether the card is enabled.
pub async fn card_role<S: TestApp>(
    app: &S,
    admin: &str,
    name: &str,
    monthly_limit: i64,
    enabled: bool,
) -> String {
    let ents = json!({"card.monthly_limit": monthly_limit, "card.enabled": enabled});
    create_role(app, admin, name, ents).await
}

pub async fn create_rule<S: TestApp>(app: &S, admin: &str, rule: Value) -> String {
    let r = post(app, admin, "/api/v1/rules", Some(rule.clone())).await;
    let body = ok(&r, 201);
    for (k, v) in rule.as_object().unwrap() {
        assert_eq!(&body[k], v, "rule attribute {k}: {}", r.raw);
    }
    body["id"].as_str().expect("rule id").to_string()
}

/// `create_rule` of a rule granting `role` to the users `filter` matches.
pub async fn filter_rule<S: TestApp>(app: &S, admin: &str, role: &str, filter: &str) -> String {
    create_rule(app, admin, json!({"role": role, "filter": filter})).await
}

/// A SCIM filter of the users in `department` (the enterprise extension's attribute).
pub fn in_department(department: &str) -> String {
    format!("{ENTERPRISE}:department eq \"{department}\"")
}

pub async fn put_policy<S: TestApp>(
    app: &S,
    admin: &str,
    provisioning: &str,
    deprovisioning: &str,
) {
    let policy = json!({"provisioning": provisioning, "deprovisioning": deprovisioning});
    let r = put(app, admin, "/api/v1/policy", policy.clone()).await;
    assert_eq!(ok(&r, 200), &policy);
    let r = get(app, admin, "/api/v1/policy").await;
    assert_eq!(ok(&r, 200), &policy);
}

/// Subscribes `url` to `events`; returns (subscription id, secret).
pub async fn subscribe<S: TestApp>(
    app: &S,
    admin: &str,
    url: &str,
    events: &[&str],
    secret: Option<&str>,
) -> (String, String) {
    let mut body = json!({"url": url, "events": events});
    if let Some(s) = secret {
        body["secret"] = json!(s);
    }
    let r = post(app, admin, "/api/v1/webhooks", Some(body)).await;
    let b = ok(&r, 201);
    assert_eq!(b["url"], url);
    assert_eq!(b["events"], json!(events));
    let secret_out = b["secret"].as_str().expect("secret shown once").to_string();
    assert!(secret_out.starts_with("whsec_"), "secret {secret_out}");
    if let Some(s) = secret {
        assert_eq!(secret_out, s);
    }
    let id = b["id"].as_str().expect("webhook id").to_string();
    // Never shown again.
    let r = get(app, admin, &format!("/api/v1/webhooks/{id}")).await;
    assert!(ok(&r, 200).get("secret").is_none(), "{}", r.raw);
    let r = get(app, admin, "/api/v1/webhooks").await;
    let listed = items(&r);
    assert!(listed.iter().any(|w| w["id"] == id.as_str()));
    assert!(
        listed.iter().all(|w| w.get("secret").is_none()),
        "{}",
        r.raw
    );
    (id, secret_out)
}
