//! Every difference between the two backends, in one place: connection settings and
//! migrations, row locks, the statements one backend writes differently (array inserts, the
//! sorted walk of a value index), planner hints, and which indexes exist (SQLite's FTS5
//! trigram tables, Postgres's pg_trgm). Everything else in storage is SQL both accept.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::index::IndexValue;
use super::sql::{Bind, PgArray, Sql, REUSABLE_LIST};
use super::{StorageError, StoreResult, TenantId};
use crate::config::SqliteSync;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The size (a shift of the primary key) of the blocks whose resources `resource_blocks`
/// counts per tenant and type (migrations 000018 and 000019, kept by triggers: `pk >> 12`),
/// so a deep index page skips counted blocks instead of walking every index entry before it
/// (`search::deep_page`). Both backends keep them: Postgres as append-only deltas, SQLite
/// (one writer) as one upserted row per block.
pub const RESOURCE_BLOCK_BITS: u32 = 12;

/// Postgres: folds the delta rows of every (tenant, type, block) of `resource_blocks` that has
/// more than one into one row holding their sum, none when it is 0 (see
/// `search::blocks::compact_resource_blocks` for why it is right under concurrency). The
/// INSERT sums exactly the rows this DELETE deleted (its RETURNING). One row: `folded`, the
/// rows deleted, and `written`, the rows inserted.
pub const RESOURCE_BLOCK_FOLD: &str = "WITH d AS (DELETE FROM resource_blocks \
     WHERE (tenant_id, rtype, block) IN (SELECT tenant_id, rtype, block FROM resource_blocks \
     GROUP BY tenant_id, rtype, block HAVING COUNT(*) > 1) \
     RETURNING tenant_id, rtype, block, n), \
     w AS (INSERT INTO resource_blocks (tenant_id, rtype, block, n) \
     SELECT tenant_id, rtype, block, SUM(n) FROM d GROUP BY tenant_id, rtype, block \
     HAVING SUM(n) <> 0 RETURNING 1) \
     SELECT (SELECT COUNT(*) FROM d) AS folded, (SELECT COUNT(*) FROM w) AS written";

/// Removed rows of `attr_values` that wait for SQLite's trigram index before a COMMIT writes
/// them (`Backend::settle_trigrams`): about a hundred users' values.
pub const TRIGRAM_REMOVALS_PER_FLUSH: i64 = 2048;

