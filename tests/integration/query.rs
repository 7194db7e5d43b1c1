//! Sorting, cursor paging (RFC 9865) and the differential test: random filters answered
//! by SQL and by the in-memory evaluator must select the same resources.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use scimitar::scim::filter as query;
use scimitar::scim::filter::{parse_filter, Limits};
use scimitar::scim::schema::{Registry, Rtype};

use crate::common::*;

async fn seed_people<S: TestApp>(app: &S, names: &[(&str, Option<&str>)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (user, family) in names {
        let mut body =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user});
        if let Some(f) = family {
            body["name"] = json!({"familyName": f});
        }
        ids.push(post_id(app, "/scim/v2/Users", body).await);
    }
    ids
}

pub(crate) fn user_names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn sort_by_singular_sub_and_multi_valued_attributes() {
    let (app, _db) = app().await;
    seed_people(
        &app,
        &[
            ("d", Some("beta")),
            ("a", Some("Alpha")),
            ("c", None),
            ("b", Some("alpha")),
        ],
    )
    .await;
    let sorts: [(&str, &[&str]); 4] = [
        ("sortBy=userName", &["a", "b", "c", "d"]),
        (
            "sortBy=userName&sortOrder=descending",
            &["d", "c", "b", "a"],
        ),
        // Case-insensitive (caseExact false), ties broken by creation order, missing last.
        ("sortBy=name.familyName", &["a", "b", "d", "c"]),
        (
            "sortBy=name.familyName&sortOrder=DESCENDING",
            &["c", "d", "b", "a"],
        ),
    ];
    for (query, want) in sorts {
        let r = get_ok(&app, &format!("/scim/v2/Users?{query}")).await;
        assert_eq!(user_names(&r.body), want, "{query}");
    }
    // Multi-valued: the primary value sorts, else the first.
    for (user, emails) in [
        (
            "e1",
            json!([{"value": "zz@x"}, {"value": "aa@x", "primary": true}]),
        ),
        ("e2", json!([{"value": "mm@x"}, {"value": "bb@x"}])),
    ] {
        let body = json!({"schemas": [CORE_USER], "userName": user, "emails": emails});
        post_id(&app, "/scim/v2/Users", body).await;
    }
    let by_email = format!("sortBy=emails&filter={}", urlencode("emails pr"));
    let sorts: [(&str, &[&str]); 2] = [
        (by_email.as_str(), &["e1", "e2"]),
        ("sortBy=meta.created&sortOrder=descending&count=1", &["e2"]),
    ];
    for (query, want) in sorts {
        let r = get_ok(&app, &format!("/scim/v2/Users?{query}")).await;
        assert_eq!(user_names(&r.body), want, "{query}");
    }
    // Bad sort requests.
    for uri in [
        "/scim/v2/Users?sortBy=nope",
        "/scim/v2/Users?sortBy=name",
        "/scim/v2/Users?sortBy=userName&sortOrder=up",
    ] {
        let r = get(&app, TOKEN, uri).await;
        r.expect_case(uri, 400, Some("invalidValue"));
    }
}

/// `path` asking for the cursor page of `count` at `cursor` ("" for the first).
fn cursor_page(path: &str, count: usize, cursor: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}count={count}&cursor={}", urlencode(cursor))
}

/// Walks every cursor page of `path` forward and returns the userNames in order.
async fn walk<S: TestApp>(app: &S, path: &str, count: usize) -> Vec<String> {
    let mut cursor = String::new();
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let r = get_ok(app, &cursor_page(path, count, &cursor)).await;
        seen.extend(user_names(&r.body));
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return seen,
        }
    }
    panic!("cursor walk did not end")
}

