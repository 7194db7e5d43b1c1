//! Wiring: from configuration to a running server. `main` and the integration tests build the
//! application state the same way. The one module that knows every other.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};

use crate::auth;
use crate::config::{LogFormat, ServeArgs, WebhookArgs};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::provisioning::{Service, Settings};
use crate::scim::compat::Compat;
use crate::scim::schema::Registry;
use crate::scim::time::now_micros;
use crate::storage::{self, StorageError};
use crate::webhooks;

/// Opens the database (migrating it), bootstraps the default tenant and returns the state,
/// plus a newly generated token to show once when none existed.
pub fn build_state(args: &ServeArgs) -> Result<(AppState, Option<String>), String> {
    let registry = Registry::load()?;
    let (pool, connector) = storage::pool::open_with_connector(
        &args.db.database_url,
        args.db.sqlite_synchronous,
        args.db.db_pool_size,
        (args.db_statement_timeout_ms > 0)
            .then(|| Duration::from_millis(args.db_statement_timeout_ms)),
    )
    .map_err(|e| e.to_string())?;
    let mut conn = pool
        .get()
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let generated = conn
        .write_tx(|db| auth::bootstrap(db, args.bootstrap_token.is_some(), now_micros()))
        .map_err(|e: StorageError| format!("cannot initialise the database: {e}"))?;
    // Shared by every instance on this database, so a cursor from one works on another.
    let cursor_key = conn
        .write_tx(|db| {
            storage::tenancy::server_secret(
                db,
                "cursor_mac_key",
                &auth::generate_token(),
                now_micros(),
            )
        })
        .map_err(|e: StorageError| format!("cannot initialise the database: {e}"))?;
    let statements_elsewhere = conn.db().backend().statements_run_elsewhere();
    drop(conn);
    let settings = Settings {
        base_url: args.base_url(),
        max_page_size: args.max_page_size,
        default_page_size: args.max_page_size.min(100),
        max_members_per_request: args.max_members_per_request,
        compat: if args.strict {
            Compat::strict()
        } else {
            Compat::default()
        },
        cursor_key: cursor_key.into_bytes(),
        bulk: crate::provisioning::bulk::BulkLimits {
            max_operations: args.bulk_max_operations,
        },
        max_webhooks: args.webhooks.webhook_max_subscriptions,
        caps: crate::provisioning::Caps {
            max_values_per_attribute: args.max_values_per_attribute,
            max_resource_bytes: args.max_resource_bytes,
        },
        ..Settings::default()
    };
    // Half the pool: the batch writer's most connections (Postgres) and a tenant's default
    // share of concurrent requests.
    let half_pool = (args.db.db_pool_size as usize / 2).max(1);
    let state = AppState {
        service: Service {
            pool,
            registry: Arc::new(registry),
            settings: Arc::new(settings),
            signal: Arc::default(),
            webhooks: Arc::new(webhook_hub(&args.webhooks)?),
            writer: Arc::new(crate::provisioning::writer::Writer::new(
                connector, half_pool,
            )),
            metrics: Arc::new(Metrics::new(args.ops.metrics_per_tenant)),
            products: Default::default(),
        },
        bootstrap_hash: args.bootstrap_token.as_deref().map(auth::hash_secret),
        max_body_bytes: args.max_body_bytes,
        rate_limiter: args
            .rate_limit
            .map(|l| Arc::new(http::ratelimit::RateLimiter::new(l))),
        session_cookies: http::front::SessionCookies::for_base_url(&args.base_url()),
        sign_in: http::session::SignInGuard::new(&args.base_url(), args.admin_sign_in_limit),
        admission: Arc::new(
            http::admission::Admission::with_low_priority(
                args.tenant_max_concurrency.unwrap_or(half_pool),
                args.tenant_low_priority_after,
                // No more requests run at once than there are connections.
                args.db.db_pool_size as usize,
            )
            .with_db_lane(if statements_elsewhere {
                args.db_low_priority_slots
            } else {
                0
            }),
        ),
        ops: http::ops::Ops {
            log_unredacted: args.ops.log_unredacted,
            metrics_here: args.ops.metrics_listen.is_none(),
            probing: Arc::default(),
        },
    };
    Ok((state, generated))
}

/// The destination policy and the trust for https receivers `--webhook-*` ask for; a bad
/// policy or CA file stops the server at startup, naming the flag.
pub fn webhook_hub(a: &WebhookArgs) -> Result<webhooks::Hub, String> {
    let policy: webhooks::Policy = a.webhook_allowed_hosts.parse()?;
    let trust = webhooks::Trust::load(a.webhook_ca_file.as_deref())?;
    log::info!(
        "webhooks: destination policy `{policy}`; trusting {} system CA certificates ({}) and {} from --webhook-ca-file",
        trust.system.1,
        trust.system.0,
        trust.extra
    );
    Ok(webhooks::Hub::new(policy, trust))
}

