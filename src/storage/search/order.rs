//! A list sorted by a singular attribute, read from `attr_values` in index order instead of
//! computing a key for every matching row and sorting them all.

use super::{sorted_page, Page, SortValue, SortedRow, Window};
use crate::storage::conn::Db;
use crate::storage::resources::RESOURCE_COLUMNS;
use crate::storage::sql::{Bind, Sql};
use crate::storage::{StoreResult, TenantId};

/// A list ordered by a singular attribute's stored value. The order is the one
/// `search::page_rows` gives with a computed key: resources with a value by (value, pk), then
/// those without one by pk (all reversed when descending). Each of those two segments is one
/// ordered, limited query.
pub(super) struct ValueOrder<'a> {
    pub tenant: &'a TenantId,
    pub path: &'a str,
    pub numeric: bool,
    pub descending: bool,
}

/// One of the two segments of a `ValueOrder`.
#[derive(Clone, Copy, PartialEq)]
enum Segment {
    Valued,
    Unvalued,
}

impl ValueOrder<'_> {
    fn col(&self) -> &'static str {
        if self.numeric {
            "num"
        } else {
            "val"
        }
    }

    /// The rows of `window`: up to three statements (a segment, the length of a segment an
    /// offset skips, the next segment), so in one snapshot (`Db::snapshot`): otherwise a
    /// resource whose value a write removed between two of them is on the page twice (the
    /// valued segment read before, the unvalued one after), and one it gave a value to on
    /// neither.
    pub fn page(&self, db: &mut Db<'_>, base: &Sql, window: &Window) -> StoreResult<Page> {
        db.snapshot(|db| self.page_in(db, base, window))
    }

    fn page_in(&self, db: &mut Db<'_>, base: &Sql, window: &Window) -> StoreResult<Page> {
        let backwards = matches!(window, Window::Before { .. });
        // Walking the list forwards is ascending unless the list is descending; a previous
        // page walks it backwards.
        let desc = self.descending != backwards;
        let mut order = if self.descending {
            vec![Segment::Unvalued, Segment::Valued]
        } else {
            vec![Segment::Valued, Segment::Unvalued]
        };
        if backwards {
            order.reverse();
        }
        let (limit, mut offset, boundary) = match window {
            Window::Offset { offset, limit } => (*limit, *offset, None),
            Window::After { key, pk, limit } | Window::Before { key, pk, limit } => {
                (*limit, 0, Some((key, *pk)))
            }
        };
        // Segments wholly before the boundary's segment in walking order are skipped.
        if let Some((key, _)) = boundary {
            let at = if matches!(key, SortValue::Null) {
                Segment::Unvalued
            } else {
                Segment::Valued
            };
            if let Some(i) = order.iter().position(|s| *s == at) {
                order.drain(..i);
            }
        }
        let mut rows: Vec<SortedRow> = Vec::new();
        for (i, seg) in order.iter().enumerate() {
            let want = limit - rows.len() as i64;
            if want <= 0 {
                break;
            }
            let after = if i == 0 { boundary } else { None };
            let got = self.segment(db, base, *seg, desc, after, want, offset)?;
            if got.is_empty() && offset > 0 {
                // The offset may reach past this segment: skip its whole length.
                offset = (offset - self.segment_len(db, base, *seg)?).max(0);
            } else {
                offset = 0;
            }
            rows.extend(got);
        }
        if backwards {
            rows.reverse();
        }
        Ok(sorted_page(rows, None))
    }

    /// The FROM and WHERE of a segment (without the boundary condition).
    fn from(&self, db: &Db<'_>, base: &Sql, seg: Segment) -> Sql {
        let col = self.col();
        match seg {
            Segment::Valued => db.backend().valued_rows(self.tenant, self.path, col, base),
            Segment::Unvalued => {
                let mut q = Sql::new(
                    " FROM resources r WHERE NOT EXISTS (SELECT 1 FROM attr_values sv WHERE sv.res_pk = r.pk AND sv.path = ",
                );
                q.bind(Bind::text(self.path))
                    .push(&format!(" AND sv.{col} IS NOT NULL) AND "));
                q.append(base.clone());
                q
            }
        }
    }

    fn segment_len(&self, db: &mut Db<'_>, base: &Sql, seg: Segment) -> StoreResult<i64> {
        let mut q = Sql::new("SELECT COUNT(*) AS n");
        q.append(self.from(db, base, seg));
        db.count(&q)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the segment and the window's parts"
    )]
    fn segment(
        &self,
        db: &mut Db<'_>,
        base: &Sql,
        seg: Segment,
        desc: bool,
        after: Option<(&SortValue, i64)>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<SortedRow>> {
        let col = self.col();
        let (op, dir) = if desc { (" < ", " DESC") } else { (" > ", "") };
        let mut q = Sql::new(&format!("SELECT {RESOURCE_COLUMNS}, "));
        match (seg, self.numeric) {
            (Segment::Valued, true) => {
                q.push("CAST(NULL AS TEXT) AS skey_t, sv.num AS skey_n");
            }
            (Segment::Valued, false) => {
                q.push("sv.val AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
            }
            (Segment::Unvalued, _) => {
                q.push("CAST(NULL AS TEXT) AS skey_t, CAST(NULL AS DOUBLE PRECISION) AS skey_n");
            }
        }
        q.append(self.from(db, base, seg));
        match (seg, after) {
            (_, None) => {}
            (Segment::Unvalued, Some((_, pk))) => {
                q.push(" AND r.pk").push(op).bind(Bind::Int(pk));
            }
            (Segment::Valued, Some((key, pk))) => {
                // Written so the value index serves the range: v >= k AND (v > k OR pk > p).
                let k = key.bind();
                let eq = if desc { " <= " } else { " >= " };
                q.push(&format!(" AND sv.{col}{eq}"))
                    .bind(k.clone())
                    .push(&format!(" AND (sv.{col}{op}"))
                    .bind(k)
                    .push(" OR sv.res_pk")
                    .push(op)
                    .bind(Bind::Int(pk))
                    .push(")");
            }
        }
        match seg {
            Segment::Valued => q.push(&format!(" ORDER BY sv.{col}{dir}, sv.res_pk{dir}")),
            Segment::Unvalued => q.push(&format!(" ORDER BY r.pk{dir}")),
        };
        q.push(" LIMIT ").bind(Bind::Int(limit));
        if offset > 0 {
            q.push(" OFFSET ").bind(Bind::Int(offset));
        }
        Ok(db.load(&q)?)
    }
}
