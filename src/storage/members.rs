//! The `members` table: group membership, indexed both ways (group → members, member →
//! groups), so a change of one member costs the same in a group of 10 or 100,000 and
//! `User.groups` is derived from it. The caller owns the transaction.

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::dialect::{Backend, Lock};
use super::resources::{lower, RawIdRow, ResourceRow, RESOURCE_COLUMNS};
use super::search::translate::{sides, Translator};
use super::sql::{select, Bind, Sql, ID_BATCH};
use super::{Decode, StoreResult, TenantId};
use crate::scim::filter::Cond;
use crate::scim::resource::RefOut;
use crate::scim::schema::Rtype;

/// A member to add: the resource's pk and the `display` the client sent, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMember {
    pub pk: i64,
    pub display: Option<String>,
}

/// Adds members (already present ones are left alone); returns how many were new.
pub fn add(
    db: &mut Db<'_>,
    tenant: &TenantId,
    group_pk: i64,
    members: &[NewMember],
) -> StoreResult<usize> {
    let mut added = 0;
    for chunk in members.chunks(ID_BATCH) {
        let mut q = Sql::new(
            "INSERT INTO members (tenant_id, group_pk, member_pk, display, display_ci) VALUES ",
        );
        q.bind_rows(chunk, |m| {
            vec![
                Bind::tenant(tenant),
                Bind::Int(group_pk),
                Bind::Int(m.pk),
                Bind::OptText(m.display.clone()),
                Bind::OptText(lower(&m.display)),
            ]
        });
        q.push(" ON CONFLICT DO NOTHING");
        added += db.execute(&q)?;
    }
    Ok(added)
}

/// Removes the given members; returns how many were there.
pub fn remove(db: &mut Db<'_>, group_pk: i64, member_pks: &[i64]) -> StoreResult<usize> {
    let mut removed = 0;
    for chunk in member_pks.chunks(ID_BATCH) {
        let mut q = Sql::new("DELETE FROM members WHERE group_pk = ");
        q.bind(Bind::Int(group_pk)).push(" AND member_pk IN (");
        q.bind_list(chunk.iter().map(|m| Bind::Int(*m))).push(")");
        removed += db.execute(&q)?;
    }
    Ok(removed)
}

pub fn remove_all(db: &mut Db<'_>, group_pk: i64) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM members WHERE group_pk = ");
    q.bind(Bind::Int(group_pk));
    Ok(db.execute(&q)?)
}

/// Removes the members of a group that match `cond` (a `members[...]` condition).
pub fn remove_where(
    db: &mut Db<'_>,
    tenant: &TenantId,
    group_pk: i64,
    cond: &Cond,
) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM members WHERE group_pk = ");
    q.bind(Bind::Int(group_pk))
        .push(" AND member_pk IN (SELECT mm.member_pk FROM members mm JOIN resources r ON r.pk = mm.member_pk WHERE mm.group_pk = ")
        .bind(Bind::Int(group_pk))
        .push(" AND r.tenant_id = ")
        .bind(Bind::tenant(tenant))
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
    #[diesel(embed)]
    target: RawIdRow,
    #[diesel(sql_type = Nullable<Text>)]
    display: Option<String>,
}

/// The references of each resource in `pks`: members of groups (rt Group) or groups of
/// users (rt User), in a stable order. One query per batch, never one per resource.
pub fn refs_of(db: &mut Db<'_>, rt: Rtype, pks: &[i64]) -> StoreResult<HashMap<i64, Vec<RefOut>>> {
    let mut out: HashMap<i64, Vec<RefOut>> = HashMap::new();
    let (this, other) = sides(rt);
    // A member's display is what the client sent with it, else the member's own name; a
    // user's groups show the group's displayName.
    let display = match rt {
        Rtype::Group => "COALESCE(m.display, x.display_name, x.user_name)",
        Rtype::User => "x.display_name",
    };
    let start = Sql::new(&format!(
        "SELECT m.{this} AS owner, x.pk AS pk, x.id AS id, x.rtype AS rtype, {display} AS display \
         FROM members m JOIN resources x ON x.pk = m.{other} WHERE 1 = 1"
    ));
    let keys: Vec<Bind> = pks.iter().map(|p| Bind::Int(*p)).collect();
    let tail = format!(" ORDER BY m.{this}, m.{other}");
    for row in db.load_keyed::<RefRow>(&start, &format!("m.{this}"), &keys, &tail)? {
        let target = row.target.decode()?;
        out.entry(row.owner).or_default().push(RefOut {
            id: target.id,
            kind: target.rtype,
            display: row.display,
        });
    }
    Ok(out)
}

