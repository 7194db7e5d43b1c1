//! A tenant's policy (`policies`), its roles (`roles`: a name and typed entitlements) and
//! the rules that grant them (`rules`: a SCIM filter over the user, or a SCIM group). Rows
//! decode into typed fields; one that does not is `Corrupt`. Every function is scoped to a
//! tenant; the caller owns the transaction.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::sql::{select, Bind, Sql};
use super::{decode_json, Decode, Keyed, StorageError, StoreResult, TenantId};
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

/// A policy's two settings as stored.
fn policy_text(p: Policy) -> (&'static str, &'static str) {
    let provisioning = match p.provisioning {
        Provisioning::Auto => "auto",
        Provisioning::Review => "review",
    };
    let deprovisioning = match p.deprovisioning {
        Deprovisioning::Auto => "auto",
        Deprovisioning::Notify => "notify",
    };
    (provisioning, deprovisioning)
}

/// A tenant's product version (`product_version`): the count of its product changes, the
/// newest one's id and its nonce.
pub type ProductVersion = (i64, i64, i64);

/// `product_version` as three columns of a select list (`v_n`, `v_id`, `v_nonce`; the last
/// two NULL when the tenant has no product change), binds included: read alone, or as
/// columns of a write's own statement, which saves a round trip on Postgres.
pub fn version_columns(tenant: &TenantId) -> Sql {
    Sql::with(
        "(SELECT COUNT(*) FROM product_changes WHERE tenant_id = ?) AS v_n, \
         (SELECT id FROM product_changes WHERE tenant_id = ? ORDER BY id DESC LIMIT 1) AS v_id, \
         (SELECT nonce FROM product_changes WHERE tenant_id = ? ORDER BY id DESC LIMIT 1) AS v_nonce",
        [
            Bind::tenant(tenant),
            Bind::tenant(tenant),
            Bind::tenant(tenant),
        ],
    )
}

/// The columns of `version_columns`, to embed in a row of the statement that reads them.
#[derive(QueryableByName)]
pub struct RawVersion {
    #[diesel(sql_type = BigInt)]
    v_n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    v_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    v_nonce: Option<i64>,
}

impl RawVersion {
    /// The version (None: the tenant has no product change).
    pub fn version(&self) -> Option<ProductVersion> {
        Some((self.v_n, self.v_id?, self.v_nonce?))
    }
}

