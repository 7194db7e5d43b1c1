//! Tenant isolation: two tenants on one server. For every endpoint and method, tenant A's
//! credential cannot read, list, filter, page, search, patch or delete tenant B's resources:
//! another tenant's id answers exactly as a nonexistent one does. The same userName exists in
//! both. Helpers here are shared by the other tenancy test modules.

use serde_json::{json, Value};

use scimitar::auth::Scope;
use scimitar::provisioning::tenancy as admin;
use scimitar::storage;

use crate::common::*;

/// Asserts two answers are the same once `foreign` and `missing` (the ids in them) are
/// blanked: a foreign id must be indistinguishable from a nonexistent one.
#[track_caller]
fn same_answer(foreign: &Resp, missing: &Resp, foreign_id: &str, missing_id: &str) {
    assert_eq!(foreign.status, missing.status, "{}", foreign.raw);
    assert_eq!(
        foreign.raw.replace(foreign_id, "ID"),
        missing.raw.replace(missing_id, "ID")
    );
    for h in ["content-type", "www-authenticate", "etag", "location"] {
        assert_eq!(foreign.header(h), missing.header(h), "header {h}");
    }
}

/// Creates the user `same@example.com` (with `external_id` and `email`) and a group `Team` of
/// it as `token`; their ids.
async fn same_user_in_team<S: TestApp>(
    app: &S,
    token: &str,
    external_id: &str,
    email: &str,
) -> (String, String) {
    let u = post_user(app, token, "same@example.com", external_id, email).await;
    u.expect(201);
    let user_id = u.body["id"].as_str().unwrap().to_string();
    let g = post(
        app,
        token,
        "/scim/v2/Groups",
        Some(group("Team", &[&user_id])),
    )
    .await;
    g.expect(201);
    (user_id, g.body["id"].as_str().unwrap().to_string())
}

