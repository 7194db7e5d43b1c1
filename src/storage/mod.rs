//! Storage: the database behind Scimitar. `sql` is the one implementation, over SQLite and
//! Postgres through diesel; nothing outside this module touches diesel or SQL.

pub mod sql;

pub use sql::admin_extras::*;
pub use sql::conn::{open, Backend, Conn, Db, Pool, PooledConn, SqliteSync};
pub use sql::product::*;
pub use sql::sessions::*;
pub use sql::store::*;
pub use sql::tenancy::*;

/// What can go wrong in storage. `Conflict` and `VersionMismatch` are the client's business
/// (409, 412); everything else is ours (500, detail logged, never sent).
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
