//! Table-driven tests of the PATCH engine: every example of RFC 7644 §3.5.2, the rules of
//! §3.5.2.1–§3.5.2.3, and each client-dialect tolerance of `compat.rs` replayed with the
//! payload Entra ID or Okta sends (accepted by default; refused or different when strict).

use serde_json::{json, Value};

use super::{apply, parse, MemberChange, Patched};
use crate::scim::compat::Compat;
use crate::scim::error::{ScimResult, ScimType};
use crate::scim::resource::{Doc, MemberInput};
use crate::scim::schema::{Registry, Rtype, PATCH_OP};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// RFC 7644 §3.5.2's member ids ("Babs Jensen" and "James Smith").
const BABS: &str = "2819c223-7f76-453a-919d-413861904646";
const JAMES: &str = "08e1d05d-121c-4561-8b96-473d93df9210";

fn registry() -> Registry {
    Registry::load().expect("schemas load")
}

fn to_doc(v: &Value) -> Doc {
    v.as_object().cloned().expect("a document is a JSON object")
}

/// A PatchOp message around `ops`.
fn msg(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn run(r: &Registry, rt: Rtype, doc: &Doc, body: &Value, compat: &Compat) -> ScimResult<Patched> {
    let ops = parse(body, compat)?;
    apply(r, rt, doc, &ops, compat)
}

/// What a case expects.
#[derive(Clone, Debug)]
enum Want {
    /// Success with this document and no membership change.
    Gives(Value),
    /// Success with this document and these membership changes.
    GivesMembers(Value, Vec<MemberChange>),
    /// Failure with this scimType.
    Fails(ScimType),
}

use Want::{Fails, Gives, GivesMembers};

struct Case {
    name: &'static str,
    rt: Rtype,
    doc: Value,
    body: Value,
    want: Want,
}

fn user(name: &'static str, doc: Value, ops: Value, want: Want) -> Case {
    Case {
        name,
        rt: Rtype::User,
        doc,
        body: msg(ops),
        want,
    }
}

fn group(name: &'static str, doc: Value, ops: Value, want: Want) -> Case {
    Case {
        name,
        rt: Rtype::Group,
        doc,
        body: msg(ops),
        want,
    }
}

/// Runs one case and checks the outcome. The input document must come back untouched in
/// every case: `apply` works on a copy, so a failing operation leaves nothing half-applied.
#[track_caller]
fn check(
    r: &Registry,
    rt: Rtype,
    name: &str,
    doc: &Value,
    body: &Value,
    want: &Want,
    compat: &Compat,
) {
    let input = to_doc(doc);
    let before = input.clone();
    let got = run(r, rt, &input, body, compat);
    assert_eq!(input, before, "{name}: the input document changed");
    match (want, got) {
        (Gives(d), Ok(p)) => {
            assert_eq!(Value::Object(p.doc), *d, "{name}: document");
            assert!(p.members.is_empty(), "{name}: {:?}", p.members);
        }
        (GivesMembers(d, m), Ok(p)) => {
            assert_eq!(Value::Object(p.doc), *d, "{name}: document");
            assert_eq!(p.members, *m, "{name}: membership changes");
        }
        (Fails(t), Err(e)) => {
            assert_eq!(e.scim_type, *t, "{name}: scimType (detail: {})", e.detail);
            assert!(!e.detail.is_empty(), "{name}: an error needs a detail");
        }
        (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
    }
}

fn run_table(cases: &[Case], compat: &Compat) {
    let r = registry();
    for c in cases {
        check(&r, c.rt, c.name, &c.doc, &c.body, &c.want, compat);
    }
}

fn member(value: &str, display: Option<&str>) -> MemberInput {
    MemberInput {
        value: value.into(),
        kind: None,
        display: display.map(str::to_string),
    }
}

/// Barbara Jensen, after RFC 7643 §8.2 (trimmed to what the cases touch).
fn bjensen() -> Value {
    json!({
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "US",
             "formatted": "100 Universal City Plaza\nHollywood, CA 91608 US", "primary": true},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "US",
             "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 US"}
        ]
    })
}

/// `bjensen()` with `f` applied.
fn bjensen_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = bjensen();
    f(&mut v);
    v
}

fn without(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
}

fn tour_guides() -> Value {
    json!({"displayName": "Tour Guides"})
}

fn babs_member() -> Value {
    json!({"display": "Babs Jensen", "$ref": format!("https://example.com/v2/Users/{BABS}"), "value": BABS})
}

fn james_member() -> Value {
    json!({"display": "James Smith", "$ref": format!("https://example.com/v2/Users/{JAMES}"), "value": JAMES})
}

// ---------------------------------------------------------------------------------------
// RFC 7644 §3.5.2: every example of the section, as printed (the RFC abbreviates one member
// id as "2819c223-7f76-...413861904646"; the full id from its other examples is used).

