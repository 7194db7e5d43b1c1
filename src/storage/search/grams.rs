//! Substring searches through a trigram index: the trigrams a filter's `co`/`ew` operands ask
//! for, how many rows hold each (cached in the process), and the search that reads only the
//! rarest.
//!
//! - SQLite (migrations 000004 and 000006): an FTS5 trigram table; its counts are sampled
//!   from the index itself, and the FTS5 query names only the two rarest trigrams.
//! - Postgres: the pg_trgm GIN index serves `LIKE` directly, but reads the posting list of
//!   every trigram the pattern holds (pg_trgm's own trigrams: of each word, lower-cased and
//!   padded, see `pg_like_grams`); one shared by most values (a domain, a common number)
//!   costs as much as the whole search. Counts come from a sample of the table's pages
//!   (`Backend::trigram_sample`), and the index is asked for a few rare substrings of the
//!   operand (`pg_fragments`), the whole pattern re-checked on the rows it finds.

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::columns::column_of;
use crate::scim::filter::CompOp;
use crate::scim::filter::{Cond, ElemSet, Field, Operand};
use crate::scim::schema::Rtype;
use crate::storage::conn::{Conn, Db};
use crate::storage::sql::{Bind, Sql};
use crate::storage::StoreResult;

/// How many rows of the SQLite trigram index hold each trigram (see `substring_grams`).
pub type GramCounts = HashMap<String, i64>;

/// The substring of a `co`/`ew` that a trigram index can serve (3+ characters).
pub(super) fn trigram_operand(cmp: Option<(CompOp, &Operand)>) -> Option<&str> {
    match cmp {
        Some((CompOp::Co | CompOp::Ew, Operand::Str(s))) if s.chars().count() >= 3 => Some(s),
        _ => None,
    }
}

/// The most trigrams of one operand that are counted and may be asked for: a long operand
/// (up to a value's 2,048 bytes) is represented by an even spread of its trigrams. Any subset
/// is enough, since the LIKE that follows makes the match exact.
const GRAMS_PER_OPERAND: usize = 32;

/// The most trigrams counted in one statement (SQLite allows 500 terms in a compound SELECT).
const GRAMS_PER_COUNT: usize = 200;

/// The distinct trigrams of a substring, in order: at most GRAMS_PER_OPERAND of them, always
/// the same ones for the same substring (what is counted is what is asked for).
fn grams_of(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    grams.sort();
    grams.dedup();
    if grams.len() > GRAMS_PER_OPERAND {
        let n = grams.len();
        grams = (0..GRAMS_PER_OPERAND)
            .map(|i| grams[i * n / GRAMS_PER_OPERAND].clone())
            .collect();
    }
    grams
}

/// The `co`/`ew` comparisons of `cond` that a trigram index would serve (operator and
/// operand), to count their trigrams before translating.
fn substring_operands(rt: Rtype, cond: &Cond) -> Vec<(CompOp, String)> {
    fn walk(rt: Rtype, c: &Cond, top: bool, out: &mut Vec<(CompOp, String)>) {
        match c {
            // Only attribute values are searched through the trigram index (columns and
            // membership references are not).
            Cond::Cmp(t, op @ (CompOp::Co | CompOp::Ew), operand) => {
                let value = match &t.field {
                    Field::Attr(path) => !top || column_of(rt, path).is_none(),
                    Field::Ref(_) => false,
                };
                if let (true, Some(s)) = (value, trigram_operand(Some((*op, operand)))) {
                    out.push((*op, s.to_string()));
                }
            }
            Cond::Cmp(..) | Cond::Present(_) | Cond::Extension(_) | Cond::Const(_) => {}
            Cond::Not(c) => walk(rt, c, top, out),
            Cond::And(a, b) | Cond::Or(a, b) => {
                walk(rt, a, top, out);
                walk(rt, b, top, out);
            }
            Cond::Elem { set, inner, .. } if *set != ElemSet::Refs => walk(rt, inner, false, out),
            Cond::Elem { .. } => {}
        }
    }
    let mut out = Vec::new();
    walk(rt, cond, true, &mut out);
    out
}

