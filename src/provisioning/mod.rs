//! Use cases: every request's work, each in one database transaction on the connection the
//! request's front door checked out. Blocking code (the HTTP layer runs it on the blocking
//! pool). Must not depend on actix or diesel; depends on `storage`, `auth`, `scim`,
//! `product` and `webhooks` (its wire format), never on `http` or `cli`.
//!
//! - `resources`, `list`, `bulk`, `cursor`: the SCIM use cases;
//! - `journal`: the feed events of a transaction and the signal raised after its commit;
//! - `accounts`: the account of each SCIM user, decided inside the SCIM transactions;
//! - `api`: the `/api/v1` use cases by topic, with their wire types;
//! - `tenancy`: the operator's use cases (tenants, credentials, keys), for the CLI;
//! - `ops`: readiness and the metrics scrape.
//!
//! - `writer`: group commit; the writes that arrive together share one transaction.
//!
//! Every write goes through `Service::write`: its own savepoint in a batch (`writer`), its
//! journal flushed with the batch's, answered after the batch commits, then the signal.

pub mod accounts;
pub mod api;
pub mod bulk;
pub mod cursor;
pub mod journal;
pub mod list;
mod membership;
pub mod ops;
pub mod resources;
pub mod tenancy;
pub mod writer;

use std::sync::Arc;

use crate::auth::{AuthError, Principal, Scope};
use crate::metrics::Metrics;
use crate::scim::compat::Compat;
use crate::scim::error::ScimError;
use crate::scim::filter::{parse_filter_with, Filter, Limits, Syntax};
use crate::scim::schema::Registry;
use crate::scim::time::now_micros;
use crate::storage::conn::{Conn, Db};
use crate::storage::pool::{Pool, PooledConn};
use crate::storage::StorageError;
use crate::webhooks::Hub;
use journal::{Journal, Signal};

/// Server-wide settings the use cases need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Public base URL of the SCIM API, e.g. `https://idp.example.com/scim/v2`.
    pub base_url: String,
    /// Page size when the client names no `count`, and the most a page may hold.
    pub default_page_size: i64,
    pub max_page_size: i64,
    /// The most members one request may add, remove or set.
    pub max_members_per_request: usize,
    pub filter_limits: Limits,
    /// The server-wide client-dialect tolerances; a tenant's own settings override them
    /// (the principal carries the result, and the use cases follow the principal).
    pub compat: Compat,
    /// MAC key of list cursors (a server secret shared through the database).
    pub cursor_key: Vec<u8>,
    /// /Bulk limits (advertised in ServiceProviderConfig).
    pub bulk: bulk::BulkLimits,
    /// The most webhook subscriptions a tenant may have (`--webhook-max-subscriptions`).
    pub max_webhooks: usize,
    /// What one stored resource may hold.
    pub caps: Caps,
}

/// What one stored resource may hold (see `resources`): above, its write is refused.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Values of one multi-valued attribute (`--max-values-per-attribute`); group `members`
    /// have their own limit.
    pub max_values_per_attribute: usize,
    /// Bytes of its stored JSON (`--max-resource-bytes`).
    pub max_resource_bytes: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            max_values_per_attribute: 1000,
            max_resource_bytes: 262_144,
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            base_url: "http://127.0.0.1:8080/scim/v2".into(),
            default_page_size: 100,
            max_page_size: 1000,
            max_members_per_request: 10_000,
            filter_limits: Limits::default(),
            compat: Compat::default(),
            cursor_key: Vec::new(),
            bulk: bulk::BulkLimits {
                max_operations: 1000,
            },
            max_webhooks: 20,
            caps: Caps::default(),
        }
    }
}

/// What a use case can answer instead of its result. `http` maps each variant to a status
/// in one table; the CLI prints it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A SCIM rule broken by the request (RFC 7644 §3.12).
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// Input that is not acceptable outside SCIM (an `/api/v1` body, an admin command).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the resource has changed: its version is not the one in If-Match")]
    PreconditionFailed,
    #[error("{0}")]
    TooLarge(String),
    #[error("this credential may only read")]
    Forbidden,
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Error {
        match e {
            AuthError::Storage(s) => Error::Storage(s),
            other => Error::Auth(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The use cases, with what they share.
#[derive(Clone)]
pub struct Service {
    pub pool: Pool,
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    /// Wakes feed long-polls after a commit.
    pub signal: Arc<Signal>,
    /// The destination policy subscriptions are checked against, and the wake-up of
    /// delivery after a commit that queued deliveries.
    pub webhooks: Arc<Hub>,
    /// Group commit: the batches every write runs in.
    pub writer: Arc<writer::Writer>,
    /// The process's metrics (`crate::metrics`: its named methods are the registration
    /// points).
    pub metrics: Arc<Metrics>,
    /// Each tenant's policy, roles and parsed rules as last read, with their version
    /// (`accounts::Service::accounts_ctx`).
    pub products: Arc<accounts::Products>,
}

pub(crate) fn ensure_write(p: &Principal) -> Result<()> {
    if p.scope == Scope::Write {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

pub(crate) fn ensure_admin(p: &Principal) -> Result<()> {
    if p.scope == Scope::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

impl Service {
    /// A connection from the pool: the front door takes one per request, and the request's
    /// authentication and use case share it.
    pub fn conn(&self) -> std::result::Result<PooledConn, StorageError> {
        let _waiting = self.metrics.pool_wait();
        Ok(self.pool.get()?)
    }

    /// A journal for one transaction of `p`'s, its events stamped now.
    pub(crate) fn journal(&self, p: &Principal) -> Journal {
        Journal::new(p, &self.settings.base_url, now_micros())
    }

    /// Runs a change in its own savepoint of a batch of writes (`writer`: group commit),
    /// its journal appended to the feed with the batch's (the feed counter is the last lock
    /// a transaction takes); answers once the batch has committed, then wakes the feed's
    /// waiters, and delivery when a journal queued deliveries. Every SCIM and `/api/v1`
    /// write passes through here; `conn` is used only when no batch connection is free.
    pub fn write<T>(
        &self,
        conn: &mut Conn,
        p: &Principal,
        f: impl FnOnce(&mut Db<'_>, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        self.writer.write(self, conn, self.journal(p), f)
    }

    /// Runs a read in one consistent snapshot.
    pub fn read<T>(&self, conn: &mut Conn, f: impl FnOnce(&mut Db<'_>) -> Result<T>) -> Result<T> {
        conn.read_tx(f)
    }

    /// Parses a rule's filter (`/api/v1`), within the configured limits. Rules are the
    /// product's own API, not a SCIM client's dialect: they take every filter form a SCIM
    /// client may use, whatever `--strict` says, so a stored rule never stops parsing.
    pub fn parse_filter(&self, text: &str) -> Result<Filter> {
        self.parse_filter_as(text, Syntax::LENIENT)
    }

    /// Parses a SCIM `filter` parameter with the client forms the principal's dialect allows.
    pub(crate) fn parse_scim_filter(&self, p: &Principal, text: &str) -> Result<Filter> {
        let syntax = Syntax {
            value_path_sub: p.compat.filter_value_path_sub,
        };
        self.parse_filter_as(text, syntax)
    }

    fn parse_filter_as(&self, text: &str, syntax: Syntax) -> Result<Filter> {
        Ok(
            parse_filter_with(text, &self.settings.filter_limits, syntax)
                .map_err(|e| ScimError::invalid_filter(format!("filter {e}")))?,
        )
    }
}
