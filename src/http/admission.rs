//! Fair admission: a tenant runs at most `--tenant-max-concurrency` requests at once (by
//! default half the database pool), so one tenant's expensive requests leave connections and
//! blocking threads to everyone else. A request past its tenant's share waits in a short
//! queue (without a database connection) for one of the tenant's requests to end; when the
//! queue is full or the wait runs out it is answered 429 with `Retry-After`. Other tenants
//! are not affected. Counted in this process.
//!
//! CPU priority: a request admitted while its tenant already runs
//! `--tenant-low-priority-after` others of its own (a tenant over its fair share) runs its use
//! case on a low-priority thread (`LowPool`: Linux's `SCHED_IDLE` class, or nice +`LOW_NICE`
//! where that is refused), so the cores go first to tenants with fewer requests in flight; the
//! heavy tenant still gets every idle cycle. A thread of `SCHED_IDLE` runs only on a core no
//! other thread wants, and a waking thread of the normal class takes its core at once (a nice
//! value only shares the core by weight, so a waking request could wait a scheduler slice of
//! a few milliseconds behind a low-priority one). An unprivileged process cannot raise a
//! thread's priority back, so those threads are a pool of their own, made at start, and never
//! run anything else.
//!
//! On Postgres a read's work runs in the database's own processes, whose priority the server
//! cannot lower: there the low-priority reads take turns instead (`Lane`, `--db-low-priority-
//! slots`). While another tenant runs a request at normal priority (one admitted while its
//! tenant ran fewer than `--tenant-low-priority-after` others, or a write), or ran one within
//! `LANE_NEIGHBOUR_WINDOW`, at most that many of them run at once, and the others wait
//! without a connection (`http::front::enter`); a tenant alone, or tenants whose requests all
//! run at low priority, are not held back.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::storage::TenantId;

/// How long a request past its tenant's share waits for a slot.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How many requests of one tenant may wait, per slot of its share: with the default share of
/// 4, an identity provider's 32 concurrent connections wait their turn instead of being
/// turned away (4 per slot answered 429 to 12 of 32 clients on an idle server).
pub const QUEUE_PER_SLOT: usize = 16;
/// `Retry-After` (seconds) of a request its tenant's share turned away.
pub const RETRY_AFTER: u64 = 1;
/// How much lower (in nice steps) the low-priority threads run where `SCHED_IDLE` is refused:
/// a thread at nice +10 gets about a tenth of the CPU time of a thread at nice 0 that wants it
/// too.
pub const LOW_NICE: i32 = 10;
/// How recently another tenant must have run a request at normal priority for a tenant's
/// low-priority reads to take turns (`Lane`): a client reading one resource after another is
/// between requests most of the time, and its next request must find a core free.
pub const LANE_NEIGHBOUR_WINDOW: Duration = Duration::from_secs(1);

/// The requests in flight and waiting per tenant.
pub struct Admission {
    max: usize,
    state: Mutex<HashMap<TenantId, Count>>,
    /// A request admitted while its tenant runs this many others runs on `low` (0: never).
    low_after: usize,
    low: Option<LowPool>,
    /// Where the low-priority reads take turns (Postgres; None: they do not).
    lane: Option<Lane>,
}

#[derive(Default)]
struct Count {
    running: usize,
    waiting: usize,
    /// The tenant's own waiters wait on it: an ending request wakes one of them, not every
    /// waiter of every tenant (with 24 waiting, each end cost 24 wake-ups and 23 went back
    /// to sleep: a seventh of the CPU of a one-tenant run at 32 clients, `perf record`).
    freed: Arc<Condvar>,
}

impl Admission {
    /// At most `max` requests of one tenant at once (at least 1), and `QUEUE_PER_SLOT` times
    /// as many waiting.
    pub fn new(max: usize) -> Admission {
        Admission::with_low_priority(max, 0, 0)
    }

    /// `new`, and a request admitted while its tenant runs `after` others of its own (0: never)
    /// runs on one of `threads` low-priority threads (made here; none: no priority change).
    pub fn with_low_priority(max: usize, after: usize, threads: usize) -> Admission {
        let low = (after > 0 && threads > 0)
            .then(|| LowPool::start(threads))
            .flatten();
        Admission {
            max: max.max(1),
            state: Mutex::default(),
            low_after: after,
            low,
            lane: None,
        }
    }

