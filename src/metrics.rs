//! The process's Prometheus metrics: one registry per server (so tests running many apps in
//! one process do not mix), rendered in the text exposition format by `render`. Depends on
//! no other module of the crate: the code that measures something calls one named method
//! here, and the scrape (`http::ops`) fills the gauges read from the database.
//!
//! Registration points:
//! - the write path (`provisioning::writer`) calls `observe_write(batch, commit)` once per
//!   commit, with how many requests' changes the commit held;
//! - the feed's long-polls hold a `waiting()` guard while they wait.
//!
//! Labels are bounded: routes are templates (`/scim/v2/:rtype/:id`, or `unmatched`), statuses are classes (`2xx`); tenants appear only with
//! `--metrics-per-tenant`.

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The latency buckets, in seconds: 1 ms to 30 s (a long-poll's wait ends in the last).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Requests per commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    per_tenant: bool,
    requests: IntCounterVec,
    latency: HistogramVec,
    tenant_requests: IntCounterVec,
    pool_size: IntGauge,
    pool_in_use: IntGauge,
    pool_idle: IntGauge,
    pool_waiting: IntGauge,
    write_batch: Histogram,
    commit_seconds: Histogram,
    long_poll_waiters: IntGauge,
    deliveries: IntGaugeVec,
    deliveries_in_flight: IntGauge,
    oldest_pending: IntGauge,
    deliveries_retrying: IntGauge,
    feed_head_lag: IntGauge,
    tenant_deliveries: IntGaugeVec,
    tenant_feed_head_lag: IntGaugeVec,
    delivery_threads: IntGaugeVec,
    pool_max: IntGauge,
}

/// The delivery side as the database holds it, at one scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryGauges {
    pub pending: i64,
    /// Pending deliveries whose attempt is under way (claimed, lease not yet expired).
    pub in_flight: i64,
    /// Pending deliveries whose last attempt failed (waiting for their next try).
    pub retrying: i64,
    pub delivered: i64,
    pub dead: i64,
    /// Seconds since the oldest pending delivery was queued (0 when none is pending).
    pub oldest_pending_secs: i64,
    /// The most events any tenant's feed head is ahead of its oldest pending delivery.
    pub feed_head_lag: i64,
}

/// One tenant's share of the delivery gauges (`--metrics-per-tenant`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantGauges {
    pub tenant: String,
    pub pending: i64,
    pub dead: i64,
    pub feed_head_lag: i64,
}

/// Pool occupancy at one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolGauges {
    pub size: u32,
    pub idle: u32,
    /// Most connections the pool may open (`--db-pool-size`).
    pub max: u32,
}

/// Counts one waiter while it lives (see `Metrics::waiting`, `Metrics::pool_wait`).
pub struct Waiting(IntGauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // Names are fixed and distinct: registering cannot fail but on a bug, which the unit test
    // below would show; a duplicate is then simply not exported.
    if let Err(e) = r.register(Box::new(c.clone())) {
        log::error!("metrics: cannot register a metric: {e}");
    }
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        r,
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable_metric(name, e)),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    registered(
        r,
        IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e)),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable_metric(name, e)),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(
        r,
        Histogram::with_opts(opts).unwrap_or_else(|e| unreachable_metric(name, e)),
    )
}

/// A metric whose fixed name or labels the library refused: a bug in this file (the unit
/// tests build every metric). Aborts at startup, never on a request.
#[allow(clippy::panic)]
fn unreachable_metric<T>(name: &str, e: prometheus::Error) -> T {
    panic!("metric {name}: {e}")
}

