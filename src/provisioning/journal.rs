//! The journal: the feed events of one write transaction, appended to the tenant's feed
//! together (with their webhook deliveries) as the transaction's last statements, and the
//! signal raised after the commit that wakes whoever waits for new events (long-polls,
//! delivery workers). The event types Scimitar emits are named here.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::Result;
use crate::auth::Principal;
use crate::scim::schema::Rtype;
use crate::storage::conn::Db;
use crate::storage::deliveries::{self, NewDelivery};
use crate::storage::feed::{self, Counted, NewFeedEvent};
use crate::storage::TenantId;

/// The RFC 9967 event URNs Scimitar emits.
pub const SCIM_EVENT_PREFIX: &str = "urn:ietf:params:scim:event:prov:";
pub const SCIM_EVENTS: [&str; 6] = [
    "urn:ietf:params:scim:event:prov:create:full",
    "urn:ietf:params:scim:event:prov:put:full",
    "urn:ietf:params:scim:event:prov:patch:full",
    "urn:ietf:params:scim:event:prov:activate",
    "urn:ietf:params:scim:event:prov:deactivate",
    "urn:ietf:params:scim:event:prov:delete",
];

/// Raised after every commit that appended to a feed: wakes long-polls and the delivery
/// workers of this process at once (other instances find new rows by polling).
#[derive(Default)]
pub struct Signal {
    generation: Mutex<u64>,
    changed: Condvar,
    notify: tokio::sync::Notify,
}

impl Signal {
    pub fn raise(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g = g.wrapping_add(1);
        }
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    /// For async waiters (long-polls): create it before looking, await it after.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    pub fn generation(&self) -> u64 {
        self.generation.lock().map(|g| *g).unwrap_or(0)
    }

    /// For threads: waits until the generation moves past `seen` or the timeout passes.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        if let Ok(g) = self.generation.lock() {
            let _ = self.changed.wait_timeout_while(g, timeout, |g| *g == seen);
        }
    }
}

/// Delivery workers wait on the same signal.
impl crate::webhooks::Doorbell for Signal {
    fn generation(&self) -> u64 {
        Signal::generation(self)
    }

    fn wait(&self, seen: u64, timeout: Duration) {
        Signal::wait(self, seen, timeout)
    }

    fn ring(&self) {
        self.raise()
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The events of one transaction, appended to the feed together by `flush`.
pub struct Journal {
    pub(crate) tenant: TenantId,
    credential: Option<String>,
    /// The transaction's time (microseconds): every event of it carries this.
    pub(crate) now: i64,
    items: Vec<NewFeedEvent>,
    /// The ordering key of each item's webhook deliveries (account, else resource).
    keys: Vec<String>,
    /// Resources created minus deleted, for the tenant's counts.
    counted: Counted,
}

impl Journal {
    pub(crate) fn new(p: &Principal, now: i64) -> Journal {
        Journal {
            tenant: p.tenant.clone(),
            credential: p.credential.clone(),
            now,
            items: Vec::new(),
            keys: Vec::new(),
            counted: Counted::default(),
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
    #[expect(clippy::too_many_arguments, reason = "the parts of an RFC 9967 event")]
    pub(crate) fn scim(
        &mut self,
        base_url: &str,
        verb: &str,
        rt: Rtype,
        id: &str,
        external_id: Option<&str>,
        data: Option<Value>,
        account: Option<&str>,
    ) {
        let event_id = new_id();
        let urn = format!("{SCIM_EVENT_PREFIX}{verb}");
        let mut body = Map::new();
        body.insert("id".into(), Value::String(id.into()));
        if let Some(x) = external_id {
            body.insert("externalId".into(), Value::String(x.into()));
        }
        if let Some(d) = data {
            body.insert("data".into(), d);
        }
        let set = json!({
            "jti": event_id,
            "iat": self.now / 1_000_000,
            "iss": base_url,
            "sub_id": {"format": "scim", "uri": format!("/{}/{id}", rt.endpoint())},
            "events": {urn.clone(): body},
        });
        self.push(event_id, urn, account, Some((rt, id)), set);
    }

    /// A product event about an account (`account.*`) of the user `scim_id`.
    pub(crate) fn account(&mut self, kind: &str, account_id: &str, scim_id: &str, data: Value) {
        self.push(
            new_id(),
            kind.into(),
            Some(account_id),
            Some((Rtype::User, scim_id)),
            data,
        );
    }

    fn push(
        &mut self,
        id: String,
        kind: String,
        account: Option<&str>,
        resource: Option<(Rtype, &str)>,
        data: Value,
    ) {
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
            data: data.to_string(),
        });
    }

    /// Appends the events to the feed and queues a delivery for each subscription that wants
    /// one, in the caller's transaction.
    pub(crate) fn flush(self, db: &mut Db<'_>) -> Result<()> {
        let first = feed::append(db, &self.tenant, &self.items, self.counted)?;
        if self.items.is_empty() {
            return Ok(());
        }
        let hooks = deliveries::list_webhooks(db, &self.tenant)?;
        if hooks.is_empty() {
            return Ok(());
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
        Ok(())
    }
}
