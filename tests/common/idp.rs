//! What identity providers send: users and groups as Microsoft Entra ID and Okta create
//! them, their (de)activations, and the SCIM calls that carry them.

use serde_json::{json, Value};

use super::{call, events, patch_body, post_id, Resp, TestApp};

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The prefix of the SCIM provisioning events (RFC 9967).
pub const PROV: &str = "urn:ietf:params:scim:event:prov:";

/// A user as Microsoft Entra ID creates it (enterprise extension, externalId, work email).
pub fn entra_user(user_name: &str, department: &str, title: &str) -> Value {
    json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": uuid::Uuid::new_v4().to_string(),
        "userName": user_name,
        "active": true,
        "displayName": format!("{user_name} display"),
        "title": title,
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Given Family", "familyName": "Family", "givenName": "Given"},
        "roles": [],
        ENTERPRISE: {"department": department, "employeeNumber": "1701"}
    })
}

/// A user as Okta creates it.
pub fn okta_user(user_name: &str, department: &str, title: &str) -> Value {
    json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Given Family",
        "locale": "en-US",
        "externalId": format!("00u{}", uuid::Uuid::new_v4().simple()),
        "groups": [],
        "password": "1mz050nq",
        "active": true,
        "title": title,
        ENTERPRISE: {"department": department}
    })
}

/// Okta's deactivation (and reactivation): `replace` of `active` with a boolean.
pub fn okta_active(active: bool) -> Value {
    patch_body(json!([{"op": "replace", "path": "active", "value": active}]))
}

/// Entra's "Disable User" / "Enable User": `Replace` of `active` with the string form.
pub fn entra_active(active: bool) -> Value {
    let v = if active { "True" } else { "False" };
    patch_body(json!([{"op": "Replace", "path": "active", "value": v}]))
}

/// Creates a SCIM user (with the SCIM write token) and returns its id.
pub async fn scim_create<S: TestApp>(app: &S, body: Value) -> String {
    post_id(app, "/scim/v2/Users", body).await
}

pub async fn scim_patch<S: TestApp>(app: &S, path: &str, body: Value) -> Resp {
    let r = call(app, "PATCH", path, Some(body)).await;
    // Okta and Entra both get the resource back (or 204): either way a success.
    assert!(
        r.status.as_u16() == 200 || r.status.as_u16() == 204,
        "PATCH {path}: {} {}",
        r.status,
        r.raw
    );
    r
}

/// An Entra-style group: created empty, then members added with a PATCH `Add`.
pub async fn entra_group<S: TestApp>(app: &S, name: &str) -> String {
    post_id(
        app,
        "/scim/v2/Groups",
        json!({
            "schemas": [CORE_GROUP],
            "externalId": uuid::Uuid::new_v4().to_string(),
            "displayName": name,
            "meta": {"resourceType": "Group"}
        }),
    )
    .await
}

pub async fn entra_add_members<S: TestApp>(app: &S, group: &str, members: &[&str]) {
    let value: Vec<Value> = members
        .iter()
        .map(|m| json!({"$ref": null, "value": m}))
        .collect();
    scim_patch(
        app,
        &format!("/scim/v2/Groups/{group}"),
        patch_body(json!([{"op": "Add", "path": "members", "value": value}])),
    )
    .await;
}

/// A fixture as JSON, with the documentation's ids swapped for this run's.
pub fn fixture(text: &str, ids: &[(&str, &str)]) -> Value {
    let mut s = text.to_string();
    for (from, to) in ids {
        s = s.replace(from, to);
    }
    serde_json::from_str(&s).expect("fixture is JSON")
}

/// Replays a documented request: `method path` with the fixture `request` (its ids swapped
/// for this run's, as `fixture` does) as the body, with the test token.
pub async fn replay<S: TestApp>(
    app: &S,
    method: &str,
    path: &str,
    request: &str,
    ids: &[(&str, &str)],
) -> Resp {
    call(app, method, path, Some(fixture(request, ids))).await
}

/// Server-assigned values a documented response cannot predict: never compared.
const SERVER_ASSIGNED: &[&str] = &[
    "/id",
    "/meta/created",
    "/meta/lastModified",
    "/meta/location",
    "/meta/version",
];

/// `assert_like` of a documented response: `response` is the text of its fixture.
#[track_caller]
pub fn assert_documented(got: &Resp, status: u16, response: &str, skip: &[&str]) {
    assert_like(got, status, &fixture(response, &[]), skip);
}

/// Asserts that `got` answers as the vendor documents (`documented`): the status, and
/// every attribute of the documented body (`schemas` included) equal at the same place, except the server's
/// ids and timestamps (`SERVER_ASSIGNED`, also inside `Resources`) and the JSON pointers in
/// `skip`, each of which the caller justifies. A documented `null` or `[]` means
/// unassigned (RFC 7643 §2.5): absent, null or empty in `got` too. Attributes `got` has
/// beyond the documented ones (`meta.version`, `$ref`, ...) are not compared.
#[track_caller]
pub fn assert_like(got: &Resp, status: u16, documented: &Value, skip: &[&str]) {
    got.expect(status);
    let mut errors = Vec::new();
    walk(
        Some(&got.body),
        documented,
        String::new(),
        skip,
        &mut errors,
    );
    assert!(
        errors.is_empty(),
        "differs from the documented response:\n  {}\ngot: {}",
        errors.join("\n  "),
        got.raw
    );
}

fn walk(got: Option<&Value>, doc: &Value, ptr: String, skip: &[&str], errors: &mut Vec<String>) {
    // Server-assigned values are skipped at the top level and in every listed resource.
    let in_list = ptr
        .strip_prefix("/Resources/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, inner)| format!("/{inner}"));
    let assigned = SERVER_ASSIGNED.contains(&ptr.as_str())
        || in_list.is_some_and(|p| SERVER_ASSIGNED.contains(&p.as_str()));
    if assigned || skip.contains(&ptr.as_str()) {
        return;
    }
    let unassigned = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match (doc, got) {
        (d, g) if unassigned(d) => {
            if !g.is_none_or(unassigned) {
                errors.push(format!(
                    "{ptr}: documented unassigned, got {}",
                    g.unwrap_or(&Value::Null)
                ));
            }
        }
        (Value::Object(d), Some(Value::Object(g))) => {
            for (k, v) in d {
                walk(g.get(k), v, format!("{ptr}/{k}"), skip, errors);
            }
        }
        (Value::Array(d), Some(Value::Array(g))) if d.len() == g.len() => {
            for (i, v) in d.iter().enumerate() {
                walk(g.get(i), v, format!("{ptr}/{i}"), skip, errors);
            }
        }
        (d, g) if g == Some(d) => {}
        (d, g) => errors.push(format!(
            "{ptr}: documented {d}, got {}",
            g.map(Value::to_string).unwrap_or_else(|| "nothing".into())
        )),
    }
}

/// The kinds of the events recorded for one resource, oldest first.
pub fn kinds(state: &actix_web::web::Data<scimitar::http::AppState>, id: &str) -> Vec<String> {
    events(state)
        .into_iter()
        .filter(|(r, _)| r == id)
        .map(|(_, k)| k)
        .collect()
}