/// The statements that write SQLite's trigram notes into its FTS5 index
/// (`Backend::settle_trigrams`).
#[derive(Clone, Copy, Debug)]
pub struct SettleTrigrams {
    /// `n`: 2 write all, 1 the additions only, 0 nothing; one parameter, the number of
    /// waiting removals that makes them due.
    pub decide: &'static str,
    /// Removals and additions, then both tables of notes emptied.
    pub all: [&'static str; 3],
    /// Additions only, then their table emptied.
    pub added: [&'static str; 2],
}

/// The statements of a trigram merge step (`Backend::trigram_merge_step`).
#[derive(Clone, Copy, Debug)]
pub struct MergeStatements {
    /// Reads the index's structure record (column `block`).
    pub structure: &'static str,
    /// Reads the connection's `data_version` (column `n`).
    pub version: &'static str,
    /// Reads the connection's count of changed rows (column `n`).
    pub changes: &'static str,
    /// One step of the merge.
    pub step: &'static str,
}

/// Which database engine a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// How a read row is locked until the transaction ends (Postgres; SQLite's write
/// transaction already holds the database lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    None,
    /// Changing the row, not its key: `FOR NO KEY UPDATE`, which does not conflict with the
    /// `KEY SHARE` locks foreign-key checks take (adding it as a member elsewhere).
    Update,
    /// Deleting it, or changing it where no foreign key points: `FOR UPDATE`.
    Delete,
}

/// The keys of `Backend::any_key` when all of one kind.
enum KeyKind<'k> {
    Ints(Vec<i64>),
    Texts(Vec<&'k str>),
}

impl<'k> KeyKind<'k> {
    /// All integers or all texts; None for a mix or another kind.
    fn of(keys: &'k [Bind]) -> Option<KeyKind<'k>> {
        let ints: Option<Vec<i64>> = keys
            .iter()
            .map(|k| match k {
                Bind::Int(i) => Some(*i),
                _ => None,
            })
            .collect();
        ints.map(KeyKind::Ints).or_else(|| {
            keys.iter()
                .map(|k| match k {
                    Bind::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect::<Option<Vec<&str>>>()
                .map(KeyKind::Texts)
        })
    }
}

/// Rows per multi-row INSERT: under SQLite's 32,766 and Postgres's 65,535 bound parameters.
pub const ROWS_PER_STATEMENT: usize = 2000;

impl Backend {
    /// The clause that locks the rows a SELECT reads.
    pub fn lock(self, lock: Lock) -> &'static str {
        match (self, lock) {
            (Backend::Sqlite, _) | (Backend::Postgres, Lock::None) => "",
            (Backend::Postgres, Lock::Update) => " FOR NO KEY UPDATE",
            (Backend::Postgres, Lock::Delete) => " FOR UPDATE",
        }
    }

    /// Whether a transaction costs round trips of its own (Postgres: `BEGIN` and `COMMIT`;
    /// on SQLite they are function calls).
    pub fn transaction_costs_round_trips(self) -> bool {
        matches!(self, Backend::Postgres)
    }

    /// Whether statements run in the database's own processes (Postgres), where the server
    /// cannot lower their CPU priority, rather than on the calling thread (SQLite).
    pub fn statements_run_elsewhere(self) -> bool {
        matches!(self, Backend::Postgres)
    }

    /// `FOR UPDATE OF alias`: locks only the rows of one table of a join.
    pub fn lock_of(self, alias: &str) -> String {
        match self {
            Backend::Sqlite => String::new(),
            Backend::Postgres => format!(" FOR UPDATE OF {alias}"),
        }
    }

    /// Claims rows no other transaction holds, skipping the held ones (Postgres); SQLite's
    /// write transaction is exclusive anyway.
    pub fn lock_skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The order-by key `pk` written so the planner cannot use the pk index for the order.
    /// With a selective filter, ordering by an expression of pk stops the planner from
    /// walking the whole table in pk order hoping to meet the few matches early (Postgres did
    /// this when it misjudged an EXISTS, and took seconds for one `emails[type eq "work"]`
    /// lookup at 1M users); it looks the matches up and sorts them.
    pub fn pk_order(self, selective: bool) -> &'static str {
        match (selective, self) {
            (true, Backend::Sqlite) => "+r.pk",
            (true, Backend::Postgres) => "(r.pk + 0)",
            (false, _) => "r.pk",
        }
    }

    /// The opening and closing of a test that `r.pk` is among the keys a subquery selects.
    /// When the subquery `drives` the query (a selective conjunct of a filter's top level),
    /// Postgres reads it once (an InitPlan: `ARRAY(...)`) and fetches the resources through
    /// the primary key, whatever its statistics say: with none, it would otherwise join every
    /// resource of the tenant against every match (see `search::translate`). SQLite plans
    /// `IN (...)` on the rowid the same way with or without ANALYZE.
    pub fn keys_in(self, drives: bool) -> (&'static str, &'static str) {
        match (self, drives) {
            (Backend::Postgres, true) => ("r.pk = ANY(ARRAY(", "))"),
            _ => ("r.pk IN (", ")"),
        }
    }

    /// A test that `col` is one of `keys` (all integers or all texts), in a statement text a
    /// connection keeps prepared (`sql::Sql::reusable`) however many keys there are: an
    /// `IN (?, ?, ...)` list of a page's 100 keys was parsed and planned again at every page.
    /// Up to `REUSABLE_LIST` keys, that list (one text per length, each kept); more, Postgres
    /// binds one array and SQLite one JSON array read by `json_each` (its values drive the
    /// lookups through `col`'s index as an `IN` list would). Not an array for a few keys on
    /// Postgres: its generic plan of `= ANY($1)` assumes several keys, so a lookup of one key
    /// (GET by id) found every custom plan cheaper and was planned again at every run (GET by
    /// id 4,150 -> 2,751/s at 32 clients in the query benchmark). Keys of mixed kinds, or of
    /// another kind, stay a list.
    pub fn any_key(self, col: &str, keys: &[Bind]) -> Sql {
        if keys.is_empty() {
            // `IN ()` is not Postgres's SQL.
            return Sql::new("1 = 0");
        }
        let mut q = Sql::new(col);
        let many = (keys.len() > REUSABLE_LIST)
            .then(|| KeyKind::of(keys))
            .flatten();
        let json = |kind: &KeyKind| match kind {
            KeyKind::Ints(ints) => serde_json::to_string(ints).ok(),
            KeyKind::Texts(texts) => serde_json::to_string(texts).ok(),
        };
        match (self, many) {
            (Backend::Postgres, Some(kind)) => {
                let array = match kind {
                    KeyKind::Ints(ints) => PgArray::Int(ints),
                    KeyKind::Texts(texts) => {
                        PgArray::OptText(texts.into_iter().map(|t| Some(t.to_string())).collect())
                    }
                };
                q.push(" = ANY(").bind(Bind::PgArray(array)).push(")");
            }
            // A JSON array of numbers or of strings: serde_json writes them exactly.
            (Backend::Sqlite, Some(kind)) if let Some(json) = json(&kind) => {
                q.push(" IN (SELECT value FROM json_each(")
                    .bind(Bind::Text(json))
                    .push("))");
            }
            _ => {
                q.push(" IN (").bind_list(keys.iter().cloned()).push(")");
            }
        }
        q
    }

    /// The tenant and type test of `resources r` (binds: tenant, type). When the query is
    /// driven from a filter's keys (`keys_in`), Postgres must not use the (tenant_id, rtype)
    /// indexes instead of the primary key: never analyzed, it estimates a tenant's resources
    /// at a row or two and prefers them, then tests every resource against the key array
    /// (a linear search per row). Written as expressions, the tests are checked on the
    /// fetched rows only.
    pub fn resource_scope(self, driven: bool) -> &'static str {
        match (self, driven) {
            (Backend::Postgres, true) => "r.tenant_id || '' = ? AND r.rtype || '' = ?",
            _ => "r.tenant_id = ? AND r.rtype = ?",
        }
    }

