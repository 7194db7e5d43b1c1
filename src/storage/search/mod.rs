//! Lists and searches: a validated filter, a sort and a window over the resources of one type,
//! answered in SQL (never by loading resources into memory), with the total when asked for.
//!
//! - `columns`: which attributes have a column of `resources` (the rest are `attr_values`);
//! - `translate`: a validated filter (`scim::filter::Cond`) to a SQL condition;
//! - `order`: walking a sort attribute's value index in order;
//! - `grams`: substring searches through a trigram index (SQLite's FTS5 table, Postgres's
//!   pg_trgm), reading only the operand's rarest trigrams;
//! - `blocks`: folding the counted blocks of primary keys that deep index pages skip by.

pub mod blocks;
pub mod columns;
pub mod grams;
mod order;
pub mod translate;

use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::dialect::RESOURCE_BLOCK_BITS;
use super::feed;
use super::resources::{ResourceRow, RESOURCE_COLUMNS};
use super::sql::{Bind, Sql};
use super::{StorageError, StoreResult, TenantId};
use crate::scim::filter::{Cond, Field, Kind, Sort, SortKey};
use crate::scim::schema::Rtype;
use columns::column_of;
use order::ValueOrder;
use translate::{has_substring, is_selective, Translator};

/// A sort key value, as read with a row and carried in cursors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SortValue {
    Null,
    Text(String),
    Num(f64),
}

impl SortValue {
    fn bind(&self) -> Bind {
        match self {
            SortValue::Text(t) => Bind::Text(t.clone()),
            SortValue::Num(n) => Bind::Float(*n),
            SortValue::Null => Bind::OptText(None),
        }
    }
}

/// Which part of the ordered results to read.
#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    /// Index paging (RFC 7644 §3.4.2.4).
    Offset { offset: i64, limit: i64 },
    /// Keyset paging (RFC 9865): rows strictly after the boundary row, in list order.
    After { key: SortValue, pk: i64, limit: i64 },
    /// Rows strictly before the boundary row, returned in list order.
    Before { key: SortValue, pk: i64, limit: i64 },
}

impl Window {
    fn limit(&self) -> i64 {
        match self {
            Window::Offset { limit, .. }
            | Window::After { limit, .. }
            | Window::Before { limit, .. } => *limit,
        }
    }
}

/// A page of a filtered list: the rows, each row's sort key, and the total number of
/// matches when it was asked for.
pub struct Page {
    pub total: Option<i64>,
    pub rows: Vec<ResourceRow>,
    pub keys: Vec<SortValue>,
}

/// A row read with its sort key (text or number; both NULL without one).
#[derive(QueryableByName)]
struct SortedRow {
    #[diesel(embed)]
    resource: ResourceRow,
    #[diesel(sql_type = Nullable<Text>)]
    skey_t: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    skey_n: Option<f64>,
}

