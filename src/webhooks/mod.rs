//! Webhook delivery: a dispatcher thread that claims due deliveries subscription by
//! subscription (round-robin), a pool of attempt threads that POST them with the Standard
//! Webhooks headers (`client`), and a supervisor that replaces any of these threads that
//! dies. Deliveries are rows, so they survive restarts; a claim is a lease (and
//! `FOR UPDATE SKIP LOCKED` on Postgres), so with several instances on one database each
//! delivery is attempted by one of them at a time. A subscription whose receiver keeps
//! failing is backed off as a whole (a circuit breaker, its state in the database), so its
//! backlog occupies no attempt thread. The destination policy (`policy`) is checked when a
//! subscription is registered and again, by the client's resolver, at every connection.
//! Runs beside the HTTP server and never inside a SCIM request.
//!
//! Every write of the delivery side (claim, record outcomes, prune) is made by the
//! dispatcher thread, through `dispatch`. Depends on storage, its own wire format (`wire`)
//! and `scim::time`, never on the use cases: they wake the dispatcher through `Hub::queued`.

pub mod client;
mod dispatch;
pub mod policy;
mod supervise;
pub mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::storage::deliveries::ClaimedRow;
use crate::storage::pool::Pool;
use crate::storage::{StorageError, TenantId};
pub use client::{AttemptHook, Trust};
use dispatch::Msg;
pub use policy::Policy;
use wire::Event;

/// Why an attempt failed, as the tenant sees it (`lastError`): a few words that tell whether
/// the receiver answered and how, and nothing more of the network behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within `--webhook-timeout-ms` (name resolution, connection, TLS, answer).
    Timeout,
    /// No HTTP answer: refused, reset, unknown host name, or not HTTP.
    Connect,
    /// The TLS handshake failed (certificate not trusted, wrong name, no TLS there).
    Tls,
    /// The receiver answered this non-2xx status (a 3xx included: redirects are never
    /// followed).
    Http(u16),
    /// Every address of the host is refused by `--webhook-allowed-hosts`.
    Refused,
    /// Ours, not the receiver's: the attempt panicked, or the event or secret does not
    /// decode (logged in full). Says nothing about the receiver or its network.
    Internal,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timeout"),
            Failure::Connect => f.write_str("connect"),
            Failure::Tls => f.write_str("tls"),
            Failure::Http(status) => write!(f, "http {status}"),
            Failure::Refused => f.write_str("refused by destination policy"),
            Failure::Internal => f.write_str("internal error"),
        }
    }
}

/// The retry schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub timeout: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub horizon: Duration,
    pub poll: Duration,
}

impl Schedule {
    /// The delay before attempt `failures + 1`: exponential, capped, with jitter (a random
    /// point in the upper half, so retries of many deliveries spread out).
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .backoff
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(30)));
        let d = exp.min(self.max_backoff);
        let half = d / 2;
        half + half.mul_f64(rng.gen::<f64>())
    }

    /// The lease a claim takes: longer than an attempt plus the wait before a failure is
    /// recorded, so a live dispatcher never loses it.
    fn lease(&self) -> Duration {
        self.timeout * 3 + Duration::from_secs(5)
    }
}

/// How this instance delivers.
#[derive(Clone)]
pub struct Settings {
    pub schedule: Schedule,
    /// Attempts in flight at once in this instance (`--webhook-concurrency`); 0 delivers
    /// nothing here.
    pub concurrency: usize,
    /// How long delivered and dead deliveries are kept after they settled.
    pub retention: Duration,
    /// How often settled deliveries past `retention` are deleted.
    pub prune_every: Duration,
    /// For tests only: see `client::AttemptHook`.
    pub hook: Option<AttemptHook>,
}

impl Settings {
    /// The most attempts one subscription may have in flight (or waiting to be recorded) in
    /// this instance: a quarter of the attempt threads, so a receiver that hangs holds at
    /// most that many until its circuit opens, and the rest serve everyone else.
    pub fn per_subscription(&self) -> usize {
        (self.concurrency / 4).max(1)
    }
}

/// What the use cases and the delivery threads share: the destination policy (checked when
/// a subscription is registered, and at every delivery), the trust for https receivers, and
/// the wake-up of this process's dispatchers.
pub struct Hub {
    pub policy: Arc<Policy>,
    pub trust: Trust,
    listeners: Mutex<Vec<Listener>>,
    /// How many commits queued deliveries (each one a wake-up).
    wakeups: AtomicU64,
    /// This process's delivery threads: how many `start` runs (0: delivery is off here),
    /// and how many are alive (the supervisor counts them).
    expected: AtomicUsize,
    running: Arc<AtomicUsize>,
}

struct Listener {
    tx: Sender<Msg>,
    /// A wake-up is on its way and not yet taken: later ones add nothing.
    pending: Arc<AtomicBool>,
}