    /// Whether a prefix of `attr_values.path` (the extension test of `search::translate`) is
    /// asked for as its byte range rather than a LIKE prefix (metacharacters escaped). SQLite:
    /// `path` compares bytes, and its connections plan without looking at bound values
    /// (`watch::stable_plans`), so a bound LIKE pattern cannot be an index range there and
    /// would read all of a resource's rows. Postgres: a LIKE prefix, exact whatever `path`'s
    /// collation (a range would follow the collation, and the default may ignore
    /// punctuation).
    pub fn path_prefix_as_range(self) -> bool {
        self == Backend::Sqlite
    }

    /// Whether substring searches (`co`, `ew`) on attribute values go through SQLite's FTS5
    /// trigram index (migration 000004). On Postgres the pg_trgm GIN index serves the LIKE
    /// itself (asked for the operand's rare fragments, `trigram_sample`).
    pub fn has_trigram_table(self) -> bool {
        self == Backend::Sqlite
    }

    /// SQLite's trigram index is written once per transaction (migration 000013): its
    /// triggers note the rows added to and removed from `attr_values`, and these statements
    /// write the notes into the FTS5 index and clear them (`conn::Db::settle_trigrams`).
    ///
    /// Added rows are written before every COMMIT of a write (and before a substring search
    /// inside a write, which then sees its own writes). Removed rows wait, with their
    /// values, until `TRIGRAM_REMOVALS_PER_FLUSH` of them have gathered, and are then written
    /// in one go: FTS5 tokenizes a removed value again and writes its terms as a segment of
    /// their own, and a few hundred removals in one segment cost far less per value than a
    /// batch's few dozen (a delete +30 % with none written at all; `benches/`, README). A
    /// removal that waits leaves the index holding trigrams of a row `attr_values` no longer
    /// has: every substring search joins the index's rows to `attr_values` and tests the
    /// whole comparison on the value found there (`search::translate`), so such an entry
    /// matches nothing, and the counts that choose a search's rarest trigrams are estimates
    /// anyway. One case would go wrong: a row id freed and taken again (SQLite gives the next
    /// row the highest id plus one) while its removal waits, since FTS5 removes a row's
    /// terms by id, and the late removal would take the new value's terms with it. So a
    /// transaction that adds a row whose id has a removal waiting writes every waiting
    /// removal first, in the same statement and in rowid order (removal before addition).
    ///
    /// The statements: a decision (`n`: 2 write the removals and the additions, 1 the
    /// additions only, 0 nothing; its one parameter is the number of waiting removals that
    /// makes them due, `i64::MAX` where only additions may be written), then the full write
    /// (three statements) and the additions' (two). In rowid order, so FTS5 flushes its
    /// terms once: it writes its pending terms out as a segment whenever a rowid comes lower
    /// than the one before (or the same after an insert), and the cascade of a deleted
    /// resource meets its rows in index order, not rowid order. Both tables of notes are read
    /// in their key order and merged (no sort); CROSS JOIN keeps the notes outermost (never a
    /// scan of `attr_values`). None on Postgres (pg_trgm's GIN index is kept by Postgres
    /// itself).
    pub fn settle_trigrams(self) -> Option<SettleTrigrams> {
        match self {
            Backend::Sqlite => Some(SettleTrigrams {
                decide: "SELECT CASE \
                         WHEN EXISTS (SELECT 1 FROM attr_values_trgm_added a \
                         CROSS JOIN attr_values_trgm_removed r ON r.id = a.id) \
                         OR (SELECT COUNT(*) FROM attr_values_trgm_removed) >= ? THEN 2 \
                         WHEN EXISTS (SELECT 1 FROM attr_values_trgm_added) THEN 1 \
                         ELSE 0 END AS n",
                all: [
                    "INSERT INTO attr_values_trgm (attr_values_trgm, rowid, val) \
                     SELECT cmd, id, val FROM (\
                     SELECT 'delete' AS cmd, id, val, 0 AS k FROM attr_values_trgm_removed \
                     UNION ALL SELECT NULL, a.id, v.val, 1 \
                     FROM attr_values_trgm_added a CROSS JOIN attr_values v ON v.id = a.id \
                     ORDER BY 2, 4)",
                    "DELETE FROM attr_values_trgm_removed",
                    "DELETE FROM attr_values_trgm_added",
                ],
                added: [
                    "INSERT INTO attr_values_trgm (rowid, val) SELECT a.id, v.val \
                     FROM attr_values_trgm_added a CROSS JOIN attr_values v ON v.id = a.id \
                     ORDER BY a.id",
                    "DELETE FROM attr_values_trgm_added",
                ],
            }),
            Backend::Postgres => None,
        }
    }

