//! The dispatcher (one thread per instance) and the attempt threads' loop. The dispatcher
//! is the one place the delivery side writes: it claims due deliveries subscription by
//! subscription in round-robin turns (`claim_round`), hands them to the attempt threads,
//! records their outcomes with the circuit breaker's count (`record`), and deletes settled
//! deliveries past the retention (`prune`). Each of these is one storage function per
//! statement, run in a write transaction of its own, so they can be routed through a
//! single writer later without touching the rest.
//!
//! Fairness: a subscription never has more than `Settings::per_subscription` attempts in
//! flight here, every round gives each due subscription a turn before any gets a second
//! one, and a subscription whose circuit is open is not even looked at, so a dead receiver
//! holds no attempt thread while its backlog waits.
//!
//! What a tenant can learn through `lastError` and the delivery times is bounded on
//! purpose: a failed attempt is recorded `timeout` after it started, whatever failed and
//! however fast, with the time it started; so a closed port (refused at once), a silent
//! one (timed out) and a slow HTTP error look the same in time, and differ only by the
//! words of `Failure`.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Client;
use super::{Failure, Settings};
use crate::scim::time::now_micros;
use crate::storage::deliveries::{self, ClaimedRow, DueWebhook, Turn};
use crate::storage::pool::Pool;
use crate::storage::StorageError;

/// Consecutive failed attempts after which a subscription's circuit opens: its deliveries
/// are not claimed for a cooldown (the retry schedule's delay, growing with each failed
/// probe), then one probe is.
pub const BREAKER_THRESHOLD: i32 = 5;

/// Settled deliveries deleted per statement, and statements per pruning pass (so a pass
/// never holds the writer for long; the next pass goes on).
const PRUNE_CHUNK: i64 = 1000;
const PRUNE_CHUNKS_PER_PASS: usize = 100;

/// What the dispatcher hears.
pub(super) enum Msg {
    /// A commit queued deliveries.
    Queued,
    /// An attempt ended.
    Done(Box<Done>),
    Stop,
}

/// A claimed delivery for an attempt thread.
pub(super) struct Job {
    row: ClaimedRow,
}

/// An attempt's outcome.
pub(super) struct Done {
    row: ClaimedRow,
    /// When it started (microseconds), and the instant.
    started_at: i64,
    started: Instant,
    outcome: Result<(), Failure>,
}

/// An attempt thread: takes claimed deliveries, attempts each (a panic is a failed attempt
/// like any other, never the end of the thread), reports the outcome. Ends once the
/// dispatcher has ended for good (it ends only when no attempt is left in flight, so no job
/// can be left behind).
pub(super) fn attempts(
    client: &Client,
    jobs: &Mutex<Receiver<Job>>,
    inbox: &Sender<Msg>,
    finished: &AtomicBool,
) {
    loop {
        let next = jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv_timeout(Duration::from_millis(200));
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) if !finished.load(Ordering::SeqCst) => continue,
            Err(_) => return,
        };
        let (started, started_at) = (Instant::now(), now_micros());
        let outcome =
            catch_unwind(AssertUnwindSafe(|| client.attempt(&job.row))).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!(
                    "webhook delivery {} of subscription {}: the attempt panicked: {what}",
                    job.row.id,
                    job.row.webhook_id
                );
                Err(Failure::Internal)
            });
        let done = Done {
            row: job.row,
            started_at,
            started,
            outcome,
        };
        if inbox.send(Msg::Done(Box::new(done))).is_err() {
            return;
        }
    }
}

/// Sets `finished` when the dispatcher ends while delivery is stopping, however it ends
/// (a panic then included): the attempt threads may end too. A dispatcher that dies before
/// that is replaced, and the attempt threads wait for its successor.
struct Finish<'a> {
    stop: &'a AtomicBool,
    finished: &'a AtomicBool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if self.stop.load(Ordering::SeqCst) {
            self.finished.store(true, Ordering::SeqCst);
        }
    }
}

