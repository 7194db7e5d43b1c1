//! Issue 11 through HTTP, on whichever backend the suite runs on: Entra ID's group create
//! (an undeclared schema URI), a negative `count`, filters on `schemas`, PATCH `remove` of a
//! required attribute, PATCH through a value filter that matches nothing, and every
//! client-dialect tolerance of `scim::compat` switched off by `--strict`, by a tenant's
//! `strict` dialect and by the tenant setting of that one tolerance. Every refused request
//! is followed by the proof that it changed nothing: the tenant's resources (with their
//! versions) and its feed are as before.

use serde_json::{json, Value};

use scimitar::auth::Scope;
use scimitar::provisioning::tenancy as admin;
use scimitar::scim::compat::Compat;

use crate::common::*;

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ADSCIM_GROUP: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
fixtures! {
    /// The tutorial's Create Group, verbatim (tests/fixtures/entra/create_group.json).
    ENTRA_CREATE_GROUP = "entra/create_group.json",
}

/// A tenant and its credential.
#[derive(Clone)]
struct Tenant {
    name: String,
    token: String,
}

impl Tenant {
    /// The default tenant, through the bootstrap token.
    fn default_tenant() -> Tenant {
        Tenant {
            name: "default".into(),
            token: TOKEN.into(),
        }
    }

    fn new(state: &actix_web::web::Data<scimitar::http::AppState>, name: &str) -> Tenant {
        Tenant {
            name: name.into(),
            token: tenant_with_token(state, name, Scope::Write),
        }
    }
}

/// Everything a tenant holds and has recorded: its users and groups as listed (ids,
/// attributes, versions) and its feed.
async fn holdings<S: TestApp>(
    app: &S,
    state: &actix_web::web::Data<scimitar::http::AppState>,
    t: &Tenant,
) -> (Value, Value, Vec<(String, String)>) {
    let users = get(app, &t.token, "/scim/v2/Users?count=1000").await;
    let groups = get(app, &t.token, "/scim/v2/Groups?count=1000").await;
    users.expect(200);
    groups.expect(200);
    (users.body, groups.body, scim_events(state, &t.name))
}

/// The app, its state, and the tenant requests are sent as.
struct On<'a, S> {
    app: &'a S,
    state: &'a actix_web::web::Data<scimitar::http::AppState>,
    t: Tenant,
}

impl<'a, S: TestApp> On<'a, S> {
    fn new(
        app: &'a S,
        state: &'a actix_web::web::Data<scimitar::http::AppState>,
        t: Tenant,
    ) -> Self {
        On { app, state, t }
    }

    /// Sends `(method, uri, body)`, which must be refused with 400 and `scim_type` (a
    /// failure names `why`), and asserts that it changed nothing the tenant holds; returns
    /// the refusal's detail.
    async fn refused(
        &self,
        (method, uri, body): (&str, &str, Option<Value>),
        scim_type: &str,
        why: &str,
    ) -> String {
        let (app, state, t) = (self.app, self.state, &self.t);
        let before = holdings(app, state, t).await;
        let r = request(app, &t.token, method, uri, body).await;
        assert_eq!(r.status.as_u16(), 400, "{why}: {}", r.raw);
        r.expect_error(400, Some(scim_type));
        assert_eq!(
            holdings(app, state, t).await,
            before,
            "{why}: something changed"
        );
        r.body["detail"].as_str().expect("detail").to_string()
    }
}

/// POSTs a SearchRequest with `filter` to `path` (an endpoint's `.search` or the root's).
async fn search<S: TestApp>(app: &S, path: &str, filter: &str) -> Resp {
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                      "filter": filter});
    call(app, "POST", path, Some(body)).await
}

