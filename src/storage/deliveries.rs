//! Webhook subscriptions (`webhooks`) and their deliveries (`deliveries`: one row per
//! subscription and feed event, with its attempts). Subscriptions and the admin's views are
//! scoped to a tenant; delivery workers claim due deliveries across tenants. Rows decode
//! into typed fields; one that does not is `Corrupt`. The caller owns the transaction.

use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::dialect::Lock;
use super::feed::{FeedRow, SeqWindow};
use super::sql::{select, Bind, Sql};
use super::{decode_json, Decode, Keyed, StorageError, StoreResult, TenantId};

// ---------------------------------------------------------------------------------------
// Subscriptions

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    /// Event types (`*` for all).
    pub events: Vec<String>,
    pub secret: String,
    pub created: i64,
}

#[derive(QueryableByName)]
pub struct RawWebhook {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    events: String,
    #[diesel(sql_type = Text)]
    secret: String,
    #[diesel(sql_type = BigInt)]
    created: i64,
}

impl Decode for RawWebhook {
    type Row = WebhookRow;

    fn decode(self) -> StoreResult<WebhookRow> {
        Ok(WebhookRow {
            events: decode_json("webhooks", &self.id, "events", &self.events)?,
            id: self.id,
            url: self.url,
            secret: self.secret,
            created: self.created,
        })
    }
}

impl Keyed for WebhookRow {
    type Raw = RawWebhook;
    const TABLE: &'static str = "webhooks";
    const COLUMNS: &'static str = "id, url, events, secret, created";
    const ORDER: &'static str = "id";
}

pub fn insert_webhook(db: &mut Db<'_>, tenant: &TenantId, w: &WebhookRow) -> StoreResult<()> {
    let events = serde_json::to_string(&w.events)
        .map_err(|e| StorageError::corrupt("webhooks", &w.id, format!("cannot encode: {e}")))?;
    let (id, url, secret) = (Bind::text(&w.id), Bind::text(&w.url), Bind::text(&w.secret));
    db.execute(&Sql::with(
        "INSERT INTO webhooks (id, tenant_id, url, events, secret, created) VALUES (?, ?, ?, ?, ?, ?)",
        [id, Bind::tenant(tenant), url, Bind::Text(events), secret, Bind::Int(w.created)],
    ))?;
    Ok(())
}

/// How many subscriptions the tenant has, its tenant row locked until the transaction
/// ends (Postgres), so two concurrent registrations cannot both pass a cap.
pub fn count_webhooks_locked(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<i64> {
    let mut lock = Sql::with(
        "SELECT id FROM tenants WHERE id = ?",
        [Bind::tenant(tenant)],
    );
    lock.push(db.backend().lock(Lock::Update));
    db.load::<IdRow>(&lock)?;
    db.count(&Sql::with(
        "SELECT COUNT(*) AS n FROM webhooks WHERE tenant_id = ?",
        [Bind::tenant(tenant)],
    ))
}

/// Deletes a subscription and its deliveries; returns how many subscriptions went (0 or 1).
pub fn delete_webhook(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<usize> {
    let (t, id) = (Bind::tenant(tenant), Bind::text(id));
    db.execute(&Sql::with(
        "DELETE FROM deliveries WHERE tenant_id = ? AND webhook_id = ?",
        [t.clone(), id.clone()],
    ))?;
    Ok(db.execute(&Sql::with(
        "DELETE FROM webhooks WHERE tenant_id = ? AND id = ?",
        [t, id],
    ))?)
}

// ---------------------------------------------------------------------------------------
// Deliveries

/// Where a delivery is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting for an attempt (first or retry).
    Pending,
    Delivered,
    /// Out of retries: a dead letter, until replayed.
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Delivered, Status::Dead]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

pub struct NewDelivery {
    pub id: String,
    pub webhook_id: String,
    pub seq: i64,
    pub order_key: String,
}

/// Queues deliveries of the tenant's events, due now.
pub fn queue(
    db: &mut Db<'_>,
    tenant: &TenantId,
    items: &[NewDelivery],
    now: i64,
) -> StoreResult<()> {
    for chunk in items.chunks(500) {
        let mut q = Sql::new(
            "INSERT INTO deliveries (id, tenant_id, webhook_id, seq, order_key, status, attempts, next_at, lease_until, created) VALUES ",
        );
        q.bind_rows(chunk, |d| {
            vec![
                Bind::text(&d.id),
                Bind::tenant(tenant),
                Bind::text(&d.webhook_id),
                Bind::Int(d.seq),
                Bind::text(&d.order_key),
                Bind::text(Status::Pending.as_str()),
                Bind::Int(0),
                Bind::Int(now),
                Bind::Int(0),
                Bind::Int(now),
            ]
        });
        db.execute(&q)?;
    }
    Ok(())
}

/// A delivery as the admin sees it, with its event's id and type.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub tenant_id: String,
    pub webhook_id: String,
    pub seq: i64,
    pub status: Status,
    pub attempts: i32,
    pub next_at: i64,
    pub last_error: Option<String>,
    pub last_attempt: Option<i64>,
    pub created: i64,
    pub event_id: String,
    pub kind: String,
}

