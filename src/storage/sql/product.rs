//! Storage of the product side: the change feed, policies, roles, rules, accounts, webhook
//! subscriptions and deliveries. Every function is scoped to a tenant (deliveries are
//! claimed across tenants by the delivery workers); the caller owns the transaction.

use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::QueryableByName;

use super::conn::{Backend, Bind, Db, Sql};
use super::filter::Translator;
use super::store::StoreResult;
use crate::scim::query::Cond;
use crate::scim::schema::Rtype;

fn text(s: &str) -> Bind {
    Bind::Text(s.to_string())
}

// ---------------------------------------------------------------------------------------
// The change feed

pub struct NewFeedEvent {
    pub id: String,
    pub kind: String,
    pub account_id: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub at: i64,
    pub credential: Option<String>,
    pub data: String,
}

#[derive(Clone, Debug, QueryableByName)]
pub struct FeedRow {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = type_)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub account_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    #[diesel(sql_type = Text)]
    pub data: String,
    /// The credential whose request wrote the event (None: the bootstrap token).
    #[diesel(sql_type = Nullable<Text>)]
    pub credential_id: Option<String>,
}

const FEED_COLUMNS: &str =
    "seq, id, type AS type_, account_id, resource_type, resource_id, at, data, credential_id";

#[derive(QueryableByName)]
struct SeqRow {
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

/// The tenant's resource counts kept on its `feed_heads` row, by `count_slot`.
pub const COUNT_COLUMNS: [&str; 2] = ["user_count", "group_count"];

/// Where a resource type's count sits in `[Users, Groups]` (a transaction's `counted` and
/// `COUNT_COLUMNS`).
pub fn count_slot(rt: Rtype) -> usize {
    usize::from(rt == Rtype::Group)
}

/// Appends events to the tenant's feed; returns the sequence number of the first. The
/// numbers come from the tenant's row in `feed_heads`, which stays locked until the
/// transaction ends: numbers are gap-free and handed out in commit order. The same statement
/// adds `counted` (Users, Groups created minus deleted) to the tenant's resource counts.
pub fn append_feed(
    db: &mut Db<'_>,
    tenant: &str,
    events: &[NewFeedEvent],
    counted: [i64; 2],
) -> StoreResult<i64> {
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    if n == 0 && counted == [0, 0] {
        return Ok(0);
    }
    let mut q =
        Sql::new("INSERT INTO feed_heads (tenant_id, last_seq, user_count, group_count) VALUES (");
    q.bind_list([
        text(tenant),
        Bind::Int(n),
        Bind::Int(counted[0]),
        Bind::Int(counted[1]),
    ])
    .push(") ON CONFLICT (tenant_id) DO UPDATE SET last_seq = feed_heads.last_seq + ")
    .bind(Bind::Int(n))
    .push(", user_count = feed_heads.user_count + ")
    .bind(Bind::Int(counted[0]))
    .push(", group_count = feed_heads.group_count + ")
    .bind(Bind::Int(counted[1]))
    .push(" RETURNING last_seq");
    let last = db
        .first::<SeqRow>(&q)?
        .map(|r| r.last_seq)
        .ok_or(crate::storage::StorageError::NotFound)?;
    let first = last - n + 1;
    for (chunk_no, chunk) in events.chunks(500).enumerate() {
        let mut q = Sql::new(
            "INSERT INTO feed (tenant_id, seq, id, type, account_id, resource_type, resource_id, at, credential_id, data) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            let seq = first + i64::try_from(chunk_no * 500 + i).unwrap_or(0);
            if i > 0 {
                q.push(", ");
            }
            q.push("(");
            q.bind_list([
                text(tenant),
                Bind::Int(seq),
                text(&e.id),
                text(&e.kind),
                Bind::OptText(e.account_id.clone()),
                Bind::OptText(e.resource_type.clone()),
                Bind::OptText(e.resource_id.clone()),
                Bind::Int(e.at),
                Bind::OptText(e.credential.clone()),
                text(&e.data),
            ]);
            q.push(")");
        }
        db.execute(&q)?;
    }
    Ok(first)
}

/// Feed events after `after`, in order.
pub fn feed_after(
    db: &mut Db<'_>,
    tenant: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<FeedRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {FEED_COLUMNS} FROM feed WHERE tenant_id = "
    ));
    q.bind(text(tenant))
        .push(" AND seq > ")
        .bind(Bind::Int(after))
        .push(" ORDER BY seq LIMIT ")
        .bind(Bind::Int(limit));
    Ok(db.load(&q)?)
}

