//! The product model behind SCIM: accounts and their lifecycle, roles and their
//! entitlements, and the tenant's provisioning policy. Pure: depends on no other module of
//! the crate (no storage, no HTTP). Storage decodes rows into these types; `provisioning::
//! accounts` applies the rules inside the SCIM transactions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// An account's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A candidate awaiting an admin's review (provisioning policy `review`).
    Pending,
    Active,
    /// Deprovisioned, reversible (SCIM `active=true` brings it back per policy).
    Suspended,
    /// Rejected, or its SCIM user was deleted. Kept for the audit trail.
    Removed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Suspended => "suspended",
            State::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "active" => Some(State::Active),
            "suspended" => Some(State::Suspended),
            "removed" => Some(State::Removed),
            _ => None,
        }
    }
}

/// `review`: new or reactivated users wait in `pending` for approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provisioning {
    #[default]
    Auto,
    Review,
}

/// `notify`: deactivation or deletion flags the account (`removalPending`) and keeps its
/// access until an admin confirms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Deprovisioning {
    #[default]
    Auto,
    Notify,
}

/// The tenant's policy; default auto/auto.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub provisioning: Provisioning,
    pub deprovisioning: Deprovisioning,
}

/// Why an account is flagged for removal (deprovisioning policy `notify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemovalReason {
    Deactivated,
    Deleted,
}

impl RemovalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Deactivated => "deactivated",
            RemovalReason::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<RemovalReason> {
        match s {
            "deactivated" => Some(RemovalReason::Deactivated),
            "deleted" => Some(RemovalReason::Deleted),
            _ => None,
        }
    }

    /// The state a confirmed removal ends in.
    pub fn final_state(self) -> State {
        match self {
            RemovalReason::Deactivated => State::Suspended,
            RemovalReason::Deleted => State::Removed,
        }
    }
}

/// The account fields a lifecycle step changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Life {
    pub state: State,
    pub removal: Option<RemovalReason>,
}

/// What happened to the SCIM user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserEvent {
    /// Created; `active` as sent (absent counts as true).
    Created {
        active: bool,
    },
    Deactivated,
    Reactivated,
    Deleted,
}

/// The product event a lifecycle step announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    Pending,
    Activated,
    Suspended,
    Removed,
    RemovalPending,
    Rejected,
    /// An admin kept a flagged account: the flag goes, access stays.
    Restored,
}

impl Announce {
    pub fn event_type(self) -> &'static str {
        match self {
            Announce::Pending => "account.pending",
            Announce::Activated => "account.activated",
            Announce::Suspended => "account.suspended",
            Announce::Removed => "account.removed",
            Announce::RemovalPending => "account.removal_pending",
            Announce::Rejected => "account.rejected",
            Announce::Restored => "account.restored",
        }
    }
}

/// Every product event type (webhook subscriptions name these or SCIM event URNs).
pub const PRODUCT_EVENTS: [&str; 8] = [
    "account.pending",
    "account.activated",
    "account.suspended",
    "account.removed",
    "account.roles_changed",
    "account.removal_pending",
    "account.rejected",
    "account.restored",
];