#[actix_web::test]
async fn a_credential_of_one_tenant_cannot_reach_another_tenants_resources() {
    let (_db, app, state) = app_state().await;
    let (a, b) = two_tenants(&state, "tenant-a", "tenant-b");

    // The same userName in both tenants.
    let (b_user, b_group) = same_user_in_team(&app, &b, "ext-b", "b-only@b.example").await;
    let (a_user, a_group) = same_user_in_team(&app, &a, "ext-a", "a@a.example").await;

    // Every method on a single resource: B's id answers as a nonexistent id does.
    let missing = uuid::Uuid::new_v4().to_string();
    let patch_user =
        patch_body(json!([{"op": "replace", "path": "displayName", "value": "taken"}]));
    let patch_group =
        patch_body(json!([{"op": "add", "path": "members", "value": [{"value": a_user}]}]));
    for (kind, foreign) in [
        ("Users", &b_user),
        ("Groups", &b_group),
        ("Users", &b_group),
        ("Groups", &b_user),
    ] {
        let cases: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", String::new(), None),
            ("GET", "?attributes=displayName".into(), None),
            (
                "PUT",
                String::new(),
                Some(if kind == "Users" {
                    user("x@a.example", "x", "x@a.example")
                } else {
                    group("X", &[])
                }),
            ),
            (
                "PATCH",
                String::new(),
                Some(if kind == "Users" {
                    patch_user.clone()
                } else {
                    patch_group.clone()
                }),
            ),
            ("DELETE", String::new(), None),
        ];
        for (method, query, body) in cases {
            let at = |id: &str| format!("/scim/v2/{kind}/{id}{query}");
            let f = request(&app, &a, method, &at(foreign), body.clone()).await;
            let m = request(&app, &a, method, &at(&missing), body).await;
            f.expect(404);
            same_answer(&f, &m, foreign, &missing);
        }
        // Conditional requests too.
        for (method, header) in [("GET", "If-None-Match"), ("DELETE", "If-Match")] {
            let conditional = |id: &str| {
                as_(&a, method, &format!("/scim/v2/{kind}/{id}"), None)
                    .insert_header((header, "W/\"1\""))
            };
            let f = send(&app, conditional(foreign)).await;
            let m = send(&app, conditional(&missing)).await;
            same_answer(&f, &m, foreign, &missing);
        }
    }

    // Lists, filters, paging, sorting: only A's resources, whatever the filter names.
    let list = |q: &str| format!("/scim/v2/Users{q}");
    let only_a_user = [
        list(""),
        list("?filter=userName%20eq%20%22same@example.com%22"),
        list("?filter=userName%20sw%20%22same%22"),
        list("?filter=displayName%20co%20%22same%22"),
        list("?filter=emails.value%20pr"),
        list("?filter=userName%20pr&sortBy=userName&sortOrder=descending"),
        list("?startIndex=1&count=10"),
        list("?filter=active%20eq%20true%20or%20externalId%20eq%20%22ext-b%22"),
        // Lone selective tests that B's values also pass: counted from their keys
        // (`storage::search::counted_page`), still only A's.
        list("?filter=emails.value%20co%20%22example%22"),
        list("?filter=emails.value%20ew%20%22.example%22"),
        list("?filter=emails%5Bvalue%20ew%20%22.example%22%5D"),
    ];
    for uri in &only_a_user {
        let r = get(&app, &a, uri).await;
        r.expect(200);
        assert_eq!(ids(&r), vec![a_user.clone()], "{uri}");
        assert_eq!(r.body["totalResults"], 1, "{uri}");
    }
    let nothing = [
        list(&format!("?filter=id%20eq%20%22{b_user}%22")),
        list("?filter=externalId%20eq%20%22ext-b%22"),
        list("?filter=emails.value%20co%20%22b-only%22"),
        list("?filter=emails.value%20eq%20%22b-only@b.example%22"),
        list(&format!("?filter=groups.value%20eq%20%22{b_group}%22")),
        format!("/scim/v2/Groups?filter=members.value%20eq%20%22{b_user}%22"),
        format!("/scim/v2/Groups?filter=id%20eq%20%22{b_group}%22"),
    ];
    for uri in &nothing {
        let r = get(&app, &a, uri).await;
        r.expect(200);
        assert_eq!(r.body["totalResults"], 0, "{uri}: {}", r.raw);
        assert!(
            !r.raw.contains(&b_user) && !r.raw.contains(&b_group),
            "{uri}"
        );
    }
    let r = get(
        &app,
        &a,
        "/scim/v2/Groups?filter=displayName%20eq%20%22Team%22",
    )
    .await;
    assert_eq!(ids(&r), vec![a_group.clone()]);
    let r = get(&app, &a, &format!("/scim/v2/Groups/{a_group}")).await;
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1);
    assert!(!r.raw.contains(&b_user));
    for page in [
        "?count=0",
        "?startIndex=2&count=10",
        "?startIndex=1&count=1",
    ] {
        let r = get(&app, &a, &list(page)).await;
        assert_eq!(r.body["totalResults"], 1, "{page}");
        assert!(!r.raw.contains(&b_user), "{page}");
    }

    // .search on a type and at the root.
    let search = |uri: &'static str, filter: Option<&str>| {
        let mut b = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
        if let Some(f) = filter {
            b["filter"] = json!(f);
        }
        post(&app, &a, uri, Some(b))
    };
    let users = "/scim/v2/Users/.search";
    let r = search(users, Some("userName eq \"same@example.com\"")).await;
    r.expect(200);
    assert_eq!(ids(&r), vec![a_user.clone()]);
    let r = search(users, Some(&format!("id eq \"{b_user}\""))).await;
    assert_eq!(r.body["totalResults"], 0);
    let r = search("/scim/v2/.search", None).await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(ids(&r), vec![a_user.clone(), a_group.clone()]);
    let r = search("/scim/v2/.search", Some("displayName pr")).await;
    assert!(!r.raw.contains(&b_user) && !r.raw.contains(&b_group));

    // Cursor paging: A's pages hold A's resources; B's cursor is no use to A.
    let r = get(&app, &a, "/scim/v2/Users?cursor=&count=1").await;
    r.expect(200);
    assert_eq!(ids(&r), vec![a_user.clone()]);
    post_user(&app, &b, "second@example.com", "ext-b2", "b2@b.example")
        .await
        .expect(201);
    let rb = get(&app, &b, "/scim/v2/Users?cursor=&count=1").await;
    rb.expect(200);
    let b_cursor = rb.body["nextCursor"]
        .as_str()
        .expect("B has a second page")
        .to_string();
    let r = get(
        &app,
        &a,
        &format!("/scim/v2/Users?count=1&cursor={b_cursor}"),
    )
    .await;
    r.expect(400);
    assert!(!r.raw.contains(&b_user));

    // Members naming B's resources are refused exactly as nonexistent ids are.
    for (method, uri, f_body, m_body) in [
        (
            "POST",
            "/scim/v2/Groups".to_string(),
            group("G2", &[&b_user]),
            group("G2", &[&missing]),
        ),
        (
            "PUT",
            format!("/scim/v2/Groups/{a_group}"),
            group("Team", &[&b_user]),
            group("Team", &[&missing]),
        ),
        (
            "PATCH",
            format!("/scim/v2/Groups/{a_group}"),
            patch_body(json!([{"op": "add", "path": "members", "value": [{"value": b_user}]}])),
            patch_body(json!([{"op": "add", "path": "members", "value": [{"value": missing}]}])),
        ),
    ] {
        let f = request(&app, &a, method, &uri, Some(f_body)).await;
        let m = request(&app, &a, method, &uri, Some(m_body)).await;
        f.expect_error(400, Some("invalidValue"));
        same_answer(&f, &m, &b_user, &missing);
    }
    // Removing B's user from A's group is a no-op, as for a nonexistent member.
    let team = format!("/scim/v2/Groups/{a_group}");
    let remove = |id: &str| {
        let ops = json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]);
        request(&app, &a, "PATCH", &team, Some(patch_body(ops)))
    };
    let f = remove(&b_user).await;
    let m = remove(&missing).await;
    same_answer(&f, &m, &b_user, &missing);

    // B's resources are untouched and its events only its own.
    let r = get(&app, &b, &format!("/scim/v2/Users/{b_user}")).await;
    r.expect(200);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    assert_eq!(r.body["displayName"], "same@example.com (ext-b)");
    let r = get(&app, &b, &format!("/scim/v2/Groups/{b_group}")).await;
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    assert_eq!(r.body["members"][0]["value"], b_user.as_str());
    let b_events = scim_events(&state, "tenant-b");
    assert_eq!(b_events.len(), 3, "B's three creates, nothing from A");
    assert!(b_events.iter().all(|(_, k)| k == "create:full"));
    let a_events = scim_events(&state, "tenant-a");
    assert!(!a_events.iter().any(|(r, _)| *r == b_user || *r == b_group));
}