    /// At most `slots` of the low-priority reads (of every tenant) run at once while another
    /// tenant than theirs runs requests at normal priority (0: no limit): for a backend whose
    /// statements run in the database's processes, out of the reach of `LowPool`. A read
    /// waits for its turn up to `QUEUE_WAIT`, then runs anyway: it was admitted, this only
    /// orders it.
    pub fn with_db_lane(mut self, slots: usize) -> Admission {
        self.lane = (slots > 0 && self.low_after > 0)
            .then(|| Lane::new(slots, QUEUE_WAIT, LANE_NEIGHBOUR_WINDOW));
        self
    }

    /// Runs `job` for the request holding `slot` and waits for it (blocking: call it off the
    /// async executor): on a low-priority thread when it only `reads` and its tenant ran
    /// `low_after` others as it was admitted, else on this thread. Writes keep their priority:
    /// a write may lead a batch or hold SQLite's write lock for other tenants' writes, which
    /// must not wait for a deprioritised thread. Err when the job panicked on the
    /// low-priority thread. Take the request's `turn` first, and hold it until this returns.
    pub fn run<R, J>(&self, slot: &Slot, reads: bool, job: J) -> Result<R, Lost>
    where
        R: Send + 'static,
        J: FnOnce() -> R + Send + 'static,
    {
        match &self.low {
            Some(pool) if self.is_low(slot, reads) => pool.run(job),
            _ => Ok(job()),
        }
    }

    /// Whether the request holding `slot` runs at low priority.
    fn is_low(&self, slot: &Slot, reads: bool) -> bool {
        reads && self.low_after > 0 && slot.others >= self.low_after
    }

    /// The request's turn in the lane (`with_db_lane`), to hold while its job runs: for a
    /// low-priority read, one of the lane's slots when another tenant is active, if one is
    /// free; None when it must wait for one (`wait_turn`, without holding a connection).
    /// A request at normal priority marks its tenant active until it ends and for
    /// `LANE_NEIGHBOUR_WINDOW` after.
    pub fn turn(&self, slot: &Slot, reads: bool) -> Option<Turn<'_>> {
        let Some(lane) = &self.lane else {
            return Some(Turn(None));
        };
        if self.is_low(slot, reads) {
            lane.try_turn(&slot.tenant)
        } else {
            Some(lane.normal(&slot.tenant))
        }
    }

    /// The request's turn (`turn`), waiting for one when none is free: until `until` (the
    /// request's one deadline for its slot and its turn), the lane's wait (5 s) or `gone`
    /// (the client went away), whichever comes first; then the read runs without one: it was
    /// admitted, the turn only orders it.
    pub fn wait_turn(
        &self,
        slot: &Slot,
        reads: bool,
        until: Instant,
        gone: impl Fn() -> bool,
    ) -> Turn<'_> {
        match &self.lane {
            Some(lane) if self.is_low(slot, reads) => lane.wait_turn(&slot.tenant, until, gone),
            Some(lane) => lane.normal(&slot.tenant),
            None => Turn(None),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// How many low-priority reads may run at once while another tenant is active (0: no
    /// lane, they run as admitted).
    pub fn db_lane_slots(&self) -> usize {
        self.lane.as_ref().map_or(0, |l| l.slots)
    }

    /// How many requests of `tenant` run now.
    pub fn running(&self, tenant: &TenantId) -> usize {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.get(tenant).map_or(0, |c| c.running)
    }

    /// How many requests of `tenant` wait for a slot now.
    pub fn waiting(&self, tenant: &TenantId) -> usize {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.get(tenant).map_or(0, |c| c.waiting)
    }

    /// A slot of `tenant`'s at once, or None when its share is taken.
    pub fn try_admit(self: &Arc<Self>, tenant: &TenantId) -> Option<Slot> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let c = s.entry(tenant.clone()).or_default();
        (c.running < self.max).then(|| {
            c.running += 1;
            self.slot(tenant, c.running - 1)
        })
    }

    /// A slot of `tenant`'s, waiting until `until` for one (blocking: call it off the async
    /// executor); None when the queue is full or the wait ran out.
    pub fn admit(self: &Arc<Self>, tenant: &TenantId, until: Instant) -> Option<Slot> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let c = s.entry(tenant.clone()).or_default();
            if c.running < self.max {
                c.running += 1;
                return Some(self.slot(tenant, c.running - 1));
            }
            if c.waiting >= self.max * QUEUE_PER_SLOT {
                return None;
            }
            c.waiting += 1;
        }
        loop {
            let now = Instant::now();
            let c = s.entry(tenant.clone()).or_default();
            if c.running < self.max {
                c.waiting -= 1;
                c.running += 1;
                return Some(self.slot(tenant, c.running - 1));
            }
            if now >= until {
                c.waiting -= 1;
                return None;
            }
            // The entry stays while this request waits (`waiting` > 0), and so does its
            // condition variable.
            let freed = c.freed.clone();
            s = freed
                .wait_timeout(s, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn slot(self: &Arc<Self>, tenant: &TenantId, others: usize) -> Slot {
        Slot {
            admission: self.clone(),
            tenant: tenant.clone(),
            others,
        }
    }
}

/// One running request of a tenant's; its end frees the slot.
pub struct Slot {
    admission: Arc<Admission>,
    tenant: TenantId,
    /// How many other requests of the tenant ran when this one was admitted.
    others: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        let mut s = a.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Only a tenant's own waiters can take its slot: no wake-up when it has none.
        let mut wake = None;
        if let Some(c) = s.get_mut(&self.tenant) {
            c.running = c.running.saturating_sub(1);
            wake = (c.waiting > 0).then(|| c.freed.clone());
            if c.running == 0 && c.waiting == 0 {
                s.remove(&self.tenant);
            }
        }
        drop(s);
        // One slot is free: one waiter takes it. A waiter woken while a new request took the
        // slot first waits again, and that request's end wakes the next.
        if let Some(freed) = wake {
            freed.notify_one();
        }
    }
}