/// One account's events after `after`, in order.
pub fn feed_of_account(
    db: &mut Db<'_>,
    tenant: &str,
    account: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<FeedRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {FEED_COLUMNS} FROM feed WHERE tenant_id = "
    ));
    q.bind(text(tenant))
        .push(" AND account_id = ")
        .bind(text(account))
        .push(" AND seq > ")
        .bind(Bind::Int(after))
        .push(" ORDER BY seq LIMIT ")
        .bind(Bind::Int(limit));
    Ok(db.load(&q)?)
}

/// The whole feed of a tenant (tests and tools).
pub fn feed_all(db: &mut Db<'_>, tenant: &str) -> StoreResult<Vec<FeedRow>> {
    feed_after(db, tenant, 0, i64::MAX)
}

// ---------------------------------------------------------------------------------------
// Policies

#[derive(QueryableByName)]
pub struct PolicyRow {
    #[diesel(sql_type = Text)]
    pub provisioning: String,
    #[diesel(sql_type = Text)]
    pub deprovisioning: String,
}

pub fn get_policy(db: &mut Db<'_>, tenant: &str) -> StoreResult<Option<PolicyRow>> {
    let mut q = Sql::new("SELECT provisioning, deprovisioning FROM policies WHERE tenant_id = ");
    q.bind(text(tenant));
    Ok(db.first(&q)?)
}

pub fn put_policy(
    db: &mut Db<'_>,
    tenant: &str,
    provisioning: &str,
    deprovisioning: &str,
) -> StoreResult<()> {
    let mut q = Sql::new("INSERT INTO policies (tenant_id, provisioning, deprovisioning) VALUES (");
    q.bind_list([text(tenant), text(provisioning), text(deprovisioning)])
        .push(") ON CONFLICT (tenant_id) DO UPDATE SET provisioning = excluded.provisioning, deprovisioning = excluded.deprovisioning");
    db.execute(&q)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Roles and rules

#[derive(Clone, Debug, QueryableByName)]
pub struct RoleRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub entitlements: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = BigInt)]
    pub modified: i64,
}

const ROLE_COLUMNS: &str = "id, name, entitlements, created, modified";

pub fn list_roles(db: &mut Db<'_>, tenant: &str) -> StoreResult<Vec<RoleRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = "
    ));
    q.bind(text(tenant)).push(" ORDER BY name, id");
    Ok(db.load(&q)?)
}

pub fn get_role(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<Option<RoleRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = "
    ));
    q.bind(text(tenant)).push(" AND id = ").bind(text(id));
    Ok(db.first(&q)?)
}

pub fn insert_role(db: &mut Db<'_>, tenant: &str, r: &RoleRow) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO roles (id, tenant_id, name, entitlements, created, modified) VALUES (",
    );
    q.bind_list([
        text(&r.id),
        text(tenant),
        text(&r.name),
        text(&r.entitlements),
        Bind::Int(r.created),
        Bind::Int(r.modified),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

pub fn update_role(db: &mut Db<'_>, tenant: &str, r: &RoleRow) -> StoreResult<usize> {
    let mut q = Sql::new("UPDATE roles SET name = ");
    q.bind(text(&r.name))
        .push(", entitlements = ")
        .bind(text(&r.entitlements))
        .push(", modified = ")
        .bind(Bind::Int(r.modified))
        .push(" WHERE tenant_id = ")
        .bind(text(tenant))
        .push(" AND id = ")
        .bind(text(&r.id));
    Ok(db.execute(&q)?)
}

/// Deletes a role, its rules (foreign key) and its grants.
pub fn delete_role(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM account_roles WHERE tenant_id = ");
    q.bind(text(tenant)).push(" AND role_id = ").bind(text(id));
    db.execute(&q)?;
    let mut q = Sql::new("DELETE FROM rules WHERE tenant_id = ");
    q.bind(text(tenant)).push(" AND role_id = ").bind(text(id));
    db.execute(&q)?;
    let mut q = Sql::new("DELETE FROM roles WHERE tenant_id = ");
    q.bind(text(tenant)).push(" AND id = ").bind(text(id));
    Ok(db.execute(&q)?)
}

#[derive(Clone, Debug, QueryableByName)]
pub struct RuleRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub role_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub filter: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub group_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = BigInt)]
    pub modified: i64,
}

const RULE_COLUMNS: &str = "id, role_id, filter, group_id, created, modified";

