//! Connections and transactions, shared by both backends. The backend is chosen from the URL
//! scheme here, never guessed. The pool of these connections is `pool`'s.

use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::{Pg, PgConnection};
use diesel::r2d2::R2D2Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryableByName, RunQueryDsl};

use super::dialect::{self, Backend};
use super::sql::{Bind, Prepared, Sql, Stmt};
use super::watch::{self, Stop, Target, Watch};
use super::{StorageError, StoreResult};
use crate::config::SqliteSync;

/// A parsed database URL.
#[derive(Clone, Debug)]
pub struct DbUrl {
    pub backend: Backend,
    /// For SQLite the file path; for Postgres the URL handed to libpq.
    pub target: String,
}

impl DbUrl {
    /// `sqlite://PATH` or `postgres://...` / `postgresql://...`. Anything else is an error:
    /// a mistyped Postgres URL must never become a new SQLite file.
    pub fn parse(url: &str) -> Result<DbUrl, StorageError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StorageError::Config(
                    "sqlite:// URL needs a file path, e.g. sqlite://scimitar.db".into(),
                ));
            }
            Ok(DbUrl {
                backend: Backend::Sqlite,
                target: path.to_string(),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DbUrl {
                backend: Backend::Postgres,
                target: url.to_string(),
            })
        } else {
            let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or(url);
            Err(StorageError::Config(format!(
                "unsupported database URL scheme `{scheme}`: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
            )))
        }
    }

    /// Whether the database has a single writer (SQLite), so that every write of it queues
    /// in one line, whatever its tenant.
    pub fn single_writer(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// The file of a SQLite database; None for Postgres.
    fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        (self.backend == Backend::Sqlite).then(|| self.target.clone().into())
    }
}

/// One connection of either backend, and whether it is broken. SQLite connections share one
/// in-process writer lock: SQLite has a single writer, and waiting on a mutex hands the lock
/// over at once, where SQLite's busy handler sleeps in steps of up to 100 ms (measured: p99
/// create latency fell from ~180 ms to a few ms under 8 concurrent writers).
pub struct Conn {
    inner: Inner,
    /// Set when a statement found the connection dead (see `pool::Manager::has_broken`).
    broken: Cell<bool>,
    /// The statement deadline (`--db-statement-timeout-ms`; None: none).
    timeout: Option<Duration>,
    /// Postgres: where to send a cancel for this connection's statements (see `watch`).
    pg_target: Option<Arc<(String, i32)>>,
    /// The writer lock, held from `begin` to `commit`/`rollback` of a batch (SQLite).
    held: Option<Held>,
    /// SQLite: the database file, as its URL names it (readiness looks at it).
    file: Option<std::path::PathBuf>,
    /// The statements it keeps prepared (see `Db::keep_prepared`).
    prepared: Prepared,
    /// Declared last so it is dropped after the connection, whose SQLite handlers point to it.
    watch: Arc<Watch>,
}

enum Inner {
    Sqlite(SqliteConnection, WriterLock),
    Pg(PgConnection),
}

/// The in-process SQLite writer lock (see `Conn`).
pub type WriterLock = Arc<Gate>;

/// A lock whose guard is owned (`Held`), not borrowed: a batch of writes
/// (`provisioning::writer`) keeps it from its `begin` to its `commit` while the requests it
/// serves take turns on other threads.
#[derive(Default)]
pub struct Gate {
    taken: Mutex<bool>,
    freed: Condvar,
    /// The database's WAL checkpoints (SQLite; see `wal`): every connection sharing this
    /// lock reports its commits there.
    pub(super) checkpoints: super::wal::Checkpoints,
}

impl Gate {
    /// The writer lock of a database the server opens (its pool and its batch writer's
    /// connections): on SQLite with a checkpoint thread, so that commits do not checkpoint
    /// (`wal`).
    pub(super) fn for_database(url: &DbUrl) -> WriterLock {
        let gate = WriterLock::default();
        if url.backend == Backend::Sqlite {
            gate.checkpoints.start(&url.target);
        }
        gate
    }
}