/// Every trigram the SQLite trigram index would be asked for by `cond` (its `co`/`ew`
/// operands on attribute values), to count them before translating.
pub fn substring_grams(rt: Rtype, cond: &Cond) -> Vec<String> {
    let mut out: Vec<String> = substring_operands(rt, cond)
        .iter()
        .flat_map(|(_, s)| grams_of(s))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// An FTS5 query matching rows that contain trigrams of `s`. With `detail=none` FTS5 has no
/// phrase queries, so this over-approximates the substring; the LIKE that follows makes it
/// exact. FTS5 reads the whole row list of every trigram it is given, and a trigram shared by
/// most values (`@ex`, `com`) costs as much as a scan: with `counts` known, only the two
/// rarest trigrams are asked for (a trigram no row holds alone proves there is no match),
/// and a third when both are common and the third is not too common (`THIRD_GRAM_FROM`,
/// `THIRD_GRAM_UP_TO`); without, every trigram (at most 16).
pub(super) fn trigram_query(s: &str, counts: Option<&GramCounts>) -> String {
    let mut grams = grams_of(s);
    match counts {
        Some(counts) => {
            let count = |g: &String| counts.get(g).copied().unwrap_or(0);
            grams.sort_by_key(|g| (count(g), g.clone()));
            let rarest_absent = grams.first().is_some_and(|g| !counts.contains_key(g));
            let common = grams.first().is_some_and(|g| count(g) >= THIRD_GRAM_FROM)
                && grams.get(2).is_some_and(|g| count(g) <= THIRD_GRAM_UP_TO);
            grams.truncate(match (rarest_absent, common) {
                (true, _) => 1,
                (false, false) => 2,
                (false, true) => 3,
            });
        }
        None => grams.truncate(16),
    }
    grams
        .iter()
        .map(|g| format!("\"{}\"", g.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A trigram's first rows in the index (at most GRAM_COUNT_SAMPLE): how many, and the
/// rowids they span; `top` is the highest rowid of `attr_values`.
#[derive(QueryableByName)]
struct GramRow {
    #[diesel(sql_type = Text)]
    term: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    lo: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    hi: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    top: Option<i64>,
}

impl GramRow {
    /// How many rows hold the trigram: exact below the sample size; above, the sample's
    /// density over the rowids from its first row to the table's last (rows of a trigram
    /// are spread over the ids it was written at; measured at 1M users the estimates of
    /// `123`, `6.3` and `@al` came within 30% of 25,000, 300,000 and 1,000,000).
    fn estimate(&self) -> i64 {
        match (self.lo, self.hi, self.top) {
            (Some(lo), Some(hi), Some(top)) if self.n >= GRAM_COUNT_SAMPLE && hi > lo => {
                let span = (top - lo + 1) as f64 / (hi - lo + 1) as f64;
                (self.n as f64 * span) as i64
            }
            _ => self.n,
        }
    }
}

/// When the second rarest trigram of an operand is in at least this many rows, a third is
/// asked for too: each row both hold is read back to re-check the whole pattern, and two
/// trigrams of about 25,000 rows each (digits of an email, 1M users) left about 1,000 such
/// rows per search against 84 with a third; the query over three trigrams took 0.62 ms
/// against 1.04 (Python's sqlite3 over the query benchmark's database, 300 `co` operands).
const THIRD_GRAM_FROM: i64 = 1_000;
/// ... but not a third in more rows than this: its whole row list is read, and reading a
/// list of 25,000 rows cost about what 200 re-checks did (0.13 ms, same measurement), so
/// past about 100,000 it costs more than it can save (a review measured `@ex`, in every
/// row, as a third trigram: 29 times slower).
const THIRD_GRAM_UP_TO: i64 = 100_000;

/// How long a trigram's count is trusted. Counts only choose which trigrams a substring
/// search reads (the LIKE re-check keeps results exact), so a stale one costs time, never a
/// wrong answer.
const GRAM_COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Rows read per trigram to count it: fewer are counted exactly, more are estimated from the
/// sample (`GramRow::estimate`); reading a whole row list (a trigram in every email, such as
/// `@ex`, has millions) cost as much as a search of it.
const GRAM_COUNT_SAMPLE: i64 = 256;
/// At most this many cached counts (a few MB); the cache starts over beyond it.
const GRAM_COUNT_CAP: usize = 200_000;

type GramCache = std::sync::Mutex<HashMap<String, (i64, std::time::Instant)>>;

/// How many indexed values hold each trigram of the filter's substring searches (up to
/// GRAM_COUNT_SAMPLE as the index counts them, which includes the values of removals still
/// waiting, `Db::settle_trigrams`; estimated beyond), so the search reads only the rarest
/// (None where the backend has no trigram table). Counting reads at most GRAM_COUNT_SAMPLE
/// rows of each trigram, so the first substring search after start costs about what a warm
/// one does (counting whole row lists through the index vocabulary, as before, cost seconds
/// at a million users under load). Counts are cached in the process for GRAM_COUNT_TTL
/// (shared by every database the process opens; they are only a heuristic: the LIKE
/// re-check keeps results exact).
pub(super) fn gram_counts(
    db: &mut Db<'_>,
    rt: Rtype,
    cond: &Cond,
) -> StoreResult<Option<GramCounts>> {
    static CACHE: std::sync::OnceLock<GramCache> = std::sync::OnceLock::new();
    if let Some(sample) = db.backend().trigram_sample() {
        return pg_gram_counts(db, substring_operands(rt, cond), sample);
    }
    if !db.backend().has_trigram_table() {
        return Ok(None);
    }
    let grams = substring_grams(rt, cond);
    if grams.is_empty() {
        return Ok(None);
    }
    // Inside a write, the index first takes that transaction's additions so far (removals
    // may wait: their entries match no row of `attr_values`).
    db.settle_trigrams()?;
    let cache = CACHE.get_or_init(Default::default);
    let now = std::time::Instant::now();
    let mut counts = GramCounts::new();
    let mut missing = Vec::new();
    {
        let c = cache.lock().unwrap_or_else(|p| p.into_inner());
        for g in grams {
            match c.get(&g) {
                Some((n, at)) if now.duration_since(*at) < GRAM_COUNT_TTL => {
                    counts.insert(g, *n);
                }
                _ => missing.push(g),
            }
        }
    }
    if !missing.is_empty() {
        // One statement: each trigram's first GRAM_COUNT_SAMPLE rows (FTS5 reads a row list
        // lazily, in rowid order, so the LIMIT bounds the work), their count and rowid span.
        let mut rows: Vec<GramRow> = Vec::new();
        for chunk in missing.chunks(GRAMS_PER_COUNT) {
            let mut q = Sql::new("");
            for (i, g) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                q.push("SELECT ")
                    .bind(Bind::Text(g.clone()))
                    .push(
                        " AS term, n, lo, hi, (SELECT max(id) FROM attr_values) AS top FROM \
                         (SELECT count(*) AS n, min(rowid) AS lo, max(rowid) AS hi FROM \
                         (SELECT rowid FROM attr_values_trgm WHERE attr_values_trgm MATCH ",
                    )
                    .bind(Bind::Text(format!("\"{}\"", g.replace('"', "\"\""))))
                    .push(&format!(" LIMIT {GRAM_COUNT_SAMPLE}))"));
            }
            let part: Vec<GramRow> = db.load(&q)?;
            rows.extend(part);
        }
        // Only trigrams the index holds are cached: one it lacks is cheap to look up again,
        // and a cached zero (say, counted on another database of this process, or before a
        // load) would make it the "rarest" trigram for minutes.
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() + rows.len() > GRAM_COUNT_CAP {
            c.clear();
        }
        for r in rows {
            let n = r.estimate();
            if n > 0 {
                c.insert(r.term.clone(), (n, now));
                counts.insert(r.term, n);
            }
        }
    }
    Ok(Some(counts))
}

/// The words of ASCII text `s` as pg_trgm splits it (runs of ASCII letters and digits), as
/// byte ranges; None for text that is not ASCII.
fn ascii_words(s: &str) -> Option<Vec<(usize, usize)>> {
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i > start {
            words.push((start, i));
        } else {
            i += 1;
        }
    }
    Some(words)
}

/// pg_trgm's trigrams of the literal text `s` of a LIKE pattern, as its GIN support extracts
/// them (`get_wildcard_part`): each word (a run of alphanumeric characters, lower-cased) is
/// padded with two spaces in front and one behind, except where it meets a wildcard
/// (`wild_start`: `s` follows a `%`; `wild_end`: a `%` follows it), and a padded word of
/// fewer than three characters gives none. None for text that is not ASCII (pg_trgm's
/// letters and case follow the database's locale there).
pub(super) fn pg_like_grams(s: &str, wild_start: bool, wild_end: bool) -> Option<Vec<String>> {
    let mut grams = Vec::new();
    for (start, end) in ascii_words(s)? {
        let mut word = String::new();
        if start > 0 || !wild_start {
            word.push_str("  ");
        }
        word.push_str(&s[start..end].to_ascii_lowercase());
        if end < s.len() || !wild_end {
            word.push(' ');
        }
        for k in 0..word.len().saturating_sub(2) {
            grams.push(word[k..k + 3].to_string());
        }
    }
    grams.sort();
    grams.dedup();
    Some(grams)
}

/// The substrings of a `co`/`ew` operand `s` to ask Postgres's trigram index for, rarest
/// first by `counts` (pg_trgm trigrams, see `pg_like_grams`), or None to search the whole
/// pattern (text that is not ASCII, or no substring that gives a trigram). Each is a
/// substring of `s` holding no LIKE metacharacter, searched as `%fragment%`: every value
/// containing `s` contains it, so the candidates are a superset and the whole pattern,
/// re-checked on them, keeps the answer exact. A fragment is the three characters of one
/// trigram of the operand, widened by the neighbouring separator where pg_trgm pads the
/// word (`56.` asks for `56 `; `.98` for `  9` and ` 98`). Fragments are kept, cheapest
/// first, while they cost at most PG_FRAGMENT_SPREAD times the cheapest or at most
/// PG_FRAGMENT_FLOOR (a fragment's cost: the sampled rows of its trigrams), at most
/// PG_FRAGMENTS of them, each adding a trigram.
pub(super) fn pg_fragments(op: CompOp, s: &str, counts: &GramCounts) -> Option<Vec<String>> {
    let wild_end = op == CompOp::Co;
    let mut frags: Vec<(i64, String, Vec<String>)> = Vec::new();
    // Fragments met so far (an operand of 2,048 bytes has about as many windows).
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (start, i) in ascii_words(s)? {
        // The word s[start..i], padded as pg_trgm pads it in this pattern.
        let lpad = if start > 0 { 2 } else { 0 };
        let rpad = usize::from(i < s.len() || !wild_end);
        let padded = lpad + (i - start) + rpad;
        for k in 0..padded.saturating_sub(2) {
            // Window [k, k + 3) of the padded word, back in `s`: padding in front is the
            // separator before the word, padding behind the one after it.
            let lo = if k < lpad {
                start - 1
            } else {
                start + k - lpad
            };
            let hi = if k + 3 > lpad + (i - start) {
                if i >= s.len() {
                    // The end of an `ew` operand: only the whole pattern asks for it.
                    continue;
                }
                i + 1
            } else {
                start + k + 3 - lpad
            };
            let frag = &s[lo..hi];
            if frag.contains(['%', '_', '\\']) || !seen.insert(frag) {
                continue;
            }
            let grams = pg_like_grams(frag, true, true)?;
            if grams.is_empty() {
                continue;
            }
            let cost = grams
                .iter()
                .map(|g| counts.get(g).copied().unwrap_or(0))
                .sum();
            frags.push((cost, frag.to_string(), grams));
        }
    }
    frags.sort_by(|a, b| (a.0, b.1.len(), &a.1).cmp(&(b.0, a.1.len(), &b.1)));
    let cheapest = frags.first()?.0.max(1);
    let mut chosen: Vec<String> = Vec::new();
    let mut covered: Vec<String> = Vec::new();
    for (cost, frag, grams) in frags {
        if chosen.len() == PG_FRAGMENTS
            || (cost > cheapest * PG_FRAGMENT_SPREAD && cost > PG_FRAGMENT_FLOOR)
        {
            break;
        }
        if grams.iter().all(|g| covered.contains(g)) {
            continue;
        }
        covered.extend(grams);
        chosen.push(frag);
    }
    Some(chosen)
}

/// At most this many fragments of an operand are asked for (`pg_fragments`).
const PG_FRAGMENTS: usize = 6;
/// Fragments costing up to this many times the cheapest are asked for too: together they
/// leave fewer candidates to re-check, and a trigram held by most values (hundreds of times
/// the rarest) is left out.
const PG_FRAGMENT_SPREAD: i64 = 8;
/// Fragments costing up to this many sampled rows are asked for whatever the cheapest costs:
/// a sample of about 64 pages sees a rare trigram a few times or not at all, so the cheapest
/// can be underestimated (`408` counted once held 71,576 values at 1M users, and asked for
/// alone left that many rows to re-check: 200 ms); a trigram in most values (a domain, a run
/// number) is counted in the hundreds.
const PG_FRAGMENT_FLOOR: i64 = 64;
type Sample = std::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<GramCounts>)>>;

/// One sampled trigram: how many sampled values hold it.
#[derive(QueryableByName)]
struct SampledGram {
    #[diesel(sql_type = Text)]
    term: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The process's sample of Postgres's trigrams and when it was taken (see `pg_gram_counts`).
fn sample_cell() -> &'static Sample {
    static SAMPLE: std::sync::OnceLock<Sample> = std::sync::OnceLock::new();
    SAMPLE.get_or_init(Default::default)
}

/// The process's sample when it is younger than `max_age`.
fn cached_sample(max_age: std::time::Duration) -> Option<std::sync::Arc<GramCounts>> {
    let now = std::time::Instant::now();
    sample_cell()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .filter(|(at, _)| now.duration_since(*at) < max_age)
        .map(|(_, s)| s.clone())
}

/// Takes a sample with `sample_sql` and keeps it for the process.
fn take_sample(db: &mut Db<'_>, sample_sql: &str) -> StoreResult<std::sync::Arc<GramCounts>> {
    let rows: Vec<SampledGram> = db.load(&Sql::new(sample_sql))?;
    let s: std::sync::Arc<GramCounts> =
        std::sync::Arc::new(rows.into_iter().map(|r| (r.term, r.n)).collect());
    *sample_cell().lock().unwrap_or_else(|p| p.into_inner()) =
        Some((std::time::Instant::now(), s.clone()));
    Ok(s)
}

/// The leaf pages of each segment of an FTS5 index, read from its structure record (FTS5's
/// file format, which SQLite keeps compatible: a 4-byte cookie, an optional 4-byte version
/// marker, varints for the levels, the segments and a write counter, then per level its
/// merge state and segment count, and per segment its id and first and last leaf page, with
/// five more varints in the second version). None if the record does not read so.
fn segment_pages(record: &[u8]) -> Option<Vec<u64>> {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        // SQLite's varint: big-endian 7-bit groups, the ninth byte whole.
        let mut v: u64 = 0;
        for k in 0..9 {
            let x = *b.get(*i)?;
            *i += 1;
            if k == 8 {
                return Some((v << 8) | u64::from(x));
            }
            v = (v << 7) | u64::from(x & 0x7f);
            if x & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut i = 4;
    let v2 = record.get(4..8) == Some(&[0xff, 0x00, 0x00, 0x01][..]);
    if v2 {
        i += 4;
    }
    let levels = varint(record, &mut i)?;
    let _segments = varint(record, &mut i)?;
    let _write_counter = varint(record, &mut i)?;
    let mut pages = Vec::new();
    for _ in 0..levels {
        let _merge = varint(record, &mut i)?;
        let n = varint(record, &mut i)?;
        for _ in 0..n {
            let _id = varint(record, &mut i)?;
            let first = varint(record, &mut i)?;
            let last = varint(record, &mut i)?;
            if v2 {
                for _ in 0..5 {
                    varint(record, &mut i)?;
                }
            }
            pages.push(last.saturating_sub(first).saturating_add(1));
        }
    }
    Some(pages)
}

/// Whether merging the trigram index into one segment is worth its writes: when the
/// segments beside the largest hold a tenth of its pages or more (a bulk load or import
/// leaves a dozen or more segments of similar size), or there are 16 or more. Not after a
/// few batches of writes: a merge rewrites the whole index (some 40,000 pages at 1M
/// users), so merging whenever a new segment appeared would rewrite it every round of a
/// busy server; this way an index is rewritten after it changed by a tenth at the most.
pub fn merge_due(pages: &[u64]) -> bool {
    // Saturating: the figures come from the database file, not from this code.
    let largest = pages.iter().copied().max().unwrap_or(0);
    let all = pages.iter().fold(0u64, |a, p| a.saturating_add(*p));
    let rest = all.saturating_sub(largest);
    pages.len() >= 16 || (pages.len() >= 2 && rest.saturating_mul(10) >= largest)
}

/// SQLite: whether a merge of the trigram index is due (`merge_due` of its structure
/// record); false on Postgres. The statistics thread asks on a pool connection before it
/// opens one of its own for `merge_trigrams`.
pub fn trigram_merge_due(db: &mut Db<'_>) -> StoreResult<bool> {
    #[derive(QueryableByName)]
    struct Record {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        block: Vec<u8>,
    }
    let Some(sql) = db.backend().trigram_merge_step() else {
        return Ok(false);
    };
    let record: Option<Record> = db.first(&Sql::new(sql.structure))?;
    Ok(record
        .and_then(|r| segment_pages(&r.block))
        .is_some_and(|pages| merge_due(&pages)))
}

/// What one round of `merge_trigrams` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeRound {
    /// Steps that merged something.
    pub steps: usize,
    /// Whether the index is merged (the last step found nothing left); false when none was
    /// due, when a write came first, or at `max_steps`.
    pub done: bool,
    /// Whether another connection committed during the round (before it began, or between
    /// two steps), which ended it.
    pub interrupted: bool,
}

/// SQLite: merges the trigram index into one segment (`Backend::trigram_merge_step`) when
/// `merge_due` says so and no other connection commits: none during `quiet` before the
/// first step, none between two steps (FTS5 would start the merge over with the new
/// segment). Each step is a write transaction of its own, at most `max_steps`, `pause`
/// apart. Nothing on Postgres. The statistics thread calls it every round on a connection
/// of its own, so a merge runs once writes have paused (after a load or an import) and
/// gives way to the first write.
pub fn merge_trigrams(
    conn: &mut Conn,
    max_steps: usize,
    quiet: std::time::Duration,
    pause: std::time::Duration,
) -> StoreResult<MergeRound> {
    let mut round = MergeRound::default();
    let Some(sql) = conn.db().backend().trigram_merge_step() else {
        return Ok(round);
    };
    let (version, changes) = (sql.version, sql.changes);
    if !trigram_merge_due(&mut conn.db())? {
        return Ok(round);
    }
    let mut seen = conn.db().count(&Sql::new(version))?;
    std::thread::sleep(quiet);
    while round.steps < max_steps {
        // This connection's own commits leave its data_version as it was.
        let now = conn.db().count(&Sql::new(version))?;
        if now != seen {
            round.interrupted = true;
            return Ok(round);
        }
        seen = now;
        let worked = conn.write_tx(|db| {
            let before = db.count(&Sql::new(changes))?;
            db.execute(&Sql::new(sql.step))?;
            // FTS5: a step that found nothing to merge moves the count by less than 2.
            Ok::<_, crate::storage::StorageError>(db.count(&Sql::new(changes))? - before >= 2)
        })?;
        if !worked {
            round.done = true;
            return Ok(round);
        }
        round.steps += 1;
        std::thread::sleep(pause);
    }
    Ok(round)
}

/// Postgres: takes a fresh sample of the trigrams when the process has none or has one older
/// than half GRAM_COUNT_TTL, so that no search takes one itself (47-146 ms at a million
/// users) while the statistics thread calls this (`server::start_statistics`: at start and
/// on every round). Ok(false) when nothing was taken: the sample is fresh, or the backend
/// samples nothing (SQLite).
pub fn refresh_trigram_sample(db: &mut Db<'_>) -> StoreResult<bool> {
    let Some(sample_sql) = db.backend().trigram_sample() else {
        return Ok(false);
    };
    if cached_sample(GRAM_COUNT_TTL / 2).is_some() {
        return Ok(false);
    }
    take_sample(db, sample_sql)?;
    Ok(true)
}

/// Postgres: takes a new sample of the trigrams whatever the age of the one held, which
/// stays in use until the new one replaces it (the statistics thread, when `attr_values`
/// changed by a tenth since its last analyze). Ok(false) on a backend that samples nothing.
pub fn retake_trigram_sample(db: &mut Db<'_>) -> StoreResult<bool> {
    let Some(sample_sql) = db.backend().trigram_sample() else {
        return Ok(false);
    };
    take_sample(db, sample_sql)?;
    Ok(true)
}

/// Drops the process's sample: the next refresh or search takes a new one (tests).
pub fn forget_trigram_sample() {
    *sample_cell().lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// How old the process's sample of Postgres's trigrams is (None: none taken yet).
pub fn trigram_sample_age() -> Option<std::time::Duration> {
    let s = sample_cell().lock().unwrap_or_else(|p| p.into_inner());
    s.as_ref().map(|(at, _)| at.elapsed())
}

/// Postgres: how many values of a sample of `attr_values` hold each pg_trgm trigram of the
/// filter's substring operands. The sample (`Backend::trigram_sample`: about 64 pages read
/// whatever the table's size) is taken once per GRAM_COUNT_TTL for the process and kept whole,
/// so a later operand costs no query (the statistics thread keeps it fresh ahead of that:
/// `refresh_trigram_sample`); a trigram the sample lacks counts 0 (rarer than its
/// resolution). Only a heuristic, like SQLite's counts: the re-check keeps results exact.
fn pg_gram_counts(
    db: &mut Db<'_>,
    operands: Vec<(CompOp, String)>,
    sample_sql: &str,
) -> StoreResult<Option<GramCounts>> {
    if operands.is_empty() {
        return Ok(None);
    }
    let sample = match cached_sample(GRAM_COUNT_TTL) {
        Some(s) => s,
        // In a savepoint, so a sample that fails (a statement deadline, say) leaves the
        // search's transaction usable: the search then asks for the whole pattern, as
        // without a sample, instead of failing.
        None => match db.savepoint(|db| take_sample(db, sample_sql)) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("trigram sample not taken: {e}");
                return Ok(None);
            }
        },
    };
    let mut counts = GramCounts::new();
    for (op, s) in operands {
        for g in pg_like_grams(&s, true, op == CompOp::Co).unwrap_or_default() {
            let n = sample.get(&g).copied().unwrap_or(0);
            counts.insert(g, n);
        }
    }
    Ok(Some(counts))
}

