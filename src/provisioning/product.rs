//! From SCIM to the product: the account of every SCIM user, the roles its rules grant, the
//! tenant's policies, and the change feed. The `on_*` hooks run inside the SCIM write
//! transactions, so an account never disagrees with its user; the admin use cases
//! (`/api/v1`) run in their own. Every change appends to the feed (and queues webhook
//! deliveries) in the transaction that makes it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex};

use serde_json::{json, Map, Value};

use crate::accounts::{
    self, Announce, Life, Policy, RemovalReason, RoleDef, State, UserEvent, PRODUCT_EVENTS,
};
use crate::auth::{Principal, Scope};
use crate::scim::error::ScimError;
use crate::scim::query::{self, Cond};
use crate::scim::resource::{self, Doc, StoredMeta};
use crate::scim::schema::Rtype;
use crate::scim::time::{format_micros, now_micros};
use crate::storage::{
    self, AccountQuery, AccountRow, Db, DeliveryRow, FeedRow, Lock, NewDelivery, NewFeedEvent,
    RoleRow, RuleRow, WebhookRow,
};

use super::admin_extras::Details;
use super::{Error, Result, Service};

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
    pub fn wait(&self, seen: u64, timeout: std::time::Duration) {
        if let Ok(g) = self.generation.lock() {
            let _ = self.changed.wait_timeout_while(g, timeout, |g| *g == seen);
        }
    }
}