#[derive(QueryableByName)]
struct RawDelivery {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    webhook_id: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = BigInt)]
    next_at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last_attempt: Option<i64>,
    #[diesel(sql_type = BigInt)]
    created: i64,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = type_)]
    kind: String,
}

impl Decode for RawDelivery {
    type Row = DeliveryRow;

    fn decode(self) -> StoreResult<DeliveryRow> {
        let status = Status::parse(&self.status).ok_or_else(|| {
            StorageError::corrupt("deliveries", &self.id, format!("status `{}`", self.status))
        })?;
        Ok(DeliveryRow {
            id: self.id,
            tenant_id: self.tenant_id,
            webhook_id: self.webhook_id,
            seq: self.seq,
            status,
            attempts: self.attempts,
            next_at: self.next_at,
            last_error: self.last_error,
            last_attempt: self.last_attempt,
            created: self.created,
            event_id: self.event_id,
            kind: self.kind,
        })
    }
}

/// Deliveries joined with their feed events.
fn select_deliveries(tenant: &TenantId) -> Sql {
    select(
        "d.id, d.tenant_id, d.webhook_id, d.seq, d.status, d.attempts, d.next_at, d.last_error, \
         d.last_attempt, d.created, f.id AS event_id, f.type AS type_",
        "deliveries d JOIN feed f ON f.tenant_id = d.tenant_id AND f.seq = d.seq",
        tenant,
    )
}

/// A subscription's dead letters in a window, in feed order.
pub fn dead_letters(
    db: &mut Db<'_>,
    tenant: &TenantId,
    webhook: &str,
    w: SeqWindow,
) -> StoreResult<Vec<DeliveryRow>> {
    let mut q = select_deliveries(tenant);
    q.and(
        " AND d.webhook_id = ? AND d.status = 'dead'",
        [Bind::text(webhook)],
    );
    w.push_to(&mut q, "d.seq");
    db.rows::<RawDelivery>(&q)
}

/// A subscription's deliveries, newest event first: those before `before_seq` (all when
/// None), of `status` when given. Walks the `(webhook_id, seq)` index backwards.
pub fn recent(
    db: &mut Db<'_>,
    tenant: &TenantId,
    webhook: &str,
    status: Option<Status>,
    before_seq: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    let mut q = select_deliveries(tenant);
    q.and(" AND d.webhook_id = ?", [Bind::text(webhook)]);
    if let Some(s) = status {
        q.and(" AND d.status = ?", [Bind::text(s.as_str())]);
    }
    if let Some(b) = before_seq {
        q.and(" AND d.seq < ?", [Bind::Int(b)]);
    }
    q.and(" ORDER BY d.seq DESC LIMIT ?", [Bind::Int(limit)]);
    db.rows::<RawDelivery>(&q)
}

/// One delivery, locked for a change.
pub fn get_delivery(
    db: &mut Db<'_>,
    tenant: &TenantId,
    id: &str,
) -> StoreResult<Option<DeliveryRow>> {
    let mut q = select_deliveries(tenant);
    q.and(" AND d.id = ?", [Bind::text(id)]);
    q.push(&db.backend().lock_of("d"));
    db.row::<RawDelivery>(&q)
}

/// Queues a dead delivery again, attempts reset.
pub fn requeue(db: &mut Db<'_>, tenant: &TenantId, id: &str, now: i64) -> StoreResult<usize> {
    Ok(db.execute(&Sql::with(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?, lease_until = 0, \
         settled_at = NULL, created = ? WHERE tenant_id = ? AND id = ? AND status = 'dead'",
        [
            Bind::Int(now),
            Bind::Int(now),
            Bind::tenant(tenant),
            Bind::text(id),
        ],
    ))?)
}

