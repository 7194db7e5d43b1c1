//! Folding the counted blocks of primary keys (`resource_blocks`, migrations 000018 and
//! 000019) that deep index pages skip by (`super::deep_page`).

use diesel::sql_types::BigInt;
use diesel::QueryableByName;

use super::super::conn::Db;
use super::super::sql::Sql;
use super::super::StoreResult;

/// What one compaction did: delta rows deleted, and the folded rows written for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, QueryableByName)]
pub struct Compaction {
    #[diesel(sql_type = BigInt)]
    pub folded: i64,
    #[diesel(sql_type = BigInt)]
    pub written: i64,
}

/// Folds the rows of `resource_blocks` into one per (tenant, type, block), dropping blocks
/// whose sum is 0; run by the statistics thread every `--db-fold-every-secs`, whether or not
/// statistics are refreshed (`server::start_statistics`), and by the benchmarks after a
/// load. Postgres only: SQLite upserts one row per block (one writer, no lock to share), so
/// there is nothing to fold and this does nothing.
///
/// On Postgres the triggers append a delta row per (tenant, type, block) per insert or delete
/// statement, and never update one, so writes never wait on each other's counter rows; a
/// block's count is the sum of its rows, and readers sum them (`GROUP BY block`). Without
/// compaction the table grows by a row per write statement. The fold is one statement
/// (`dialect::RESOURCE_BLOCK_FOLD`): `WITH d AS (DELETE ... WHERE key IN (keys with more than
/// one row) RETURNING ...) INSERT ... SELECT key, SUM(n) FROM d GROUP BY key HAVING SUM(n) <>
/// 0`, in a transaction that first takes `LOCK TABLE resource_blocks IN SHARE UPDATE EXCLUSIVE
/// MODE`. Its work is not bounded: it folds every unfolded key, under the connection's
/// statement timeout, so a backlog too big for that is cancelled every round. Why it is
/// right under READ COMMITTED (the compactor's level: it runs in its own transaction, so its
/// fold takes a snapshot after the lock is granted):
///
/// - **The sum of every key is kept.** The INSERT sums exactly the rows the DELETE deleted
///   (RETURNING gives each row this statement deleted, once, and only those), per key, so
///   for each key the rows removed and the row added have the same sum; a sum of 0 is
///   dropped, which is the same sum. Both commit together, so no snapshot sees one without
///   the other.
/// - **Concurrent writers.** They only INSERT delta rows. The DELETE reads the rows visible
///   to its snapshot (committed before it began): a writer's uncommitted or later rows are
///   neither deleted nor summed, and stay as deltas beside the folded row until the next
///   round (readers sum both). A writer never waits on the compactor: inserting takes no lock
///   on other rows (the index on the key is not unique), no writer updates or deletes a
///   delta row, and ROW EXCLUSIVE (writers) does not conflict with SHARE UPDATE EXCLUSIVE.
///   The compactor waits on no writer either: its DELETE reaches only committed delta rows,
///   which no writer locks, and its INSERT's foreign-key check takes KEY SHARE on the
///   tenants' rows, which the KEY SHARE of writers' own checks and the NO KEY UPDATE of a
///   tenant's settings do not conflict with. A write that rolls back takes its deltas with
///   it; they were never visible to the compactor.
/// - **A tenant's deletion** is the one transaction that locks a tenant's row against the
///   fold's foreign-key check (FOR UPDATE) and deletes delta rows (its ON DELETE CASCADE).
///   Unguarded, a fold that had deleted the tenant's deltas would wait on the tenant's row
///   while the deletion, holding it, waited on those deltas: a deadlock, either side failing.
///   So the deletion takes the same table lock before it deletes the tenant's row
///   (`tenancy::delete_tenant`, `Backend::resource_block_lock`): a fold that started first
///   finishes first (the deletion then cascades onto its folded row), and a fold that
///   comes second waits for the deletion to commit, then finds the tenant's rows gone.
/// - **Concurrent readers** (`deep_page`, one statement, one snapshot, READ COMMITTED or
///   the REPEATABLE READ of a list's read transaction alike) see either every
///   delta row before the fold or the folded rows after it (plus, either way, the deltas
///   committed since), never a mix of one key's halves: the same sums, the same page.
///   Readers take ACCESS SHARE, which the table lock does not conflict with.
/// - **A second compactor** (another instance) waits on the table lock until the first
///   commits (SHARE UPDATE EXCLUSIVE conflicts with itself), then its fold, a new statement
///   with a new snapshot, sees the first one's result and folds what is left. Without the
///   lock the statement alone would still be right: both snapshots may hold the same delta
///   rows; the second's DELETE reaching a row the first deleted waits for the first to end.
///   If it commits, READ COMMITTED finds the row deleted (there is no newer version to follow)
///   and skips it: the row is not deleted again and not in the second's RETURNING, so its
///   count lands only in the first's folded row, which the second's snapshot does not see. If
///   the first rolls back, the second deletes the row itself. Either way each delta row is
///   counted in exactly one folded row, and a key may keep two rows (the two compactors'
///   parts) until the next round. What the lock rules out is two compactors locking the
///   same rows in different orders (different plans) and one of them failing with a
///   deadlock, and the wasted work of both.
pub fn compact_resource_blocks(db: &mut Db<'_>) -> StoreResult<Compaction> {
    let Some([lock, fold]) = db.backend().resource_block_compaction() else {
        return Ok(Compaction::default());
    };
    db.savepoint(|db| {
        db.execute(&Sql::new(lock))?;
        Ok(db.first(&Sql::new(fold))?.unwrap_or_default())
    })
}