fn ensure_admin(p: &Principal) -> Result<()> {
    if p.scope == Scope::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

pub(super) fn bad(detail: impl Into<String>) -> Error {
    Error::Scim(ScimError::invalid_value(detail))
}

pub(super) fn internal(e: serde_json::Error) -> Error {
    Error::Storage(storage::StorageError::Backend(Box::new(e)))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------
// The journal: events of one transaction, appended to the feed together.

pub(crate) struct Journal {
    tenant: String,
    credential: Option<String>,
    now: i64,
    items: Vec<NewFeedEvent>,
    /// The ordering key of each item's webhook deliveries (account, else resource).
    keys: Vec<String>,
    /// Resources created minus deleted, Users and Groups, for the tenant's counts.
    counted: [i64; 2],
}

impl Journal {
    pub(crate) fn new(p: &Principal, now: i64) -> Journal {
        Journal {
            tenant: p.tenant.clone(),
            credential: p.credential.clone(),
            now,
            items: Vec::new(),
            keys: Vec::new(),
            counted: [0, 0],
        }
    }

    /// Notes `delta` resources of type `rt` created (or, negative, deleted).
    pub(crate) fn count(&mut self, rt: Rtype, delta: i64) {
        self.counted[storage::count_slot(rt)] += delta;
    }

    /// Takes over another journal's events (a bulk operation's, once its savepoint held).
    pub(crate) fn absorb(&mut self, other: Journal) {
        self.items.extend(other.items);
        self.keys.extend(other.keys);
        self.counted[0] += other.counted[0];
        self.counted[1] += other.counted[1];
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

    /// A product event about an account.
    fn account(&mut self, kind: &str, account: &AccountRow, data: Value) {
        let rid = account.scim_id.clone();
        self.push(
            new_id(),
            kind.into(),
            Some(&account.id),
            Some((Rtype::User, &rid)),
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
        let first = storage::append_feed(db, &self.tenant, &self.items, self.counted)?;
        if self.items.is_empty() {
            return Ok(());
        }
        let hooks = storage::list_webhooks(db, &self.tenant)?;
        if hooks.is_empty() {
            return Ok(());
        }
        let mut queued = Vec::new();
        for hook in &hooks {
            let wanted: Vec<String> = serde_json::from_str(&hook.events).unwrap_or_default();
            let all = wanted.iter().any(|w| w == "*");
            for (i, (e, key)) in self.items.iter().zip(&self.keys).enumerate() {
                if all || wanted.contains(&e.kind) {
                    queued.push(NewDelivery {
                        id: new_id(),
                        webhook_id: hook.id.clone(),
                        seq: first + i64::try_from(i).unwrap_or(0),
                        order_key: key.clone(),
                    });
                }
            }
        }
        storage::insert_deliveries(db, &self.tenant, &queued, self.now)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// What a transaction needs to decide accounts: policy, rules, roles.

enum Grant {
    Filter(Cond),
    Group(String),
}

pub(crate) struct Ctx {
    policy: Policy,
    rules: Vec<(String, Grant)>,
    roles: HashMap<String, RoleDef>,
}

fn policy_of(db: &mut Db<'_>, tenant: &str) -> Result<Policy> {
    Ok(match storage::get_policy(db, tenant)? {
        None => Policy::default(),
        Some(r) => serde_json::from_value(json!({
            "provisioning": r.provisioning,
            "deprovisioning": r.deprovisioning,
        }))
        .map_err(internal)?,
    })
}

fn role_def(r: &RoleRow) -> RoleDef {
    RoleDef {
        id: r.id.clone(),
        name: r.name.clone(),
        entitlements: serde_json::from_str(&r.entitlements).unwrap_or_default(),
    }
}

/// The roles of `granted` a context knows, as an account holds them: by name, then id.
fn held_roles<'c>(ctx: &'c Ctx, granted: &[String]) -> Vec<&'c RoleDef> {
    let mut held: Vec<&RoleDef> = granted.iter().filter_map(|r| ctx.roles.get(r)).collect();
    held.sort_by(|x, y| x.name.cmp(&y.name).then(x.id.cmp(&y.id)));
    held
}

/// Roles as accounts and events show them: `[{"id", "name"}]`.
fn roles_json(held: &[&RoleDef]) -> Value {
    Value::Array(
        held.iter()
            .map(|r| json!({"id": r.id, "name": r.name}))
            .collect(),
    )
}

impl Service {
    /// What a user's rules grant now, as `{"roles", "entitlements"}`: what its account holds
    /// once active (the review queue shows it before approval).
    pub(super) fn would_get(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        user_pk: i64,
        id: &str,
        doc: &Doc,
    ) -> Result<Value> {
        let granted = self.granted(db, ctx, user_pk, id, doc)?;
        let held = held_roles(ctx, &granted);
        Ok(json!({"roles": roles_json(&held), "entitlements": accounts::merge(&held)}))
    }

    /// Parses and checks a rule's filter against the User schema: the same parser, limits
    /// and semantics as `?filter=`.
    pub(super) fn rule_filter(&self, text: &str) -> Result<Cond> {
        let f = self.parse_filter(text)?;
        let cond = query::resolve(&self.registry, Rtype::User, &f)?;
        if cond.uses_refs() {
            return Err(bad(
                "a rule filter cannot test group membership: use a rule with `group` instead",
            ));
        }
        Ok(cond)
    }

    pub(crate) fn product_ctx(&self, db: &mut Db<'_>, tenant: &str) -> Result<Ctx> {
        let policy = policy_of(db, tenant)?;
        let roles = storage::list_roles(db, tenant)?
            .iter()
            .map(|r| (r.id.clone(), role_def(r)))
            .collect();
        let mut rules = Vec::new();
        for r in storage::list_rules(db, tenant)? {
            let grant = match (&r.filter, &r.group_id) {
                (Some(f), _) => match self.rule_filter(f) {
                    Ok(c) => Grant::Filter(c),
                    Err(e) => {
                        // Checked when written; only a schema change could make it fail now.
                        log::warn!("rule {} of tenant {tenant} is ignored: {e}", r.id);
                        continue;
                    }
                },
                (None, Some(g)) => Grant::Group(g.clone()),
                (None, None) => continue,
            };
            rules.push((r.role_id, grant));
        }
        Ok(Ctx {
            policy,
            rules,
            roles,
        })
    }

    /// The role ids a user's rules grant (whatever the account's state).
    fn granted(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        user_pk: i64,
        id: &str,
        doc: &Doc,
    ) -> Result<Vec<String>> {
        if ctx.rules.is_empty() {
            return Ok(Vec::new());
        }
        let rendered = resource::render(
            &self.registry,
            Rtype::User,
            doc,
            &StoredMeta {
                id: id.to_string(),
                created: 0,
                modified: 0,
                version: 0,
            },
            &self.settings.base_url,
            None,
        );
        let needs_groups = ctx.rules.iter().any(|(_, g)| matches!(g, Grant::Group(_)));
        let groups: BTreeSet<String> = if needs_groups {
            storage::group_ids_of(db, user_pk)?.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let mut out = BTreeSet::new();
        for (role, grant) in &ctx.rules {
            let hit = match grant {
                Grant::Filter(c) => query::matches(c, &rendered),
                Grant::Group(g) => groups.contains(g),
            };
            if hit {
                out.insert(role.clone());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The account as the API shows it.
    pub(crate) fn account_json(&self, db: &mut Db<'_>, a: &AccountRow) -> Result<Value> {
        let groups: Vec<Value> = match a.user_pk {
            Some(pk) => storage::refs_of(db, Rtype::User, &[pk])?
                .remove(&pk)
                .unwrap_or_default()
                .into_iter()
                .map(|r| json!({"id": r.id, "displayName": r.display}))
                .collect(),
            None => Vec::new(),
        };
        let roles: Value = serde_json::from_str(&a.roles).unwrap_or(json!([]));
        let ents: Value = serde_json::from_str(&a.entitlements).unwrap_or(json!({}));
        let removal = match (a.removal_since, &a.removal_reason) {
            (Some(t), Some(r)) => json!({"since": format_micros(t), "reason": r}),
            _ => Value::Null,
        };
        Ok(json!({
            "id": a.id,
            "scimId": a.scim_id,
            "userName": a.user_name,
            "state": a.state,
            "roles": roles,
            "entitlements": ents,
            "groups": groups,
            "removalPending": removal,
            "created": format_micros(a.created),
            "lastModified": format_micros(a.modified),
        }))
    }

    /// Writes an account's new lifecycle and roles and announces what changed. `granted` is
    /// what the rules give; only an active account holds roles.
    #[expect(
        clippy::too_many_arguments,
        reason = "the account, its change and the context"
    )]
    pub(super) fn settle(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        j: &mut Journal,
        mut a: AccountRow,
        is_new: bool,
        life: Life,
        announce: Option<Announce>,
        granted: Vec<String>,
    ) -> Result<AccountRow> {
        let now = j.now;
        let held: Vec<&RoleDef> = if life.state == State::Active {
            held_roles(ctx, &granted)
        } else {
            Vec::new()
        };
        let roles = roles_json(&held).to_string();
        let ents = Value::Object(accounts::merge(&held)).to_string();
        let previous_roles = a.roles.clone();
        let roles_changed = previous_roles != roles || a.entitlements != ents;
        let state_changed = a.state != life.state.as_str()
            || a.removal_reason.as_deref() != life.removal.map(RemovalReason::as_str);
        if !is_new && !roles_changed && !state_changed && announce.is_none() {
            return Ok(a);
        }
        a.state = life.state.as_str().to_string();
        a.removal_since = match life.removal {
            Some(_) => a.removal_since.or(Some(now)),
            None => None,
        };
        a.removal_reason = life.removal.map(|r| r.as_str().to_string());
        a.roles = roles;
        a.entitlements = ents;
        a.modified = now;
        if is_new {
            storage::insert_account(db, &j.tenant, &a)?;
        } else {
            storage::update_account(db, &j.tenant, &a)?;
        }
        if is_new || roles_changed {
            let ids: Vec<String> = held.iter().map(|r| r.id.clone()).collect();
            storage::set_account_roles(db, &j.tenant, &a.id, &ids)?;
        }
        if let Some(ann) = announce {
            let snapshot = self.account_json(db, &a)?;
            j.account(ann.event_type(), &a, json!({ "account": snapshot }));
        }
        if roles_changed && !is_new {
            let snapshot = self.account_json(db, &a)?;
            let prev: Value = serde_json::from_str(&previous_roles).unwrap_or(json!([]));
            j.account(
                "account.roles_changed",
                &a,
                json!({ "account": snapshot, "previousRoles": prev }),
            );
        }
        Ok(a)
    }

    pub(super) fn life_of(a: &AccountRow) -> Life {
        Life {
            state: State::parse(&a.state).unwrap_or(State::Removed),
            removal: a.removal_reason.as_deref().and_then(RemovalReason::parse),
        }
    }

    /// A new SCIM user: its account, in the user's transaction. Journals the SCIM event too
    /// (it carries the account id).
    #[expect(clippy::too_many_arguments, reason = "the user just written")]
    pub(crate) fn on_user_created(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        j: &mut Journal,
        pk: i64,
        id: &str,
        doc: &Doc,
        rendered: Value,
    ) -> Result<()> {
        let account_id = new_id();
        j.scim(
            &self.settings.base_url,
            "create:full",
            Rtype::User,
            id,
            doc.get("externalId").and_then(Value::as_str),
            Some(rendered),
            Some(&account_id),
        );
        let active = doc.get("active") != Some(&Value::Bool(false));
        let (life, ann) = accounts::step(None, UserEvent::Created { active }, ctx.policy);
        let granted = self.granted(db, ctx, pk, id, doc)?;
        let a = AccountRow {
            id: account_id,
            scim_id: id.to_string(),
            user_pk: Some(pk),
            user_name: user_name(doc),
            state: String::new(),
            roles: "[]".into(),
            entitlements: "{}".into(),
            removal_since: None,
            removal_reason: None,
            created: j.now,
            modified: j.now,
        };
        self.settle(db, ctx, j, a, true, life, ann, granted)?;
        Ok(())
    }

    /// A replaced or patched SCIM user (`verb` is `put:full` or `patch:full`, `data` its
    /// RFC 9967 data).
    #[expect(clippy::too_many_arguments, reason = "the user before and after")]
    pub(crate) fn on_user_changed(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        pk: i64,
        id: &str,
        doc: &Doc,
        was_active: bool,
        verb: &str,
        data: Value,
    ) -> Result<()> {
        let ctx = self.product_ctx(db, &j.tenant)?;
        let existing = storage::account_of_user(db, &j.tenant, id)?;
        let account_id = existing
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_else(new_id);
        let external = doc.get("externalId").and_then(Value::as_str);
        let base = &self.settings.base_url;
        j.scim(
            base,
            verb,
            Rtype::User,
            id,
            external,
            Some(data),
            Some(&account_id),
        );
        let now_active = doc.get("active") != Some(&Value::Bool(false));
        let event = match (was_active, now_active) {
            (true, false) => {
                j.scim(
                    base,
                    "deactivate",
                    Rtype::User,
                    id,
                    external,
                    None,
                    Some(&account_id),
                );
                Some(UserEvent::Deactivated)
            }
            (false, true) => {
                j.scim(
                    base,
                    "activate",
                    Rtype::User,
                    id,
                    external,
                    None,
                    Some(&account_id),
                );
                Some(UserEvent::Reactivated)
            }
            _ => None,
        };
        let granted = self.granted(db, &ctx, pk, id, doc)?;
        let (a, is_new, before) = match existing {
            Some(mut a) => {
                a.user_name = user_name(doc);
                let before = Self::life_of(&a);
                (a, false, Some(before))
            }
            None => (
                AccountRow {
                    id: account_id,
                    scim_id: id.to_string(),
                    user_pk: Some(pk),
                    user_name: user_name(doc),
                    state: String::new(),
                    roles: "[]".into(),
                    entitlements: "{}".into(),
                    removal_since: None,
                    removal_reason: None,
                    created: j.now,
                    modified: j.now,
                },
                true,
                None,
            ),
        };
        let (life, ann) = match (before, event) {
            (Some(b), None) => (b, None),
            (b, Some(e)) => accounts::step(b, e, ctx.policy),
            (None, None) => accounts::step(
                None,
                if now_active {
                    UserEvent::Reactivated
                } else {
                    UserEvent::Deactivated
                },
                ctx.policy,
            ),
        };
        self.settle(db, &ctx, j, a, is_new, life, ann, granted)?;
        Ok(())
    }

    /// A deleted SCIM user.
    pub(crate) fn on_user_deleted(&self, db: &mut Db<'_>, j: &mut Journal, id: &str) -> Result<()> {
        let ctx = self.product_ctx(db, &j.tenant)?;
        let existing = storage::account_of_user(db, &j.tenant, id)?;
        let base = &self.settings.base_url;
        j.scim(
            base,
            "delete",
            Rtype::User,
            id,
            None,
            None,
            existing.as_ref().map(|a| a.id.as_str()),
        );
        let Some(mut a) = existing else {
            return Ok(());
        };
        let before = Self::life_of(&a);
        let (life, ann) = accounts::step(Some(before), UserEvent::Deleted, ctx.policy);
        // The user is gone: a flagged account keeps the roles it had until confirmed.
        let granted: Vec<String> = role_ids(&a.roles);
        a.user_pk = None;
        // Written even when nothing else changes: the user link is gone.
        storage::update_account(db, &j.tenant, &a)?;
        self.settle(db, &ctx, j, a, false, life, ann, granted)?;
        Ok(())
    }

    /// Recomputes the roles of the members a group gained or lost, when a rule grants a role
    /// by membership of this group. `before` are the members before the change (read only
    /// when such a rule exists: see `watched_members`).
    pub(crate) fn on_members_changed(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        group_pk: i64,
        before: Option<Vec<i64>>,
    ) -> Result<()> {
        let Some(before) = before else {
            return Ok(());
        };
        let after = storage::member_pks(db, group_pk)?;
        let b: BTreeSet<i64> = before.into_iter().collect();
        let a: BTreeSet<i64> = after.into_iter().collect();
        let changed: Vec<i64> = b.symmetric_difference(&a).copied().collect();
        if changed.is_empty() {
            return Ok(());
        }
        let ctx = self.product_ctx(db, &j.tenant)?;
        for acc in storage::accounts_of_user_pks(db, &j.tenant, &changed)? {
            self.recompute(db, &ctx, j, acc)?;
        }
        Ok(())
    }

    /// The members of a group before a change, when some rule grants a role by membership
    /// of it (else None: nothing to recompute).
    pub(crate) fn watched_members(
        &self,
        db: &mut Db<'_>,
        tenant: &str,
        group_id: &str,
        group_pk: i64,
    ) -> Result<Option<Vec<i64>>> {
        if storage::group_has_rules(db, tenant, group_id)? {
            Ok(Some(storage::member_pks(db, group_pk)?))
        } else {
            Ok(None)
        }
    }

    /// The role ids an account's user's rules grant as the user is stored now; None when
    /// the account has no user any more (deleted).
    pub(super) fn granted_now(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        tenant: &str,
        a: &AccountRow,
    ) -> Result<Option<Vec<String>>> {
        let Some(pk) = a.user_pk else {
            return Ok(None);
        };
        let Some(row) = storage::get_resource_by_pk(db, tenant, pk)? else {
            return Ok(None);
        };
        let doc: Doc = serde_json::from_str(&row.doc).map_err(internal)?;
        Ok(Some(self.granted(db, ctx, pk, &row.id, &doc)?))
    }

    /// Recomputes one account's roles from its user as stored now.
    fn recompute(&self, db: &mut Db<'_>, ctx: &Ctx, j: &mut Journal, a: AccountRow) -> Result<()> {
        let life = Self::life_of(&a);
        let granted = self
            .granted_now(db, ctx, &j.tenant, &a)?
            .unwrap_or_else(|| role_ids(&a.roles));
        self.settle(db, ctx, j, a, false, life, None, granted)?;
        Ok(())
    }

    /// Recomputes every account that can hold roles (a role or rule changed).
    fn recompute_all(&self, db: &mut Db<'_>, j: &mut Journal) -> Result<()> {
        let ctx = self.product_ctx(db, &j.tenant)?;
        for a in storage::accounts_in_states(db, &j.tenant, &["active"])? {
            self.recompute(db, &ctx, j, a)?;
        }
        Ok(())
    }

    /// Runs an admin change in one write transaction with its journal, then wakes the feed.
    pub(super) fn admin_tx<T>(
        &self,
        p: &Principal,
        f: impl FnOnce(&mut Db<'_>, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        ensure_admin(p)?;
        let out = self.conn()?.write_tx(|db| {
            let mut j = Journal::new(p, now_micros());
            let out = f(db, &mut j)?;
            j.flush(db)?;
            Ok::<T, Error>(out)
        })?;
        self.signal.raise();
        Ok(out)
    }

    pub(super) fn admin_read<T>(
        &self,
        p: &Principal,
        f: impl FnOnce(&mut Db<'_>) -> Result<T>,
    ) -> Result<T> {
        ensure_admin(p)?;
        self.conn()?.read_tx(f)
    }

    // -----------------------------------------------------------------------------------
    // Policy

    pub fn get_policy(&self, p: &Principal) -> Result<Value> {
        self.admin_read(p, |db| {
            serde_json::to_value(policy_of(db, &p.tenant)?).map_err(internal)
        })
    }

    pub fn put_policy(&self, p: &Principal, body: &Value) -> Result<Value> {
        let policy: Policy = serde_json::from_value(body.clone()).map_err(|e| {
            bad(format!(
                "a policy is {{\"provisioning\": \"auto\"|\"review\", \"deprovisioning\": \"auto\"|\"notify\"}}: {e}"
            ))
        })?;
        self.admin_tx(p, |db, _| {
            let v = serde_json::to_value(policy).map_err(internal)?;
            storage::put_policy(
                db,
                &p.tenant,
                v["provisioning"].as_str().unwrap_or("auto"),
                v["deprovisioning"].as_str().unwrap_or("auto"),
            )?;
            Ok(v)
        })
    }

    // -----------------------------------------------------------------------------------
    // Roles

    fn role_input(body: &Value) -> Result<(String, Map<String, Value>)> {
        let obj = body
            .as_object()
            .ok_or_else(|| bad("a role is a JSON object with `name` and `entitlements`"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["name", "entitlements", "id"].contains(&k.as_str()))
        {
            return Err(bad(format!("unknown role attribute `{k}`")));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.len() <= 200)
            .ok_or_else(|| bad("a role needs a `name`: a string of 1 to 200 bytes"))?;
        let ents = match obj.get("entitlements") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(bad(
                    "`entitlements` is an object of key → number, boolean or string",
                ))
            }
        };
        Ok((name.to_string(), ents))
    }

    fn role_out(r: &RoleRow) -> Value {
        let ents: Value = serde_json::from_str(&r.entitlements).unwrap_or(json!({}));
        json!({
            "id": r.id, "name": r.name, "entitlements": ents,
            "created": format_micros(r.created), "lastModified": format_micros(r.modified),
        })
    }

    fn role_conflict(e: storage::StorageError) -> Error {
        match e {
            storage::StorageError::Conflict(_) => {
                Error::Conflict("a role with this name already exists".into())
            }
            other => Error::Storage(other),
        }
    }

    pub fn list_roles(&self, p: &Principal) -> Result<Value> {
        self.admin_read(p, |db| {
            let items: Vec<Value> = storage::list_roles(db, &p.tenant)?
                .iter()
                .map(Self::role_out)
                .collect();
            Ok(json!({"items": items, "nextCursor": null}))
        })
    }

    pub fn get_role(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_read(p, |db| {
            storage::get_role(db, &p.tenant, id)?
                .map(|r| Self::role_out(&r))
                .ok_or_else(|| Error::NotFound(format!("role {id} not found")))
        })
    }

    pub fn create_role(&self, p: &Principal, body: &Value) -> Result<Value> {
        let (name, ents) = Self::role_input(body)?;
        self.admin_tx(p, |db, _| {
            let others: Vec<RoleDef> = storage::list_roles(db, &p.tenant)?
                .iter()
                .map(role_def)
                .collect();
            accounts::check_entitlements(&ents, &others).map_err(bad)?;
            let now = now_micros();
            let row = RoleRow {
                id: new_id(),
                name,
                entitlements: Value::Object(ents).to_string(),
                created: now,
                modified: now,
            };
            storage::insert_role(db, &p.tenant, &row).map_err(Self::role_conflict)?;
            Ok(Self::role_out(&row))
        })
    }

    pub fn replace_role(&self, p: &Principal, id: &str, body: &Value) -> Result<Value> {
        let (name, ents) = Self::role_input(body)?;
        self.admin_tx(p, |db, j| {
            let old = storage::get_role(db, &p.tenant, id)?
                .ok_or_else(|| Error::NotFound(format!("role {id} not found")))?;
            let others: Vec<RoleDef> = storage::list_roles(db, &p.tenant)?
                .iter()
                .filter(|r| r.id != id)
                .map(role_def)
                .collect();
            accounts::check_entitlements(&ents, &others).map_err(bad)?;
            let row = RoleRow {
                id: old.id,
                name,
                entitlements: Value::Object(ents).to_string(),
                created: old.created,
                modified: now_micros(),
            };
            storage::update_role(db, &p.tenant, &row).map_err(Self::role_conflict)?;
            self.recompute_all(db, j)?;
            Ok(Self::role_out(&row))
        })
    }

    pub fn delete_role(&self, p: &Principal, id: &str) -> Result<()> {
        self.admin_tx(p, |db, j| {
            if storage::delete_role(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("role {id} not found")));
            }
            self.recompute_all(db, j)
        })
    }

    // -----------------------------------------------------------------------------------
    // Rules

    fn rule_out(r: &RuleRow) -> Value {
        let mut v = json!({
            "id": r.id, "role": r.role_id,
            "created": format_micros(r.created), "lastModified": format_micros(r.modified),
        });
        if let Some(f) = &r.filter {
            v["filter"] = json!(f);
        }
        if let Some(g) = &r.group_id {
            v["group"] = json!(g);
        }
        v
    }

    /// Checks a rule body against the tenant: role exists, filter parses, group exists.
    fn rule_input(
        &self,
        db: &mut Db<'_>,
        tenant: &str,
        body: &Value,
    ) -> Result<(String, Option<String>, Option<String>)> {
        let obj = body.as_object().ok_or_else(|| {
            bad("a rule is a JSON object: {\"role\", \"filter\"} or {\"role\", \"group\"}")
        })?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["role", "filter", "group", "id"].contains(&k.as_str()))
        {
            return Err(bad(format!("unknown rule attribute `{k}`")));
        }
        let role = obj
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a rule needs `role`: the id of the role it grants"))?;
        let filter = obj.get("filter").filter(|v| !v.is_null());
        let group = obj.get("group").filter(|v| !v.is_null());
        let (filter, group) = match (filter, group) {
            (Some(Value::String(f)), None) => {
                self.rule_filter(f)?;
                (Some(f.clone()), None)
            }
            (None, Some(Value::String(g))) => {
                if storage::get_resource(db, tenant, Rtype::Group, g, Lock::None)?.is_none() {
                    return Err(Error::NotFound(format!("Group {g} not found")));
                }
                (None, Some(g.clone()))
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(bad("a rule has exactly one of `filter` (a SCIM filter over the user) and `group` (a SCIM group id)"))
            }
            _ => return Err(bad("`filter` and `group` are strings")),
        };
        if storage::get_role(db, tenant, role)?.is_none() {
            return Err(Error::NotFound(format!("role {role} not found")));
        }
        Ok((role.to_string(), filter, group))
    }

    pub fn list_rules(&self, p: &Principal) -> Result<Value> {
        self.admin_read(p, |db| {
            let items: Vec<Value> = storage::list_rules(db, &p.tenant)?
                .iter()
                .map(Self::rule_out)
                .collect();
            Ok(json!({"items": items, "nextCursor": null}))
        })
    }

    pub fn get_rule(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_read(p, |db| {
            storage::get_rule(db, &p.tenant, id)?
                .map(|r| Self::rule_out(&r))
                .ok_or_else(|| Error::NotFound(format!("rule {id} not found")))
        })
    }

    pub fn create_rule(&self, p: &Principal, body: &Value) -> Result<Value> {
        self.admin_tx(p, |db, j| {
            let (role, filter, group) = self.rule_input(db, &p.tenant, body)?;
            let now = now_micros();
            let row = RuleRow {
                id: new_id(),
                role_id: role,
                filter,
                group_id: group,
                created: now,
                modified: now,
            };
            storage::insert_rule(db, &p.tenant, &row)?;
            self.recompute_all(db, j)?;
            Ok(Self::rule_out(&row))
        })
    }

    pub fn replace_rule(&self, p: &Principal, id: &str, body: &Value) -> Result<Value> {
        self.admin_tx(p, |db, j| {
            let old = storage::get_rule(db, &p.tenant, id)?
                .ok_or_else(|| Error::NotFound(format!("rule {id} not found")))?;
            let (role, filter, group) = self.rule_input(db, &p.tenant, body)?;
            let row = RuleRow {
                id: old.id,
                role_id: role,
                filter,
                group_id: group,
                created: old.created,
                modified: now_micros(),
            };
            storage::update_rule(db, &p.tenant, &row)?;
            self.recompute_all(db, j)?;
            Ok(Self::rule_out(&row))
        })
    }

    pub fn delete_rule(&self, p: &Principal, id: &str) -> Result<()> {
        self.admin_tx(p, |db, j| {
            if storage::delete_rule(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("rule {id} not found")));
            }
            self.recompute_all(db, j)
        })
    }

    // -----------------------------------------------------------------------------------
    // Accounts, candidates, removals

    pub(super) fn account_or_404(db: &mut Db<'_>, tenant: &str, id: &str) -> Result<AccountRow> {
        storage::get_account(db, tenant, id, true)?
            .ok_or_else(|| Error::NotFound(format!("account {id} not found")))
    }

    pub fn get_account(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_read(p, |db| {
            let a = storage::get_account(db, &p.tenant, id, false)?
                .ok_or_else(|| Error::NotFound(format!("account {id} not found")))?;
            self.account_answer(db, &p.tenant, a, Details::Full)
        })
    }

    /// `GET /accounts`, `/candidates`, `/removals`: pages of accounts by id.
    pub fn list_accounts(&self, p: &Principal, q: &AccountList) -> Result<Value> {
        let after = match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c, "a")?),
        };
        if let Some(s) = q.state.as_deref() {
            if State::parse(s).is_none() {
                return Err(bad(format!(
                    "unknown state `{s}`: use pending, active, suspended or removed"
                )));
            }
        }
        let limit = page_limit(q.limit)?;
        let filter = q
            .filter
            .as_deref()
            .map(|f| self.rule_filter(f))
            .transpose()?;
        self.admin_read(p, |db| {
            let group_pk = match q.group.as_deref() {
                None => None,
                Some(g) => Some(
                    storage::get_resource(db, &p.tenant, Rtype::Group, g, Lock::None)?
                        .ok_or_else(|| Error::NotFound(format!("Group {g} not found")))?
                        .pk,
                ),
            };
            if let Some(r) = q.role.as_deref() {
                if storage::get_role(db, &p.tenant, r)?.is_none() {
                    return Err(Error::NotFound(format!("role {r} not found")));
                }
            }
            let rows = storage::list_accounts(
                db,
                &p.tenant,
                &AccountQuery {
                    state: q.state.as_deref(),
                    role: q.role.as_deref(),
                    group_pk,
                    filter: filter.as_ref(),
                    flagged: q.flagged,
                    after: after.as_deref(),
                    limit: limit + 1,
                },
            )?;
            let more = rows.len() > usize::try_from(limit).unwrap_or(0);
            let rows = &rows[..rows.len().min(usize::try_from(limit).unwrap_or(0))];
            let mut items = Vec::new();
            for a in rows {
                items.push(self.account_json(db, a)?);
            }
            self.add_details(db, &p.tenant, rows, &mut items, q.details)?;
            let next = if more {
                items
                    .last()
                    .and_then(|v| v["id"].as_str())
                    .map(|id| encode_cursor("a", id))
            } else {
                None
            };
            Ok(json!({"items": items, "nextCursor": next}))
        })
    }

    /// Approves one candidate: pending → active with the roles its rules grant.
    pub fn approve(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_tx(p, |db, j| {
            let a = Self::account_or_404(db, &p.tenant, id)?;
            self.approve_in(db, j, a)
        })
    }

    fn approve_in(&self, db: &mut Db<'_>, j: &mut Journal, a: AccountRow) -> Result<Value> {
        if a.state != "pending" {
            return Err(Error::Conflict(format!(
                "account {} is {}, not pending: only a candidate can be approved",
                a.id, a.state
            )));
        }
        self.activate(db, j, a, Announce::Activated)
    }

    /// Makes an account active (no removal flag) with the roles its rules grant now, and
    /// announces it as `announce`; answers the account.
    pub(super) fn activate(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        a: AccountRow,
        announce: Announce,
    ) -> Result<Value> {
        let ctx = self.product_ctx(db, &j.tenant)?;
        let granted = self
            .granted_now(db, &ctx, &j.tenant, &a)?
            .unwrap_or_default();
        let life = Life {
            state: State::Active,
            removal: None,
        };
        let a = self.settle(db, &ctx, j, a, false, life, Some(announce), granted)?;
        self.account_answer(db, &j.tenant, a, Details::Profile)
    }

    pub fn reject(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_tx(p, |db, j| {
            let a = Self::account_or_404(db, &p.tenant, id)?;
            if a.state != "pending" {
                return Err(Error::Conflict(format!(
                    "account {} is {}, not pending: only a candidate can be rejected",
                    a.id, a.state
                )));
            }
            let ctx = self.product_ctx(db, &j.tenant)?;
            let life = Life {
                state: State::Removed,
                removal: None,
            };
            let a = self.settle(
                db,
                &ctx,
                j,
                a,
                false,
                life,
                Some(Announce::Rejected),
                Vec::new(),
            )?;
            self.account_answer(db, &j.tenant, a, Details::Profile)
        })
    }

    /// Approves every pending member of a SCIM group, all or nothing.
    pub fn approve_group(&self, p: &Principal, body: &Value) -> Result<Value> {
        let group = body
            .get("group")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the body is {\"group\": \"<SCIM group id>\"}"))?
            .to_string();
        self.admin_tx(p, |db, j| {
            let g = storage::get_resource(db, &p.tenant, Rtype::Group, &group, Lock::None)?
                .ok_or_else(|| Error::NotFound(format!("Group {group} not found")))?;
            let members = storage::member_pks(db, g.pk)?;
            let mut approved = Vec::new();
            for a in storage::accounts_of_user_pks(db, &p.tenant, &members)? {
                if a.state == "pending" {
                    approved.push(self.approve_in(db, j, a)?);
                }
            }
            Ok(json!({ "approved": approved }))
        })
    }

    /// Confirms a flagged removal: the account ends suspended (deactivated) or removed
    /// (deleted), its roles revoked.
    pub fn confirm_removal(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_tx(p, |db, j| {
            let a = Self::account_or_404(db, &p.tenant, id)?;
            let Some(reason) = a.removal_reason.as_deref().and_then(RemovalReason::parse) else {
                return Err(Error::Conflict(format!(
                    "account {} has no pending removal to confirm (state {})",
                    a.id, a.state
                )));
            };
            let ctx = self.product_ctx(db, &j.tenant)?;
            let state = reason.final_state();
            let ann = match state {
                State::Removed => Announce::Removed,
                _ => Announce::Suspended,
            };
            let life = Life {
                state,
                removal: None,
            };
            let a = self.settle(db, &ctx, j, a, false, life, Some(ann), Vec::new())?;
            self.account_answer(db, &j.tenant, a, Details::Profile)
        })
    }

    // -----------------------------------------------------------------------------------
    // The feed

    pub fn events(&self, p: &Principal, after: i64, limit: i64) -> Result<Vec<Value>> {
        self.admin_read(p, |db| {
            Ok(storage::feed_after(db, &p.tenant, after, limit)?
                .iter()
                .map(event_json)
                .collect())
        })
    }

    pub fn timeline(&self, p: &Principal, id: &str, q: &AccountList) -> Result<Value> {
        let after = match q.cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => decode_cursor(c, "t")?
                .parse::<i64>()
                .map_err(|_| bad("this cursor is not one Scimitar issued"))?,
        };
        let limit = page_limit(q.limit)?;
        self.admin_read(p, |db| {
            if storage::get_account(db, &p.tenant, id, false)?.is_none() {
                return Err(Error::NotFound(format!("account {id} not found")));
            }
            let rows = storage::feed_of_account(db, &p.tenant, id, after, limit + 1)?;
            let more = rows.len() > usize::try_from(limit).unwrap_or(0);
            let rows = &rows[..rows.len().min(usize::try_from(limit).unwrap_or(0))];
            let next = match (more, rows.last()) {
                (true, Some(r)) => Some(encode_cursor("t", &r.seq.to_string())),
                _ => None,
            };
            let mut items: Vec<Value> = rows.iter().map(event_json).collect();
            self.add_credentials(db, &p.tenant, rows, &mut items)?;
            Ok(json!({"items": items, "nextCursor": next}))
        })
    }

    // -----------------------------------------------------------------------------------
    // Webhooks

    fn webhook_out(w: &WebhookRow) -> Value {
        let events: Value = serde_json::from_str(&w.events).unwrap_or(json!([]));
        json!({"id": w.id, "url": w.url, "events": events, "created": format_micros(w.created)})
    }

    pub fn list_webhooks(&self, p: &Principal) -> Result<Value> {
        self.admin_read(p, |db| {
            let items: Vec<Value> = storage::list_webhooks(db, &p.tenant)?
                .iter()
                .map(Self::webhook_out)
                .collect();
            Ok(json!({"items": items, "nextCursor": null}))
        })
    }

    pub fn get_webhook(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_read(p, |db| {
            storage::get_webhook(db, &p.tenant, id)?
                .map(|w| Self::webhook_out(&w))
                .ok_or_else(|| Error::NotFound(format!("webhook {id} not found")))
        })
    }

    pub fn create_webhook(&self, p: &Principal, body: &Value) -> Result<Value> {
        let obj = body
            .as_object()
            .ok_or_else(|| bad("a webhook is {\"url\", \"events\": [...], \"secret\"?}"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["url", "events", "secret"].contains(&k.as_str()))
        {
            return Err(bad(format!("unknown webhook attribute `{k}`")));
        }
        let url = obj
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a webhook needs `url`: an http or https URL"))?;
        check_url(url)?;
        let events: Vec<String> = match obj.get("events") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("`events` lists event type strings"))
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(bad(
                    "a webhook needs `events`: a non-empty list of event types, or [\"*\"]",
                ))
            }
        };
        for e in &events {
            if e != "*"
                && !SCIM_EVENTS.contains(&e.as_str())
                && !PRODUCT_EVENTS.contains(&e.as_str())
            {
                return Err(bad(format!(
                    "unknown event type `{e}`; known: {}, {} or *",
                    SCIM_EVENTS.join(", "),
                    PRODUCT_EVENTS.join(", ")
                )));
            }
        }
        let secret = match obj.get("secret") {
            None | Some(Value::Null) => generate_secret(),
            Some(Value::String(s)) => {
                check_secret(s)?;
                s.clone()
            }
            Some(_) => {
                return Err(bad(
                    "`secret` is a string `whsec_<base64 of 24 to 64 bytes>`",
                ))
            }
        };
        self.admin_tx(p, |db, _| {
            let row = WebhookRow {
                id: new_id(),
                url: url.to_string(),
                events: json!(events).to_string(),
                secret: secret.clone(),
                created: now_micros(),
            };
            storage::insert_webhook(db, &p.tenant, &row)?;
            let mut out = Self::webhook_out(&row);
            out["secret"] = json!(secret);
            Ok(out)
        })
    }

    pub fn delete_webhook(&self, p: &Principal, id: &str) -> Result<()> {
        self.admin_tx(p, |db, _| {
            if storage::delete_webhook(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("webhook {id} not found")));
            }
            Ok(())
        })
    }

    pub fn dead_letters(&self, p: &Principal, id: &str, q: &AccountList) -> Result<Value> {
        let after = match q.cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => decode_cursor(c, "d")?
                .parse::<i64>()
                .map_err(|_| bad("this cursor is not one Scimitar issued"))?,
        };
        let limit = page_limit(q.limit)?;
        self.admin_read(p, |db| {
            if storage::get_webhook(db, &p.tenant, id)?.is_none() {
                return Err(Error::NotFound(format!("webhook {id} not found")));
            }
            let rows = storage::dead_letters(db, &p.tenant, id, after, limit + 1)?;
            let more = rows.len() > usize::try_from(limit).unwrap_or(0);
            let rows = &rows[..rows.len().min(usize::try_from(limit).unwrap_or(0))];
            let next = match (more, rows.last()) {
                (true, Some(r)) => Some(encode_cursor("d", &r.seq.to_string())),
                _ => None,
            };
            let items: Vec<Value> = rows.iter().map(delivery_json).collect();
            Ok(json!({"items": items, "nextCursor": next}))
        })
    }

    pub fn replay(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_tx(p, |db, _| {
            let d = storage::get_delivery(db, &p.tenant, id)?
                .ok_or_else(|| Error::NotFound(format!("delivery {id} not found")))?;
            if d.status != "dead" {
                return Err(Error::Conflict(format!(
                    "delivery {id} is {}, not dead: only a dead letter can be replayed",
                    d.status
                )));
            }
            storage::requeue_delivery(db, &p.tenant, id, now_micros())?;
            let d = storage::get_delivery(db, &p.tenant, id)?
                .ok_or_else(|| Error::NotFound(format!("delivery {id} not found")))?;
            Ok(delivery_json(&d))
        })
    }
}

