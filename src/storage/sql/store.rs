//! The store: every read and write Scimitar makes, as functions over a borrowed connection.
//! Each is scoped to a tenant; the caller owns the transaction.

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryableByName;

use crate::scim::query::{Cond, Field, Kind, Sort, SortKey};
use crate::scim::resource::{IndexValue, Indexed, RefOut};
use crate::scim::schema::Rtype;
use crate::storage::StorageError;

use super::conn::{Backend, Bind, Db, PgArray, Sql};

use super::filter::{substring_grams, GramCounts, Translator};
use super::product::{append_feed, count_slot, COUNT_COLUMNS};

pub type StoreResult<T> = Result<T, StorageError>;

/// A stored resource, as read back.
#[derive(Clone, Debug, QueryableByName)]
pub struct ResourceRow {
    #[diesel(sql_type = BigInt)]
    pub pk: i64,
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub rtype: String,
    #[diesel(sql_type = Text)]
    pub doc: String,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = BigInt)]
    pub modified: i64,
    #[diesel(sql_type = Nullable<Bool>)]
    pub active: Option<bool>,
}

pub(super) const RESOURCE_COLUMNS: &str =
    "r.pk, r.id, r.rtype, r.doc, r.version, r.created, r.modified, r.active";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

// ---------------------------------------------------------------------------------------
// Tenants and tokens

pub fn ensure_tenant(db: &mut Db<'_>, id: &str, name: &str, now: i64) -> StoreResult<()> {
    let mut q = Sql::new("INSERT INTO tenants (id, name, created) VALUES (");
    q.bind_list([
        Bind::Text(id.into()),
        Bind::Text(name.into()),
        Bind::Int(now),
    ])
    .push(") ON CONFLICT DO NOTHING");
    db.execute(&q)?;
    Ok(())
}

pub fn count_tokens(db: &mut Db<'_>) -> StoreResult<i64> {
    Ok(db
        .first::<Count>(&Sql::new("SELECT COUNT(*) AS n FROM tokens"))?
        .map(|c| c.n)
        .unwrap_or(0))
}

pub struct NewToken<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub label: Option<&'a str>,
    pub scope: &'a str,
    pub secret_hash: &'a str,
    pub created: i64,
    pub expires: Option<i64>,
}

