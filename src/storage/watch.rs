//! Statement deadlines and cancellation. Every pooled connection has a `Watch`: the running
//! statement's deadline (`--db-statement-timeout-ms`) and whether the request it serves was
//! cancelled (its client went away). Postgres enforces the deadline itself
//! (`statement_timeout`, set per connection by `conn`) and is cancelled by a cancel request
//! from a side connection (`pg_cancel_backend` of the connection's backend); SQLite is
//! stopped by its progress handler, and by its busy handler while it waits for a lock, both
//! installed here on every connection this process opens. A stopped statement fails with an
//! error that `conn` turns into `StorageError::Deadline` or `StorageError::Cancelled`.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use libsqlite3_sys as ffi;

/// Why a statement was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It ran past the statement deadline.
    Deadline,
    /// Its request was cancelled (the client went away).
    Cancelled,
}

/// Armed with no deadline (the statement may be cancelled, never timed out).
const NO_DEADLINE: u64 = u64::MAX;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// One connection's watch (see the module comment). Shared by pointer with the connection's
/// SQLite handlers (it outlives the connection: `conn::Conn` drops it last) and by `Arc`
/// with the `Cancel` of the request the connection serves.
#[derive(Debug, Default)]
pub struct Watch {
    /// 0: no statement runs under the watch; `NO_DEADLINE`; else the deadline in
    /// nanoseconds since `epoch()`.
    deadline: AtomicU64,
    cancelled: AtomicBool,
    /// What stopped the last statement: 0 nothing, 1 the deadline, 2 a cancel.
    stopped: AtomicU8,
    /// Where this connection's request runs its write meanwhile (`conn::Conn::lend_cancel`):
    /// a cancel of this connection stops that one's statements too.
    lent: Lent,
    /// Postgres: a cancel request was sent to this connection's backend. The signal may land
    /// after the statement it meant has ended, on the next statement the connection runs
    /// (another request's), so the connection is not used again (`conn::Conn::is_broken`).
    signalled: AtomicBool,
}

/// The connection a request's write runs on while it is lent (see `Watch::lent`).
#[derive(Default)]
struct Lent(Mutex<Option<Target>>);

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lent")
    }
}

impl Watch {
    /// A statement starts: it may run for `timeout` (None: as long as it takes).
    pub(super) fn arm(&self, timeout: Option<Duration>) {
        self.stopped.store(0, Ordering::SeqCst);
        let d = match timeout {
            Some(t) => now_nanos().saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)),
            None => NO_DEADLINE,
        };
        self.deadline.store(d, Ordering::SeqCst);
    }

    /// The statement ended.
    pub(super) fn disarm(&self) {
        self.deadline.store(0, Ordering::SeqCst);
    }

    /// Whether the running statement must stop now (asked by SQLite's handlers); notes why.
    fn must_stop(&self) -> bool {
        let d = self.deadline.load(Ordering::Relaxed);
        if d == 0 {
            return false;
        }
        if self.cancelled.load(Ordering::Relaxed) {
            self.stopped.store(2, Ordering::SeqCst);
            return true;
        }
        if d != NO_DEADLINE && now_nanos() >= d {
            self.stopped.store(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Whether the request this connection serves was cancelled: its next statements fail at
    /// once.
    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// What stopped the last statement, if the watch did (SQLite).
    pub(super) fn stopped(&self) -> Option<Stop> {
        match self.stopped.load(Ordering::SeqCst) {
            1 => Some(Stop::Deadline),
            2 => Some(Stop::Cancelled),
            _ => None,
        }
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether a Postgres cancel request was ever sent to this connection's backend.
    pub(super) fn was_signalled(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }

    fn reset(&self) {
        self.cancelled.store(false, Ordering::SeqCst);
        self.stopped.store(0, Ordering::SeqCst);
    }
}

/// What another thread needs to stop a connection's statements.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) watch: Arc<Watch>,
    /// Postgres: the URL to open a side connection on, and the connection's backend pid.
    pub(super) pg: Option<Arc<(String, i32)>>,
}

impl Target {
    /// Stops the statement running now, and every later one until `Watch::reset`.
    fn stop(&self) {
        self.watch.cancel();
        // Held while the lent connection is stopped, so that its borrower cannot give it
        // back (and run another request's statement on it) before the cancel landed.
        let lent = self
            .watch
            .lent
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = &*lent {
            t.stop();
        }
        if let Some(pg) = &self.pg {
            self.watch.signalled.store(true, Ordering::SeqCst);
            let (url, pid) = &**pg;
            let sent = PgConnection::establish(url)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    diesel::sql_query(format!("SELECT pg_cancel_backend({pid})"))
                        .execute(&mut c)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = sent {
                log::warn!("could not cancel the statement of a gone client: {e}");
            }
        }
    }
}

/// A request's write running on another connection than its own (the batch writer's): until
/// the guard drops, a cancel of `own` stops `on`'s statements too. When it drops, `on` is
/// usable again for the next request's write.
pub(super) fn lend(own: &Arc<Watch>, on: Target) -> LentGuard {
    let mut lent = own.lent.0.lock().unwrap_or_else(PoisonError::into_inner);
    if own.is_cancelled() {
        on.watch.cancel();
    }
    *lent = Some(on);
    LentGuard(own.clone())
}

/// See `lend`.
pub struct LentGuard(Arc<Watch>);

impl Drop for LentGuard {
    fn drop(&mut self) {
        let mut lent = self.0.lent.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = lent.take() {
            t.watch.reset();
        }
    }
}

/// A request's hold on the connection it runs on, so that its statements can be stopped from
/// another thread when its client goes away (`http::front`). `attach` when the connection is
/// checked out, drop the returned guard before it goes back to the pool.
#[derive(Default)]
pub struct Cancel {
    /// Set by `fire` (under `on`'s lock, which `attach` reads it under too); read without a
    /// lock by `fired`, which a request waiting in admission asks under another lock.
    fired: AtomicBool,
    on: Mutex<Option<Target>>,
}

impl Cancel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Target>> {
        self.on.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now until the guard drops, `fire` stops `conn`'s statements.
    pub fn attach<'a>(&'a self, conn: &super::conn::Conn) -> Attached<'a> {
        let target = conn.target();
        let mut on = self.lock();
        if self.fired.load(Ordering::SeqCst) {
            target.watch.cancel();
        }
        *on = Some(target);
        Attached(self)
    }

    /// Whether `fire` was called: the request's client went away. Takes no lock.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Stops the attached connection's statements (and later ones, until the guard drops);
    /// a connection attached later starts cancelled. Blocks on Postgres (a side connection
    /// sends the cancel): call it off the async executor.
    pub fn fire(&self) {
        // Held while the cancel is sent, so the connection cannot go back to the pool (and
        // serve another request) before its backend got it.
        let on = self.lock();
        self.fired.store(true, Ordering::SeqCst);
        if let Some(t) = &*on {
            t.stop();
        }
    }
}