/// The writer lock, held until dropped.
pub struct Held(Arc<Gate>);

impl Gate {
    fn hold(self: &Arc<Self>) -> Held {
        // A poisoned lock only means another writer panicked; the flag is still right.
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *taken {
            taken = self
                .freed
                .wait(taken)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *taken = true;
        Held(self.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut taken = self
            .0
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *taken = false;
        self.0.freed.notify_one();
    }
}

/// A borrowed connection: what every storage function works on.
pub struct Db<'a> {
    inner: DbInner<'a>,
    s: Shared<'a>,
}

/// What a borrowed connection shares with its `Conn`.
#[derive(Clone, Copy)]
struct Shared<'a> {
    broken: &'a Cell<bool>,
    watch: &'a Watch,
    timeout: Option<Duration>,
    prepared: &'a Prepared,
}

/// The message of the error a statement stopped by its deadline fails with (see `stopped`).
pub(super) const DEADLINE: &str = "scimitar: statement deadline exceeded";
/// The message of the error a statement of a cancelled request fails with.
pub(super) const CANCELLED: &str = "scimitar: statement cancelled";

fn marker(m: &str) -> DieselError {
    DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(m.to_string()))
}

/// A database error of a statement the watch stopped, or that Postgres stopped for its
/// `statement_timeout` or a cancel request, as one of the two markers that
/// `StorageError::from` names `Deadline` and `Cancelled`; any other error as it is.
fn stopped(watch: &Watch, e: DieselError) -> DieselError {
    let DieselError::DatabaseError(_, info) = &e else {
        return e;
    };
    let why = watch.stopped().or_else(|| {
        let m = info.message();
        if m.starts_with("canceling statement due to statement timeout") {
            Some(Stop::Deadline)
        } else if m.starts_with("canceling statement due to user request") {
            Some(Stop::Cancelled)
        } else {
            None
        }
    });
    match why {
        Some(Stop::Deadline) => marker(DEADLINE),
        Some(Stop::Cancelled) => marker(CANCELLED),
        None => e,
    }
}

enum DbInner<'a> {
    Sqlite(&'a mut SqliteConnection),
    Pg(&'a mut PgConnection),
}

/// Whether an error says the connection itself is gone (not just the statement).
fn connection_lost(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        )
    )
}

impl Conn {
    /// A connection without statement deadline (admin commands, migrations, tests).
    pub fn establish(url: &DbUrl, sync: SqliteSync) -> Result<Conn, diesel::ConnectionError> {
        Conn::establish_with(url, sync, WriterLock::default(), None)
    }