pub fn insert_token(db: &mut Db<'_>, t: &NewToken<'_>) -> StoreResult<()> {
    let mut q = Sql::new("INSERT INTO tokens (id, tenant_id, label, scope, secret_hash, created, expires, revoked) VALUES (");
    q.bind_list([
        Bind::Text(t.id.into()),
        Bind::Text(t.tenant_id.into()),
        Bind::OptText(t.label.map(str::to_string)),
        Bind::Text(t.scope.into()),
        Bind::Text(t.secret_hash.into()),
        Bind::Int(t.created),
        Bind::OptInt(t.expires),
        Bind::Bool(false),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Resources

/// The columns written for a resource.
pub struct ResourceWrite<'a> {
    pub indexed: &'a Indexed,
    pub doc: &'a str,
    pub now: i64,
}

fn lower(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.to_lowercase())
}

/// Inserts a resource and its attribute values; a duplicate userName is `Conflict`.
pub fn insert_resource(
    db: &mut Db<'_>,
    tenant: &str,
    rt: Rtype,
    id: &str,
    w: &ResourceWrite<'_>,
) -> StoreResult<i64> {
    let pks = insert_resources(db, tenant, rt, &[(id, w)])?;
    pks.into_iter().next().ok_or(StorageError::NotFound)
}

#[derive(QueryableByName)]
struct PkId {
    #[diesel(sql_type = BigInt)]
    pk: i64,
    #[diesel(sql_type = Text)]
    id: String,
}

/// Rows per multi-row INSERT: under SQLite's 32,766 and Postgres's 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 2000;

/// Inserts many resources of one type and their attribute values in a few statements
/// (bulk loads); returns their pks in the order given. All or nothing: a duplicate fails
/// the statement with `Conflict`.
pub fn insert_resources(
    db: &mut Db<'_>,
    tenant: &str,
    rt: Rtype,
    items: &[(&str, &ResourceWrite<'_>)],
) -> StoreResult<Vec<i64>> {
    let mut pk_of: HashMap<String, i64> = HashMap::with_capacity(items.len());
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let mut q = Sql::new(
            "INSERT INTO resources (tenant_id, id, rtype, user_name, user_name_ci, display_name, display_ci, \
             external_id, active, doc, version, created, modified) VALUES ",
        );
        for (i, (id, w)) in chunk.iter().enumerate() {
            let ix = w.indexed;
            if i > 0 {
                q.push(", ");
            }
            q.push("(");
            q.bind_list([
                Bind::Text(tenant.into()),
                Bind::Text((*id).into()),
                Bind::Text(rt.name().into()),
                Bind::OptText(ix.user_name.clone()),
                Bind::OptText(lower(&ix.user_name)),
                Bind::OptText(ix.display_name.clone()),
                Bind::OptText(lower(&ix.display_name)),
                Bind::OptText(ix.external_id.clone()),
                Bind::OptBool(ix.active),
                Bind::Text(w.doc.into()),
                Bind::Int(1),
                Bind::Int(w.now),
                Bind::Int(w.now),
            ]);
            q.push(")");
        }
        q.push(" RETURNING pk, id");
        for row in db.load::<PkId>(&q)? {
            pk_of.insert(row.id, row.pk);
        }
    }
    let pks = items
        .iter()
        .map(|(id, _)| pk_of.get(*id).copied().ok_or(StorageError::NotFound))
        .collect::<StoreResult<Vec<i64>>>()?;
    let values: Vec<(i64, &IndexValue)> = items
        .iter()
        .zip(&pks)
        .flat_map(|((_, w), pk)| w.indexed.values.iter().map(move |v| (*pk, v)))
        .collect();
    insert_values(db, tenant, &values)?;
    Ok(pks)
}

/// Rewrites a resource's document and columns if its version is still `expected`; returns the
/// new version. A concurrent change in between is `VersionMismatch`.
pub fn update_resource(
    db: &mut Db<'_>,
    tenant: &str,
    pk: i64,
    expected: i64,
    w: &ResourceWrite<'_>,
) -> StoreResult<i64> {
    let ix = w.indexed;
    let mut q = Sql::new("UPDATE resources SET user_name = ");
    q.bind(Bind::OptText(ix.user_name.clone()))
        .push(", user_name_ci = ")
        .bind(Bind::OptText(lower(&ix.user_name)))
        .push(", display_name = ")
        .bind(Bind::OptText(ix.display_name.clone()))
        .push(", display_ci = ")
        .bind(Bind::OptText(lower(&ix.display_name)))
        .push(", external_id = ")
        .bind(Bind::OptText(ix.external_id.clone()))
        .push(", active = ")
        .bind(Bind::OptBool(ix.active))
        .push(", doc = ")
        .bind(Bind::Text(w.doc.into()))
        .push(", version = version + 1, modified = ")
        .bind(Bind::Int(w.now))
        .push(" WHERE tenant_id = ")
        .bind(Bind::Text(tenant.into()))
        .push(" AND pk = ")
        .bind(Bind::Int(pk))
        .push(" AND version = ")
        .bind(Bind::Int(expected));
    if db.execute(&q)? == 0 {
        return Err(StorageError::VersionMismatch);
    }
    let mut del = Sql::new("DELETE FROM attr_values WHERE res_pk = ");
    del.bind(Bind::Int(pk));
    db.execute(&del)?;
    let values: Vec<(i64, &IndexValue)> = ix.values.iter().map(|v| (pk, v)).collect();
    insert_values(db, tenant, &values)?;
    Ok(expected + 1)
}

/// Bumps the version of a resource whose membership changed (ETags change on every
/// modification, RFC 7644 §3.14).
pub fn touch_resource(
    db: &mut Db<'_>,
    tenant: &str,
    pk: i64,
    expected: i64,
    now: i64,
) -> StoreResult<i64> {
    let mut q = Sql::new("UPDATE resources SET version = version + 1, modified = ");
    q.bind(Bind::Int(now))
        .push(" WHERE tenant_id = ")
        .bind(Bind::Text(tenant.into()))
        .push(" AND pk = ")
        .bind(Bind::Int(pk))
        .push(" AND version = ")
        .bind(Bind::Int(expected));
    if db.execute(&q)? == 0 {
        return Err(StorageError::VersionMismatch);
    }
    Ok(expected + 1)
}

fn insert_values(db: &mut Db<'_>, tenant: &str, values: &[(i64, &IndexValue)]) -> StoreResult<()> {
    if db.backend() == Backend::Postgres {
        // One statement with six array parameters: Postgres parses and plans it once
        // however many rows it carries (a VALUES list costs per parameter).
        let mut q = Sql::new(
            "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val, num) SELECT u.res_pk, ",
        );
        q.bind(Bind::Text(tenant.into()))
            .push(", u.path, u.elem, u.val, u.num FROM unnest(")
            .bind(Bind::PgArray(PgArray::Int(
                values.iter().map(|(pk, _)| *pk).collect(),
            )))
            .push(", ")
            .bind(Bind::PgArray(PgArray::OptText(
                values.iter().map(|(_, v)| Some(v.path.clone())).collect(),
            )))
            .push(", ")
            .bind(Bind::PgArray(PgArray::I32(
                values.iter().map(|(_, v)| v.elem).collect(),
            )))
            .push(", ")
            .bind(Bind::PgArray(PgArray::OptText(
                values.iter().map(|(_, v)| v.val.clone()).collect(),
            )))
            .push(", ")
            .bind(Bind::PgArray(PgArray::OptFloat(
                values.iter().map(|(_, v)| v.num).collect(),
            )))
            .push(") AS u(res_pk, path, elem, val, num)");
        if !values.is_empty() {
            db.execute(&q)?;
        }
        return Ok(());
    }
    for chunk in values.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            Sql::new("INSERT INTO attr_values (res_pk, tenant_id, path, elem, val, num) VALUES ");
        for (i, (pk, v)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(");
            q.bind_list([
                Bind::Int(*pk),
                Bind::Text(tenant.into()),
                Bind::Text(v.path.clone()),
                Bind::I32(v.elem),
                Bind::OptText(v.val.clone()),
                Bind::OptFloat(v.num),
            ]);
            q.push(")");
        }
        db.execute(&q)?;
    }
    Ok(())
}

/// How a read row is locked until the transaction ends (Postgres; SQLite's write
/// transaction already holds the database lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    None,
    /// Changing the row, not its key: `FOR NO KEY UPDATE`, which does not conflict with the
    /// `KEY SHARE` locks foreign-key checks take (adding it as a member elsewhere).
    Update,
    /// Deleting it: `FOR UPDATE`.
    Delete,
}

/// Adds `delta` to the number of `rt` resources the tenant holds, for writers that bypass
/// the journal (a bulk loader); the journal adds its counts in `append_feed`.
pub fn adjust_resource_count(
    db: &mut Db<'_>,
    tenant: &str,
    rt: Rtype,
    delta: i64,
) -> StoreResult<()> {
    let mut counted = [0, 0];
    counted[count_slot(rt)] = delta;
    append_feed(db, tenant, &[], counted)?;
    Ok(())
}

/// The number of `rt` resources the tenant holds (kept on its `feed_heads` row).
pub fn resource_count(db: &mut Db<'_>, tenant: &str, rt: Rtype) -> StoreResult<i64> {
    let col = COUNT_COLUMNS[count_slot(rt)];
    let mut q = Sql::new(&format!(
        "SELECT {col} AS n FROM feed_heads WHERE tenant_id = "
    ));
    q.bind(Bind::Text(tenant.into()));
    Ok(db.first::<Count>(&q)?.map(|c| c.n).unwrap_or(0))
}

/// Reads one resource of this tenant, locked as `lock` says.
pub fn get_resource(
    db: &mut Db<'_>,
    tenant: &str,
    rt: Rtype,
    id: &str,
    lock: Lock,
) -> StoreResult<Option<ResourceRow>> {
    if id.contains('\0') {
        // No id holds U+0000 (and Postgres text cannot carry it): nothing to find.
        return Ok(None);
    }
    let mut q = Sql::new(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = "
    ));
    // Only the unique key (tenant_id, id) can serve this lookup: with a plain `rtype = ?`, a
    // Postgres without fresh statistics (autovacuum off, or a table that just grew) may pick
    // the (tenant_id, rtype, pk) list index and scan every resource of the type for one row.
    // The type is still tested in SQL, so a row of another type is never locked.
    q.bind(Bind::Text(tenant.into()))
        .push(" AND r.id = ")
        .bind(Bind::Text(id.into()))
        .push(" AND (r.rtype || '') = ")
        .bind(Bind::Text(rt.name().into()));
    if db.backend() == Backend::Postgres {
        q.push(match lock {
            Lock::None => "",
            Lock::Update => " FOR NO KEY UPDATE",
            Lock::Delete => " FOR UPDATE",
        });
    }
    Ok(db.first(&q)?)
}