/// The turns of the low-priority reads where their work runs in the database's processes
/// (`Admission::with_db_lane`).
struct Lane {
    slots: usize,
    /// How long a read waits for its turn before it runs anyway.
    wait: Duration,
    /// How long after its request at normal priority another tenant still counts as active.
    window: Duration,
    state: Mutex<LaneState>,
    freed: Condvar,
}

#[derive(Default)]
struct LaneState {
    /// Reads running on a turn.
    running: usize,
    /// Requests at normal priority running now, per tenant.
    normal: HashMap<TenantId, usize>,
    /// The two tenants whose request at normal priority started or ended last (distinct),
    /// and when: the latest of them that is not a given tenant is the latest other such
    /// tenant.
    recent: [Option<(TenantId, Instant)>; 2],
}

impl LaneState {
    /// Whether a tenant other than `tenant` runs a request at normal priority, or ran one
    /// within `window`.
    fn neighbour(&self, tenant: &TenantId, now: Instant, window: Duration) -> bool {
        self.normal.keys().any(|t| t != tenant)
            || self
                .recent
                .iter()
                .flatten()
                .find(|(t, _)| t != tenant)
                .is_some_and(|(_, at)| now.duration_since(*at) < window)
    }

    /// `tenant`'s request at normal priority starts or ends now.
    fn seen(&mut self, tenant: &TenantId, now: Instant) {
        match &mut self.recent[0] {
            Some((t, at)) if t == tenant => *at = now,
            _ => {
                self.recent[1] = self.recent[0].take();
                self.recent[0] = Some((tenant.clone(), now));
            }
        }
    }
}

impl Lane {
    fn new(slots: usize, wait: Duration, window: Duration) -> Lane {
        Lane {
            slots,
            wait,
            window,
            state: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request of `tenant` at normal priority (one within `--tenant-low-priority-after`, or
    /// a write) starts: the tenant is active until its `Turn` ends.
    fn normal(&self, tenant: &TenantId) -> Turn<'_> {
        let mut s = self.lock();
        match s.normal.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                s.normal.insert(tenant.clone(), 1);
            }
        }
        s.seen(tenant, Instant::now());
        Turn(Some((self, Held::Normal(tenant.clone()))))
    }

