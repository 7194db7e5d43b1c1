//! The change feed: the tenant's events in `seq` order (`/events`, which a consumer
//! long-polls) and one account's events (`/accounts/{id}/timeline`). Events are shown in
//! the webhooks' wire format (`webhooks::wire::Event`), the same body a delivery POSTs; the
//! timeline adds the credential whose request wrote each one.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use utoipa::ToSchema;

use super::{cursor, cut, invalid, seq_window, ListParams, Page};
use crate::auth::Principal;
use crate::provisioning::{Error, Result, Service};
use crate::storage::accounts as stored;
use crate::storage::conn::{Conn, Db};
use crate::storage::dialect::Lock;
use crate::storage::feed::{self, FeedRow, SeqWindow};
use crate::storage::tenancy::{self, Credential};
use crate::storage::TenantId;
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

/// A feed event as an account's timeline shows it: the event, and the credential that
/// caused it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TimelineEvent {
    #[serde(flatten)]
    pub event: Event,
    /// Null for the bootstrap token (no stored credential).
    #[schema(required = true)]
    pub credential: Option<CredentialRef>,
}

/// The credential whose request wrote an event (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Credential)]
pub struct CredentialRef {
    /// Token id, OAuth client id, or `ISSUER|SUBJECT` of an external JWT.
    pub id: String,
    /// Null when the credential is not stored any more (deleted with its tenant's data).
    #[schema(required = true)]
    pub kind: Option<CredentialKind>,
    #[schema(required = true)]
    pub label: Option<String>,
}

/// What kind of credential wrote an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Token,
    Client,
    Jwt,
}

/// The credentials behind `rows`, by id, named from the tenant's tokens and clients in one
/// query each.
fn credentials_of(
    db: &mut Db<'_>,
    tenant: &TenantId,
    rows: &[FeedRow],
) -> Result<HashMap<String, CredentialRef>> {
    let ids: BTreeSet<&String> = rows
        .iter()
        .filter_map(|r| r.credential_id.as_ref())
        .collect();
    let ids: Vec<String> = ids.into_iter().cloned().collect();
    let mut known: HashMap<String, CredentialRef> = tenancy::labels(db, tenant, &ids)?
        .into_iter()
        .map(|c| {
            let kind = match c.kind {
                Credential::Token => CredentialKind::Token,
                Credential::Client => CredentialKind::Client,
            };
            let named = CredentialRef {
                id: c.id.clone(),
                kind: Some(kind),
                label: c.label,
            };
            (c.id, named)
        })
        .collect();
    for id in ids {
        known.entry(id.clone()).or_insert_with(|| CredentialRef {
            // An external issuer's token is `ISSUER|SUBJECT`: nothing stored names it.
            kind: id.contains('|').then_some(CredentialKind::Jwt),
            id,
            label: None,
        });
    }
    Ok(known)
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

    /// One account's events, oldest first, paged, each with the credential behind it.
    pub fn timeline(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        q: &ListParams,
    ) -> Result<Page<TimelineEvent>> {
        let (window, limit) = seq_window(q, "t")?;
        self.admin_read(conn, p, |db| {
            if stored::get(db, &p.tenant, id, Lock::None)?.is_none() {
                return Err(Error::NotFound(format!("account {id} not found")));
            }
            let rows = feed::of_account(db, &p.tenant, id, window)?;
            cut(rows, limit, |r| cursor::encode("t", &r.seq.to_string())).show(|rows| {
                let credentials = credentials_of(db, &p.tenant, &rows)?;
                rows.iter()
                    .map(|r| {
                        Ok(TimelineEvent {
                            event: Event::from_feed(r)?,
                            credential: r
                                .credential_id
                                .as_ref()
                                .and_then(|c| credentials.get(c))
                                .cloned(),
                        })
                    })
                    .collect()
            })
        })
    }
}