    /// SQLite: one step of merging the FTS5 trigram index's segments into one (FTS5's
    /// incremental `merge` command, with a negative page count: every segment of every level
    /// is eligible), and the statement that reads the connection's count of changed rows,
    /// which the step moves by 2 or more when it did work. Each write batch leaves a segment
    /// of its own and FTS5 merges them only by levels, so a loaded index keeps a dozen or
    /// more, and a substring search looks each of its trigrams up in every one (`co` at 1M
    /// users: 15 segments after the load). `optimize` merges them all at once, under the one
    /// write lock for seconds at 1M users; a step writes about 200 pages (under 1 MiB)
    /// and commits, so writes wait for one step at most. Before them: the structure record
    /// (is a merge due?) and the connection's `data_version` (did another connection commit:
    /// FTS5 starts a merge of every segment over when a new segment appears, so a merge
    /// interleaved with writes never ends and leaves more segments and pages than it found).
    /// None on Postgres (its GIN index keeps itself).
    pub fn trigram_merge_step(self) -> Option<MergeStatements> {
        match self {
            Backend::Sqlite => Some(MergeStatements {
                // FTS5's structure record (row 10 of the index's data table): its segments
                // and their leaf pages, from which `grams::merge_due` decides.
                structure: "SELECT block FROM attr_values_trgm_data WHERE id = 10",
                // Moves when another connection commits (`grams::merge_trigrams` stops).
                version: "SELECT data_version AS n FROM pragma_data_version",
                changes: "SELECT total_changes() AS n",
                step:
                    "INSERT INTO attr_values_trgm (attr_values_trgm, rank) VALUES ('merge', -200)",
            }),
            Backend::Postgres => None,
        }
    }

