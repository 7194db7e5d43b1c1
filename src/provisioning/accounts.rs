//! Accounts inside the SCIM transactions: the account of every SCIM user, decided by the
//! product model (`product`: lifecycle, entitlement merge) under the tenant's policy, rules
//! and roles, in the transaction of the SCIM change that causes it, so an account never
//! disagrees with its user. Also the account as the API and the feed show it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::journal::{new_id, Journal};
use super::{Error, Result, Service};
use crate::product::{
    self, Announce, Entitlements, EntitlementsSchema, Life, Policy, RemovalReason, RoleDef,
    RoleRef, State, UserEvent,
};
use crate::scim::filter::{self, Cond};
use crate::scim::resource::{self, Doc, RefOut, StoredMeta};
use crate::scim::schema::Rtype;
use crate::scim::time::format_micros;
use crate::storage::accounts::{self as stored, AccountRow, Removal};
use crate::storage::conn::Db;
use crate::storage::roles::{self, ProductVersion, RoleRow, RuleGrant, RuleRow};
use crate::storage::Keyed;
use crate::storage::{members, resources, TenantId};

/// One per SCIM User of the tenant, created in the same transaction as the user. Roles and
/// entitlements are those in force: empty unless the state is `active`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Account id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Id of the SCIM User.
    #[schema(format = "uuid")]
    pub scim_id: String,
    #[schema(examples("ada@example.com"))]
    pub user_name: String,
    pub state: State,
    pub roles: Vec<RoleRef>,
    #[schema(value_type = EntitlementsSchema)]
    pub entitlements: Entitlements,
    /// The SCIM groups of its user.
    pub groups: Vec<GroupRef>,
    #[schema(required = true)]
    pub removal_pending: Option<RemovalPending>,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub created: String,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub last_modified: String,
}

/// A SCIM group of the account's user.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    /// SCIM group id.
    pub id: String,
    /// The group's displayName (null when it has none).
    #[schema(required = true)]
    pub display_name: Option<String>,
}

/// The flag of a removal awaiting confirmation (deprovisioning `notify`).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RemovalPending {
    /// When the account was flagged (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub since: String,
    pub reason: RemovalReason,
}

/// `data` of a product event: the account after the change, plus `previousRoles` for
/// `account.roles_changed`. `account.roles_changed` is emitted whenever a change to an
/// existing account alters its roles (ids or names) or its entitlements: rule, role,
/// group-membership and user changes, and also the lifecycle steps (approval and reactivation
/// to `active` grant roles; suspension and removal, automatic or confirmed, revoke them),
/// where it follows the `account.activated`/`account.suspended`/`account.removed` event in
/// the same transaction at the next seq. Not emitted when the roles and entitlements are
/// unchanged, nor for a new account.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountEventData {
    pub account: Account,
    /// Only for `account.roles_changed`: the roles the account held before the change (equal
    /// to `account.roles` when only entitlements changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_roles: Option<Vec<RoleRef>>,
}

/// How a rule grants its role.
enum Grant {
    Filter(Cond),
    Group(String),
}

/// What a transaction needs to decide accounts: the policy, the rules, the roles.
#[derive(Default)]
pub(crate) struct Ctx {
    policy: Policy,
    rules: Vec<(String, Grant)>,
    roles: HashMap<String, RoleDef>,
}

pub(crate) fn role_def(r: &RoleRow) -> RoleDef {
    RoleDef {
        id: r.id.clone(),
        name: r.name.clone(),
        entitlements: r.entitlements.clone(),
    }
}