pub fn list_rules(db: &mut Db<'_>, tenant: &str) -> StoreResult<Vec<RuleRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = "
    ));
    q.bind(text(tenant)).push(" ORDER BY id");
    Ok(db.load(&q)?)
}

pub fn get_rule(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<Option<RuleRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = "
    ));
    q.bind(text(tenant)).push(" AND id = ").bind(text(id));
    Ok(db.first(&q)?)
}

pub fn insert_rule(db: &mut Db<'_>, tenant: &str, r: &RuleRow) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO rules (id, tenant_id, role_id, filter, group_id, created, modified) VALUES (",
    );
    q.bind_list([
        text(&r.id),
        text(tenant),
        text(&r.role_id),
        Bind::OptText(r.filter.clone()),
        Bind::OptText(r.group_id.clone()),
        Bind::Int(r.created),
        Bind::Int(r.modified),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

pub fn update_rule(db: &mut Db<'_>, tenant: &str, r: &RuleRow) -> StoreResult<usize> {
    let mut q = Sql::new("UPDATE rules SET role_id = ");
    q.bind(text(&r.role_id))
        .push(", filter = ")
        .bind(Bind::OptText(r.filter.clone()))
        .push(", group_id = ")
        .bind(Bind::OptText(r.group_id.clone()))
        .push(", modified = ")
        .bind(Bind::Int(r.modified))
        .push(" WHERE tenant_id = ")
        .bind(text(tenant))
        .push(" AND id = ")
        .bind(text(&r.id));
    Ok(db.execute(&q)?)
}

pub fn delete_rule(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM rules WHERE tenant_id = ");
    q.bind(text(tenant)).push(" AND id = ").bind(text(id));
    Ok(db.execute(&q)?)
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether any rule grants a role by membership of this group.
pub fn group_has_rules(db: &mut Db<'_>, tenant: &str, group_id: &str) -> StoreResult<bool> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM rules WHERE tenant_id = ");
    q.bind(text(tenant))
        .push(" AND group_id = ")
        .bind(text(group_id));
    Ok(db.first::<CountRow>(&q)?.is_some_and(|r| r.n > 0))
}

// ---------------------------------------------------------------------------------------
// Accounts

#[derive(Clone, Debug, QueryableByName)]
pub struct AccountRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub scim_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub user_pk: Option<i64>,
    #[diesel(sql_type = Text)]
    pub user_name: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    /// JSON array of {id, name}.
    #[diesel(sql_type = Text)]
    pub roles: String,
    /// JSON object.
    #[diesel(sql_type = Text)]
    pub entitlements: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub removal_since: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub removal_reason: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = BigInt)]
    pub modified: i64,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.scim_id, a.user_pk, a.user_name, a.state, a.roles, \
     a.entitlements, a.removal_since, a.removal_reason, a.created, a.modified";

fn lock_clause(db: &Db<'_>, lock: bool) -> &'static str {
    if lock && db.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    }
}

pub fn get_account(
    db: &mut Db<'_>,
    tenant: &str,
    id: &str,
    lock: bool,
) -> StoreResult<Option<AccountRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = "
    ));
    q.bind(text(tenant)).push(" AND a.id = ").bind(text(id));
    q.push(lock_clause(db, lock));
    Ok(db.first(&q)?)
}

/// The account of a SCIM user (locked on Postgres: the caller is about to change it).
pub fn account_of_user(
    db: &mut Db<'_>,
    tenant: &str,
    scim_id: &str,
) -> StoreResult<Option<AccountRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = "
    ));
    q.bind(text(tenant))
        .push(" AND a.scim_id = ")
        .bind(text(scim_id));
    q.push(lock_clause(db, true));
    Ok(db.first(&q)?)
}

/// Accounts of these users (locked), for a membership change that may change their roles.
pub fn accounts_of_user_pks(
    db: &mut Db<'_>,
    tenant: &str,
    pks: &[i64],
) -> StoreResult<Vec<AccountRow>> {
    let mut out = Vec::new();
    for chunk in pks.chunks(500) {
        let mut q = Sql::new(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = "
        ));
        q.bind(text(tenant)).push(" AND a.user_pk IN (");
        q.bind_list(chunk.iter().map(|p| Bind::Int(*p)));
        q.push(") ORDER BY a.id");
        q.push(lock_clause(db, true));
        out.extend(db.load::<AccountRow>(&q)?);
    }
    Ok(out)
}