/// The lifecycle: the account after a SCIM change, and what to announce. `before` is None for
/// a new user. Pure, and the one place the policy table of docs/api-v1.md is decided.
pub fn step(before: Option<Life>, event: UserEvent, policy: Policy) -> (Life, Option<Announce>) {
    let life = |state, removal| Life { state, removal };
    let activate = || match policy.provisioning {
        Provisioning::Auto => (life(State::Active, None), Some(Announce::Activated)),
        Provisioning::Review => (life(State::Pending, None), Some(Announce::Pending)),
    };
    match (before, event) {
        (None, UserEvent::Created { active: false }) => {
            (life(State::Suspended, None), Some(Announce::Suspended))
        }
        (None, UserEvent::Created { active: true }) => activate(),
        // An account that predates this feature gets its first state from the user.
        (None, UserEvent::Reactivated) => activate(),
        (None, UserEvent::Deactivated) => (life(State::Suspended, None), Some(Announce::Suspended)),
        (None, UserEvent::Deleted) => (life(State::Removed, None), Some(Announce::Removed)),
        (Some(b), UserEvent::Created { .. }) => (b, None),
        (Some(b), UserEvent::Deactivated) => match b.state {
            // A candidate never had access: nothing to confirm.
            State::Pending => (life(State::Suspended, None), Some(Announce::Suspended)),
            State::Active => match policy.deprovisioning {
                Deprovisioning::Auto => (life(State::Suspended, None), Some(Announce::Suspended)),
                Deprovisioning::Notify if b.removal.is_some() => (b, None),
                Deprovisioning::Notify => (
                    life(State::Active, Some(RemovalReason::Deactivated)),
                    Some(Announce::RemovalPending),
                ),
            },
            State::Suspended | State::Removed => (b, None),
        },
        (Some(b), UserEvent::Reactivated) => match b.state {
            State::Suspended => activate(),
            // Flagged for removal and back before anyone confirmed: the flag goes.
            State::Active if b.removal.is_some() => {
                (life(State::Active, None), Some(Announce::Activated))
            }
            State::Active | State::Pending | State::Removed => (b, None),
        },
        (Some(b), UserEvent::Deleted) => match b.state {
            State::Pending | State::Suspended => {
                (life(State::Removed, None), Some(Announce::Removed))
            }
            State::Active => match policy.deprovisioning {
                Deprovisioning::Auto => (life(State::Removed, None), Some(Announce::Removed)),
                Deprovisioning::Notify => (
                    life(State::Active, Some(RemovalReason::Deleted)),
                    Some(Announce::RemovalPending),
                ),
            },
            State::Removed => (b, None),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Roles and entitlements

/// A role an account holds, as the account shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    /// Role id.
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
}

/// Entitlements by key: a number, a boolean or a string each.
pub type Entitlements = Map<String, Value>;

/// The OpenAPI schema of `Entitlements` (the type is a JSON map; this names its shape).
pub struct EntitlementsSchema;

impl PartialSchema for EntitlementsSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("Entitlement key → number, boolean or string."))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::Ref(
                Ref::from_schema_name("EntitlementValue"),
            ))))
            .examples([serde_json::json!({"card.monthly_limit": 5000, "card.enabled": true})])
            .into()
    }
}

impl ToSchema for EntitlementsSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Entitlements".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        let value = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::Number,
                Type::Boolean,
                Type::String,
            ]))
            .description(Some(
                "An entitlement value. A key has one type across all roles of the tenant.",
            ))
            .into();
        schemas.push(("EntitlementValue".into(), value));
    }
}

/// A role as the merge needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleDef {
    pub id: String,
    pub name: String,
    pub entitlements: Entitlements,
}

/// The JSON type of an entitlement value, or None when it is not one of the allowed ones.
pub fn entitlement_type(v: &Value) -> Option<&'static str> {
    match v {
        Value::Number(_) => Some("number"),
        Value::Bool(_) => Some("boolean"),
        Value::String(_) => Some("string"),
        _ => None,
    }
}