#[actix_web::test]
async fn cursor_pages_forward_and_back_without_repeats() {
    let (app, _db) = app().await;
    let names: Vec<String> = (0..23).map(|i| format!("u{i:02}")).collect();
    let refs: Vec<(&str, Option<&str>)> = names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                Some(if n.ends_with('1') { "same" } else { n.as_str() }),
            )
        })
        .collect();
    seed_people(&app, &refs).await;
    // Default order and a sort with ties: every user exactly once, in order.
    assert_eq!(walk(&app, "/scim/v2/Users", 5).await, names);
    let sorted = walk(
        &app,
        "/scim/v2/Users?sortBy=name.familyName&sortOrder=descending",
        4,
    )
    .await;
    assert_eq!(sorted.len(), 23);
    assert_eq!(sorted.iter().collect::<BTreeSet<_>>().len(), 23);
    // Forward two pages, then back one: the first page again.
    let p1 = get(&app, TOKEN, "/scim/v2/Users?count=5&cursor=").await;
    assert!(p1.body.get("previousCursor").is_none());
    assert!(
        p1.body.get("totalResults").is_none(),
        "no COUNT(*) per cursor page"
    );
    let next = p1.body["nextCursor"].as_str().unwrap();
    let p2 = get(&app, TOKEN, &cursor_page("/scim/v2/Users", 5, next)).await;
    assert_eq!(user_names(&p2.body), names[5..10]);
    let previous = p2.body["previousCursor"].as_str().unwrap();
    let back = get(&app, TOKEN, &cursor_page("/scim/v2/Users", 5, previous)).await;
    assert_eq!(user_names(&back.body), names[0..5]);
    assert!(back.body.get("previousCursor").is_none());
    // The last page has no nextCursor.
    let u1 = format!("/scim/v2/Users?filter={}", urlencode("userName sw \"u1\""));
    let f = get(&app, TOKEN, &cursor_page(&u1, 50, "")).await;
    assert_eq!(user_names(&f.body).len(), 10);
    assert!(f.body.get("nextCursor").is_none());
}

/// A sort by a singular attribute is read from the value index in two segments (users with
/// a value, then those without): every way of paging must give the one order.
#[actix_web::test]
async fn singular_sort_pages_the_same_by_cursor_index_and_backwards() {
    let (app, _db) = app().await;
    let families = [
        Some("m"),
        None,
        Some("B"),
        Some("b"),
        Some("z"),
        None,
        Some("a"),
        Some("M"),
        Some("b"),
        None,
        Some("c"),
        Some("Z"),
        None,
        Some("a"),
        Some("m"),
    ];
    let names: Vec<String> = (0..families.len()).map(|i| format!("s{i:02}")).collect();
    let refs: Vec<(&str, Option<&str>)> = names
        .iter()
        .zip(families)
        .map(|(n, f)| (n.as_str(), f))
        .collect();
    let ids = seed_people(&app, &refs).await;
    // Two users inactive: a filter that selects most users keeps the index walk.
    for (i, id) in ids.iter().enumerate() {
        let active = i != 3 && i != 9;
        let ops = json!([{"op": "replace", "path": "active", "value": active}]);
        patch(&app, &format!("/scim/v2/Users/{id}"), ops)
            .await
            .expect(200);
    }
    // Expected: lower-cased value, then creation order; users without a value last.
    let mut asc: Vec<(Option<String>, usize)> = families
        .iter()
        .enumerate()
        .map(|(i, f)| (f.map(str::to_lowercase), i))
        .collect();
    asc.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    let asc: Vec<String> = asc.iter().map(|(_, i)| names[*i].clone()).collect();
    let active_only = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|n| *n != &names[3] && *n != &names[9])
            .cloned()
            .collect()
    };
    for (order, filter) in [
        ("ascending", None),
        ("descending", None),
        ("ascending", Some("active eq true")),
        ("descending", Some("active eq true")),
    ] {
        let mut want = asc.clone();
        if order == "descending" {
            want.reverse();
        }
        let mut path = format!("/scim/v2/Users?sortBy=name.familyName&sortOrder={order}");
        if let Some(f) = filter {
            want = active_only(&want);
            path.push_str(&format!("&filter={}", urlencode(f)));
        }
        for count in [1, 4, 6] {
            let what = format!("{path} count={count}");
            // Forward by cursor, then back by previousCursor from the last page.
            let mut pages: Vec<(Vec<String>, Option<String>)> = Vec::new();
            let mut cursor = String::new();
            loop {
                let r = get_ok(&app, &cursor_page(&path, count, &cursor)).await;
                let prev = r.body["previousCursor"].as_str().map(str::to_string);
                pages.push((user_names(&r.body), prev));
                match r.body["nextCursor"].as_str() {
                    Some(c) => cursor = c.to_string(),
                    None => break,
                }
                assert!(pages.len() <= want.len(), "{what}: endless walk");
            }
            let forward: Vec<String> = pages.iter().flat_map(|p| p.0.clone()).collect();
            assert_eq!(forward, want, "{what}: forward by cursor");
            for i in (1..pages.len()).rev() {
                let prev = pages[i]
                    .1
                    .clone()
                    .unwrap_or_else(|| panic!("{what}: page {i} has no previousCursor"));
                let r = get_ok(&app, &cursor_page(&path, count, &prev)).await;
                assert_eq!(
                    user_names(&r.body),
                    pages[i - 1].0,
                    "{what}: back from page {i}"
                );
            }
            // Index paging, every start (pages that cross from valued users to the rest).
            index_pages(&app, &path, count, &want).await;
        }
    }
    // Unsorted index pages (creation order): deep pages skip rows by their keys first.
    for filter in [None, Some("active eq true")] {
        let mut want = names.clone();
        let mut path = "/scim/v2/Users?x=1".to_string();
        if let Some(f) = filter {
            want = active_only(&want);
            path.push_str(&format!("&filter={}", urlencode(f)));
        }
        for count in [1, 4, 6] {
            index_pages(&app, &path, count, &want).await;
        }
    }
}

