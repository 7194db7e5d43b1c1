//! Lists and searches (RFC 7644 §3.4.2, §3.4.3): `GET /Users?filter=...`, `POST
//! /Users/.search` and `POST /.search` across types, paged by index or by cursor (RFC 9865),
//! each page and its count read in one consistent snapshot: one statement where the query
//! allows, else a read transaction (`Db::snapshot`); a page over several types, in one read
//! transaction. A page's group references are read right after it, as GET by id reads them.

use serde_json::{json, Map, Value};

use super::cursor::{self, Direction, Position};
use super::{Error, Result, Service};
use crate::auth::Principal;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{self, Cond, Sort};
use crate::scim::projection::Projection;
use crate::scim::schema::{Rtype, LIST_RESPONSE};
use crate::scim::time::now_micros;
use crate::storage::conn::{Conn, Db};
use crate::storage::members;
use crate::storage::resources::ResourceRow;
use crate::storage::search::{self, Window};
use crate::storage::{StorageError, TenantId};

/// A list or search that ran past the statement deadline: 400 tooMany (RFC 7644 §3.12: "the
/// specified filter yields many more results than the server is willing to calculate").
fn too_long(e: Error) -> Error {
    match e {
        Error::Storage(StorageError::Deadline) => ScimError::new(
            ScimType::TooMany,
            "the query took longer than the server allows (--db-statement-timeout-ms); narrow \
             the filter (an `eq` or `sw` on userName, externalId or emails.value, or a longer \
             `co` substring) or ask for a smaller page",
        )
        .into(),
        other => other,
    }
}

/// A list or search request (RFC 7644 §3.4.2, §3.4.3).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    /// RFC 9865: `Some("")` asks for the first page of cursor paging.
    pub cursor: Option<String>,
}

/// A ListResponse (RFC 7644 §3.4.2): `schemas`, the page's counts, the resources (each as
/// its wire text, see `resource::render_text`), then the cursors of RFC 9865.
#[derive(Debug)]
pub struct ListBody {
    head: Map<String, Value>,
    resources: Vec<String>,
    tail: Map<String, Value>,
}

impl ListBody {
    fn new<const N: usize>(counts: [(&str, Value); N], resources: Vec<String>) -> ListBody {
        let mut head = Map::new();
        head.insert("schemas".into(), json!([LIST_RESPONSE]));
        head.extend(counts.map(|(k, v)| (k.to_string(), v)));
        ListBody {
            head,
            resources,
            tail: Map::new(),
        }
    }

    /// Adds a member after the resources (a cursor).
    fn then(&mut self, key: &str, value: String) {
        self.tail.insert(key.into(), Value::String(value));
    }

    /// The response's JSON text.
    pub fn to_json(&self) -> String {
        let head = serde_json::to_string(&self.head).unwrap_or_default();
        let len: usize = self.resources.iter().map(|r| r.len() + 1).sum();
        let mut out = String::with_capacity(head.len() + len + 128);
        // Without the head's closing brace: the resources and the tail follow.
        out.push_str(head.strip_suffix('}').unwrap_or("{"));
        out.push_str(",\"Resources\":[");
        for (i, r) in self.resources.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r);
        }
        out.push(']');
        for (k, v) in &self.tail {
            out.push(',');
            out.push_str(&Value::String(k.clone()).to_string());
            out.push(':');
            out.push_str(&v.to_string());
        }
        out.push('}');
        out
    }
}

