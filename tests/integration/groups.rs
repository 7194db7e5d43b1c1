use serde_json::json;

use crate::common::*;

#[actix_web::test]
async fn group_members_carry_value_display_type_and_ref() {
    let (app, _db) = app().await;
    let alice = create_user(&app, "alice").await;
    let inner = create_group(&app, "Inner", &[]).await;
    let group = json!({"schemas": [CORE_GROUP], "displayName": "Tour Guides",
                       "members": [{"value": alice, "type": "User"}, {"value": inner}]});
    let g = call(&app, "POST", "/scim/v2/Groups", Some(group)).await;
    g.expect(201);
    let gid = id_of(&g);
    let members = g.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["value"], alice.as_str());
    assert_eq!(members[0]["display"], "alice display");
    assert_eq!(members[0]["type"], "User");
    assert_eq!(
        members[0]["$ref"],
        format!("http://scim.test/scim/v2/Users/{alice}")
    );
    assert_eq!(members[1]["type"], "Group");
    assert_eq!(members[1]["display"], "Inner");
    assert_eq!(
        members[1]["$ref"],
        format!("http://scim.test/scim/v2/Groups/{inner}")
    );

    // User.groups is derived.
    let u = get(&app, TOKEN, &format!("/scim/v2/Users/{alice}")).await;
    assert_eq!(u.body["groups"][0]["value"], gid.as_str());
    assert_eq!(u.body["groups"][0]["display"], "Tour Guides");
    // excludedAttributes=members leaves them out.
    let x = get(
        &app,
        TOKEN,
        &format!("/scim/v2/Groups/{gid}?excludedAttributes=members"),
    )
    .await;
    x.expect(200);
    assert!(x.body.get("members").is_none());
    assert_eq!(x.body["displayName"], "Tour Guides");
    // Filter groups by displayName, users by groups.value, groups by members.value.
    assert_eq!(
        matching(&app, "Groups", "displayName eq \"tour guides\"").await,
        1
    );
    assert_eq!(
        matching(&app, "Users", &format!("groups.value eq \"{gid}\"")).await,
        1
    );
    assert_eq!(
        matching(&app, "Groups", &format!("members[value eq \"{alice}\"]")).await,
        1
    );
}

#[actix_web::test]
async fn unknown_member_rejects_the_whole_request() {
    let (app, _db) = app().await;
    let alice = create_user(&app, "alice").await;
    // An unknown member (named in the detail), and a wrong type.
    for (members, named) in [
        (
            json!([{"value": alice}, {"value": "no-such-id"}]),
            Some("no-such-id"),
        ),
        (json!([{"value": alice, "type": "Group"}]), None),
    ] {
        let group = json!({"schemas": [CORE_GROUP], "displayName": "G", "members": members});
        let r = call(&app, "POST", "/scim/v2/Groups", Some(group)).await;
        r.expect_case(&members.to_string(), 400, Some("invalidValue"));
        if let Some(id) = named {
            assert!(r.body["detail"].as_str().unwrap().contains(id), "{}", r.raw);
        }
    }
    assert_eq!(
        total(&app, "/scim/v2/Groups").await,
        0,
        "nothing was created"
    );
    // And in PATCH: nothing is added.
    let gid = create_group(&app, "G", &[&alice]).await;
    let p = patch(
        &app,
        &format!("/scim/v2/Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]),
    )
    .await;
    p.expect_error(400, Some("invalidValue"));
    let g = get(&app, TOKEN, &format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(g.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(g.body["meta"]["version"], "W/\"1\"");
}

#[actix_web::test]
async fn patch_members_add_remove_replace_and_versions() {
    let (app, _db) = app().await;
    let a = create_user(&app, "a").await;
    let b = create_user(&app, "b").await;
    let c = create_user(&app, "c").await;
    let gid = create_group(&app, "G", &[&a]).await;
    let path = format!("/scim/v2/Groups/{gid}");
    let members = |body: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = body["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|x| x["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<String>>()
    };

    // Each PATCH answers 204 by default; then the group's members, and its version where the
    // case says.
    for (case, ops, want, version) in [
        (
            "add bumps the version",
            json!([{"op": "add", "path": "members", "value": [{"value": b}, {"value": a}]}]),
            sorted(vec![&a, &b]),
            Some("W/\"2\""),
        ),
        (
            "adding an existing member changes nothing (no new version)",
            json!([{"op": "add", "path": "members", "value": [{"value": b}]}]),
            sorted(vec![&a, &b]),
            Some("W/\"2\""),
        ),
        (
            "remove by value filter",
            json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}]),
            vec![b.clone()],
            None,
        ),
        (
            "Entra ID style: remove with path members and a value list",
            json!([{"op": "Remove", "path": "members", "value": [{"value": b}]}]),
            vec![],
            None,
        ),
    ] {
        let r = patch(&app, &path, ops).await;
        expect_row(&r, case, 204, None);
        let g = get_ok(&app, &path).await;
        assert_eq!(members(&g.body), want, "{case}");
        if let Some(v) = version {
            assert_eq!(g.body["meta"]["version"], v, "{case}");
        }
    }
    // Replace the whole list; asking for attributes gives 200 with the projection.
    let r = patch(
        &app,
        &format!("{path}?attributes=members"),
        json!([{"op": "replace", "path": "members", "value": [{"value": a}, {"value": c}]}]),
    )
    .await;
    r.expect(200);
    assert_eq!(members(&r.body), sorted(vec![&a, &c]));
    // Rename without touching members.
    let r = patch(
        &app,
        &path,
        json!([{"op": "replace", "value": {"id": gid, "displayName": "Renamed"}}]),
    )
    .await;
    r.expect(204);
    let g = get(&app, TOKEN, &path).await;
    assert_eq!(g.body["displayName"], "Renamed");
    assert_eq!(members(&g.body), sorted(vec![&a, &c]));
    // Remove all.
    patch(&app, &path, json!([{"op": "remove", "path": "members"}]))
        .await
        .expect(204);
    assert!(get(&app, TOKEN, &path).await.body.get("members").is_none());
}