/// The dispatcher's loop, until delivery stops and every attempt in flight is recorded.
pub(super) fn run(
    pool: &Pool,
    settings: &Settings,
    jobs: &Sender<Job>,
    inbox: &Receiver<Msg>,
    pending: &AtomicBool,
    (stop, finished): (&AtomicBool, &AtomicBool),
) {
    let _finish = Finish { stop, finished };
    let mut d = Dispatcher::new(pool, settings, jobs);
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        while let Ok(m) = inbox.try_recv() {
            d.take(m, pending);
        }
        d.record_due(stopping);
        if stopping {
            if d.active == 0 && d.held.is_empty() {
                return;
            }
        } else {
            d.maintain();
            if d.look && d.active < settings.concurrency {
                d.claim_round();
            }
        }
        let busy = stopping || !d.look || d.active >= settings.concurrency;
        let wait = if busy { d.until_next() } else { Duration::ZERO };
        match inbox.recv_timeout(wait) {
            Ok(m) => d.take(m, pending),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

struct Dispatcher<'a> {
    pool: &'a Pool,
    s: &'a Settings,
    jobs: &'a Sender<Job>,
    /// Attempts running now.
    active: usize,
    /// Per subscription: attempts running or waiting to be recorded.
    busy: HashMap<String, usize>,
    /// Failed attempts waiting for their recording time.
    held: Vec<Done>,
    /// Outcomes to record now.
    ready: Vec<Done>,
    /// The last subscription of the previous round: the next starts after it.
    cursor: String,
    /// Whether due work may be waiting (a wake-up, a freed slot, the poll).
    look: bool,
    next_poll: Instant,
    next_prune: Instant,
    rng: rand::rngs::ThreadRng,
}

impl<'a> Dispatcher<'a> {
    fn new(pool: &'a Pool, s: &'a Settings, jobs: &'a Sender<Job>) -> Dispatcher<'a> {
        let now = Instant::now();
        Dispatcher {
            pool,
            s,
            jobs,
            active: 0,
            busy: HashMap::new(),
            held: Vec::new(),
            ready: Vec::new(),
            cursor: String::new(),
            look: true,
            next_poll: now + s.schedule.poll,
            next_prune: now,
            rng: rand::thread_rng(),
        }
    }

    fn take(&mut self, m: Msg, pending: &AtomicBool) {
        match m {
            Msg::Queued => {
                pending.store(false, Ordering::SeqCst);
                self.look = true;
            }
            Msg::Done(done) => {
                let done = *done;
                self.active = self.active.saturating_sub(1);
                self.look = true;
                if done.outcome.is_ok() {
                    self.ready.push(done);
                } else {
                    self.held.push(done);
                }
            }
            Msg::Stop => {}
        }
    }

    /// How long to sleep: until the next poll, pruning or held failure is due.
    fn until_next(&self) -> Duration {
        let timeout = self.s.schedule.timeout;
        let next = self
            .held
            .iter()
            .map(|d| d.started + timeout)
            .chain([self.next_poll, self.next_prune])
            .min()
            .unwrap_or(self.next_poll);
        next.saturating_duration_since(Instant::now())
    }

    /// The poll (other instances' deliveries, retries coming due) and the pruning.
    fn maintain(&mut self) {
        let now = Instant::now();
        if now >= self.next_poll {
            self.look = true;
            self.next_poll = now + self.s.schedule.poll;
        }
        if now >= self.next_prune {
            self.next_prune = now + self.s.prune_every;
            if let Err(e) = prune(self.pool, self.s) {
                log::error!("cannot prune settled webhook deliveries: {e}");
            }
        }
    }

    /// Records the successes, and the failures whose time has come (all of them when
    /// stopping).
    fn record_due(&mut self, stopping: bool) {
        let timeout = self.s.schedule.timeout;
        let now = Instant::now();
        let (due, kept): (Vec<Done>, Vec<Done>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|d| stopping || d.started + timeout <= now);
        self.held = kept;
        self.ready.extend(due);
        if self.ready.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.ready);
        for d in &batch {
            if let Some(n) = self.busy.get_mut(&d.row.webhook_id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.busy.remove(&d.row.webhook_id);
                }
            }
        }
        if let Err(e) = record(self.pool, self.s, &batch, &mut self.rng) {
            // Their leases run out and they are attempted again (at least once).
            log::error!("cannot record {} webhook deliveries: {e}", batch.len());
        }
    }

    /// One round: the due subscriptions after the cursor, then from the start, each given
    /// one attempt slot in turn while slots are free (at most `per_subscription` each);
    /// a subscription whose circuit was open gets one probe. Claimed in one transaction,
    /// handed to the attempt threads.
    fn claim_round(&mut self) {
        let free = self.s.concurrency.saturating_sub(self.active);
        let cap = self.s.per_subscription();
        let skip: Vec<&str> = self
            .busy
            .iter()
            .filter(|(_, n)| **n >= cap)
            .map(|(id, _)| id.as_str())
            .collect();
        let now = now_micros();
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        let due = match due_webhooks(self.pool, now, &self.cursor, &skip, limit) {
            Ok(due) => due,
            Err(e) => {
                log::error!("cannot look for due webhook deliveries: {e}");
                self.look = false;
                return;
            }
        };
        if due.is_empty() {
            self.look = false;
            return;
        }
        // Quotas: one each in turn, while slots are free and a subscription has room.
        let mut quota: Vec<usize> = vec![0; due.len()];
        let mut left = free;
        while left > 0 {
            let before = left;
            for (i, w) in due.iter().enumerate() {
                let room = if w.failures >= BREAKER_THRESHOLD {
                    1
                } else {
                    cap.saturating_sub(self.busy.get(&w.id).copied().unwrap_or(0))
                };
                if left > 0 && quota[i] < room {
                    quota[i] += 1;
                    left -= 1;
                }
            }
            if left == before {
                break;
            }
        }
        if let Some(last) = due.last() {
            self.cursor = last.id.clone();
        }
        let lease = i64::try_from(self.s.schedule.lease().as_micros()).unwrap_or(i64::MAX);
        let plan: Vec<(&DueWebhook, usize)> =
            due.iter().zip(quota).filter(|(_, q)| *q > 0).collect();
        let claimed = match claim(self.pool, &plan, now, now.saturating_add(lease)) {
            Ok(rows) => rows,
            Err(e) => {
                log::error!("cannot claim webhook deliveries: {e}");
                self.look = false;
                return;
            }
        };
        // Nothing claimable (every due delivery waits behind an earlier one of its
        // account): wait for an outcome, a wake-up or the poll before looking again.
        self.look = !claimed.is_empty();
        for row in claimed {
            *self.busy.entry(row.webhook_id.clone()).or_default() += 1;
            self.active += 1;
            if self.jobs.send(Job { row }).is_err() {
                // No attempt thread is left (delivery is stopping): the lease runs out.
                self.active = self.active.saturating_sub(1);
            }
        }
    }
}

