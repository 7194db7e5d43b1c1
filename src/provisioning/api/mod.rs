//! The `/api/v1` use cases (docs/api-v1.md), by topic: `policy` (the tenant's policy, its
//! roles, the rules that grant them and their previews), `review` (accounts, candidates,
//! removals and the groups they are reviewed by), `profile` (who an account's user is, as
//! the answers about accounts show it), `feed` (the change feed and an account's timeline)
//! and `webhooks` (subscriptions, their deliveries and dead letters). Each takes typed input
//! and answers typed output (the wire types, serde), runs in one transaction and needs a
//! credential of scope `admin`. The admin console calls these same use cases.
//!
//! Shared here: request bodies decoded into their types, list pages and their cursors.

pub mod feed;
pub mod policy;
pub mod profile;
pub mod review;
pub mod webhooks;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{ensure_admin, Error, Result, Service};
use crate::auth::Principal;
use crate::storage::conn::{Conn, Db};
use crate::storage::feed::SeqWindow;
use crate::storage::{Keyed, TenantId};

use super::journal::Journal;

/// A page of a list: `{"items": [...], "nextCursor": "..." | null}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page; null on the last page (and always for whole lists).
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that comes whole in one response.
    pub fn whole(items: Vec<T>) -> Page<T> {
        Page {
            items,
            next_cursor: None,
        }
    }

    /// The same page, its items shown by `show` (all at once, so a page's details can be
    /// read in one query rather than one per item).
    pub(crate) fn show<U>(self, show: impl FnOnce(Vec<T>) -> Result<Vec<U>>) -> Result<Page<U>> {
        Ok(Page {
            items: show(self.items)?,
            next_cursor: self.next_cursor,
        })
    }
}

/// What this API shows of a stored row read by id (a `Role`, `Rule` or `Webhook`): the row,
/// its name in a 404, and how the row reads on the wire.
pub(crate) trait Shown: Serialize + Sized {
    type Row: Keyed;
    const NAME: &'static str;
    fn of(row: &Self::Row) -> Self;
}

/// The tenant's row `id` of what `V` shows, or 404 naming it (`role {id} not found`).
pub(crate) fn found<V: Shown>(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> Result<V::Row> {
    V::Row::get(db, tenant, id)?
        .ok_or_else(|| Error::NotFound(format!("{} {id} not found", V::NAME)))
}

impl Service {
    /// Every row of a kind (roles, rules, webhooks), in one response (not paged).
    pub(crate) fn list_all<V: Shown>(&self, conn: &mut Conn, p: &Principal) -> Result<Page<V>> {
        self.admin_read(conn, p, |db| {
            let rows = V::Row::list(db, &p.tenant)?;
            Ok(Page::whole(rows.iter().map(V::of).collect()))
        })
    }

    /// One row of a kind, by id.
    pub(crate) fn get_one<V: Shown>(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<V> {
        self.admin_read(conn, p, |db| Ok(V::of(&found::<V>(db, &p.tenant, id)?)))
    }
}

/// The query of a paged list (`limit`, `cursor`) and its filters: `state`, `role`, `group`
/// and `filter` for account lists, `status` for a subscription's deliveries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListParams {
    /// Accounts in this state (`pending`, `active`, `suspended`, `removed`).
    pub state: Option<String>,
    /// Accounts holding this role (a role id).
    pub role: Option<String>,
    /// Accounts whose user is a member of this SCIM group (a group id).
    pub group: Option<String>,
    /// Accounts whose user matches this SCIM filter (a rule's filter).
    pub filter: Option<String>,
    /// Deliveries in this status (`pending`, `delivered`, `dead`).
    pub status: Option<String>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

/// Decodes a request body into its type. A body that does not fit (another type, a field it
/// does not know, one missing) is 400, saying what `shape` the body should have and why it
/// does not.
pub(crate) fn decode<T: DeserializeOwned>(body: Value, shape: &str) -> Result<T> {
    serde_json::from_value(body).map_err(|e| Error::Invalid(format!("{shape}: {e}")))
}

pub(crate) fn invalid(detail: impl Into<String>) -> Error {
    Error::Invalid(detail.into())
}

/// `limit` of a paged list: 1 to 1000, 100 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(invalid(format!(
            "limit must be between 1 and 1000, not {n}"
        ))),
    }
}