impl Service {
    /// GET /Users?filter=..., POST /Users/.search and POST /.search (RFC 7644 §3.4.2-3):
    /// a ListResponse over one or several resource types. Over several types, a filter, sort
    /// or attribute that does not apply to one type excludes (filter) or is ignored for
    /// (sort, attributes) that type; it is an error only when it applies to none.
    pub fn list(
        &self,
        conn: &mut Conn,
        p: &Principal,
        types: &[Rtype],
        q: &ListQuery,
    ) -> Result<ListBody> {
        let descending = match q
            .sort_order
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder `{other}`: use ascending or descending"
                ))
                .into())
            }
        };
        if q.cursor.is_some() && q.start_index.is_some() {
            return Err(
                ScimError::invalid_value("use either `cursor` or `startIndex`, not both").into(),
            );
        }
        if q.cursor.is_some() && types.len() > 1 {
            return Err(ScimError::invalid_value(
                "cursor paging is offered on /Users and /Groups; at the root use startIndex",
            )
            .into());
        }
        let mut plans = Vec::new();
        let mut first_error = None;
        for &rt in types {
            let plan = (|| -> Result<Plan> {
                let filter = q
                    .filter
                    .as_deref()
                    .map(|f| self.parse_scim_filter(p, f))
                    .transpose()?;
                let cond = filter
                    .as_ref()
                    .map(|f| filter::resolve(&self.registry, rt, f))
                    .transpose()?;
                let (a, x) = (q.attributes.as_deref(), q.excluded_attributes.as_deref());
                let single = types.len() == 1;
                let proj = if single {
                    Projection::parse(&self.registry, rt, a, x)?
                } else {
                    Projection::parse_lenient(&self.registry, rt, a, x)
                };
                let sort = match q.sort_by.as_deref() {
                    None => None,
                    Some(by) => match filter::resolve_sort(&self.registry, rt, by, descending) {
                        Ok(s) => Some(s),
                        Err(e) if single => return Err(e.into()),
                        Err(_) => None,
                    },
                };
                let canonical = filter.map(|f| f.to_string()).unwrap_or_default();
                Ok(Plan {
                    rt,
                    cond,
                    proj,
                    sort,
                    canonical,
                })
            })();
            match plan {
                Ok(plan) => plans.push(plan),
                Err(e) if types.len() == 1 => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if plans.is_empty() {
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        // RFC 7644 §3.4.2.4: "A negative value SHALL be interpreted as "0"" (an answer with
        // `totalResults` and no resources); above the server's maximum, the maximum.
        let count = q
            .count
            .unwrap_or(self.settings.default_page_size)
            .min(self.settings.max_page_size)
            .max(0);
        if let (Some(cursor), [plan]) = (&q.cursor, plans.as_slice()) {
            return self
                .cursor_page(&mut conn.db(), p, plan, cursor, count)
                .map_err(too_long);
        }
        // RFC 7644 §3.4.2.4: startIndex below 1 is read as 1; count is capped by the server.
        let start = q.start_index.unwrap_or(1).max(1);
        let run = |db: &mut Db<'_>| {
            let mut total = 0;
            let mut outputs = Vec::new();
            // The types are concatenated in order; the page is a window over them.
            let mut skip = start - 1;
            for plan in &plans {
                let window = Window::Offset {
                    offset: skip,
                    limit: count - outputs.len() as i64,
                };
                let page = plan.search(db, &p.tenant, &window, true)?;
                let t = page.total.unwrap_or(0);
                total += t;
                skip = (skip - t).max(0);
                outputs.extend(self.render_rows(db, plan, &page.rows)?);
            }
            Ok::<_, Error>((total, outputs))
        };
        // One type: the search takes its own snapshot where it needs one (on Postgres, a
        // transaction costs two round trips, `BEGIN` and `COMMIT`, that a list of one
        // statement does not need). Several: their counts and pages in one snapshot.
        let (total, outputs) = if plans.len() <= 1 {
            run(&mut conn.db())
        } else {
            conn.read_tx(run)
        }
        .map_err(too_long)?;
        Ok(ListBody::new(
            [
                ("totalResults", json!(total)),
                ("startIndex", json!(start)),
                ("itemsPerPage", json!(outputs.len())),
            ],
            outputs,
        ))
    }

    fn render_rows(
        &self,
        db: &mut Db<'_>,
        plan: &Plan,
        rows: &[ResourceRow],
    ) -> Result<Vec<String>> {
        let mut refs = if plan.proj.wants_refs(plan.rt) && !rows.is_empty() {
            let pks: Vec<i64> = rows.iter().map(|r| r.pk).collect();
            Some(members::refs_of(db, plan.rt, &pks)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let r = refs.as_mut().map(|m| m.remove(&row.pk).unwrap_or_default());
            out.push(self.render_text(plan.rt, row, r.as_deref(), &plan.proj)?);
        }
        Ok(out)
    }

    /// One page of cursor paging (RFC 9865): keyset windows, so a page costs the same at any
    /// depth and concurrent inserts never make a client see a resource twice.
    fn cursor_page(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        plan: &Plan,
        cursor: &str,
        count: i64,
    ) -> Result<ListBody> {
        let sort_text = match &plan.sort {
            Some(s) => format!("{}|{}", s.key.loc, if s.descending { "d" } else { "a" }),
            None => String::new(),
        };
        let qh = cursor::query_hash(
            p.tenant.as_str(),
            &[plan.rt.name(), &plan.canonical, &sort_text],
        );
        let now = now_micros() / 1_000_000;
        let pos = if cursor.is_empty() {
            None
        } else {
            Some(cursor::decode(&self.settings.cursor_key, cursor, &qh, now)?)
        };
        // One row more than the page tells whether there is anything beyond it.
        let window = match &pos {
            None => Window::Offset {
                offset: 0,
                limit: count + 1,
            },
            Some(c) if c.d == Direction::Next => Window::After {
                key: c.k.clone(),
                pk: c.pk,
                limit: count + 1,
            },
            Some(c) => Window::Before {
                key: c.k.clone(),
                pk: c.pk,
                limit: count + 1,
            },
        };
        let mut page = plan.search(db, &p.tenant, &window, false)?;
        let backwards = matches!(window, Window::Before { .. });
        let more = page.rows.len() as i64 > count;
        if more {
            // Drop the extra row: the last one going forwards, the first going backwards.
            let drop_at = if backwards { 0 } else { page.rows.len() - 1 };
            page.rows.remove(drop_at);
            page.keys.remove(drop_at);
        }
        let at = |i: usize, d: Direction| -> String {
            cursor::encode(
                &self.settings.cursor_key,
                &Position {
                    q: qh.clone(),
                    d,
                    k: page.keys[i].clone(),
                    pk: page.rows[i].pk,
                    exp: now + cursor::CURSOR_TIMEOUT_SECS,
                },
            )
        };
        let n = page.rows.len();
        let (has_next, has_prev) = match &pos {
            None => (more, false),
            Some(c) if c.d == Direction::Next => (more, true),
            Some(_) => (true, more),
        };
        let mut body = ListBody::new(
            [("itemsPerPage", json!(n))],
            self.render_rows(db, plan, &page.rows)?,
        );
        if n > 0 && has_next {
            body.then("nextCursor", at(n - 1, Direction::Next));
        }
        if n > 0 && has_prev {
            body.then("previousCursor", at(0, Direction::Previous));
        }
        if n == 0 {
            // An empty page past either end can still step back the way it came.
            if let Some(c) = &pos {
                let back = Position {
                    q: qh.clone(),
                    d: if c.d == Direction::Next {
                        Direction::Previous
                    } else {
                        Direction::Next
                    },
                    k: c.k.clone(),
                    pk: c.pk,
                    exp: now + cursor::CURSOR_TIMEOUT_SECS,
                };
                let key = if c.d == Direction::Next {
                    "previousCursor"
                } else {
                    "nextCursor"
                };
                body.then(key, cursor::encode(&self.settings.cursor_key, &back));
            }
        }
        Ok(body)
    }
}

/// A list query resolved for one resource type.
struct Plan {
    rt: Rtype,
    cond: Option<Cond>,
    proj: Projection,
    sort: Option<Sort>,
    /// The filter's canonical text, which cursors are bound to.
    canonical: String,
}

impl Plan {
    /// This plan's rows in `window`, and their total when `count_total`.
    fn search(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        window: &Window,
        count_total: bool,
    ) -> Result<search::Page> {
        let (cond, sort) = (self.cond.as_ref(), self.sort.as_ref());
        Ok(search::search(
            db,
            tenant,
            self.rt,
            cond,
            sort,
            window,
            count_total,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ListBody` writes what the `json!` bodies it replaced wrote, to the byte (from the
    /// review of the change).
    #[test]
    fn a_list_body_is_the_json_body_it_replaced() {
        let r1 = json!({"id": "a\"b", "x": [1, {"y": "ü\u{2028}\n"}]});
        let r2 = json!({"id": "c"});
        for resources in [vec![], vec![r1.clone()], vec![r1.clone(), r2.clone()]] {
            let texts: Vec<String> = resources.iter().map(Value::to_string).collect();
            let body = ListBody::new(
                [
                    ("totalResults", json!(5i64)),
                    ("startIndex", json!(1i64)),
                    ("itemsPerPage", json!(resources.len())),
                ],
                texts.clone(),
            );
            let old = json!({
                "schemas": [LIST_RESPONSE],
                "totalResults": 5i64,
                "startIndex": 1i64,
                "itemsPerPage": resources.len(),
                "Resources": resources,
            });
            assert_eq!(body.to_json(), old.to_string());
            let mut body = ListBody::new([("itemsPerPage", json!(resources.len()))], texts);
            body.then("nextCursor", "n\"x".into());
            body.then("previousCursor", "p".into());
            let mut old = json!({
                "schemas": [LIST_RESPONSE],
                "itemsPerPage": resources.len(),
                "Resources": resources,
            });
            old["nextCursor"] = json!("n\"x");
            old["previousCursor"] = json!("p");
            assert_eq!(body.to_json(), old.to_string());
        }
    }
}