/// Version rows of the groups that contain the resource `member_id` of type `rt`, locked in
/// pk order (so concurrent deletes and membership changes always lock groups in the same
/// order).
///
/// Driven from the member's unique key `(tenant_id, id)` whatever the statistics: the type and
/// the groups' tenant are tested on the rows found (`|| ''` keeps them out of any index).
/// With plain `u.rtype = ?` a Postgres never analyzed walked the (tenant_id, rtype, pk) list
/// index over every user of the tenant, and SQLite scanned the tenant's resources for the
/// groups' keys: every DELETE read every resource of its tenant.
pub fn groups_containing(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    member_id: &str,
) -> StoreResult<Vec<ResourceRow>> {
    if member_id.contains('\0') {
        // No id holds U+0000 (and Postgres text cannot carry it): no such member.
        return Ok(Vec::new());
    }
    let q = groups_containing_sql(db.backend(), tenant, rt, member_id);
    Ok(db.load(&q)?)
}

/// The statement of `groups_containing` (public for the plan tests).
pub fn groups_containing_sql(
    backend: Backend,
    tenant: &TenantId,
    rt: Rtype,
    member_id: &str,
) -> Sql {
    let mut q = Sql::with(
        &format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.pk IN (SELECT m.group_pk \
             FROM resources u JOIN members m ON m.member_pk = u.pk \
             WHERE u.tenant_id = ? AND u.id = ? AND (u.rtype || '') = ?) \
             AND (r.tenant_id || '') = ? ORDER BY r.pk"
        ),
        [
            Bind::tenant(tenant),
            Bind::text(member_id),
            Bind::text(rt.name()),
            Bind::tenant(tenant),
        ],
    );
    q.push(backend.lock(Lock::Update));
    q
}

#[derive(QueryableByName)]
struct PkRow {
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

/// The member keys of a group.
pub fn member_pks(db: &mut Db<'_>, group_pk: i64) -> StoreResult<Vec<i64>> {
    let mut q = Sql::new("SELECT member_pk AS pk FROM members WHERE group_pk = ");
    q.bind(Bind::Int(group_pk)).push(" ORDER BY member_pk");
    Ok(db.load::<PkRow>(&q)?.into_iter().map(|r| r.pk).collect())
}

/// The ids of the groups a user is a member of.
pub fn group_ids_of(db: &mut Db<'_>, user_pk: i64) -> StoreResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct IdOnly {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut q = Sql::new(
        "SELECT r.id FROM members m JOIN resources r ON r.pk = m.group_pk WHERE m.member_pk = ",
    );
    q.bind(Bind::Int(user_pk));
    Ok(db.load::<IdOnly>(&q)?.into_iter().map(|r| r.id).collect())
}

/// A SCIM group with how many of its members have an account, and how many of those are
/// candidates (state `pending`).
#[derive(Clone, Debug, QueryableByName)]
pub struct GroupCounts {
    #[diesel(sql_type = BigInt)]
    pub pk: i64,
    /// SCIM id.
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub users: i64,
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
}

/// The tenant's groups in creation order, those after key `after`, through the
/// `(tenant_id, rtype, pk)` index (never a walk over the users); the counts come from the
/// membership and account indexes (a group's members are counted, never loaded).
pub fn groups_with_counts(
    db: &mut Db<'_>,
    tenant: &TenantId,
    after: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<GroupCounts>> {
    let counted = |extra: &str| {
        format!(
            "(SELECT COUNT(*) FROM members m JOIN accounts a ON a.user_pk = m.member_pk \
             WHERE m.group_pk = r.pk{extra})"
        )
    };
    let columns = format!(
        "r.pk, r.id, r.display_name, {} AS users, {} AS pending",
        counted(""),
        counted(" AND a.state = 'pending'")
    );
    let mut q = select(&columns, "resources r", tenant);
    q.push(" AND r.rtype = 'Group'");
    if let Some(a) = after {
        q.and(" AND r.pk > ?", [Bind::Int(a)]);
    }
    q.and(" ORDER BY r.pk LIMIT ?", [Bind::Int(limit)]);
    Ok(db.load(&q)?)
}
