//! The pool of connections (r2d2), the connector for connections outside it (the batch
//! writer's), opening a database (migrations first) and the readiness probe. What a
//! connection is, and its transactions, is `conn`'s; nothing here tells the backends apart.
//! A pooled connection is not tested on checkout (no `SELECT 1` per request): one whose
//! statement found the server gone, or that was returned inside a transaction, is broken and
//! the pool replaces it.

use std::time::Duration;

use diesel::r2d2::{self, ManageConnection};

use super::conn::{Conn, DbUrl, Gate, WriterLock};
use super::sql::Sql;
use super::StorageError;
use crate::config::SqliteSync;

/// r2d2 manager that opens the backend the URL names.
pub struct Manager {
    url: DbUrl,
    sync: SqliteSync,
    writer: WriterLock,
    timeout: Option<Duration>,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Conn, r2d2::Error> {
        Conn::establish_with(&self.url, self.sync, self.writer.clone(), self.timeout)
            .map_err(r2d2::Error::ConnectionError)
    }

    /// Only used when a connection is tested, which this pool never asks for (see the
    /// module comment); kept correct for anyone who turns testing on.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), r2d2::Error> {
        conn.db()
            .execute(&Sql::new("SELECT 1"))
            .map(|_| ())
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Opens the database: migrations (see `dialect`), then the pool, without statement
/// deadline (admin commands).
pub fn open(url: &str, sync: SqliteSync, pool_size: u32) -> Result<Pool, StorageError> {
    open_with(url, sync, pool_size, None)
}

/// `open`, every statement of the pool's connections stopped after `statement_timeout`
/// (`--db-statement-timeout-ms`; see `watch`).
pub fn open_with(
    url: &str,
    sync: SqliteSync,
    pool_size: u32,
    statement_timeout: Option<Duration>,
) -> Result<Pool, StorageError> {
    Ok(open_with_connector(url, sync, pool_size, statement_timeout)?.0)
}

/// `open_with`, and a connector for connections outside the pool that share its writer lock
/// and its statement deadline (the batch writer's, `provisioning::writer`).
pub fn open_with_connector(
    url: &str,
    sync: SqliteSync,
    pool_size: u32,
    statement_timeout: Option<Duration>,
) -> Result<(Pool, Connector), StorageError> {
    let url = DbUrl::parse(url)?;
    let mut conn = Conn::establish(&url, sync).map_err(|e| StorageError::Connect(e.to_string()))?;
    conn.migrate()?;
    drop(conn);
    let writer = Gate::for_database(&url);
    let pool = r2d2::Pool::builder()
        .max_size(pool_size)
        .test_on_check_out(false)
        .connection_timeout(std::time::Duration::from_secs(10))
        .build(Manager {
            url: url.clone(),
            sync,
            writer: writer.clone(),
            timeout: statement_timeout,
        })
        .map_err(|e| StorageError::Connect(e.to_string()))?;
    Ok((
        pool,
        Connector {
            url,
            sync,
            writer,
            timeout: statement_timeout,
        },
    ))
}

/// Opens connections of the pool's database outside the pool, sharing its SQLite writer
/// lock: the batch writer's own (see `provisioning::writer`).
#[derive(Clone)]
pub struct Connector {
    url: DbUrl,
    sync: SqliteSync,
    writer: WriterLock,
    timeout: Option<Duration>,
}

impl Connector {
    /// Checkpoints of the database's WAL so far: by its checkpoint thread, and by committing
    /// connections themselves (SQLite; `wal`).
    pub fn checkpoints(&self) -> (u64, u64) {
        self.writer.checkpoints.runs()
    }

    pub fn connect(&self) -> Result<Conn, StorageError> {
        Conn::establish_with(&self.url, self.sync, self.writer.clone(), self.timeout)
            .map_err(|e| StorageError::Connect(e.to_string()))
    }

    /// Whether the database has a single writer (SQLite), so that every write of it queues
    /// in one line, whatever its tenant.
    pub fn single_writer(&self) -> bool {
        self.url.single_writer()
    }
}

/// What a readiness probe found (`probe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Migrations of this binary the database lacks (0: current; a newer binary's
    /// migrations applied by another instance are not counted).
    pub pending_migrations: usize,
}

