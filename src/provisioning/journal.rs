//! The journal: the feed events of one write transaction, appended to the tenant's feed
//! together (with their webhook deliveries) as the transaction's last statements, and the
//! signal raised after the commit that wakes whoever waits for new events (long-polls,
//! delivery workers). SCIM changes are journaled as RFC 9967 Security Event Tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Error, Result};
use crate::auth::Principal;
use crate::scim::events::SCIM_EVENT_PREFIX;
use crate::scim::resource::RefOut;
use crate::scim::schema::Rtype;
use crate::storage::conn::Db;
use crate::storage::deliveries::{self, NewDelivery, WebhookRow};
use crate::storage::feed::{self, Counted, NewFeedEvent};
use crate::storage::{Keyed, TenantId};

/// `data` of a SCIM change event: an RFC 9967 Security Event Token payload.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SecurityEventToken {
    /// The event id.
    #[schema(format = "uuid")]
    pub jti: String,
    /// Unix seconds.
    pub iat: i64,
    /// The SCIM base URL, e.g. https://idp.example.com/scim/v2.
    #[schema(format = "uri")]
    pub iss: String,
    pub sub_id: SubjectId,
    /// Event type (the event's `type`) → its details.
    pub events: BTreeMap<String, SetEvent>,
}

/// The resource an event is about (RFC 9967 §2.2: a SCIM subject identifier).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SubjectId {
    /// Always `scim`.
    #[schema(value_type = String, examples("scim"))]
    pub format: &'static str,
    /// The resource's path under the SCIM base URL.
    #[schema(examples("/Users/2819c223-7f76-453a-919d-413861904646"))]
    pub uri: String,
}

/// What happened to the resource.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetEvent {
    /// SCIM id of the resource.
    pub id: String,
    /// The resource's externalId, when it has one (never on delete events, nor on the Group
    /// patch a user's deletion implies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// create:full and put:full: the resource as written; patch:full: the PATCH request
    /// (`schemas`, `Operations`). Absent on activate, deactivate and delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// Raised after every commit that appended to a feed: wakes this process's long-polls of
/// that commit's tenant at once, and no other tenant's (other instances' commits are found by
/// polling). Delivery has its own wake-up, rung only by commits that queued deliveries
/// (`webhooks::Hub::queued`).
#[derive(Default)]
pub struct Signal {
    /// One channel per tenant with waiters; a channel nobody holds any more is dropped.
    channels: std::sync::Mutex<HashMap<TenantId, Weak<tokio::sync::Notify>>>,
}

