//! SQLite's WAL checkpoints, off the write path. A commit appends its pages to the write-ahead
//! log; a checkpoint copies them back into the database file (and syncs both) so that the log
//! can start again from its beginning. SQLite's default is that the connection whose commit
//! takes the log past 1,000 pages runs the checkpoint itself, before its commit returns: on a
//! server whose writes all go through one writer (`provisioning::writer`), that is every
//! thousandth page of the write path spent copying and syncing while every write waits
//! (`perf record` of a delete load: `fsync` 7 % of the server's CPU, and about half of its
//! `pwrite`s, a quarter, were the checkpoints').
//!
//! Here each database the server opens has one checkpoint thread with its own connection.
//! Every connection's commit hook (`sqlite3_wal_hook`, which replaces the automatic
//! checkpoint) wakes it once `BACKGROUND_FROM` pages were added to the log since the thread's
//! last checkpoint, and it runs a PASSIVE checkpoint (never waits for a lock: writers go on
//! appending meanwhile, readers go on reading). The log starts again from its beginning only
//! when a write begins after a checkpoint that copied all of it, which a thread running beside
//! a busy writer seldom sees; so once the log holds `INLINE_FROM` pages, the committing
//! connection checkpoints itself as SQLite would (copying what the thread has not yet) and
//! the next write starts the log again. A connection opened on its own (`conn::Conn::establish`:
//! tests, the first connection that migrates) has no checkpoint thread and checkpoints itself
//! past `BACKGROUND_FROM` pages, SQLite's own default; every pool (the server's, the admin
//! commands') has one. While a long read holds an old snapshot, no checkpoint can copy past
//! it and the log grows beyond `INLINE_FROM`, as it would under SQLite's own checkpoints; the
//! file is never truncated, only written again from its beginning.
//!
//! Durability does not move: a write is durable once its commit is in the log (under the
//! configured `synchronous`), and a checkpoint interrupted by a crash is redone from the log.

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use libsqlite3_sys as ffi;

/// Log pages not yet copied back after which the checkpoint thread is woken (SQLite's
/// default autocheckpoint).
pub const BACKGROUND_FROM: c_int = 1000;
/// Log pages after which the committing connection checkpoints itself (64 MiB of 4 KiB
/// pages). A log starts again from its beginning only when a write begins after a checkpoint
/// that copied all of it, which a thread running beside a busy writer seldom sees; so the
/// log grows to here, the commit copies what the thread has not (under `BACKGROUND_FROM`
/// pages) and the next write starts the log again.
pub const INLINE_FROM: c_int = 16_000;

/// One database's checkpoints: shared by all its connections (`conn::Gate` holds it), so it
/// outlives each of them. Dropped, it stops its thread.
#[derive(Default)]
pub struct Checkpoints {
    inner: Arc<Inner>,
    /// The thread, joined when the database closes: its connection is then the last one,
    /// whose close checkpoints what is left and removes the log.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// A checkpoint thread is running.
    background: bool,
    /// A commit asked for a checkpoint since the thread last started one.
    wanted: bool,
    /// The thread is checkpointing (a commit meanwhile does not ask again: the pages the
    /// running checkpoint copies would count twice).
    running: bool,
    /// Log pages the thread's last checkpoint found copied back (0 once the log restarted).
    copied: c_int,
    /// The database is closed: the thread ends.
    closed: bool,
    /// Checkpoints the thread ran, and those a committing connection ran itself.
    by_thread: u64,
    inline: u64,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Checkpoints {
    /// Starts the checkpoint thread of the SQLite database at `target` (a path or URI as
    /// diesel opens it). On failure the commits checkpoint themselves, as without a thread.
    pub fn start(&self, target: &str) {
        let inner = self.inner.clone();
        let target = target.to_string();
        lock(&self.inner.state).background = true;
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&inner, &target));
        match spawned {
            Ok(h) => {
                *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(h);
            }
            Err(e) => {
                log::warn!(
                    "SQLite checkpoint thread not started, commits checkpoint themselves: {e}"
                );
                lock(&self.inner.state).background = false;
            }
        }
    }

    /// Checkpoints that ran so far: by the thread, and by committing connections themselves.
    pub fn runs(&self) -> (u64, u64) {
        let s = lock(&self.inner.state);
        (s.by_thread, s.inline)
    }

    /// Installs the commit hook on connection `db`, which must close before `self` drops.
    pub(super) fn install(&self, db: *mut ffi::sqlite3) {
        let arg = Arc::as_ptr(&self.inner) as *mut c_void;
        // SAFETY: `db` is an open connection; `arg` points to `Inner`, which `self` keeps
        // alive longer than the connection (the caller's promise).
        unsafe {
            ffi::sqlite3_wal_hook(db, Some(on_commit), arg);
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        lock(&self.inner.state).closed = true;
        self.inner.wake.notify_one();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = thread {
            // It ends at once, or after the checkpoint it is running.
            let _ = h.join();
        }
    }
}