/// See `Cancel::attach`.
pub struct Attached<'a>(&'a Cancel);

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.0.lock().take() {
            t.watch.reset();
        }
    }
}

// --- SQLite: the handlers, installed on every connection the process opens ---

thread_local! {
    /// The last SQLite connection opened on this thread (set by `note_opened`).
    static OPENED: Cell<*mut ffi::sqlite3> = const { Cell::new(std::ptr::null_mut()) };
}

unsafe extern "C" fn note_opened(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    OPENED.with(|c| c.set(db));
    ffi::SQLITE_OK
}

/// How long a statement waits for a lock another process holds (as `busy_timeout` did).
const BUSY_TIMEOUT_MS: u64 = 10_000;
/// SQLite's own busy-wait steps, in ms (the last one repeats).
const BUSY_STEPS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

unsafe extern "C" fn on_busy(arg: *mut c_void, count: c_int) -> c_int {
    // SAFETY: `arg` is the `Watch` of the connection (see `install`), alive while it is.
    let watch = unsafe { &*(arg as *const Watch) };
    if watch.must_stop() {
        return 0;
    }
    let n = usize::try_from(count).unwrap_or(0);
    let waited: u64 =
        BUSY_STEPS.iter().take(n).sum::<u64>() + 100 * (n.saturating_sub(BUSY_STEPS.len()) as u64);
    if waited >= BUSY_TIMEOUT_MS {
        return 0;
    }
    let step = BUSY_STEPS.get(n).copied().unwrap_or(100);
    std::thread::sleep(Duration::from_millis(step));
    1
}

unsafe extern "C" fn on_progress(arg: *mut c_void) -> c_int {
    // SAFETY: as in `on_busy`.
    let watch = unsafe { &*(arg as *const Watch) };
    c_int::from(watch.must_stop())
}

/// Virtual machine steps between two looks at the watch (a few microseconds of work).
const PROGRESS_STEPS: c_int = 1000;

/// Turns on SQLite's query planner stability guarantee (QPSG) for connection `db`: a
/// statement's plan never depends on the values bound to it. The bundled SQLite is built with
/// STAT4, and once `PRAGMA optimize` has gathered its samples, a statement that compares a
/// bound value with an indexed column (`attr_values.val = ?`, a `sw` range) is otherwise
/// prepared again at its first step after every new binding, so a kept prepared statement
/// saved nothing: a tenth of the CPU of value-path lookups at 32 clients went to SQLite's
/// parser and planner (`perf record`, 1M users). The search SQL fixes its own join order and
/// drives from its index whatever the statistics say (`search::translate`), so the plans
/// lose nothing they relied on.
fn stable_plans(db: *mut ffi::sqlite3) {
    // SAFETY: `db` is an open connection; the option takes an int and an optional out-pointer.
    let rc = unsafe {
        ffi::sqlite3_db_config(
            db,
            ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as c_int,
            std::ptr::null_mut::<c_int>(),
        )
    };
    if rc != ffi::SQLITE_OK {
        log::warn!("SQLite refused the query planner stability guarantee (code {rc})");
    }
}