#[cfg(test)]
mod tests {
    /// Structure records written out by hand in FTS5's format: the parser reads the
    /// segments' leaf pages; a truncated record is None, not a guess. (The integration test
    /// `trigrams::merging_the_trigram_index_changes_no_answer` reads a real one.)
    #[test]
    fn a_structure_record_reads_as_segment_pages() {
        // cookie, levels 2, segments 3, write counter 7; level 0: merge 0, 2 segments
        // (id 1, pages 1..=10; id 2, pages 11..=30); level 1: merge 0, 1 segment (id 3, pages
        // 31..=330, a two-byte varint for 330).
        let record = [
            0, 0, 0, 9, 2, 3, 7, 0, 2, 1, 1, 10, 2, 11, 30, 0, 1, 3, 31, 0x82, 0x4a,
        ];
        assert_eq!(super::segment_pages(&record), Some(vec![10, 20, 300]));
        assert_eq!(super::segment_pages(&record[..record.len() - 1]), None);
        // The second version: a marker after the cookie, five more varints per segment.
        let v2 = [
            0, 0, 0, 9, 0xff, 0, 0, 1, 1, 1, 7, 0, 1, 5, 4, 8, 0, 0, 0, 0, 0,
        ];
        assert_eq!(super::segment_pages(&v2), Some(vec![5]));
    }

