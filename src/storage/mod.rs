//! Storage: the database behind Scimitar, on SQLite or Postgres through diesel. Each room is a
//! group of tables and the functions that read and write them over a borrowed connection; the
//! caller owns the transaction. Every tenant-scoped function takes a `TenantId`.
//!
//! - `conn`: URLs, connections, the pool, transactions, migrations; `sql`: the statement
//!   builder (bound parameters only); `dialect`: every difference between the two backends.
//! - `index`: what is kept of a document for queries (its columns and attribute values).
//! - Tables: `resources` (resources and their attribute values), `members`, `search` (filter,
//!   sort and page translated to SQL), `feed` (the change feed and per-tenant counters),
//!   `accounts`, `roles` (policies, roles, rules), `deliveries` (webhook subscriptions and
//!   their deliveries), `tenancy` (tenants, credentials, keys, server secrets), `sessions`
//!   (the admin console's sessions).
//!
//! Only this module touches diesel or SQL. Must not depend on `auth`, `provisioning`,
//! `webhooks`, `http` or `cli`; it knows SCIM attributes (`scim`), the product model
//! (`product`) and the configuration's value types (`config`).

pub mod accounts;
pub mod backup;
pub mod conn;
pub mod deliveries;
pub mod dialect;
pub mod feed;
pub mod index;
pub mod members;
pub mod pool;
pub mod resources;
pub mod roles;
pub mod search;
pub mod sessions;
pub mod sql;
pub mod tenancy;
pub mod wal;
pub mod watch;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A tenant's id: the name it was created with, carried by every row of its data. A type of its
/// own so that no other id can be passed where a tenant is meant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> TenantId {
        TenantId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for TenantId {
    fn from(s: &str) -> TenantId {
        TenantId(s.to_string())
    }
}

impl From<String> for TenantId {
    fn from(s: String) -> TenantId {
        TenantId(s)
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What can go wrong in storage. `Conflict` and `VersionMismatch` are the client's business
/// (409, 412); everything else is ours (500 or 503, detail logged, never sent).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    /// A unique index refused the write (e.g. two creates of one userName racing).
    #[error("unique constraint `{0}` violated")]
    Conflict(String),
    #[error("the resource changed since the version the request named")]
    VersionMismatch,
    /// A row referred to another that a concurrent request deleted (e.g. a new member).
    #[error("a resource the change refers to no longer exists")]
    MissingReference,
    /// A stored row that does not decode into its type: named, never read as a default.
    #[error("row {id} of table {table} does not decode: {detail}")]
    Corrupt {
        table: &'static str,
        id: String,
        detail: String,
    },
    /// A statement ran past `--db-statement-timeout-ms` and was stopped (a list or search:
    /// 400 tooMany; anything else: 503 with Retry-After). Its transaction changed nothing.
    #[error("a statement ran past the statement deadline")]
    Deadline,
    /// The request's statement was stopped because its client went away.
    #[error("the request was cancelled")]
    Cancelled,
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migration(String),
}

pub type StoreResult<T> = Result<T, StorageError>;

impl StorageError {
    /// `Corrupt` for the row `id` of `table`.
    pub fn corrupt(table: &'static str, id: impl ToString, detail: impl ToString) -> StorageError {
        StorageError::Corrupt {
            table,
            id: id.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// A row as the database gives it (`QueryableByName`), and what it decodes into; a row that
/// does not decode is `Corrupt`, naming it.
pub(crate) trait Decode:
    diesel::QueryableByName<diesel::sqlite::Sqlite> + diesel::QueryableByName<diesel::pg::Pg> + 'static
{
    type Row;
    fn decode(self) -> StoreResult<Self::Row>;
}

/// A row of a tenant's table read by its `id` (roles, rules, webhooks): its table, its
/// columns, the order of a list and the raw row it decodes from.
pub(crate) trait Keyed: Sized {
    #[doc(hidden)]
    type Raw: Decode<Row = Self>;
    const TABLE: &'static str;
    const COLUMNS: &'static str;
    const ORDER: &'static str;

    /// Every row of the tenant's, in `ORDER`.
    fn list(db: &mut conn::Db<'_>, tenant: &TenantId) -> StoreResult<Vec<Self>> {
        let mut q = sql::select(Self::COLUMNS, Self::TABLE, tenant);
        q.push(&format!(" ORDER BY {}", Self::ORDER));
        db.rows::<Self::Raw>(&q)
    }

    /// The tenant's row `id`.
    fn get(db: &mut conn::Db<'_>, tenant: &TenantId, id: &str) -> StoreResult<Option<Self>> {
        let mut q = sql::select(Self::COLUMNS, Self::TABLE, tenant);
        q.and(" AND id = ?", [sql::Bind::text(id)]);
        db.row::<Self::Raw>(&q)
    }
}

/// Decodes a JSON column of a row; a value that does not decode is `Corrupt`, naming the row.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: impl ToString,
    column: &str,
    text: &str,
) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::corrupt(table, id, format!("column {column}: {e}")))
}

impl From<DieselError> for StorageError {
    fn from(e: DieselError) -> StorageError {
        match e {
            DieselError::NotFound => StorageError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                StorageError::MissingReference
            }
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StorageError::Conflict(info.constraint_name().unwrap_or(info.message()).to_string())
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message() == conn::DEADLINE =>
            {
                StorageError::Deadline
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message() == conn::CANCELLED =>
            {
                StorageError::Cancelled
            }
            // The connection died under the statement (a server restart): the pool drops it
            // (see `pool::Manager::has_broken`) and the client may retry at once.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => StorageError::Connect(info.message().to_string()),
            other => StorageError::Backend(Box::new(other)),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StorageError {
    fn from(e: diesel::r2d2::PoolError) -> StorageError {
        StorageError::Pool(e.to_string())
    }
}
