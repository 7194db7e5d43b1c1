//! Substring searches through SQLite's FTS5 trigram index (migrations 000004 and 000006): the
//! trigrams a filter's `co`/`ew` operands ask for, how many rows hold each (cached in the
//! process), and the FTS5 query that reads only the rarest. Postgres needs none of it (its
//! pg_trgm index serves the LIKE directly; see `dialect::Backend::has_trigram_table`).

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use super::columns::column_of;
use crate::scim::filter::CompOp;
use crate::scim::filter::{Cond, ElemSet, Field, Operand};
use crate::scim::schema::Rtype;
use crate::storage::conn::Db;
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

/// The distinct trigrams of a substring, in order.
fn grams_of(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    grams.sort();
    grams.dedup();
    grams
}

/// Every trigram the trigram index would be asked for by `cond` (its `co`/`ew` operands on
/// attribute values), to count them before translating.
pub fn substring_grams(rt: Rtype, cond: &Cond) -> Vec<String> {
    fn walk(rt: Rtype, c: &Cond, top: bool, out: &mut Vec<String>) {
        match c {
            // Only attribute values are searched through the trigram index (columns and
            // membership references are not).
            Cond::Cmp(t, op @ (CompOp::Co | CompOp::Ew), operand) => {
                let value = match &t.field {
                    Field::Attr(path) => !top || column_of(rt, path).is_none(),
                    Field::Ref(_) => false,
                };
                if let (true, Some(s)) = (value, trigram_operand(Some((*op, operand)))) {
                    out.extend(grams_of(s));
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
    out.sort();
    out.dedup();
    out
}

/// An FTS5 query matching rows that contain trigrams of `s`. With `detail=none` FTS5 has no
/// phrase queries, so this over-approximates the substring; the LIKE that follows makes it
/// exact. FTS5 reads the whole row list of every trigram it is given, and a trigram shared by
/// most values (`@ex`, `com`) costs as much as a scan: with `counts` known, only the two
/// rarest trigrams are asked for (a trigram no row holds alone proves there is no match);
/// without, every trigram (at most 16).
pub(super) fn trigram_query(s: &str, counts: Option<&GramCounts>) -> String {
    let mut grams = grams_of(s);
    match counts {
        Some(counts) => {
            grams.sort_by_key(|g| (counts.get(g).copied().unwrap_or(0), g.clone()));
            let rarest_absent = grams.first().is_some_and(|g| !counts.contains_key(g));
            grams.truncate(if rarest_absent { 1 } else { 2 });
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

/// How many indexed values hold each trigram of the filter's substring searches (exact up
/// to GRAM_COUNT_SAMPLE, estimated beyond), so the search reads only the rarest (None where
/// the backend has no trigram table). Counting reads at most GRAM_COUNT_SAMPLE rows of each
/// trigram, so the first substring search after start costs about what a warm one does
/// (counting whole row lists through the index vocabulary, as before, cost seconds at a
/// million users under load). Counts are cached in the process for GRAM_COUNT_TTL (shared by every database the
/// process opens; they are only a heuristic: the LIKE re-check keeps results exact).
pub(super) fn gram_counts(
    db: &mut Db<'_>,
    rt: Rtype,
    cond: &Cond,
) -> StoreResult<Option<GramCounts>> {
    static CACHE: std::sync::OnceLock<GramCache> = std::sync::OnceLock::new();
    if !db.backend().has_trigram_table() {
        return Ok(None);
    }
    let grams = substring_grams(rt, cond);
    if grams.is_empty() {
        return Ok(None);
    }
    // Inside a write, the index first takes that transaction's changes so far.
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
        let mut q = Sql::new("");
        for (i, g) in missing.iter().enumerate() {
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
        let rows: Vec<GramRow> = db.load(&q)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigram_queries_quote_each_gram() {
        assert_eq!(trigram_query("abcd", None), "\"abc\" AND \"bcd\"");
        assert_eq!(trigram_query("a\"bc", None), "\"\"\"bc\" AND \"a\"\"b\"");
        assert_eq!(trigram_query("aaaa", None), "\"aaa\"");
    }

    #[test]
    fn trigram_queries_ask_for_the_rarest_grams() {
        let counts: GramCounts = [("@ex", 900_000), ("12@", 40), ("x12", 700), ("2@e", 5000)]
            .into_iter()
            .map(|(g, n)| (g.to_string(), n))
            .collect();
        assert_eq!(
            trigram_query("x12@ex", Some(&counts)),
            "\"12@\" AND \"x12\""
        );
        // A trigram no row holds: that one alone (nothing can match).
        assert_eq!(trigram_query("x12@eq", Some(&counts)), "\"@eq\"");
        assert_eq!(trigram_query("ab", Some(&counts)), "");
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