/// Reads `path` by index pages of `count` from every startIndex (and one past the end): each
/// page holds its slice of `want`, and totalResults is the whole length.
pub(crate) async fn index_pages<S: TestApp>(app: &S, path: &str, count: usize, want: &[String]) {
    for start in 1..=want.len() + 1 {
        let r = get_ok(app, &format!("{path}&count={count}&startIndex={start}")).await;
        assert_eq!(r.body["totalResults"], json!(want.len()), "{path}");
        if start > want.len() {
            let n = r.body["Resources"].as_array().map_or(0, Vec::len);
            assert_eq!(n, 0, "{path} startIndex={start}: {}", r.raw);
            continue;
        }
        let end = (start - 1 + count).min(want.len());
        assert_eq!(
            user_names(&r.body),
            want[start - 1..end],
            "{path} count={count} startIndex={start}"
        );
    }
}

/// Unsorted, unfiltered index pages skip blocks of 4,096 primary keys by their counts (kept
/// by triggers on insert and delete): users spread over several blocks (the key sequence
/// moved on between groups), some deleted, must page in creation order from every start as a
/// whole list does, on both backends. On Postgres the counts are first read as unfolded
/// deltas (a row per write), then folded (`compact_resource_blocks`), then folded again
/// (nothing left to do): the same pages each time.
#[actix_web::test]
async fn unsorted_index_pages_skip_counted_blocks() {
    let (app, db) = app().await;
    let mut conn = crate::blocks::connect(&db);
    let mut names = Vec::new();
    let mut ids = Vec::new();
    for group in 0..5 {
        if group > 0 {
            // Blocks 3, 6, 9, 12 (block 0 holds the first group), with the last group's
            // users ending in the block after it.
            let at = group * 3 * 4096 + if group == 4 { 4093 } else { 0 };
            let restart = if db.is_postgres() {
                format!("ALTER TABLE resources ALTER COLUMN pk RESTART WITH {at}")
            } else {
                // AUTOINCREMENT gives the next key after the sequence's value.
                format!(
                    "UPDATE sqlite_sequence SET seq = {} WHERE name = 'resources'",
                    at - 1
                )
            };
            assert_eq!(
                conn.db()
                    .execute(&scimitar::storage::sql::Sql::new(&restart))
                    .unwrap(),
                if db.is_postgres() { 0 } else { 1 }
            );
        }
        for k in 0..6 {
            let name = format!("g{group}u{k}");
            ids.push(
                post_id(
                    &app,
                    "/scim/v2/Users",
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
                )
                .await,
            );
            names.push(name);
        }
    }
    // Deleted users leave their blocks (a whole block's, for the second group).
    for i in [2, 6, 7, 8, 9, 10, 11, 20, 29] {
        call(&app, "DELETE", &format!("/scim/v2/Users/{}", ids[i]), None)
            .await
            .expect(204);
    }
    let want: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| ![2, 6, 7, 8, 9, 10, 11, 20, 29].contains(i))
        .map(|(_, n)| n.clone())
        .collect();
    let r = get(&app, TOKEN, "/scim/v2/Users?count=1000").await;
    assert_eq!(user_names(&r.body), want);
    // Six keys counted (blocks 0, 3, 6, 9, 12, 13), each write its own delta on Postgres.
    assert_eq!(crate::blocks::miscounted_keys(&mut conn), 0);
    assert_eq!(
        crate::blocks::unfolded_keys(&mut conn),
        if db.is_postgres() { 6 } else { 0 }
    );
    for round in 0..3 {
        for count in [1, 3, 5, 30] {
            index_pages(&app, "/scim/v2/Users?x=1", count, &want).await;
        }
        let done =
            scimitar::storage::search::blocks::compact_resource_blocks(&mut conn.db()).unwrap();
        // The first fold: 30 inserts and 9 deletes, in 6 keys, one of them (block 3) empty.
        let expected = match (db.is_postgres(), round) {
            (true, 0) => (39, 5),
            _ => (0, 0),
        };
        assert_eq!((done.folded, done.written), expected, "round {round}");
        assert_eq!(crate::blocks::miscounted_keys(&mut conn), 0);
        assert_eq!(crate::blocks::unfolded_keys(&mut conn), 0);
    }
}

