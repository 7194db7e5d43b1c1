//! Per-credential request rate limit: one token bucket per credential, in this process.
//! Several instances behind a load balancer each enforce the limit on their own share of the
//! traffic (documented in README). No actix here: the extractor calls `check`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by credential: `requests` of burst, refilled evenly over `per`.
pub struct RateLimiter {
    capacity: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets kept before idle (full) ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        let capacity = f64::from(limit.requests);
        RateLimiter {
            capacity,
            per_sec: capacity / limit.per.as_secs_f64(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket; `Err(seconds)` says when the next one fits.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        // A poisoned lock only means a panic elsewhere mid-update; the counts are still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let (cap, rate) = (self.capacity, self.per_sec);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < cap);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            // The epsilon keeps float noise (10.000000000000002) from adding a second.
            Err(((1.0 - b.tokens) / self.per_sec - 1e-9).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_burst_then_refills_per_credential() {
        let l = RateLimiter::new("2/minute".parse().unwrap());
        let t0 = Instant::now();
        assert!(l.check_at("a", t0).is_ok());
        assert!(l.check_at("a", t0).is_ok());
        assert_eq!(l.check_at("a", t0), Err(30));
        assert!(
            l.check_at("b", t0).is_ok(),
            "other credentials are not affected"
        );
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(20)), Err(10));
        assert!(l.check_at("a", t0 + Duration::from_secs(31)).is_ok());
    }
}
