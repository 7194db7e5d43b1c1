//! Webhook delivery: threads that claim due deliveries from the database, POST them with the
//! Standard Webhooks headers and record the outcome. Deliveries are rows, so they survive
//! restarts; a claim is a lease (and `FOR UPDATE SKIP LOCKED` on Postgres), so with several
//! instances on one database each delivery is attempted by one of them at a time. Runs
//! beside the HTTP server and never inside a SCIM request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::config::WebhookArgs;
use crate::provisioning::product::{event_json, secret_key, Signal};
use crate::scim::time::now_micros;
use crate::storage::{self, ClaimedRow, FeedRow, Pool, StorageError};

/// How many deliveries a worker claims at once (sent one after another, then recorded in
/// one transaction).
const CLAIM_BATCH: i64 = 64;

#[derive(Clone, Debug)]
pub struct Schedule {
    pub timeout: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub horizon: Duration,
    pub poll: Duration,
}

impl From<&WebhookArgs> for Schedule {
    fn from(a: &WebhookArgs) -> Schedule {
        Schedule {
            timeout: Duration::from_millis(a.webhook_timeout_ms.max(1)),
            backoff: Duration::from_millis(a.webhook_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(a.webhook_max_backoff_ms.max(1)),
            horizon: Duration::from_secs(a.webhook_retry_horizon_secs),
            poll: Duration::from_millis(a.webhook_poll_ms.max(10)),
        }
    }
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

    /// The lease a claim takes: longer than any attempt, so a live worker never loses it.
    fn lease(&self) -> Duration {
        self.timeout * 3 + Duration::from_secs(5)
    }
}

/// The Standard Webhooks signature: `v1,` and base64(HMAC-SHA256(key, "id.timestamp.body")).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The running workers; dropping this asks them to stop.
pub struct Workers {
    stop: Arc<AtomicBool>,
    signal: Arc<Signal>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Stops the workers and waits for them (at most one attempt's timeout each).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.signal.raise();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.signal.raise();
    }
}

pub fn start(pool: Pool, signal: Arc<Signal>, schedule: Schedule, count: usize) -> Workers {
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..count)
        .filter_map(|i| {
            let (pool, signal, schedule, stop) =
                (pool.clone(), signal.clone(), schedule.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("webhooks-{i}"))
                .spawn(move || run(&pool, &signal, &schedule, &stop))
                .map_err(|e| log::error!("cannot start webhook worker: {e}"))
                .ok()
        })
        .collect();
    Workers {
        stop,
        signal,
        handles,
    }
}

fn run(pool: &Pool, signal: &Signal, schedule: &Schedule, stop: &AtomicBool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(schedule.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut rng = rand::thread_rng();
    while !stop.load(Ordering::SeqCst) {
        let seen = signal.generation();
        match claim(pool, schedule) {
            Ok(batch) if batch.is_empty() => signal.wait(seen, schedule.poll),
            Ok(batch) => {
                // Attempts stop well inside the lease; the rest are released unattempted, so
                // no other worker can take one while it is still in flight here.
                let stop_at = std::time::Instant::now() + schedule.lease()
                    - schedule.timeout
                    - Duration::from_secs(2);
                let outcomes: Vec<(ClaimedRow, Option<Result<(), String>>)> = batch
                    .into_iter()
                    .map(|d| {
                        let o = (std::time::Instant::now() < stop_at).then(|| attempt(&agent, &d));
                        (d, o)
                    })
                    .collect();
                if let Err(e) = record(pool, schedule, &outcomes, &mut rng) {
                    // The leases run out and the deliveries are attempted again.
                    log::error!("cannot record {} webhook deliveries: {e}", outcomes.len());
                }
            }
            Err(e) => {
                log::error!("cannot claim webhook deliveries: {e}");
                signal.wait(seen, schedule.poll);
            }
        }
    }
}

fn claim(pool: &Pool, schedule: &Schedule) -> Result<Vec<ClaimedRow>, StorageError> {
    let mut conn = pool.get()?;
    let now = now_micros();
    let lease = i64::try_from(schedule.lease().as_micros()).unwrap_or(i64::MAX);
    conn.write_tx(|db| storage::claim_deliveries(db, now, now.saturating_add(lease), CLAIM_BATCH))
}

/// The body a delivery POSTs: the feed event, exactly as `GET /api/v1/events` shows it.
pub fn body_of(d: &ClaimedRow) -> String {
    event_json(&FeedRow {
        seq: d.seq,
        id: d.event_id.clone(),
        kind: d.kind.clone(),
        account_id: d.account_id.clone(),
        resource_type: d.resource_type.clone(),
        resource_id: d.resource_id.clone(),
        at: d.at,
        data: d.data.clone(),
        // Not part of the event JSON (see `event_json`).
        credential_id: None,
    })
    .to_string()
}

/// One POST; Ok on a 2xx answer, else what went wrong (kept as the delivery's last error).
fn attempt(agent: &ureq::Agent, d: &ClaimedRow) -> Result<(), String> {
    let body = body_of(d);
    let ts = now_micros() / 1_000_000;
    let key = secret_key(&d.secret).ok_or("the subscription's secret is malformed")?;
    let sig = sign(&key, &d.event_id, ts, &body);
    let resp = agent
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.event_id)
        .header("webhook-timestamp", &ts.to_string())
        .header("webhook-signature", &sig)
        .send(body.as_str())
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", status.as_u16()))
    }
}

/// Records the outcomes of a batch in one transaction: delivered, or retried later with
/// backoff, or (past the horizon) a dead letter.
fn record(
    pool: &Pool,
    schedule: &Schedule,
    outcomes: &[(ClaimedRow, Option<Result<(), String>>)],
    rng: &mut impl Rng,
) -> Result<(), StorageError> {
    let mut conn = pool.get()?;
    let now = now_micros();
    let horizon = i64::try_from(schedule.horizon.as_micros()).unwrap_or(i64::MAX);
    let ids = |want: fn(&Option<Result<(), String>>) -> bool| -> Vec<&str> {
        outcomes
            .iter()
            .filter(|(_, o)| want(o))
            .map(|(d, _)| d.id.as_str())
            .collect()
    };
    let (ok, unattempted) = (ids(|o| matches!(o, Some(Ok(())))), ids(Option::is_none));
    conn.write_tx(|db| {
        storage::delivered(db, &ok, now)?;
        storage::release_deliveries(db, &unattempted)?;
        for (d, o) in outcomes {
            let Some(Err(e)) = o else { continue };
            let failures = u32::try_from(d.attempts).unwrap_or(0).saturating_add(1);
            let delay =
                i64::try_from(schedule.delay(failures, rng).as_micros()).unwrap_or(i64::MAX);
            let next = now.saturating_add(delay);
            let next = (next <= d.created.saturating_add(horizon)).then_some(next);
            if next.is_none() {
                log::warn!(
                    "webhook delivery {} of event {} is a dead letter after {failures} attempts: {e}",
                    d.id,
                    d.event_id
                );
            }
            storage::delivery_failed(db, &d.id, now, next, e)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

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
}
