//! Substring searches through SQLite's FTS5 trigram index (migrations 000004 and 000006): the
//! trigrams a filter's `co`/`ew` operands ask for, how many rows hold each (cached in the
//! process), and the FTS5 query that reads only the rarest. Postgres needs none of it (its
//! pg_trgm index serves the LIKE directly; see `dialect::Backend::has_trigram_table`).

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Text};
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

#[derive(QueryableByName)]
struct GramRow {
    #[diesel(sql_type = Text)]
    term: String,
    #[diesel(sql_type = BigInt)]
    doc: i64,
}

/// How long a trigram's count is trusted. Counts only choose which trigrams a substring
/// search reads (the LIKE re-check keeps results exact), so a stale one costs time, never a
/// wrong answer.
const GRAM_COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Rows counted per trigram at most. Only the rarest trigrams matter: one held by this many
/// rows or more is "common", and which common one is read makes no difference worth reading
/// its whole row list for (a trigram in every email, such as `@ex`, has millions).
const GRAM_COUNT_SAMPLE: i64 = 1000;
/// At most this many cached counts (a few MB); the cache starts over beyond it.
const GRAM_COUNT_CAP: usize = 200_000;

type GramCache = std::sync::Mutex<HashMap<String, (i64, std::time::Instant)>>;

/// How many indexed values hold each trigram of the filter's substring searches, up to
/// GRAM_COUNT_SAMPLE, so the search reads only the rarest (None where the backend has no
/// trigram table). Counting stops at the sample size, so the first substring search after
/// start costs about what a warm one does (counting a whole row list through the index
/// vocabulary, as before, cost as much as a search of it: seconds at a million users under
/// load). Counts are cached in the process for GRAM_COUNT_TTL (shared by every database the
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
        // One statement: each trigram's rows counted up to GRAM_COUNT_SAMPLE (FTS5 reads a
        // trigram's row list lazily, so the LIMIT bounds the work).
        let mut q = Sql::new("");
        for (i, g) in missing.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push("SELECT ")
                .bind(Bind::Text(g.clone()))
                .push(" AS term, (SELECT count(*) FROM (SELECT rowid FROM attr_values_trgm WHERE attr_values_trgm MATCH ")
                .bind(Bind::Text(format!("\"{}\"", g.replace('"', "\"\""))))
                .push(&format!(" LIMIT {GRAM_COUNT_SAMPLE})) AS doc"));
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
            if r.doc > 0 {
                c.insert(r.term.clone(), (r.doc, now));
                counts.insert(r.term, r.doc);
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