    pub(super) fn establish_with(
        url: &DbUrl,
        sync: SqliteSync,
        writer: WriterLock,
        timeout: Option<Duration>,
    ) -> Result<Conn, diesel::ConnectionError> {
        let watch = Arc::new(Watch::default());
        let setup = diesel::ConnectionError::CouldntSetupConfiguration;
        let (inner, pg_target) = match url.backend {
            Backend::Sqlite => {
                let c = watch::open_sqlite(&watch, &writer.checkpoints, || {
                    let mut c = SqliteConnection::establish(&url.target)?;
                    dialect::setup_sqlite(&mut c, sync).map_err(setup)?;
                    Ok::<_, diesel::ConnectionError>(c)
                })?;
                (Inner::Sqlite(c, writer), None)
            }
            Backend::Postgres => {
                let mut c = PgConnection::establish(&url.target)?;
                if let Some(t) = timeout {
                    let ms = t.as_millis().max(1);
                    diesel::sql_query(format!("SET statement_timeout = {ms}"))
                        .execute(&mut c)
                        .map_err(setup)?;
                }
                let pid = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                    "pg_backend_pid()",
                ))
                .get_result::<i32>(&mut c)
                .map_err(setup)?;
                // The cancel's side connection gives up after 2 s: a cancel is sent when the
                // database is slow, and its sender holds the request's connection meanwhile.
                let sep = if url.target.contains('?') { '&' } else { '?' };
                let side = format!("{}{sep}connect_timeout=2", url.target);
                (Inner::Pg(c), Some(Arc::new((side, pid))))
            }
        };
        let file = url.sqlite_file();
        Ok(Conn {
            inner,
            broken: Cell::new(false),
            timeout,
            pg_target,
            held: None,
            file,
            prepared: Prepared::default(),
            watch,
        })
    }

    /// Until the guard drops, a cancel of this connection's request (`watch::Cancel`) stops
    /// `on`'s statements too: the request's write runs there (`provisioning::writer`).
    pub fn lend_cancel(&self, on: &Conn) -> watch::LentGuard {
        watch::lend(&self.watch, on.target())
    }

    /// SQLite: the database file, as its URL names it (readiness looks at it).
    pub(super) fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// Applies the migrations the database lacks (see `dialect`).
    pub(super) fn migrate(&mut self) -> StoreResult<()> {
        match &mut self.inner {
            Inner::Sqlite(c, _) => dialect::migrate_sqlite(c),
            Inner::Pg(c) => dialect::migrate_postgres(c),
        }
    }

    /// Migrations of this binary the database lacks (see `pool::probe`).
    pub(super) fn pending_migrations(&mut self) -> StoreResult<usize> {
        match &mut self.inner {
            Inner::Sqlite(c, _) => dialect::pending_sqlite(c),
            Inner::Pg(c) => dialect::pending_postgres(c),
        }
    }

    /// Marks the connection broken: the pool drops it when it comes back.
    pub(super) fn mark_broken(&self) {
        self.broken.set(true);
    }

    /// What `watch::Cancel` needs to stop this connection's statements from another thread.
    pub(super) fn target(&self) -> Target {
        Target {
            watch: self.watch.clone(),
            pg: self.pg_target.clone(),
        }
    }

    /// The connection, and what every `Db` on it shares, borrowed apart.
    fn split(&mut self) -> (&mut Inner, Shared<'_>) {
        let s = Shared {
            broken: &self.broken,
            watch: &self.watch,
            timeout: self.timeout,
            prepared: &self.prepared,
        };
        (&mut self.inner, s)
    }

    pub fn db(&mut self) -> Db<'_> {
        let (inner, s) = self.split();
        let inner = match inner {
            Inner::Sqlite(c, _) => DbInner::Sqlite(c),
            Inner::Pg(c) => DbInner::Pg(c),
        };
        Db { inner, s }
    }

    /// A write transaction. On SQLite it is `BEGIN IMMEDIATE`, so it takes the write lock
    /// up front and never fails half-way with SQLITE_BUSY when upgrading a read.
    pub fn write_tx<T, E: From<StorageError>>(
        &mut self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let (inner, s) = self.split();
        let f = |db: &mut Db<'_>| f(db).map_err(TxError::App);
        let r = match inner {
            Inner::Sqlite(c, writer) => {
                // A poisoned lock only means another writer panicked; the data is SQLite's.
                let _held = writer.hold();
                // The deadline covers the wait for another process's write lock (`BEGIN
                // IMMEDIATE`); each statement then arms it anew.
                s.watch.arm(s.timeout);
                let r = c.immediate_transaction(|c| {
                    let mut db = Db::sqlite(c, s);
                    let out = f(&mut db)?;
                    db.settle_trigrams_for_commit()
                        .map_err(|e| TxError::App(E::from(e)))?;
                    Ok(out)
                });
                s.watch.disarm();
                r
            }
            Inner::Pg(c) => c.transaction(|c| f(&mut Db::pg(c, s))),
        };
        r.map_err(|e| e.into_app(s))
    }

    /// Opens a write transaction that outlives this call (a batch of requests' writes, each
    /// in its own savepoint, see `provisioning::writer`); `commit` or `rollback` ends it. On
    /// SQLite it holds the writer lock until then.
    pub fn begin(&mut self) -> Result<(), StorageError> {
        let r = match &mut self.inner {
            Inner::Sqlite(c, writer) => {
                let held = writer.hold();
                // The deadline covers the wait for another process's write lock.
                self.watch.arm(self.timeout);
                let r = AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE");
                self.watch.disarm();
                if r.is_ok() {
                    self.held = Some(held);
                }
                r
            }
            Inner::Pg(c) => AnsiTransactionManager::begin_transaction(c),
        };
        self.finish(r)
    }

    /// Commits the transaction `begin` opened (its trigram changes written first,
    /// `Db::settle_trigrams_for_commit`). On failure it is rolled back.
    pub fn commit(&mut self) -> Result<(), StorageError> {
        if let Err(e) = self.db().settle_trigrams_for_commit() {
            let _ = self.rollback_all();
            return Err(e);
        }
        let r = match &mut self.inner {
            Inner::Sqlite(c, _) => AnsiTransactionManager::commit_transaction(c),
            Inner::Pg(c) => AnsiTransactionManager::commit_transaction(c),
        };
        let r = match r {
            Ok(()) => Ok(()),
            Err(e) => {
                // diesel rolls back when COMMIT fails; whatever it could not is ended here.
                let _ = self.rollback_all();
                Err(e)
            }
        };
        self.held = None;
        self.finish(r)
    }

    /// Rolls back the transaction `begin` opened.
    pub fn rollback(&mut self) -> Result<(), StorageError> {
        let r = match &mut self.inner {
            Inner::Sqlite(c, _) => AnsiTransactionManager::rollback_transaction(c),
            Inner::Pg(c) => AnsiTransactionManager::rollback_transaction(c),
        };
        self.held = None;
        self.finish(r)
    }

    /// Rolls back whatever transaction is still open (savepoints included) and lets go of the
    /// writer lock; a connection that cannot is marked broken.
    pub fn rollback_all(&mut self) -> Result<(), StorageError> {
        let mut r = Ok(());
        for _ in 0..64 {
            let depth = self.db().transaction_depth();
            r = match depth {
                Ok(None) => break,
                Ok(Some(_)) => match &mut self.inner {
                    Inner::Sqlite(c, _) => AnsiTransactionManager::rollback_transaction(c),
                    Inner::Pg(c) => AnsiTransactionManager::rollback_transaction(c),
                },
                Err(e) => Err(e),
            };
            if r.is_err() {
                self.broken.set(true);
                break;
            }
        }
        self.held = None;
        self.finish(r)
    }

    fn finish(&self, r: diesel::QueryResult<()>) -> Result<(), StorageError> {
        r.map_err(|e| {
            if connection_lost(&e) {
                self.broken.set(true);
            }
            StorageError::from(stopped(&self.watch, e))
        })
    }

    /// A read transaction: one consistent snapshot (a list's count and its page agree), as
    /// `Db::snapshot` takes it.
    pub fn read_tx<T, E: From<StorageError>>(
        &mut self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.db().snapshot(f)
    }

    /// Whether a statement found the connection dead, or a failed write of a batch left its
    /// transaction aborted (`Db::batch_write`). Part of `is_broken`, without its test of an
    /// open transaction, which a batch's connection has between its writes.
    pub(crate) fn is_unusable(&self) -> bool {
        self.broken.get()
    }

    /// Whether the pool must drop this connection: a statement found it dead, a cancel
    /// request was sent to its backend (Postgres: it could still land on a later statement,
    /// see `watch::Watch::was_signalled`), or it is left inside a transaction or with its
    /// transaction manager in error (diesel's own test).
    pub fn is_broken(&mut self) -> bool {
        self.broken.get()
            || self.watch.was_signalled()
            || match &mut self.inner {
                Inner::Sqlite(c, _) => R2D2Connection::is_broken(c),
                Inner::Pg(c) => R2D2Connection::is_broken(c),
            }
    }
}