#[actix_web::test]
async fn cursor_walk_under_concurrent_inserts_sees_no_one_twice() {
    let (app, _db) = app().await;
    let names: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();
    let refs: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), None)).collect();
    seed_people(&app, &refs).await;
    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut inserted = 0;
    loop {
        let r = get(&app, TOKEN, &cursor_page("/scim/v2/Users", 3, &cursor)).await;
        seen.extend(user_names(&r.body));
        // Insert between pages.
        create_user(&app, &format!("late{inserted}")).await;
        inserted += 1;
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
        assert!(inserted < 100);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a user was returned twice: {seen:?}"
    );
    for n in &names {
        assert!(seen.contains(n), "{n} was skipped");
    }
}

#[actix_web::test]
async fn bad_cursors() {
    let (app, _db) = app().await;
    seed_people(&app, &[("a", None), ("b", None), ("c", None)]).await;
    let p1 = get(&app, TOKEN, "/scim/v2/Users?count=1&cursor=").await;
    let next = p1.body["nextCursor"].as_str().unwrap().to_string();
    let mut chars: Vec<char> = next.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    for (case, uri, scim_type) in [
        // Another query (filter or sort) cannot continue it.
        (
            "another sort",
            format!(
                "/scim/v2/Users?count=1&sortBy=userName&cursor={}",
                urlencode(&next)
            ),
            "invalidCursor",
        ),
        (
            "another resource type",
            format!("/scim/v2/Groups?count=1&cursor={}", urlencode(&next)),
            "invalidCursor",
        ),
        // Tampered or garbage.
        (
            "tampered",
            format!("/scim/v2/Users?count=1&cursor={}", urlencode(&tampered)),
            "invalidCursor",
        ),
        (
            "garbage",
            "/scim/v2/Users?cursor=not-a-cursor".into(),
            "invalidCursor",
        ),
        (
            "with startIndex",
            "/scim/v2/Users?cursor=&startIndex=2".into(),
            "invalidValue",
        ),
    ] {
        let r = get(&app, TOKEN, &uri).await;
        r.expect_case(case, 400, Some(scim_type));
    }
    // The same cursor still works for its own query.
    let r = get(
        &app,
        TOKEN,
        &format!("/scim/v2/Users?count=1&cursor={}", urlencode(&next)),
    )
    .await;
    assert_eq!(user_names(&r.body), ["b"]);
}

// ---------------------------------------------------------------------------------------
// Differential: SQL vs in-memory evaluator.

const FAMILIES: &[&str] = &[
    "Jensen", "jensen", "O'Malley", "Smith", "smithson", "Ünal", "50%_off",
];
const TITLES: &[&str] = &["Tour Guide", "Manager", "manager of guides", "CEO", ""];
const DEPTS: &[&str] = &["Finance", "finance", "Tour Operations", "R&D"];
const DOMAINS: &[&str] = &["example.com", "Example.org", "jensen.org"];

fn random_user(rng: &mut StdRng, i: usize) -> Value {
    let mut u = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("{}{i}", ["bjensen", "Alice", "bob_", "CAROL"][rng.gen_range(0..4)]),
    });
    let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.gen_range(0..xs.len())].to_string();
    if rng.gen_bool(0.8) {
        u["name"] = json!({"familyName": pick(rng, FAMILIES), "givenName": pick(rng, &["Barbara", "Bo", "Al"])});
    }
    if rng.gen_bool(0.6) {
        u["title"] = json!(pick(rng, TITLES));
    }
    if rng.gen_bool(0.7) {
        u["active"] = json!(rng.gen_bool(0.5));
    }
    if rng.gen_bool(0.5) {
        u["externalId"] = json!(format!("EXT-{}", rng.gen_range(0..20)));
    }
    let n = rng.gen_range(0..3);
    let emails: Vec<Value> = (0..n)
        .map(|k| {
            json!({"value": format!("{}{k}@{}", pick(rng, &["b", "B", "x"]), pick(rng, DOMAINS)),
                   "type": pick(rng, &["work", "home"]), "primary": k == 0 && rng.gen_bool(0.5)})
        })
        .collect();
    if !emails.is_empty() {
        u["emails"] = json!(emails);
    }
    let mut ext = serde_json::Map::new();
    if rng.gen_bool(0.6) {
        ext.insert("department".into(), json!(pick(rng, DEPTS)));
    }
    if rng.gen_bool(0.4) {
        ext.insert(
            "employeeNumber".into(),
            json!(format!("{}", rng.gen_range(100..120))),
        );
    }
    if !ext.is_empty() {
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = Value::Object(ext);
    }
    u
}