fn ids(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> = crate::common::ids(r);
    v.sort();
    v
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn filtered(endpoint: &str, filter: &str) -> String {
    format!(
        "/scim/v2/{endpoint}?count=1000&filter={}",
        urlencode(filter)
    )
}

fn entra_group() -> Value {
    serde_json::from_str(ENTRA_CREATE_GROUP).expect("fixture")
}

// ---------------------------------------------------------------------------------------
// 1. Entra ID's group create.

#[actix_web::test]
async fn entra_group_create_is_201_and_the_undeclared_uri_is_never_echoed() {
    let (_db, app, state) = app_state().await;
    let r = call(&app, "POST", "/scim/v2/Groups", Some(entra_group())).await;
    r.expect(201);
    assert_eq!(r.body["schemas"], json!([CORE_GROUP]));
    assert_eq!(r.body["displayName"], "displayName");
    assert_eq!(r.body["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    let path = format!("/scim/v2/Groups/{}", id_of(&r));
    // Read back every way: by id, in a list, by filter, by .search at the root.
    let got = get(&app, TOKEN, &path).await;
    assert_eq!(got.body["schemas"], json!([CORE_GROUP]));
    assert_eq!(got.body, r.body);
    let list = get(&app, TOKEN, "/scim/v2/Groups").await;
    assert_eq!(list.body["Resources"][0]["schemas"], json!([CORE_GROUP]));
    let found = search(&app, "/scim/v2/.search", "displayName eq \"displayName\"").await;
    assert_eq!(found.body["Resources"][0]["schemas"], json!([CORE_GROUP]));
    for body in [&r.raw, &got.raw, &list.raw, &found.raw] {
        assert!(!body.contains(ADSCIM_GROUP), "echoed: {body}");
    }
    // Nothing to find by it either: it is not one of the group's schemas.
    let by_uri = format!("schemas eq \"{ADSCIM_GROUP}\"");
    assert_eq!(total(&app, &filtered("Groups", &by_uri)).await, 0);
    // A PUT carrying it is accepted the same way.
    let put = call(&app, "PUT", &path, Some(entra_group())).await;
    put.expect(200);
    assert_eq!(put.body["schemas"], json!([CORE_GROUP]));

    // A user whose `schemas` lists the enterprise extension and an Okta custom-profile URN
    // that carries nothing: the URN is ignored; the extension is listed only while the user
    // carries its attributes.
    let okta = "urn:okta:onprem_app:1.0:user:custom";
    for (body, schemas) in [
        (
            json!({"schemas": [CORE_USER, ENTERPRISE, okta], "userName": "a@example.com",
                    ENTERPRISE: {"department": "Tour"}}),
            json!([CORE_USER, ENTERPRISE]),
        ),
        (
            json!({"schemas": [CORE_USER, ENTERPRISE, okta], "userName": "b@example.com",
                   okta: {}}),
            json!([CORE_USER]),
        ),
    ] {
        let r = call(&app, "POST", "/scim/v2/Users", Some(body)).await;
        r.expect(201);
        assert_eq!(r.body["schemas"], schemas, "{}", r.raw);
    }

    // An undeclared URI that carries attributes is refused, lenient or not.
    let on = On::new(&app, &state, Tenant::default_tenant());
    let body = json!({"schemas": [CORE_USER, okta], "userName": "c@example.com",
                      okta: {"isAdmin": true}});
    let why = "an undeclared URI with attributes";
    let detail = on
        .refused(("POST", "/scim/v2/Users", Some(body)), "invalidValue", why)
        .await;
    assert!(detail.contains(okta), "{detail}");
}

#[actix_web::test]
async fn entra_group_create_is_refused_when_strict_and_changes_nothing() {
    // `--strict`: 400 naming the URI, nothing created.
    let (_db, app, state) = app_where(|a| a.strict = true).await;
    let on = On::new(&app, &state, Tenant::default_tenant());
    let create = || ("POST", "/scim/v2/Groups", Some(entra_group()));
    let detail = on.refused(create(), "invalidValue", "strict server").await;
    assert!(
        detail.contains(ADSCIM_GROUP) && detail.contains("ignore_undeclared_schemas"),
        "{detail}"
    );
    // A tenant set lenient on the strict server is served leniently.
    let lenient = Tenant::new(&state, "lenient");
    let mut conn = state.service.pool.get().unwrap();
    admin::update_settings(&mut conn, "lenient", |s| {
        s.set_all(true);
        Ok(())
    })
    .unwrap();
    let r = post(&app, &lenient.token, "/scim/v2/Groups", Some(entra_group())).await;
    r.expect(201);
    assert_eq!(r.body["schemas"], json!([CORE_GROUP]));
    // And the default tenant still refuses; the lenient tenant's group is not visible to it.
    let why = "strict server, default tenant";
    let detail = on.refused(create(), "invalidValue", why).await;
    assert!(detail.contains(ADSCIM_GROUP), "{detail}");
}

// ---------------------------------------------------------------------------------------
// 2. A negative count.

#[actix_web::test]
async fn a_negative_count_is_read_as_zero() {
    for strict in [false, true] {
        let (_db, app, _) = app_where(|a| a.strict = strict).await;
        for n in ["a", "b", "c"] {
            create_user(&app, &format!("{n}@example.com")).await;
        }
        let zero = get(&app, TOKEN, "/scim/v2/Users?count=0").await;
        zero.expect(200);
        assert_eq!(zero.body["totalResults"], 3);
        assert_eq!(zero.body["itemsPerPage"], 0);
        for count in ["-1", "-100", "-9223372036854775808"] {
            let r = get(&app, TOKEN, &format!("/scim/v2/Users?count={count}")).await;
            assert_eq!(r.status.as_u16(), 200, "count={count}: {}", r.raw);
            assert_eq!(r.body, zero.body, "count={count} answers as count=0");
            let f = get(
                &app,
                TOKEN,
                &format!(
                    "/scim/v2/Users?count={count}&filter={}",
                    urlencode("userName sw \"a\"")
                ),
            )
            .await;
            assert_eq!(f.body["totalResults"], 1);
            assert_eq!(f.body["itemsPerPage"], 0);
        }
        let search = |count: i64| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": count});
        let s0 = call(&app, "POST", "/scim/v2/Users/.search", Some(search(0))).await;
        let s = call(&app, "POST", "/scim/v2/Users/.search", Some(search(-5))).await;
        s.expect(200);
        assert_eq!(s.body, s0.body);
        let root = call(&app, "POST", "/scim/v2/.search", Some(search(-5))).await;
        root.expect(200);
        assert_eq!(root.body["itemsPerPage"], 0);
        assert_eq!(root.body["totalResults"], 3);
        // Cursor paging: an empty first page, as for count=0.
        let c = get(&app, TOKEN, "/scim/v2/Users?cursor=&count=-1").await;
        c.expect(200);
        assert_eq!(c.body["itemsPerPage"], 0);
        let c0 = get(&app, TOKEN, "/scim/v2/Users?cursor=&count=0").await;
        assert_eq!(c.body, c0.body);
        // Still an integer, though.
        get(&app, TOKEN, "/scim/v2/Users?count=-x")
            .await
            .expect_error(400, Some("invalidValue"));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Filters on `schemas`.

#[actix_web::test]
async fn filters_on_schemas_in_sql() {
    let (_db, app, _) = app_state().await;
    // ext: carries enterprise attributes; plain: does not; listed: lists the extension in
    // `schemas` but carries none of its attributes (so its `schemas` is the core one only).
    let ext = post_id(
        &app,
        "/scim/v2/Users",
        json!({"schemas": [CORE_USER, ENTERPRISE], "userName": "ext@example.com",
               ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "m"}}}),
    )
    .await;
    let plain = post_id(
        &app,
        "/scim/v2/Users",
        json!({"schemas": [CORE_USER], "userName": "plain@example.com"}),
    )
    .await;
    let listed = post_id(
        &app,
        "/scim/v2/Users",
        json!({"schemas": [CORE_USER, ENTERPRISE], "userName": "listed@example.com"}),
    )
    .await;
    // Only a complex enterprise attribute: found through its marker row.
    let manager_only = post_id(
        &app,
        "/scim/v2/Users",
        json!({"schemas": [CORE_USER, ENTERPRISE], "userName": "mgr@example.com",
               ENTERPRISE: {"manager": {"value": "m"}}}),
    )
    .await;
    let group = create_group(&app, "g", &[&ext]).await;
    let all = sorted(&[&ext, &plain, &listed, &manager_only]);
    let with_ext = sorted(&[&ext, &manager_only]);
    let without = sorted(&[&plain, &listed]);
    let users = |f: &str| filtered("Users", f);
    let cases: Vec<(String, Vec<String>)> = vec![
        (format!("schemas eq \"{ENTERPRISE}\""), with_ext.clone()),
        (format!("schemas eq \"{CORE_USER}\""), all.clone()),
        (format!("schemas ne \"{ENTERPRISE}\""), without.clone()),
        (format!("schemas ne \"{CORE_USER}\""), vec![]),
        (
            format!("not (schemas eq \"{ENTERPRISE}\")"),
            without.clone(),
        ),
        ("schemas co \"enterprise\"".into(), with_ext.clone()),
        ("schemas co \"core\"".into(), all.clone()),
        (
            "schemas sw \"urn:ietf:params:scim:schemas:extension:\"".into(),
            with_ext.clone(),
        ),
        (
            "schemas sw \"urn:ietf:params:scim:schemas:\"".into(),
            all.clone(),
        ),
        ("schemas ew \":User\"".into(), all.clone()),
        (
            "schemas ew \"enterprise:2.0:User\"".into(),
            with_ext.clone(),
        ),
        ("schemas ew \"2.0:Group\"".into(), vec![]),
        ("schemas pr".into(), all.clone()),
        ("not (schemas pr)".into(), vec![]),
        ("schemas eq null".into(), vec![]),
        // Case-exact (RFC 7643 §3: schemas is caseExact).
        (
            format!("schemas eq \"{}\"", ENTERPRISE.to_uppercase()),
            vec![],
        ),
        ("schemas co \"ENTERPRISE\"".into(), vec![]),
        // Combined with other attributes, and qualified by the core schema as any common
        // attribute may be.
        (
            format!("schemas eq \"{ENTERPRISE}\" and userName sw \"mgr\""),
            vec![manager_only.clone()],
        ),
        (
            format!("schemas eq \"{ENTERPRISE}\" or userName eq \"plain@example.com\""),
            sorted(&[&ext, &manager_only, &plain]),
        ),
        (
            format!("{CORE_USER}:schemas eq \"{ENTERPRISE}\""),
            with_ext.clone(),
        ),
        (
            format!("SCHEMAS EQ \"{ENTERPRISE}\" and groups.value eq \"{group}\""),
            vec![ext.clone()],
        ),
    ];
    // Groups: their core schema, never the User extension.
    let groups = [
        (format!("schemas eq \"{CORE_GROUP}\""), vec![group.clone()]),
        (format!("schemas eq \"{ENTERPRISE}\""), vec![]),
    ];
    let users_then_groups = (cases.iter().map(|(f, w)| ("Users", f, w)))
        .chain(groups.iter().map(|(f, w)| ("Groups", f, w)));
    for (endpoint, filter, want) in users_then_groups {
        let r = get_ok(&app, &filtered(endpoint, filter)).await;
        assert_eq!(ids(&r), *want, "{endpoint} filter {filter}");
        assert_eq!(
            r.body["totalResults"],
            want.len(),
            "{endpoint} filter {filter}"
        );
    }
    // Every matching user lists the extension when read, and no other does.
    for r in get(&app, TOKEN, "/scim/v2/Users?count=1000").await.body["Resources"]
        .as_array()
        .unwrap()
    {
        let lists = r["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE));
        assert_eq!(
            lists,
            with_ext.contains(&r["id"].as_str().unwrap().to_string()),
            "{r}"
        );
    }
    // Cursor pages and .search answer the same; at the root, a way to ask for one type.
    let enterprise = format!("schemas eq \"{ENTERPRISE}\"");
    let c = get(&app, TOKEN, &format!("{}&cursor=", users(&enterprise))).await;
    assert_eq!(ids(&c), with_ext);
    let everything = sorted(&[&ext, &plain, &listed, &manager_only, &group]);
    for (path, filter, want) in [
        ("/scim/v2/Users/.search", enterprise.clone(), &with_ext),
        ("/scim/v2/.search", groups[0].0.clone(), &groups[0].1),
        (
            "/scim/v2/.search",
            "schemas ew \":User\" or schemas ew \":Group\"".into(),
            &everything,
        ),
    ] {
        let r = search(&app, path, &filter).await;
        r.expect(200);
        assert_eq!(ids(&r), *want, "{path} {filter}");
        assert_eq!(r.body["totalResults"], want.len(), "{path} {filter}");
    }

    // The derived value follows every write: the extension removed by PATCH, added by PUT.
    patch(
        &app,
        &format!("/scim/v2/Users/{ext}"),
        json!([{"op": "remove", "path": ENTERPRISE}]),
    )
    .await
    .expect(200);
    let with_department = json!({"schemas": [CORE_USER, ENTERPRISE],
                                 "userName": "plain@example.com",
                                 ENTERPRISE: {"department": "R&D"}});
    let plain_path = format!("/scim/v2/Users/{plain}");
    let r = call(&app, "PUT", &plain_path, Some(with_department)).await;
    r.expect(200);
    let r = get(&app, TOKEN, &users(&enterprise)).await;
    assert_eq!(ids(&r), sorted(&[&plain, &manager_only]));

    // What cannot be asked.
    for (uri, scim_type) in [
        (users("schemas eq 5"), "invalidFilter"),
        (users("schemas eq true"), "invalidFilter"),
        (users("schemas.value eq \"x\""), "invalidFilter"),
        (users("schemas[value eq \"x\"]"), "invalidFilter"),
        (users("emails[schemas eq \"x\"]"), "invalidFilter"),
        ("/scim/v2/Users?sortBy=schemas".to_string(), "invalidValue"),
    ] {
        let r = get(&app, TOKEN, &uri).await;
        r.expect_error(400, Some(scim_type));
    }
}

// ---------------------------------------------------------------------------------------
// 4. PATCH remove of a required attribute.

#[actix_web::test]
async fn removing_a_required_attribute_is_mutability_and_changes_nothing() {
    for strict in [false, true] {
        let (_db, app, state) = app_where(|a| a.strict = strict).await;
        let on = On::new(&app, &state, Tenant::default_tenant());
        let user = create_user(&app, "bjensen@example.com").await;
        let group = create_group(&app, "Tour Guides", &[&user]).await;
        let cases = [
            (
                format!("/scim/v2/Users/{user}"),
                json!([{"op": "remove", "path": "userName"}]),
            ),
            (
                format!("/scim/v2/Users/{user}"),
                json!([{"op": "replace", "path": "title", "value": "x"},
                       {"op": "remove", "path": "userName"}]),
            ),
            (
                format!("/scim/v2/Users/{user}"),
                json!([{"op": "replace", "value": {"userName": null}}]),
            ),
            (
                format!("/scim/v2/Groups/{group}"),
                json!([{"op": "remove", "path": "displayName"}]),
            ),
            (
                format!("/scim/v2/Groups/{group}"),
                json!([{"op": "replace", "value": {"displayName": null}}]),
            ),
        ];
        for (path, ops) in cases {
            let why = format!("strict={strict} {ops}");
            let sent = ("PATCH", path.as_str(), Some(patch_body(ops)));
            let detail = on.refused(sent, "mutability", &why).await;
            assert!(detail.contains("is required"), "{detail}");
        }
        // Removing an optional attribute still works.
        patch(
            &app,
            &format!("/scim/v2/Users/{user}"),
            json!([{"op": "remove", "path": "displayName"}]),
        )
        .await
        .expect(200);
    }
}

// ---------------------------------------------------------------------------------------
// 5. PATCH through a value filter that matches nothing.

/// Creates jyoung, with a home email only; returns the user's path.
async fn create_jyoung<S: TestApp>(app: &S) -> String {
    let id = post_id(
        app,
        "/scim/v2/Users",
        json!({"schemas": [CORE_USER], "userName": "jyoung@example.com",
               "emails": [{"value": "joy@home.example", "type": "home"}]}),
    )
    .await;
    format!("/scim/v2/Users/{id}")
}

#[actix_web::test]
async fn a_value_filter_that_matches_nothing_is_no_target() {
    let (_db, app, state) = app_state().await;
    let on = On::new(&app, &state, Tenant::default_tenant());
    let path = create_jyoung(&app).await;
    for (path_expr, value) in [
        (
            "emails[type eq \"nosuchtype\"].value",
            json!("x@example.com"),
        ),
        (
            "emails[value eq \"nobody@example.com\"].primary",
            json!(true),
        ),
        (
            "emails[type eq \"work\" or type eq \"other\"].value",
            json!("x@example.com"),
        ),
        (
            "emails[type eq \"nosuchtype\"]",
            json!({"value": "x@example.com"}),
        ),
        ("entitlements[type eq \"work\"].value", json!("x")),
    ] {
        let ops = json!([{"op": "replace", "path": path_expr, "value": value}]);
        let sent = ("PATCH", path.as_str(), Some(patch_body(ops)));
        let detail = on.refused(sent, "noTarget", path_expr).await;
        assert!(detail.contains("matches the filter"), "{detail}");
    }
    // The Entra ID tolerance: a canonical type creates the value; it exists then, so the
    // same request replaces it.
    let home = json!({"value": "joy@home.example", "type": "home"});
    for (op, work) in [
        ("Replace", "joy@work.example"),
        ("replace", "young@work.example"),
    ] {
        let ops = json!([{"op": op, "path": "emails[type eq \"work\"].value", "value": work}]);
        let r = patch(&app, &path, ops).await;
        r.expect(200);
        let want = json!([home, {"type": "work", "value": work}]);
        assert_eq!(r.body["emails"], want, "{op} {work}");
    }
}

#[actix_web::test]
async fn a_value_filter_that_matches_nothing_is_always_no_target_when_strict() {
    let (_db, app, state) = app_where(|a| a.strict = true).await;
    let on = On::new(&app, &state, Tenant::default_tenant());
    let path = create_jyoung(&app).await;
    for path_expr in [
        "emails[type eq \"work\"].value",
        "phoneNumbers[type eq \"mobile\"].value",
        "emails[type eq \"nosuchtype\"].value",
    ] {
        for op in ["add", "replace"] {
            let ops = json!([{"op": op, "path": path_expr, "value": "x"}]);
            let sent = ("PATCH", path.as_str(), Some(patch_body(ops)));
            let why = format!("strict {op} {path_expr}");
            let detail = on.refused(sent, "noTarget", &why).await;
            assert!(detail.contains("matches the filter"), "{detail}");
        }
    }
    // The RFC way to add a work email works.
    patch(
        &app,
        &path,
        json!([{"op": "add", "path": "emails",
                                 "value": [{"type": "work", "value": "joy@work.example"}]}]),
    )
    .await
    .expect(200);
}

// ---------------------------------------------------------------------------------------
// 6. Every tolerance, off by `--strict`, by a tenant's strict dialect, and by its own name.

/// One tolerance: a request its client sends, accepted with the tolerance on, refused
/// (`scim_type`) with it off. `{user}` and `{group}` in the path and body are replaced by a
/// user (`u@example.com`, work email, member of the group) and a group (`g`) of the tenant.
struct Case {
    tolerance: &'static str,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    scim_type: &'static str,
}

fn cases() -> Vec<Case> {
    let patch = |ops: Value| Some(patch_body(ops));
    vec![
        Case {
            tolerance: "boolean_strings",
            method: "PATCH",
            path: "/scim/v2/Users/{user}",
            body: patch(json!([{"op": "replace", "path": "active", "value": "False"}])),
            scim_type: "invalidValue",
        },
        Case {
            tolerance: "op_case_insensitive",
            method: "PATCH",
            path: "/scim/v2/Users/{user}",
            body: patch(json!([{"op": "Replace", "path": "title", "value": "Tour Guide"}])),
            scim_type: "invalidSyntax",
        },
        Case {
            tolerance: "remove_members_by_value",
            method: "PATCH",
            path: "/scim/v2/Groups/{group}",
            body: patch(json!([{"op": "remove", "path": "members", "value": [{"value": "{user}"}]}])),
            scim_type: "invalidValue",
        },
        Case {
            tolerance: "dotted_keys",
            method: "PATCH",
            path: "/scim/v2/Users/{user}",
            body: patch(json!([{"op": "replace", "value": {"name.givenName": "Kkom"}}])),
            scim_type: "invalidValue",
        },
        Case {
            tolerance: "create_on_filtered_path",
            method: "PATCH",
            path: "/scim/v2/Users/{user}",
            body: patch(json!([{"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value",
                                "value": "+1 555 0100"}])),
            scim_type: "noTarget",
        },
        Case {
            tolerance: "ignore_read_only_in_patch",
            method: "PATCH",
            path: "/scim/v2/Groups/{group}",
            body: patch(json!([{"op": "replace", "value": {"id": "{group}", "displayName": "g2"}}])),
            scim_type: "mutability",
        },
        Case {
            tolerance: "complex_value_from_string",
            method: "PATCH",
            path: "/scim/v2/Users/{user}",
            body: patch(json!([{"op": "add", "path": format!("{ENTERPRISE}:manager"),
                                "value": "{user}"}])),
            scim_type: "invalidValue",
        },
        Case {
            tolerance: "ignore_undeclared_schemas",
            method: "POST",
            path: "/scim/v2/Groups",
            body: Some(entra_group()),
            scim_type: "invalidValue",
        },
        Case {
            tolerance: "filter_value_path_sub",
            method: "GET",
            path: "/scim/v2/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22u%40example.com%22",
            body: None,
            scim_type: "invalidFilter",
        },
        Case {
            tolerance: "schemas_optional",
            method: "POST",
            path: "/scim/v2/Users",
            body: Some(json!({"userName": "new@example.com"})),
            scim_type: "invalidValue",
        },
    ]
}

#[test]
fn every_tolerance_has_a_case() {
    let mut named: Vec<&str> = cases().iter().map(|c| c.tolerance).collect();
    named.sort();
    let mut all = Compat::NAMES.to_vec();
    all.sort();
    assert_eq!(named, all);
}

/// Replaces `{user}` and `{group}` in a request.
fn fill(text: &str, user: &str, group: &str) -> String {
    text.replace("{user}", user).replace("{group}", group)
}

async fn setup<S: TestApp>(app: &S, t: &Tenant) -> (String, String) {
    let u = post(
        app,
        &t.token,
        "/scim/v2/Users",
        Some(json!({"schemas": [CORE_USER], "userName": "u@example.com",
                    "emails": [{"value": "u@example.com", "type": "work"}]})),
    )
    .await;
    u.expect(201);
    let user = u.body["id"].as_str().unwrap().to_string();
    let g = post(
        app,
        &t.token,
        "/scim/v2/Groups",
        Some(json!({"schemas": [CORE_GROUP], "displayName": "g", "members": [{"value": user}]})),
    )
    .await;
    g.expect(201);
    (user, g.body["id"].as_str().unwrap().to_string())
}

/// Sends case `c` as tenant `t`, with `user` and `group` filled in. Accepted: any 2xx.
/// Refused: the case's scimType, nothing changed, and the detail names the tolerance that
/// would have accepted the request.
async fn run_case<S: TestApp>(
    app: &S,
    state: &actix_web::web::Data<scimitar::http::AppState>,
    c: &Case,
    t: &Tenant,
    (user, group): (&str, &str),
    accept: bool,
) {
    let path = fill(c.path, user, group);
    let body = c
        .body
        .as_ref()
        .map(|b| serde_json::from_str(&fill(&b.to_string(), user, group)).expect("JSON"));
    let why = format!("{} on tenant {}", c.tolerance, t.name);
    if accept {
        let r = request(app, &t.token, c.method, &path, body).await;
        assert!(r.status.is_success(), "{why}: {}", r.raw);
    } else {
        let on = On::new(app, state, t.clone());
        let detail = on.refused((c.method, &path, body), c.scim_type, &why).await;
        assert!(detail.contains(c.tolerance), "{why}: {detail}");
    }
}

/// Runs case `c` on a new user and group of each tenant: accepted as `accepting`, refused
/// as `refusing`.
async fn accepted_and_refused<S: TestApp>(
    app: &S,
    state: &actix_web::web::Data<scimitar::http::AppState>,
    c: &Case,
    accepting: &Tenant,
    refusing: &Tenant,
) {
    for (t, accept) in [(accepting, true), (refusing, false)] {
        let (user, group) = setup(app, t).await;
        run_case(app, state, c, t, (&user, &group), accept).await;
    }
}

#[actix_web::test]
async fn every_tolerance_is_switched_off_by_strict_and_by_the_tenant_dialect() {
    // Lenient server: each case succeeds on a tenant that follows the server, and is refused
    // (changing nothing) on a tenant with only that tolerance off and on a tenant whose
    // dialect is strict.
    let (_db, app, state) = app_state().await;
    let mut conn = state.service.pool.get().unwrap();
    let strict = Tenant::new(&state, "strict-tenant");
    admin::update_settings(&mut conn, &strict.name, |s| {
        s.set_all(false);
        Ok(())
    })
    .unwrap();
    let (su, sg) = setup(&app, &strict).await;
    for (i, c) in cases().iter().enumerate() {
        let on = Tenant::new(&state, &format!("on-{i}"));
        let off = Tenant::new(&state, &format!("off-{i}"));
        admin::update_settings(&mut conn, &off.name, |s| s.set(c.tolerance, false)).unwrap();
        accepted_and_refused(&app, &state, c, &on, &off).await;
        // Refused requests change nothing, so the strict tenant's user and group serve all.
        run_case(&app, &state, c, &strict, (&su, &sg), false).await;
    }
}

#[actix_web::test]
async fn every_tolerance_is_off_under_strict_unless_a_tenant_turns_it_on() {
    let (_db, app, state) = app_where(|a| a.strict = true).await;
    let mut conn = state.service.pool.get().unwrap();
    for (i, c) in cases().iter().enumerate() {
        let strict = Tenant::new(&state, &format!("strict-{i}"));
        let one_on = Tenant::new(&state, &format!("one-on-{i}"));
        admin::update_settings(&mut conn, &one_on.name, |s| s.set(c.tolerance, true)).unwrap();
        accepted_and_refused(&app, &state, c, &one_on, &strict).await;
    }
}

#[actix_web::test]
async fn the_rfc_filter_form_works_under_strict() {
    let (_db, app, _) = app_where(|a| a.strict = true).await;
    let id = post_id(
        &app,
        "/scim/v2/Users",
        json!({"schemas": [CORE_USER], "userName": "u@example.com",
               "emails": [{"value": "u@example.com", "type": "work"}]}),
    )
    .await;
    let r = get(
        &app,
        TOKEN,
        &filtered(
            "Users",
            "emails[type eq \"work\" and value eq \"u@example.com\"]",
        ),
    )
    .await;
    assert_eq!(ids(&r), vec![id]);
    let r = get(
        &app,
        TOKEN,
        &filtered(
            "Users",
            "emails[type eq \"work\"].value eq \"u@example.com\"",
        ),
    )
    .await;
    r.expect_error(400, Some("invalidFilter"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("filter_value_path_sub"),
        "{}",
        r.raw
    );
}