/// Every account of the tenant in one of `states`, locked (a role or rule changed).
pub fn accounts_in_states(
    db: &mut Db<'_>,
    tenant: &str,
    states: &[&str],
) -> StoreResult<Vec<AccountRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = "
    ));
    q.bind(text(tenant)).push(" AND a.state IN (");
    q.bind_list(states.iter().map(|s| text(s)));
    q.push(") ORDER BY a.id");
    q.push(lock_clause(db, true));
    Ok(db.load(&q)?)
}

/// Filters of an account list; `after` is the last id of the previous page.
pub struct AccountQuery<'a> {
    pub state: Option<&'a str>,
    pub role: Option<&'a str>,
    pub group_pk: Option<i64>,
    /// A SCIM filter the account's user must match.
    pub filter: Option<&'a Cond>,
    pub flagged: bool,
    pub after: Option<&'a str>,
    pub limit: i64,
}

pub fn list_accounts(
    db: &mut Db<'_>,
    tenant: &str,
    f: &AccountQuery<'_>,
) -> StoreResult<Vec<AccountRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.tenant_id = "
    ));
    q.bind(text(tenant));
    if let Some(s) = f.state {
        q.push(" AND a.state = ").bind(text(s));
    }
    if let Some(r) = f.role {
        q.push(" AND a.id IN (SELECT account_id FROM account_roles WHERE role_id = ")
            .bind(text(r))
            .push(")");
    }
    if let Some(g) = f.group_pk {
        q.push(" AND a.user_pk IN (SELECT member_pk FROM members WHERE group_pk = ")
            .bind(Bind::Int(g))
            .push(")");
    }
    if let Some(c) = f.filter {
        q.push(" AND a.user_pk IN (SELECT r.pk FROM resources r WHERE r.tenant_id = ")
            .bind(text(tenant))
            .push(" AND r.rtype = 'User' AND ");
        Translator::new(tenant, Rtype::User, db.backend()).translate(c, &mut q);
        q.push(")");
    }
    if f.flagged {
        q.push(" AND a.removal_since IS NOT NULL");
    }
    if let Some(a) = f.after {
        q.push(" AND a.id > ").bind(text(a));
    }
    q.push(" ORDER BY a.id LIMIT ").bind(Bind::Int(f.limit));
    Ok(db.load(&q)?)
}

pub fn insert_account(db: &mut Db<'_>, tenant: &str, a: &AccountRow) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO accounts (id, tenant_id, scim_id, user_pk, user_name, state, roles, entitlements, removal_since, removal_reason, created, modified) VALUES (",
    );
    q.bind_list([
        text(&a.id),
        text(tenant),
        text(&a.scim_id),
        Bind::OptInt(a.user_pk),
        text(&a.user_name),
        text(&a.state),
        text(&a.roles),
        text(&a.entitlements),
        Bind::OptInt(a.removal_since),
        Bind::OptText(a.removal_reason.clone()),
        Bind::Int(a.created),
        Bind::Int(a.modified),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

pub fn update_account(db: &mut Db<'_>, tenant: &str, a: &AccountRow) -> StoreResult<()> {
    let mut q = Sql::new("UPDATE accounts SET user_pk = ");
    q.bind(Bind::OptInt(a.user_pk))
        .push(", user_name = ")
        .bind(text(&a.user_name))
        .push(", state = ")
        .bind(text(&a.state))
        .push(", roles = ")
        .bind(text(&a.roles))
        .push(", entitlements = ")
        .bind(text(&a.entitlements))
        .push(", removal_since = ")
        .bind(Bind::OptInt(a.removal_since))
        .push(", removal_reason = ")
        .bind(Bind::OptText(a.removal_reason.clone()))
        .push(", modified = ")
        .bind(Bind::Int(a.modified))
        .push(" WHERE tenant_id = ")
        .bind(text(tenant))
        .push(" AND id = ")
        .bind(text(&a.id));
    db.execute(&q)?;
    Ok(())
}

/// Replaces an account's role grants (the index behind `GET /accounts?role=`).
pub fn set_account_roles(
    db: &mut Db<'_>,
    tenant: &str,
    account: &str,
    roles: &[String],
) -> StoreResult<()> {
    let mut q = Sql::new("DELETE FROM account_roles WHERE account_id = ");
    q.bind(text(account));
    db.execute(&q)?;
    if roles.is_empty() {
        return Ok(());
    }
    let mut q = Sql::new("INSERT INTO account_roles (tenant_id, role_id, account_id) VALUES ");
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push("(");
        q.bind_list([text(tenant), text(r), text(account)]);
        q.push(")");
    }
    db.execute(&q)?;
    Ok(())
}

#[derive(QueryableByName)]
pub struct PkRow {
    #[diesel(sql_type = BigInt)]
    pub pk: i64,
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

// ---------------------------------------------------------------------------------------
// Webhooks and deliveries

#[derive(Clone, Debug, QueryableByName)]
pub struct WebhookRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub url: String,
    /// JSON array of event types (`*` for all).
    #[diesel(sql_type = Text)]
    pub events: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
}

const WEBHOOK_COLUMNS: &str = "id, url, events, secret, created";

pub fn list_webhooks(db: &mut Db<'_>, tenant: &str) -> StoreResult<Vec<WebhookRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = "
    ));
    q.bind(text(tenant)).push(" ORDER BY id");
    Ok(db.load(&q)?)
}