/// A resource by its key (any type), unlocked.
pub fn get_resource_by_pk(
    db: &mut Db<'_>,
    tenant: &str,
    pk: i64,
) -> StoreResult<Option<ResourceRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = "
    ));
    q.bind(Bind::Text(tenant.into()))
        .push(" AND r.pk = ")
        .bind(Bind::Int(pk));
    Ok(db.first(&q)?)
}

/// Deletes a resource; attribute values and memberships go with it (ON DELETE CASCADE).
pub fn delete_resource(db: &mut Db<'_>, tenant: &str, pk: i64) -> StoreResult<()> {
    let mut q = Sql::new("DELETE FROM resources WHERE tenant_id = ");
    q.bind(Bind::Text(tenant.into()))
        .push(" AND pk = ")
        .bind(Bind::Int(pk));
    db.execute(&q)?;
    Ok(())
}

/// A resource named by id, as found in this tenant.
#[derive(Clone, Debug, QueryableByName)]
pub struct IdRow {
    #[diesel(sql_type = BigInt)]
    pub pk: i64,
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub rtype: String,
}

const ID_BATCH: usize = 500;

/// Looks up which of `ids` exist in this tenant (any resource type).
pub fn resolve_ids(db: &mut Db<'_>, tenant: &str, ids: &[String]) -> StoreResult<Vec<IdRow>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ID_BATCH) {
        let mut q = Sql::new("SELECT pk, id, rtype FROM resources WHERE tenant_id = ");
        q.bind(Bind::Text(tenant.into())).push(" AND id IN (");
        q.bind_list(chunk.iter().map(|i| Bind::Text(i.clone())))
            .push(")");
        out.extend(db.load::<IdRow>(&q)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Membership

/// A member to add: the resource's pk and the `display` the client sent, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMember {
    pub pk: i64,
    pub display: Option<String>,
}

/// Adds members (already present ones are left alone); returns how many were new.
pub fn add_members(
    db: &mut Db<'_>,
    tenant: &str,
    group_pk: i64,
    members: &[NewMember],
) -> StoreResult<usize> {
    let mut added = 0;
    for chunk in members.chunks(ID_BATCH) {
        let mut q = Sql::new(
            "INSERT INTO members (tenant_id, group_pk, member_pk, display, display_ci) VALUES ",
        );
        for (i, m) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(");
            q.bind_list([
                Bind::Text(tenant.into()),
                Bind::Int(group_pk),
                Bind::Int(m.pk),
                Bind::OptText(m.display.clone()),
                Bind::OptText(lower(&m.display)),
            ]);
            q.push(")");
        }
        q.push(" ON CONFLICT DO NOTHING");
        added += db.execute(&q)?;
    }
    Ok(added)
}

/// Removes the given members; returns how many were there.
pub fn remove_members(db: &mut Db<'_>, group_pk: i64, member_pks: &[i64]) -> StoreResult<usize> {
    let mut removed = 0;
    for chunk in member_pks.chunks(ID_BATCH) {
        let mut q = Sql::new("DELETE FROM members WHERE group_pk = ");
        q.bind(Bind::Int(group_pk)).push(" AND member_pk IN (");
        q.bind_list(chunk.iter().map(|m| Bind::Int(*m))).push(")");
        removed += db.execute(&q)?;
    }
    Ok(removed)
}

pub fn remove_all_members(db: &mut Db<'_>, group_pk: i64) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM members WHERE group_pk = ");
    q.bind(Bind::Int(group_pk));
    Ok(db.execute(&q)?)
}

/// Removes the members of a group that match `cond` (a `members[...]` condition).
pub fn remove_members_where(
    db: &mut Db<'_>,
    tenant: &str,
    group_pk: i64,
    cond: &Cond,
) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM members WHERE group_pk = ");
    q.bind(Bind::Int(group_pk))
        .push(" AND member_pk IN (SELECT mm.member_pk FROM members mm JOIN resources r ON r.pk = mm.member_pk WHERE mm.group_pk = ")
        .bind(Bind::Int(group_pk))
        .push(" AND r.tenant_id = ")
        .bind(Bind::Text(tenant.into()))
        .push(" AND ");
    // The condition is relative to one member: evaluate it on the membership row and the
    // member's own row.
    let inner = match cond {
        Cond::Elem { inner, .. } => inner.as_ref(),
        other => other,
    };
    Translator::new(tenant, Rtype::Group, db.backend()).translate_ref_row(inner, "mm", "r", &mut q);
    q.push(")");
    Ok(db.execute(&q)?)
}