/// SQLite calls this after each commit in WAL mode, with the pages the log now holds.
unsafe extern "C" fn on_commit(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    if pages < BACKGROUND_FROM {
        return ffi::SQLITE_OK;
    }
    // SAFETY: `arg` is the `Inner` of `install`, alive while the connection is.
    let inner = unsafe { &*(arg as *const Inner) };
    {
        let mut s = lock(&inner.state);
        if s.copied > pages {
            // The log started again since the thread's last checkpoint.
            s.copied = 0;
        }
        if s.background && !s.closed && pages < INLINE_FROM {
            // One checkpoint per `BACKGROUND_FROM` new pages, not one per commit: each copies
            // its pages and syncs both files, and a page written by many commits is copied
            // once.
            if pages - s.copied >= BACKGROUND_FROM && !s.wanted && !s.running {
                s.wanted = true;
                drop(s);
                inner.wake.notify_one();
            }
            return ffi::SQLITE_OK;
        }
    }
    // SAFETY: the connection and schema name SQLite passed in, inside its own callback (as
    // its automatic checkpoint does). A checkpoint that cannot finish now (a reader, the
    // checkpoint thread) leaves the rest for the next one; the commit stands either way.
    let rc = unsafe {
        ffi::sqlite3_wal_checkpoint_v2(
            db,
            name,
            ffi::SQLITE_CHECKPOINT_PASSIVE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc == ffi::SQLITE_OK {
        lock(&inner.state).inline += 1;
    }
    ffi::SQLITE_OK
}

/// The checkpoint thread: waits for a commit's call, checkpoints, until the database closes.
fn run(inner: &Inner, target: &str) {
    let mut conn = match SqliteConnection::establish(target) {
        Ok(c) => c,
        Err(e) => {
            log::warn!(
                "SQLite checkpoint thread has no connection, commits checkpoint themselves: {e}"
            );
            lock(&inner.state).background = false;
            return;
        }
    };
    #[derive(diesel::QueryableByName)]
    struct Done {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        checkpointed: i32,
    }
    loop {
        {
            let mut s = lock(&inner.state);
            while !s.wanted && !s.closed {
                s = inner.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.closed {
                return;
            }
            s.wanted = false;
            s.running = true;
        }
        // PASSIVE: copies what no reader still needs, waits for no lock. An error (the disk)
        // is logged; the next commit asks again, and past `INLINE_FROM` commits do it.
        let done =
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Done>(&mut conn);
        let mut s = lock(&inner.state);
        s.running = false;
        match done {
            // -1: it could not run (another checkpoint, the committing connection's, held
            // the lock); the next commit asks again.
            Ok(d) if d.checkpointed >= 0 => {
                s.copied = d.checkpointed;
                s.by_thread += 1;
            }
            Ok(_) => {}
            Err(e) => log::warn!("SQLite checkpoint failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::SqliteSync;
    use crate::storage::conn::Db;
    use crate::storage::pool;
    use crate::storage::sql::Sql;
    use std::time::{Duration, Instant};

    /// Commits `n` transactions of one 4 KiB row each (a page or more each).
    fn write_pages(db: &mut Db<'_>, n: usize) {
        for _ in 0..n {
            db.execute(&Sql::new("INSERT INTO t (b) VALUES (randomblob(4000))"))
                .expect("insert");
        }
    }

    #[derive(diesel::QueryableByName)]
    struct Frames {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        log: i32,
    }

    /// The pages the log holds (a PASSIVE checkpoint's answer,
    /// asked again while the checkpoint thread's own checkpoint keeps it from running).
    fn log_of(db: &mut Db<'_>) -> Frames {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let f = db
                .first::<Frames>(&Sql::new("PRAGMA wal_checkpoint(PASSIVE)"))
                .expect("checkpoint")
                .expect("row");
            if f.busy == 0 || Instant::now() > until {
                assert_eq!(f.busy, 0, "a checkpoint ran");
                return f;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The server's databases: commits past `super::BACKGROUND_FROM` new log pages wake the
    /// checkpoint thread, which copies them back, and no commit checkpoints itself until the
    /// log holds `super::INLINE_FROM` pages; that commit then does, and the log starts again.
    #[test]
    fn the_thread_checkpoints_and_commits_only_bound_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/c.db", dir.path().display());
        let (pool, connector) =
            pool::open_with_connector(&url, SqliteSync::Normal, 2, None).expect("open");
        let mut conn = pool.get().expect("conn");
        let mut db = conn.db();
        db.execute(&Sql::new("CREATE TABLE t (b BLOB)"))
            .expect("table");
        // Well past BACKGROUND_FROM pages, well under INLINE_FROM.
        write_pages(&mut db, 700);
        let until = Instant::now() + Duration::from_secs(20);
        while connector.checkpoints().0 == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (by_thread, inline) = connector.checkpoints();
        assert!(by_thread > 0, "the thread checkpointed");
        assert_eq!(inline, 0, "no commit checkpointed itself");
        let f = log_of(&mut db);
        assert!(f.log < super::INLINE_FROM, "{} pages", f.log);
        // Past INLINE_FROM, a commit checkpoints and the log starts again: the log file (its
        // high-water mark, never shrunk) stays bounded while INLINE_FROM more commits write
        // twice as many pages. (Over INLINE_FROM by what commits while the thread's own
        // checkpoint keeps the commit's from running.)
        let more = super::INLINE_FROM as usize;
        write_pages(&mut db, more);
        assert!(connector.checkpoints().1 > 0, "a commit checkpointed");
        let size = std::fs::metadata(dir.path().join("c.db-wal"))
            .expect("log file")
            .len();
        let frame = 4096 + 24;
        assert!(
            size <= 2 * super::INLINE_FROM as u64 * frame,
            "the log grew to {} pages",
            size / frame
        );
        let n = db
            .count(&Sql::new("SELECT COUNT(*) AS n FROM t"))
            .expect("count");
        assert_eq!(n, 700 + more as i64);
    }

    /// A connection without a checkpoint thread (`Conn::establish`) checkpoints at its commit
    /// past `BACKGROUND_FROM` pages, as SQLite does by default.
    #[test]
    fn without_a_thread_commits_checkpoint_themselves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url =
            crate::storage::conn::DbUrl::parse(&format!("sqlite://{}/c.db", dir.path().display()))
                .expect("url");
        let gate = crate::storage::conn::WriterLock::default();
        let mut conn = crate::storage::conn::Conn::establish_with(
            &url,
            SqliteSync::Normal,
            gate.clone(),
            None,
        )
        .expect("conn");
        let mut db = conn.db();
        // WAL is set when a database is migrated; this one is not.
        db.execute(&Sql::new("PRAGMA journal_mode = WAL"))
            .expect("wal");
        db.execute(&Sql::new("CREATE TABLE t (b BLOB)"))
            .expect("table");
        write_pages(&mut db, 1500);
        let (by_thread, inline) = gate.checkpoints.runs();
        assert_eq!(by_thread, 0);
        assert!(inline > 0, "the commits checkpointed");
    }
}