    /// A merge is due after a load's segments of similar size, or many segments; not for a
    /// few small segments beside a large one (which a merge would rewrite whole).
    #[test]
    fn a_merge_is_due_when_the_small_segments_hold_a_tenth() {
        use super::merge_due;
        assert!(!merge_due(&[]));
        assert!(!merge_due(&[40_000]));
        assert!(!merge_due(&[40_000, 100, 100, 2_000]));
        assert!(merge_due(&[40_000, 2_000, 2_000]));
        assert!(merge_due(&[3_000; 15]));
        assert!(merge_due(&[1; 16]));
        assert!(!merge_due(
            &[1; 14].iter().copied().chain([1_000]).collect::<Vec<_>>()
        ));
    }

    use super::*;

    #[test]
    fn a_long_operand_is_represented_by_a_fixed_spread_of_its_grams() {
        let s: String = (0..600u32)
            .map(|i| char::from(b'a' + ((i * 7 + i / 26) % 26) as u8))
            .collect();
        let grams = grams_of(&s);
        assert_eq!(grams.len(), GRAMS_PER_OPERAND);
        assert_eq!(grams, grams_of(&s), "the same substring, the same grams");
        assert!(
            grams.windows(2).all(|w| w[0] < w[1]),
            "distinct and ordered"
        );
        assert!(grams.iter().all(|g| s.contains(g.as_str())));
        assert_eq!(grams_of("abcd"), vec!["abc".to_string(), "bcd".to_string()]);
    }