#[derive(QueryableByName)]
struct RefRow {
    #[diesel(sql_type = BigInt)]
    owner: i64,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    rtype: String,
    #[diesel(sql_type = Nullable<Text>)]
    display: Option<String>,
}

/// The references of each resource in `pks`: members of groups (rt Group) or groups of
/// users (rt User), in a stable order. One query per batch, never one per resource.
pub fn refs_of(db: &mut Db<'_>, rt: Rtype, pks: &[i64]) -> StoreResult<HashMap<i64, Vec<RefOut>>> {
    let mut out: HashMap<i64, Vec<RefOut>> = HashMap::new();
    let (this, other) = match rt {
        Rtype::Group => ("group_pk", "member_pk"),
        Rtype::User => ("member_pk", "group_pk"),
    };
    // A member's display is what the client sent with it, else the member's own name; a
    // user's groups show the group's displayName.
    let display = match rt {
        Rtype::Group => "COALESCE(m.display, x.display_name, x.user_name)",
        Rtype::User => "x.display_name",
    };
    for chunk in pks.chunks(ID_BATCH) {
        let mut q = Sql::new(&format!(
            "SELECT m.{this} AS owner, x.id AS id, x.rtype AS rtype, {display} AS display \
             FROM members m JOIN resources x ON x.pk = m.{other} WHERE m.{this} IN ("
        ));
        q.bind_list(chunk.iter().map(|p| Bind::Int(*p)))
            .push(&format!(") ORDER BY m.{this}, m.{other}"));
        for row in db.load::<RefRow>(&q)? {
            let kind = Rtype::from_name(&row.rtype).unwrap_or(Rtype::User);
            out.entry(row.owner).or_default().push(RefOut {
                id: row.id,
                kind,
                display: row.display,
            });
        }
    }
    Ok(out)
}

/// Version rows of the groups that contain `member_pk`, locked in pk order (so concurrent
/// deletes and membership changes always lock groups in the same order).
pub fn groups_containing(
    db: &mut Db<'_>,
    tenant: &str,
    member_pk: i64,
) -> StoreResult<Vec<ResourceRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = "
    ));
    q.bind(Bind::Text(tenant.into()))
        .push(" AND r.pk IN (SELECT group_pk FROM members WHERE member_pk = ")
        .bind(Bind::Int(member_pk))
        .push(") ORDER BY r.pk");
    if db.backend() == Backend::Postgres {
        q.push(" FOR NO KEY UPDATE");
    }
    Ok(db.load(&q)?)
}

// ---------------------------------------------------------------------------------------
// Queries

/// A sort key value, as read with a row and carried in cursors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SortValue {
    Null,
    Text(String),
    Num(f64),
}

/// Which part of the ordered results to read.
#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    /// Index paging (RFC 7644 §3.4.2.4).
    Offset { offset: i64, limit: i64 },
    /// Keyset paging (RFC 9865): rows strictly after the boundary row, in list order.
    After { key: SortValue, pk: i64, limit: i64 },
    /// Rows strictly before the boundary row, returned in list order.
    Before { key: SortValue, pk: i64, limit: i64 },
}

/// A page of a filtered list: the rows, each row's sort key, and the total number of
/// matches when it was asked for.
pub struct Page {
    pub total: Option<i64>,
    pub rows: Vec<ResourceRow>,
    pub keys: Vec<SortValue>,
}

#[derive(QueryableByName)]
struct SortedRow {
    #[diesel(sql_type = BigInt)]
    pk: i64,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    rtype: String,
    #[diesel(sql_type = Text)]
    doc: String,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = BigInt)]
    created: i64,
    #[diesel(sql_type = BigInt)]
    modified: i64,
    #[diesel(sql_type = Nullable<Bool>)]
    active: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    skey_t: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    skey_n: Option<f64>,
}

