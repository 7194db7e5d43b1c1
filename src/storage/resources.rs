//! The `resources` table (one row per User or Group: its JSON document plus the columns
//! queries need) and `attr_values` (one row per filterable value). Each function is scoped to
//! a tenant; the caller owns the transaction.

use std::collections::{BTreeMap, HashMap};

use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::dialect::{self, Lock, ROWS_PER_STATEMENT};
use super::index::{IndexValue, Indexed};
use super::roles::{self, ProductVersion};
use super::sql::{select, Bind, Sql};
use super::{Decode, StorageError, StoreResult, TenantId};
use crate::scim::schema::Rtype;

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

/// The columns of a `ResourceRow`, from `resources r`.
pub(crate) const RESOURCE_COLUMNS: &str =
    "r.pk, r.id, r.rtype, r.doc, r.version, r.created, r.modified, r.active";

/// The columns written for a resource.
pub struct ResourceWrite<'a> {
    pub indexed: &'a Indexed,
    pub doc: &'a str,
    pub now: i64,
}

pub(crate) fn lower(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.to_lowercase())
}

/// Inserts a resource and its attribute values; a duplicate userName is `Conflict`. With
/// `read_version`, also reads the tenant's product version (a new user's account is decided
/// by it; None when the tenant has none, or when not asked), in the insert's own statement
/// where that saves a round trip (Postgres).
pub fn insert(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    id: &str,
    w: &ResourceWrite<'_>,
    read_version: bool,
) -> StoreResult<(i64, Option<ProductVersion>)> {
    let rows = || insert_rows(tenant, rt, &[(id, w)]);
    let values = &w.indexed.values;
    let version = read_version.then(|| roles::version_columns(tenant));
    if let Some(q) = dialect::insert_with_values(db.backend(), tenant, rows, values, version) {
        // One statement, one round trip: the resource and its values (each round trip of a
        // write holds the tenant's batch connection, so they bound a tenant's write rate).
        #[derive(QueryableByName)]
        struct Pk {
            #[diesel(sql_type = BigInt)]
            pk: i64,
        }
        #[derive(QueryableByName)]
        struct PkVersion {
            #[diesel(sql_type = BigInt)]
            pk: i64,
            #[diesel(embed)]
            version: roles::RawVersion,
        }
        if read_version {
            let row: Option<PkVersion> = db.first(&q)?;
            let r = row.ok_or(StorageError::NotFound)?;
            return Ok((r.pk, r.version.version()));
        }
        let row: Option<Pk> = db.first(&q)?;
        return Ok((row.ok_or(StorageError::NotFound)?.pk, None));
    }
    let pks = insert_many(db, tenant, rt, &[(id, w)])?;
    let pk = pks.into_iter().next().ok_or(StorageError::NotFound)?;
    let version = if read_version {
        roles::product_version(db, tenant)?
    } else {
        None
    };
    Ok((pk, version))
}