/// Query of the account lists (and of other cursor-paged lists).
#[derive(Clone, Debug, Default)]
pub struct AccountList {
    pub state: Option<String>,
    pub role: Option<String>,
    pub group: Option<String>,
    /// A SCIM filter over the user, as a rule's (`?filter=`).
    pub filter: Option<String>,
    pub flagged: bool,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    /// What each item carries besides the account (`profile`, `wouldGet`).
    pub details: super::admin_extras::Details,
}

fn user_name(doc: &Doc) -> String {
    doc.get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn role_ids(roles_json: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(roles_json).unwrap_or(json!([]));
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(bad(format!("limit must be between 1 and 1000, not {n}"))),
    }
}

pub(super) fn encode_cursor(kind: &str, v: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{v}"))
}

pub(super) fn decode_cursor(c: &str, kind: &str) -> Result<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("this cursor is not one Scimitar issued"))?;
    raw.strip_prefix(&format!("{kind}:"))
        .map(str::to_string)
        .ok_or_else(|| bad("this cursor belongs to another list"))
}

/// A feed event as the API and webhooks show it.
pub fn event_json(r: &FeedRow) -> Value {
    let data: Value = serde_json::from_str(&r.data).unwrap_or(Value::Null);
    json!({
        "seq": r.seq, "id": r.id, "type": r.kind, "time": format_micros(r.at),
        "accountId": r.account_id, "resourceType": r.resource_type,
        "resourceId": r.resource_id, "data": data,
    })
}