pub(crate) fn user_name(doc: &Doc) -> String {
    doc.get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn life_of(a: &AccountRow) -> Life {
    Life {
        state: a.state,
        removal: a.removal.map(|r| r.reason),
    }
}

fn role_ids(a: &AccountRow) -> Vec<String> {
    a.roles.iter().map(|r| r.id.clone()).collect()
}

/// A new account of the user `scim_id` (its state and roles are settled next).
fn new_account(id: String, scim_id: &str, user_pk: i64, doc: &Doc, now: i64) -> AccountRow {
    AccountRow {
        id,
        scim_id: scim_id.to_string(),
        user_pk: Some(user_pk),
        user_name: user_name(doc),
        state: State::Pending,
        roles: Vec::new(),
        entitlements: Entitlements::new(),
        removal: None,
        created: now,
        modified: now,
    }
}

/// The roles of `granted` that `ctx` knows, as an account holds them (by name, then id), and
/// their entitlements merged.
pub(crate) fn holding(ctx: &Ctx, granted: &[String]) -> (Vec<RoleRef>, Entitlements) {
    let mut held: Vec<&RoleDef> = granted.iter().filter_map(|r| ctx.roles.get(r)).collect();
    held.sort_by(|x, y| x.name.cmp(&y.name).then(x.id.cmp(&y.id)));
    let roles = held
        .iter()
        .map(|r| RoleRef {
            id: r.id.clone(),
            name: r.name.clone(),
        })
        .collect();
    (roles, product::merge(&held))
}

/// The tenant's policy (the default when it set none).
pub(crate) fn policy_of(db: &mut Db<'_>, tenant: &TenantId) -> Result<Policy> {
    Ok(roles::get_policy(db, tenant)?.unwrap_or_default())
}

/// A tenant's account context and the version it was read at (`roles::product_version`).
type Kept = (ProductVersion, Arc<Ctx>);

/// The tenants' account contexts by version (`Service::accounts_ctx`), and the one of a
/// tenant that never set a policy, a role or a rule.
#[derive(Default)]
pub struct Products {
    by_tenant: Mutex<HashMap<TenantId, Kept>>,
    none: Arc<Ctx>,
}

impl Products {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Kept>> {
        // A poisoned lock only means a thread panicked while inserting: the map is whole.
        self.by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether the account `settle` writes is stored already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fresh {
    /// Stored before this change.
    Stored,
    /// New, for a user that existed before this change (it may be in groups).
    Account,
    /// New, with its user created by this change (in no group yet).
    WithUser,
}

impl Service {
    /// Parses and checks a rule's filter against the User schema: the same parser, limits
    /// and semantics as `?filter=`.
    pub(crate) fn rule_filter(&self, text: &str) -> Result<Cond> {
        let f = self.parse_filter(text)?;
        let cond = filter::resolve(&self.registry, Rtype::User, &f)?;
        if cond.uses_refs() {
            return Err(Error::Invalid(
                "a rule filter cannot test group membership: use a rule with `group` instead"
                    .into(),
            ));
        }
        Ok(cond)
    }

    /// What the tenant's writes decide accounts by. Read once per version of the tenant's
    /// policy, roles and rules (`roles::product_version`, one statement in the caller's
    /// transaction) and kept for the next write: a write used to read the policy, the roles
    /// and the rules and parse every rule's filter (three statements, on Postgres three round
    /// trips of the tenant's batch). Any change, through this instance or another (or an
    /// older binary: the database's triggers note it), is a new version. A version read
    /// inside a transaction that changed them and then rolled back names what it loaded
    /// then, and no committed state matches it (its change's random nonce).
    pub(crate) fn accounts_ctx(&self, db: &mut Db<'_>, tenant: &TenantId) -> Result<Arc<Ctx>> {
        let version = roles::product_version(db, tenant)?;
        self.accounts_ctx_at(db, tenant, version)
    }

    /// `accounts_ctx` for the version just read (with the user's account,
    /// `stored::of_user_versioned`, or with a new user, `resources::insert`).
    pub(crate) fn accounts_ctx_at(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        version: Option<ProductVersion>,
    ) -> Result<Arc<Ctx>> {
        let Some(version) = version else {
            return Ok(self.products.none.clone());
        };
        if let Some((v, ctx)) = self.products.lock().get(tenant) {
            if *v == version {
                return Ok(ctx.clone());
            }
        }
        let ctx = Arc::new(self.load_ctx(db, tenant)?);
        self.products
            .lock()
            .insert(tenant.clone(), (version, ctx.clone()));
        Ok(ctx)
    }

    /// What the tenant's writes decide accounts by (`accounts_ctx`), and the user's account,
    /// from `read`: the account (locked) and the product version, read in one statement
    /// (`stored::of_user_versioned`, `stored::delete_user_versioned`); None when the user
    /// has no account.
    fn ctx_and_account(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        read: Option<(AccountRow, Option<ProductVersion>)>,
    ) -> Result<(Arc<Ctx>, Option<AccountRow>)> {
        match read {
            Some((a, version)) => Ok((self.accounts_ctx_at(db, tenant, version)?, Some(a))),
            None => Ok((self.accounts_ctx(db, tenant)?, None)),
        }
    }

    /// The tenant's policy, roles and rules as stored (`accounts_ctx`).
    fn load_ctx(&self, db: &mut Db<'_>, tenant: &TenantId) -> Result<Ctx> {
        let policy = policy_of(db, tenant)?;
        let roles = RoleRow::list(db, tenant)?
            .iter()
            .map(|r| (r.id.clone(), role_def(r)))
            .collect();
        let mut rules = Vec::new();
        for r in RuleRow::list(db, tenant)? {
            let grant = match r.grant {
                RuleGrant::Filter(f) => match self.rule_filter(&f) {
                    Ok(c) => Grant::Filter(c),
                    Err(e) => {
                        // Checked when written; only a schema change could make it fail now.
                        log::warn!("rule {} of tenant {tenant} is ignored: {e}", r.id);
                        continue;
                    }
                },
                RuleGrant::Group(g) => Grant::Group(g),
            };
            rules.push((r.role_id, grant));
        }
        Ok(Ctx {
            policy,
            rules,
            roles,
        })
    }

    /// The role ids a user's rules grant (whatever the account's state); `user_pk` None for a
    /// user created by this change, in no group yet.
    pub(crate) fn granted(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        user_pk: Option<i64>,
        id: &str,
        doc: &Doc,
    ) -> Result<Vec<String>> {
        if ctx.rules.is_empty() {
            return Ok(Vec::new());
        }
        let rendered = resource::render(
            &self.registry,
            Rtype::User,
            doc.clone(),
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
        let groups: BTreeSet<String> = match user_pk {
            Some(pk) if needs_groups => members::group_ids_of(db, pk)?.into_iter().collect(),
            _ => BTreeSet::new(),
        };
        let mut out = BTreeSet::new();
        for (role, grant) in &ctx.rules {
            let hit = match grant {
                Grant::Filter(c) => filter::matches(c, &rendered),
                Grant::Group(g) => groups.contains(g),
            };
            if hit {
                out.insert(role.clone());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The roles the rules grant the user of an account, as stored now; `otherwise` when the
    /// user is gone.
    fn granted_now(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        tenant: &TenantId,
        a: &AccountRow,
        otherwise: Vec<String>,
    ) -> Result<Vec<String>> {
        let Some(pk) = a.user_pk else {
            return Ok(otherwise);
        };
        match resources::get_by_pk(db, tenant, pk)? {
            Some(row) => {
                let doc = super::resources::parse_doc(&row)?;
                self.granted(db, ctx, Some(pk), &row.id, &doc)
            }
            None => Ok(otherwise),
        }
    }

    /// The account as the API shows it.
    pub(crate) fn account_view(&self, db: &mut Db<'_>, a: &AccountRow) -> Result<Account> {
        self.account_view_knowing(db, a, None)
    }

    /// `account_view`, with the user's groups taken from `known` (its key, its groups) when
    /// it is this account's user, instead of read again.
    fn account_view_knowing(
        &self,
        db: &mut Db<'_>,
        a: &AccountRow,
        known: Option<&(i64, Vec<RefOut>)>,
    ) -> Result<Account> {
        let refs = match (a.user_pk, known) {
            (Some(pk), Some((k, refs))) if *k == pk => refs.clone(),
            (Some(pk), _) => members::refs_of(db, Rtype::User, &[pk])?
                .remove(&pk)
                .unwrap_or_default(),
            (None, _) => Vec::new(),
        };
        let groups = refs
            .into_iter()
            .map(|r| GroupRef {
                id: r.id,
                display_name: r.display,
            })
            .collect();
        Ok(self.account_of(a, groups))
    }

    /// The account as the API shows it, with these groups.
    fn account_of(&self, a: &AccountRow, groups: Vec<GroupRef>) -> Account {
        Account {
            id: a.id.clone(),
            scim_id: a.scim_id.clone(),
            user_name: a.user_name.clone(),
            state: a.state,
            roles: a.roles.clone(),
            entitlements: a.entitlements.clone(),
            groups,
            removal_pending: a.removal.map(|r| RemovalPending {
                since: format_micros(r.since),
                reason: r.reason,
            }),
            created: format_micros(a.created),
            last_modified: format_micros(a.modified),
        }
    }

    /// The account as a product event's `data` shows it. `new_user`: its user was created by
    /// this change, so belongs to no group yet (its groups are not read); else its groups are
    /// those the change already read (`Journal::user_groups`), or read now.
    fn event_account(
        &self,
        db: &mut Db<'_>,
        j: &Journal,
        a: &AccountRow,
        new_user: bool,
    ) -> Result<Account> {
        if new_user {
            return Ok(self.account_of(a, Vec::new()));
        }
        self.account_view_knowing(db, a, j.user_groups.as_ref())
    }

    /// Writes an account's new lifecycle and roles and announces what changed. `granted` is
    /// what the rules give; only an active account holds roles. Says whether it wrote the
    /// account (nothing changed: it did not).
    #[expect(
        clippy::too_many_arguments,
        reason = "the account, its change and the context"
    )]
    pub(crate) fn settle(
        &self,
        db: &mut Db<'_>,
        ctx: &Ctx,
        j: &mut Journal,
        mut a: AccountRow,
        fresh: Fresh,
        life: Life,
        announce: Option<Announce>,
        granted: Vec<String>,
    ) -> Result<(AccountRow, bool)> {
        let now = j.now;
        let granted: &[String] = if life.state == State::Active {
            &granted
        } else {
            &[]
        };
        let (roles, ents) = holding(ctx, granted);
        let previous_roles = a.roles.clone();
        let roles_changed = previous_roles != roles || a.entitlements != ents;
        let state_changed = a.state != life.state || a.removal.map(|r| r.reason) != life.removal;
        let is_new = fresh != Fresh::Stored;
        if !is_new && !roles_changed && !state_changed && announce.is_none() {
            return Ok((a, false));
        }
        a.state = life.state;
        a.removal = life.removal.map(|reason| Removal {
            since: a.removal.map_or(now, |r| r.since),
            reason,
        });
        a.roles = roles;
        a.entitlements = ents;
        a.modified = now;
        if is_new {
            stored::insert(db, &j.tenant, &a)?;
        } else {
            stored::update(db, &j.tenant, &a)?;
        }
        if is_new {
            // A new account holds no grants yet: nothing to replace.
            stored::add_roles(db, &j.tenant, &a.id, &role_ids(&a))?;
        } else if roles_changed {
            stored::set_roles(db, &j.tenant, &a.id, &role_ids(&a))?;
        }
        let roles_event = roles_changed && !is_new;
        if announce.is_none() && !roles_event {
            return Ok((a, true));
        }
        // Both events show the account as it is now: built once.
        let mut data = AccountEventData {
            account: self.event_account(db, j, &a, fresh == Fresh::WithUser)?,
            previous_roles: None,
        };
        if let Some(ann) = announce {
            j.account(ann.event_type(), &a.id, &a.scim_id, &data)?;
        }
        if roles_event {
            data.previous_roles = Some(previous_roles);
            j.account("account.roles_changed", &a.id, &a.scim_id, &data)?;
        }
        Ok((a, true))
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
            "create:full",
            Rtype::User,
            id,
            doc.get("externalId").and_then(Value::as_str),
            Some(rendered),
            Some(&account_id),
        )?;
        let active = doc.get("active") != Some(&Value::Bool(false));
        let (life, ann) = product::step(None, UserEvent::Created { active }, ctx.policy);
        let granted = self.granted(db, ctx, None, id, doc)?;
        let a = new_account(account_id, id, pk, doc, j.now);
        self.settle(db, ctx, j, a, Fresh::WithUser, life, ann, granted)?;
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
        let read = stored::of_user_versioned(db, &j.tenant, id)?;
        let (ctx, existing) = self.ctx_and_account(db, &j.tenant, read)?;
        let account_id = existing
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_else(new_id);
        let external = doc.get("externalId").and_then(Value::as_str);
        j.scim(
            verb,
            Rtype::User,
            id,
            external,
            Some(data),
            Some(&account_id),
        )?;
        let now_active = doc.get("active") != Some(&Value::Bool(false));
        let event = match (was_active, now_active) {
            (true, false) => Some(("deactivate", UserEvent::Deactivated)),
            (false, true) => Some(("activate", UserEvent::Reactivated)),
            _ => None,
        };
        if let Some((verb, _)) = event {
            j.scim(verb, Rtype::User, id, external, None, Some(&account_id))?;
        }
        let event = event.map(|(_, e)| e);
        let granted = self.granted(db, &ctx, Some(pk), id, doc)?;
        let (a, is_new, before) = match existing {
            Some(mut a) => {
                a.user_name = user_name(doc);
                let before = life_of(&a);
                (a, false, Some(before))
            }
            None => (new_account(account_id, id, pk, doc, j.now), true, None),
        };
        let (life, ann) = match (before, event) {
            (Some(b), None) => (b, None),
            (b, Some(e)) => product::step(b, e, ctx.policy),
            (None, None) => product::step(
                None,
                if now_active {
                    UserEvent::Reactivated
                } else {
                    UserEvent::Deactivated
                },
                ctx.policy,
            ),
        };
        let fresh = if is_new {
            Fresh::Account
        } else {
            Fresh::Stored
        };
        self.settle(db, &ctx, j, a, fresh, life, ann, granted)?;
        Ok(())
    }

    /// Deletes the SCIM user `pk` (its values and memberships go with it) and settles its
    /// account.
    pub(crate) fn delete_user(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        pk: i64,
        id: &str,
    ) -> Result<()> {
        let read = stored::delete_user_versioned(db, &j.tenant, pk, id)?;
        let (ctx, existing) = self.ctx_and_account(db, &j.tenant, read)?;
        j.scim(
            "delete",
            Rtype::User,
            id,
            None,
            None,
            existing.as_ref().map(|a| a.id.as_str()),
        )?;
        let Some(mut a) = existing else {
            return Ok(());
        };
        let before = life_of(&a);
        let (life, ann) = product::step(Some(before), UserEvent::Deleted, ctx.policy);
        // The user is gone: a flagged account keeps the roles it had until confirmed.
        let granted = role_ids(&a);
        a.user_pk = None;
        let (a, written) = self.settle(db, &ctx, j, a, Fresh::Stored, life, ann, granted)?;
        if !written {
            // Written even when nothing else changes: the user link is gone.
            stored::update(db, &j.tenant, &a)?;
        }
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
        let after = members::member_pks(db, group_pk)?;
        let b: BTreeSet<i64> = before.into_iter().collect();
        let a: BTreeSet<i64> = after.into_iter().collect();
        let changed: Vec<i64> = b.symmetric_difference(&a).copied().collect();
        if changed.is_empty() {
            return Ok(());
        }
        let ctx = self.accounts_ctx(db, &j.tenant)?;
        for acc in stored::of_users(db, &j.tenant, &changed)? {
            self.recompute(db, &ctx, j, acc)?;
        }
        Ok(())
    }

    /// The members of a group before a change, when some rule grants a role by membership
    /// of it (else None: nothing to recompute).
    pub(crate) fn watched_members(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        group_id: &str,
        group_pk: i64,
    ) -> Result<Option<Vec<i64>>> {
        if roles::group_has_rules(db, tenant, group_id)? {
            Ok(Some(members::member_pks(db, group_pk)?))
        } else {
            Ok(None)
        }
    }

    /// Recomputes one account's roles from its user as stored now.
    fn recompute(&self, db: &mut Db<'_>, ctx: &Ctx, j: &mut Journal, a: AccountRow) -> Result<()> {
        let life = life_of(&a);
        let tenant = j.tenant.clone();
        let granted = self.granted_now(db, ctx, &tenant, &a, role_ids(&a))?;
        self.settle(db, ctx, j, a, Fresh::Stored, life, None, granted)?;
        Ok(())
    }

    /// Recomputes every account that can hold roles (a role or rule changed).
    pub(crate) fn recompute_all(&self, db: &mut Db<'_>, j: &mut Journal) -> Result<()> {
        let ctx = self.accounts_ctx(db, &j.tenant)?;
        for a in stored::in_states(db, &j.tenant, &[State::Active])? {
            self.recompute(db, &ctx, j, a)?;
        }
        Ok(())
    }

    /// Moves an account by an admin's decision (approve, reject, confirm or restore a
    /// flagged removal). Becoming active grants what the rules give now.
    pub(crate) fn decide(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        a: AccountRow,
        state: State,
        announce: Announce,
    ) -> Result<AccountRow> {
        let ctx = self.accounts_ctx(db, &j.tenant)?;
        let granted = if state == State::Active {
            let tenant = j.tenant.clone();
            self.granted_now(db, &ctx, &tenant, &a, Vec::new())?
        } else {
            Vec::new()
        };
        let life = Life {
            state,
            removal: None,
        };
        self.settle(db, &ctx, j, a, Fresh::Stored, life, Some(announce), granted)
            .map(|(a, _)| a)
    }
}