    /// Postgres: the statement that samples pg_trgm's trigrams of `attr_values` (rows `term`,
    /// `n`: how many sampled values hold it), from which a substring search chooses the
    /// rarest parts of its operand (`search::grams`). About 64 of the table's pages, chosen
    /// at random once for all (`REPEATABLE`), however big the table (its size in pages read
    /// from the file, not from statistics); all of a small table. SQLite counts its FTS5
    /// index instead (`has_trigram_table`).
    pub fn trigram_sample(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                "SELECT g AS term, COUNT(*) AS n FROM attr_values s \
                 TABLESAMPLE SYSTEM (LEAST(100, 6400.0 / GREATEST(1, pg_relation_size('attr_values') / 8192))) \
                 REPEATABLE (18), unnest(public.show_trgm(s.val)) AS g \
                 WHERE s.val IS NOT NULL GROUP BY g",
            ),
        }
    }

    /// Postgres: the two statements of one transaction that fold the append-only deltas of
    /// `resource_blocks` (`search::blocks::compact_resource_blocks`, which argues why they are
    /// right beside concurrent writers, readers and compactors): a table lock that only
    /// compactors (and VACUUM) conflict on, then the fold. SQLite upserts one row per block
    /// and has nothing to fold.
    pub fn resource_block_compaction(self) -> Option<[&'static str; 2]> {
        Some([self.resource_block_lock()?, RESOURCE_BLOCK_FOLD])
    }

    /// Postgres: the table lock a fold of `resource_blocks` takes first, SHARE UPDATE
    /// EXCLUSIVE: it conflicts with itself (and VACUUM), not with the ROW EXCLUSIVE of
    /// writers' inserts nor the ACCESS SHARE of readers. A tenant's deletion takes it too,
    /// before it deletes the tenant's row (`tenancy::delete_tenant`): a fold deletes the
    /// tenant's delta rows and then its INSERT's foreign-key check waits on the tenant's row,
    /// while the deletion, holding that row, cascades onto the rows the fold deleted; with
    /// the lock the two take turns instead of deadlocking. SQLite: none (one writer).
    pub fn resource_block_lock(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("LOCK TABLE resource_blocks IN SHARE UPDATE EXCLUSIVE MODE"),
        }
    }

    /// Refreshes the planner's statistics. Postgres: VACUUM too (outside a transaction), so
    /// the visibility map lets counts use index-only scans, as autovacuum would after a load.
    pub fn analyze(self) -> &'static str {
        match self {
            Backend::Sqlite => "ANALYZE",
            Backend::Postgres => "VACUUM (ANALYZE)",
        }
    }

    /// The tables of the current schema whose rows changed by more than 10 % (and 50 rows)
    /// since their last analyze, as `name` rows (Postgres; SQLite's `PRAGMA optimize` decides
    /// on its own, so none).
    pub fn stale_tables(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                "SELECT relname AS name FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() \
                 AND n_mod_since_analyze > GREATEST(50, 0.1 * n_live_tup)",
            ),
        }
    }

    /// Refreshes the statistics of a changed table (`stale_tables`), or, on SQLite, of every
    /// table that needs it (`PRAGMA optimize`: those never analyzed or much changed).
    /// Postgres: `VACUUM (ANALYZE)`, what autovacuum does after many inserts (version 13
    /// on): without the visibility map it sets, an index-only scan reads the heap for every
    /// row (page 5,000 of 100 by index took 435 ms at 1M users instead of about 60).
    pub fn refresh_statistics(self, table: Option<&str>) -> String {
        match (self, table) {
            (Backend::Postgres, Some(t)) => {
                format!("VACUUM (ANALYZE) \"{}\"", t.replace('"', "\"\""))
            }
            _ => "PRAGMA optimize".to_string(),
        }
    }

    /// The FROM and WHERE of the resources that have a value at the sort path, for walking the
    /// value index in order (`search::order`). `col` is `val` or `num`; `base` the conditions
    /// on `resources r`.
    pub fn valued_rows(self, tenant: &TenantId, path: &str, col: &str, base: &Sql) -> Sql {
        // SQLite: CROSS JOIN keeps the value index outermost, and the conditions on the
        // resource sit in a correlated EXISTS (its `r` shadows the outer one): as plain WHERE
        // terms on `r`, SQLite would first build a Bloom filter over every resource.
        let (join, exists) = match self {
            Backend::Sqlite => ("CROSS JOIN", true),
            Backend::Postgres => ("JOIN", false),
        };
        let mut q = Sql::with(
            &format!(
                " FROM attr_values sv {join} resources r ON r.pk = sv.res_pk \
                 WHERE sv.tenant_id = ? AND sv.path = ? AND sv.{col} IS NOT NULL AND "
            ),
            [Bind::tenant(tenant), Bind::text(path)],
        );
        if exists {
            q.push("EXISTS (SELECT 1 FROM resources r WHERE r.pk = sv.res_pk AND ");
            q.append(base.clone()).push(")");
        } else {
            q.append(base.clone());
        }
        q
    }
}