    #[test]
    fn trigram_queries_quote_each_gram() {
        assert_eq!(trigram_query("abcd", None), "\"abc\" AND \"bcd\"");
        assert_eq!(trigram_query("a\"bc", None), "\"\"\"bc\" AND \"a\"\"b\"");
        assert_eq!(trigram_query("aaaa", None), "\"aaa\"");
    }

    #[test]
    fn trigram_queries_ask_for_the_rarest_grams() {
        // Counts of `@ex`, `12@`, `x12`, `2@e` (the trigrams of `x12@ex`), and what is asked.
        let two = "\"12@\" AND \"x12\"";
        let three = "\"12@\" AND \"x12\" AND \"2@e\"";
        for (why, [ex, n12, x12, e2], asked) in [
            ("the two rarest", [900_000, 40, 700, 5_000], two),
            (
                "both common: a third",
                [900_000, 4_000, 7_000, 50_000],
                three,
            ),
            (
                "not a third in most rows",
                [900_000, 4_000, 7_000, 500_000],
                two,
            ),
            (
                "the rarest already rare",
                [900_000, 290, 7_000, 20_000],
                two,
            ),
        ] {
            let counts: GramCounts = [("@ex", ex), ("12@", n12), ("x12", x12), ("2@e", e2)]
                .into_iter()
                .map(|(g, n)| (g.to_string(), n))
                .collect();
            assert_eq!(trigram_query("x12@ex", Some(&counts)), asked, "{why}");
            // A trigram no row holds: that one alone (nothing can match).
            assert_eq!(trigram_query("x12@eq", Some(&counts)), "\"@eq\"", "{why}");
            assert_eq!(trigram_query("ab", Some(&counts)), "", "{why}");
        }
    }