/// Filters, optionally counts, orders and windows the resources of one type. Order is the
/// sort key (nulls last) then insertion order, so pages never repeat or skip a row.
pub fn search(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    cond: Option<&Cond>,
    sort: Option<&Sort>,
    window: &Window,
    count_total: bool,
) -> StoreResult<Page> {
    // The conditions on `resources r`, shared by the count and every plan of the rows.
    let Matching { base, driven, keys } = driven_matching(db, tenant, rt, cond)?;
    let mut wh = Sql::new(" FROM resources r WHERE ");
    wh.append(base.clone());
    let selective = cond.is_some_and(is_selective);
    let limit = window.limit();
    // Sorted by a singular attribute without a column, and no selective filter: walk that
    // attribute's value index in order rather than compute a key for every matching row.
    let by_value = sort
        .filter(|s| s.key.singular && !selective)
        .and_then(|s| match &s.key.field {
            Field::Attr(path) if column_of(rt, path).is_none() => Some(ValueOrder {
                tenant,
                path,
                numeric: matches!(s.key.kind, Kind::Num | Kind::DateTime),
                descending: s.descending,
            }),
            _ => None,
        });
    let rows = |db: &mut Db<'_>, total: Option<i64>| -> StoreResult<Page> {
        match &by_value {
            Some(by) => Ok(Page {
                total,
                ..by.page(db, &base, window)?
            }),
            None => match (cond, sort, window) {
                (None, None, Window::Offset { offset, limit }) if *offset > 0 => Ok(sorted_page(
                    db.load(&deep_page(tenant, rt, *offset, *limit))?,
                    total,
                )),
                _ => page_rows(
                    db,
                    rt,
                    &wh,
                    sort,
                    window,
                    total,
                    Shape { selective, driven },
                ),
            },
        }
    };
    let count = |db: &mut Db<'_>| -> StoreResult<i64> {
        if cond.is_none() {
            return feed::resource_count(db, tenant, rt);
        }
        let mut count = Sql::new("SELECT COUNT(*) AS n");
        count.append(wh.clone());
        db.count(&count)
    };
    // A counted, unsorted index page of a driven filter: the matches' keys once, counted
    // and windowed in one statement (the count evaluated the filter a second time: for `co`,
    // a second trigram search).
    if let (true, None, Window::Offset { offset, limit }) = (count_total && driven, sort, window) {
        if *limit > 0 {
            // One statement: no transaction needed (`Db::snapshot`).
            let q = counted_page(
                db,
                &wh,
                keys.map(|k| (k, scope(db, tenant, rt, true))),
                *offset,
                *limit,
            );
            let rows: Vec<CountedRow> = db.load(&q)?;
            let (rows, total) = match rows.first().map(|r| r.total) {
                Some(total) => (rows, total),
                None if *offset == 0 => (rows, 0),
                // Past the last match: the page has no row to carry the count, so the count
                // is read, and the page again if matches came meanwhile, in one snapshot
                // (rare: a client paging past the end).
                None => db.snapshot(|db| {
                    let total = count(db)?;
                    let rows: Vec<CountedRow> = if total > *offset {
                        db.load(&q)?
                    } else {
                        Vec::new()
                    };
                    Ok::<_, StorageError>((rows, total))
                })?,
            };
            return Ok(sorted_page(
                rows.into_iter().map(|r| r.sorted).collect(),
                Some(total),
            ));
        }
    }
    // The first page of a lookup (`userName eq ...`) usually holds every match: then the
    // count is the page's length and needs no second query.
    let first_page = matches!(window, Window::Offset { offset: 0, .. });
    if limit <= 0 {
        // No rows: the count alone, one statement.
        let total = if count_total { Some(count(db)?) } else { None };
        return Ok(Page {
            total,
            rows: Vec::new(),
            keys: Vec::new(),
        });
    }
    if !count_total {
        return rows(db, None);
    }
    if first_page && selective && db.backend().transaction_costs_round_trips() {
        // The first page of a lookup (`userName eq ...`, a column, so not driven) usually
        // holds every match, and then its length is the count: one statement, no `BEGIN`
        // and `COMMIT`. A full one is read again below with its count, in one snapshot
        // (where a transaction is a function call, as on SQLite, it is read there once).
        let page = rows(db, None)?;
        if (page.rows.len() as i64) < limit {
            return Ok(Page {
                total: Some(page.rows.len() as i64),
                ..page
            });
        }
    }
    // A count and a page: two statements, which must agree. The count first when the page
    // is not the first (a window past the end needs no rows), else the page first, and the
    // count only when the page is full.
    db.snapshot(|db| {
        if !first_page {
            let total = count(db)?;
            if matches!(window, Window::Offset { offset, .. } if *offset >= total) {
                return Ok(Page {
                    total: Some(total),
                    rows: Vec::new(),
                    keys: Vec::new(),
                });
            }
            return rows(db, Some(total));
        }
        let mut page = rows(db, None)?;
        page.total = Some(if (page.rows.len() as i64) < limit {
            page.rows.len() as i64
        } else {
            count(db)?
        });
        Ok(page)
    })
}

/// The condition on `resources r` that selects the tenant's resources of type `rt` matching
/// `cond` (all of them without one): the `WHERE` of a search, and what other tables' lists
/// test their resource against (accounts by their user: `a.user_pk IN (SELECT r.pk FROM
/// resources r WHERE ...)`).
pub fn matching(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    cond: Option<&Cond>,
) -> StoreResult<Sql> {
    Ok(driven_matching(db, tenant, rt, cond)?.base)
}

/// A filter translated for a search (`driven_matching`).
struct Matching {
    /// The condition on `resources r`.
    base: Sql,
    /// It is driven from the keys a selective conjunct's subquery reads (`Translator::drove`).
    driven: bool,
    /// A subquery whose distinct keys are exactly the matches (`Translator::keys`).
    keys: Option<Sql>,
}