/// A delivery claimed by a worker: what to send (the feed event, as `GET /api/v1/events`
/// reads it), where, and whose. The worker decodes the event's `data` (a row that does not
/// decode fails its attempt, naming it).
#[derive(Clone, Debug, QueryableByName)]
pub struct ClaimedRow {
    /// The delivery's id (the event's is `event.id`).
    #[diesel(sql_type = Text)]
    #[diesel(column_name = delivery_id)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub webhook_id: String,
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
    #[diesel(embed)]
    pub event: FeedRow,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// `id IN (?, ?, ...)`.
fn ids_in(q: &mut Sql, ids: &[&str]) {
    q.push("id IN (");
    q.bind_list(ids.iter().map(|i| Bind::text(i)));
    q.push(")");
}

/// A subscription with deliveries due and its circuit not open, for a claim.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct DueWebhook {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Its consecutive failed attempts (the breaker's count).
    #[diesel(sql_type = Integer)]
    pub failures: i32,
}

/// Which subscription ids a look at due work covers: the round-robin turn of a claimer is
/// the ids after its last one, then the ids up to it.
#[derive(Clone, Copy, Debug)]
pub enum Turn<'a> {
    After(&'a str),
    UpTo(&'a str),
}

/// Up to `limit` subscriptions in `turn`, in id order, that have a pending delivery due
/// and not leased, and whose circuit is not open at `now`; those in `skip` (busy in this
/// instance) are left out. Read-only: the probe that decides whether a claim (a write
/// transaction) is worth starting.
///
/// Its cost follows the subscriptions that have pending deliveries, never their backlogs
/// nor the idle subscriptions, whatever the planner knows (fresh tables have no
/// statistics): the recursive part walks the distinct `webhook_id`s of the pending index
/// one index descent each (a skip scan), and each is checked by scalar subqueries, which
/// both backends run per row through an index (an `EXISTS` here became, on Postgres
/// without statistics, a hash join over every due row: 40 ms at 100k queued for one dead
/// receiver, against 0.4 ms).
pub fn due_webhooks(
    db: &mut Db<'_>,
    now: i64,
    turn: Turn<'_>,
    skip: &[&str],
    limit: i64,
) -> StoreResult<Vec<DueWebhook>> {
    let (after, up_to) = match turn {
        Turn::After(id) => (id, None),
        Turn::UpTo(id) => ("", Some(id)),
    };
    let bound = |q: &mut Sql| {
        if let Some(id) = up_to {
            q.and(" AND d.webhook_id <= ?", [Bind::text(id)]);
        }
    };
    let mut q = Sql::with(
        "WITH RECURSIVE subs(id) AS (SELECT (SELECT d.webhook_id FROM deliveries d \
         WHERE d.status = 'pending' AND d.webhook_id > ?",
        [Bind::text(after)],
    );
    bound(&mut q);
    q.push(
        " ORDER BY d.webhook_id LIMIT 1) UNION ALL SELECT (SELECT d.webhook_id \
         FROM deliveries d WHERE d.status = 'pending' AND d.webhook_id > s.id",
    );
    bound(&mut q);
    q.and(
        " ORDER BY d.webhook_id LIMIT 1) FROM subs s WHERE s.id IS NOT NULL) \
         SELECT c.id, c.failures FROM (SELECT s.id, (SELECT w.failures FROM webhooks w \
         WHERE w.id = s.id AND w.open_until <= ?) AS failures, (SELECT 1 FROM deliveries d \
         WHERE d.webhook_id = s.id AND d.status = 'pending' AND d.next_at <= ? \
         AND d.lease_until <= ? LIMIT 1) AS due FROM subs s WHERE s.id IS NOT NULL",
        [Bind::Int(now), Bind::Int(now), Bind::Int(now)],
    );
    if !skip.is_empty() {
        q.push(" AND s.id NOT IN (");
        q.bind_list(skip.iter().map(|i| Bind::text(i)));
        q.push(")");
    }
    q.and(
        ") c WHERE c.failures IS NOT NULL AND c.due IS NOT NULL ORDER BY c.id LIMIT ?",
        [Bind::Int(limit)],
    );
    Ok(db.load(&q)?)
}

/// Takes the half-open probe of a subscription whose circuit was open and is due again:
/// its `open_until` moves to `until` (the probe's lease), so no other claimer (another
/// instance) probes it meanwhile. False when another claimer took it first.
pub fn take_probe(db: &mut Db<'_>, webhook: &str, now: i64, until: i64) -> StoreResult<bool> {
    Ok(db.execute(&Sql::with(
        "UPDATE webhooks SET open_until = ? WHERE id = ? AND open_until <= ?",
        [Bind::Int(until), Bind::text(webhook), Bind::Int(now)],
    ))? == 1)
}

/// Claims up to `limit` due deliveries of one subscription for `lease_until`, oldest due
/// first: each is the oldest pending one of its order key (account or group), not leased by
/// another worker. "The oldest of its key" is a scalar subquery on `deliveries_order` per
/// candidate (as a NOT EXISTS, Postgres without statistics scanned the subscription's
/// whole backlog for each candidate: 22 ms against 0.2 ms at 100k queued). On Postgres the rows are locked with SKIP LOCKED, so concurrent claimers
/// (other instances) never take the same one; on SQLite the write transaction is exclusive.
/// Run in a write transaction.
pub fn claim(
    db: &mut Db<'_>,
    webhook: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> StoreResult<Vec<ClaimedRow>> {
    let mut q = Sql::with(
        "SELECT d.id FROM deliveries d WHERE d.webhook_id = ? AND d.status = 'pending' \
         AND d.next_at <= ? AND d.lease_until <= ? AND (SELECT e.seq FROM deliveries e \
         WHERE e.webhook_id = d.webhook_id AND e.order_key = d.order_key \
         AND e.status = 'pending' ORDER BY e.seq LIMIT 1) = d.seq \
         ORDER BY d.next_at, d.seq LIMIT ?",
        [
            Bind::text(webhook),
            Bind::Int(now),
            Bind::Int(now),
            Bind::Int(limit),
        ],
    );
    q.push(db.backend().lock_skip_locked());
    let ids: Vec<String> = db.load::<IdRow>(&q)?.into_iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut q = Sql::with(
        "UPDATE deliveries SET lease_until = ? WHERE ",
        [Bind::Int(lease_until)],
    );
    ids_in(&mut q, &ids);
    db.execute(&q)?;
    let mut q = Sql::new(
        "SELECT d.id AS delivery_id, d.webhook_id, d.tenant_id, d.attempts, d.created, w.url, \
         w.secret, f.seq, f.id, f.type AS type_, f.account_id, f.resource_type, f.resource_id, \
         f.at, f.data, f.credential_id FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         JOIN feed f ON f.tenant_id = d.tenant_id AND f.seq = d.seq WHERE d.",
    );
    ids_in(&mut q, &ids);
    q.push(" ORDER BY d.next_at, d.seq");
    Ok(db.load(&q)?)
}

/// Records successful deliveries, attempted at `attempted` and settled `now`.
pub fn delivered(db: &mut Db<'_>, ids: &[&str], attempted: i64, now: i64) -> StoreResult<()> {
    for chunk in ids.chunks(500) {
        let mut q = Sql::with(
            "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, \
             lease_until = 0, last_error = NULL, last_attempt = ?, settled_at = ? WHERE ",
            [Bind::Int(attempted), Bind::Int(now)],
        );
        ids_in(&mut q, chunk);
        db.execute(&q)?;
    }
    Ok(())
}

/// Gives claimed deliveries back unattempted (their lease ends now).
pub fn release(db: &mut Db<'_>, ids: &[&str]) -> StoreResult<()> {
    for chunk in ids.chunks(500) {
        let mut q = Sql::new("UPDATE deliveries SET lease_until = 0 WHERE ");
        ids_in(&mut q, chunk);
        db.execute(&q)?;
    }
    Ok(())
}

/// Records a failed attempt made at `attempted`: retried at `next_at`, or dead (settled
/// `now`) when None.
pub fn failed(
    db: &mut Db<'_>,
    id: &str,
    attempted: i64,
    now: i64,
    next_at: Option<i64>,
    error: &str,
) -> StoreResult<()> {
    let (status, settled) = match next_at {
        Some(_) => (Status::Pending, None),
        None => (Status::Dead, Some(now)),
    };
    db.execute(&Sql::with(
        "UPDATE deliveries SET attempts = attempts + 1, lease_until = 0, status = ?, \
         next_at = ?, last_attempt = ?, last_error = ?, settled_at = ? WHERE id = ?",
        [
            Bind::text(status.as_str()),
            Bind::Int(next_at.unwrap_or(now)),
            Bind::Int(attempted),
            Bind::text(error),
            Bind::OptInt(settled),
            Bind::text(id),
        ],
    ))?;
    Ok(())
}

/// A subscription answered: its breaker closes (no write when it was closed already).
pub fn breaker_closed(db: &mut Db<'_>, webhook: &str) -> StoreResult<()> {
    db.execute(&Sql::with(
        "UPDATE webhooks SET failures = 0, open_until = 0 WHERE id = ? \
         AND (failures <> 0 OR open_until <> 0)",
        [Bind::text(webhook)],
    ))?;
    Ok(())
}

#[derive(QueryableByName)]
struct Failures {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

/// Counts one more consecutive failure of a subscription; returns the count (None when the
/// subscription is gone).
pub fn breaker_failed(db: &mut Db<'_>, webhook: &str) -> StoreResult<Option<i32>> {
    db.execute(&Sql::with(
        "UPDATE webhooks SET failures = failures + 1 WHERE id = ?",
        [Bind::text(webhook)],
    ))?;
    Ok(db
        .first::<Failures>(&Sql::with(
            "SELECT failures FROM webhooks WHERE id = ?",
            [Bind::text(webhook)],
        ))?
        .map(|f| f.failures))
}

/// Opens a subscription's circuit until `until`.
pub fn breaker_open(db: &mut Db<'_>, webhook: &str, until: i64) -> StoreResult<()> {
    db.execute(&Sql::with(
        "UPDATE webhooks SET open_until = ? WHERE id = ?",
        [Bind::Int(until), Bind::text(webhook)],
    ))?;
    Ok(())
}

/// Makes dead letters of a subscription's pending deliveries queued before `created_before`
/// (past the retry horizon while its circuit is open, so never attempted again), with the
/// reason its receiver is down. Returns how many.
pub fn expire(
    db: &mut Db<'_>,
    webhook: &str,
    created_before: i64,
    now: i64,
    error: &str,
) -> StoreResult<usize> {
    Ok(db.execute(&Sql::with(
        "UPDATE deliveries SET status = 'dead', last_error = ?, settled_at = ?, next_at = ? \
         WHERE webhook_id = ? AND status = 'pending' AND created < ? AND lease_until <= ?",
        [
            Bind::text(error),
            Bind::Int(now),
            Bind::Int(now),
            Bind::text(webhook),
            Bind::Int(created_before),
            Bind::Int(now),
        ],
    ))?)
}

/// Deletes up to `limit` deliveries settled (delivered or dead) before `before`; returns
/// how many.
/// The oldest first, found through `deliveries_settled` and deleted by primary key.
pub fn prune(db: &mut Db<'_>, before: i64, limit: i64) -> StoreResult<usize> {
    let ids: Vec<String> = db
        .load::<IdRow>(&Sql::with(
            "SELECT id FROM deliveries WHERE status <> 'pending' AND settled_at < ? \
             ORDER BY settled_at LIMIT ?",
            [Bind::Int(before), Bind::Int(limit)],
        ))?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut n = 0;
    for chunk in ids.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let mut q = Sql::new("DELETE FROM deliveries WHERE ");
        ids_in(&mut q, &ids);
        n += db.execute(&q)?;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Operations: what the metrics scrape reads (across tenants)

/// A tenant's deliveries in one status, at one moment.
#[derive(QueryableByName, Clone, Debug, PartialEq, Eq)]
pub struct StatusCount {
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    /// Claimed and still leased (an attempt under way somewhere).
    #[diesel(sql_type = BigInt)]
    pub in_flight: i64,
    /// Attempted and failed at least once (waiting for their next try, when pending).
    #[diesel(sql_type = BigInt)]
    pub retrying: i64,
    /// The earliest `created` among them.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub oldest: Option<i64>,
    /// The lowest feed sequence number among them.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub first_seq: Option<i64>,
}

/// Deliveries counted by tenant and status (one pass over the table; settled rows are
/// pruned after the retention, so it stays as large as a retention's worth of deliveries).
pub fn status_counts(db: &mut Db<'_>, now: i64) -> StoreResult<Vec<StatusCount>> {
    Ok(db.load::<StatusCount>(&Sql::with(
        "SELECT tenant_id, status, COUNT(*) AS n, \
         COUNT(CASE WHEN lease_until > ? THEN 1 END) AS in_flight, \
         COUNT(CASE WHEN attempts > 0 THEN 1 END) AS retrying, \
         MIN(created) AS oldest, MIN(seq) AS first_seq \
         FROM deliveries GROUP BY tenant_id, status",
        [Bind::Int(now)],
    ))?)
}
