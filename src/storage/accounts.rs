//! The `accounts` table (one per SCIM user: its lifecycle state and the roles and
//! entitlements in force) and `account_roles` (the index behind `?role=`). Rows decode into
//! the product model's types; one that does not is `Corrupt`, never a default. Every
//! function is scoped to a tenant; the caller owns the transaction.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::dialect::{self, Lock};
use super::resources;
use super::roles::{self, ProductVersion};
use super::search;
use super::sql::{select, Bind, Sql};
use super::{decode_json, Decode, StorageError, StoreResult, TenantId};
use crate::product::{Entitlements, RemovalReason, RoleRef, State};
use crate::scim::filter::Cond;
use crate::scim::schema::Rtype;

/// An account, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountRow {
    pub id: String,
    pub scim_id: String,
    /// The user's key while the user exists.
    pub user_pk: Option<i64>,
    pub user_name: String,
    pub state: State,
    /// The roles in force, sorted by name.
    pub roles: Vec<RoleRef>,
    pub entitlements: Entitlements,
    /// Set while the account is flagged for removal (deprovisioning `notify`).
    pub removal: Option<Removal>,
    pub created: i64,
    pub modified: i64,
}

/// A flagged removal: since when, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removal {
    pub since: i64,
    pub reason: RemovalReason,
}

#[derive(QueryableByName)]
struct RawAccount {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    scim_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_pk: Option<i64>,
    #[diesel(sql_type = Text)]
    user_name: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    roles: String,
    #[diesel(sql_type = Text)]
    entitlements: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    removal_since: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    removal_reason: Option<String>,
    #[diesel(sql_type = BigInt)]
    created: i64,
    #[diesel(sql_type = BigInt)]
    modified: i64,
}

const TABLE: &str = "accounts";

impl Decode for RawAccount {
    type Row = AccountRow;

    fn decode(self) -> StoreResult<AccountRow> {
        let id = self.id;
        let bad = |what: String| StorageError::corrupt(TABLE, &id, what);
        let state =
            State::parse(&self.state).ok_or_else(|| bad(format!("state `{}`", self.state)))?;
        let removal = match (self.removal_since, self.removal_reason) {
            (None, None) => None,
            (Some(since), Some(r)) => Some(Removal {
                since,
                reason: RemovalReason::parse(&r)
                    .ok_or_else(|| bad(format!("removal_reason `{r}`")))?,
            }),
            (since, reason) => {
                return Err(bad(format!(
                    "removal_since {since:?} and removal_reason {reason:?} must be set together"
                )))
            }
        };
        Ok(AccountRow {
            roles: decode_json(TABLE, &id, "roles", &self.roles)?,
            entitlements: decode_json(TABLE, &id, "entitlements", &self.entitlements)?,
            scim_id: self.scim_id,
            user_pk: self.user_pk,
            user_name: self.user_name,
            state,
            removal,
            created: self.created,
            modified: self.modified,
            id,
        })
    }
}

const ACCOUNT_COLUMNS: &str = "a.id, a.scim_id, a.user_pk, a.user_name, a.state, a.roles, \
     a.entitlements, a.removal_since, a.removal_reason, a.created, a.modified";

fn accounts(tenant: &TenantId) -> Sql {
    select(ACCOUNT_COLUMNS, "accounts a", tenant)
}

/// One account, locked for a change when `lock` says so.
pub fn get(
    db: &mut Db<'_>,
    tenant: &TenantId,
    id: &str,
    lock: Lock,
) -> StoreResult<Option<AccountRow>> {
    let mut q = accounts(tenant);
    q.and(" AND a.id = ?", [Bind::text(id)])
        .push(db.backend().lock(lock));
    db.row::<RawAccount>(&q)
}

#[derive(QueryableByName)]
struct RawVersionedAccount {
    #[diesel(embed)]
    account: RawAccount,
    #[diesel(embed)]
    version: roles::RawVersion,
}

/// The account of a SCIM user (locked on Postgres: the caller is about to change it), and the
/// tenant's product version (`roles::product_version`, as this statement's subqueries): a
/// user's change reads both, and on Postgres each statement is a round trip on the tenant's
/// batch connection, where the tenant's writes take turns. None when the user has no account
/// (the version is then not read).
pub fn of_user_versioned(
    db: &mut Db<'_>,
    tenant: &TenantId,
    scim_id: &str,
) -> StoreResult<Option<(AccountRow, Option<ProductVersion>)>> {
    let q = user_versioned(db.backend(), tenant, scim_id);
    versioned(db, &q)
}