/// The attributes a random leaf compares with any operator (by the arm of `random_leaf`
/// that picks them), and the values it compares them with.
const COMPARED: [(u32, &str, &[&str]); 6] = [
    (
        0,
        "userName",
        &["bjensen1", "ALICE", "bob_", "carol", "b", "a"],
    ),
    (
        1,
        "name.familyName",
        &["jensen", "SMITH", "o'm", "50%", "_", "ünal", "son"],
    ),
    (2, "title", &["manager", "Guide", "", "ceo"]),
    (3, "emails", &["example.com", "B0@", "jensen", "x1"]),
    (6, "externalId", &["EXT-1", "ext-1", "EXT-19", "EXT"]),
    (
        7,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        &["finance", "Tour", "r&d", "ops"],
    ),
];

fn random_leaf(rng: &mut StdRng) -> String {
    let s = |x: &str| serde_json::to_string(x).unwrap();
    let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.gen_range(0..xs.len())].to_string();
    let op = pick(rng, &["eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"]);
    let arm = rng.gen_range(0..13);
    if let Some((_, attr, values)) = COMPARED.iter().find(|(a, _, _)| *a == arm) {
        return format!("{attr} {op} {}", s(&pick(rng, &values[..])));
    }
    match arm {
        4 => format!(
            "emails.type {} {}",
            pick(rng, &["eq", "ne"]),
            s(&pick(rng, &["work", "WORK", "home"]))
        ),
        5 => format!(
            "active {} {}",
            pick(rng, &["eq", "ne"]),
            pick(rng, &["true", "false"])
        ),
        8 => format!(
            "{} pr",
            pick(
                rng,
                &[
                    "title",
                    "name.familyName",
                    "emails",
                    "externalId",
                    "active",
                    "name",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
                ]
            )
        ),
        9 => format!(
            "emails[type eq {} and value {} {}]",
            s(&pick(rng, &["work", "home"])),
            pick(rng, &["co", "sw", "ew"]),
            s(&pick(rng, &["b", "example", ".org"]))
        ),
        10 => format!(
            "emails[not (primary eq true) or type eq {}]",
            s(&pick(rng, &["work", "home"]))
        ),
        11 => format!(
            "meta.created {} \"2000-01-01T00:00:00Z\"",
            pick(rng, &["gt", "lt"])
        ),
        // `schemas`: derived from the extensions a user carries (not every user that lists
        // the enterprise extension in its POST carries its attributes).
        _ => match rng.gen_range(0..4) {
            0 => "schemas pr".to_string(),
            _ => format!(
                "schemas {op} {}",
                s(&pick(
                    rng,
                    &[
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                        "urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user",
                        "enterprise",
                        "2.0:User",
                        "urn:ietf:params:scim:schemas:extension",
                    ]
                ))
            ),
        },
    }
}

fn random_filter(rng: &mut StdRng, depth: u32) -> String {
    if depth == 0 || rng.gen_bool(0.4) {
        return random_leaf(rng);
    }
    match rng.gen_range(0..3) {
        0 => format!(
            "({}) and ({})",
            random_filter(rng, depth - 1),
            random_filter(rng, depth - 1)
        ),
        1 => format!(
            "({}) or ({})",
            random_filter(rng, depth - 1),
            random_filter(rng, depth - 1)
        ),
        _ => format!("not ({})", random_filter(rng, depth - 1)),
    }
}