    /// A low-priority read's turn as things stand: none needed when no other tenant is active,
    /// a slot when one is free, else None (it must wait).
    fn take(&self, s: &mut LaneState, tenant: &TenantId) -> Option<Turn<'_>> {
        if !s.neighbour(tenant, Instant::now(), self.window) {
            return Some(Turn(None));
        }
        (s.running < self.slots).then(|| {
            s.running += 1;
            Turn(Some((self, Held::Slot)))
        })
    }

    /// `take`, not waiting.
    fn try_turn(&self, tenant: &TenantId) -> Option<Turn<'_>> {
        self.take(&mut self.lock(), tenant)
    }

    /// Waits for a slot (woken by a turn's end, looking again at least every 100 ms for a
    /// neighbour gone quiet or a client gone); without one once no other tenant is active,
    /// the wait ran out or `gone`.
    fn wait_turn(&self, tenant: &TenantId, until: Instant, gone: impl Fn() -> bool) -> Turn<'_> {
        let until = until.min(Instant::now() + self.wait);
        let mut s = self.lock();
        loop {
            if let Some(turn) = self.take(&mut s, tenant) {
                // None needed any more: a turn's end may have woken this waiter for the
                // slot, which the next one takes.
                if !turn.holds_slot() && s.running < self.slots {
                    self.freed.notify_one();
                }
                return turn;
            }
            let now = Instant::now();
            if now >= until || gone() {
                return Turn(None);
            }
            let nap = (until - now).min(Duration::from_millis(100));
            s = self
                .freed
                .wait_timeout(s, nap)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// What a request holds of the lane while its job runs (`Admission::turn`); its end gives a
/// slot to the next read, or starts its tenant's window.
pub struct Turn<'a>(Option<(&'a Lane, Held)>);

enum Held {
    /// One of the lane's slots.
    Slot,
    /// A request at normal priority of this tenant.
    Normal(TenantId),
}

impl Turn<'_> {
    /// Whether this holds one of the lane's slots.
    pub fn holds_slot(&self) -> bool {
        matches!(self.0, Some((_, Held::Slot)))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some((lane, held)) = self.0.take() else {
            return;
        };
        let mut s = lane.lock();
        match held {
            Held::Slot => {
                s.running = s.running.saturating_sub(1);
                drop(s);
                lane.freed.notify_one();
            }
            Held::Normal(tenant) => {
                if let Some(n) = s.normal.get_mut(&tenant) {
                    *n -= 1;
                    if *n == 0 {
                        s.normal.remove(&tenant);
                    }
                }
                s.seen(&tenant, Instant::now());
            }
        }
    }
}

/// A job given to the low-priority threads ended without an answer (it panicked).
#[derive(Debug)]
pub struct Lost;

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a request's job on a low-priority thread ended without an answer")
    }
}

impl std::error::Error for Lost {}

type Job = Box<dyn FnOnce() + Send>;

/// The low-priority threads: each lowers its own priority once, at start, then runs jobs.
struct LowPool {
    jobs: mpsc::Sender<Job>,
}

impl LowPool {
    /// `threads` threads; None (no priority change) when none could be made.
    fn start(threads: usize) -> Option<LowPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut made = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("low-priority-{i}"))
                .spawn(move || {
                    if let Err(e) = lower_priority(LOW_NICE) {
                        log::warn!("a low-priority thread keeps its priority: {e}");
                    }
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            // A panic ends the job (its caller sees `Lost`), not the thread.
                            Ok(job) => drop(catch_unwind(AssertUnwindSafe(job))),
                            Err(_) => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => made += 1,
                Err(e) => log::warn!("cannot start a low-priority thread: {e}"),
            }
        }
        (made > 0).then_some(LowPool { jobs: tx })
    }

    /// Runs `job` on one of the threads and waits for its answer.
    fn run<R, J>(&self, job: J) -> Result<R, Lost>
    where
        R: Send + 'static,
        J: FnOnce() -> R + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            // The waiter is there until the answer comes: nothing to do when it is not.
            let _ = tx.send(job());
        });
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            // No thread left to take it: run it here.
            job();
        }
        rx.recv().map_err(|_| Lost)
    }
}