/// The statements that insert the attribute values of resources (`(res_pk, value)` pairs).
pub fn insert_attr_values(
    backend: Backend,
    tenant: &TenantId,
    values: &[(i64, &IndexValue)],
) -> Vec<Sql> {
    if values.is_empty() {
        return Vec::new();
    }
    match backend {
        Backend::Postgres => {
            // One statement with six array parameters: Postgres parses and plans it once
            // however many rows it carries (a VALUES list costs per parameter).
            let mut q = Sql::new(
                "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val, num) SELECT u.res_pk, ",
            );
            q.bind(Bind::tenant(tenant))
                .push(", u.path, u.elem, u.val, u.num FROM unnest(")
                .bind(Bind::PgArray(PgArray::Int(
                    values.iter().map(|(pk, _)| *pk).collect(),
                )))
                .push(", ");
            value_arrays(&mut q, values.iter().map(|(_, v)| *v));
            q.push(") AS u(res_pk, path, elem, val, num)");
            vec![q]
        }
        Backend::Sqlite => values
            .chunks(ROWS_PER_STATEMENT)
            .map(|chunk| {
                let mut q = Sql::new(
                    "INSERT INTO attr_values (res_pk, tenant_id, path, elem, val, num) VALUES ",
                );
                q.bind_rows(chunk, |(pk, v)| {
                    vec![
                        Bind::Int(*pk),
                        Bind::tenant(tenant),
                        Bind::Text(v.path.clone()),
                        Bind::I32(v.elem),
                        Bind::OptText(v.val.clone()),
                        Bind::OptFloat(v.num),
                    ]
                });
                q
            })
            .collect(),
    }
}

