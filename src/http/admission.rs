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

/// The requests in flight and waiting per tenant.
pub struct Admission {
    max: usize,
    state: Mutex<HashMap<TenantId, Count>>,
    /// A request admitted while its tenant runs this many others runs on `low` (0: never).
    low_after: usize,
    low: Option<LowPool>,
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
        }
    }

    /// Runs `job` for the request holding `slot` and waits for it (blocking: call it off the
    /// async executor): on a low-priority thread when it only `reads` and its tenant ran
    /// `low_after` others as it was admitted, else on this thread. Writes keep their priority:
    /// a write may lead a batch or hold SQLite's write lock for other tenants' writes, which
    /// must not wait for a deprioritised thread. Err when the job panicked on the
    /// low-priority thread.
    pub fn run<R, J>(&self, slot: &Slot, reads: bool, job: J) -> Result<R, Lost>
    where
        R: Send + 'static,
        J: FnOnce() -> R + Send + 'static,
    {
        match &self.low {
            // `low` exists only when `low_after` > 0.
            Some(low) if reads && slot.others >= self.low_after => low.run(job),
            _ => Ok(job()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
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

    /// A slot of `tenant`'s, waiting up to `wait` for one (blocking: call it off the async
    /// executor); None when the queue is full or the wait ran out.
    pub fn admit(self: &Arc<Self>, tenant: &TenantId, wait: Duration) -> Option<Slot> {
        let until = Instant::now() + wait;
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
        assert!(a.admit(&t1, Duration::ZERO).is_none());
        assert_eq!(a.waiting(&t1), 0);
        // Another tenant is untouched.
        let _b = a.try_admit(&t2).unwrap();
        // A slot freed while waiting is taken.
        let a2 = a.clone();
        let t = t1.clone();
        let waiter = std::thread::spawn(move || a2.admit(&t, Duration::from_secs(30)).is_some());
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
                    let slot = a.admit(&t, Duration::from_secs(30));
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
        let newcomer = a.admit(&t, Duration::from_secs(30));
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
                        let slot = a.admit(&t, wait);
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
        let third = a.admit(&t1, Duration::ZERO).unwrap();
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