/// The cursors of `/api/v1` lists: which list (`kind`) and where the page ended, in
/// URL-safe base64. Not signed: a cursor carries only what a client could ask for directly
/// (a position in its own tenant's list), and reading it again checks everything.
pub(crate) mod cursor {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::{invalid, Result};

    pub fn encode(kind: &str, v: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{kind}:{v}"))
    }

    pub fn decode(c: &str, kind: &str) -> Result<String> {
        let raw = URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid("this cursor is not one Scimitar issued"))?;
        raw.strip_prefix(&format!("{kind}:"))
            .map(str::to_string)
            .ok_or_else(|| invalid("this cursor belongs to another list"))
    }

    /// A cursor that carries a feed `seq` (0 when absent: the first page).
    pub fn decode_seq(c: Option<&str>, kind: &str) -> Result<i64> {
        Ok(decode_key(c, kind)?.unwrap_or(0))
    }

    /// A cursor that carries a number (a `seq` or a key); None when absent (the first page).
    pub fn decode_key(c: Option<&str>, kind: &str) -> Result<Option<i64>> {
        match c {
            None | Some("") => Ok(None),
            Some(c) => decode(c, kind)?
                .parse::<i64>()
                .map(Some)
                .map_err(|_| invalid("this cursor is not one Scimitar issued")),
        }
    }
}

/// The window of a list in feed order (`kind` names its cursors), one row more than the
/// page, and the page size.
pub(crate) fn seq_window(q: &ListParams, kind: &str) -> Result<(SeqWindow, i64)> {
    let after = cursor::decode_seq(q.cursor.as_deref(), kind)?;
    let limit = page_limit(q.limit)?;
    Ok((
        SeqWindow {
            after,
            limit: limit + 1,
        },
        limit,
    ))
}

/// One page of a list read with one row more than `limit`: the rows of the page, and the
/// cursor of the next one (made from its last row by `at`) when there is more.
pub(crate) fn cut<R>(mut rows: Vec<R>, limit: i64, at: impl Fn(&R) -> String) -> Page<R> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match (more, rows.last()) {
        (true, Some(r)) => Some(at(r)),
        _ => None,
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// `cut`, each row of the page shown by `view`.
pub(crate) fn paged<R, T>(
    rows: Vec<R>,
    limit: i64,
    at: impl Fn(&R) -> String,
    view: impl FnMut(&R) -> Result<T>,
) -> Result<Page<T>> {
    cut(rows, limit, at).show(|rows| rows.iter().map(view).collect())
}

impl Service {
    /// An admin change: `Service::write` for a credential of scope `admin`.
    fn admin_write<T>(
        &self,
        conn: &mut Conn,
        p: &Principal,
        f: impl FnOnce(&mut Db<'_>, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        ensure_admin(p)?;
        self.write(conn, p, f)
    }

    /// An admin read, in one snapshot.
    fn admin_read<T>(
        &self,
        conn: &mut Conn,
        p: &Principal,
        f: impl FnOnce(&mut Db<'_>) -> Result<T>,
    ) -> Result<T> {
        ensure_admin(p)?;
        self.read(conn, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_list() {
        let c = cursor::encode("a", "abc");
        assert_eq!(cursor::decode(&c, "a").unwrap(), "abc");
        assert!(cursor::decode(&c, "t").is_err());
        assert!(cursor::decode("not base64!", "a").is_err());
        assert_eq!(
            cursor::decode_seq(Some(&cursor::encode("t", "7")), "t").unwrap(),
            7
        );
        assert_eq!(cursor::decode_seq(None, "t").unwrap(), 0);
        assert!(cursor::decode_seq(Some(&cursor::encode("t", "x")), "t").is_err());
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None).unwrap(), 100);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
    }

    #[test]
    fn a_page_says_whether_there_is_more() {
        let p = paged(vec![1, 2, 3], 2, |n| n.to_string(), |n| Ok(n * 10)).unwrap();
        assert_eq!(p.items, [10, 20]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let last = paged(vec![1, 2], 2, |n| n.to_string(), |n| Ok(*n)).unwrap();
        assert_eq!(last.next_cursor, None);
    }
}
