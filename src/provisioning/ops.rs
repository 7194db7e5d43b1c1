//! The operator's view of a running server: readiness (can this instance serve?) and the
//! metrics scrape (the gauges read from the pool, the delivery threads and the database,
//! then everything rendered). Nothing here is tenant-specific unless `--metrics-per-tenant`
//! asks for it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Service;
use crate::metrics::{DeliveryGauges, PoolGauges, TenantGauges};
use crate::scim::time::now_micros;
use crate::storage::deliveries::{self, StatusCount};
use crate::storage::feed::{self, FeedHead};
use crate::storage::pool;
use crate::storage::StorageError;

/// One readiness check's outcome: `ok`, or what failed in a few words (never database text).
pub type Check = Result<(), String>;

/// What `/readyz` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub database: Check,
    pub migrations: Check,
    pub webhooks: Check,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database.is_ok() && self.migrations.is_ok() && self.webhooks.is_ok()
    }

    /// The answer's body: `{"status": "ready"|"unready", "checks": {"database": "ok", ...}}`.
    pub fn body(&self) -> ReadinessBody {
        let show = |c: &Check| match c {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        ReadinessBody {
            status: if self.ready() { "ready" } else { "unready" },
            checks: BTreeMap::from([
                ("database", show(&self.database)),
                ("migrations", show(&self.migrations)),
                ("webhooks", show(&self.webhooks)),
            ]),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ReadinessBody {
    pub status: &'static str,
    pub checks: BTreeMap<&'static str, String>,
}

/// The delivery threads' check: off (`--webhook-concurrency 0`, or not started in this
/// process) is ready; started, every one must be alive.
pub fn webhook_check(expected: usize, running: usize) -> Check {
    if running >= expected {
        Ok(())
    } else {
        Err(format!("{running} of {expected} delivery threads running"))
    }
}

impl Service {
    /// Readiness: a pooled connection within `timeout` and a query on it, this binary's
    /// migrations all applied, and every delivery thread alive.
    pub fn readiness(&self, timeout: Duration) -> Readiness {
        let (expected, running) = self.webhooks.threads();
        let webhooks = webhook_check(expected, running);
        match pool::probe(&self.pool, timeout) {
            Ok(p) => Readiness {
                database: Ok(()),
                migrations: match p.pending_migrations {
                    0 => Ok(()),
                    n => Err(format!(
                        "{n} migrations pending: run `scimitar migrate` or restart"
                    )),
                },
                webhooks,
            },
            Err(e) => Readiness {
                database: Err(e.to_string()),
                migrations: Err("not checked: the database is not ready".to_string()),
                webhooks,
            },
        }
    }

    /// Every metric, in the Prometheus text format: the pool and the delivery threads as
    /// they are now, and the delivery side read from the database (left as last read when
    /// the database does not answer; the failure is logged and readiness tells it).
    pub fn scrape(&self) -> String {
        let m = &self.metrics;
        let state = self.pool.state();
        m.set_pool(PoolGauges {
            size: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        });
        let (expected, running) = self.webhooks.threads();
        m.set_delivery_threads(expected, running);
        match self.delivery_gauges() {
            Ok((all, tenants)) => m.set_deliveries(&all, &tenants),
            Err(e) => log::warn!("metrics: cannot read the delivery gauges: {e}"),
        }
        m.render()
    }

    fn delivery_gauges(&self) -> Result<(DeliveryGauges, Vec<TenantGauges>), StorageError> {
        let now = now_micros();
        let mut conn = self.pool.get_timeout(Duration::from_secs(2))?;
        let (counts, heads) = conn.read_tx(|db| {
            Ok::<_, StorageError>((deliveries::status_counts(db, now)?, feed::feed_heads(db)?))
        })?;
        Ok(delivery_gauges(&counts, &heads, now))
    }
}

/// The gauges of the counts by tenant and status, and the feed heads, at `now` (micros).
pub fn delivery_gauges(
    counts: &[StatusCount],
    heads: &[FeedHead],
    now: i64,
) -> (DeliveryGauges, Vec<TenantGauges>) {
    let mut all = DeliveryGauges::default();
    let mut tenants: BTreeMap<&str, TenantGauges> = BTreeMap::new();
    let mut oldest: Option<i64> = None;
    for c in counts {
        let t = tenants.entry(&c.tenant_id).or_insert_with(|| TenantGauges {
            tenant: c.tenant_id.clone(),
            ..TenantGauges::default()
        });
        match c.status.as_str() {
            "pending" => {
                all.pending += c.n;
                all.in_flight += c.in_flight;
                all.retrying += c.retrying;
                t.pending += c.n;
                oldest = match (oldest, c.oldest) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if let (Some(first), Some(h)) = (
                    c.first_seq,
                    heads.iter().find(|h| h.tenant_id == c.tenant_id),
                ) {
                    t.feed_head_lag = (h.last_seq - first + 1).max(0);
                }
            }
            "delivered" => all.delivered += c.n,
            "dead" => {
                all.dead += c.n;
                t.dead += c.n;
            }
            _ => {}
        }
    }
    all.oldest_pending_secs = oldest.map_or(0, |o| ((now - o) / 1_000_000).max(0));
    all.feed_head_lag = tenants.values().map(|t| t.feed_head_lag).max().unwrap_or(0);
    (all, tenants.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(tenant: &str, status: &str, n: i64, oldest: i64, first_seq: i64) -> StatusCount {
        StatusCount {
            tenant_id: tenant.into(),
            status: status.into(),
            n,
            in_flight: 1,
            retrying: n - 1,
            oldest: Some(oldest),
            first_seq: Some(first_seq),
        }
    }

    #[test]
    fn gauges_add_up_across_tenants() {
        let counts = [
            count("a", "pending", 3, 5_000_000, 8),
            count("a", "dead", 2, 0, 1),
            count("b", "pending", 1, 9_000_000, 20),
            count("b", "delivered", 7, 0, 1),
        ];
        let heads = [
            FeedHead {
                tenant_id: "a".into(),
                last_seq: 10,
            },
            FeedHead {
                tenant_id: "b".into(),
                last_seq: 20,
            },
        ];
        let (all, tenants) = delivery_gauges(&counts, &heads, 15_000_000);
        assert_eq!(
            all,
            DeliveryGauges {
                pending: 4,
                in_flight: 2,
                retrying: 2,
                delivered: 7,
                dead: 2,
                oldest_pending_secs: 10,
                feed_head_lag: 3,
            }
        );
        assert_eq!(tenants.len(), 2);
        assert_eq!(
            (
                tenants[0].pending,
                tenants[0].dead,
                tenants[0].feed_head_lag
            ),
            (3, 2, 3)
        );
        assert_eq!(tenants[1].feed_head_lag, 1);
    }

    #[test]
    fn webhook_threads_must_all_run_once_started() {
        assert!(webhook_check(0, 0).is_ok(), "delivery off here");
        assert!(webhook_check(17, 17).is_ok());
        assert_eq!(
            webhook_check(17, 16),
            Err("16 of 17 delivery threads running".to_string())
        );
    }
}