#[test]
fn rfc7644_examples() {
    let cases = [
        // §3.5.2.1: add a member to a group.
        group(
            "3.5.2.1 add members",
            tour_guides(),
            json!([{"op": "add", "path": "members", "value": [babs_member()]}]),
            GivesMembers(
                tour_guides(),
                vec![MemberChange::Add(vec![member(BABS, Some("Babs Jensen"))])],
            ),
        ),
        // §3.5.2.1: add without a path; the value's attributes are added ("nickname" in the
        // RFC's own lower case: attribute names are case-insensitive, RFC 7643 §2.1).
        user(
            "3.5.2.1 add without path",
            json!({"userName": "bjensen@example.com",
                   "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}]}),
            json!([{"op": "add", "value": {
                "emails": [{"value": "babs@jensen.org", "type": "home"}],
                "nickname": "Babs"}}]),
            Gives(json!({"userName": "bjensen@example.com",
                       "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                                  {"value": "babs@jensen.org", "type": "home"}],
                       "nickName": "Babs"})),
        ),
        // §3.5.2.2: remove a single member.
        group(
            "3.5.2.2 remove one member by filter",
            tour_guides(),
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\"]")}]),
            GivesMembers(tour_guides(), vec![MemberChange::Remove(vec![BABS.into()])]),
        ),
        // §3.5.2.2: remove all members.
        group(
            "3.5.2.2 remove all members",
            tour_guides(),
            json!([{"op": "remove", "path": "members"}]),
            GivesMembers(tour_guides(), vec![MemberChange::RemoveAll]),
        ),
        // §3.5.2.2: remove one value of a complex multi-valued attribute.
        user(
            "3.5.2.2 remove emails by compound filter",
            bjensen(),
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
            Gives(bjensen_with(|v| {
                v["emails"] = json!([{"value": "babs@jensen.org", "type": "home"}]);
            })),
        ),
        // §3.5.2.2: remove one member by filter, then add another, in one request.
        group(
            "3.5.2.2 remove by filter then add",
            tour_guides(),
            json!([
                {"op": "remove", "path": format!("members[value eq \"{BABS}\"]")},
                {"op": "add", "path": "members", "value": [james_member()]}
            ]),
            GivesMembers(
                tour_guides(),
                vec![
                    MemberChange::Remove(vec![BABS.into()]),
                    MemberChange::Add(vec![member(JAMES, Some("James Smith"))]),
                ],
            ),
        ),
        // §3.5.2.2: replace all members with remove + add.
        group(
            "3.5.2.2 remove all then add",
            tour_guides(),
            json!([
                {"op": "remove", "path": "members"},
                {"op": "add", "path": "members", "value": [babs_member(), james_member()]}
            ]),
            GivesMembers(
                tour_guides(),
                vec![
                    MemberChange::RemoveAll,
                    MemberChange::Add(vec![
                        member(BABS, Some("Babs Jensen")),
                        member(JAMES, Some("James Smith")),
                    ]),
                ],
            ),
        ),
        // §3.5.2.3: replace all members in one operation.
        group(
            "3.5.2.3 replace members",
            tour_guides(),
            json!([{"op": "replace", "path": "members", "value": [babs_member(), james_member()]}]),
            GivesMembers(
                tour_guides(),
                vec![MemberChange::Replace(vec![
                    member(BABS, Some("Babs Jensen")),
                    member(JAMES, Some("James Smith")),
                ])],
            ),
        ),
        // §3.5.2.3: replace the whole work address.
        user(
            "3.5.2.3 replace addresses[type eq work]",
            bjensen(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {
                "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
                "region": "CA", "postalCode": "91608", "country": "US",
                "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true}}]),
            Gives(bjensen_with(|v| {
                v["addresses"][0] = json!({
                    "type": "work", "streetAddress": "911 Universal City Plaza",
                    "locality": "Hollywood", "region": "CA", "postalCode": "91608",
                    "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
                    "primary": true});
            })),
        ),
        // §3.5.2.3: replace one sub-attribute of the work address.
        user(
            "3.5.2.3 replace addresses[type eq work].streetAddress",
            bjensen(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress",
                    "value": "1010 Broadway Ave"}]),
            Gives(bjensen_with(|v| {
                v["addresses"][0]["streetAddress"] = json!("1010 Broadway Ave");
            })),
        ),
        // §3.5.2.3: replace without a path; multi-valued attributes are replaced whole.
        user(
            "3.5.2.3 replace without path",
            json!({"userName": "bjensen@example.com",
                   "emails": [{"value": "old@example.com", "type": "other"}]}),
            json!([{"op": "replace", "value": {
                "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                           {"value": "babs@jensen.org", "type": "home"}],
                "nickname": "Babs"}}]),
            Gives(json!({"userName": "bjensen@example.com",
                       "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                                  {"value": "babs@jensen.org", "type": "home"}],
                       "nickName": "Babs"})),
        ),
        // RFC 7644 §3.10: an extension attribute addressed by its fully qualified name; the
        // manager id is RFC 7643 §8.3's.
        user(
            "3.10 replace enterprise manager by URN path",
            json!({"userName": "bjensen@example.com"}),
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager"),
                    "value": {"value": "26118915-6090-4610-87a4-49d0767e9fde"}}]),
            Gives(json!({"userName": "bjensen@example.com",
                       ENTERPRISE: {"manager": {"value": "26118915-6090-4610-87a4-49d0767e9fde"}}})),
        ),
        user(
            "3.10 add enterprise manager.value by URN path",
            json!({"userName": "bjensen@example.com", ENTERPRISE: {"department": "Tour Operations"}}),
            json!([{"op": "add", "path": format!("{ENTERPRISE}:manager.value"),
                    "value": "26118915-6090-4610-87a4-49d0767e9fde"}]),
            Gives(json!({"userName": "bjensen@example.com",
                       ENTERPRISE: {"department": "Tour Operations",
                                    "manager": {"value": "26118915-6090-4610-87a4-49d0767e9fde"}}})),
        ),
        user(
            "3.10 remove enterprise manager by URN path drops the empty extension",
            json!({"userName": "bjensen@example.com", ENTERPRISE: {"manager": {"value": "m"}}}),
            json!([{"op": "remove", "path": format!("{ENTERPRISE}:manager")}]),
            Gives(json!({"userName": "bjensen@example.com"})),
        ),
        user(
            "3.10 core attribute by its URN",
            bjensen(),
            json!([{"op": "replace",
                    "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
                    "value": "Babs"}]),
            Gives(bjensen_with(|v| v["name"]["givenName"] = json!("Babs"))),
        ),
        user(
            "3.5.2.3 replace a whole extension merges its attributes",
            json!({"userName": "u", ENTERPRISE: {"department": "Tour Operations", "costCenter": "4130"}}),
            json!([{"op": "replace", "path": ENTERPRISE, "value": {"department": "Finance"}}]),
            Gives(
                json!({"userName": "u", ENTERPRISE: {"department": "Finance", "costCenter": "4130"}}),
            ),
        ),
    ];
    // RFC-conformant requests mean the same with or without the dialect tolerances.
    run_table(&cases, &Compat::default());
    run_table(&cases, &Compat::strict());
}