/// Deletes the user `pk` (`resources::delete`: its values and memberships go with it) and
/// reads its account and the product version as `of_user_versioned` does. On Postgres both
/// are one statement (`dialect::delete_then`): one round trip fewer on the tenant's batch
/// connection for every deleted user. There the account is locked before the user's row
/// goes (`accounts` has no foreign key to it) and before the cascade takes its values and
/// memberships. The caller already holds the user's groups and the user's row
/// (`delete_in`): a change that takes either before the account waits for this one there,
/// and one that holds the account without them (a role or rule change) waits for nothing
/// this one holds.
pub fn delete_user_versioned(
    db: &mut Db<'_>,
    tenant: &TenantId,
    pk: i64,
    scim_id: &str,
) -> StoreResult<Option<(AccountRow, Option<ProductVersion>)>> {
    let delete = resources::delete_statement(tenant, pk);
    let read = user_versioned(db.backend(), tenant, scim_id);
    match dialect::delete_then(db.backend(), &delete, &read) {
        Some(q) => versioned(db, &q),
        None => {
            db.execute(&delete)?;
            versioned(db, &read)
        }
    }
}

/// `of_user_versioned`'s statement.
fn user_versioned(backend: dialect::Backend, tenant: &TenantId, scim_id: &str) -> Sql {
    let mut q = Sql::new(&format!("SELECT {ACCOUNT_COLUMNS}, "));
    q.append(roles::version_columns(tenant))
        .push(" FROM accounts a WHERE a.tenant_id = ")
        .bind(Bind::tenant(tenant))
        .push(" AND a.scim_id = ")
        .bind(Bind::text(scim_id));
    q.push(&backend.lock_of("a"));
    q
}

fn versioned(
    db: &mut Db<'_>,
    q: &Sql,
) -> StoreResult<Option<(AccountRow, Option<ProductVersion>)>> {
    let Some(r) = db.first::<RawVersionedAccount>(q)? else {
        return Ok(None);
    };
    Ok(Some((r.account.decode()?, r.version.version())))
}

/// Accounts of these users (locked), for a membership change that may change their roles.
pub fn of_users(db: &mut Db<'_>, tenant: &TenantId, pks: &[i64]) -> StoreResult<Vec<AccountRow>> {
    let keys: Vec<Bind> = pks.iter().map(|p| Bind::Int(*p)).collect();
    let tail = format!(" ORDER BY a.id{}", db.backend().lock(Lock::Delete));
    db.rows_keyed::<RawAccount>(&accounts(tenant), "a.user_pk", &keys, &tail)
}

/// Every account of the tenant in one of `states`, locked (a role or rule changed).
pub fn in_states(
    db: &mut Db<'_>,
    tenant: &TenantId,
    states: &[State],
) -> StoreResult<Vec<AccountRow>> {
    let mut q = accounts(tenant);
    q.push(" AND a.state IN (")
        .bind_list(states.iter().map(|s| Bind::text(s.as_str())))
        .push(") ORDER BY a.id")
        .push(db.backend().lock(Lock::Delete));
    db.rows::<RawAccount>(&q)
}

/// Accounts whose user is a member of the group bound to `?`.
const IN_GROUP: &str = " AND a.user_pk IN (SELECT member_pk FROM members WHERE group_pk = ?)";

/// Filters of an account list; `after` is the last id of the previous page.
#[derive(Default)]
pub struct AccountQuery<'a> {
    pub state: Option<State>,
    pub role: Option<&'a str>,
    pub group_pk: Option<i64>,
    /// A SCIM filter the account's user must match (a rule's filter: over the User).
    pub filter: Option<&'a Cond>,
    pub flagged: bool,
    pub after: Option<&'a str>,
    pub limit: i64,
}

/// A page of accounts in id order.
pub fn list(
    db: &mut Db<'_>,
    tenant: &TenantId,
    f: &AccountQuery<'_>,
) -> StoreResult<Vec<AccountRow>> {
    let mut q = accounts(tenant);
    if let Some(s) = f.state {
        q.and(" AND a.state = ?", [Bind::text(s.as_str())]);
    }
    if let Some(r) = f.role {
        let sub = " AND a.id IN (SELECT account_id FROM account_roles WHERE role_id = ?)";
        q.and(sub, [Bind::text(r)]);
    }
    if let Some(g) = f.group_pk {
        q.and(IN_GROUP, [Bind::Int(g)]);
    }
    if let Some(c) = f.filter {
        q.push(" AND a.user_pk IN (SELECT r.pk FROM resources r WHERE ")
            .append(search::matching(db, tenant, Rtype::User, Some(c))?)
            .push(")");
    }
    if f.flagged {
        q.push(" AND a.removal_since IS NOT NULL");
    }
    if let Some(a) = f.after {
        q.and(" AND a.id > ?", [Bind::text(a)]);
    }
    q.and(" ORDER BY a.id LIMIT ?", [Bind::Int(f.limit)]);
    db.rows::<RawAccount>(&q)
}