impl Signal {
    /// Wakes the waiters of `tenant`'s channel.
    pub fn raise(&self, tenant: &TenantId) {
        let notify = self.lock().get(tenant).and_then(Weak::upgrade);
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// `tenant`'s channel. For async waiters (long-polls): take `notified_owned()` of it and
    /// `enable` it before looking, await it after.
    pub fn channel(&self, tenant: &TenantId) -> Arc<tokio::sync::Notify> {
        let mut channels = self.lock();
        if let Some(n) = channels.get(tenant).and_then(Weak::upgrade) {
            return n;
        }
        channels.retain(|_, w| w.strong_count() > 0);
        let n = Arc::new(tokio::sync::Notify::new());
        channels.insert(tenant.clone(), Arc::downgrade(&n));
        n
    }

    /// How many tenants have a channel with waiters (tests).
    pub fn channels(&self) -> usize {
        self.lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Weak<tokio::sync::Notify>>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The id of a new resource, account or other record: a UUID of version 7 (RFC 9562). Its
/// leading 48 bits are the time in milliseconds and the next 42 a counter (`uuid`'s: drawn
/// at random each millisecond, then counted up), so ids sort in creation order and the rows
/// a batch writes sit together in every index keyed by id (one page changed per index and
/// batch, not one per row: on SQLite a page is a WAL frame, on Postgres a full-page image
/// after each checkpoint). An id shows when it was made; its last 32 bits are random, and
/// every lookup by id is within the caller's tenant. Clients treat ids as opaque (RFC 7643
/// §3.1). Secrets (tokens) are not made here.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The events of one transaction, appended to the feed together by `flush`.
pub struct Journal {
    pub(crate) tenant: TenantId,
    credential: Option<String>,
    /// The SCIM base URL: the issuer of every SCIM event.
    issuer: String,
    /// The transaction's time (microseconds): every event of it carries this.
    pub(crate) now: i64,
    items: Vec<NewFeedEvent>,
    /// The ordering key of each item's webhook deliveries (account, else resource).
    keys: Vec<String>,
    /// Resources created minus deleted, for the tenant's counts.
    counted: Counted,
    /// A user's groups as this change already read them (its key, the groups), so that the
    /// account event of the same change does not read them again. Set by a user's own
    /// PATCH or PUT around its account's update: such a change moves no membership.
    pub(crate) user_groups: Option<(i64, Vec<RefOut>)>,
}

impl Journal {
    pub(crate) fn new(p: &Principal, issuer: &str, now: i64) -> Journal {
        Journal {
            tenant: p.tenant.clone(),
            credential: p.credential.clone(),
            issuer: issuer.into(),
            now,
            items: Vec::new(),
            keys: Vec::new(),
            counted: Counted::default(),
            user_groups: None,
        }
    }

    /// Notes `delta` resources of type `rt` created (or, negative, deleted).
    pub(crate) fn count(&mut self, rt: Rtype, delta: i64) {
        self.counted.add(rt, delta);
    }

    /// Takes over another journal's events (a bulk operation's, once its savepoint held).
    pub(crate) fn absorb(&mut self, other: Journal) {
        self.items.extend(other.items);
        self.keys.extend(other.keys);
        self.counted.absorb(other.counted);
    }

    /// A SCIM change, as an RFC 9967 Security Event Token payload.
    pub(crate) fn scim(
        &mut self,
        verb: &str,
        rt: Rtype,
        id: &str,
        external_id: Option<&str>,
        data: Option<Value>,
        account: Option<&str>,
    ) -> Result<()> {
        let event_id = new_id();
        let urn = format!("{SCIM_EVENT_PREFIX}{verb}");
        let event = SetEvent {
            id: id.into(),
            external_id: external_id.map(str::to_string),
            data,
        };
        let set = SecurityEventToken {
            jti: event_id.clone(),
            iat: self.now / 1_000_000,
            iss: self.issuer.clone(),
            sub_id: SubjectId {
                format: "scim",
                uri: format!("/{}/{id}", rt.endpoint()),
            },
            events: BTreeMap::from([(urn.clone(), event)]),
        };
        self.push(event_id, urn, account, Some((rt, id)), &set)
    }

    /// A product event about an account (`account.*`) of the user `scim_id`.
    pub(crate) fn account(
        &mut self,
        kind: &str,
        account_id: &str,
        scim_id: &str,
        data: &impl Serialize,
    ) -> Result<()> {
        self.push(
            new_id(),
            kind.into(),
            Some(account_id),
            Some((Rtype::User, scim_id)),
            data,
        )
    }

    fn push(
        &mut self,
        id: String,
        kind: String,
        account: Option<&str>,
        resource: Option<(Rtype, &str)>,
        data: &impl Serialize,
    ) -> Result<()> {
        let data = serde_json::to_string(data)
            .map_err(|e| Error::Storage(crate::storage::StorageError::Backend(Box::new(e))))?;
        let key = account
            .map(str::to_string)
            .or_else(|| resource.map(|(_, r)| r.to_string()))
            .unwrap_or_default();
        self.keys.push(key);
        self.items.push(NewFeedEvent {
            id,
            kind,
            account_id: account.map(str::to_string),
            resource_type: resource.map(|(rt, _)| rt.name().to_string()),
            resource_id: resource.map(|(_, r)| r.to_string()),
            at: self.now,
            credential: self.credential.clone(),
            data,
        });
        Ok(())
    }

    /// Appends the events to the feed and queues a delivery for each subscription that wants
    /// one, in the caller's transaction. Returns whether it queued any (then the caller
    /// wakes delivery once the transaction has committed).
    pub(crate) fn flush(self, db: &mut Db<'_>) -> Result<bool> {
        let first = feed::append(db, &self.tenant, &self.items, self.counted)?;
        if self.items.is_empty() {
            return Ok(false);
        }
        let hooks = WebhookRow::list(db, &self.tenant)?;
        if hooks.is_empty() {
            return Ok(false);
        }
        let mut queued = Vec::new();
        for hook in &hooks {
            let all = hook.events.iter().any(|w| w == "*");
            for (seq, (e, key)) in (first..).zip(self.items.iter().zip(&self.keys)) {
                if all || hook.events.contains(&e.kind) {
                    queued.push(NewDelivery {
                        id: new_id(),
                        webhook_id: hook.id.clone(),
                        seq,
                        order_key: key.clone(),
                    });
                }
            }
        }
        deliveries::queue(db, &self.tenant, &queued, self.now)?;
        Ok(!queued.is_empty())
    }
}

#[cfg(test)]
mod signal_tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn a_commit_wakes_its_own_tenants_waiters_only() {
        let signal = Signal::default();
        let (a, b) = (TenantId::from("a"), TenantId::from("b"));
        let mut on_a = Box::pin(signal.channel(&a).notified_owned());
        let mut on_b = Box::pin(signal.channel(&b).notified_owned());
        on_a.as_mut().enable();
        on_b.as_mut().enable();
        assert_eq!(signal.channels(), 2);
        signal.raise(&a);
        assert!(
            on_b.as_mut().now_or_never().is_none(),
            "b woke on a's commit"
        );
        assert!(on_a.as_mut().now_or_never().is_some());
        signal.raise(&b);
        assert!(on_b.as_mut().now_or_never().is_some());
        drop((on_a, on_b));
        assert_eq!(
            signal.channels(),
            0,
            "channels nobody waits on are not kept"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::new_id;

    /// New ids are version 7 UUIDs, and later ids sort after earlier ones as text (the order
    /// of every index keyed by id), so the rows of one batch sit together.
    #[test]
    fn new_ids_are_time_ordered_uuids() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(id.len(), 36, "{id}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids out of creation order");
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
