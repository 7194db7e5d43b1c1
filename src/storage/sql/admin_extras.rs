//! Storage for the `/api/v1` additions of issue 17 (see `provisioning::admin_extras`): users
//! by key in one query, the labels of the credentials behind feed events, a subscription's
//! recent deliveries, and the tenant's groups with their member and candidate counts. Every
//! query is scoped to a tenant; the caller owns the transaction.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::{Bind, Db, Sql};
use super::product::{DeliveryRow, DELIVERY_COLUMNS};
use super::store::{ResourceRow, StoreResult, RESOURCE_COLUMNS};

fn text(s: &str) -> Bind {
    Bind::Text(s.to_string())
}

/// The resources with these keys (any order; missing ones left out), 500 keys per query.
pub fn resources_by_pk(
    db: &mut Db<'_>,
    tenant: &str,
    pks: &[i64],
) -> StoreResult<Vec<ResourceRow>> {
    let mut out = Vec::new();
    for chunk in pks.chunks(500) {
        let mut q = Sql::new(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.tenant_id = "
        ));
        q.bind(text(tenant)).push(" AND r.pk IN (");
        q.bind_list(chunk.iter().map(|p| Bind::Int(*p)));
        q.push(")");
        out.extend(db.load::<ResourceRow>(&q)?);
    }
    Ok(out)
}

/// A user's names, for showing who a manager is.
#[derive(Clone, Debug, QueryableByName)]
pub struct UserNames {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub user_name: Option<String>,
}

/// The names of the tenant's users among `ids` (SCIM ids), through the unique id index.
pub fn user_names(db: &mut Db<'_>, tenant: &str, ids: &[String]) -> StoreResult<Vec<UserNames>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let mut q =
            Sql::new("SELECT id, display_name, user_name FROM resources WHERE tenant_id = ");
        q.bind(text(tenant)).push(" AND id IN (");
        q.bind_list(chunk.iter().map(|i| text(i)));
        q.push(") AND rtype = 'User'");
        out.extend(db.load::<UserNames>(&q)?);
    }
    Ok(out)
}

/// A stored credential as the timeline names it (never its secret).
#[derive(Clone, Debug, QueryableByName)]
pub struct CredentialLabel {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// `token` or `client`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub label: Option<String>,
}

/// The tokens and OAuth clients of `tenant` among `ids`.
pub fn credential_labels(
    db: &mut Db<'_>,
    tenant: &str,
    ids: &[String],
) -> StoreResult<Vec<CredentialLabel>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(200) {
        let mut q = Sql::new("SELECT id, 'token' AS kind, label FROM tokens WHERE tenant_id = ");
        q.bind(text(tenant)).push(" AND id IN (");
        q.bind_list(chunk.iter().map(|i| text(i)));
        q.push(
            ") UNION ALL SELECT id, 'client' AS kind, label FROM oauth_clients WHERE tenant_id = ",
        )
        .bind(text(tenant))
        .push(" AND id IN (");
        q.bind_list(chunk.iter().map(|i| text(i)));
        q.push(")");
        out.extend(db.load::<CredentialLabel>(&q)?);
    }
    Ok(out)
}

/// A subscription's deliveries, newest event first: those before `before_seq` (all when
/// None), of `status` when given. Walks the `(webhook_id, seq)` index backwards.
pub fn recent_deliveries(
    db: &mut Db<'_>,
    tenant: &str,
    webhook: &str,
    status: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN feed f ON f.tenant_id = d.tenant_id AND f.seq = d.seq \
         WHERE d.tenant_id = "
    ));
    q.bind(text(tenant))
        .push(" AND d.webhook_id = ")
        .bind(text(webhook));
    if let Some(s) = status {
        q.push(" AND d.status = ").bind(text(s));
    }
    if let Some(b) = before_seq {
        q.push(" AND d.seq < ").bind(Bind::Int(b));
    }
    q.push(" ORDER BY d.seq DESC LIMIT ").bind(Bind::Int(limit));
    Ok(db.load(&q)?)
}

/// A SCIM group with how many users it has and how many of them are candidates.
#[derive(Clone, Debug, QueryableByName)]
pub struct GroupSummary {
    #[diesel(sql_type = BigInt)]
    pub pk: i64,
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
pub fn group_summaries(
    db: &mut Db<'_>,
    tenant: &str,
    after: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<GroupSummary>> {
    let mut q = Sql::new(
        "SELECT r.pk, r.id, r.display_name, \
         (SELECT COUNT(*) FROM members m JOIN accounts a ON a.user_pk = m.member_pk \
          WHERE m.group_pk = r.pk) AS users, \
         (SELECT COUNT(*) FROM members m JOIN accounts a ON a.user_pk = m.member_pk \
          WHERE m.group_pk = r.pk AND a.state = 'pending') AS pending \
         FROM resources r WHERE r.tenant_id = ",
    );
    q.bind(text(tenant)).push(" AND r.rtype = 'Group'");
    if let Some(a) = after {
        q.push(" AND r.pk > ").bind(Bind::Int(a));
    }
    q.push(" ORDER BY r.pk LIMIT ").bind(Bind::Int(limit));
    Ok(db.load(&q)?)
}

/// How many accounts have their user in the group.
pub fn count_group_accounts(db: &mut Db<'_>, tenant: &str, group_pk: i64) -> StoreResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM accounts a WHERE a.tenant_id = ");
    q.bind(text(tenant))
        .push(" AND a.user_pk IN (SELECT member_pk FROM members WHERE group_pk = ")
        .bind(Bind::Int(group_pk))
        .push(")");
    Ok(db.first::<N>(&q)?.map_or(0, |r| r.n))
}