pub fn get_webhook(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<Option<WebhookRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = "
    ));
    q.bind(text(tenant)).push(" AND id = ").bind(text(id));
    Ok(db.first(&q)?)
}

pub fn insert_webhook(db: &mut Db<'_>, tenant: &str, w: &WebhookRow) -> StoreResult<()> {
    let mut q =
        Sql::new("INSERT INTO webhooks (id, tenant_id, url, events, secret, created) VALUES (");
    q.bind_list([
        text(&w.id),
        text(tenant),
        text(&w.url),
        text(&w.events),
        text(&w.secret),
        Bind::Int(w.created),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

pub fn delete_webhook(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM deliveries WHERE tenant_id = ");
    q.bind(text(tenant))
        .push(" AND webhook_id = ")
        .bind(text(id));
    db.execute(&q)?;
    let mut q = Sql::new("DELETE FROM webhooks WHERE tenant_id = ");
    q.bind(text(tenant)).push(" AND id = ").bind(text(id));
    Ok(db.execute(&q)?)
}

pub struct NewDelivery {
    pub id: String,
    pub webhook_id: String,
    pub seq: i64,
    pub order_key: String,
}

pub fn insert_deliveries(
    db: &mut Db<'_>,
    tenant: &str,
    items: &[NewDelivery],
    now: i64,
) -> StoreResult<()> {
    for chunk in items.chunks(500) {
        let mut q = Sql::new(
            "INSERT INTO deliveries (id, tenant_id, webhook_id, seq, order_key, status, attempts, next_at, lease_until, created) VALUES ",
        );
        for (i, d) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(");
            q.bind_list([
                text(&d.id),
                text(tenant),
                text(&d.webhook_id),
                Bind::Int(d.seq),
                text(&d.order_key),
                text("pending"),
                Bind::Int(0),
                Bind::Int(now),
                Bind::Int(0),
                Bind::Int(now),
            ]);
            q.push(")");
        }
        db.execute(&q)?;
    }
    Ok(())
}

#[derive(Clone, Debug, QueryableByName)]
pub struct DeliveryRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Text)]
    pub webhook_id: String,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub next_at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_attempt: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = type_)]
    pub kind: String,
}

pub(super) const DELIVERY_COLUMNS: &str =
    "d.id, d.tenant_id, d.webhook_id, d.seq, d.status, d.attempts, \
     d.next_at, d.last_error, d.last_attempt, d.created, f.id AS event_id, f.type AS type_";

pub fn dead_letters(
    db: &mut Db<'_>,
    tenant: &str,
    webhook: &str,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN feed f ON f.tenant_id = d.tenant_id AND f.seq = d.seq \
         WHERE d.tenant_id = "
    ));
    q.bind(text(tenant))
        .push(" AND d.webhook_id = ")
        .bind(text(webhook))
        .push(" AND d.status = 'dead' AND d.seq > ")
        .bind(Bind::Int(after_seq))
        .push(" ORDER BY d.seq LIMIT ")
        .bind(Bind::Int(limit));
    Ok(db.load(&q)?)
}

pub fn get_delivery(db: &mut Db<'_>, tenant: &str, id: &str) -> StoreResult<Option<DeliveryRow>> {
    let mut q = Sql::new(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN feed f ON f.tenant_id = d.tenant_id AND f.seq = d.seq \
         WHERE d.tenant_id = "
    ));
    q.bind(text(tenant)).push(" AND d.id = ").bind(text(id));
    q.push(
        lock_clause(db, true)
            .replace("UPDATE", "UPDATE OF d")
            .as_str(),
    );
    Ok(db.first(&q)?)
}

