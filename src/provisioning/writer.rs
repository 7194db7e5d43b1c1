//! Group commit: the writes that arrive together share one transaction. Every SCIM and
//! `/api/v1` write comes here through `Service::write`. Must not depend on `http`.
//!
//! A *group* is where writes queue: on SQLite one for the database (it has one writer), on
//! Postgres one per tenant (a tenant's feed head is its writes' common lock; other tenants
//! run in parallel). A group's writes take turns on the group's own connection (outside the
//! pool), each on its request's thread:
//!
//! - the first to run opens the batch (`BEGIN`, on SQLite `BEGIN IMMEDIATE` and the
//!   in-process writer lock);
//! - each runs its change in its own savepoint: a failure rolls back that change alone and
//!   is answered at once, exactly as if it had run alone (its journal is dropped); on
//!   Postgres a change that holds leaves its savepoint open for the COMMIT to release
//!   (`Db::batch_write`: no `RELEASE` round trip per change);
//! - the one that finds nobody waiting after it (or the batch full) closes the batch: the
//!   journals of the changes that held are appended to the feed, numbered once per tenant
//!   per batch, and the transaction commits; then everyone in the batch is answered. If the
//!   commit fails, every change of the batch gets the error and none is acknowledged.
//!
//! So a lone write commits at once (nobody waits after it, no timer), and under load a batch
//! is as long as the queue that formed while the previous one ran. Durability is the
//! backend's: nobody is answered before the COMMIT that holds their change returned.
//!
//! Feed numbering stays gap-free and in commit order: numbers are taken from the tenant's
//! `feed_heads` row by the batch's last statements (`Journal::flush`), and that row stays
//! locked until the batch commits; a batch that rolls back releases its numbers with its
//! lock, so the next one (in this process, or another instance's) takes the same numbers.
//! Within a batch, the changes are numbered in the order they ran. Per tenant, the row lock
//! is held from the batch's flush to its commit only, not across its changes.
//!
//! On Postgres, when every batch connection is in use (at most `max_conns`, other tenants'
//! batches), a write runs alone on its request's own connection as before: no write waits
//! for a connection held by a batch that waits for it.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::journal::Journal;
use super::{Error, Result, Service};
use crate::storage::conn::{Conn, Db};
use crate::storage::pool::Connector;
use crate::storage::{StorageError, TenantId};

/// Changes one batch holds at most: bounds the wait of its first change.
const MAX_BATCH: usize = 64;

/// The groups and their connections.
pub struct Writer {
    connector: Connector,
    /// One group for the database (SQLite) or one per tenant (Postgres).
    per_tenant: bool,
    groups: Mutex<HashMap<TenantId, Arc<Group>>>,
    conns: Mutex<Conns>,
    max_conns: usize,
    stats: Mutex<Stats>,
}

/// What the batches did so far (for tests and operators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Batches that committed, and the changes they ran (held or failed).
    pub batches: u64,
    pub changes: u64,
    /// The size of the most recent batch that committed.
    pub last: usize,
}

/// Keeps a group's writes waiting (see `Writer::pause`) until dropped.
pub struct Paused {
    group: Arc<Group>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        lock(&self.group.state).running = false;
        self.group.turn.notify_one();
    }
}

/// Batch connections not in use, and how many are open.
#[derive(Default)]
struct Conns {
    idle: Vec<Conn>,
    open: usize,
}

#[derive(Default)]
struct Group {
    state: Mutex<State>,
    /// Rung when `running` goes false.
    turn: Condvar,
}

#[derive(Default)]
struct State {
    /// A change is running on the batch connection (or the batch is being closed).
    running: bool,
    /// Changes waiting for their turn.
    waiting: usize,
    /// The open batch, and its connection while nobody runs on it.
    batch: Option<Batch>,
    conn: Option<Conn>,
}

struct Batch {
    /// When its BEGIN ran (the commit latency metric runs from here to the end of COMMIT).
    begun: std::time::Instant,
    /// The journals of the changes that held, in the order they ran.
    journals: Vec<Journal>,
    ran: usize,
    outcome: Arc<Outcome>,
}

