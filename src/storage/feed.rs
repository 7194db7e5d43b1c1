//! The change feed (`feed`) and each tenant's head row (`feed_heads`: the last sequence
//! number handed out, and the tenant's resource counts). Every function is scoped to a
//! tenant; the caller owns the transaction.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::sql::{select, Bind, Sql};
use super::{StorageError, StoreResult, TenantId};
use crate::scim::schema::Rtype;

/// An event to append; `append` numbers it.
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
    /// The event's JSON `data`, as written.
    #[diesel(sql_type = Text)]
    pub data: String,
    /// The credential whose request wrote the event (None: the bootstrap token). Not part
    /// of the event's wire form; an account's timeline names it.
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

/// Resources created minus deleted in one transaction, by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub users: i64,
    pub groups: i64,
}

impl Counted {
    /// `delta` resources of type `rt`.
    pub fn of(rt: Rtype, delta: i64) -> Counted {
        let mut c = Counted::default();
        c.add(rt, delta);
        c
    }

    pub fn add(&mut self, rt: Rtype, delta: i64) {
        match rt {
            Rtype::User => self.users += delta,
            Rtype::Group => self.groups += delta,
        }
    }

    pub fn absorb(&mut self, other: Counted) {
        self.users += other.users;
        self.groups += other.groups;
    }

    fn is_zero(self) -> bool {
        self == Counted::default()
    }
}

/// The column of `feed_heads` that counts resources of type `rt`.
fn count_column(rt: Rtype) -> &'static str {
    match rt {
        Rtype::User => "user_count",
        Rtype::Group => "group_count",
    }
}

/// Rows per INSERT of feed events.
const EVENTS_PER_STATEMENT: usize = 500;

/// Appends events to the tenant's feed; returns the sequence number of the first. The
/// numbers come from the tenant's row in `feed_heads`, which stays locked until the
/// transaction ends: numbers are gap-free and handed out in commit order. The same statement
/// adds `counted` to the tenant's resource counts.
pub fn append(
    db: &mut Db<'_>,
    tenant: &TenantId,
    events: &[NewFeedEvent],
    counted: Counted,
) -> StoreResult<i64> {
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    if n == 0 && counted.is_zero() {
        return Ok(0);
    }
    let (n_, users, groups) = (
        Bind::Int(n),
        Bind::Int(counted.users),
        Bind::Int(counted.groups),
    );
    let mut q = Sql::with(
        "INSERT INTO feed_heads (tenant_id, last_seq, user_count, group_count) VALUES (?, ?, ?, ?) ",
        [Bind::tenant(tenant), n_.clone(), users.clone(), groups.clone()],
    );
    q.and(
        "ON CONFLICT (tenant_id) DO UPDATE SET last_seq = feed_heads.last_seq + ?, \
         user_count = feed_heads.user_count + ?, group_count = feed_heads.group_count + ? \
         RETURNING last_seq",
        [n_, users, groups],
    );
    let last = db
        .first::<SeqRow>(&q)?
        .map(|r| r.last_seq)
        .ok_or(StorageError::NotFound)?;
    let first = last - n + 1;
    for (chunk_no, chunk) in events.chunks(EVENTS_PER_STATEMENT).enumerate() {
        let start = first + i64::try_from(chunk_no * EVENTS_PER_STATEMENT).unwrap_or(0);
        let numbered: Vec<(i64, &NewFeedEvent)> = (start..).zip(chunk).collect();
        let mut q = Sql::new(
            "INSERT INTO feed (tenant_id, seq, id, type, account_id, resource_type, resource_id, at, credential_id, data) VALUES ",
        );
        q.bind_rows(&numbered, |(seq, e)| {
            vec![
                Bind::tenant(tenant),
                Bind::Int(*seq),
                Bind::text(&e.id),
                Bind::text(&e.kind),
                Bind::OptText(e.account_id.clone()),
                Bind::OptText(e.resource_type.clone()),
                Bind::OptText(e.resource_id.clone()),
                Bind::Int(e.at),
                Bind::OptText(e.credential.clone()),
                Bind::text(&e.data),
            ]
        });
        db.execute(&q)?;
    }
    Ok(first)
}

/// Adds `delta` to the number of `rt` resources the tenant holds, for writers that bypass
/// the journal (a bulk loader); the journal adds its counts in `append`.
pub fn adjust_resource_count(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    delta: i64,
) -> StoreResult<()> {
    append(db, tenant, &[], Counted::of(rt, delta))?;
    Ok(())
}

/// The number of `rt` resources the tenant holds (kept on its `feed_heads` row).
pub fn resource_count(db: &mut Db<'_>, tenant: &TenantId, rt: Rtype) -> StoreResult<i64> {
    db.count(&select(
        &format!("{} AS n", count_column(rt)),
        "feed_heads",
        tenant,
    ))
}

/// Feed events after `after`, in order (at most `limit`).
pub fn after(db: &mut Db<'_>, tenant: &TenantId, w: SeqWindow) -> StoreResult<Vec<FeedRow>> {
    events(db, tenant, None, w)
}

/// One account's events in a window, in order.
pub fn of_account(
    db: &mut Db<'_>,
    tenant: &TenantId,
    account: &str,
    w: SeqWindow,
) -> StoreResult<Vec<FeedRow>> {
    events(db, tenant, Some(account), w)
}

/// Rows of a list in feed order (the feed, an account's timeline, dead letters): those
/// after `seq`, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqWindow {
    pub after: i64,
    pub limit: i64,
}

impl SeqWindow {
    /// `AND {column} > ? ORDER BY {column} LIMIT ?`.
    pub(crate) fn push_to(self, q: &mut Sql, column: &str) {
        q.and(
            &format!(" AND {column} > ? ORDER BY {column} LIMIT ?"),
            [Bind::Int(self.after), Bind::Int(self.limit)],
        );
    }
}

fn events(
    db: &mut Db<'_>,
    tenant: &TenantId,
    account: Option<&str>,
    w: SeqWindow,
) -> StoreResult<Vec<FeedRow>> {
    let mut q = select(FEED_COLUMNS, "feed", tenant);
    if let Some(a) = account {
        q.and(" AND account_id = ?", [Bind::text(a)]);
    }
    w.push_to(&mut q, "seq");
    Ok(db.load(&q)?)
}

/// The whole feed of a tenant (tests and tools).
pub fn all(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<FeedRow>> {
    let w = SeqWindow {
        after: 0,
        limit: i64::MAX,
    };
    after(db, tenant, w)
}

/// The credential recorded with each SCIM event of a tenant, in order (tests and audits).
pub fn event_credentials(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<Option<String>>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        credential_id: Option<String>,
    }
    let mut q = select("credential_id", "feed", tenant);
    q.push(" AND type LIKE 'urn:%' ORDER BY seq");
    Ok(db
        .load::<Row>(&q)?
        .into_iter()
        .map(|r| r.credential_id)
        .collect())
}

/// A tenant's feed head: the sequence number of its newest event.
#[derive(QueryableByName, Clone, Debug, PartialEq, Eq)]
pub struct FeedHead {
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = BigInt)]
    pub last_seq: i64,
}

/// Every tenant's feed head.
pub fn feed_heads(db: &mut Db<'_>) -> StoreResult<Vec<FeedHead>> {
    Ok(db.load::<FeedHead>(&Sql::new("SELECT tenant_id, last_seq FROM feed_heads"))?)
}