/// A resource's insert (`rows`, one row, no RETURNING) and its values' in one statement that
/// returns the new `pk` (Postgres: data-modifying CTEs), and the columns of `also` too (the
/// tenant's product version, `roles::version_columns`); None where each is its own
/// statement (SQLite, whose round trips are function calls).
pub fn insert_with_values(
    backend: Backend,
    tenant: &TenantId,
    rows: impl FnOnce() -> Sql,
    values: &[IndexValue],
    also: Option<Sql>,
) -> Option<Sql> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let mut q = Sql::new("WITH r AS (");
            q.append(rows())
                .push(
                    " RETURNING pk), v AS (INSERT INTO attr_values (res_pk, tenant_id, path, \
                     elem, val, num) SELECT r.pk, ",
                )
                .bind(Bind::tenant(tenant))
                .push(", u.path, u.elem, u.val, u.num FROM r, ")
                .append(pg_values_unnest(values.iter()))
                .push(") SELECT pk");
            if let Some(also) = also {
                q.push(", ").append(also);
            }
            q.push(" FROM r");
            Some(q)
        }
    }
}

/// An `UPDATE resources SET ... WHERE` of one row (`update`) and the read of that row's
/// attribute values as they were, in one statement (Postgres: a data-modifying CTE, whose
/// read sees the statement's snapshot; the update does not touch the values): a row per
/// value, one of NULLs when the resource has none, no row when the update changed none.
/// None where each is its own statement (SQLite).
pub fn update_with_values(backend: Backend, update: &Sql) -> Option<Sql> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let mut q = Sql::new("WITH u AS (");
            q.append(update.clone()).push(
                " RETURNING pk) SELECT a.path, a.elem, a.val, a.num \
                 FROM u LEFT JOIN attr_values a ON a.res_pk = u.pk",
            );
            Some(q)
        }
    }
}

/// `delete` and `read` in one statement (Postgres: the DELETE as a data-modifying WITH that
/// the SELECT does not read); None where `delete` runs first, then `read`, each its own
/// statement (SQLite). On Postgres the order is not the text's: a WITH the query does not
/// read runs to completion after it, so `read`'s row locks are taken before the DELETE and
/// its cascades (the `ON DELETE CASCADE` of the rows that reference it, at the statement's
/// end). Both see the statement's snapshot: `read` must find the same rows whether or not
/// `delete` ran first, and the caller's lock order must allow either order.
pub fn delete_then(backend: Backend, delete: &Sql, read: &Sql) -> Option<Sql> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let mut q = Sql::new("WITH d AS (");
            q.append(delete.clone()).push(") ").append(read.clone());
            Some(q)
        }
    }
}

/// A resource's values of the paths `gone` deleted and `added` inserted, in one statement
/// (Postgres: the DELETE sees the statement's snapshot, so never the rows the INSERT adds);
/// None where each is its own statement (SQLite).
pub fn rewrite_values(
    backend: Backend,
    tenant: &TenantId,
    pk: i64,
    gone: &[&str],
    added: &[&IndexValue],
) -> Option<Sql> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let mut q = Sql::with(
                "WITH d AS (DELETE FROM attr_values WHERE res_pk = ? AND path = ANY(?)) \
                 INSERT INTO attr_values (res_pk, tenant_id, path, elem, val, num) \
                 SELECT ?, ?, u.path, u.elem, u.val, u.num FROM ",
                [
                    Bind::Int(pk),
                    Bind::PgArray(PgArray::OptText(
                        gone.iter().map(|p| Some((*p).to_string())).collect(),
                    )),
                    Bind::Int(pk),
                    Bind::tenant(tenant),
                ],
            );
            q.append(pg_values_unnest(added.iter().copied()));
            Some(q)
        }
    }
}