/// Checks a role's entitlements: values are numbers, booleans or strings, keys are non-empty
/// and at most 200 bytes, and a key keeps the type other roles of the tenant give it.
pub fn check_entitlements(ents: &Map<String, Value>, others: &[RoleDef]) -> Result<(), String> {
    if ents.len() > 100 {
        return Err(format!(
            "a role has at most 100 entitlements; this one has {}",
            ents.len()
        ));
    }
    for (k, v) in ents {
        if k.is_empty() || k.len() > 200 {
            return Err(format!("entitlement key `{k}` must be 1 to 200 bytes long"));
        }
        let t = entitlement_type(v).ok_or_else(|| {
            format!("entitlement `{k}` must be a number, a boolean or a string, not {v}")
        })?;
        for o in others {
            if let Some(ot) = o.entitlements.get(k).and_then(entitlement_type) {
                if ot != t {
                    return Err(format!(
                        "entitlement `{k}` is a {ot} in role `{}`; it cannot be a {t} here",
                        o.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The effective entitlements of a set of roles. Conflicts: numbers, the highest wins;
/// booleans, `true` wins; strings, the value of the role whose name sorts first (byte order).
/// Keys come out sorted.
pub fn merge(roles: &[&RoleDef]) -> Map<String, Value> {
    let mut sorted: Vec<&RoleDef> = roles.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for r in sorted {
        for (k, v) in &r.entitlements {
            let merged = match (out.get(k), v) {
                (None, _) => v.clone(),
                (Some(Value::Number(a)), Value::Number(b)) => {
                    let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                    if y > x {
                        v.clone()
                    } else {
                        Value::Number(a.clone())
                    }
                }
                (Some(Value::Bool(a)), Value::Bool(b)) => Value::Bool(*a || *b),
                // Strings (and any type clash, which role validation prevents): first wins.
                (Some(a), _) => a.clone(),
            };
            out.insert(k.clone(), merged);
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(id: &str, name: &str, ents: Value) -> RoleDef {
        RoleDef {
            id: id.into(),
            name: name.into(),
            entitlements: ents.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn merge_takes_highest_number_true_and_first_named_string() {
        let a = role(
            "1",
            "b-role",
            json!({"limit": 5000, "cards": false, "region": "us"}),
        );
        let b = role(
            "2",
            "a-role",
            json!({"limit": 2500.5, "cards": true, "region": "eu"}),
        );
        let c = role("3", "c-role", json!({"limit": 10000, "other": "x"}));
        let m = merge(&[&a, &b, &c]);
        assert_eq!(
            Value::Object(m),
            json!({"cards": true, "limit": 10000, "other": "x", "region": "eu"})
        );
        assert!(merge(&[]).is_empty());
    }

    #[test]
    fn entitlements_are_typed_across_roles() {
        let other = role("1", "finance", json!({"card.monthly_limit": 5000}));
        let ok = json!({"card.monthly_limit": 100, "card.enabled": true});
        assert!(check_entitlements(ok.as_object().unwrap(), std::slice::from_ref(&other)).is_ok());
        let clash = json!({"card.monthly_limit": "5000"});
        let e = check_entitlements(clash.as_object().unwrap(), &[other]).unwrap_err();
        assert!(e.contains("is a number in role `finance`"), "{e}");
        let nested = json!({"x": {"y": 1}});
        assert!(check_entitlements(nested.as_object().unwrap(), &[]).is_err());
        let empty_key = json!({"": 1});
        assert!(check_entitlements(empty_key.as_object().unwrap(), &[]).is_err());
    }

    fn at(state: State, removal: Option<RemovalReason>) -> Option<Life> {
        Some(Life { state, removal })
    }

    #[test]
    fn lifecycle_follows_the_policy_table() {
        let auto = Policy::default();
        let review = Policy {
            provisioning: Provisioning::Review,
            deprovisioning: Deprovisioning::Auto,
        };
        let notify = Policy {
            provisioning: Provisioning::Auto,
            deprovisioning: Deprovisioning::Notify,
        };
        let created = UserEvent::Created { active: true };
        assert_eq!(step(None, created, auto).0.state, State::Active);
        assert_eq!(step(None, created, auto).1, Some(Announce::Activated));
        assert_eq!(step(None, created, review).0.state, State::Pending);
        let inactive = UserEvent::Created { active: false };
        assert_eq!(step(None, inactive, review).0.state, State::Suspended);

        let active = at(State::Active, None);
        assert_eq!(
            step(active, UserEvent::Deactivated, auto),
            (
                Life {
                    state: State::Suspended,
                    removal: None
                },
                Some(Announce::Suspended)
            )
        );
        let flagged = step(active, UserEvent::Deactivated, notify);
        assert_eq!(
            flagged,
            (
                Life {
                    state: State::Active,
                    removal: Some(RemovalReason::Deactivated)
                },
                Some(Announce::RemovalPending)
            )
        );
        // Deactivating twice does not announce twice.
        assert_eq!(
            step(Some(flagged.0), UserEvent::Deactivated, notify).1,
            None
        );
        // Back before confirmation: the flag goes.
        assert_eq!(
            step(Some(flagged.0), UserEvent::Reactivated, notify).0,
            Life {
                state: State::Active,
                removal: None
            }
        );
        assert_eq!(
            step(active, UserEvent::Deleted, notify).0.removal,
            Some(RemovalReason::Deleted)
        );
        let (suspended, pending) = (at(State::Suspended, None), at(State::Pending, None));
        for (from, event, policy, to) in [
            (active, UserEvent::Deleted, auto, State::Removed),
            // Reactivation follows the provisioning policy.
            (suspended, UserEvent::Reactivated, auto, State::Active),
            (suspended, UserEvent::Reactivated, review, State::Pending),
            // A candidate that leaves is out at once, whatever the deprovisioning policy.
            (pending, UserEvent::Deactivated, notify, State::Suspended),
            (pending, UserEvent::Deleted, notify, State::Removed),
        ] {
            assert_eq!(step(from, event, policy).0.state, to, "{from:?} {event:?}");
        }
        // Removed is final.
        let removed = at(State::Removed, None);
        assert_eq!(
            step(removed, UserEvent::Reactivated, auto),
            (removed.unwrap(), None)
        );
    }

    #[test]
    fn states_and_reasons_round_trip() {
        for s in [
            State::Pending,
            State::Active,
            State::Suspended,
            State::Removed,
        ] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("gone"), None);
        for r in [RemovalReason::Deactivated, RemovalReason::Deleted] {
            assert_eq!(RemovalReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RemovalReason::Deleted.final_state(), State::Removed);
    }
}