#[actix_web::test]
async fn user_names_are_unique_per_tenant_only() {
    let (_db, app, state) = app_state().await;
    let (a, b) = two_tenants(&state, "a", "b");
    for t in [&a, &b, &TOKEN.to_string()] {
        post_user(&app, t, "bjensen@example.com", "e", "bj@example.com")
            .await
            .expect(201);
    }
    // Within a tenant it is unique, case-insensitively.
    post_user(&app, &a, "BJensen@example.com", "e", "bj@example.com")
        .await
        .expect_error(409, Some("uniqueness"));
    // Groups with the same name too, and each tenant sees one of each.
    for t in [&a, &b] {
        post(&app, t, "/scim/v2/Groups", Some(group("Finance", &[])))
            .await
            .expect(201);
        let r = get(&app, t, "/scim/v2/Users").await;
        assert_eq!(r.body["totalResults"], 1);
        let r = get(&app, t, "/scim/v2/Groups").await;
        assert_eq!(r.body["totalResults"], 1);
    }
}

#[actix_web::test]
async fn deleting_a_tenant_removes_its_data_and_credentials_only() {
    let (_db, app, state) = app_state().await;
    let (a, b) = two_tenants(&state, "a", "b");
    let ua = post_user(&app, &a, "u@a", "1", "u@a.example").await;
    let ua = ua.body["id"].as_str().unwrap().to_string();
    post(&app, &a, "/scim/v2/Groups", Some(group("G", &[&ua])))
        .await
        .expect(201);
    post_user(&app, &b, "u@b", "1", "u@b.example")
        .await
        .expect(201);

    let mut conn = state.service.pool.get().unwrap();
    let d = admin::delete_tenant(&mut conn, "a").unwrap();
    assert_eq!(d.resources, 2);
    // The user's create event and its account's activation, the group's create event.
    assert_eq!(d.events, 3);
    assert!(admin::delete_tenant(&mut conn, "a")
        .unwrap_err()
        .to_string()
        .contains("no tenant named `a`"));
    assert!(storage::tenancy::find_tenant(&mut conn.db(), &"a".into())
        .unwrap()
        .is_none());
    assert!(storage::feed::all(&mut conn.db(), &"a".into())
        .unwrap()
        .is_empty());
    drop(conn);

    get(&app, &a, "/scim/v2/Users").await.expect(401);
    let r = get(&app, &b, "/scim/v2/Users").await;
    r.expect(200);
    assert_eq!(r.body["totalResults"], 1);
    // A tenant of the same name starts empty.
    let a2 = tenant_with_token(&state, "a", Scope::Write);
    let r = get(&app, &a2, "/scim/v2/Users").await;
    assert_eq!(r.body["totalResults"], 0);
}

