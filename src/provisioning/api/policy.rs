//! The tenant's provisioning policy, its roles (a name and typed entitlements) and the rules
//! that grant them (a SCIM filter over the user, or a SCIM group). Changing a role or a rule
//! recomputes every active account in the same transaction.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{decode, invalid, Page};
use crate::auth::Principal;
use crate::product::{self, Entitlements, Policy, RoleDef};
use crate::provisioning::accounts::{policy_of, role_def};
use crate::provisioning::journal::new_id;
use crate::provisioning::{Error, Result, Service};
use crate::scim::schema::Rtype;
use crate::scim::time::{format_micros, now_micros};
use crate::storage::conn::{Conn, Db};
use crate::storage::dialect::Lock;
use crate::storage::roles::{self, RoleRow, RuleGrant, RuleRow};
use crate::storage::{resources, StorageError, TenantId};

/// A role as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub id: String,
    pub name: String,
    pub entitlements: Entitlements,
    pub created: String,
    pub last_modified: String,
}

/// The body of `POST /roles` and `PUT /roles/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// 1 to 200 bytes (surrounding spaces are dropped); unique in the tenant.
    pub name: Option<String>,
    /// Key → number, boolean or string; a key has one type across the tenant's roles.
    #[serde(default)]
    pub entitlements: Option<Entitlements>,
    /// Accepted and ignored (a role read back may be sent again).
    #[serde(default)]
    pub id: Option<Value>,
}

