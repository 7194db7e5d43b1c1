//! Per-credential request rate limit: one token bucket per credential, in this process.
//! Several instances behind a load balancer each enforce the limit on their own share of the
//! traffic (documented in README). No actix here: the extractor calls `check`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `N/second` or `N/minute` (`--rate-limit 600/min`); a bare `N` is per minute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<RateLimit, String> {
        let (n, unit) = s.split_once('/').unwrap_or((s, "minute"));
        let requests: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{s}`: expected N/second or N/minute with N > 0"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            other => return Err(format!("`{other}`: the period is `second` or `minute`")),
        };
        Ok(RateLimit { requests, per })
    }
}

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

    #[test]
    fn parses_limits() {
        let m = |n, s| RateLimit {
            requests: n,
            per: Duration::from_secs(s),
        };
        assert_eq!("600".parse::<RateLimit>().unwrap(), m(600, 60));
        assert_eq!("10/second".parse::<RateLimit>().unwrap(), m(10, 1));
        assert_eq!("10/s".parse::<RateLimit>().unwrap(), m(10, 1));
        assert_eq!("100/min".parse::<RateLimit>().unwrap(), m(100, 60));
        for bad in ["0/s", "x", "10/hour", "-1"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

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