/// Why a readiness probe failed, in words fit for an unauthenticated answer (no database
/// text: the details go to the log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("no pooled connection within {0:?}")]
    NoConnection(std::time::Duration),
    #[error("the database did not answer a query")]
    Query,
    #[error("the database file is missing, not a file, or read-only")]
    File,
}

/// Readiness: a pooled connection within `timeout`, and on it the migrations table read (a
/// query that touches the database, which `SELECT 1` does not on SQLite). For SQLite also
/// that the file is still at its path and writable: open connections keep serving a file
/// that was deleted or replaced, and what they write is lost. Only `stat` is used on it:
/// opening and closing the file from this process would drop SQLite's POSIX locks.
pub fn probe(pool: &Pool, timeout: std::time::Duration) -> Result<Probe, ProbeError> {
    let mut pooled = pool.get_timeout(timeout).map_err(|e| {
        log::warn!("readiness: no pooled connection: {e}");
        ProbeError::NoConnection(timeout)
    })?;
    let conn: &mut Conn = &mut pooled;
    if let Some(file) = conn.file() {
        let ok = std::fs::metadata(file).is_ok_and(|m| m.is_file() && !m.permissions().readonly());
        if !ok {
            log::warn!(
                "readiness: {} is missing, not a file or read-only",
                file.display()
            );
            return Err(ProbeError::File);
        }
    }
    match conn.pending_migrations() {
        Ok(pending_migrations) => Ok(Probe { pending_migrations }),
        Err(e) => {
            log::warn!("readiness: the database did not answer: {e}");
            // A connection that failed its probe is not trusted again.
            conn.mark_broken();
            Err(ProbeError::Query)
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::QueryableByName;

    use super::*;
    use crate::storage::sql::Bind;

    /// Postgres: a connection whose server side went away is dropped by the pool after the
    /// one statement that finds out, and the next checkout gets a working connection (no
    /// `SELECT 1` per checkout). SQLite has no server to lose; there the flag alone is checked.
    #[test]
    fn a_connection_the_server_dropped_is_replaced() {
        let Some(base) = std::env::var("SCIMITAR_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let dir = std::env::temp_dir().join(format!("scimitar-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = DbUrl::parse(&format!("sqlite://{}", dir.join("t.db").display())).unwrap();
            let mut conn = Conn::establish(&url, SqliteSync::Normal).unwrap();
            assert!(!conn.is_broken());
            conn.mark_broken();
            assert!(conn.is_broken());
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        };
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = Conn::establish(&DbUrl::parse(&base).unwrap(), SqliteSync::Normal).unwrap();
        admin
            .db()
            .execute(&Sql::new(&format!("CREATE SCHEMA {schema}")))
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        let pool = open(&url, SqliteSync::Normal, 1).unwrap();
        let pid = |c: &mut Conn| {
            c.db()
                .first::<Pid>(&Sql::new("SELECT pg_backend_pid() AS pid"))
                .map(|p| p.map(|p| p.pid))
        };
        let mut conn = pool.get().unwrap();
        let first = pid(&mut conn).unwrap().unwrap();
        let mut kill = Sql::new("SELECT pg_terminate_backend(");
        kill.bind(Bind::I32(first)).push(")");
        admin.db().execute(&kill).unwrap();
        // The statement that finds the server gone fails (503 to its client), and marks it.
        let mut failed = false;
        for _ in 0..50 {
            if pid(&mut conn).is_err() {
                failed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(failed, "the terminated backend kept answering");
        assert!(conn.is_broken());
        drop(conn);
        let mut next = pool.get().unwrap();
        let second = pid(&mut next).unwrap().unwrap();
        assert_ne!(
            first, second,
            "the pool handed out the dead connection again"
        );
        drop(next);
        drop(pool);
        admin
            .db()
            .execute(&Sql::new(&format!("DROP SCHEMA {schema} CASCADE")))
            .unwrap();
    }
}