#[actix_web::test]
async fn differential_sql_matches_in_memory_evaluation() {
    let (app, _db) = app().await;
    let registry = Registry::load().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5c1);
    for i in 0..60 {
        call(
            &app,
            "POST",
            "/scim/v2/Users",
            Some(random_user(&mut rng, i)),
        )
        .await
        .expect(201);
    }
    let all = get(&app, TOKEN, "/scim/v2/Users?count=1000").await;
    let resources = all.body["Resources"].as_array().unwrap().clone();
    assert_eq!(resources.len(), 60);
    let mut nonempty = 0;
    for _ in 0..300 {
        let text = random_filter(&mut rng, 3);
        let parsed =
            parse_filter(&text, &Limits::default()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let cond = match query::resolve(&registry, Rtype::User, &parsed) {
            Ok(c) => c,
            Err(e) => {
                // Invalid for the schema (e.g. `gt` on a boolean): the server must say so too.
                let r = get(
                    &app,
                    TOKEN,
                    &format!("/scim/v2/Users?filter={}", urlencode(&text)),
                )
                .await;
                r.expect_error(400, Some("invalidFilter"));
                let _ = e;
                continue;
            }
        };
        let expected: BTreeSet<String> = resources
            .iter()
            .filter(|r| query::matches(&cond, r))
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let r = get(
            &app,
            TOKEN,
            &format!(
                "/scim/v2/Users?count=1000&attributes=id&filter={}",
                urlencode(&text)
            ),
        )
        .await;
        r.expect(200);
        let got: BTreeSet<String> = r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "filter {text}");
        // Pages of a few, the total counted (the first page, then a later one): the matches
        // in creation order.
        let ordered: Vec<String> = resources
            .iter()
            .filter(|r| query::matches(&cond, r))
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        for start in [1, 2] {
            let r = get(
                &app,
                TOKEN,
                &format!(
                    "/scim/v2/Users?count=2&startIndex={start}&attributes=id&filter={}",
                    urlencode(&text)
                ),
            )
            .await;
            r.expect(200);
            assert_eq!(
                r.body["totalResults"],
                json!(ordered.len()),
                "filter {text} startIndex={start}: totalResults"
            );
            let page: Vec<String> = r.body["Resources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["id"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let from = (start - 1).min(ordered.len());
            let to = (start + 1).min(ordered.len());
            assert_eq!(
                page,
                ordered[from..to],
                "filter {text}: count=2&startIndex={start}"
            );
        }
        if !expected.is_empty() && expected.len() < 60 {
            nonempty += 1;
        }
    }
    assert!(
        nonempty > 50,
        "the generator should produce selective filters ({nonempty})"
    );
}

/// `Db::snapshot`, which a list's count and page take when they are two statements: reads
/// inside one see a single state although another connection commits between them, and
/// outside one each statement reads afresh (so the writes below do land between the reads);
/// inside a transaction it opens none of its own (the transaction is the snapshot).
#[actix_web::test]
async fn a_snapshot_holds_one_state_across_statements() {
    use scimitar::storage::sql::Sql;
    // The database as the server opens it (on SQLite, in WAL mode: readers keep their
    // snapshot while a writer commits).
    let (_app, db) = app().await;
    let open = || {
        scimitar::storage::conn::Conn::establish(
            &scimitar::storage::conn::DbUrl::parse(&db.url).unwrap(),
            scimitar::config::SqliteSync::Normal,
        )
        .unwrap()
    };
    let (mut reader, mut writer) = (open(), open());
    writer
        .db()
        .execute(&Sql::new("CREATE TABLE snapshot_probe (n BIGINT)"))
        .unwrap();
    let count = Sql::new("SELECT COUNT(*) AS n FROM snapshot_probe");
    let mut add = || {
        writer
            .db()
            .execute(&Sql::new("INSERT INTO snapshot_probe (n) VALUES (1)"))
            .unwrap();
    };
    let seen = reader
        .db()
        .snapshot(|db| {
            let first = db.count(&count)?;
            add();
            Ok::<_, scimitar::storage::StorageError>((first, db.count(&count)?))
        })
        .unwrap();
    assert_eq!(
        seen,
        (0, 0),
        "a commit between the reads was seen inside the snapshot"
    );
    let mut plain = reader.db();
    let first = plain.count(&count).unwrap();
    add();
    assert_eq!((first, plain.count(&count).unwrap()), (1, 2));
    // Inside a transaction: the transaction's snapshot, and the snapshot adds no level.
    let seen = reader
        .read_tx(|db| {
            let first = db.count(&count)?;
            add();
            db.snapshot(|db| Ok::<_, scimitar::storage::StorageError>((first, db.count(&count)?)))
        })
        .unwrap();
    assert_eq!(seen, (2, 2));
    assert_eq!(reader.db().count(&count).unwrap(), 3);
}
