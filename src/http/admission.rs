//! Fair admission: a tenant runs at most `--tenant-max-concurrency` requests at once (by
//! default half the database pool), so one tenant's expensive requests leave connections and
//! blocking threads to everyone else. A request past its tenant's share waits in a short
//! queue (without a database connection) for one of the tenant's requests to end; when the
//! queue is full or the wait runs out it is answered 429 with `Retry-After`. Other tenants
//! are not affected. Counted in this process.

use std::collections::HashMap;
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

/// The requests in flight and waiting per tenant.
pub struct Admission {
    max: usize,
    state: Mutex<HashMap<TenantId, Count>>,
    freed: Condvar,
}

#[derive(Default)]
struct Count {
    running: usize,
    waiting: usize,
}

impl Admission {
    /// At most `max` requests of one tenant at once (at least 1), and `QUEUE_PER_SLOT` times
    /// as many waiting.
    pub fn new(max: usize) -> Admission {
        Admission {
            max: max.max(1),
            state: Mutex::default(),
            freed: Condvar::new(),
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
            self.slot(tenant)
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
                return Some(self.slot(tenant));
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
                return Some(self.slot(tenant));
            }
            if now >= until {
                c.waiting -= 1;
                return None;
            }
            s = self
                .freed
                .wait_timeout(s, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn slot(self: &Arc<Self>, tenant: &TenantId) -> Slot {
        Slot {
            admission: self.clone(),
            tenant: tenant.clone(),
        }
    }
}

/// One running request of a tenant's; its end frees the slot.
pub struct Slot {
    admission: Arc<Admission>,
    tenant: TenantId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        let mut s = a.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Only a tenant's own waiters can take its slot: no wake-up when it has none.
        let mut wake = false;
        if let Some(c) = s.get_mut(&self.tenant) {
            c.running = c.running.saturating_sub(1);
            wake = c.waiting > 0;
            if c.running == 0 && c.waiting == 0 {
                s.remove(&self.tenant);
            }
        }
        drop(s);
        if wake {
            a.freed.notify_all();
        }
    }
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
}