/// The SQL expression of a sort key over `resources r`, and whether it is numeric.
fn sort_expr(key: &SortKey) -> (Sql, bool) {
    use crate::scim::query::Column;
    let numeric = matches!(key.kind, Kind::Num | Kind::DateTime);
    let expr = match &key.field {
        Field::Column(c) => Sql::new(match c {
            Column::Id => "r.id",
            Column::ExternalId => "r.external_id",
            Column::UserName => "r.user_name_ci",
            Column::DisplayName => "r.display_ci",
            Column::Active => "(CASE WHEN r.active THEN 'true' WHEN NOT r.active THEN 'false' END)",
            Column::Created => "r.created",
            Column::Modified => "r.modified",
            Column::ResourceType => "r.rtype",
        }),
        Field::Value(path) => {
            let col = if numeric { "num" } else { "val" };
            match &key.primary {
                Some(primary) => {
                    // The primary value, else the first (RFC 7644 §3.4.2.3).
                    let mut q = Sql::new(&format!(
                        "COALESCE((SELECT sv.{col} FROM attr_values sv JOIN attr_values pv ON pv.res_pk = sv.res_pk \
                         AND pv.elem = sv.elem WHERE sv.res_pk = r.pk AND sv.path = "
                    ));
                    q.bind(Bind::Text(path.clone()))
                        .push(" AND pv.path = ")
                        .bind(Bind::Text(primary.clone()))
                        .push(&format!(
                            " AND pv.val = 'true' LIMIT 1), (SELECT sv.{col} FROM attr_values sv WHERE sv.res_pk = r.pk AND sv.path = "
                        ))
                        .bind(Bind::Text(path.clone()))
                        .push(" ORDER BY sv.elem LIMIT 1))");
                    q
                }
                None => {
                    let mut q = Sql::new(&format!(
                        "(SELECT MIN(sv.{col}) FROM attr_values sv WHERE sv.res_pk = r.pk AND sv.path = "
                    ));
                    q.bind(Bind::Text(path.clone())).push(")");
                    q
                }
            }
        }
        // Membership references are rejected as sort keys when the request is validated.
        Field::Ref(_) => Sql::new("NULL"),
    };
    (expr, numeric)
}

fn key_bind(v: &SortValue) -> Bind {
    match v {
        SortValue::Text(t) => Bind::Text(t.clone()),
        SortValue::Num(n) => Bind::Float(*n),
        SortValue::Null => Bind::OptText(None),
    }
}

/// The keyset condition "strictly beyond the boundary (key0, pk0)" in ascending tuple order
/// ((K IS NULL), K, pk) when `greater`, else strictly before it.
fn keyset_cond(expr: Option<&Sql>, key0: &SortValue, pk0: i64, greater: bool) -> Sql {
    let op = if greater { " > " } else { " < " };
    let mut q = Sql::new("(");
    match (expr, key0) {
        (None, _) => {
            q.push("r.pk").push(op).bind(Bind::Int(pk0));
        }
        (Some(k), SortValue::Null) => {
            // Nulls sort last: beyond a null boundary are only later nulls.
            q.push("(").append(k.clone()).push(if greater {
                ") IS NULL AND r.pk"
            } else {
                ") IS NOT NULL OR r.pk"
            });
            q.push(op).bind(Bind::Int(pk0));
        }
        (Some(k), v) => {
            q.push("(").append(k.clone());
            q.push(if greater {
                ") IS NULL OR ("
            } else {
                ") IS NOT NULL AND (("
            });
            q.append(k.clone())
                .push(")")
                .push(op)
                .bind(key_bind(v))
                .push(" OR ((");
            q.append(k.clone())
                .push(") = ")
                .bind(key_bind(v))
                .push(" AND r.pk")
                .push(op)
                .bind(Bind::Int(pk0));
            q.push(if greater { ")" } else { "))" });
        }
    }
    q.push(")");
    q
}

/// Filters, optionally counts, orders and windows the resources of one type. Order is the
/// sort key (nulls last) then insertion order, so pages never repeat or skip a row.
pub fn search(
    db: &mut Db<'_>,
    tenant: &str,
    rt: Rtype,
    cond: Option<&Cond>,
    sort: Option<&Sort>,
    window: &Window,
    count_total: bool,
) -> StoreResult<Page> {
    // The conditions on `resources r`, shared by the count and every plan of the rows.
    let mut base = Sql::new("r.tenant_id = ");
    base.bind(Bind::Text(tenant.into()))
        .push(" AND r.rtype = ")
        .bind(Bind::Text(rt.name().into()));
    if let Some(c) = cond {
        base.push(" AND ");
        let counts = gram_counts(db, c)?;
        let mut t = Translator::new(tenant, rt, db.backend());
        if let Some(counts) = &counts {
            t = t.with_gram_counts(counts);
        }
        t.translate(c, &mut base);
    }
    let mut wh = Sql::new(" FROM resources r WHERE ");
    wh.append(base.clone());
    let selective = cond.is_some_and(is_selective);
    let limit = match window {
        Window::Offset { limit, .. }
        | Window::After { limit, .. }
        | Window::Before { limit, .. } => *limit,
    };
    // Sorted by a singular attribute without a selective filter: walk that attribute's value
    // index in order rather than compute a key for every matching row and sort them all.
    let by_value = sort
        .filter(|s| s.key.singular && !selective)
        .and_then(|s| match &s.key.field {
            Field::Value(path) => Some(ValueOrder {
                tenant,
                path,
                numeric: matches!(s.key.kind, Kind::Num | Kind::DateTime),
                descending: s.descending,
            }),
            _ => None,
        });
    let rows = |db: &mut Db<'_>, total: Option<i64>| -> StoreResult<Page> {
        match &by_value {
            Some(by) => Ok(Page {
                total,
                ..by.page(db, &base, window)?
            }),
            None => page_rows(db, &wh, sort, window, limit, total, selective),
        }
    };
    let count = |db: &mut Db<'_>| -> StoreResult<i64> {
        if cond.is_none() {
            return resource_count(db, tenant, rt);
        }
        let mut count = Sql::new("SELECT COUNT(*) AS n");
        count.append(wh.clone());
        Ok(db.first::<Count>(&count)?.map(|c| c.n).unwrap_or(0))
    };
    // The first page of a lookup (`userName eq ...`) usually holds every match: then the
    // count is the page's length and needs no second query.
    let first_page = matches!(window, Window::Offset { offset: 0, .. });
    if limit <= 0 || (!first_page && count_total) {
        let total = if count_total { Some(count(db)?) } else { None };
        if limit <= 0
            || matches!(window, Window::Offset { offset, .. } if total.is_some_and(|t| *offset >= t))
        {
            return Ok(Page {
                total,
                rows: Vec::new(),
                keys: Vec::new(),
            });
        }
        return rows(db, total);
    }
    let mut page = rows(db, None)?;
    if count_total {
        page.total = Some(if (page.rows.len() as i64) < limit {
            page.rows.len() as i64
        } else {
            count(db)?
        });
    }
    Ok(page)
}