/// A rule as the API shows it: exactly one of `filter` and `group`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    /// The id of the role it grants.
    pub role: String,
    pub created: String,
    pub last_modified: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The body of `POST /rules` and `PUT /rules/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// The id of the role it grants.
    pub role: Option<String>,
    /// A SCIM filter over the user (the query language of `?filter=`).
    #[serde(default)]
    pub filter: Option<String>,
    /// A SCIM group id: its members get the role.
    #[serde(default)]
    pub group: Option<String>,
    /// Accepted and ignored (a rule read back may be sent again).
    #[serde(default)]
    pub id: Option<Value>,
}

const POLICY_SHAPE: &str =
    "a policy is {\"provisioning\": \"auto\"|\"review\", \"deprovisioning\": \"auto\"|\"notify\"}";
const ROLE_SHAPE: &str = "a role is a JSON object with `name` and `entitlements`";
const RULE_SHAPE: &str = "a rule is a JSON object: {\"role\", \"filter\"} or {\"role\", \"group\"}";

fn role_view(r: &RoleRow) -> Role {
    Role {
        id: r.id.clone(),
        name: r.name.clone(),
        entitlements: r.entitlements.clone(),
        created: format_micros(r.created),
        last_modified: format_micros(r.modified),
    }
}

fn rule_view(r: &RuleRow) -> Rule {
    let (filter, group) = match &r.grant {
        RuleGrant::Filter(f) => (Some(f.clone()), None),
        RuleGrant::Group(g) => (None, Some(g.clone())),
    };
    Rule {
        id: r.id.clone(),
        role: r.role_id.clone(),
        created: format_micros(r.created),
        last_modified: format_micros(r.modified),
        filter,
        group,
    }
}

fn role_conflict(e: StorageError) -> Error {
    match e {
        StorageError::Conflict(_) => Error::Conflict("a role with this name already exists".into()),
        other => Error::Storage(other),
    }
}

/// A role body's name (trimmed) and entitlements.
fn role_fields(body: RoleInput) -> Result<(String, Entitlements)> {
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 200)
        .ok_or_else(|| invalid("a role needs a `name`: a string of 1 to 200 bytes"))?
        .to_string();
    Ok((name, body.entitlements.unwrap_or_default()))
}

/// Checks entitlements against the tenant's other roles (a key keeps its type).
fn check_entitlements(
    db: &mut Db<'_>,
    tenant: &TenantId,
    ents: &Entitlements,
    except: Option<&str>,
) -> Result<()> {
    let others: Vec<RoleDef> = roles::list_roles(db, tenant)?
        .iter()
        .filter(|r| Some(r.id.as_str()) != except)
        .map(role_def)
        .collect();
    product::check_entitlements(ents, &others).map_err(Error::Invalid)
}

impl Service {
    pub fn get_policy(&self, conn: &mut Conn, p: &Principal) -> Result<Policy> {
        self.admin_read(conn, p, |db| policy_of(db, &p.tenant))
    }

    pub fn put_policy(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<Policy> {
        let policy: Policy = decode(body, POLICY_SHAPE)?;
        self.admin_write(conn, p, |db, _| {
            roles::put_policy(db, &p.tenant, policy)?;
            Ok(policy)
        })
    }

    pub fn list_roles(&self, conn: &mut Conn, p: &Principal) -> Result<Page<Role>> {
        self.admin_read(conn, p, |db| {
            Ok(Page::whole(
                roles::list_roles(db, &p.tenant)?
                    .iter()
                    .map(role_view)
                    .collect(),
            ))
        })
    }

    pub fn get_role(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Role> {
        self.admin_read(conn, p, |db| {
            roles::get_role(db, &p.tenant, id)?
                .map(|r| role_view(&r))
                .ok_or_else(|| Error::NotFound(format!("role {id} not found")))
        })
    }

    pub fn create_role(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<Role> {
        let (name, entitlements) = role_fields(decode(body, ROLE_SHAPE)?)?;
        self.admin_write(conn, p, |db, _| {
            check_entitlements(db, &p.tenant, &entitlements, None)?;
            let now = now_micros();
            let row = RoleRow {
                id: new_id(),
                name,
                entitlements,
                created: now,
                modified: now,
            };
            roles::insert_role(db, &p.tenant, &row).map_err(role_conflict)?;
            Ok(role_view(&row))
        })
    }

    pub fn replace_role(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        body: Value,
    ) -> Result<Role> {
        let (name, entitlements) = role_fields(decode(body, ROLE_SHAPE)?)?;
        self.admin_write(conn, p, |db, j| {
            let old = roles::get_role(db, &p.tenant, id)?
                .ok_or_else(|| Error::NotFound(format!("role {id} not found")))?;
            check_entitlements(db, &p.tenant, &entitlements, Some(id))?;
            let row = RoleRow {
                id: old.id,
                name,
                entitlements,
                created: old.created,
                modified: now_micros(),
            };
            roles::update_role(db, &p.tenant, &row).map_err(role_conflict)?;
            self.recompute_all(db, j)?;
            Ok(role_view(&row))
        })
    }

    pub fn delete_role(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<()> {
        self.admin_write(conn, p, |db, j| {
            if roles::delete_role(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("role {id} not found")));
            }
            self.recompute_all(db, j)
        })
    }

    /// Checks a rule body against the tenant: role exists, filter parses, group exists.
    fn rule_input(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        body: RuleInput,
    ) -> Result<(String, RuleGrant)> {
        let role = body
            .role
            .ok_or_else(|| invalid("a rule needs `role`: the id of the role it grants"))?;
        let grant = match (body.filter, body.group) {
            (Some(f), None) => {
                self.rule_filter(&f)?;
                RuleGrant::Filter(f)
            }
            (None, Some(g)) => {
                if resources::get(db, tenant, Rtype::Group, &g, Lock::None)?.is_none() {
                    return Err(Error::NotFound(format!("Group {g} not found")));
                }
                RuleGrant::Group(g)
            }
            _ => {
                return Err(invalid(
                    "a rule has exactly one of `filter` (a SCIM filter over the user) and `group` (a SCIM group id)",
                ))
            }
        };
        if roles::get_role(db, tenant, &role)?.is_none() {
            return Err(Error::NotFound(format!("role {role} not found")));
        }
        Ok((role, grant))
    }

    pub fn list_rules(&self, conn: &mut Conn, p: &Principal) -> Result<Page<Rule>> {
        self.admin_read(conn, p, |db| {
            Ok(Page::whole(
                roles::list_rules(db, &p.tenant)?
                    .iter()
                    .map(rule_view)
                    .collect(),
            ))
        })
    }

    pub fn get_rule(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Rule> {
        self.admin_read(conn, p, |db| {
            roles::get_rule(db, &p.tenant, id)?
                .map(|r| rule_view(&r))
                .ok_or_else(|| Error::NotFound(format!("rule {id} not found")))
        })
    }

    pub fn create_rule(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<Rule> {
        let body: RuleInput = decode(body, RULE_SHAPE)?;
        self.admin_write(conn, p, |db, j| {
            let (role_id, grant) = self.rule_input(db, &p.tenant, body)?;
            let now = now_micros();
            let row = RuleRow {
                id: new_id(),
                role_id,
                grant,
                created: now,
                modified: now,
            };
            roles::insert_rule(db, &p.tenant, &row)?;
            self.recompute_all(db, j)?;
            Ok(rule_view(&row))
        })
    }

    pub fn replace_rule(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        body: Value,
    ) -> Result<Rule> {
        self.admin_write(conn, p, |db, j| {
            let old = roles::get_rule(db, &p.tenant, id)?
                .ok_or_else(|| Error::NotFound(format!("rule {id} not found")))?;
            let (role_id, grant) = self.rule_input(db, &p.tenant, decode(body, RULE_SHAPE)?)?;
            let row = RuleRow {
                id: old.id,
                role_id,
                grant,
                created: old.created,
                modified: now_micros(),
            };
            roles::update_rule(db, &p.tenant, &row)?;
            self.recompute_all(db, j)?;
            Ok(rule_view(&row))
        })
    }

    pub fn delete_rule(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<()> {
        self.admin_write(conn, p, |db, j| {
            if roles::delete_rule(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("rule {id} not found")));
            }
            self.recompute_all(db, j)
        })
    }
}
