//! The change feed: the tenant's events in `seq` order (`/events`, which a consumer
//! long-polls) and one account's events (`/accounts/{id}/timeline`). Events are shown in
//! the webhooks' wire format (`webhooks::wire::Event`), the same body a delivery POSTs.

use serde::Serialize;
use utoipa::ToSchema;

use super::{cursor, invalid, paged, seq_window, ListParams, Page};
use crate::auth::Principal;
use crate::provisioning::{Error, Result, Service};
use crate::storage::accounts as stored;
use crate::storage::conn::Conn;
use crate::storage::dialect::Lock;
use crate::storage::feed::{self, SeqWindow};
use crate::webhooks::wire::Event;

/// The longest `wait` of a feed long-poll, in seconds.
pub const MAX_WAIT_SECS: i64 = 60;

/// `after` of `GET /events`: a `seq`, 0 (the start) when absent.
pub fn check_after(after: Option<i64>) -> Result<i64> {
    let after = after.unwrap_or(0);
    if after < 0 {
        return Err(invalid(format!("after must be 0 or more, not {after}")));
    }
    Ok(after)
}

/// `wait` of `GET /events`: 0 to `MAX_WAIT_SECS` seconds, 0 when absent.
pub fn check_wait(wait: Option<i64>) -> Result<u64> {
    let wait = wait.unwrap_or(0);
    if !(0..=MAX_WAIT_SECS).contains(&wait) {
        return Err(invalid(format!(
            "wait must be between 0 and {MAX_WAIT_SECS} seconds, not {wait}"
        )));
    }
    Ok(wait.unsigned_abs())
}

/// The answer of `GET /events`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct EventFeed {
    /// Events after `after`, in seq order; empty when a `wait` ended without one.
    pub items: Vec<Event>,
    /// A seq: pass as `after` to continue.
    #[schema(minimum = 0)]
    pub next: i64,
}

impl Service {
    /// The tenant's events after `after`, in order (at most `limit`).
    pub fn events(
        &self,
        conn: &mut Conn,
        p: &Principal,
        after: i64,
        limit: i64,
    ) -> Result<EventFeed> {
        self.admin_read(conn, p, |db| {
            let items = feed::after(db, &p.tenant, SeqWindow { after, limit })?
                .iter()
                .map(Event::from_feed)
                .collect::<std::result::Result<Vec<Event>, _>>()?;
            let next = items.last().map_or(after, |e| e.seq);
            Ok(EventFeed { items, next })
        })
    }

    /// One account's events, oldest first, paged.
    pub fn timeline(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        q: &ListParams,
    ) -> Result<Page<Event>> {
        let (window, limit) = seq_window(q, "t")?;
        self.admin_read(conn, p, |db| {
            if stored::get(db, &p.tenant, id, Lock::None)?.is_none() {
                return Err(Error::NotFound(format!("account {id} not found")));
            }
            let rows = feed::of_account(db, &p.tenant, id, window)?;
            paged(
                rows,
                limit,
                |r| cursor::encode("t", &r.seq.to_string()),
                |r| Ok(Event::from_feed(r)?),
            )
        })
    }
}