/// The file of a `sqlite://PATH` URL; None for Postgres (whose backups are `pg_dump`'s).
pub fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>, StorageError> {
    Ok(DbUrl::parse(url)?.sqlite_file())
}

/// A transaction's failure: the caller's own error, or the database's (begin/commit).
enum TxError<E> {
    App(E),
    Db(DieselError),
}

impl<E> From<DieselError> for TxError<E> {
    fn from(e: DieselError) -> TxError<E> {
        TxError::Db(e)
    }
}

impl<E: From<StorageError>> TxError<E> {
    fn into_app(self, s: Shared<'_>) -> E {
        match self {
            TxError::App(e) => e,
            TxError::Db(e) => {
                if connection_lost(&e) {
                    s.broken.set(true);
                }
                E::from(StorageError::from(stopped(s.watch, e)))
            }
        }
    }
}

impl<'a> Db<'a> {
    fn sqlite(c: &'a mut SqliteConnection, s: Shared<'a>) -> Db<'a> {
        Db {
            inner: DbInner::Sqlite(c),
            s,
        }
    }

    fn pg(c: &'a mut PgConnection, s: Shared<'a>) -> Db<'a> {
        Db {
            inner: DbInner::Pg(c),
            s,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            DbInner::Sqlite(_) => Backend::Sqlite,
            DbInner::Pg(_) => Backend::Postgres,
        }
    }

    /// How many transactions (the outer one and its savepoints) are open on this connection.
    fn transaction_depth(&mut self) -> diesel::QueryResult<Option<std::num::NonZeroU32>> {
        match &mut self.inner {
            DbInner::Sqlite(c) => {
                AnsiTransactionManager::transaction_manager_status_mut(*c).transaction_depth()
            }
            DbInner::Pg(c) => {
                AnsiTransactionManager::transaction_manager_status_mut(*c).transaction_depth()
            }
        }
    }

    /// Runs `f`, a read of several statements, in one consistent snapshot: as `f` alone when
    /// this connection is already in a transaction, else in a read transaction of its own
    /// (Postgres: read-only, repeatable read). A read of one statement needs none (a
    /// statement is its own snapshot), which on Postgres spares the `BEGIN` and `COMMIT`
    /// round trips: `search` asks for a snapshot only where a page or its count take more
    /// than one statement (a count and a page apart, a page sorted by value in segments).
    pub fn snapshot<T, E>(&mut self, f: impl FnOnce(&mut Db<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let s = self.s;
        match self.transaction_depth() {
            Ok(None) => {}
            // Inside a transaction: that is the snapshot.
            Ok(Some(_)) => return f(self),
            // A transaction manager in error: refused, as a transaction would be.
            Err(e) => return Err(TxError::Db(e).into_app(s)),
        }
        let f = |db: &mut Db<'_>| f(db).map_err(TxError::App);
        let r = match &mut self.inner {
            DbInner::Sqlite(c) => c.transaction(|c| f(&mut Db::sqlite(c, s))),
            DbInner::Pg(c) => c
                .build_transaction()
                .read_only()
                .repeatable_read()
                .run(|c| f(&mut Db::pg(c, s))),
        };
        r.map_err(|e| e.into_app(s))
    }

    /// Runs `f` inside a savepoint of the current transaction: if it fails, its writes are
    /// rolled back and the transaction goes on (one failed bulk operation leaves the others).
    pub fn savepoint<T, E>(&mut self, f: impl FnOnce(&mut Db<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let s = self.s;
        let r = match &mut self.inner {
            DbInner::Sqlite(c) => c.transaction(|c| f(&mut Db::sqlite(c, s)).map_err(TxError::App)),
            DbInner::Pg(c) => c.transaction(|c| f(&mut Db::pg(c, s)).map_err(TxError::App)),
        };
        r.map_err(|e| e.into_app(s))
    }

    /// Runs one write of a batch (`provisioning::writer`) in a savepoint of the batch's
    /// transaction, as `savepoint` does, except that on Postgres a write that holds leaves
    /// its savepoint open instead of releasing it: the batch's COMMIT releases them all, and
    /// a `RELEASE` per write was a round trip on the tenant's batch connection, where the
    /// tenant's writes take turns. Each write's savepoint nests in the one before; a failed
    /// write rolls back to its own (the most recent of that name) and the batch goes on. If
    /// either statement of the batch's own fails (the `SAVEPOINT`, or the rollback to it: a
    /// cancel that reached it, a lost connection, a transaction already aborted), the
    /// transaction may be left aborted with the batch's earlier writes in it, and Postgres
    /// ends a COMMIT of an aborted transaction without an error: the connection is marked
    /// unusable (`Conn::is_unusable`), so that the batch is abandoned rather than committed
    /// (`provisioning::writer`). The write gets its own error (the `SAVEPOINT`'s, when that
    /// failed).
    /// SQLite releases as `savepoint` does: a savepoint left open would keep the pages it
    /// changed in its journal until the batch ends.
    pub fn batch_write<T, E>(&mut self, f: impl FnOnce(&mut Db<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let s = self.s;
        let c = match &mut self.inner {
            DbInner::Sqlite(_) => return self.savepoint(f),
            DbInner::Pg(c) => c,
        };
        // One of the batch's own statements failed: the batch cannot be committed.
        let unusable = |what: &str, e: &diesel::result::Error| {
            log::warn!("{what} failed ({e}); the write's batch is abandoned");
            s.broken.set(true);
        };
        if let Err(e) = c.batch_execute("SAVEPOINT batch_write") {
            unusable("a write's savepoint", &e);
            return Err(TxError::Db(e).into_app(s));
        }
        match f(&mut Db::pg(c, s)) {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Err(rollback) = c.batch_execute("ROLLBACK TO SAVEPOINT batch_write") {
                    unusable("the rollback of a failed write to its savepoint", &rollback);
                }
                Err(e)
            }
        }
    }

    /// Notes a lost connection, and names a stopped statement (`stopped`), before handing
    /// the error on.
    fn check<T>(&self, r: diesel::QueryResult<T>) -> diesel::QueryResult<T> {
        r.map_err(|e| {
            if connection_lost(&e) {
                self.s.broken.set(true);
            }
            stopped(self.s.watch, e)
        })
    }

    pub fn execute(&mut self, sql: &Sql) -> diesel::QueryResult<usize> {
        let keep = self.s.prepared.keep(sql);
        self.run(
            |c| Stmt::new(sql, keep).execute(c),
            |c| Stmt::new(sql, keep).execute(c),
        )
    }

    pub fn load<T>(&mut self, sql: &Sql) -> diesel::QueryResult<Vec<T>>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    {
        let keep = self.s.prepared.keep(sql);
        self.run(
            |c| Stmt::new(sql, keep).load(c),
            |c| Stmt::new(sql, keep).load(c),
        )
    }

    /// Runs a statement on the backend this is (SQLite or Postgres) under the statement
    /// deadline, noting a lost connection. A cancelled request's statements fail at once.
    fn run<T>(
        &mut self,
        sqlite: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<T>,
        pg: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<T>,
    ) -> diesel::QueryResult<T> {
        if self.s.watch.is_cancelled() {
            return Err(marker(CANCELLED));
        }
        self.s.watch.arm(self.s.timeout);
        let r = match &mut self.inner {
            DbInner::Sqlite(c) => sqlite(c),
            DbInner::Pg(c) => pg(c),
        };
        self.s.watch.disarm();
        self.check(r)
    }

    pub fn first<T>(&mut self, sql: &Sql) -> diesel::QueryResult<Option<T>>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    {
        Ok(self.load(sql)?.into_iter().next())
    }

    /// The rows of `start` whose `column` is one of `keys`: `start`, then ` AND ` and the
    /// test of `Backend::any_key` (a statement text kept prepared however many keys), then
    /// `tail`, one statement per `sql::ID_BATCH` keys (the order holds within each batch).
    /// Reads of many rows by key go through here.
    pub fn load_keyed<T>(
        &mut self,
        start: &Sql,
        column: &str,
        keys: &[Bind],
        tail: &str,
    ) -> StoreResult<Vec<T>>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(super::sql::ID_BATCH) {
            let mut q = start.clone();
            q.push(" AND ")
                .append(self.backend().any_key(column, chunk))
                .push(tail);
            out.extend(self.load::<T>(&q)?);
        }
        Ok(out)
    }

    /// `load_keyed`, each row decoded.
    pub(crate) fn rows_keyed<R: super::Decode>(
        &mut self,
        start: &Sql,
        column: &str,
        keys: &[Bind],
        tail: &str,
    ) -> StoreResult<Vec<R::Row>> {
        self.load_keyed::<R>(start, column, keys, tail)?
            .into_iter()
            .map(R::decode)
            .collect()
    }

    /// The rows of a query, decoded.
    pub(crate) fn rows<R: super::Decode>(&mut self, sql: &Sql) -> StoreResult<Vec<R::Row>> {
        self.load::<R>(sql)?.into_iter().map(R::decode).collect()
    }

    /// The first row of a query, decoded.
    pub(crate) fn row<R: super::Decode>(&mut self, sql: &Sql) -> StoreResult<Option<R::Row>> {
        Ok(self.rows::<R>(sql)?.into_iter().next())
    }

    /// Writes the rows added to `attr_values` that SQLite's trigram index does not hold yet
    /// into it (`dialect::Backend::settle_trigrams`), and the waiting removals too when one
    /// of the added rows took the id of a removed one; nothing to do on Postgres, or when no
    /// change waits. Run before a substring search inside a write, which then sees its own
    /// writes; outside one it finds nothing to do (every COMMIT writes its additions).
    pub fn settle_trigrams(&mut self) -> StoreResult<()> {
        self.settle_trigrams_due(i64::MAX)
    }

    /// `settle_trigrams` before the COMMIT of a write: the waiting removals are written too
    /// once `dialect::TRIGRAM_REMOVALS_PER_FLUSH` of them have gathered.
    pub fn settle_trigrams_for_commit(&mut self) -> StoreResult<()> {
        self.settle_trigrams_due(dialect::TRIGRAM_REMOVALS_PER_FLUSH)
    }

    /// Writes every change waiting for the trigram index, removals included, so that it
    /// holds exactly the values of `attr_values` (tests; a write transaction's).
    pub fn settle_all_trigrams(&mut self) -> StoreResult<()> {
        self.settle_trigrams_due(0)
    }

    fn settle_trigrams_due(&mut self, removals_due: i64) -> StoreResult<()> {
        let Some(st) = self.backend().settle_trigrams() else {
            return Ok(());
        };
        let decide = Sql::with(st.decide, [Bind::Int(removals_due)]);
        let write: &[&str] = match self.count(&decide)? {
            0 => return Ok(()),
            1 => &st.added,
            _ => &st.all,
        };
        for q in write {
            self.execute(&Sql::new(q))?;
        }
        Ok(())
    }

    /// The `n` of a `SELECT COUNT(*) AS n ...` (0 when it returns no row).
    pub fn count(&mut self, sql: &Sql) -> StoreResult<i64> {
        Ok(self
            .first::<super::sql::Count>(sql)?
            .map(|c| c.n)
            .unwrap_or(0))
    }
}