/// `matching`, whether the condition drives the query from the keys a selective
/// conjunct's subquery reads (`Translator::drove`: then its matches are few and read by key,
/// so a page orders their keys before reading documents, `search`), and the subquery whose
/// keys are exactly its matches, when it has one.
fn driven_matching(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rt: Rtype,
    cond: Option<&Cond>,
) -> StoreResult<Matching> {
    let Some(c) = cond else {
        return Ok(Matching {
            base: scope(db, tenant, rt, false),
            driven: false,
            keys: None,
        });
    };
    let counts = grams::gram_counts(db, rt, c)?;
    let mut t = Translator::new(tenant, rt, db.backend());
    if let Some(counts) = &counts {
        t = t.with_gram_counts(counts);
    }
    let mut filter = Sql::new("");
    t.translate(c, &mut filter);
    // A filter's text follows its shape and binds its operands, so the lookups every IdP
    // sends (`userName eq`, `externalId eq`, a value path) recur and are kept prepared, in
    // the client-shaped share of the cache. Substring tests are planned each time: their
    // text follows the operand's rare trigrams, and a generic plan of `LIKE $1` cannot tell
    // a rare pattern from a common one.
    let mut keys = t.take_keys();
    let substring = has_substring(c);
    for sql in std::iter::once(&mut filter).chain(keys.as_mut()) {
        if substring {
            sql.not_reusable();
        } else {
            sql.shaped_by_client();
        }
    }
    let mut base = scope(db, tenant, rt, t.drove());
    base.push(" AND ").append(filter);
    Ok(Matching {
        base,
        driven: t.drove(),
        keys,
    })
}

/// The tenant and type test of `resources r`, written for a query driven from a filter's
/// keys when `driven` (`Backend::resource_scope`).
fn scope(db: &Db<'_>, tenant: &TenantId, rt: Rtype, driven: bool) -> Sql {
    Sql::with(
        db.backend().resource_scope(driven),
        [Bind::tenant(tenant), Bind::text(rt.name())],
    )
}

/// The SQL expression of a sort key over `resources r`, and whether it is numeric.
fn sort_expr(rt: Rtype, key: &SortKey) -> (Sql, bool) {
    let numeric = matches!(key.kind, Kind::Num | Kind::DateTime);
    let expr = match &key.field {
        Field::Attr(path) => match (column_of(rt, path), &key.primary) {
            (Some(c), _) => Sql::new(c.sort_expr()),
            (None, Some(primary)) => {
                // The primary value, else the first (RFC 7644 §3.4.2.3).
                let col = if numeric { "num" } else { "val" };
                let mut q = Sql::new(&format!(
                    "COALESCE((SELECT sv.{col} FROM attr_values sv JOIN attr_values pv ON pv.res_pk = sv.res_pk \
                     AND pv.elem = sv.elem WHERE sv.res_pk = r.pk AND sv.path = "
                ));
                q.bind(Bind::text(path))
                    .push(" AND pv.path = ")
                    .bind(Bind::text(primary))
                    .push(&format!(
                        " AND pv.val = 'true' LIMIT 1), (SELECT sv.{col} FROM attr_values sv WHERE sv.res_pk = r.pk AND sv.path = "
                    ))
                    .bind(Bind::text(path))
                    .push(" ORDER BY sv.elem LIMIT 1))");
                q
            }
            (None, None) => {
                let col = if numeric { "num" } else { "val" };
                let mut q = Sql::new(&format!(
                    "(SELECT MIN(sv.{col}) FROM attr_values sv WHERE sv.res_pk = r.pk AND sv.path = "
                ));
                q.bind(Bind::text(path)).push(")");
                q
            }
        },
        // Membership references are rejected as sort keys when the request is validated.
        Field::Ref(_) => Sql::new("NULL"),
    };
    (expr, numeric)
}

/// The keyset condition "strictly beyond the boundary (key0, pk0)" in ascending tuple order
/// ((K IS NULL), K, pk) when `greater`, else strictly before it.
fn keyset_cond(expr: Option<&Sql>, key0: &SortValue, pk0: i64, greater: bool) -> Sql {
    let op = if greater { " > " } else { " < " };
    let mut q = Sql::new("(");
    match (expr, key0) {
        (None, _) => {
            q.push("r.pk").push(op).bind(Bind::Int(pk0));
        }
        (Some(k), SortValue::Null) => {
            // Nulls sort last: beyond a null boundary are only later nulls.
            q.push("(").append(k.clone()).push(if greater {
                ") IS NULL AND r.pk"
            } else {
                ") IS NOT NULL OR r.pk"
            });
            q.push(op).bind(Bind::Int(pk0));
        }
        (Some(k), v) => {
            q.push("(").append(k.clone());
            q.push(if greater {
                ") IS NULL OR ("
            } else {
                ") IS NOT NULL AND (("
            });
            q.append(k.clone())
                .push(")")
                .push(op)
                .bind(v.bind())
                .push(" OR ((");
            q.append(k.clone())
                .push(") = ")
                .bind(v.bind())
                .push(" AND r.pk")
                .push(op)
                .bind(Bind::Int(pk0));
            q.push(if greater { ")" } else { "))" });
        }
    }
    q.push(")");
    q
}