/// Opens a SQLite connection with `open` and puts it under `watch`: its progress handler and
/// busy handler stop its statements when the watch says so, and its commits report to
/// `checkpoints` (`wal`). Both must outlive the connection.
pub(super) fn open_sqlite<C, E>(
    watch: &Arc<Watch>,
    checkpoints: &super::wal::Checkpoints,
    open: impl FnOnce() -> Result<C, E>,
) -> Result<C, E> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a function SQLite calls on each new connection, on its thread.
        unsafe { ffi::sqlite3_auto_extension(Some(note_opened)) };
    });
    OPENED.with(|c| c.set(std::ptr::null_mut()));
    let conn = open()?;
    let db = OPENED.with(|c| c.replace(std::ptr::null_mut()));
    if db.is_null() {
        // Never expected (the auto extension runs inside the open on this thread); without
        // the handlers the connection still works, only without deadlines.
        log::warn!("SQLite connection opened without its statement watch");
        return Ok(conn);
    }
    let arg = Arc::as_ptr(watch) as *mut c_void;
    // SAFETY: `db` is the connection just opened (still open, owned by `conn`); `arg` points
    // to the watch, which the caller keeps alive longer than the connection.
    unsafe {
        ffi::sqlite3_progress_handler(db, PROGRESS_STEPS, Some(on_progress), arg);
        ffi::sqlite3_busy_handler(db, Some(on_busy), arg);
    }
    stable_plans(db);
    checkpoints.install(db);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often a statement comparing an indexed column with a bound value is prepared
    /// again over 20 runs with different values, on an in-memory database whose index has
    /// STAT4 samples, with or without `stable_plans`.
    fn reprepares(stable: bool) -> c_int {
        use std::ffi::CString;
        let exec = |db: *mut ffi::sqlite3, sql: &str| {
            let sql = CString::new(sql).unwrap();
            // SAFETY: an open handle and a NUL-terminated text.
            let rc = unsafe {
                ffi::sqlite3_exec(
                    db,
                    sql.as_ptr(),
                    None,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(rc, ffi::SQLITE_OK);
        };
        let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
        let name = CString::new(":memory:").unwrap();
        // SAFETY: a valid name and out-pointer; closed below.
        assert_eq!(
            unsafe { ffi::sqlite3_open(name.as_ptr(), &mut db) },
            ffi::SQLITE_OK
        );
        if stable {
            stable_plans(db);
        }
        exec(
            db,
            "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t (v) SELECT CASE WHEN i % 10 = 0 THEN 'v' || i ELSE 'common' END FROM n; \
             ANALYZE;",
        );
        let sql = CString::new("SELECT k FROM t WHERE v = ?").unwrap();
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        // SAFETY: an open handle, a NUL-terminated text (-1: up to the NUL), an out-pointer.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut())
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        for i in 0..20 {
            let value = CString::new(format!("v{}", i * 10)).unwrap();
            // SAFETY: a prepared statement; SQLITE_TRANSIENT makes SQLite copy the value.
            unsafe {
                ffi::sqlite3_bind_text(stmt, 1, value.as_ptr(), -1, ffi::SQLITE_TRANSIENT());
                while ffi::sqlite3_step(stmt) == ffi::SQLITE_ROW {}
                ffi::sqlite3_reset(stmt);
            }
        }
        // SAFETY: the statement and handle are finalized and closed once, here.
        unsafe {
            let n = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            ffi::sqlite3_finalize(stmt);
            ffi::sqlite3_close(db);
            n
        }
    }

    #[test]
    fn stable_plans_keep_a_prepared_lookup_prepared_across_values() {
        assert!(
            reprepares(false) > 0,
            "without the guarantee, STAT4 makes SQLite prepare the lookup again per value"
        );
        assert_eq!(
            reprepares(true),
            0,
            "with it, the statement is prepared once"
        );
    }

    #[test]
    fn an_armed_watch_stops_at_its_deadline_or_a_cancel_only() {
        let w = Watch::default();
        assert!(!w.must_stop(), "unarmed");
        w.arm(Some(Duration::from_secs(60)));
        assert!(!w.must_stop());
        w.arm(Some(Duration::ZERO));
        assert!(w.must_stop());
        assert_eq!(w.stopped(), Some(Stop::Deadline));
        w.arm(None);
        assert!(!w.must_stop());
        w.cancel();
        assert!(w.must_stop());
        assert_eq!(w.stopped(), Some(Stop::Cancelled));
        w.disarm();
        assert!(
            !w.must_stop(),
            "a cancel stops statements only while one runs"
        );
        w.reset();
        w.arm(None);
        assert!(!w.must_stop());
    }
}