/// `INSERT INTO resources ... VALUES` of these resources (no RETURNING).
fn insert_rows(tenant: &TenantId, rt: Rtype, chunk: &[(&str, &ResourceWrite<'_>)]) -> Sql {
    let mut q = Sql::new(
        "INSERT INTO resources (tenant_id, id, rtype, user_name, user_name_ci, display_name, display_ci, \
         external_id, active, doc, version, created, modified) VALUES ",
    );
    q.bind_rows(chunk, |(id, w)| {
        let ix = w.indexed;
        vec![
            Bind::tenant(tenant),
            Bind::text(id),
            Bind::text(rt.name()),
            Bind::OptText(ix.user_name.clone()),
            Bind::OptText(lower(&ix.user_name)),
            Bind::OptText(ix.display_name.clone()),
            Bind::OptText(lower(&ix.display_name)),
            Bind::OptText(ix.external_id.clone()),
            Bind::OptBool(ix.active),
            Bind::text(w.doc),
            Bind::Int(1),
            Bind::Int(w.now),
            Bind::Int(w.now),
        ]
    });
    q
}

#[derive(QueryableByName)]
struct PkId {
    #[diesel(sql_type = BigInt)]
    pk: i64,
    #[diesel(sql_type = Text)]
    id: String,
}

/// Inserts many resources of one type and their attribute values in a few statements
/// (bulk loads); returns their pks in the order given. All or nothing: a duplicate fails
/// the statement with `Conflict`.
pub fn insert_many(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    items: &[(&str, &ResourceWrite<'_>)],
) -> StoreResult<Vec<i64>> {
    let mut pk_of: HashMap<String, i64> = HashMap::with_capacity(items.len());
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let mut q = insert_rows(tenant, rt, chunk);
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

/// Inserts attribute values (`(res_pk, value)` pairs), as the backend writes them best.
fn insert_values(
    db: &mut Db<'_>,
    tenant: &TenantId,
    values: &[(i64, &IndexValue)],
) -> StoreResult<()> {
    for q in dialect::insert_attr_values(db.backend(), tenant, values) {
        db.execute(&q)?;
    }
    Ok(())
}

/// Rewrites a resource's document and columns if its version is still `expected`; returns the
/// new version. A concurrent change in between is `VersionMismatch`.
pub fn update(
    db: &mut Db<'_>,
    tenant: &TenantId,
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
        .bind(Bind::text(w.doc))
        .push(", version = version + 1, modified = ")
        .bind(Bind::Int(w.now));
    at_version(&mut q, tenant, pk, expected);
    let old: Vec<RawValue> = match dialect::update_with_values(db.backend(), &q) {
        // Postgres: the update and the read of the values it replaces in one round trip.
        Some(with) => {
            let rows = db.load(&with)?;
            if rows.is_empty() {
                return Err(StorageError::VersionMismatch);
            }
            rows
        }
        None => {
            changed_one(db, &q)?;
            db.load(&Sql::with(
                "SELECT path, elem, val, num FROM attr_values WHERE res_pk = ?",
                [Bind::Int(pk)],
            ))?
        }
    };
    let old = old.into_iter().filter_map(RawValue::value).collect();
    replace_values(db, tenant, pk, old, &ix.values)?;
    Ok(expected + 1)
}

/// A stored value as read: from `attr_values`, or a row of `dialect::update_with_values`,
/// all NULL when the updated resource has no value.
#[derive(QueryableByName)]
struct RawValue {
    #[diesel(sql_type = Nullable<Text>)]
    path: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    elem: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    val: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    num: Option<f64>,
}

impl RawValue {
    /// The value; None for the row of NULLs.
    fn value(self) -> Option<StoredValue> {
        Some(StoredValue {
            path: self.path?,
            elem: self.elem?,
            val: self.val,
            num: self.num,
        })
    }
}

/// One of a resource's attribute values as stored.
struct StoredValue {
    path: String,
    elem: i32,
    val: Option<String>,
    num: Option<f64>,
}

/// One value of a path, comparable (the number by its bits: a stored double reads back
/// exactly as written).
type ValueKey<'a> = (i32, Option<&'a str>, Option<u64>);

/// Values by path, each path's sorted.
fn by_path<'a>(
    values: impl Iterator<Item = (&'a str, ValueKey<'a>)>,
) -> BTreeMap<&'a str, Vec<ValueKey<'a>>> {
    let mut out: BTreeMap<&str, Vec<ValueKey<'_>>> = BTreeMap::new();
    for (path, key) in values {
        out.entry(path).or_default().push(key);
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

/// Makes a resource's attribute values `new` (`old`: as stored), rewriting only the paths
/// whose values changed (a PATCH of `title` rewrites one row and its trigram entries, not all
/// of them).
fn replace_values(
    db: &mut Db<'_>,
    tenant: &TenantId,
    pk: i64,
    old: Vec<StoredValue>,
    new: &[IndexValue],
) -> StoreResult<()> {
    let old_by = by_path(old.iter().map(|v| {
        (
            v.path.as_str(),
            (v.elem, v.val.as_deref(), v.num.map(f64::to_bits)),
        )
    }));
    let new_by = by_path(new.iter().map(|v| {
        (
            v.path.as_str(),
            (v.elem, v.val.as_deref(), v.num.map(f64::to_bits)),
        )
    }));
    let changed: Vec<&str> = old_by
        .keys()
        .chain(new_by.keys())
        .filter(|p| old_by.get(*p) != new_by.get(*p))
        .copied()
        .collect::<std::collections::BTreeSet<&str>>()
        .into_iter()
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let added: Vec<&IndexValue> = new
        .iter()
        .filter(|v| changed.binary_search(&v.path.as_str()).is_ok())
        .collect();
    let gone_paths: Vec<&str> = changed
        .iter()
        .filter(|p| old_by.contains_key(*p))
        .copied()
        .collect();
    if let Some(q) = dialect::rewrite_values(db.backend(), tenant, pk, &gone_paths, &added) {
        db.execute(&q)?;
        return Ok(());
    }
    if !gone_paths.is_empty() {
        let mut q = Sql::with("DELETE FROM attr_values WHERE res_pk = ?", [Bind::Int(pk)]);
        q.push(" AND path IN (")
            .bind_list(gone_paths.iter().map(|p| Bind::text(p)))
            .push(")");
        db.execute(&q)?;
    }
    let values: Vec<(i64, &IndexValue)> = added.into_iter().map(|v| (pk, v)).collect();
    insert_values(db, tenant, &values)
}

/// Bumps the version of a resource whose membership changed (ETags change on every
/// modification, RFC 7644 §3.14).
pub fn touch(
    db: &mut Db<'_>,
    tenant: &TenantId,
    pk: i64,
    expected: i64,
    now: i64,
) -> StoreResult<i64> {
    let mut q = Sql::new("UPDATE resources SET version = version + 1, modified = ");
    q.bind(Bind::Int(now));
    at_version(&mut q, tenant, pk, expected);
    changed_one(db, &q)?;
    Ok(expected + 1)
}

/// The `WHERE` of an `UPDATE resources SET ...` of one row at the version `expected` (the check
/// is part of the write, so two writers cannot both pass it).
fn at_version(q: &mut Sql, tenant: &TenantId, pk: i64, expected: i64) {
    q.and(
        " WHERE tenant_id = ? AND pk = ? AND version = ?",
        [Bind::tenant(tenant), Bind::Int(pk), Bind::Int(expected)],
    );
}

/// Runs an update of one row at a version (`at_version`); it changed none: `VersionMismatch`.
fn changed_one(db: &mut Db<'_>, q: &Sql) -> StoreResult<()> {
    if db.execute(q)? == 0 {
        return Err(StorageError::VersionMismatch);
    }
    Ok(())
}

/// Reads one resource of this tenant, locked as `lock` says.
pub fn get(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    id: &str,
    lock: Lock,
) -> StoreResult<Option<ResourceRow>> {
    if id.contains('\0') {
        // No id holds U+0000 (and Postgres text cannot carry it): nothing to find.
        return Ok(None);
    }
    let mut q = resources_of(tenant);
    // Only the unique key (tenant_id, id) can serve this lookup: with a plain `rtype = ?`, a
    // Postgres without fresh statistics (autovacuum off, or a table that just grew) may pick
    // the (tenant_id, rtype, pk) list index and scan every resource of the type for one row.
    // The type is still tested in SQL, so a row of another type is never locked.
    q.and(
        " AND r.id = ? AND (r.rtype || '') = ?",
        [Bind::text(id), Bind::text(rt.name())],
    )
    .push(db.backend().lock(lock));
    Ok(db.first(&q)?)
}

/// A resource by its key (any type), unlocked.
pub fn get_by_pk(db: &mut Db<'_>, tenant: &TenantId, pk: i64) -> StoreResult<Option<ResourceRow>> {
    let mut q = resources_of(tenant);
    q.and(" AND r.pk = ?", [Bind::Int(pk)]);
    Ok(db.first(&q)?)
}

/// Deletes a resource; attribute values and memberships go with it (ON DELETE CASCADE).
pub fn delete(db: &mut Db<'_>, tenant: &TenantId, pk: i64) -> StoreResult<()> {
    db.execute(&delete_statement(tenant, pk))?;
    Ok(())
}

/// `delete`'s statement.
pub(crate) fn delete_statement(tenant: &TenantId, pk: i64) -> Sql {
    Sql::with(
        "DELETE FROM resources WHERE tenant_id = ? AND pk = ?",
        [Bind::tenant(tenant), Bind::Int(pk)],
    )
}

/// A resource named by id, as found in this tenant.
#[derive(Clone, Debug)]
pub struct IdRow {
    pub pk: i64,
    pub id: String,
    pub rtype: Rtype,
}

#[derive(QueryableByName)]
pub(crate) struct RawIdRow {
    #[diesel(sql_type = BigInt)]
    pub pk: i64,
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub rtype: String,
}

impl Decode for RawIdRow {
    type Row = IdRow;

    fn decode(self) -> StoreResult<IdRow> {
        Ok(IdRow {
            rtype: rtype_of(self.pk, &self.rtype)?,
            pk: self.pk,
            id: self.id,
        })
    }
}

/// The resource type stored in a row of `resources`.
pub(crate) fn rtype_of(pk: i64, name: &str) -> StoreResult<Rtype> {
    Rtype::from_name(name).ok_or_else(|| {
        StorageError::corrupt("resources", pk, format!("unknown resource type `{name}`"))
    })
}

/// Looks up which of `ids` exist in this tenant (any resource type).
pub fn resolve_ids(db: &mut Db<'_>, tenant: &TenantId, ids: &[String]) -> StoreResult<Vec<IdRow>> {
    let start = select("pk, id, rtype", "resources", tenant);
    db.rows_keyed::<RawIdRow>(&start, "id", &texts(ids), "")
}

fn texts(ids: &[String]) -> Vec<Bind> {
    ids.iter().map(|i| Bind::text(i)).collect()
}

/// The resources with these keys (any type; missing ones left out), in no order.
pub fn by_pks(db: &mut Db<'_>, tenant: &TenantId, pks: &[i64]) -> StoreResult<Vec<ResourceRow>> {
    let keys: Vec<Bind> = pks.iter().map(|p| Bind::Int(*p)).collect();
    db.load_keyed(&resources_of(tenant), "r.pk", &keys, "")
}

/// The tenant's users among `ids` (SCIM ids; missing ones left out), through the unique id
/// index, in no order.
pub fn users_by_id(
    db: &mut Db<'_>,
    tenant: &TenantId,
    ids: &[String],
) -> StoreResult<Vec<ResourceRow>> {
    let only_users = " AND r.rtype = 'User'";
    db.load_keyed(&resources_of(tenant), "r.id", &texts(ids), only_users)
}

/// `SELECT` the columns of a `ResourceRow` from the tenant's `resources r`.
fn resources_of(tenant: &TenantId) -> Sql {
    select(RESOURCE_COLUMNS, "resources r", tenant)
}