/// A list ordered by a singular attribute's stored value, read from `attr_values` in index
/// order. The order is the one `page_rows` gives with a computed key: resources with a value
/// by (value, pk), then those without one by pk (all reversed when descending). Each of those
/// two segments is one ordered, limited query.
struct ValueOrder<'a> {
    tenant: &'a str,
    path: &'a str,
    numeric: bool,
    descending: bool,
}

/// One of the two segments of a `ValueOrder`.
#[derive(Clone, Copy, PartialEq)]
enum Segment {
    Valued,
    Unvalued,
}

impl ValueOrder<'_> {
    fn col(&self) -> &'static str {
        if self.numeric {
            "num"
        } else {
            "val"
        }
    }

    fn page(&self, db: &mut Db<'_>, base: &Sql, window: &Window) -> StoreResult<Page> {
        let backwards = matches!(window, Window::Before { .. });
        // Walking the list forwards is ascending unless the list is descending; a previous
        // page walks it backwards.
        let desc = self.descending != backwards;
        let mut order = if self.descending {
            vec![Segment::Unvalued, Segment::Valued]
        } else {
            vec![Segment::Valued, Segment::Unvalued]
        };
        if backwards {
            order.reverse();
        }
        let (limit, mut offset, boundary) = match window {
            Window::Offset { offset, limit } => (*limit, *offset, None),
            Window::After { key, pk, limit } | Window::Before { key, pk, limit } => {
                (*limit, 0, Some((key, *pk)))
            }
        };
        // Segments wholly before the boundary's segment in walking order are skipped.
        if let Some((key, _)) = boundary {
            let at = if matches!(key, SortValue::Null) {
                Segment::Unvalued
            } else {
                Segment::Valued
            };
            if let Some(i) = order.iter().position(|s| *s == at) {
                order.drain(..i);
            }
        }
        let mut rows: Vec<SortedRow> = Vec::new();
        for (i, seg) in order.iter().enumerate() {
            let want = limit - rows.len() as i64;
            if want <= 0 {
                break;
            }
            let after = if i == 0 { boundary } else { None };
            let got = self.segment(db, base, *seg, desc, after, want, offset)?;
            if got.is_empty() && offset > 0 {
                // The offset may reach past this segment: skip its whole length.
                offset = (offset - self.segment_len(db, base, *seg)?).max(0);
            } else {
                offset = 0;
            }
            rows.extend(got);
        }
        if backwards {
            rows.reverse();
        }
        Ok(sorted_page(rows, None))
    }

    /// The FROM and WHERE of a segment (without the boundary condition).
    fn from(&self, backend: Backend, base: &Sql, seg: Segment) -> Sql {
        let col = self.col();
        let mut q;
        match seg {
            Segment::Valued if backend == Backend::Sqlite => {
                // CROSS JOIN keeps the value index outermost. The conditions on the resource
                // sit in a correlated EXISTS (its `r` shadows the outer one): as plain WHERE
                // terms on `r`, SQLite would first build a Bloom filter over every resource.
                q = Sql::new(
                    " FROM attr_values sv CROSS JOIN resources r ON r.pk = sv.res_pk WHERE sv.tenant_id = ",
                );
                q.bind(Bind::Text(self.tenant.into()))
                    .push(" AND sv.path = ")
                    .bind(Bind::Text(self.path.into()))
                    .push(&format!(
                        " AND sv.{col} IS NOT NULL AND EXISTS (SELECT 1 FROM resources r WHERE r.pk = sv.res_pk AND "
                    ));
                q.append(base.clone()).push(")");
                return q;
            }
            Segment::Valued => {
                q = Sql::new(
                    " FROM attr_values sv JOIN resources r ON r.pk = sv.res_pk WHERE sv.tenant_id = ",
                );
                q.bind(Bind::Text(self.tenant.into()))
                    .push(" AND sv.path = ")
                    .bind(Bind::Text(self.path.into()))
                    .push(&format!(" AND sv.{col} IS NOT NULL AND "));
            }
            Segment::Unvalued => {
                q = Sql::new(
                    " FROM resources r WHERE NOT EXISTS (SELECT 1 FROM attr_values sv WHERE sv.res_pk = r.pk AND sv.path = ",
                );
                q.bind(Bind::Text(self.path.into()))
                    .push(&format!(" AND sv.{col} IS NOT NULL) AND "));
            }
        }
        q.append(base.clone());
        q
    }

    fn segment_len(&self, db: &mut Db<'_>, base: &Sql, seg: Segment) -> StoreResult<i64> {
        let mut q = Sql::new("SELECT COUNT(*) AS n");
        q.append(self.from(db.backend(), base, seg));
        Ok(db.first::<Count>(&q)?.map(|c| c.n).unwrap_or(0))
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &self,
        db: &mut Db<'_>,
        base: &Sql,
        seg: Segment,
        desc: bool,
        after: Option<(&SortValue, i64)>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<SortedRow>> {
        let col = self.col();
        let (op, dir) = if desc { (" < ", " DESC") } else { (" > ", "") };
        let mut q = Sql::new(&format!("SELECT {RESOURCE_COLUMNS}, "));
        match (seg, self.numeric) {
            (Segment::Valued, true) => {
                q.push("CAST(NULL AS TEXT) AS skey_t, sv.num AS skey_n");
            }
            (Segment::Valued, false) => {
                q.push("sv.val AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
            }
            (Segment::Unvalued, _) => {
                q.push("CAST(NULL AS TEXT) AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
            }
        }
        q.append(self.from(db.backend(), base, seg));
        match (seg, after) {
            (_, None) => {}
            (Segment::Unvalued, Some((_, pk))) => {
                q.push(" AND r.pk").push(op).bind(Bind::Int(pk));
            }
            (Segment::Valued, Some((key, pk))) => {
                // Written so the value index serves the range: v >= k AND (v > k OR pk > p).
                let k = key_bind(key);
                let eq = if desc { " <= " } else { " >= " };
                q.push(&format!(" AND sv.{col}{eq}"))
                    .bind(k.clone())
                    .push(&format!(" AND (sv.{col}{op}"))
                    .bind(k)
                    .push(" OR sv.res_pk")
                    .push(op)
                    .bind(Bind::Int(pk))
                    .push(")");
            }
        }
        match seg {
            Segment::Valued => q.push(&format!(" ORDER BY sv.{col}{dir}, sv.res_pk{dir}")),
            Segment::Unvalued => q.push(&format!(" ORDER BY r.pk{dir}")),
        };
        q.push(" LIMIT ").bind(Bind::Int(limit));
        if offset > 0 {
            q.push(" OFFSET ").bind(Bind::Int(offset));
        }
        Ok(db.load(&q)?)
    }
}

#[derive(QueryableByName)]
struct GramRow {
    #[diesel(sql_type = Text)]
    term: String,
    #[diesel(sql_type = BigInt)]
    doc: i64,
}

/// How long a trigram's count is trusted. Counts only choose which trigrams a substring
/// search reads (the LIKE re-check keeps results exact), so a stale one costs time, never a
/// wrong answer.
const GRAM_COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// At most this many cached counts (a few MB); the cache starts over beyond it.
const GRAM_COUNT_CAP: usize = 200_000;

type GramCache = std::sync::Mutex<HashMap<String, (i64, std::time::Instant)>>;

/// SQLite: how many indexed values hold each trigram of the filter's substring searches, so
/// the search reads only the rarest. Counting a trigram reads its whole row list from the
/// index vocabulary (migration 000006), as costly as searching it: counts are cached in the
/// process for GRAM_COUNT_TTL (shared by every database the process opens; they are only a
/// heuristic).
fn gram_counts(db: &mut Db<'_>, cond: &Cond) -> StoreResult<Option<GramCounts>> {
    static CACHE: std::sync::OnceLock<GramCache> = std::sync::OnceLock::new();
    if db.backend() != Backend::Sqlite {
        return Ok(None);
    }
    let grams = substring_grams(cond);
    if grams.is_empty() {
        return Ok(None);
    }
    let cache = CACHE.get_or_init(Default::default);
    let now = std::time::Instant::now();
    let mut counts = GramCounts::new();
    let mut missing = Vec::new();
    {
        let c = cache.lock().unwrap_or_else(|p| p.into_inner());
        for g in grams {
            match c.get(&g) {
                Some((n, at)) if now.duration_since(*at) < GRAM_COUNT_TTL => {
                    counts.insert(g, *n);
                }
                _ => missing.push(g),
            }
        }
    }
    if !missing.is_empty() {
        let mut q = Sql::new("SELECT term, doc FROM attr_values_trgm_vocab WHERE term IN (");
        q.bind_list(missing.iter().cloned().map(Bind::Text))
            .push(")");
        let rows: Vec<GramRow> = db.load(&q)?;
        // Only trigrams the index holds are cached: one it lacks is cheap to look up again,
        // and a cached zero (say, counted on another database of this process, or before a
        // load) would make it the "rarest" trigram for minutes.
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() + rows.len() > GRAM_COUNT_CAP {
            c.clear();
        }
        for r in rows {
            c.insert(r.term.clone(), (r.doc, now));
            counts.insert(r.term, r.doc);
        }
    }
    Ok(Some(counts))
}

/// Does the filter certainly select few rows, through an index (an equality, prefix or
/// substring on a string)? Then reading its matches beats scanning in order.
fn is_selective(cond: &Cond) -> bool {
    use crate::scim::filter::CompOp;
    use crate::scim::query::Operand;
    match cond {
        Cond::Cmp(_, CompOp::Eq | CompOp::Sw | CompOp::Co | CompOp::Ew, Operand::Str(s)) => {
            !s.is_empty()
        }
        Cond::And(a, b) => is_selective(a) || is_selective(b),
        Cond::Or(a, b) => is_selective(a) && is_selective(b),
        Cond::Elem { inner, .. } => is_selective(inner),
        _ => false,
    }
}

/// The rows of one window (see `search`).
fn page_rows(
    db: &mut Db<'_>,
    wh: &Sql,
    sort: Option<&Sort>,
    window: &Window,
    limit: i64,
    total: Option<i64>,
    selective: bool,
) -> StoreResult<Page> {
    if let (None, Window::Offset { offset, .. }) = (sort, window) {
        if *offset > 0 && !selective {
            // A deep index page: skip the first rows reading only their keys (for an
            // unfiltered list, the (tenant_id, rtype, pk) index alone), then read the page's
            // rows. Skipping whole rows cost a document read per skipped resource.
            let mut inner = Sql::new("SELECT r.pk");
            inner
                .append(wh.clone())
                .push(" ORDER BY r.pk LIMIT ")
                .bind(Bind::Int(limit))
                .push(" OFFSET ")
                .bind(Bind::Int(*offset));
            let mut q = Sql::new(&format!(
                "SELECT {RESOURCE_COLUMNS}, CAST(NULL AS TEXT) AS skey_t, \
                 CAST(NULL AS DOUBLE PRECISION) AS skey_n FROM resources r WHERE r.pk IN ("
            ));
            q.append(inner).push(") ORDER BY r.pk");
            return Ok(sorted_page(db.load(&q)?, total));
        }
    }
    let key = sort.map(|s| sort_expr(&s.key));
    let descending = sort.is_some_and(|s| s.descending);
    // Reading backwards (previous page) walks the reverse order, then flips the rows.
    let backwards = matches!(window, Window::Before { .. });
    let mut q = Sql::new(&format!("SELECT {RESOURCE_COLUMNS}, "));
    match &key {
        Some((k, true)) => {
            q.push("CAST(NULL AS TEXT) AS skey_t, CAST(");
            q.append(k.clone()).push(" AS DOUBLE PRECISION) AS skey_n");
        }
        Some((k, false)) => {
            q.append(k.clone())
                .push(" AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
        }
        None => {
            q.push("CAST(NULL AS TEXT) AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
        }
    }
    q.append(wh.clone());
    match window {
        Window::After { key: k0, pk, .. } | Window::Before { key: k0, pk, .. } => {
            // In ascending tuple order, "after" is greater unless the list is descending.
            let greater = backwards == descending;
            q.push(" AND ")
                .append(keyset_cond(key.as_ref().map(|(k, _)| k), k0, *pk, greater));
        }
        Window::Offset { .. } => {}
    }
    let dir = if descending != backwards { " DESC" } else { "" };
    q.push(" ORDER BY ");
    if let Some((k, _)) = &key {
        q.push("(")
            .append(k.clone())
            .push(&format!(") IS NULL{dir}, "));
        q.append(k.clone()).push(&format!("{dir}, "));
    }
    // With a selective filter, ordering by an expression of pk stops the planner from walking
    // the whole table in pk order hoping to meet the few matches early (Postgres does this
    // when it misjudges an EXISTS, and took seconds for one `emails[type eq "work"]` lookup
    // at 1M users); it looks the matches up and sorts them.
    let pk = match (selective, db.backend()) {
        (true, Backend::Sqlite) => "+r.pk",
        (true, Backend::Postgres) => "(r.pk + 0)",
        (false, _) => "r.pk",
    };
    q.push(&format!("{pk}{dir} LIMIT ")).bind(Bind::Int(limit));
    if let Window::Offset { offset, .. } = window {
        q.push(" OFFSET ").bind(Bind::Int(*offset));
    }
    let mut rows: Vec<SortedRow> = db.load(&q)?;
    if backwards {
        rows.reverse();
    }
    Ok(sorted_page(rows, total))
}

/// Rows read with their sort keys, as a page.
fn sorted_page(rows: Vec<SortedRow>, total: Option<i64>) -> Page {
    let keys = rows
        .iter()
        .map(|r| match (&r.skey_t, r.skey_n) {
            (Some(t), _) => SortValue::Text(t.clone()),
            (None, Some(n)) => SortValue::Num(n),
            (None, None) => SortValue::Null,
        })
        .collect();
    Page {
        total,
        rows: rows
            .into_iter()
            .map(|r| ResourceRow {
                pk: r.pk,
                id: r.id,
                rtype: r.rtype,
                doc: r.doc,
                version: r.version,
                created: r.created,
                modified: r.modified,
                active: r.active,
            })
            .collect(),
        keys,
    }
}

#[derive(QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The server secret `name`, created with `fresh` on first use. Every instance sharing the
/// database reads the same value (the insert is a no-op when another instance won).
pub fn server_secret(db: &mut Db<'_>, name: &str, fresh: &str, now: i64) -> StoreResult<String> {
    let mut ins = Sql::new("INSERT INTO server_secrets (name, value, created) VALUES (");
    ins.bind_list([
        Bind::Text(name.into()),
        Bind::Text(fresh.into()),
        Bind::Int(now),
    ])
    .push(") ON CONFLICT DO NOTHING");
    db.execute(&ins)?;
    let mut q = Sql::new("SELECT value FROM server_secrets WHERE name = ");
    q.bind(Bind::Text(name.into()));
    db.first::<SecretRow>(&q)?
        .map(|r| r.value)
        .ok_or(StorageError::NotFound)
}

/// Refreshes the planner's statistics (after a bulk load; autovacuum/`PRAGMA optimize` do it
/// eventually on their own).
pub fn analyze(db: &mut Db<'_>) -> StoreResult<()> {
    // Postgres: VACUUM too (outside a transaction), so the visibility map lets counts use
    // index-only scans, as autovacuum would have done after a load.
    let sql = match db.backend() {
        Backend::Sqlite => "ANALYZE",
        Backend::Postgres => "VACUUM (ANALYZE)",
    };
    db.execute(&Sql::new(sql))?;
    Ok(())
}