/// An unfiltered list's totalResults comes from a per-tenant counter kept by every create and
/// delete; a filtered one (`id pr`, every resource) counts rows. They must agree after every
/// kind of write, per tenant: single creates, a bulk whose batched creates and single ops
/// partly fail, deletes, a delete of an unknown id, and a tenant's deletion.
#[actix_web::test]
async fn unfiltered_totals_agree_with_counted_rows_after_every_kind_of_write() {
    let (_db, app, state) = app_state().await;
    let (a, b) = two_tenants(&state, "count-a", "count-b");
    async fn totals<S: TestApp>(app: &S, token: &str, rt: &str) -> (i64, i64) {
        let all = get(app, token, &format!("/scim/v2/{rt}?count=1")).await;
        all.expect(200);
        let counted = get(app, token, &format!("/scim/v2/{rt}?count=1&filter=id%20pr")).await;
        counted.expect(200);
        (
            all.body["totalResults"].as_i64().unwrap(),
            counted.body["totalResults"].as_i64().unwrap(),
        )
    }
    let mut users = Vec::new();
    for i in 0..3 {
        let r = post(
            &app,
            &a,
            "/scim/v2/Users",
            Some(user(
                &format!("c{i}@a.example"),
                &format!("x{i}"),
                "m@a.example",
            )),
        )
        .await;
        r.expect(201);
        users.push(r.body["id"].as_str().unwrap().to_string());
    }
    post_user(&app, &b, "only@b.example", "xb", "b@b.example")
        .await
        .expect(201);
    assert_eq!(totals(&app, &a, "Users").await, (3, 3));
    assert_eq!(totals(&app, &b, "Users").await, (1, 1));

    // A bulk: a batch of plain creates with a duplicate (the batch falls back to one by one,
    // one fails), a group, and a delete of an unknown id.
    let mut ops: Vec<Value> = (0..4)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
                   "data": user(&format!("bulk{i}@a.example"), &format!("bx{i}"), "m@a.example")})
        })
        .collect();
    ops.push(json!({"method": "POST", "path": "/Users", "bulkId": "dup",
                    "data": user("c0@a.example", "dupx", "m@a.example")}));
    ops.push(json!({"method": "POST", "path": "/Groups", "bulkId": "g",
                    "data": group("Counted", &[&users[0]])}));
    ops.push(json!({"method": "DELETE", "path": "/Users/00000000-0000-0000-0000-000000000000"}));
    let r = post(
        &app,
        &a,
        "/scim/v2/Bulk",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": ops}),
        ),
    )
    .await;
    r.expect(200);
    assert_eq!(totals(&app, &a, "Users").await, (7, 7));
    assert_eq!(totals(&app, &a, "Groups").await, (1, 1));

    // Deletes, and a second delete of the same user (404, nothing counted).
    delete(&app, &a, &format!("/scim/v2/Users/{}", users[1]))
        .await
        .expect(204);
    delete(&app, &a, &format!("/scim/v2/Users/{}", users[1]))
        .await
        .expect(404);
    assert_eq!(totals(&app, &a, "Users").await, (6, 6));
    assert_eq!(totals(&app, &b, "Users").await, (1, 1));

    // Deleting tenant b leaves a's counts alone; a new tenant b starts from zero.
    {
        let mut conn = state.service.pool.get().unwrap();
        admin::delete_tenant(&mut conn, "count-b").unwrap();
    }
    let b2 = tenant_with_token(&state, "count-b", Scope::Write);
    assert_eq!(totals(&app, &b2, "Users").await, (0, 0));
    assert_eq!(totals(&app, &a, "Users").await, (6, 6));
}