// ---------------------------------------------------------------------------------------
// The rules of §3.5.2.1–§3.5.2.3.

#[test]
fn add_replace_remove_rules() {
    let work = json!({"value": "bjensen@example.com", "type": "work", "primary": true});
    let home = json!({"value": "babs@jensen.org", "type": "home"});
    let cases = [
        // §3.5.2.1: add to a multi-valued attribute appends; a value already there is not
        // added twice.
        user(
            "add appends without duplicates",
            json!({"userName": "u", "emails": [work]}),
            json!([{"op": "add", "path": "emails", "value": [work, home]}]),
            Gives(json!({"userName": "u", "emails": [work, home]})),
        ),
        user(
            "add of a value already present changes nothing",
            json!({"userName": "u", "emails": [work, home]}),
            json!([{"op": "add", "path": "emails", "value": [home]}]),
            Gives(json!({"userName": "u", "emails": [work, home]})),
        ),
        user(
            "add of the primary value already present changes nothing",
            json!({"userName": "u", "emails": [work, home]}),
            json!([{"op": "add", "path": "emails", "value": [work]}]),
            Gives(json!({"userName": "u", "emails": [work, home]})),
        ),
        user(
            "add to an absent multi-valued attribute",
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "emails", "value": [home]}]),
            Gives(json!({"userName": "u", "emails": [home]})),
        ),
        // §3.5.2.1: add on a singular attribute replaces its value.
        user(
            "add on a singular attribute sets it",
            json!({"userName": "u", "title": "Tour Guide"}),
            json!([{"op": "add", "path": "title", "value": "Guide"}]),
            Gives(json!({"userName": "u", "title": "Guide"})),
        ),
        // §3.5.2.1/.3: a singular complex attribute merges the given sub-attributes.
        user(
            "add on a complex attribute merges",
            bjensen(),
            json!([{"op": "add", "path": "name", "value": {"middleName": "Jane"}}]),
            Gives(bjensen_with(|v| v["name"]["middleName"] = json!("Jane"))),
        ),
        user(
            "replace on a complex attribute leaves other sub-attributes",
            bjensen(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "Babs"}}]),
            Gives(bjensen_with(|v| v["name"]["givenName"] = json!("Babs"))),
        ),
        // §3.5.2.3: replace on a multi-valued attribute replaces all its values.
        user(
            "replace on multi-valued replaces all",
            json!({"userName": "u", "emails": [work, home]}),
            json!([{"op": "replace", "path": "emails", "value": [{"value": "x@example.com", "type": "other"}]}]),
            Gives(
                json!({"userName": "u", "emails": [{"value": "x@example.com", "type": "other"}]}),
            ),
        ),
        // §3.5.2.3: replace of an attribute that does not exist is an add.
        user(
            "replace of an absent attribute adds it",
            json!({"userName": "u"}),
            json!([{"op": "replace", "path": "nickName", "value": "Babs"}]),
            Gives(json!({"userName": "u", "nickName": "Babs"})),
        ),
        // §3.5.2.3: a value filter that matches nothing is noTarget.
        user(
            "replace on a value path matching nothing",
            bjensen(),
            json!([{"op": "replace", "path": "addresses[type eq \"other\"]",
                    "value": {"type": "other", "locality": "x"}}]),
            Fails(ScimType::NoTarget),
        ),
        user(
            "replace on a value path of an absent attribute",
            json!({"userName": "u"}),
            json!([{"op": "replace", "path": "emails[value eq \"a@example.com\"]",
                    "value": {"value": "b@example.com"}}]),
            Fails(ScimType::NoTarget),
        ),
        // §3.5.2.3: every matching value is replaced, and the matching sub-attribute of
        // every matching value.
        user(
            "replace sub-attribute of every matching value",
            json!({"userName": "u", "phoneNumbers": [
                {"value": "1", "type": "work"}, {"value": "2", "type": "work"}, {"value": "3", "type": "home"}]}),
            json!([{"op": "replace", "path": "phoneNumbers[type eq \"work\"].display", "value": "desk"}]),
            Gives(json!({"userName": "u", "phoneNumbers": [
                {"value": "1", "type": "work", "display": "desk"},
                {"value": "2", "type": "work", "display": "desk"},
                {"value": "3", "type": "home"}]})),
        ),
        // §3.5.2.2: removing values that are not there succeeds with no change.
        user(
            "remove on a value path matching nothing",
            bjensen(),
            json!([{"op": "remove", "path": "emails[type eq \"pager\"]"}]),
            Gives(bjensen()),
        ),
        user(
            "remove of an absent attribute",
            bjensen(),
            json!([{"op": "remove", "path": "nickName"}]),
            Gives(bjensen()),
        ),
        user(
            "remove a singular attribute",
            json!({"userName": "u", "title": "Tour Guide"}),
            json!([{"op": "remove", "path": "title"}]),
            Gives(json!({"userName": "u"})),
        ),
        user(
            "remove a multi-valued attribute",
            bjensen(),
            json!([{"op": "remove", "path": "emails"}]),
            Gives(bjensen_with(|v| without(v, "emails"))),
        ),
        user(
            "remove the last value leaves the attribute unassigned",
            json!({"userName": "u", "emails": [home]}),
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
            Gives(json!({"userName": "u"})),
        ),
        user(
            "remove a sub-attribute of matching values",
            bjensen(),
            json!([{"op": "remove", "path": "addresses[type eq \"home\"].formatted"}]),
            Gives(bjensen_with(|v| {
                without(&mut v["addresses"][1], "formatted")
            })),
        ),
        user(
            "remove a sub-attribute of a complex attribute",
            bjensen(),
            json!([{"op": "remove", "path": "name.givenName"}]),
            Gives(bjensen_with(|v| {
                v["name"] = json!({"familyName": "Jensen"})
            })),
        ),
        // §3.5.2.1: a no-path value carries extension attributes under the extension's URN.
        user(
            "no-path add with an extension object",
            json!({"userName": "u", ENTERPRISE: {"costCenter": "4130"}}),
            json!([{"op": "add", "value": {ENTERPRISE: {
                "department": "Tour Operations", "manager": {"value": "m", "displayName": "Boss"}}}}]),
            Gives(json!({"userName": "u", ENTERPRISE: {
                "costCenter": "4130", "department": "Tour Operations", "manager": {"value": "m"}}})),
        ),
        // RFC 7643 §2.4: at most one value is primary; setting one clears the others.
        user(
            "add a primary value clears the old primary",
            json!({"userName": "u", "emails": [work, home]}),
            json!([{"op": "add", "path": "emails",
                    "value": [{"value": "new@example.com", "type": "other", "primary": true}]}]),
            Gives(json!({"userName": "u", "emails": [
                {"value": "bjensen@example.com", "type": "work"}, home,
                {"value": "new@example.com", "type": "other", "primary": true}]})),
        ),
        user(
            "primary set on one value through a filter clears the others",
            json!({"userName": "u", "emails": [work, home]}),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
            Gives(json!({"userName": "u", "emails": [
                {"value": "bjensen@example.com", "type": "work"},
                {"value": "babs@jensen.org", "type": "home", "primary": true}]})),
        ),
        user(
            "replace a filtered value with a primary one clears the others",
            bjensen(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"]",
                    "value": {"value": "babs@jensen.org", "type": "home", "primary": true}}]),
            Gives(bjensen_with(|v| {
                v["emails"] = json!([{"value": "bjensen@example.com", "type": "work"},
                                     {"value": "babs@jensen.org", "type": "home", "primary": true}]);
            })),
        ),
        user(
            "two primary values in one add",
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "emails", "value": [
                {"value": "a@example.com", "primary": true}, {"value": "b@example.com", "primary": true}]}]),
            Fails(ScimType::InvalidValue),
        ),
        // Operations apply in order; a later one sees the earlier one's result.
        user(
            "operations apply in order",
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "title", "value": "a"},
                   {"op": "replace", "path": "title", "value": "b"},
                   {"op": "add", "path": "nickName", "value": "n"},
                   {"op": "remove", "path": "nickName"}]),
            Gives(json!({"userName": "u", "title": "b"})),
        ),
        // `password` is type-checked and discarded, never stored.
        user(
            "password is checked then dropped",
            json!({"userName": "u"}),
            json!([{"op": "replace", "path": "password", "value": "t1meMa$heen"}]),
            Gives(json!({"userName": "u"})),
        ),
        group(
            "group displayName add",
            tour_guides(),
            json!([{"op": "add", "path": "displayName", "value": "Guides"}]),
            Gives(json!({"displayName": "Guides"})),
        ),
    ];
    run_table(&cases, &Compat::default());
    run_table(&cases, &Compat::strict());
}