/// Lowers the calling thread's CPU priority: into the `SCHED_IDLE` class, or where that is
/// refused by `steps` nice steps (at most to 19).
#[cfg(target_os = "linux")]
fn lower_priority(steps: i32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` lives across the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        return Ok(());
    }
    log::debug!(
        "SCHED_IDLE refused ({}); lowering the nice value",
        std::io::Error::last_os_error()
    );
    // On Linux a priority is a thread's own: PRIO_PROCESS with a thread id sets that thread.
    // SAFETY: system calls on the calling thread's id, no memory passed.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: as above; errno is this thread's own.
    unsafe { *libc::__errno_location() = 0 };
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    if now == -1 && std::io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, (now + steps).min(19)) };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_steps: i32) -> std::io::Result<()> {
    Ok(())
}

/// The calling thread's scheduling class (`libc::SCHED_*`) and nice value (Linux: from
/// /proc/thread-self/stat), for tests.
#[cfg(all(test, target_os = "linux"))]
fn thread_priority() -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // After the command name in parentheses: state is field 3, nice field 19, policy field 41.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((fields.get(38)?.parse().ok()?, fields.get(16)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_past_its_share_waits_then_is_refused_and_others_are_not() {
        let a = Arc::new(Admission::new(2));
        let (t1, t2) = (TenantId::from("a"), TenantId::from("b"));
        let s1 = a.try_admit(&t1).unwrap();
        let _s2 = a.try_admit(&t1).unwrap();
        assert!(a.try_admit(&t1).is_none());
        assert!(a.admit(&t1, Instant::now()).is_none());
        assert_eq!(a.waiting(&t1), 0);
        // Another tenant is untouched.
        let _b = a.try_admit(&t2).unwrap();
        // A slot freed while waiting is taken.
        let a2 = a.clone();
        let t = t1.clone();
        let waiter = std::thread::spawn(move || {
            a2.admit(&t, Instant::now() + Duration::from_secs(30))
                .is_some()
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(s1);
        assert!(waiter.join().unwrap());
    }

    /// Each end wakes one waiter of its tenant: none is lost, whoever takes a freed slot
    /// first (waiters, or a newcomer that never waited).
    #[test]
    fn every_waiter_is_served_as_slots_free_one_at_a_time() {
        let a = Arc::new(Admission::new(1));
        let t = TenantId::from("a");
        let held = a.try_admit(&t).unwrap();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let (a, t) = (a.clone(), t.clone());
                std::thread::spawn(move || {
                    let slot = a.admit(&t, Instant::now() + Duration::from_secs(30));
                    std::thread::sleep(Duration::from_millis(2));
                    slot.is_some()
                })
            })
            .collect();
        while a.waiting(&t) < 8 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        // A newcomer barging in between takes a turn too and hands it on when it ends.
        let newcomer = a.admit(&t, Instant::now() + Duration::from_secs(30));
        assert!(newcomer.is_some());
        drop(newcomer);
        for w in waiters {
            assert!(w.join().unwrap(), "a waiter was never woken");
        }
        assert_eq!((a.running(&t), a.waiting(&t)), (0, 0));
    }

    /// Stress (from the review of the one-waiter wake-up): waiters with long and short
    /// waits, a newcomer barging in, two slots freed at once; every long waiter is served
    /// (a lost wake-up leaves it to time out). Fails with the wake-up removed.
    #[test]
    fn no_waiter_is_forgotten_under_barging_and_timeouts() {
        for round in 0..200 {
            let a = Arc::new(Admission::new(2));
            let t = TenantId::from("a");
            let held = (a.try_admit(&t).unwrap(), a.try_admit(&t).unwrap());
            let waiters: Vec<_> = (0..12)
                .map(|i| {
                    let (a, t) = (a.clone(), t.clone());
                    std::thread::spawn(move || {
                        let short = i % 3 == 0;
                        let wait = if short {
                            Duration::from_micros(200 + i * 37)
                        } else {
                            Duration::from_secs(10)
                        };
                        let slot = a.admit(&t, Instant::now() + wait);
                        if slot.is_some() {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        (short, slot.is_some())
                    })
                })
                .collect();
            let barger = {
                let (a, t) = (a.clone(), t.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        drop(a.try_admit(&t));
                        std::thread::yield_now();
                    }
                })
            };
            std::thread::sleep(Duration::from_micros(300));
            drop(held);
            barger.join().unwrap();
            for w in waiters {
                let (short, served) = w.join().unwrap();
                assert!(
                    short || served,
                    "round {round}: a long waiter was never served"
                );
            }
            assert_eq!((a.running(&t), a.waiting(&t)), (0, 0));
        }
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    /// Runs a read of the request holding `slot` on a thread of its own, as `http::front`
    /// does (its turn, waited for when none is free, then `run`): its job says when it starts,
    /// then holds its turn until `release` is dropped or sent to.
    fn held_read(
        a: &Arc<Admission>,
        slot: Slot,
    ) -> (
        mpsc::Receiver<()>,
        mpsc::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let a = a.clone();
        let h = std::thread::spawn(move || {
            let far = Instant::now() + Duration::from_secs(60);
            let turn = a.wait_turn(&slot, true, far, || false);
            a.run(&slot, true, move || {
                started_tx.send(()).unwrap();
                let _ = released.recv();
            })
            .unwrap();
            drop(turn);
        });
        (started, release, h)
    }

    /// A request of tenant `t` at normal priority (its only one), run to its end.
    fn normal_request(a: &Arc<Admission>, t: &str) {
        let slot = a.try_admit(&TenantId::from(t)).unwrap();
        let turn = a
            .turn(&slot, true)
            .expect("a request at normal priority never waits");
        assert!(!turn.holds_slot());
        a.run(&slot, true, || ()).unwrap();
    }

    /// Tenant "a" with one request in flight (so its next reads are low-priority), and
    /// `Admission` with a lane of one slot. Its wait and window are a minute, so a read
    /// that waited for a turn shows as one that did not start.
    fn busy_tenant() -> (Arc<Admission>, TenantId, Slot) {
        let mut a = Admission::with_low_priority(4, 1, 0).with_db_lane(1);
        let minute = Duration::from_secs(60);
        a.lane = Some(Lane::new(1, minute, minute));
        let a = Arc::new(a);
        let t = TenantId::from("a");
        let first = a.try_admit(&t).unwrap();
        (a, t, first)
    }

    /// Two low-priority reads of `t` started one after the other: whether the second ran
    /// while the first held its turn (`expected`: how long to give it, 10 s when it should,
    /// 300 ms when it should not; a wait for a turn would last a minute).
    fn second_ran_beside_first(a: &Arc<Admission>, t: &TenantId, expected: bool) -> bool {
        let (started1, release1, h1) = held_read(a, a.try_admit(t).unwrap());
        started1.recv().unwrap();
        let (started2, release2, h2) = held_read(a, a.try_admit(t).unwrap());
        let give = Duration::from_millis(if expected { 10_000 } else { 300 });
        let beside = started2.recv_timeout(give).is_ok();
        drop(release1);
        h1.join().unwrap();
        if !beside {
            // The first's end gives the second its turn.
            started2.recv().unwrap();
        }
        drop(release2);
        h2.join().unwrap();
        beside
    }

    #[test]
    fn low_priority_reads_take_turns_after_another_tenant_ran_at_normal_priority() {
        let (a, t, first) = busy_tenant();
        // "b" runs one request (at normal priority: its only one), which ends at once.
        normal_request(&a, "b");
        assert!(!second_ran_beside_first(&a, &t, false));
        // The tenant's own first request (not low-priority) needs no turn, even while a
        // read of its own holds the only slot.
        let (started, release, h) = held_read(&a, a.try_admit(&t).unwrap());
        started.recv().unwrap();
        assert!(!a.turn(&first, true).unwrap().holds_slot());
        drop(release);
        h.join().unwrap();
    }

    #[test]
    fn another_tenants_request_counts_while_it_runs_however_long() {
        // No window: only requests in flight count.
        let mut a = Admission::with_low_priority(4, 1, 0).with_db_lane(1);
        a.lane = Some(Lane::new(1, Duration::from_secs(60), Duration::ZERO));
        let a = Arc::new(a);
        let t = TenantId::from("a");
        let _first = a.try_admit(&t).unwrap();
        let b = a.try_admit(&TenantId::from("b")).unwrap();
        let b_turn = a.turn(&b, true).unwrap();
        assert!(!second_ran_beside_first(&a, &t, false));
        drop(b_turn);
        assert!(second_ran_beside_first(&a, &t, true));
    }

    #[test]
    fn alone_a_tenants_low_priority_reads_do_not_wait() {
        let (a, t, first) = busy_tenant();
        // Its own request at normal priority does not count.
        drop(a.turn(&first, true));
        assert!(second_ran_beside_first(&a, &t, true));
    }

    #[test]
    fn tenants_whose_reads_all_run_at_low_priority_do_not_hold_each_other_back() {
        let (a, t, _first) = busy_tenant();
        let other = TenantId::from("c");
        let _c1 = a.try_admit(&other).unwrap();
        let c2 = a.try_admit(&other).unwrap();
        drop(a.turn(&c2, true));
        assert!(second_ran_beside_first(&a, &t, true));
        // A write of "c" runs at normal priority: now "a" takes turns.
        drop(a.turn(&c2, false));
        assert!(!second_ran_beside_first(&a, &t, false));
    }

    #[test]
    fn a_turn_is_waited_for_at_most_the_lanes_wait_or_until_the_client_is_gone() {
        let lane = Lane::new(1, Duration::from_millis(200), Duration::from_secs(60));
        let (t, other) = (TenantId::from("a"), TenantId::from("b"));
        // No other tenant active: no slot is needed.
        assert!(!lane.try_turn(&t).unwrap().holds_slot());
        drop(lane.normal(&t));
        assert!(!lane.try_turn(&t).unwrap().holds_slot());
        // Another tenant ran a request: the first read takes the one slot ...
        drop(lane.normal(&other));
        let held = lane.try_turn(&t).unwrap();
        assert!(held.holds_slot());
        // ... the next must wait, and past the wait runs without one.
        assert!(lane.try_turn(&t).is_none());
        let far = Instant::now() + Duration::from_secs(60);
        let started = Instant::now();
        assert!(!lane.wait_turn(&t, far, || false).holds_slot());
        assert!(started.elapsed() >= Duration::from_millis(200));
        // A gone client stops waiting at once.
        let started = Instant::now();
        assert!(!lane.wait_turn(&t, far, || true).holds_slot());
        assert!(started.elapsed() < Duration::from_millis(200));
        // So does a request whose deadline (its slot's wait included) has passed.
        let started = Instant::now();
        assert!(!lane.wait_turn(&t, started, || false).holds_slot());
        assert!(started.elapsed() < Duration::from_millis(200));
        drop(held);
        assert!(lane.wait_turn(&t, far, || false).holds_slot());
    }

    #[test]
    fn without_a_lane_or_with_priorities_off_nothing_takes_turns() {
        for a in [
            Admission::with_low_priority(4, 1, 0).with_db_lane(0),
            Admission::with_low_priority(4, 0, 0).with_db_lane(1),
        ] {
            assert!(a.lane.is_none());
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod low_priority_tests {
    use super::*;

    /// The class and nice value `run` ran a job at, for the request holding `slot`.
    fn nice_of(a: &Admission, slot: &Slot) -> (i32, i32) {
        a.run(slot, true, thread_priority).unwrap().unwrap()
    }

    #[test]
    fn a_request_with_others_of_its_tenant_in_flight_runs_at_low_priority() {
        let here = thread_priority().unwrap();
        assert_eq!(here.0, libc::SCHED_OTHER);
        // SCHED_IDLE (an unprivileged thread may always move into it; nice is kept as is).
        let low = (libc::SCHED_IDLE, here.1);
        let a = Arc::new(Admission::with_low_priority(4, 1, 2));
        let (t1, t2) = (TenantId::from("a"), TenantId::from("b"));
        let first = a.try_admit(&t1).unwrap();
        let second = a.try_admit(&t1).unwrap();
        let other = a.try_admit(&t2).unwrap();
        assert_eq!(nice_of(&a, &first), here);
        assert_eq!(nice_of(&a, &second), low);
        // Another tenant's one request keeps its priority.
        assert_eq!(nice_of(&a, &other), here);
        // A write keeps its priority (it may hold the write lock for other tenants' writes).
        assert_eq!(
            a.run(&second, false, thread_priority).unwrap().unwrap(),
            here
        );
        // Past the share, a waiter admitted after others ended runs by what it found then.
        drop(first);
        let third = a.admit(&t1, Instant::now()).unwrap();
        assert_eq!(nice_of(&a, &third), low);
        drop((second, third));
        assert_eq!(nice_of(&a, &a.try_admit(&t1).unwrap()), here);
    }

    #[test]
    fn off_runs_everything_at_the_callers_priority() {
        let here = thread_priority().unwrap();
        let a = Arc::new(Admission::with_low_priority(4, 0, 2));
        let t = TenantId::from("a");
        let slots: Vec<_> = (0..4).map(|_| a.try_admit(&t).unwrap()).collect();
        for s in &slots {
            assert_eq!(nice_of(&a, s), here);
        }
    }

    #[test]
    fn a_panicking_job_is_lost_and_the_thread_lives_on() {
        let a = Arc::new(Admission::with_low_priority(4, 1, 1));
        let t = TenantId::from("a");
        let _first = a.try_admit(&t).unwrap();
        let second = a.try_admit(&t).unwrap();
        assert!(a.run(&second, true, || panic!("job")).is_err());
        assert_eq!(a.run(&second, true, || 7).unwrap(), 7);
    }
}