pub(super) fn delivery_json(d: &DeliveryRow) -> Value {
    json!({
        "id": d.id, "webhook": d.webhook_id, "eventId": d.event_id, "seq": d.seq,
        "type": d.kind, "status": d.status, "attempts": d.attempts,
        "lastError": d.last_error,
        "lastAttemptAt": d.last_attempt.map(format_micros),
        "nextAttemptAt": if d.status == "pending" { Some(format_micros(d.next_at)) } else { None },
        "created": format_micros(d.created),
    })
}

fn check_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            bad(format!(
                "webhook url `{url}` must start with http:// or https://"
            ))
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) || url.len() > 2048 {
        return Err(bad(format!("webhook url `{url}` has no valid host")));
    }
    Ok(())
}

/// A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes.
pub fn generate_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let b64 = secret.strip_prefix("whsec_")?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn check_secret(s: &str) -> Result<()> {
    match secret_key(s) {
        Some(k) if (24..=64).contains(&k.len()) => Ok(()),
        _ => Err(bad(
            "`secret` must be `whsec_` followed by the base64 of 24 to 64 random bytes",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_list() {
        let c = encode_cursor("a", "abc");
        assert_eq!(decode_cursor(&c, "a").unwrap(), "abc");
        assert!(decode_cursor(&c, "t").is_err());
        assert!(decode_cursor("not base64!", "a").is_err());
    }

    #[test]
    fn urls_and_secrets_are_checked() {
        assert!(check_url("https://hooks.example.com/scim").is_ok());
        assert!(check_url("http://127.0.0.1:9000").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("https:///nohost").is_err());
        assert!(check_url("example.com").is_err());
        let s = generate_secret();
        assert!(check_secret(&s).is_ok());
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert!(check_secret("whsec_c2hvcnQ=").is_err());
        assert!(check_secret("plain").is_err());
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None).unwrap(), 100);
        assert_eq!(page_limit(Some(1000)).unwrap(), 1000);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
    }
}