impl Metrics {
    /// Every metric, registered; per-tenant series only when `per_tenant`.
    pub fn new(per_tenant: bool) -> Metrics {
        let r = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "scimitar_http_request_duration_seconds",
                "Time from a request's arrival to its response, by route template and method",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .unwrap_or_else(|e| unreachable_metric("latency", e));
        let latency = registered(&r, latency);
        Metrics {
            per_tenant,
            requests: counter_vec(
                &r,
                "scimitar_http_requests_total",
                "Requests answered, by route template, method and status class",
                &["route", "method", "status"],
            ),
            latency,
            tenant_requests: counter_vec(
                &r,
                "scimitar_tenant_requests_total",
                "Requests answered per tenant and status class (only with --metrics-per-tenant)",
                &["tenant", "status"],
            ),
            pool_size: gauge(
                &r,
                "scimitar_db_pool_connections",
                "Connections the database pool holds open",
            ),
            pool_in_use: gauge(
                &r,
                "scimitar_db_pool_in_use",
                "Pooled connections checked out right now",
            ),
            pool_idle: gauge(&r, "scimitar_db_pool_idle", "Pooled connections idle"),
            pool_waiting: gauge(
                &r,
                "scimitar_db_pool_waiting",
                "Requests waiting for a pooled connection right now",
            ),
            write_batch: histogram(
                &r,
                "scimitar_write_batch_requests",
                "Requests whose changes one write transaction committed",
                BATCH_BUCKETS,
            ),
            commit_seconds: histogram(
                &r,
                "scimitar_write_commit_seconds",
                "Duration of a write transaction, from BEGIN to the end of COMMIT",
                LATENCY_BUCKETS,
            ),
            long_poll_waiters: gauge(
                &r,
                "scimitar_feed_long_poll_waiters",
                "GET /api/v1/events long-polls waiting for an event right now",
            ),
            deliveries: gauge_vec(
                &r,
                "scimitar_webhook_deliveries",
                "Webhook deliveries kept in the database, by status (pending, delivered, dead); \
                 delivered and dead ones are pruned after --webhook-retention-hours",
                &["status"],
            ),
            deliveries_in_flight: gauge(
                &r,
                "scimitar_webhook_deliveries_in_flight",
                "Pending deliveries whose attempt is under way (by any instance)",
            ),
            deliveries_retrying: gauge(
                &r,
                "scimitar_webhook_deliveries_retrying",
                "Pending webhook deliveries whose last attempt failed, waiting for their next try",
            ),
            oldest_pending: gauge(
                &r,
                "scimitar_webhook_oldest_pending_seconds",
                "Age of the oldest pending webhook delivery (0 when none is pending)",
            ),
            feed_head_lag: gauge(
                &r,
                "scimitar_feed_head_lag_events",
                "The most feed events any tenant's head is ahead of its oldest pending delivery",
            ),
            tenant_deliveries: gauge_vec(
                &r,
                "scimitar_tenant_webhook_deliveries",
                "Webhook deliveries per tenant and status (only with --metrics-per-tenant)",
                &["tenant", "status"],
            ),
            tenant_feed_head_lag: gauge_vec(
                &r,
                "scimitar_tenant_feed_head_lag_events",
                "Feed events a tenant's head is ahead of its oldest pending delivery (only \
                 with --metrics-per-tenant)",
                &["tenant"],
            ),
            delivery_threads: gauge_vec(
                &r,
                "scimitar_webhook_threads",
                "This instance's delivery threads: expected, and running",
                &["state"],
            ),
            pool_max: gauge(
                &r,
                "scimitar_db_pool_max",
                "Most connections the database pool may open (--db-pool-size)",
            ),
            registry: r,
        }
    }