/// How a batch ended, for the changes that wait for it.
#[derive(Default)]
struct Outcome {
    result: Mutex<Option<std::result::Result<(), Arc<StorageError>>>>,
    ended: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a change panicked; the state is restored before unwinding.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Outcome {
    fn set(&self, r: std::result::Result<(), Arc<StorageError>>) {
        *lock(&self.result) = Some(r);
        self.ended.notify_all();
    }

    fn wait(&self) -> std::result::Result<(), StorageError> {
        let mut r = lock(&self.result);
        loop {
            if let Some(r) = r.as_ref() {
                return r.as_ref().map(|_| ()).map_err(replay);
            }
            r = self
                .ended
                .wait(r)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The error of a batch's commit, for each change of it: the same kind (a lost connection
/// stays retryable), the cause kept as the source.
fn replay(e: &Arc<StorageError>) -> StorageError {
    match &**e {
        StorageError::NotFound => StorageError::NotFound,
        StorageError::Conflict(c) => StorageError::Conflict(c.clone()),
        StorageError::VersionMismatch => StorageError::VersionMismatch,
        StorageError::MissingReference => StorageError::MissingReference,
        StorageError::Pool(s) => StorageError::Pool(s.clone()),
        StorageError::Connect(s) => StorageError::Connect(s.clone()),
        // Rolled back whole, changing nothing: the client may retry (503, `Retry-After`).
        StorageError::Deadline => StorageError::Deadline,
        _ => StorageError::Backend(Box::new(BatchFailed(e.clone()))),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the batch this write was part of did not commit")]
struct BatchFailed(#[source] Arc<StorageError>);

/// Restores a group when a change leaves its batch unusable (it panicked, or SQLite stopped
/// its statement, see `write`): the batch is rolled back, every other change of it fails
/// with `why`, the group is free again.
fn abandon(group: &Group, mut conn: Conn, writer: &Writer, why: StorageError) {
    let _ = conn.rollback_all();
    let mut st = lock(&group.state);
    if let Some(batch) = st.batch.take() {
        batch.outcome.set(Err(Arc::new(why)));
    }
    st.running = false;
    drop(st);
    group.turn.notify_one();
    writer.release(conn);
}

impl Writer {
    /// What opens this writer's connections (the statistics thread's too).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Batches over connections `connector` opens: one on SQLite, up to `max_conns` on
    /// Postgres (one per tenant writing at the moment).
    pub fn new(connector: Connector, max_conns: usize) -> Writer {
        let per_tenant = !connector.single_writer();
        Writer {
            connector,
            per_tenant,
            groups: Mutex::default(),
            conns: Mutex::default(),
            max_conns: if per_tenant { max_conns.max(1) } else { 1 },
            stats: Mutex::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        *lock(&self.stats)
    }

    /// Holds the writes of `tenant`'s group (all writes on SQLite) in their queue until the
    /// returned guard is dropped; they then run as one batch. For tests that need a batch
    /// of known content.
    #[doc(hidden)]
    pub fn pause(&self, tenant: &TenantId) -> Paused {
        let group = self.group(tenant);
        let mut st = lock(&group.state);
        while st.running {
            st = group
                .turn
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        st.running = true;
        drop(st);
        Paused { group }
    }

    /// How many writes wait in `tenant`'s group's queue.
    #[doc(hidden)]
    pub fn waiting(&self, tenant: &TenantId) -> usize {
        lock(&self.group(tenant).state).waiting
    }

    fn group(&self, tenant: &TenantId) -> Arc<Group> {
        let key = if self.per_tenant {
            tenant.clone()
        } else {
            TenantId::new("")
        };
        lock(&self.groups).entry(key).or_default().clone()
    }

    /// A batch connection: an idle one, else a new one while fewer than `max_conns` are
    /// open; None when all are in use.
    fn acquire(&self) -> Option<std::result::Result<Conn, StorageError>> {
        let mut conns = lock(&self.conns);
        if let Some(c) = conns.idle.pop() {
            return Some(Ok(c));
        }
        if conns.open >= self.max_conns {
            return None;
        }
        conns.open += 1;
        drop(conns);
        let c = self.connector.connect();
        if c.is_err() {
            lock(&self.conns).open -= 1;
        }
        Some(c)
    }

    fn release(&self, mut conn: Conn) {
        let unusable = conn.is_broken();
        let mut conns = lock(&self.conns);
        if unusable {
            conns.open -= 1;
        } else {
            conns.idle.push(conn);
        }
    }

    /// Runs `f` in the batch of its tenant's group (see the module comment); `own` is the
    /// request's connection, used only when no batch connection is free.
    pub(crate) fn write<T>(
        &self,
        svc: &Service,
        own: &mut Conn,
        journal: Journal,
        f: impl FnOnce(&mut Db<'_>, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        let group = self.group(&journal.tenant);
        let mut st = lock(&group.state);
        st.waiting += 1;
        while st.running {
            st = group
                .turn
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        st.waiting -= 1;
        st.running = true;
        let turn = (st.conn.take(), st.batch.is_some());
        drop(st);
        let mut conn = match turn {
            (Some(c), true) => c,
            (c, _) => {
                // No batch is open: open one (on this group's connection, if it kept one).
                let opened = match c.map(Ok).or_else(|| self.acquire()) {
                    None => {
                        self.free(&group, None);
                        return alone(svc, own, journal, f);
                    }
                    Some(Err(e)) => Err(e),
                    Some(Ok(mut c)) => match begin_lent(own, &mut c) {
                        Ok(()) => Ok(c),
                        Err(e) => {
                            self.release(c);
                            Err(e)
                        }
                    },
                };
                let c = match opened {
                    Ok(c) => c,
                    Err(e) => {
                        self.free(&group, None);
                        return Err(e.into());
                    }
                };
                lock(&group.state).batch = Some(Batch {
                    begun: std::time::Instant::now(),
                    journals: Vec::new(),
                    ran: 0,
                    outcome: Arc::default(),
                });
                c
            }
        };
        let mut j = journal;
        // A cancel of the request (its client gone) stops its change on the batch connection.
        let lent = own.lend_cancel(&conn);
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            conn.db().batch_write(|db| f(db, &mut j))
        }));
        drop(lent);
        let result = match ran {
            Ok(r) => r,
            Err(p) => {
                let why = StorageError::Backend("a write of the batch panicked".into());
                abandon(&group, conn, self, why);
                panic::resume_unwind(p);
            }
        };
        // A change that left the batch's connection unusable (lost, or a failed change whose
        // savepoint could not be rolled back, `Db::batch_write`): the batch cannot commit, and
        // whatever else ran on the connection would fail. It is abandoned: every change of it
        // answers 503 (nothing written, retry), this one with its own error.
        if conn.is_unusable() {
            let failed = || {
                StorageError::Connect(
                    "this write's batch could not be committed (its database connection was lost or left unusable); \
                     nothing of the batch was written"
                        .into(),
                )
            };
            abandon(&group, conn, self, failed());
            // This change answers its own error; one that held answers as the others do.
            return result.and_then(|_| Err(failed().into()));
        }
        // SQLite ends a statement it interrupts (deadline, gone client) by rolling back the
        // whole transaction, not only the change's savepoint, unless the statement kept a
        // statement journal: the batch may be gone. It is rolled back on purpose then, and
        // the batch's other changes answer 503 (nothing written, retry). A Postgres batch
        // survives a stopped statement: its savepoint rolls back that change alone.
        let stopped = matches!(
            &result,
            Err(Error::Storage(
                StorageError::Deadline | StorageError::Cancelled
            ))
        );
        if stopped && !self.per_tenant {
            abandon(&group, conn, self, StorageError::Deadline);
            return result;
        }

        let mut st = lock(&group.state);
        let state = &mut *st;
        let Some(batch) = state.batch.as_mut() else {
            // Cannot happen: whoever runs owns the open batch.
            drop(st);
            self.free(&group, Some(conn));
            return Err(Error::Storage(StorageError::Backend(
                "group commit: no open batch".into(),
            )));
        };
        if result.is_ok() {
            batch.journals.push(j);
        }
        batch.ran += 1;
        if state.waiting > 0 && batch.ran < MAX_BATCH {
            // Someone runs after this change and closes the batch (or hands it on).
            let outcome = batch.outcome.clone();
            state.conn = Some(conn);
            state.running = false;
            drop(st);
            group.turn.notify_one();
            let out = result?;
            outcome.wait()?;
            return Ok(out);
        }
        // Close the batch. `running` stays set: arrivals wait for the next one.
        let batch = state.batch.take();
        drop(st);
        let Some(batch) = batch else {
            self.free(&group, Some(conn));
            return Err(Error::Storage(StorageError::Backend(
                "group commit: no open batch".into(),
            )));
        };
        let closed = close(&mut conn, batch.journals);
        self.free(&group, Some(conn));
        let (tenants, queued) = match closed {
            Ok(closed) => {
                let mut stats = lock(&self.stats);
                stats.batches += 1;
                stats.changes += batch.ran as u64;
                stats.last = batch.ran;
                drop(stats);
                svc.metrics.observe_write(batch.ran, batch.begun.elapsed());
                batch.outcome.set(Ok(()));
                closed
            }
            Err(e) => {
                let e = Arc::new(e);
                batch.outcome.set(Err(e.clone()));
                result?;
                return Err(replay(&e).into());
            }
        };
        for tenant in &tenants {
            svc.signal.raise(tenant);
        }
        for tenant in &queued {
            svc.webhooks.queued(tenant);
        }
        result
    }

    /// Ends a turn: the connection back to the group (a batch is open) or to the writer, and
    /// the next waiting change runs.
    fn free(&self, group: &Group, conn: Option<Conn>) {
        let mut st = lock(&group.state);
        match conn {
            Some(c) if st.batch.is_some() => st.conn = Some(c),
            Some(c) => self.release(c),
            None => {}
        }
        st.running = false;
        drop(st);
        group.turn.notify_one();
    }
}

/// Opens a batch on `c`; a gone client's cancel (`own`'s) also ends its wait for the write
/// lock.
fn begin_lent(own: &Conn, c: &mut Conn) -> std::result::Result<(), StorageError> {
    let _lent = own.lend_cancel(c);
    c.begin()
}

/// A write on the request's own connection, in a transaction of its own (no batch
/// connection was free).
fn alone<T>(
    svc: &Service,
    own: &mut Conn,
    mut journal: Journal,
    f: impl FnOnce(&mut Db<'_>, &mut Journal) -> Result<T>,
) -> Result<T> {
    let tenant = journal.tenant.clone();
    let begun = std::time::Instant::now();
    let (out, queued) = own.write_tx(|db| {
        let out = f(db, &mut journal)?;
        let queued = journal.flush(db)?;
        Ok::<(T, bool), Error>((out, queued))
    })?;
    svc.metrics.observe_write(1, begun.elapsed());
    svc.signal.raise(&tenant);
    if queued {
        svc.webhooks.queued(&tenant);
    }
    Ok(out)
}

/// The tenants a batch wrote for (their long-poll waiters are woken), and those of them whose
/// journals queued deliveries.
type Closed = (Vec<TenantId>, Vec<TenantId>);

/// Appends the batch's journals (one append per tenant) and commits; returns who it wrote
/// for (`Closed`). On failure the batch is rolled back.
fn close(conn: &mut Conn, journals: Vec<Journal>) -> std::result::Result<Closed, StorageError> {
    let mut merged: Vec<Journal> = Vec::new();
    for j in journals {
        match merged.iter_mut().find(|m| m.tenant == j.tenant) {
            Some(m) => m.absorb(j),
            None => merged.push(j),
        }
    }
    let tenants: Vec<TenantId> = merged.iter().map(|j| j.tenant.clone()).collect();
    let mut queued = Vec::new();
    let flushed = (|| {
        let mut db = conn.db();
        for j in merged {
            let tenant = j.tenant.clone();
            if j.flush(&mut db)? {
                queued.push(tenant);
            }
        }
        Ok::<(), Error>(())
    })();
    if let Err(e) = flushed {
        let _ = conn.rollback_all();
        return Err(match e {
            Error::Storage(s) => s,
            other => StorageError::Backend(other.to_string().into()),
        });
    }
    conn.commit()?;
    Ok((tenants, queued))
}