impl Hub {
    pub fn new(policy: Policy, trust: Trust) -> Hub {
        Hub {
            policy: Arc::new(policy),
            trust,
            listeners: Mutex::new(Vec::new()),
            wakeups: AtomicU64::new(0),
            expected: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// This process's delivery threads: (expected, running). (0, 0) when delivery was not
    /// started here (`--webhook-concurrency 0`); running falls short of expected while a
    /// dead thread waits for its replacement, and to 0 at shutdown.
    pub fn threads(&self) -> (usize, usize) {
        (
            self.expected.load(Ordering::SeqCst),
            self.running.load(Ordering::SeqCst),
        )
    }

    /// How many commits of this process queued deliveries so far.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::SeqCst)
    }

    /// Called after a commit that queued deliveries for `tenant`: wakes the dispatchers of
    /// this process at once (other instances find the rows by polling). Commits that queued
    /// none call nothing, so tenants without webhooks cost the delivery side nothing.
    pub fn queued(&self, _tenant: &TenantId) {
        self.wakeups.fetch_add(1, Ordering::SeqCst);
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listeners
            .retain(|l| l.pending.swap(true, Ordering::SeqCst) || l.tx.send(Msg::Queued).is_ok());
    }

    fn listen(&self, tx: Sender<Msg>) -> Arc<AtomicBool> {
        let pending = Arc::new(AtomicBool::new(false));
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Listener {
                tx,
                pending: pending.clone(),
            });
        pending
    }
}

impl Default for Hub {
    /// The default policy (`external`) and no trusted root: for callers that deliver nothing.
    fn default() -> Hub {
        Hub::new(Policy::default(), Trust::none())
    }
}

/// The body a delivery POSTs: the feed event, exactly as `GET /api/v1/events` shows it.
pub fn body_of(d: &ClaimedRow) -> Result<String, StorageError> {
    let event = Event::from_feed(&d.event)?;
    serde_json::to_string(&event).map_err(|e| StorageError::Backend(Box::new(e)))
}

/// The running delivery threads; dropping this asks them to stop.
pub struct Workers {
    stop: Arc<AtomicBool>,
    inbox: Option<Sender<Msg>>,
    supervisor: Option<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn ask_to_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(tx) = &self.inbox {
            let _ = tx.send(Msg::Stop);
        }
    }

    /// Stops claiming, lets the attempts in flight finish (at most one timeout), records
    /// their outcomes and waits for every thread.
    pub fn shutdown(mut self) {
        self.ask_to_stop();
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.ask_to_stop();
    }
}

/// Starts this instance's delivery: one dispatcher and `settings.concurrency` attempt
/// threads on `pool`, woken by `hub`, under a supervisor. Nothing when the concurrency is 0.
pub fn start(pool: Pool, hub: Arc<Hub>, settings: Settings) -> Workers {
    let stop = Arc::new(AtomicBool::new(false));
    if settings.concurrency == 0 {
        return Workers {
            stop,
            inbox: None,
            supervisor: None,
        };
    }
    let (inbox, rx) = mpsc::channel();
    let pending = hub.listen(inbox.clone());
    let client = client::Client::new(
        settings.schedule.timeout,
        settings.concurrency,
        &hub.trust,
        hub.policy.clone(),
        settings.hook.clone(),
    );
    let (jobs, job_rx) = mpsc::channel::<dispatch::Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let rx = Arc::new(Mutex::new(rx));
    let finished = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    {
        let (stop, finished, settings) = (stop.clone(), finished.clone(), settings.clone());
        threads.push(supervise::Body::new("webhooks-dispatch", move || {
            // A replaced dispatcher takes over the inbox (a poisoned lock only says that its
            // predecessor panicked holding it).
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            dispatch::run(&pool, &settings, &jobs, &rx, &pending, (&stop, &finished));
        }));
    }
    for i in 0..settings.concurrency {
        let (client, job_rx, inbox, finished) = (
            client.clone(),
            job_rx.clone(),
            inbox.clone(),
            finished.clone(),
        );
        threads.push(supervise::Body::new(&format!("webhooks-{i}"), move || {
            dispatch::attempts(&client, &job_rx, &inbox, &finished)
        }));
    }
    hub.expected.store(threads.len(), Ordering::SeqCst);
    let supervisor = supervise::start(threads, stop.clone(), hub.running.clone());
    Workers {
        stop,
        inbox: Some(inbox),
        supervisor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = Schedule {
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            horizon: Duration::from_secs(60),
            poll: Duration::from_millis(100),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..20 {
                let d = s.delay(failures, &mut rng).as_millis();
                assert!(d >= full / 2 && d <= full, "failures {failures}: {d} ms");
            }
        }
    }

    #[test]
    fn a_wake_up_is_sent_once_until_taken() {
        let hub = Hub::default();
        let (tx, rx) = mpsc::channel();
        let pending = hub.listen(tx);
        let t = TenantId::from("t");
        hub.queued(&t);
        hub.queued(&t);
        assert!(matches!(rx.try_recv(), Ok(Msg::Queued)));
        assert!(rx.try_recv().is_err(), "coalesced");
        pending.store(false, Ordering::SeqCst);
        hub.queued(&t);
        assert!(matches!(rx.try_recv(), Ok(Msg::Queued)));
        drop(rx);
        pending.store(false, Ordering::SeqCst);
        hub.queued(&t);
        assert!(
            hub.listeners.lock().unwrap().is_empty(),
            "a gone listener is dropped"
        );
    }
}
