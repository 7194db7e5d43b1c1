//! SQLite's online backup (`sqlite3_backup_*`, through the bundled library's C interface:
//! diesel does not expose it): a consistent copy of a live database, taken page by page
//! while servers keep writing (under WAL a reader blocks no writer). The copy is written to
//! `PATH.partial` and renamed to `PATH` once complete, so `PATH` is never half a database.
//! Its unsafe code is kept to the two handles below (the crate's other unsafe code: SQLite's
//! progress and busy handlers in `watch`, and the thread priority calls in `http::admission`).

use std::ffi::{c_int, CStr, CString};
use std::path::{Path, PathBuf};

use libsqlite3_sys as ffi;

use super::StorageError;

/// An open database handle, closed when dropped.
struct Handle(*mut ffi::sqlite3);

impl Handle {
    fn open(path: &Path, flags: c_int) -> Result<Handle, StorageError> {
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| StorageError::Config(format!("{}: a NUL in the path", path.display())))?;
        let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
        // SAFETY: a valid C string and out-pointer; the handle is closed by Drop even when
        // the open failed (SQLite asks for that).
        let rc = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut db, flags, std::ptr::null()) };
        let h = Handle(db);
        if rc != ffi::SQLITE_OK {
            return Err(StorageError::Config(format!(
                "cannot open {}: {}",
                path.display(),
                h.message()
            )));
        }
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_busy_timeout(h.0, 10_000) };
        Ok(h)
    }

    /// The handle's last error message.
    fn message(&self) -> String {
        if self.0.is_null() {
            return "out of memory".into();
        }
        // SAFETY: an open (or failed-open) handle; SQLite owns the returned string.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.0)) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: closes a handle this value owns (NULL is a no-op); the backup that used it
        // was finished first (it is dropped before its handles).
        unsafe { ffi::sqlite3_close(self.0) };
    }
}

/// A backup in progress, finished when dropped.
struct Backup<'a> {
    raw: *mut ffi::sqlite3_backup,
    _handles: std::marker::PhantomData<&'a Handle>,
}

impl Drop for Backup<'_> {
    fn drop(&mut self) {
        // SAFETY: finishes a backup this value owns, before its handles are closed.
        unsafe { ffi::sqlite3_backup_finish(self.raw) };
    }
}

/// Pages copied per step: about 4 MB with the default 4 KiB pages.
const STEP_PAGES: c_int = 1024;
/// After this many restarts (another connection wrote mid-copy), the rest is copied in one
/// step: one read snapshot, which under WAL still blocks no writer.
const RESTARTS_BEFORE_ONE_STEP: u32 = 3;

/// Copies the SQLite database at `source` to `dest` (which must not exist), calling
/// `progress(copied, total)` in pages after each step. Returns the pages copied.
pub fn sqlite_backup(
    source: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, StorageError> {
    if !source.is_file() {
        return Err(StorageError::Config(format!(
            "{} is not a database file",
            source.display()
        )));
    }
    if dest.exists() {
        return Err(StorageError::Config(format!(
            "{} already exists: choose a new path (a backup never overwrites)",
            dest.display()
        )));
    }
    let partial = PathBuf::from(format!("{}.partial", dest.display()));
    let _ = std::fs::remove_file(&partial);
    let result = copy(source, &partial, progress);
    match result {
        Ok(pages) => {
            std::fs::rename(&partial, dest).map_err(|e| {
                StorageError::Config(format!("cannot move the copy to {}: {e}", dest.display()))
            })?;
            Ok(pages)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn copy(
    source: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, StorageError> {
    let src = Handle::open(source, ffi::SQLITE_OPEN_READWRITE)?;
    let dst = Handle::open(dest, ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE)?;
    let main = c"main";
    // SAFETY: two open handles and valid names; the backup is finished (Drop) before the
    // handles are closed (declared after them, so dropped first).
    let raw = unsafe { ffi::sqlite3_backup_init(dst.0, main.as_ptr(), src.0, main.as_ptr()) };
    if raw.is_null() {
        return Err(StorageError::Config(format!(
            "cannot start the backup: {}",
            dst.message()
        )));
    }
    let backup = Backup {
        raw,
        _handles: std::marker::PhantomData,
    };
    let (mut restarts, mut last_remaining) = (0u32, c_int::MAX);
    loop {
        let pages = if restarts >= RESTARTS_BEFORE_ONE_STEP {
            -1
        } else {
            STEP_PAGES
        };
        // SAFETY: a live backup.
        let rc = unsafe { ffi::sqlite3_backup_step(backup.raw, pages) };
        // SAFETY: a live backup.
        let (remaining, total) = unsafe {
            (
                ffi::sqlite3_backup_remaining(backup.raw),
                ffi::sqlite3_backup_pagecount(backup.raw),
            )
        };
        if remaining > last_remaining {
            restarts += 1;
        }
        last_remaining = remaining;
        let total = u64::try_from(total).unwrap_or(0);
        let copied = total.saturating_sub(u64::try_from(remaining).unwrap_or(0));
        progress(copied, total);
        match rc {
            ffi::SQLITE_DONE => {
                drop(backup);
                if dst_error(&dst) {
                    return Err(StorageError::Config(format!(
                        "the backup did not complete: {}",
                        dst.message()
                    )));
                }
                return Ok(total);
            }
            ffi::SQLITE_OK => {}
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => {
                return Err(StorageError::Config(format!(
                    "the backup failed: {}",
                    dst.message()
                )))
            }
        }
    }
}

/// Whether the destination handle holds an error after `sqlite3_backup_finish`.
fn dst_error(dst: &Handle) -> bool {
    // SAFETY: an open handle.
    let code = unsafe { ffi::sqlite3_errcode(dst.0) };
    code != ffi::SQLITE_OK && code != ffi::SQLITE_DONE
}