/// The due subscriptions of a round-robin turn: after `cursor`, then up to it. Read-only.
fn due_webhooks(
    pool: &Pool,
    now: i64,
    cursor: &str,
    skip: &[&str],
    limit: i64,
) -> Result<Vec<DueWebhook>, StorageError> {
    let mut conn = pool.get()?;
    conn.read_tx(|db| {
        let mut due = deliveries::due_webhooks(db, now, Turn::After(cursor), skip, limit)?;
        let got = i64::try_from(due.len()).unwrap_or(limit);
        if got < limit && !cursor.is_empty() {
            due.extend(deliveries::due_webhooks(
                db,
                now,
                Turn::UpTo(cursor),
                skip,
                limit - got,
            )?);
        }
        Ok(due)
    })
}

/// Claims each planned subscription's quota in one write transaction; a half-open one's
/// probe only if no other claimer took it first.
fn claim(
    pool: &Pool,
    plan: &[(&DueWebhook, usize)],
    now: i64,
    lease_until: i64,
) -> Result<Vec<ClaimedRow>, StorageError> {
    let mut conn = pool.get()?;
    conn.write_tx(|db| {
        let mut rows = Vec::new();
        for (w, quota) in plan {
            let probe = w.failures >= BREAKER_THRESHOLD;
            if probe && !deliveries::take_probe(db, &w.id, now, lease_until)? {
                continue;
            }
            let limit = i64::try_from(*quota).unwrap_or(1);
            let got = deliveries::claim(db, &w.id, now, lease_until, limit)?;
            if probe && got.is_empty() {
                // Nothing to probe with yet: give the probe back.
                deliveries::breaker_open(db, &w.id, now)?;
            }
            rows.extend(got);
        }
        Ok(rows)
    })
}