#[actix_web::test]
async fn deleting_a_member_removes_it_from_every_group() {
    let (_db, app, state) = app_state().await;
    let a = create_user(&app, "a").await;
    let b = create_user(&app, "b").await;
    let g1 = create_group(&app, "G1", &[&a, &b]).await;
    let g2 = create_group(&app, "G2", &[&a, &g1]).await;
    delete(&app, TOKEN, &format!("/scim/v2/Users/{a}"))
        .await
        .expect(204);
    let r1 = get(&app, TOKEN, &format!("/scim/v2/Groups/{g1}")).await;
    assert_eq!(r1.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(
        r1.body["meta"]["version"], "W/\"2\"",
        "membership change bumps the version"
    );
    let r2 = get(&app, TOKEN, &format!("/scim/v2/Groups/{g2}")).await;
    assert_eq!(r2.body["members"][0]["value"], g1.as_str());
    // Deleting a group removes it from its parent group too.
    delete(&app, TOKEN, &format!("/scim/v2/Groups/{g1}"))
        .await
        .expect(204);
    let r2 = get(&app, TOKEN, &format!("/scim/v2/Groups/{g2}")).await;
    assert!(r2.body.get("members").is_none());
    let ev = events(&state);
    assert!(ev.contains(&(g1.clone(), "patch:full".into())));
    assert!(ev.contains(&(a.clone(), "delete".into())));
}

#[actix_web::test]
async fn group_put_replaces_members() {
    let (app, _db) = app().await;
    let a = create_user(&app, "a").await;
    let b = create_user(&app, "b").await;
    let gid = create_group(&app, "G", &[&a]).await;
    let path = format!("/scim/v2/Groups/{gid}");
    let replacement =
        json!({"schemas": [CORE_GROUP], "displayName": "G2", "members": [{"value": b}]});
    let r = call(&app, "PUT", &path, Some(replacement)).await;
    r.expect(200);
    assert_eq!(r.body["displayName"], "G2");
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["members"][0]["value"], b.as_str());
    // Self-membership is rejected.
    let r = patch(
        &app,
        &path,
        json!([{"op": "add", "path": "members", "value": [{"value": gid}]}]),
    )
    .await;
    r.expect_error(400, Some("invalidValue"));
}

#[actix_web::test]
async fn more_members_than_the_limit_is_413_and_changes_nothing() {
    let (_db, app, _) = app_where(|a| a.max_members_per_request = 2).await;
    let ids = [
        create_user(&app, "m1").await,
        create_user(&app, "m2").await,
        create_user(&app, "m3").await,
    ];
    let gid = create_group(&app, "G", &[&ids[0]]).await;
    let three: Vec<serde_json::Value> = ids.iter().map(|i| json!({"value": i})).collect();
    let r = patch(
        &app,
        &format!("/scim/v2/Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": three}]),
    )
    .await;
    r.expect(413);
    assert!(r.body["detail"].as_str().unwrap().contains("the most is 2"));
    let g = get(&app, TOKEN, &format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(g.body["members"].as_array().unwrap().len(), 1);
    let group = json!({"schemas": [CORE_GROUP], "displayName": "H", "members": three});
    let r = call(&app, "POST", "/scim/v2/Groups", Some(group)).await;
    r.expect(413);
}