/// `unnest(paths, elems, vals, nums) AS u(path, elem, val, num)` of these values (Postgres),
/// for an insert that takes the resource key from elsewhere.
fn pg_values_unnest<'v>(values: impl Iterator<Item = &'v IndexValue> + Clone) -> Sql {
    let mut q = Sql::new("unnest(");
    value_arrays(&mut q, values);
    q.push(") AS u(path, elem, val, num)");
    q
}

/// The four array parameters of values: path, elem, val, num.
fn value_arrays<'v>(q: &mut Sql, values: impl Iterator<Item = &'v IndexValue> + Clone) {
    q.bind(Bind::PgArray(PgArray::OptText(
        values.clone().map(|v| Some(v.path.clone())).collect(),
    )))
    .push(", ")
    .bind(Bind::PgArray(PgArray::I32(
        values.clone().map(|v| v.elem).collect(),
    )))
    .push(", ")
    .bind(Bind::PgArray(PgArray::OptText(
        values.clone().map(|v| v.val.clone()).collect(),
    )))
    .push(", ")
    .bind(Bind::PgArray(PgArray::OptFloat(
        values.map(|v| v.num).collect(),
    )));
}

/// How much of a SQLite database file its connections read through a memory map (1 TiB: all
/// of any database this server keeps). SQLite maps only as much as the file holds, and the
/// mapping is the operating system's page cache, shared by every connection; pages past it
/// are read with a pread() each into the connection's own cache. The bundled SQLite's
/// compile-time ceiling (`SQLITE_MAX_MMAP_SIZE`, 2 GiB by default) is raised to this in
/// `.cargo/config.toml`; a build without it clamps the setting to its own ceiling.
pub const SQLITE_MMAP_BYTES: i64 = 1 << 40;

/// Per-connection SQLite settings: wait for the single writer instead of failing, enforce
/// foreign keys (cascading deletes), and make LIKE case-sensitive so it agrees with Postgres
/// (case-insensitive attributes are stored lower-cased). Reads go through a shared memory map
/// of the file (`SQLITE_MMAP_BYTES`) instead of a read() per page into each connection's own
/// cache.
pub fn setup_sqlite(c: &mut SqliteConnection, sync: SqliteSync) -> diesel::QueryResult<()> {
    let sync = match sync {
        SqliteSync::Normal => "NORMAL",
        SqliteSync::Full => "FULL",
    };
    c.batch_execute(&format!(
        "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = {sync}; PRAGMA case_sensitive_like = ON; \
         PRAGMA mmap_size = {SQLITE_MMAP_BYTES};"
    ))
}

/// SQLite at open: WAL (once, it is a property of the file), then the migrations.
pub fn migrate_sqlite(c: &mut SqliteConnection) -> StoreResult<()> {
    c.batch_execute("PRAGMA journal_mode = WAL;")?;
    c.run_pending_migrations(SQLITE_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| StorageError::Migration(e.to_string()))
}

/// Postgres at open: the migrations under an advisory lock, so several instances starting
/// together do not race.
pub fn migrate_postgres(c: &mut PgConnection) -> StoreResult<()> {
    c.batch_execute("SELECT pg_advisory_lock(7365626901)")?;
    let res = c
        .run_pending_migrations(POSTGRES_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| StorageError::Migration(e.to_string()));
    c.batch_execute("SELECT pg_advisory_unlock(7365626901)")?;
    res
}

/// How many of this binary's SQLite migrations the database lacks (readiness). Reads the
/// migrations table, so it also finds a database file that cannot be read.
pub fn pending_sqlite(c: &mut SqliteConnection) -> StoreResult<usize> {
    c.pending_migrations(SQLITE_MIGRATIONS)
        .map(|m| m.len())
        .map_err(|e| StorageError::Migration(e.to_string()))
}

/// `pending_sqlite` for Postgres.
pub fn pending_postgres(c: &mut PgConnection) -> StoreResult<usize> {
    c.pending_migrations(POSTGRES_MIGRATIONS)
        .map(|m| m.len())
        .map_err(|e| StorageError::Migration(e.to_string()))
}