/// The delivery settings `--webhook-*` ask for.
pub fn webhook_settings(a: &WebhookArgs) -> webhooks::Settings {
    webhooks::Settings {
        schedule: webhooks::Schedule {
            timeout: Duration::from_millis(a.webhook_timeout_ms.max(1)),
            backoff: Duration::from_millis(a.webhook_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(a.webhook_max_backoff_ms.max(1)),
            horizon: Duration::from_secs(a.webhook_retry_horizon_secs),
            poll: Duration::from_millis(a.webhook_poll_ms.max(10)),
        },
        concurrency: if a.webhook_workers == 0 {
            0
        } else {
            a.webhook_concurrency
        },
        retention: Duration::from_secs(a.webhook_retention_hours.saturating_mul(3600)),
        prune_every: Duration::from_secs(300),
        hook: None,
    }
}

/// Starts this process's webhook delivery (`--webhook-concurrency` attempts at once),
/// woken by the use cases after commits that queued deliveries.
pub fn start_webhooks(args: &ServeArgs, state: &AppState) -> webhooks::Workers {
    webhooks::start(
        state.service.pool.clone(),
        state.service.webhooks.clone(),
        webhook_settings(&args.webhooks),
    )
}

/// Starts the thread that folds the block counts' deltas and keeps the planner's statistics
/// fresh, each on its own interval; it ends with the process, and is not started when
/// neither has work:
///
/// - on Postgres, every `--db-fold-every-secs`, it folds `resource_blocks`
///   (`storage::search::blocks::compact_resource_blocks`), whatever `--db-analyze-every-secs`
///   says: without it the table gains a row per write statement for ever;
/// - every `--db-analyze-every-secs` (0: never) it refreshes the statistics
///   (`storage::conn::refresh_statistics`), after the fold when both are due (at the default
///   intervals, always), so the VACUUM of a stale `resource_blocks` takes the folded rows'
///   dead versions with it; and, on Postgres, the sample of trigrams substring searches
///   choose their rarest fragments from (`storage::search::grams::refresh_trigram_sample`,
///   before this returns, so before the server listens, and after every refresh, so no
///   request takes it); and, on SQLite, merges the trigram index's segments when a merge is
///   due and writes have paused (`merge_trigrams`).
pub fn start_statistics(args: &ServeArgs, state: &AppState) {
    let every = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let analyze = every(args.db_analyze_every_secs);
    let backend = storage::conn::DbUrl::parse(&args.db.database_url)
        .ok()
        .map(|u| u.backend);
    let deltas = backend.is_some_and(|b| b.resource_block_compaction().is_some());
    let fold = every(args.db_fold_every_secs).filter(|_| deltas);
    if analyze.is_none() && fold.is_none() {
        return;
    }
    let pool = state.service.pool.clone();
    // SQLite: the thread also merges the trigram index (`merge_trigrams`).
    let merging = backend
        .is_some_and(|b| b.trigram_merge_step().is_some())
        .then(|| state.service.writer.connector().clone());
    // Before the server listens, not on the thread: a substring search that came first would
    // otherwise take a sample of its own beside the thread's (261 ms p99 at 1M users).
    if analyze.is_some() {
        sample_trigrams(&pool);
    }
    let spawned = std::thread::Builder::new()
        .name("statistics".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let mut next_fold = fold.map(|f| start + f);
            let mut next_analyze = analyze.map(|a| start + a);
            while let Some(next) = next_fold.into_iter().chain(next_analyze).min() {
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                let now = std::time::Instant::now();
                if let (Some(at), Some(f)) = (next_fold, fold) {
                    if at <= now {
                        fold_block_counts(&pool);
                        next_fold = Some(now + f);
                    }
                }
                if let (Some(at), Some(a)) = (next_analyze, analyze) {
                    if at <= now {
                        refresh_statistics(&pool);
                        sample_trigrams(&pool);
                        if let Some(connector) = &merging {
                            merge_trigrams(&pool, connector);
                        }
                        next_analyze = Some(now + a);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("statistics thread not started: {e}");
    }
}

/// `job` on a connection of the pool.
fn on_a_connection<T>(
    pool: &storage::pool::Pool,
    job: fn(&mut storage::conn::Db<'_>) -> storage::StoreResult<T>,
) -> storage::StoreResult<T> {
    job(&mut pool.get().map_err(StorageError::from)?.db())
}

/// Steps of merging SQLite's trigram index per round of `start_statistics`: at about 200
/// pages a step, 1M users' index (some 40,000 pages) is merged within a round or two.
const TRIGRAM_MERGE_STEPS: usize = 400;

/// One round of `start_statistics`' merging of SQLite's trigram index, when due and no
/// write comes (`storage::search::grams::merge_trigrams`): asked on a pool connection, then
/// run on a connection of its own (not one of the pool's for the seconds it may take), after
/// a second without writes.
fn merge_trigrams(pool: &storage::pool::Pool, connector: &storage::pool::Connector) {
    match on_a_connection(pool, storage::search::grams::trigram_merge_due) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            log::warn!("trigram index not merged: {e}");
            return;
        }
    }
    let merged = connector.connect().and_then(|mut c| {
        storage::search::grams::merge_trigrams(
            &mut c,
            TRIGRAM_MERGE_STEPS,
            Duration::from_secs(1),
            Duration::from_millis(5),
        )
    });
    match merged {
        Ok(r) if r.done => log::info!("trigram index merged: {} steps", r.steps),
        Ok(r) if r.steps > 0 => log::info!(
            "trigram index merge paused after {} steps ({})",
            r.steps,
            if r.interrupted {
                "a write came"
            } else {
                "the round's steps ran out"
            }
        ),
        Ok(_) => {}
        Err(e) => log::warn!("trigram index not merged: {e}"),
    }
}

/// One round of `start_statistics`' trigram sample (taken only when the one held is stale).
fn sample_trigrams(pool: &storage::pool::Pool) {
    let sampled = on_a_connection(pool, storage::search::grams::refresh_trigram_sample);
    if let Err(e) = sampled {
        log::warn!("trigram sample not taken: {e}");
    }
}

/// One round of `start_statistics`' folding of the block counts.
fn fold_block_counts(pool: &storage::pool::Pool) {
    let folded = on_a_connection(pool, storage::search::blocks::compact_resource_blocks);
    match folded {
        Ok(f) if f.folded > 0 => log::debug!(
            "resource block counts folded: {} delta rows into {}",
            f.folded,
            f.written
        ),
        Ok(_) => {}
        Err(e) => log::warn!("resource block counts not folded: {e}"),
    }
}

/// One round of `start_statistics`' statistics refresh.
fn refresh_statistics(pool: &storage::pool::Pool) {
    let done = on_a_connection(pool, storage::conn::refresh_statistics);
    if let Ok(t) = &done {
        // attr_values changed by a tenth (say an import): the trigram sample is taken again
        // now, not kept until it ages out. Replaced, not dropped first: a search that came
        // in between would take one of its own.
        if t.iter().any(|n| n == "attr_values") {
            let taken = on_a_connection(pool, storage::search::grams::retake_trigram_sample);
            if let Err(e) = taken {
                log::warn!("trigram sample not taken: {e}");
            }
        }
    }
    match done {
        Ok(t) if !t.is_empty() => log::info!("statistics refreshed: {}", t.join(", ")),
        Ok(_) => {}
        Err(e) => log::warn!("statistics not refreshed: {e}"),
    }
}

/// Serves until SIGTERM/SIGINT; in-flight requests get up to 30 s to finish. Webhook
/// deliveries run beside it, on their own threads; with `--metrics-listen`, the metrics and
/// probes on their own address too.
pub async fn serve(args: ServeArgs, state: AppState) -> std::io::Result<()> {
    let workers = start_webhooks(&args, &state);
    start_statistics(&args, &state);
    let state = web::Data::new(state);
    let main_state = state.clone();
    let mut server = HttpServer::new(move || http::app(main_state.clone()))
        .shutdown_timeout(30)
        // A client that closes its side has gone: its request is dropped, which cancels its
        // statement (`http::front`).
        .h1_allow_half_closed(false);
    if let Some(w) = args.workers {
        server = server.workers(w);
    }
    log::info!(
        "listening on http://{}, SCIM base URL {}",
        args.listen,
        args.base_url()
    );
    let main = server.bind(args.listen)?.run();
    let result = match args.ops.metrics_listen {
        None => main.await,
        Some(addr) => {
            let management = HttpServer::new(move || {
                App::new()
                    .wrap(actix_web::middleware::from_fn(http::observe::observe))
                    .configure(http::ops::management(state.clone()))
            })
            .workers(1)
            .shutdown_timeout(5)
            .bind(addr)?
            .run();
            log::info!("metrics and probes on http://{addr}");
            let (a, b) = futures_util::future::join(main, management).await;
            a.and(b)
        }
    };
    workers.shutdown();
    result
}

/// Log lines to standard error, as `--log-format` says, at the levels RUST_LOG sets (default
/// `info`); records of the `log` crate (the rest of the code base) go the same way.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("scimitar: logging is already set up: {e}");
    }
}
