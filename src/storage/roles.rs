//! A tenant's policy (`policies`), its roles (`roles`: a name and typed entitlements) and
//! the rules that grant them (`rules`: a SCIM filter over the user, or a SCIM group). Rows
//! decode into typed fields; one that does not is `Corrupt`. Every function is scoped to a
//! tenant; the caller owns the transaction.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::sql::{scoped, Bind, Sql};
use super::{decode_json, StorageError, StoreResult, TenantId};
use crate::product::{Deprovisioning, Entitlements, Policy, Provisioning};

// ---------------------------------------------------------------------------------------
// Policies

#[derive(QueryableByName)]
struct RawPolicy {
    #[diesel(sql_type = Text)]
    provisioning: String,
    #[diesel(sql_type = Text)]
    deprovisioning: String,
}

/// The tenant's stored policy, if it set one.
pub fn get_policy(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Option<Policy>> {
    let q = scoped(
        "SELECT provisioning, deprovisioning FROM policies WHERE tenant_id = ",
        tenant,
    );
    let Some(r) = db.first::<RawPolicy>(&q)? else {
        return Ok(None);
    };
    let bad = |what: String| StorageError::corrupt("policies", tenant, what);
    let provisioning = match r.provisioning.as_str() {
        "auto" => Provisioning::Auto,
        "review" => Provisioning::Review,
        other => return Err(bad(format!("provisioning `{other}`"))),
    };
    let deprovisioning = match r.deprovisioning.as_str() {
        "auto" => Deprovisioning::Auto,
        "notify" => Deprovisioning::Notify,
        other => return Err(bad(format!("deprovisioning `{other}`"))),
    };
    Ok(Some(Policy {
        provisioning,
        deprovisioning,
    }))
}

pub fn put_policy(db: &mut Db<'_>, tenant: &TenantId, policy: Policy) -> StoreResult<()> {
    let provisioning = match policy.provisioning {
        Provisioning::Auto => "auto",
        Provisioning::Review => "review",
    };
    let deprovisioning = match policy.deprovisioning {
        Deprovisioning::Auto => "auto",
        Deprovisioning::Notify => "notify",
    };
    let mut q = Sql::new("INSERT INTO policies (tenant_id, provisioning, deprovisioning) VALUES (");
    q.bind_list([
        Bind::tenant(tenant),
        Bind::text(provisioning),
        Bind::text(deprovisioning),
    ])
    .push(") ON CONFLICT (tenant_id) DO UPDATE SET provisioning = excluded.provisioning, deprovisioning = excluded.deprovisioning");
    db.execute(&q)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Roles

#[derive(Clone, Debug, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub entitlements: Entitlements,
    pub created: i64,
    pub modified: i64,
}

#[derive(QueryableByName)]
struct RawRole {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    entitlements: String,
    #[diesel(sql_type = BigInt)]
    created: i64,
    #[diesel(sql_type = BigInt)]
    modified: i64,
}

impl RawRole {
    fn decode(self) -> StoreResult<RoleRow> {
        Ok(RoleRow {
            entitlements: decode_json("roles", &self.id, "entitlements", &self.entitlements)?,
            id: self.id,
            name: self.name,
            created: self.created,
            modified: self.modified,
        })
    }
}

const ROLE_COLUMNS: &str = "id, name, entitlements, created, modified";

fn roles(db: &mut Db<'_>, q: &Sql) -> StoreResult<Vec<RoleRow>> {
    db.load::<RawRole>(q)?
        .into_iter()
        .map(RawRole::decode)
        .collect()
}

pub fn list_roles(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<RoleRow>> {
    let mut q = scoped(
        &format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = "),
        tenant,
    );
    q.push(" ORDER BY name, id");
    roles(db, &q)
}

pub fn get_role(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<Option<RoleRow>> {
    let mut q = scoped(
        &format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = "),
        tenant,
    );
    q.push(" AND id = ").bind(Bind::text(id));
    Ok(roles(db, &q)?.into_iter().next())
}

fn entitlements_json(r: &RoleRow) -> StoreResult<String> {
    serde_json::to_string(&r.entitlements)
        .map_err(|e| StorageError::corrupt("roles", &r.id, format!("cannot encode: {e}")))
}

/// Inserts a role; a name the tenant already uses is `Conflict`.
pub fn insert_role(db: &mut Db<'_>, tenant: &TenantId, r: &RoleRow) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO roles (id, tenant_id, name, entitlements, created, modified) VALUES (",
    );
    q.bind_list([
        Bind::text(&r.id),
        Bind::tenant(tenant),
        Bind::text(&r.name),
        Bind::Text(entitlements_json(r)?),
        Bind::Int(r.created),
        Bind::Int(r.modified),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

/// Rewrites a role's name and entitlements; returns how many rows changed (0: no such role).
pub fn update_role(db: &mut Db<'_>, tenant: &TenantId, r: &RoleRow) -> StoreResult<usize> {
    let mut q = Sql::new("UPDATE roles SET name = ");
    q.bind(Bind::text(&r.name))
        .push(", entitlements = ")
        .bind(Bind::Text(entitlements_json(r)?))
        .push(", modified = ")
        .bind(Bind::Int(r.modified))
        .push(" WHERE tenant_id = ")
        .bind(Bind::tenant(tenant))
        .push(" AND id = ")
        .bind(Bind::text(&r.id));
    Ok(db.execute(&q)?)
}

/// `DELETE FROM table WHERE tenant_id = ? AND column = ?`; returns how many rows went.
fn delete_where(
    db: &mut Db<'_>,
    table: &str,
    tenant: &TenantId,
    column: &str,
    value: &str,
) -> StoreResult<usize> {
    let mut q = scoped(&format!("DELETE FROM {table} WHERE tenant_id = "), tenant);
    q.push(&format!(" AND {column} = ")).bind(Bind::text(value));
    Ok(db.execute(&q)?)
}

/// Deletes a role, its rules (foreign key) and its grants.
pub fn delete_role(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<usize> {
    delete_where(db, "account_roles", tenant, "role_id", id)?;
    delete_where(db, "rules", tenant, "role_id", id)?;
    delete_where(db, "roles", tenant, "id", id)
}

// ---------------------------------------------------------------------------------------
// Rules

/// What a rule tests: exactly one of a filter and a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleGrant {
    /// A SCIM filter over the user, as written (checked when the rule was written).
    Filter(String),
    /// A SCIM group id: its members get the role.
    Group(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRow {
    pub id: String,
    pub role_id: String,
    pub grant: RuleGrant,
    pub created: i64,
    pub modified: i64,
}

#[derive(QueryableByName)]
struct RawRule {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    role_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    filter: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    group_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    created: i64,
    #[diesel(sql_type = BigInt)]
    modified: i64,
}

impl RawRule {
    fn decode(self) -> StoreResult<RuleRow> {
        let grant = match (self.filter, self.group_id) {
            (Some(f), None) => RuleGrant::Filter(f),
            (None, Some(g)) => RuleGrant::Group(g),
            _ => {
                return Err(StorageError::corrupt(
                    "rules",
                    &self.id,
                    "exactly one of filter and group_id must be set",
                ))
            }
        };
        Ok(RuleRow {
            id: self.id,
            role_id: self.role_id,
            grant,
            created: self.created,
            modified: self.modified,
        })
    }
}

impl RuleRow {
    fn columns(&self) -> (Option<String>, Option<String>) {
        match &self.grant {
            RuleGrant::Filter(f) => (Some(f.clone()), None),
            RuleGrant::Group(g) => (None, Some(g.clone())),
        }
    }
}

const RULE_COLUMNS: &str = "id, role_id, filter, group_id, created, modified";

fn rules(db: &mut Db<'_>, q: &Sql) -> StoreResult<Vec<RuleRow>> {
    db.load::<RawRule>(q)?
        .into_iter()
        .map(RawRule::decode)
        .collect()
}

pub fn list_rules(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<RuleRow>> {
    let mut q = scoped(
        &format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = "),
        tenant,
    );
    q.push(" ORDER BY id");
    rules(db, &q)
}

pub fn get_rule(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<Option<RuleRow>> {
    let mut q = scoped(
        &format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = "),
        tenant,
    );
    q.push(" AND id = ").bind(Bind::text(id));
    Ok(rules(db, &q)?.into_iter().next())
}

pub fn insert_rule(db: &mut Db<'_>, tenant: &TenantId, r: &RuleRow) -> StoreResult<()> {
    let (filter, group) = r.columns();
    let mut q = Sql::new(
        "INSERT INTO rules (id, tenant_id, role_id, filter, group_id, created, modified) VALUES (",
    );
    q.bind_list([
        Bind::text(&r.id),
        Bind::tenant(tenant),
        Bind::text(&r.role_id),
        Bind::OptText(filter),
        Bind::OptText(group),
        Bind::Int(r.created),
        Bind::Int(r.modified),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

pub fn update_rule(db: &mut Db<'_>, tenant: &TenantId, r: &RuleRow) -> StoreResult<usize> {
    let (filter, group) = r.columns();
    let mut q = Sql::new("UPDATE rules SET role_id = ");
    q.bind(Bind::text(&r.role_id))
        .push(", filter = ")
        .bind(Bind::OptText(filter))
        .push(", group_id = ")
        .bind(Bind::OptText(group))
        .push(", modified = ")
        .bind(Bind::Int(r.modified))
        .push(" WHERE tenant_id = ")
        .bind(Bind::tenant(tenant))
        .push(" AND id = ")
        .bind(Bind::text(&r.id));
    Ok(db.execute(&q)?)
}

pub fn delete_rule(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<usize> {
    delete_where(db, "rules", tenant, "id", id)
}

/// Whether any rule grants a role by membership of this group.
pub fn group_has_rules(db: &mut Db<'_>, tenant: &TenantId, group_id: &str) -> StoreResult<bool> {
    let mut q = scoped("SELECT COUNT(*) AS n FROM rules WHERE tenant_id = ", tenant);
    q.push(" AND group_id = ").bind(Bind::text(group_id));
    Ok(db.count(&q)? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_has_exactly_one_grant() {
        let raw = |filter: Option<&str>, group: Option<&str>| RawRule {
            id: "rule-1".into(),
            role_id: "r".into(),
            filter: filter.map(str::to_string),
            group_id: group.map(str::to_string),
            created: 0,
            modified: 0,
        };
        assert_eq!(
            raw(Some("userName pr"), None).decode().unwrap().grant,
            RuleGrant::Filter("userName pr".into())
        );
        assert_eq!(
            raw(None, Some("g")).decode().unwrap().grant,
            RuleGrant::Group("g".into())
        );
        for bad in [raw(None, None), raw(Some("x"), Some("g"))] {
            let e = bad.decode().unwrap_err().to_string();
            assert!(e.contains("rules") && e.contains("rule-1"), "{e}");
        }
        let role = RawRole {
            id: "role-1".into(),
            name: "n".into(),
            entitlements: "[]".into(),
            created: 0,
            modified: 0,
        };
        let e = role.decode().unwrap_err().to_string();
        assert!(e.contains("roles") && e.contains("role-1"), "{e}");
    }
}
