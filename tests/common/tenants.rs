//! Tenants and their credentials, and the plain SCIM bodies and list reading the tenancy
//! stories share.

use actix_web::web;
use serde_json::{json, Value};

use scimitar::auth::Scope;
use scimitar::http::AppState;
use scimitar::provisioning::tenancy as admin;
use scimitar::storage;

use super::{Resp, TestApp};

/// Creates a tenant and a token for it (through the admin operations the CLI uses).
pub fn tenant_with_token(state: &web::Data<AppState>, name: &str, scope: Scope) -> String {
    let mut conn = state.service.pool.get().unwrap();
    if storage::tenancy::find_tenant(&mut conn.db(), &name.into())
        .unwrap()
        .is_none()
    {
        admin::create_tenant(&mut conn, name).unwrap();
    }
    let (_, token, _) = admin::create_token(&mut conn, name, Some("test"), scope, None).unwrap();
    token
}

/// `tenant_with_token` of two tenants, each with a write token: (`a`'s, `b`'s).
pub fn two_tenants(state: &web::Data<AppState>, a: &str, b: &str) -> (String, String) {
    (
        tenant_with_token(state, a, Scope::Write),
        tenant_with_token(state, b, Scope::Write),
    )
}

pub fn user(name: &str, external_id: &str, email: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": external_id,
        "displayName": format!("{name} ({external_id})"),
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true
    })
}

pub fn group(name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members
    })
}

/// The ids of a ListResponse.
pub fn ids(r: &Resp) -> Vec<String> {
    r.body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The string `field` of every element of the array `list`, in order; panics when `list`
/// is not an array or an element has no such string.
pub fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|x| {
            x[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field} in {x}"))
        })
        .collect()
}

/// `/scim/v2/{endpoint}?filter=...`, the filter percent-encoded.
pub fn filter_uri(endpoint: &str, filter: &str) -> String {
    format!("/scim/v2/{endpoint}?filter={}", urlencode(filter))
}

/// The `totalResults` of a list GET of `uri` (with the test token), which must be 200.
pub async fn total<S: TestApp>(app: &S, uri: &str) -> Value {
    let r = super::get(app, super::TOKEN, uri).await;
    r.expect(200);
    r.body["totalResults"].clone()
}

/// `total` of `endpoint` filtered by `filter`.
pub async fn matching<S: TestApp>(app: &S, endpoint: &str, filter: &str) -> Value {
    total(app, &filter_uri(endpoint, filter)).await
}

/// `s` percent-encoded for a query string.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// POSTs `user(name, external_id, email)` to `/scim/v2/Users` as `token`.
pub async fn post_user<S: TestApp>(
    app: &S,
    token: &str,
    name: &str,
    external_id: &str,
    email: &str,
) -> Resp {
    super::post(
        app,
        token,
        "/scim/v2/Users",
        Some(user(name, external_id, email)),
    )
    .await
}