/// How many accounts have their user in the group `group_pk`.
pub fn count_in_group(db: &mut Db<'_>, tenant: &TenantId, group_pk: i64) -> StoreResult<i64> {
    let mut q = select("COUNT(*) AS n", "accounts a", tenant);
    q.and(IN_GROUP, [Bind::Int(group_pk)]);
    db.count(&q)
}

/// The columns of a row, in `ACCOUNT_COLUMNS` order after `scim_id` (what an update sets).
fn encode(a: &AccountRow) -> StoreResult<[Bind; 8]> {
    let json = |v: serde_json::Result<String>| {
        v.map_err(|e| StorageError::corrupt(TABLE, &a.id, format!("cannot encode: {e}")))
    };
    Ok([
        Bind::OptInt(a.user_pk),
        Bind::text(&a.user_name),
        Bind::text(a.state.as_str()),
        Bind::Text(json(serde_json::to_string(&a.roles))?),
        Bind::Text(json(serde_json::to_string(&a.entitlements))?),
        Bind::OptInt(a.removal.map(|r| r.since)),
        Bind::OptText(a.removal.map(|r| r.reason.as_str().to_string())),
        Bind::Int(a.modified),
    ])
}

pub fn insert(db: &mut Db<'_>, tenant: &TenantId, a: &AccountRow) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO accounts (id, tenant_id, scim_id, created, user_pk, user_name, state, roles, entitlements, removal_since, removal_reason, modified) VALUES (",
    );
    q.bind_list(
        [
            Bind::text(&a.id),
            Bind::tenant(tenant),
            Bind::text(&a.scim_id),
            Bind::Int(a.created),
        ]
        .into_iter()
        .chain(encode(a)?),
    )
    .push(")");
    db.execute(&q)?;
    Ok(())
}

pub fn update(db: &mut Db<'_>, tenant: &TenantId, a: &AccountRow) -> StoreResult<()> {
    let columns = [
        "user_pk",
        "user_name",
        "state",
        "roles",
        "entitlements",
        "removal_since",
        "removal_reason",
        "modified",
    ];
    let mut q = Sql::new("UPDATE accounts SET ");
    for (i, (col, value)) in columns.iter().zip(encode(a)?).enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push(col).push(" = ").bind(value);
    }
    q.push(" WHERE tenant_id = ")
        .bind(Bind::tenant(tenant))
        .push(" AND id = ")
        .bind(Bind::text(&a.id));
    db.execute(&q)?;
    Ok(())
}

/// Replaces an account's role grants (the index behind `GET /accounts?role=`).
pub fn set_roles(
    db: &mut Db<'_>,
    tenant: &TenantId,
    account: &str,
    roles: &[String],
) -> StoreResult<()> {
    db.execute(&Sql::with(
        "DELETE FROM account_roles WHERE account_id = ?",
        [Bind::text(account)],
    ))?;
    add_roles(db, tenant, account, roles)
}

/// Grants an account roles it does not hold (a new account's).
pub fn add_roles(
    db: &mut Db<'_>,
    tenant: &TenantId,
    account: &str,
    roles: &[String],
) -> StoreResult<()> {
    if roles.is_empty() {
        return Ok(());
    }
    let account_id = Bind::text(account);
    let mut q = Sql::new("INSERT INTO account_roles (tenant_id, role_id, account_id) VALUES ");
    q.bind_rows(roles, |r| {
        vec![Bind::tenant(tenant), Bind::text(r), account_id.clone()]
    });
    db.execute(&q)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(state: &str, roles: &str, since: Option<i64>, reason: Option<&str>) -> RawAccount {
        RawAccount {
            id: "acc-1".into(),
            scim_id: "u".into(),
            user_pk: Some(1),
            user_name: "ada".into(),
            state: state.into(),
            roles: roles.into(),
            entitlements: "{\"a\":1}".into(),
            removal_since: since,
            removal_reason: reason.map(str::to_string),
            created: 1,
            modified: 2,
        }
    }

    #[test]
    fn a_row_decodes_into_typed_fields() {
        let a = raw(
            "active",
            r#"[{"id":"r","name":"n"}]"#,
            Some(5),
            Some("deleted"),
        )
        .decode()
        .unwrap();
        assert_eq!(a.state, State::Active);
        assert_eq!(
            a.roles,
            [RoleRef {
                id: "r".into(),
                name: "n".into()
            }]
        );
        assert_eq!(
            a.removal,
            Some(Removal {
                since: 5,
                reason: RemovalReason::Deleted
            })
        );
    }

    #[test]
    fn a_row_that_does_not_decode_is_an_error_naming_it() {
        for bad in [
            raw("frozen", "[]", None, None),
            raw("active", "not json", None, None),
            raw("active", "[]", Some(1), None),
            raw("active", "[]", Some(1), Some("bored")),
        ] {
            let e = bad.decode().unwrap_err().to_string();
            assert!(e.contains("accounts") && e.contains("acc-1"), "{e}");
        }
    }
}