#[actix_web::test]
async fn members_value_ne_means_no_member_equals() {
    let (app, _db) = app().await;
    let a = create_user(&app, "a").await;
    let b = create_user(&app, "b").await;
    create_group(&app, "with-a", &[&a, &b]).await;
    create_group(&app, "without-a", &[&b]).await;
    create_group(&app, "empty", &[]).await;
    let f = urlencode(&format!("members.value ne \"{a}\""));
    let r = get(
        &app,
        TOKEN,
        &format!("/scim/v2/Groups?filter={f}&sortBy=displayName"),
    )
    .await;
    let names: Vec<&str> = strs(&r.body["Resources"], "displayName");
    assert_eq!(names, ["empty", "without-a"]);
}

/// A page's group references are read for all its resources in one statement
/// (`members::refs_of`, `Backend::any_key`: a list of keys up to 32, an array past it, so the
/// page holds 40 users): each user of a list shows exactly its own groups, in the order GET
/// by id shows them, and a user in no group shows none; each group of a list, its own
/// members.
#[actix_web::test]
async fn a_list_shows_each_resource_its_own_references() {
    let (app, _db) = app().await;
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(create_user(&app, &format!("ref-user-{i}")).await);
    }
    let u: Vec<&str> = users.iter().map(String::as_str).collect();
    // u0 in three groups, u1, u5 and u39 in one each, u3 in two, the rest in none.
    let g0 = create_group(&app, "refs-0", &[u[0], u[3]]).await;
    let g1 = create_group(&app, "refs-1", &[u[0], u[1], u[39]]).await;
    let g2 = create_group(&app, "refs-2", &[u[3], u[0], u[5]]).await;
    // Past 32 groups too, so the groups' keys are an array as well.
    let mut empty = Vec::new();
    for i in 0..31 {
        empty.push(create_group(&app, &format!("refs-empty-{i}"), &[]).await);
    }
    let mut expected: Vec<Vec<&str>> = vec![vec![]; users.len()];
    expected[0] = vec![&g0, &g1, &g2];
    expected[1] = vec![&g1];
    expected[3] = vec![&g0, &g2];
    expected[5] = vec![&g2];
    expected[39] = vec![&g1];
    let ids = |v: &serde_json::Value, key: &str| -> Vec<String> {
        let mut out: Vec<String> = v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    };
    // By index and by cursor: every user of the tenant on one page.
    for uri in [
        "/scim/v2/Users?count=100",
        "/scim/v2/Users?count=100&cursor=",
    ] {
        let page = get_ok(&app, uri).await;
        let listed = page.body["Resources"].as_array().unwrap();
        assert_eq!(listed.len(), users.len(), "{uri}");
        for (user, groups) in users.iter().zip(&expected) {
            let r = listed
                .iter()
                .find(|r| r["id"] == user.as_str())
                .unwrap_or_else(|| panic!("{user} not listed by {uri}"));
            let mut want: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            want.sort();
            assert_eq!(ids(r, "groups"), want, "{user} by {uri}");
            if want.is_empty() {
                assert!(r.get("groups").is_none(), "{user} by {uri}: {r}");
            }
            // The same references, in the same order, as GET by id.
            let one = get_ok(&app, &format!("/scim/v2/Users/{user}")).await;
            assert_eq!(r.get("groups"), one.body.get("groups"), "{user} by {uri}");
        }
    }
    let page = get_ok(&app, "/scim/v2/Groups?count=100").await;
    let listed = page.body["Resources"].as_array().unwrap();
    assert_eq!(listed.len(), 34);
    for gid in &empty {
        let r = listed.iter().find(|r| r["id"] == gid.as_str()).unwrap();
        assert!(ids(r, "members").is_empty(), "{r}");
    }
    for (gid, members) in [
        (&g0, vec![u[0], u[3]]),
        (&g1, vec![u[0], u[1], u[39]]),
        (&g2, vec![u[3], u[0], u[5]]),
    ] {
        let r = listed.iter().find(|r| r["id"] == gid.as_str()).unwrap();
        let mut want: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        want.sort();
        assert_eq!(ids(r, "members"), want, "{gid}");
    }
}