    #[test]
    fn sampled_counts_are_exact_below_the_sample_and_estimated_above() {
        let row = |n, lo, hi, top| GramRow {
            term: "abc".into(),
            n,
            lo,
            hi,
            top,
        };
        assert_eq!(row(40, Some(10), Some(900), Some(5000)).estimate(), 40);
        assert_eq!(row(0, None, None, Some(5000)).estimate(), 0);
        // 256 rows within the first 1,000 ids of 100,000: about 25,600.
        let n = row(GRAM_COUNT_SAMPLE, Some(1), Some(1000), Some(100_000)).estimate();
        assert!((25_000..=26_000).contains(&n), "{n}");
        // Every row of a dense trigram: about the table's size.
        let n = row(GRAM_COUNT_SAMPLE, Some(1), Some(256), Some(100_000)).estimate();
        assert!((99_000..=100_000).contains(&n), "{n}");
    }

    #[test]
    fn pg_like_grams_pad_words_except_at_wildcards() {
        // As pg_trgm extracts them from LIKE '%56.98@Al%' (checked against its GIN index:
        // '%4@%' and '%6.9%' give no trigram of their own, a 2-character word at a wildcard
        // is too short).
        assert_eq!(
            pg_like_grams("56.98@Al", true, true).unwrap(),
            ["  9", "  a", " 98", " al", "56 ", "98 "]
        );
        assert_eq!(
            pg_like_grams("4@", true, true).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(pg_like_grams("abc", true, false).unwrap(), ["abc", "bc "]);
        assert_eq!(
            pg_like_grams("x.y", false, true).unwrap(),
            ["  x", "  y", " x "]
        );
        assert_eq!(pg_like_grams("ünal", true, true), None);
    }

    #[test]
    fn pg_fragments_ask_for_the_rare_parts_of_the_operand() {
        // `123456.987@alias`: the user's number is rare, the run number and the domain in
        // every value.
        let counts: GramCounts = [
            ("123", 9),
            ("234", 8),
            ("345", 8),
            ("456", 7),
            ("56 ", 20),
            ("  9", 900),
            (" 98", 1000),
            ("987", 1000),
            ("87 ", 1000),
            ("  a", 800),
            (" al", 300),
            ("ali", 300),
            ("lia", 300),
            ("ias", 300),
        ]
        .into_iter()
        .map(|(g, n)| (g.to_string(), n))
        .collect();
        let mut f = pg_fragments(CompOp::Co, "123456.987@alias", &counts).unwrap();
        f.sort();
        assert_eq!(f, ["123", "234", "345", "456", "56."]);
        // A cheapest trigram counted once in the sample may hold many values: the others
        // below the floor are asked for too.
        let counts: GramCounts = [
            ("408", 1),
            ("089", 9),
            ("891", 12),
            ("140", 29),
            ("91 ", 38),
        ]
        .into_iter()
        .chain([("  9", 900), (" 98", 1000), ("987", 1000), ("87 ", 1000)])
        .map(|(g, n)| (g.to_string(), n))
        .collect();
        let mut f = pg_fragments(CompOp::Co, "140891.987", &counts).unwrap();
        f.sort();
        assert_eq!(f, ["089", "140", "408", "891", "91."]);
        // Every fragment is a substring of the operand.
        let all = pg_fragments(CompOp::Co, "x.y_z%1", &GramCounts::new()).unwrap();
        assert!(
            all.iter().all(|f| "x.y_z%1".contains(f.as_str())),
            "{all:?}"
        );
        assert!(all.iter().all(|f| !f.contains(['%', '_'])), "{all:?}");
        // `ew`: the padded end is the pattern's own; a word too short for a trigram is none.
        assert_eq!(
            pg_fragments(CompOp::Ew, "ab", &counts),
            None,
            "no fragment gives a trigram"
        );
        assert_eq!(pg_fragments(CompOp::Co, "ünal", &counts), None);
    }

    #[test]
    fn substring_grams_are_collected_from_the_whole_filter() {
        let registry = crate::scim::schema::Registry::load().unwrap();
        let f = crate::scim::filter::parse_filter(
            "userName co \"abcd\" or (emails[value ew \"xyz\"] and not (title co \"ab\")) or title co \"mgr\"",
            &crate::scim::filter::Limits::default(),
        )
        .unwrap();
        let cond = crate::scim::filter::resolve(&registry, Rtype::User, &f).unwrap();
        // userName is a column (no trigram index on SQLite), `ab` is too short.
        assert_eq!(substring_grams(Rtype::User, &cond), ["mgr", "xyz"]);
    }
}