/// Refreshes the planner's statistics (after a bulk load; autovacuum/`PRAGMA optimize` do it
/// eventually on their own).
pub fn analyze(db: &mut Db<'_>) -> StoreResult<()> {
    db.execute(&Sql::new(db.backend().analyze()))?;
    Ok(())
}

/// Keeps the planner's statistics fresh (run by a background thread, `server`): Postgres
/// `VACUUM (ANALYZE)`s every table changed by more than 10 % since its last analyze (autovacuum may be
/// off, or not yet there after a big import); SQLite runs `PRAGMA optimize`. Returns the
/// tables analyzed.
pub fn refresh_statistics(db: &mut Db<'_>) -> StoreResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let backend = db.backend();
    let Some(q) = backend.stale_tables() else {
        db.execute(&Sql::new(&backend.refresh_statistics(None)))?;
        return Ok(Vec::new());
    };
    let stale: Vec<Name> = db.load(&Sql::new(q))?;
    for t in &stale {
        db.execute(&Sql::new(&backend.refresh_statistics(Some(&t.name))))?;
    }
    Ok(stale.into_iter().map(|t| t.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Mmap {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        mmap_size: i64,
    }

    /// A SQLite connection as the server opens it, on a file in a temporary directory (kept
    /// while the returned guard lives).
    fn temp_sqlite() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let c =
            Conn::establish(&DbUrl::parse(&url).expect("url"), SqliteSync::Normal).expect("open");
        (dir, c)
    }

    /// A SQLite connection maps the whole file (`dialect::SQLITE_MMAP_BYTES`), not SQLite's
    /// default 2 GiB: the bundled library was built with the raised ceiling
    /// (`.cargo/config.toml`), which would otherwise clamp the setting silently.
    #[test]
    fn sqlite_connections_map_past_two_gib() {
        let (_dir, mut c) = temp_sqlite();
        let m: Option<Mmap> = c.db().first(&Sql::new("PRAGMA mmap_size")).expect("pragma");
        assert_eq!(m.map(|m| m.mmap_size), Some(dialect::SQLITE_MMAP_BYTES));
    }

    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }

    /// The bundled SQLite was built with the flags of `.cargo/config.toml`: no process-wide
    /// mutex per allocation or per temporary page, temporary page caches grown page by page,
    /// a write's savepoint journal kept in memory up to 8 MiB.
    #[test]
    fn the_bundled_sqlite_has_the_flags_of_cargo_config() {
        let (_dir, mut c) = temp_sqlite();
        let options: Vec<CompileOption> = c
            .db()
            .load(&Sql::new("PRAGMA compile_options"))
            .expect("pragma");
        let has = |o: &str| options.iter().any(|c| c.compile_options == o);
        assert!(has("DEFAULT_MEMSTATUS=0"), "memory statistics are on");
        assert!(
            has("DEFAULT_PCACHE_INITSZ=0"),
            "page caches start at 20 pages"
        );
        assert!(
            !has("ENABLE_MEMORY_MANAGEMENT"),
            "one page-cache group shared by every connection"
        );
        assert!(
            has("STMTJRNL_SPILL=8388608"),
            "savepoint journals spill to a file past 64 KiB"
        );
        let ceiling = format!("MAX_MMAP_SIZE={}", dialect::SQLITE_MMAP_BYTES);
        assert!(has(&ceiling), "{}", options.len());
    }

    #[test]
    fn url_scheme_picks_backend() {
        assert_eq!(
            DbUrl::parse("sqlite://x.db").unwrap().backend,
            Backend::Sqlite
        );
        assert_eq!(DbUrl::parse("sqlite://x.db").unwrap().target, "x.db");
        assert_eq!(
            DbUrl::parse("sqlite:///tmp/x.db").unwrap().target,
            "/tmp/x.db"
        );
        assert_eq!(
            DbUrl::parse("postgres://u@h/db").unwrap().backend,
            Backend::Postgres
        );
        assert_eq!(
            DbUrl::parse("postgresql://u@h/db").unwrap().backend,
            Backend::Postgres
        );
    }

    #[test]
    fn unknown_scheme_is_an_error_not_a_file() {
        for bad in [
            "postgress://u@h/db",
            "mysql://x",
            "scimitar.db",
            "sqlite://",
            "",
        ] {
            assert!(DbUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