#[test]
fn remove_members_by_other_filters_is_a_condition() {
    let r = registry();
    let body = msg(json!([{"op": "remove", "path": "members[type eq \"Group\"]"}]));
    for compat in [Compat::default(), Compat::strict()] {
        let p = run(&r, Rtype::Group, &to_doc(&tour_guides()), &body, &compat).expect("patch");
        assert!(
            matches!(p.members.as_slice(), [MemberChange::RemoveWhere(_)]),
            "{:?}",
            p.members
        );
    }
    // `value eq a or value eq b` is a plain list of ids.
    let body = msg(json!([{"op": "remove",
        "path": format!("members[value eq \"{BABS}\" or value eq \"{JAMES}\"]")}]));
    let p = run(
        &r,
        Rtype::Group,
        &to_doc(&tour_guides()),
        &body,
        &Compat::strict(),
    )
    .expect("patch");
    assert_eq!(
        p.members,
        vec![MemberChange::Remove(vec![BABS.into(), JAMES.into()])]
    );
}

/// Cases on `doc` (of type `rt`) that all fail with `t`: each one's name and operations.
fn failing(
    rt: Rtype,
    doc: fn() -> Value,
    t: ScimType,
    cases: Vec<(&'static str, Value)>,
) -> Vec<Case> {
    cases
        .into_iter()
        .map(|(name, ops)| Case {
            name,
            rt,
            doc: doc(),
            body: msg(ops),
            want: Fails(t),
        })
        .collect()
}

/// Cases on Barbara Jensen that all fail with `t`.
fn user_failing(t: ScimType, cases: Vec<(&'static str, Value)>) -> Vec<Case> {
    failing(Rtype::User, bjensen, t, cases)
}

/// Cases on the Tour Guides group that all fail with `t`.
fn group_failing(t: ScimType, cases: Vec<(&'static str, Value)>) -> Vec<Case> {
    failing(Rtype::Group, tour_guides, t, cases)
}

#[test]
fn errors() {
    let cases: Vec<Case> = [
        // readOnly attributes (RFC 7643 §2.2; RFC 7644 §3.5.2: "mutability").
        user_failing(ScimType::Mutability, vec![
            ("replace id", json!([{"op": "replace", "path": "id", "value": "x"}])),
            ("add groups", json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])),
            ("replace meta", json!([{"op": "replace", "path": "meta", "value": {"resourceType": "x"}}])),
            ("replace meta.created", json!([{"op": "replace", "path": "meta.created", "value": "2026-01-01T00:00:00Z"}])),
            ("remove groups", json!([{"op": "remove", "path": "groups"}])),
            ("readOnly sub-attribute", json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager.displayName"), "value": "Boss"}])),
        ]),
        group_failing(ScimType::Mutability, vec![
            ("member sub-attributes are not patched", json!([{"op": "replace", "path": format!("members[value eq \"{BABS}\"].display"), "value": "B"}])),
        ]),
        // Atomic: op 1 is valid, op 2 is not; nothing is applied (RFC 7644 §3.5.2).
        user_failing(ScimType::InvalidValue, vec![
            ("an error in op 2 undoes op 1", json!([
                {"op": "add", "path": "title", "value": "x"},
                {"op": "add", "path": "active", "value": 3}
            ])),
        ]),
        user_failing(ScimType::NoTarget, vec![
            ("an error in op 2 after a remove", json!([
                {"op": "remove", "path": "emails"},
                {"op": "replace", "path": "addresses[type eq \"other\"]", "value": {"locality": "x"}}
            ])),
        ]),
        // Required attributes (RFC 7643 §2.2) cannot become unassigned: RFC 7644 §3.5.2.2,
        // "is removed or becomes unassigned and is defined as a required attribute", is
        // `mutability`.
        user_failing(ScimType::Mutability, vec![
            ("remove userName", json!([{"op": "remove", "path": "userName"}])),
            ("remove userName after a valid op", json!([
                {"op": "add", "path": "title", "value": "x"},
                {"op": "remove", "path": "userName"}
            ])),
            ("unassign userName by a no-path replace with null", json!([{"op": "replace", "value": {"userName": null}}])),
        ]),
        user_failing(ScimType::InvalidValue, vec![
            ("replace userName with [] (a type error, not an unassignment)", json!([{"op": "replace", "path": "userName", "value": []}])),
        ]),
        group_failing(ScimType::Mutability, vec![
            ("remove displayName", json!([{"op": "remove", "path": "displayName"}])),
            ("unassign displayName by a no-path replace with null", json!([{"op": "replace", "value": {"displayName": null}}])),
        ]),
        // `remove` selects by path alone (RFC 7644 §3.5.2.2): a `value` would be ignored and
        // every email removed where the client meant one.
        user_failing(ScimType::InvalidValue, vec![
            ("remove with a value on a multi-valued attribute", json!([{"op": "remove", "path": "emails", "value": [{"value": "bjensen@example.com"}]}])),
            ("remove with a value on a whole extension", json!([{"op": "remove", "path": ENTERPRISE, "value": {"department": "x"}}])),
        ]),
        // Wrong value types.
        user_failing(ScimType::InvalidValue, vec![
            ("boolean as a number", json!([{"op": "replace", "path": "active", "value": 1}])),
            ("boolean as a word", json!([{"op": "replace", "path": "active", "value": "yes"}])),
            ("string as a number", json!([{"op": "replace", "path": "name.givenName", "value": 5}])),
            ("singular as an array", json!([{"op": "replace", "path": "displayName", "value": ["a"]}])),
            ("complex as a string", json!([{"op": "add", "path": "emails", "value": "x@example.com"}])),
            ("unknown sub-attribute in a value", json!([{"op": "add", "path": "emails", "value": [{"value": "x", "shoe": 1}]}])),
            ("filtered value not an object", json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": "x"}])),
            ("extension not an object", json!([{"op": "replace", "path": ENTERPRISE, "value": "x"}])),
            ("add without value", json!([{"op": "add", "path": "title"}])),
            ("replace with null", json!([{"op": "replace", "path": "title", "value": null}])),
            ("no-path value not an object", json!([{"op": "replace", "value": "x"}])),
        ]),
        group_failing(ScimType::InvalidValue, vec![
            ("member without value", json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}])),
        ]),
        // Unknown or missing op (RFC 7644 §3.5.2: op is "add", "remove" or "replace").
        user_failing(ScimType::InvalidSyntax, vec![
            ("unknown op", json!([{"op": "jump", "path": "title", "value": "x"}])),
            ("missing op", json!([{"path": "title", "value": "x"}])),
            ("op not a string", json!([{"op": 1, "path": "title", "value": "x"}])),
            ("operation not an object", json!(["add"])),
            ("no operations", json!([])),
        ]),
        // Malformed paths, unknown attributes, filters that do not parse: invalidPath.
        user_failing(ScimType::InvalidPath, vec![
            ("unclosed filter", json!([{"op": "add", "path": "title[", "value": "x"}])),
            ("filter missing its value", json!([{"op": "replace", "path": "emails[type eq ]", "value": "x"}])),
            ("filter with an unknown operator", json!([{"op": "remove", "path": "emails[type is \"work\"]"}])),
            ("two sub-attributes", json!([{"op": "replace", "path": "name.givenName.x", "value": "x"}])),
            ("trailing junk", json!([{"op": "replace", "path": "title x", "value": "x"}])),
            ("path not a string", json!([{"op": "replace", "path": 5, "value": "x"}])),
            ("unknown attribute", json!([{"op": "add", "path": "shoeSize", "value": 1}])),
            ("unknown sub-attribute", json!([{"op": "replace", "path": "name.middle", "value": "x"}])),
            ("sub-attribute of a simple attribute", json!([{"op": "replace", "path": "userName.x", "value": "x"}])),
            ("unknown attribute in a filter", json!([{"op": "remove", "path": "emails[shoe eq \"x\"]"}])),
            ("filter on a singular attribute", json!([{"op": "remove", "path": "name[givenName eq \"x\"]"}])),
            ("filter comparing the wrong type", json!([{"op": "remove", "path": "emails[primary eq \"x\"]"}])),
            ("unknown extension", json!([{"op": "add", "path": "urn:example:ext:2.0:User:shoe", "value": "x"}])),
            ("unknown attribute of an extension", json!([{"op": "add", "path": format!("{ENTERPRISE}:shoe"), "value": "x"}])),
            ("unknown attribute in a no-path value", json!([{"op": "add", "value": {"shoeSize": 1}}])),
            ("filter in a no-path value key", json!([{"op": "add", "value": {"emails[type eq \"work\"]": {"value": "x"}}}])),
            ("every value's sub-attribute", json!([{"op": "replace", "path": "emails.type", "value": "work"}])),
        ]),
        // RFC 7644 §3.5.2.2: remove without a path is noTarget.
        user_failing(ScimType::NoTarget, vec![
            ("remove without path", json!([{"op": "remove"}])),
            ("remove with an empty path", json!([{"op": "remove", "path": ""}])),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect();
    run_table(&cases, &Compat::default());
    run_table(&cases, &Compat::strict());

    // The PatchOp message itself (RFC 7644 §3.5.2): schemas and Operations are required.
    let r = registry();
    let bodies = [
        (
            "missing schemas",
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
        ),
        (
            "wrong schemas",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                 "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
        ),
        (
            "schemas not a list",
            json!({"schemas": PATCH_OP, "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
        ),
        ("missing Operations", json!({"schemas": [PATCH_OP]})),
        (
            "Operations not a list",
            json!({"schemas": [PATCH_OP], "Operations": {"op": "add"}}),
        ),
        (
            "not an object",
            json!([{"op": "add", "path": "title", "value": "x"}]),
        ),
    ];
    for compat in [Compat::default(), Compat::strict()] {
        for (name, body) in &bodies {
            let want = Fails(ScimType::InvalidSyntax);
            check(&r, Rtype::User, name, &bjensen(), body, &want, &compat);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Client dialects (`compat.rs`): each tolerance with the payload its client sends. A row
// runs three times: with every tolerance on (the default), with every tolerance off
// (`Compat::strict()`), and with only its own tolerance off, which shows that the outcome
// depends on that flag and no other.

struct Dialect {
    name: &'static str,
    rt: Rtype,
    doc: Value,
    ops: Value,
    /// Turns off the tolerance this payload needs (None: RFC-conformant, none needed).
    flag_off: Option<fn(&mut Compat)>,
    default: Want,
    strict: Want,
}

/// A row whose payload needs no tolerance: the same outcome with every flag on or off.
fn conformant(name: &'static str, rt: Rtype, doc: Value, ops: Value, want: Want) -> Dialect {
    Dialect {
        name,
        rt,
        doc,
        ops,
        flag_off: None,
        strict: want.clone(),
        default: want,
    }
}

fn run_dialects(rows: &[Dialect]) {
    let r = registry();
    for d in rows {
        let body = msg(d.ops.clone());
        check(
            &r,
            d.rt,
            d.name,
            &d.doc,
            &body,
            &d.default,
            &Compat::default(),
        );
        let name = format!("{} (strict)", d.name);
        check(&r, d.rt, &name, &d.doc, &body, &d.strict, &Compat::strict());
        if let Some(off) = d.flag_off {
            let mut c = Compat::default();
            off(&mut c);
            assert_ne!(
                c,
                Compat::default(),
                "{}: flag_off must turn a flag off",
                d.name
            );
            let name = format!("{} (only its flag off)", d.name);
            check(&r, d.rt, &name, &d.doc, &body, &d.strict, &c);
        }
    }
}

#[test]
fn client_dialects() {
    let entra_user = json!({
        "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "active": true,
        "emails": [{"primary": true, "type": "work",
                    "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}]
    });
    let no_email = json!({"userName": "jyoung@testuser.com", "active": true});
    let rows = [
        // Entra ID: `op` capitalised ("Update User [Multi-valued properties]", with the work
        // email present).
        Dialect {
            name: "Entra op \"Replace\"",
            rt: Rtype::User,
            doc: entra_user.clone(),
            ops: json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ]),
            flag_off: Some(|c| c.op_case_insensitive = false),
            default: Gives(json!({
                "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                "name": {"formatted": "givenName familyName", "familyName": "updatedFamilyName", "givenName": "givenName"},
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}]
            })),
            strict: Fails(ScimType::InvalidSyntax),
        },
        Dialect {
            name: "Entra op \"Add\" on a single-valued attribute",
            rt: Rtype::User,
            doc: no_email.clone(),
            ops: json!([{"op": "Add", "path": "nickName", "value": "Babs"}]),
            flag_off: Some(|c| c.op_case_insensitive = false),
            default: Gives(
                json!({"userName": "jyoung@testuser.com", "active": true, "nickName": "Babs"}),
            ),
            strict: Fails(ScimType::InvalidSyntax),
        },
        // Entra ID: disable a user, booleans as strings ("Requests made to disable users,
        // without feature flag"), verbatim and with only the boolean deviating.
        Dialect {
            name: "Entra \"active\": \"False\"",
            rt: Rtype::User,
            doc: entra_user.clone(),
            ops: json!([{"op": "Replace", "path": "active", "value": "False"}]),
            flag_off: None,
            default: Gives(json!({
                "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "active": false,
                "emails": [{"primary": true, "type": "work",
                            "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}]
            })),
            strict: Fails(ScimType::InvalidSyntax),
        },
        Dialect {
            name: "boolean string alone",
            rt: Rtype::User,
            doc: no_email.clone(),
            ops: json!([{"op": "replace", "path": "active", "value": "False"}]),
            flag_off: Some(|c| c.boolean_strings = false),
            default: Gives(json!({"userName": "jyoung@testuser.com", "active": false})),
            strict: Fails(ScimType::InvalidValue),
        },
        Dialect {
            name: "boolean string in a no-path value",
            rt: Rtype::User,
            doc: no_email.clone(),
            ops: json!([{"op": "replace", "value": {"active": "TRUE"}}]),
            flag_off: Some(|c| c.boolean_strings = false),
            default: Gives(json!({"userName": "jyoung@testuser.com", "active": true})),
            strict: Fails(ScimType::InvalidValue),
        },
        // Entra ID: remove members by a value list ("Update Group [Remove Members]"). By the
        // letter of RFC 7644 §3.5.2.2 a remove on `members` without a filter removes all of
        // them; strict refuses instead of guessing.
        Dialect {
            name: "Entra remove members with a value list",
            rt: Rtype::Group,
            doc: tour_guides(),
            ops: json!([{"op": "Remove", "path": "members",
                         "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
            flag_off: None,
            default: GivesMembers(
                tour_guides(),
                vec![MemberChange::Remove(vec!["f648f8d5ea4e4cd38e9c".into()])],
            ),
            strict: Fails(ScimType::InvalidSyntax),
        },
        Dialect {
            name: "remove members with a value list alone",
            rt: Rtype::Group,
            doc: tour_guides(),
            ops: json!([{"op": "remove", "path": "members", "value": [{"value": "u1091"}, {"value": "u1092"}]}]),
            flag_off: Some(|c| c.remove_members_by_value = false),
            default: GivesMembers(
                tour_guides(),
                vec![MemberChange::Remove(vec!["u1091".into(), "u1092".into()])],
            ),
            strict: Fails(ScimType::InvalidValue),
        },
        // Entra ID: the "feature flag" form of removing a member is RFC-conformant.
        conformant(
            "Entra remove member by filter",
            Rtype::Group,
            tour_guides(),
            json!([{"op": "remove", "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]),
            GivesMembers(
                tour_guides(),
                vec![MemberChange::Remove(vec![
                    "7f4bc1a3-285e-48ae-8202-5accb43efb0e".into(),
                ])],
            ),
        ),
        // Entra ID: the work email set through its value path when there is no work email
        // yet: the element is created from the filter's `eq` pairs (strict: noTarget, RFC
        // 7644 §3.5.2.3).
        Dialect {
            name: "Entra emails[type eq \"work\"].value with no work email",
            rt: Rtype::User,
            doc: json!({"userName": "jyoung@testuser.com", "emails": [{"value": "joy@home.example", "type": "home"}]}),
            ops: json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"}]),
            flag_off: Some(|c| c.create_on_filtered_path = false),
            default: Gives(json!({"userName": "jyoung@testuser.com", "emails": [
                {"value": "joy@home.example", "type": "home"},
                {"type": "work", "value": "TestMhvaes@test.microsoft.com"}]})),
            strict: Fails(ScimType::NoTarget),
        },
        Dialect {
            name: "Entra add phoneNumbers[type eq \"mobile\"].value on an absent attribute",
            rt: Rtype::User,
            doc: no_email.clone(),
            ops: json!([{"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}]),
            flag_off: Some(|c| c.create_on_filtered_path = false),
            default: Gives(json!({"userName": "jyoung@testuser.com", "active": true,
                                "phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}]})),
            strict: Fails(ScimType::NoTarget),
        },
        Dialect {
            name: "create from a filter with primary",
            rt: Rtype::User,
            doc: json!({"userName": "u", "emails": [{"value": "a@example.com", "type": "home", "primary": true}]}),
            ops: json!([{"op": "replace", "path": "emails[type eq \"work\" and primary eq true].value", "value": "w@example.com"}]),
            flag_off: Some(|c| c.create_on_filtered_path = false),
            default: Gives(json!({"userName": "u", "emails": [
                {"value": "a@example.com", "type": "home"},
                {"type": "work", "primary": true, "value": "w@example.com"}]})),
            strict: Fails(ScimType::NoTarget),
        },
        // Only a canonical `type` may create (issue 11): any other filter that matches
        // nothing is noTarget (RFC 7644 §3.5.2.3), with the tolerance on or off.
        conformant(
            "a type that is not canonical creates nothing",
            Rtype::User,
            json!({"userName": "u", "emails": [{"value": "a@example.com", "type": "work"}]}),
            json!([{"op": "replace", "path": "emails[type eq \"nosuchtype\"].value", "value": "x@example.com"}]),
            Fails(ScimType::NoTarget),
        ),
        conformant(
            "a filter without type creates nothing",
            Rtype::User,
            json!({"userName": "u", "emails": [{"value": "a@example.com", "type": "work"}]}),
            json!([{"op": "replace", "path": "emails[value eq \"b@example.com\"].primary", "value": true}]),
            Fails(ScimType::NoTarget),
        ),
        conformant(
            "an attribute without canonical types creates nothing",
            Rtype::User,
            json!({"userName": "u"}),
            json!([{"op": "add", "path": "entitlements[type eq \"work\"].value", "value": "x"}]),
            Fails(ScimType::NoTarget),
        ),
        Dialect {
            name: "canonical types compare as the schema says (caseExact false)",
            rt: Rtype::User,
            doc: json!({"userName": "u"}),
            ops: json!([{"op": "replace", "path": "addresses[type eq \"Work\"].postalCode", "value": "98052"}]),
            flag_off: Some(|c| c.create_on_filtered_path = false),
            default: Gives(
                json!({"userName": "u", "addresses": [{"type": "Work", "postalCode": "98052"}]}),
            ),
            strict: Fails(ScimType::NoTarget),
        },
        conformant(
            "no element is created from a filter that is not all eq",
            Rtype::User,
            no_email.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"other\"].value", "value": "w@example.com"}]),
            Fails(ScimType::NoTarget),
        ),
        // Entra ID: no-path replace with dotted and URN-qualified keys ("Requests to replace
        // multiple attributes, with feature flag").
        Dialect {
            name: "Entra no-path replace with dotted keys",
            rt: Rtype::User,
            doc: json!({"userName": "bjensen@testuser.com", "name": {"familyName": "Jensen", "givenName": "Barbara"}}),
            ops: json!([{"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"}}]),
            flag_off: Some(|c| c.dotted_keys = false),
            default: Gives(json!({"userName": "bjensen@testuser.com",
                                "name": {"familyName": "Unua", "givenName": "Kkom"},
                                "displayName": "Bjfe",
                                ENTERPRISE: {"employeeNumber": "Aklq"}})),
            strict: Fails(ScimType::InvalidValue),
        },
        // A fully qualified attribute name (RFC 7644 §3.10) is an attribute name, not a path:
        // accepted in both modes.
        conformant(
            "no-path replace with a URN-qualified key",
            Rtype::User,
            json!({"userName": "u", ENTERPRISE: {"department": "Tour Operations", "costCenter": "4130"}}),
            json!([{"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Finance"}}]),
            Gives(
                json!({"userName": "u", ENTERPRISE: {"department": "Finance", "costCenter": "4130"}}),
            ),
        ),
        // Okta: deactivate ("Update a specific User (PATCH)"): RFC-conformant no-path replace.
        conformant(
            "Okta deactivate",
            Rtype::User,
            json!({"userName": "test.user@okta.local", "active": true}),
            json!([{"op": "replace", "value": {"active": false}}]),
            Gives(json!({"userName": "test.user@okta.local", "active": false})),
        ),
        // Okta: group rename carrying the group's own `id` ("Update a specific Group name").
        Dialect {
            name: "Okta group rename with its id",
            rt: Rtype::Group,
            doc: json!({"displayName": "Test SCIMv2"}),
            ops: json!([{"op": "replace", "value": {
                "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv20"}}]),
            flag_off: Some(|c| c.ignore_read_only_in_patch = false),
            default: Gives(json!({"displayName": "Test SCIMv20"})),
            strict: Fails(ScimType::Mutability),
        },
        Dialect {
            name: "readOnly groups and meta in a no-path value",
            rt: Rtype::User,
            doc: json!({"userName": "u"}),
            ops: json!([{"op": "replace", "value": {
                "meta": {"resourceType": "User"}, "groups": [], "title": "Guide"}}]),
            flag_off: Some(|c| c.ignore_read_only_in_patch = false),
            default: Gives(json!({"userName": "u", "title": "Guide"})),
            strict: Fails(ScimType::Mutability),
        },
        // Okta: the membership push ("Update specific Group membership"), both forms.
        conformant(
            "Okta remove by filter and add",
            Rtype::Group,
            json!({"displayName": "Test SCIMv2"}),
            json!([
                {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
                {"op": "add", "path": "members", "value": [
                    {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]}
            ]),
            GivesMembers(
                json!({"displayName": "Test SCIMv2"}),
                vec![
                    MemberChange::Remove(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()]),
                    MemberChange::Add(vec![member(
                        "23a35c27-23d3-4c03-b4c5-6443c09e7173",
                        Some("test.user@okta.local"),
                    )]),
                ],
            ),
        ),
        conformant(
            "Okta replace members with the complete list",
            Rtype::Group,
            json!({"displayName": "Test SCIMv2"}),
            json!([{"op": "replace", "path": "members", "value": [
                {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
                {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"}]}]),
            GivesMembers(
                json!({"displayName": "Test SCIMv2"}),
                vec![MemberChange::Replace(vec![
                    member(
                        "23a35c27-23d3-4c03-b4c5-6443c09e7173",
                        Some("test.user@okta.local"),
                    ),
                    member(
                        "89bb1940-b905-4575-9e7f-6f887cfb368e",
                        Some("test.user@okta.local"),
                    ),
                ])],
            ),
        ),
        // Even with the tolerance on, a path that names a readOnly attribute is refused.
        conformant(
            "a path naming id is refused in both modes",
            Rtype::Group,
            json!({"displayName": "Test SCIMv2"}),
            json!([{"op": "replace", "path": "id", "value": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b"}]),
            Fails(ScimType::Mutability),
        ),
    ];
    run_dialects(&rows);
}

#[test]
fn strict_is_every_flag_off_and_default_every_flag_on() {
    let s = Compat::strict();
    let d = Compat::default();
    let flags = |c: &Compat| {
        [
            c.boolean_strings,
            c.op_case_insensitive,
            c.remove_members_by_value,
            c.dotted_keys,
            c.create_on_filtered_path,
            c.ignore_read_only_in_patch,
        ]
    };
    assert!(flags(&d).iter().all(|f| *f));
    assert!(flags(&s).iter().all(|f| !*f));
}