/// The version of the tenant's policy, roles and rules (migration 000021): how many changes
/// of them the triggers noted, the highest change id and that change's random nonce. Any
/// change committed since a version was read gives another (the count grows; a tenant made
/// again under a deleted one's id has higher ids; a change that took the id of one rolled
/// back has another nonce), so a copy kept with its version is current exactly when the
/// version read now is the same. None: the tenant never set any (the default policy, no
/// roles, no rules).
pub fn product_version(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Option<ProductVersion>> {
    let mut q = Sql::new("SELECT ");
    q.append(version_columns(tenant));
    Ok(db.first::<RawVersion>(&q)?.and_then(|v| v.version()))
}

/// The tenant's stored policy, if it set one.
pub fn get_policy(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Option<Policy>> {
    let q = select("provisioning, deprovisioning", "policies", tenant);
    let Some(r) = db.first::<RawPolicy>(&q)? else {
        return Ok(None);
    };
    let provisioning = match r.provisioning.as_str() {
        "auto" => Some(Provisioning::Auto),
        "review" => Some(Provisioning::Review),
        _ => None,
    };
    let deprovisioning = match r.deprovisioning.as_str() {
        "auto" => Some(Deprovisioning::Auto),
        "notify" => Some(Deprovisioning::Notify),
        _ => None,
    };
    match (provisioning, deprovisioning) {
        (Some(provisioning), Some(deprovisioning)) => Ok(Some(Policy {
            provisioning,
            deprovisioning,
        })),
        _ => Err(StorageError::corrupt(
            "policies",
            tenant,
            format!("policy `{}`/`{}`", r.provisioning, r.deprovisioning),
        )),
    }
}

pub fn put_policy(db: &mut Db<'_>, tenant: &TenantId, policy: Policy) -> StoreResult<()> {
    let (provisioning, deprovisioning) = policy_text(policy);
    db.execute(&Sql::with(
        "INSERT INTO policies (tenant_id, provisioning, deprovisioning) VALUES (?, ?, ?) \
         ON CONFLICT (tenant_id) DO UPDATE SET provisioning = excluded.provisioning, \
         deprovisioning = excluded.deprovisioning",
        [
            Bind::tenant(tenant),
            Bind::text(provisioning),
            Bind::text(deprovisioning),
        ],
    ))?;
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
pub struct RawRole {
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

impl Decode for RawRole {
    type Row = RoleRow;

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

impl Keyed for RoleRow {
    type Raw = RawRole;
    const TABLE: &'static str = "roles";
    const COLUMNS: &'static str = "id, name, entitlements, created, modified";
    const ORDER: &'static str = "name, id";
}

fn entitlements_json(r: &RoleRow) -> StoreResult<String> {
    serde_json::to_string(&r.entitlements)
        .map_err(|e| StorageError::corrupt("roles", &r.id, format!("cannot encode: {e}")))
}

/// Inserts a role; a name the tenant already uses is `Conflict`.
pub fn insert_role(db: &mut Db<'_>, tenant: &TenantId, r: &RoleRow) -> StoreResult<()> {
    let ents = Bind::Text(entitlements_json(r)?);
    let (id, name) = (Bind::text(&r.id), Bind::text(&r.name));
    db.execute(&Sql::with(
        "INSERT INTO roles (id, tenant_id, name, entitlements, created, modified) \
         VALUES (?, ?, ?, ?, ?, ?)",
        [
            id,
            Bind::tenant(tenant),
            name,
            ents,
            Bind::Int(r.created),
            Bind::Int(r.modified),
        ],
    ))?;
    Ok(())
}

/// Rewrites a role's name and entitlements; returns how many rows changed (0: no such role).
pub fn update_role(db: &mut Db<'_>, tenant: &TenantId, r: &RoleRow) -> StoreResult<usize> {
    let ents = Bind::Text(entitlements_json(r)?);
    Ok(db.execute(&Sql::with(
        "UPDATE roles SET name = ?, entitlements = ?, modified = ? WHERE tenant_id = ? AND id = ?",
        [
            Bind::text(&r.name),
            ents,
            Bind::Int(r.modified),
            Bind::tenant(tenant),
            Bind::text(&r.id),
        ],
    ))?)
}

/// `DELETE FROM table WHERE tenant_id = ? AND column = ?`; returns how many rows went.
fn delete_where(
    db: &mut Db<'_>,
    table: &str,
    tenant: &TenantId,
    column: &str,
    value: &str,
) -> StoreResult<usize> {
    Ok(db.execute(&Sql::with(
        &format!("DELETE FROM {table} WHERE tenant_id = ? AND {column} = ?"),
        [Bind::tenant(tenant), Bind::text(value)],
    ))?)
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
pub struct RawRule {
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

impl Decode for RawRule {
    type Row = RuleRow;

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
    /// The `role_id`, `filter` and `group_id` columns.
    fn grant_binds(&self) -> [Bind; 3] {
        let (filter, group) = match &self.grant {
            RuleGrant::Filter(f) => (Some(f.clone()), None),
            RuleGrant::Group(g) => (None, Some(g.clone())),
        };
        [
            Bind::text(&self.role_id),
            Bind::OptText(filter),
            Bind::OptText(group),
        ]
    }
}

impl Keyed for RuleRow {
    type Raw = RawRule;
    const TABLE: &'static str = "rules";
    const COLUMNS: &'static str = "id, role_id, filter, group_id, created, modified";
    const ORDER: &'static str = "id";
}

pub fn insert_rule(db: &mut Db<'_>, tenant: &TenantId, r: &RuleRow) -> StoreResult<()> {
    let [role, filter, group] = r.grant_binds();
    let (id, times) = (
        Bind::text(&r.id),
        [Bind::Int(r.created), Bind::Int(r.modified)],
    );
    let mut q = Sql::with(
        "INSERT INTO rules (id, tenant_id, role_id, filter, group_id, created, modified) \
         VALUES (?, ?, ?, ?, ?, ",
        [id, Bind::tenant(tenant), role, filter, group],
    );
    q.and("?, ?)", times);
    db.execute(&q)?;
    Ok(())
}

pub fn update_rule(db: &mut Db<'_>, tenant: &TenantId, r: &RuleRow) -> StoreResult<usize> {
    let [role, filter, group] = r.grant_binds();
    let mut q = Sql::with(
        "UPDATE rules SET role_id = ?, filter = ?, group_id = ?, modified = ? ",
        [role, filter, group, Bind::Int(r.modified)],
    );
    q.and(
        "WHERE tenant_id = ? AND id = ?",
        [Bind::tenant(tenant), Bind::text(&r.id)],
    );
    Ok(db.execute(&q)?)
}

pub fn delete_rule(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<usize> {
    delete_where(db, "rules", tenant, "id", id)
}

/// Whether any rule grants a role by membership of this group.
pub fn group_has_rules(db: &mut Db<'_>, tenant: &TenantId, group_id: &str) -> StoreResult<bool> {
    let mut q = select("COUNT(*) AS n", "rules", tenant);
    q.and(" AND group_id = ?", [Bind::text(group_id)]);
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