/// The columns of a row read without a sort key.
const NO_SORT_KEY: &str = "CAST(NULL AS TEXT) AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n";

/// An unfiltered, unsorted index page, in pk order (`dialect::RESOURCE_BLOCK_BITS`): the
/// block of primary keys holding the page's first row is found from the running sum of the
/// blocks' counts, then the page is read from the start of that block, skipping fewer than a
/// block's rows instead of every row before it. A block's count is the sum of its rows
/// (Postgres keeps append-only deltas until `blocks::compact_resource_blocks` folds them), so
/// any mix of folded and unfolded rows reads the same. One statement, so the counts and the
/// rows are read in the same snapshot. Past the last row, the page is empty (no block: the
/// `pk >=` bound is NULL; SQLite fails on a NULL OFFSET, hence the COALESCE).
fn deep_page(tenant: &TenantId, rt: Rtype, offset: i64, limit: i64) -> Sql {
    let mut q = Sql::new(
        "WITH s AS (SELECT block, upto - n AS before FROM (SELECT block, n, \
         CAST(SUM(n) OVER (ORDER BY block) AS BIGINT) AS upto FROM (SELECT block, \
         CAST(SUM(n) AS BIGINT) AS n FROM resource_blocks WHERE tenant_id = ",
    );
    q.bind(Bind::tenant(tenant))
        .push(" AND rtype = ")
        .bind(Bind::text(rt.name()))
        .push(" GROUP BY block) c) b WHERE upto > ")
        .bind(Bind::Int(offset))
        .push(&format!(
            " ORDER BY block LIMIT 1) SELECT {RESOURCE_COLUMNS}, {NO_SORT_KEY} FROM resources r \
             WHERE r.pk IN (SELECT r.pk FROM resources r WHERE r.tenant_id = "
        ))
        .bind(Bind::tenant(tenant))
        .push(" AND r.rtype = ")
        .bind(Bind::text(rt.name()))
        .push(" AND r.pk >= (SELECT block FROM s) * ")
        .bind(Bind::Int(1 << RESOURCE_BLOCK_BITS))
        .push(" ORDER BY r.pk LIMIT ")
        .bind(Bind::Int(limit))
        .push(" OFFSET COALESCE((SELECT ")
        .bind(Bind::Int(offset))
        .push(" - before FROM s), 0)) ORDER BY r.pk");
    q
}

/// A selective filter's unsorted index page with the number of all its matches in every row
/// (`search`): the matching keys materialized once, counted, and the page's rows read by key.
/// With `keys` (the filter's own key subquery, `Translator::keys`, and the tenant and type
/// test of the page's rows), the matches are its distinct keys, counted and windowed without
/// reading a row of `resources` but the page's: `sw` with ~100 matches looked up 100 keys in
/// `resources` to answer 10.
fn counted_page(db: &Db<'_>, wh: &Sql, keys: Option<(Sql, Sql)>, offset: i64, limit: i64) -> Sql {
    let (open, close) = db.backend().keys_in(true);
    let mut q = Sql::new("WITH k AS MATERIALIZED (");
    let scope = match keys {
        Some((keys, scope)) => {
            q.push("SELECT DISTINCT res_pk AS pk FROM (")
                .append(keys)
                .push(") d");
            Some(scope)
        }
        None => {
            q.push("SELECT r.pk").append(wh.clone());
            None
        }
    };
    q.push(&format!(
        ") SELECT {RESOURCE_COLUMNS}, {NO_SORT_KEY}, (SELECT COUNT(*) FROM k) AS total \
         FROM resources r WHERE {open}SELECT pk FROM k ORDER BY pk LIMIT "
    ));
    q.bind(Bind::Int(limit))
        .push(" OFFSET ")
        .bind(Bind::Int(offset))
        .push(close);
    if let Some(scope) = scope {
        q.push(" AND ").append(scope);
    }
    q.push(" ORDER BY r.pk");
    q
}