    /// One answered request. `route` is the matched template (never the path itself),
    /// `tenant` is known once the front door let the request in.
    pub fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        tenant: Option<&str>,
        elapsed: Duration,
    ) {
        let class = status_class(status);
        self.requests
            .with_label_values(&[route, method, class])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
        if let (true, Some(t)) = (self.per_tenant, tenant) {
            self.tenant_requests.with_label_values(&[t, class]).inc();
        }
    }

    /// One committed write transaction holding `batch` requests' changes, `commit` long
    /// from BEGIN to the end of COMMIT (the write path calls this).
    pub fn observe_write(&self, batch: usize, commit: Duration) {
        self.write_batch.observe(batch as f64);
        self.commit_seconds.observe(commit.as_secs_f64());
    }

    /// A feed long-poll waiting for events, counted until the guard drops.
    pub fn waiting(&self) -> Waiting {
        self.long_poll_waiters.inc();
        Waiting(self.long_poll_waiters.clone())
    }

    /// A request waiting for a pooled connection, counted until the guard drops.
    pub fn pool_wait(&self) -> Waiting {
        self.pool_waiting.inc();
        Waiting(self.pool_waiting.clone())
    }

    /// The pool's occupancy, at a scrape.
    pub fn set_pool(&self, p: PoolGauges) {
        self.pool_size.set(i64::from(p.size));
        self.pool_max.set(i64::from(p.max));
        self.pool_idle.set(i64::from(p.idle));
        self.pool_in_use
            .set(i64::from(p.size.saturating_sub(p.idle)));
    }

    /// This instance's delivery threads (see `webhooks::Hub::threads`).
    pub fn set_delivery_threads(&self, expected: usize, running: usize) {
        let g = |state: &str, n: usize| {
            self.delivery_threads
                .with_label_values(&[state])
                .set(i64::try_from(n).unwrap_or(i64::MAX))
        };
        g("expected", expected);
        g("running", running);
    }

    /// The delivery side as read from the database, at a scrape; `tenants` only matter with
    /// `--metrics-per-tenant` (a tenant no longer listed loses its series).
    pub fn set_deliveries(&self, d: &DeliveryGauges, tenants: &[TenantGauges]) {
        for (status, n) in [
            ("pending", d.pending),
            ("delivered", d.delivered),
            ("dead", d.dead),
        ] {
            self.deliveries.with_label_values(&[status]).set(n);
        }
        self.deliveries_in_flight.set(d.in_flight);
        self.deliveries_retrying.set(d.retrying);
        self.oldest_pending.set(d.oldest_pending_secs);
        self.feed_head_lag.set(d.feed_head_lag);
        if self.per_tenant {
            self.tenant_deliveries.reset();
            self.tenant_feed_head_lag.reset();
            for t in tenants {
                self.tenant_deliveries
                    .with_label_values(&[&t.tenant, "pending"])
                    .set(t.pending);
                self.tenant_deliveries
                    .with_label_values(&[&t.tenant, "dead"])
                    .set(t.dead);
                self.tenant_feed_head_lag
                    .with_label_values(&[&t.tenant])
                    .set(t.feed_head_lag);
            }
        }
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}

/// `2xx`, `4xx`, ...: bounded, and what alerts are written against.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The content type of `render`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders() {
        let m = Metrics::new(true);
        m.observe_request(
            "/scim/v2/:rtype",
            "GET",
            200,
            Some("acme"),
            Duration::from_millis(3),
        );
        m.observe_write(1, Duration::from_millis(2));
        let w = m.waiting();
        m.set_pool(PoolGauges {
            size: 4,
            idle: 3,
            max: 8,
        });
        m.set_delivery_threads(17, 17);
        m.set_deliveries(
            &DeliveryGauges {
                pending: 2,
                ..Default::default()
            },
            &[TenantGauges {
                tenant: "acme".into(),
                pending: 2,
                dead: 0,
                feed_head_lag: 5,
            }],
        );
        let text = m.render();
        for needle in [
            "scimitar_http_requests_total{method=\"GET\",route=\"/scim/v2/:rtype\",status=\"2xx\"} 1",
            "scimitar_tenant_requests_total{status=\"2xx\",tenant=\"acme\"} 1",
            "scimitar_db_pool_in_use 1",
            "scimitar_feed_long_poll_waiters 1",
            "scimitar_write_batch_requests_count 1",
            "scimitar_webhook_deliveries{status=\"pending\"} 2",
            "scimitar_tenant_feed_head_lag_events{tenant=\"acme\"} 5",
            "scimitar_webhook_threads{state=\"running\"} 17",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        drop(w);
        assert!(m.render().contains("scimitar_feed_long_poll_waiters 0"));
    }

    #[test]
    fn without_per_tenant_no_tenant_appears() {
        let m = Metrics::new(false);
        m.observe_request("/x", "GET", 503, Some("acme"), Duration::from_millis(3));
        m.set_deliveries(
            &DeliveryGauges::default(),
            &[TenantGauges {
                tenant: "acme".into(),
                ..Default::default()
            }],
        );
        let text = m.render();
        assert!(!text.contains("acme"), "{text}");
        assert!(text.contains("status=\"5xx\""), "{text}");
    }
}