/// Records a batch of outcomes in one transaction: delivered; or failed and retried later
/// with backoff, or (past the horizon) a dead letter; and each subscription's breaker.
fn record(
    pool: &Pool,
    s: &Settings,
    batch: &[Done],
    rng: &mut impl rand::Rng,
) -> Result<(), StorageError> {
    let mut conn = pool.get()?;
    let now = now_micros();
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let horizon = micros(s.schedule.horizon);
    conn.write_tx(|db| {
        let mut closed = HashSet::new();
        for d in batch {
            let (row, webhook) = (&d.row, d.row.webhook_id.as_str());
            let failure = match d.outcome {
                Ok(()) => {
                    deliveries::delivered(db, &[row.id.as_str()], d.started_at, now)?;
                    if closed.insert(webhook) {
                        deliveries::breaker_closed(db, webhook)?;
                    }
                    continue;
                }
                Err(f) => f,
            };
            closed.remove(webhook);
            let word = failure.to_string();
            let failures = u32::try_from(row.attempts).unwrap_or(0).saturating_add(1);
            let next = now.saturating_add(micros(s.schedule.delay(failures, rng)));
            let next = (next <= row.created.saturating_add(horizon)).then_some(next);
            if next.is_none() {
                log::warn!(
                    "webhook delivery {} of event {} is a dead letter after {failures} attempts: {word}",
                    row.id,
                    row.event.id
                );
            }
            deliveries::failed(db, &row.id, d.started_at, now, next, &word)?;
            let Some(count) = deliveries::breaker_failed(db, webhook)? else {
                continue; // the subscription was deleted meanwhile
            };
            if count >= BREAKER_THRESHOLD {
                let trips = u32::try_from(count - BREAKER_THRESHOLD + 1).unwrap_or(u32::MAX);
                let cooldown = s.schedule.delay(trips, rng);
                deliveries::breaker_open(db, webhook, now.saturating_add(micros(cooldown)))?;
                if count == BREAKER_THRESHOLD {
                    log::warn!(
                        "webhook subscription {webhook} (tenant {}): {count} failed attempts in a row \
                         (last: {word}); its deliveries wait, one probe at a time",
                        row.tenant_id
                    );
                }
                // While it is down, what passed the horizon is not retried: dead letters.
                let expired =
                    deliveries::expire(db, webhook, now.saturating_sub(horizon), now, &word)?;
                if expired > 0 {
                    log::warn!(
                        "webhook subscription {webhook}: {expired} deliveries past the retry horizon are dead letters"
                    );
                }
            }
        }
        Ok(())
    })
}

/// Deletes settled deliveries older than the retention, a chunk per transaction.
fn prune(pool: &Pool, s: &Settings) -> Result<(), StorageError> {
    let retention = i64::try_from(s.retention.as_micros()).unwrap_or(i64::MAX);
    let before = now_micros().saturating_sub(retention);
    let mut conn = pool.get()?;
    let mut total = 0;
    for _ in 0..PRUNE_CHUNKS_PER_PASS {
        let n = conn.write_tx(|db| deliveries::prune(db, before, PRUNE_CHUNK))?;
        total += n;
        if i64::try_from(n).unwrap_or(0) < PRUNE_CHUNK {
            break;
        }
    }
    if total > 0 {
        log::info!("pruned {total} settled webhook deliveries");
    }
    Ok(())
}