/// A row of `counted_page`.
#[derive(QueryableByName)]
struct CountedRow {
    #[diesel(embed)]
    sorted: SortedRow,
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// What a filter is like, for planning its pages: `selective` (`translate::is_selective`: an
/// index narrows it) and `driven` (its matches' keys are read first, `driven_matching`).
#[derive(Clone, Copy)]
struct Shape {
    selective: bool,
    driven: bool,
}

/// The rows of one window (see `search`).
fn page_rows(
    db: &mut Db<'_>,
    rt: Rtype,
    wh: &Sql,
    sort: Option<&Sort>,
    window: &Window,
    total: Option<i64>,
    Shape { selective, driven }: Shape,
) -> StoreResult<Page> {
    let limit = window.limit();
    if let (None, Window::Offset { offset, .. }) = (sort, window) {
        if (*offset > 0 && !selective) || driven {
            // Keys first, then the page's rows: a deep index page skips the first rows
            // reading only their keys (for an unfiltered list, the (tenant_id, rtype, pk)
            // index alone), and a driven filter orders its matches' keys, not their
            // documents (`sw` with ~100 matches read and sorted 100 documents to answer 10).
            // Not a filter that is selective but not driven (an `or` of lookups): it is
            // tested row by row, and a second pass over its matches cost more than it saved
            // (a review measured 19 -> 47 ms for the first page of an `or` of common values).
            let mut inner = Sql::new("SELECT r.pk");
            inner
                .append(wh.clone())
                .push(&format!(
                    " ORDER BY {} LIMIT ",
                    db.backend().pk_order(selective)
                ))
                .bind(Bind::Int(limit))
                .push(" OFFSET ")
                .bind(Bind::Int(*offset));
            let mut q = Sql::new(&format!(
                "SELECT {RESOURCE_COLUMNS}, {NO_SORT_KEY} FROM resources r WHERE r.pk IN ("
            ));
            q.append(inner).push(") ORDER BY r.pk");
            return Ok(sorted_page(db.load(&q)?, total));
        }
    }
    let key = sort.map(|s| sort_expr(rt, &s.key));
    let descending = sort.is_some_and(|s| s.descending);
    // Reading backwards (previous page) walks the reverse order, then flips the rows.
    let backwards = matches!(window, Window::Before { .. });
    let mut q = Sql::new(&format!("SELECT {RESOURCE_COLUMNS}, "));
    match &key {
        Some((k, true)) => {
            q.push("CAST(NULL AS TEXT) AS skey_t, CAST(");
            q.append(k.clone()).push(" AS DOUBLE PRECISION) AS skey_n");
        }
        Some((k, false)) => {
            q.append(k.clone())
                .push(" AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
        }
        None => {
            q.push(NO_SORT_KEY);
        }
    }
    q.append(wh.clone());
    match window {
        Window::After { key: k0, pk, .. } | Window::Before { key: k0, pk, .. } => {
            // In ascending tuple order, "after" is greater unless the list is descending.
            let greater = backwards == descending;
            q.push(" AND ")
                .append(keyset_cond(key.as_ref().map(|(k, _)| k), k0, *pk, greater));
        }
        Window::Offset { .. } => {}
    }
    let dir = if descending != backwards { " DESC" } else { "" };
    q.push(" ORDER BY ");
    if let Some((k, _)) = &key {
        q.push("(")
            .append(k.clone())
            .push(&format!(") IS NULL{dir}, "));
        q.append(k.clone()).push(&format!("{dir}, "));
    }
    let pk = db.backend().pk_order(selective);
    q.push(&format!("{pk}{dir} LIMIT ")).bind(Bind::Int(limit));
    if let Window::Offset { offset, .. } = window {
        q.push(" OFFSET ").bind(Bind::Int(*offset));
    }
    let mut rows: Vec<SortedRow> = db.load(&q)?;
    if backwards {
        rows.reverse();
    }
    Ok(sorted_page(rows, total))
}

/// Rows read with their sort keys, as a page.
fn sorted_page(rows: Vec<SortedRow>, total: Option<i64>) -> Page {
    let keys = rows
        .iter()
        .map(|r| match (&r.skey_t, r.skey_n) {
            (Some(t), _) => SortValue::Text(t.clone()),
            (None, Some(n)) => SortValue::Num(n),
            (None, None) => SortValue::Null,
        })
        .collect();
    Page {
        total,
        rows: rows.into_iter().map(|r| r.resource).collect(),
        keys,
    }
}