/// Queues a dead delivery again, attempts reset.
pub fn requeue_delivery(db: &mut Db<'_>, tenant: &str, id: &str, now: i64) -> StoreResult<usize> {
    let mut q = Sql::new("UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ");
    q.bind(Bind::Int(now))
        .push(", lease_until = 0, created = ")
        .bind(Bind::Int(now))
        .push(" WHERE tenant_id = ")
        .bind(text(tenant))
        .push(" AND id = ")
        .bind(text(id))
        .push(" AND status = 'dead'");
    Ok(db.execute(&q)?)
}

/// A delivery claimed by a worker: what to send and where.
#[derive(Clone, Debug, QueryableByName)]
pub struct ClaimedRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = type_)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub account_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    #[diesel(sql_type = Text)]
    pub data: String,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Claims up to `limit` due deliveries for `lease_until`: each is the oldest pending one of
/// its (subscription, order key), not leased by another worker. On Postgres the candidate
/// rows are locked with SKIP LOCKED, so concurrent claimers (other instances) never take
/// the same one; on SQLite the write transaction is exclusive. Run in a write transaction.
pub fn claim_deliveries(
    db: &mut Db<'_>,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> StoreResult<Vec<ClaimedRow>> {
    let mut q =
        Sql::new("SELECT d.id FROM deliveries d WHERE d.status = 'pending' AND d.next_at <= ");
    q.bind(Bind::Int(now))
        .push(" AND d.lease_until <= ")
        .bind(Bind::Int(now))
        .push(
            " AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.webhook_id = d.webhook_id \
             AND e.order_key = d.order_key AND e.status = 'pending' AND e.seq < d.seq) \
             ORDER BY d.next_at, d.seq LIMIT ",
        )
        .bind(Bind::Int(limit));
    if db.backend() == Backend::Postgres {
        q.push(" FOR UPDATE SKIP LOCKED");
    }
    let ids: Vec<String> = db.load::<IdRow>(&q)?.into_iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Sql::new("UPDATE deliveries SET lease_until = ");
    q.bind(Bind::Int(lease_until)).push(" WHERE id IN (");
    q.bind_list(ids.iter().map(|i| text(i)));
    q.push(")");
    db.execute(&q)?;
    let mut q = Sql::new(
        "SELECT d.id, d.attempts, d.created, w.url, w.secret, f.id AS event_id, f.seq, f.type AS type_, \
         f.account_id, f.resource_type, f.resource_id, f.at, f.data \
         FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         JOIN feed f ON f.tenant_id = d.tenant_id AND f.seq = d.seq WHERE d.id IN (",
    );
    q.bind_list(ids.iter().map(|i| text(i)));
    q.push(") ORDER BY d.seq");
    Ok(db.load(&q)?)
}

/// Records successful deliveries.
pub fn delivered(db: &mut Db<'_>, ids: &[&str], now: i64) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for chunk in ids.chunks(500) {
        let mut q = Sql::new(
            "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, lease_until = 0, last_error = NULL, last_attempt = ",
        );
        q.bind(Bind::Int(now)).push(" WHERE id IN (");
        q.bind_list(chunk.iter().map(|i| text(i)));
        q.push(")");
        db.execute(&q)?;
    }
    Ok(())
}

/// Gives claimed deliveries back unattempted (their lease ends now).
pub fn release_deliveries(db: &mut Db<'_>, ids: &[&str]) -> StoreResult<()> {
    for chunk in ids.chunks(500) {
        let mut q = Sql::new("UPDATE deliveries SET lease_until = 0 WHERE id IN (");
        q.bind_list(chunk.iter().map(|i| text(i)));
        q.push(")");
        db.execute(&q)?;
    }
    Ok(())
}

/// Records a failed attempt: retried at `next_at`, or dead when None.
pub fn delivery_failed(
    db: &mut Db<'_>,
    id: &str,
    now: i64,
    next_at: Option<i64>,
    error: &str,
) -> StoreResult<()> {
    let mut q =
        Sql::new("UPDATE deliveries SET attempts = attempts + 1, lease_until = 0, status = ");
    q.bind(text(if next_at.is_some() { "pending" } else { "dead" }))
        .push(", next_at = ")
        .bind(Bind::Int(next_at.unwrap_or(now)))
        .push(", last_attempt = ")
        .bind(Bind::Int(now))
        .push(", last_error = ")
        .bind(text(error))
        .push(" WHERE id = ")
        .bind(text(id));
    db.execute(&q)?;
    Ok(())
}
