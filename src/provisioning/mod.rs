//! Use cases: create, read, replace, patch, delete and list SCIM resources, each in one
//! database transaction that also writes its provisioning event. Blocking code: the HTTP
//! layer runs it on the blocking pool. Must not depend on actix or diesel.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::auth::{Principal, Scope};
use crate::scim::compat::Compat;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{parse_filter, Filter, Limits};
use crate::scim::patch::{self, MemberChange};
use crate::scim::projection::Projection;
use crate::scim::query::{self, Cond, Sort};
use crate::scim::resource::{self, Doc, MemberInput, RefOut, StoredMeta};
use crate::scim::schema::{Registry, Rtype, LIST_RESPONSE};
use crate::scim::time::now_micros;
use crate::storage::{
    self, Db, Lock, NewMember, Pool, ResourceRow, ResourceWrite, StorageError, Window,
};

pub mod admin_extras;
pub mod bulk;
pub mod cursor;
pub mod product;
use cursor::{Direction, Position};
use product::{Journal, Signal};

/// Server-wide settings the use cases need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Public base URL of the SCIM API, e.g. `https://idp.example.com/scim/v2`.
    pub base_url: String,
    /// Page size when the client names no `count`, and the most a page may hold.
    pub default_page_size: i64,
    pub max_page_size: i64,
    /// The most members one request may add, remove or set.
    pub max_members_per_request: usize,
    pub filter_limits: Limits,
    /// The server-wide client-dialect tolerances; a tenant's own settings override them
    /// (the principal carries the result, and the use cases follow the principal).
    pub compat: Compat,
    /// MAC key of list cursors (a server secret shared through the database).
    pub cursor_key: Vec<u8>,
    /// /Bulk limits (advertised in ServiceProviderConfig).
    pub bulk: bulk::BulkLimits,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            base_url: "http://127.0.0.1:8080/scim/v2".into(),
            default_page_size: 100,
            max_page_size: 1000,
            max_members_per_request: 10_000,
            filter_limits: Limits::default(),
            compat: Compat::default(),
            cursor_key: Vec::new(),
            bulk: bulk::BulkLimits {
                max_operations: 1000,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the resource has changed: its version is not the one in If-Match")]
    PreconditionFailed,
    #[error("{0}")]
    TooLarge(String),
    #[error("this credential may only read")]
    Forbidden,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `If-Match` (RFC 7644 §3.14, RFC 7232): `*` or a list of entity tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    /// The versions named; a tag Scimitar never issued parses to nothing and never matches.
    Versions(Vec<i64>),
}

impl IfMatch {
    pub fn parse(header: &str) -> IfMatch {
        if header.trim() == "*" {
            return IfMatch::Any;
        }
        IfMatch::Versions(
            header
                .split(',')
                .filter_map(|t| {
                    let t = t.trim();
                    let t = t.strip_prefix("W/").unwrap_or(t);
                    t.trim_matches('"').parse::<i64>().ok()
                })
                .collect(),
        )
    }

    fn check(&self, version: i64) -> Result<()> {
        match self {
            IfMatch::Any => Ok(()),
            IfMatch::Versions(v) if v.contains(&version) => Ok(()),
            IfMatch::Versions(_) => Err(Error::PreconditionFailed),
        }
    }
}

/// A resource as answered: its projected representation and version.
#[derive(Clone, Debug)]
pub struct Output {
    pub resource: Value,
    pub version: i64,
    pub location: String,
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

/// The use cases, with what they share.
#[derive(Clone)]
pub struct Service {
    pub pool: Pool,
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    /// Wakes feed long-polls and webhook workers after a commit.
    pub signal: Arc<Signal>,
}

fn ensure_write(p: &Principal) -> Result<()> {
    if p.scope == Scope::Write {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

fn not_found(rt: Rtype, id: &str) -> Error {
    Error::NotFound(format!("{} {id} not found", rt.name()))
}

fn parse_doc(row: &ResourceRow) -> Result<Doc> {
    serde_json::from_str(&row.doc).map_err(|e| Error::Storage(StorageError::Backend(Box::new(e))))
}

fn to_json(doc: &Doc) -> Result<String> {
    serde_json::to_string(doc).map_err(|e| Error::Storage(StorageError::Backend(Box::new(e))))
}

impl Service {
    fn conn(&self) -> Result<storage::PooledConn> {
        self.pool
            .get()
            .map_err(|e| Error::Storage(StorageError::Pool(e.to_string())))
    }

    /// Runs a change in one write transaction with its journal, appended to the feed last
    /// (the feed counter is the last lock a transaction takes), then wakes the feed's waiters.
    fn write<T>(
        &self,
        p: &Principal,
        f: impl FnOnce(&mut Db<'_>, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        let out = self.conn()?.write_tx(|db| {
            let mut j = Journal::new(p, now_micros());
            let out = f(db, &mut j)?;
            j.flush(db)?;
            Ok::<T, Error>(out)
        })?;
        self.signal.raise();
        Ok(out)
    }

    /// The full representation (no membership references) a `:full` event carries.
    fn full(&self, rt: Rtype, doc: &Doc, meta: &StoredMeta) -> Value {
        resource::render(&self.registry, rt, doc, meta, &self.settings.base_url, None)
    }

    fn render(
        &self,
        rt: Rtype,
        row: &ResourceRow,
        doc: &Doc,
        refs: Option<&[RefOut]>,
        proj: &Projection,
    ) -> Output {
        let meta = StoredMeta {
            id: row.id.clone(),
            created: row.created,
            modified: row.modified,
            version: row.version,
        };
        let base = &self.settings.base_url;
        let full = resource::render(&self.registry, rt, doc, &meta, base, refs);
        Output {
            resource: proj.apply(&self.registry, rt, full),
            version: row.version,
            location: format!("{base}/{}/{}", rt.endpoint(), row.id),
        }
    }

    /// Reads a row back (after a write, in the same transaction) and renders it.
    fn reload(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        rt: Rtype,
        id: &str,
        proj: &Projection,
    ) -> Result<Output> {
        let row = storage::get_resource(db, &p.tenant, rt, id, Lock::None)?
            .ok_or_else(|| not_found(rt, id))?;
        let doc = parse_doc(&row)?;
        let refs = if proj.wants_refs(rt) {
            Some(
                storage::refs_of(db, rt, &[row.pk])?
                    .remove(&row.pk)
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        Ok(self.render(rt, &row, &doc, refs.as_deref(), proj))
    }

    /// The resource to change, locked for it, at the version `If-Match` names (checked under
    /// the lock, so two writers cannot both pass it).
    fn locked(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        rt: Rtype,
        id: &str,
        lock: Lock,
        if_match: Option<&IfMatch>,
    ) -> Result<ResourceRow> {
        let row =
            storage::get_resource(db, &p.tenant, rt, id, lock)?.ok_or_else(|| not_found(rt, id))?;
        if let Some(m) = if_match {
            m.check(row.version)?;
        }
        Ok(row)
    }

    /// Renders a resource just written, from the document in hand (no re-read). Membership
    /// references are read only when the response shows them and there can be any.
    #[expect(clippy::too_many_arguments, reason = "what was written, and where")]
    fn written(
        &self,
        db: &mut Db<'_>,
        rt: Rtype,
        pk: i64,
        meta: StoredMeta,
        doc: &Doc,
        proj: &Projection,
        may_have_refs: bool,
    ) -> Result<Output> {
        let refs = if proj.wants_refs(rt) && may_have_refs {
            Some(
                storage::refs_of(db, rt, &[pk])?
                    .remove(&pk)
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        let row = ResourceRow {
            pk,
            id: meta.id,
            rtype: rt.name().to_string(),
            doc: String::new(),
            version: meta.version,
            created: meta.created,
            modified: meta.modified,
            active: None,
        };
        Ok(self.render(rt, &row, doc, refs.as_deref(), proj))
    }

    /// Resolves member ids to rows of this tenant. An id that names nothing here, or whose
    /// type disagrees with the `type` sent, rejects the whole request (documented in README).
    fn resolve_members(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        group_id: Option<&str>,
        members: &[MemberInput],
    ) -> Result<Vec<NewMember>> {
        if members.len() > self.settings.max_members_per_request {
            return Err(Error::TooLarge(format!(
                "{} members in one request; the most is {}",
                members.len(),
                self.settings.max_members_per_request
            )));
        }
        let ids: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
        let found: HashMap<String, storage::IdRow> = storage::resolve_ids(db, &p.tenant, &ids)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut missing = Vec::new();
        let mut pks = Vec::with_capacity(members.len());
        for m in members {
            if Some(m.value.as_str()) == group_id {
                return Err(ScimError::invalid_value(format!(
                    "a group cannot be a member of itself ({})",
                    m.value
                ))
                .into());
            }
            match found.get(&m.value) {
                None => missing.push(m.value.clone()),
                Some(row) => {
                    if let Some(kind) = m.kind {
                        if kind.name() != row.rtype {
                            return Err(ScimError::invalid_value(format!(
                                "member {} is a {}, not a {}",
                                m.value,
                                row.rtype,
                                kind.name()
                            ))
                            .into());
                        }
                    }
                    pks.push(NewMember {
                        pk: row.pk,
                        display: m.display.clone(),
                    });
                }
            }
        }
        if !missing.is_empty() {
            missing.truncate(20);
            return Err(ScimError::invalid_value(format!(
                "no User or Group with id {} exists; members must name existing resources",
                missing.join(", ")
            ))
            .into());
        }
        Ok(pks)
    }

    fn uniqueness(rt: Rtype, e: StorageError) -> Error {
        match e {
            StorageError::Conflict(_) if rt == Rtype::User => Error::Conflict(
                "a User with this userName already exists (userName is unique, case-insensitively)"
                    .into(),
            ),
            StorageError::Conflict(_) => {
                Error::Conflict(format!("this {} conflicts with an existing one", rt.name()))
            }
            other => Error::Storage(other),
        }
    }

    /// POST /Users, /Groups (RFC 7644 §3.3).
    pub fn create(
        &self,
        p: &Principal,
        rt: Rtype,
        body: &Value,
        proj: &Projection,
    ) -> Result<Output> {
        ensure_write(p)?;
        self.write(p, |db, j| self.create_in(db, j, p, rt, body, proj))
    }

    /// `create` inside the caller's transaction (bulk runs many in one).
    pub(crate) fn create_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        rt: Rtype,
        body: &Value,
        proj: &Projection,
    ) -> Result<Output> {
        ensure_write(p)?;
        let n = resource::normalize(&self.registry, rt, body, &p.compat)?;
        let ix = resource::index(&self.registry, rt, &n.doc);
        let doc_json = to_json(&n.doc)?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_micros();
        let member_pks = match &n.members {
            Some(m) if rt == Rtype::Group => self.resolve_members(db, p, Some(&id), m)?,
            _ => Vec::new(),
        };
        let w = ResourceWrite {
            indexed: &ix,
            doc: &doc_json,
            now,
        };
        let pk = storage::insert_resource(db, &p.tenant, rt, &id, &w)
            .map_err(|e| Self::uniqueness(rt, e))?;
        j.count(rt, 1);
        storage::add_members(db, &p.tenant, pk, &member_pks)?;
        let meta = StoredMeta {
            id,
            created: now,
            modified: now,
            version: 1,
        };
        let full = self.full(rt, &n.doc, &meta);
        match rt {
            Rtype::User => {
                let ctx = self.product_ctx(db, &p.tenant)?;
                self.on_user_created(db, &ctx, j, pk, &meta.id, &n.doc, full)?;
            }
            Rtype::Group => {
                let external = n.doc.get("externalId").and_then(Value::as_str);
                let base = &self.settings.base_url;
                j.scim(
                    base,
                    "create:full",
                    rt,
                    &meta.id,
                    external,
                    Some(full),
                    None,
                );
            }
        }
        // A new user is in no group yet; a new group has the members just added.
        let may_have_refs = !member_pks.is_empty();
        self.written(db, rt, pk, meta, &n.doc, proj, may_have_refs)
    }

    /// Creates many Users in a few statements, all or nothing (the bulk fast path): validation
    /// errors and conflicts come back as the error, and the caller retries one by one to find
    /// which operation failed. Returns each new user's id.
    pub(crate) fn create_users_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        bodies: &[Value],
    ) -> Result<Vec<String>> {
        ensure_write(p)?;
        let now = now_micros();
        let mut prepared = Vec::with_capacity(bodies.len());
        for body in bodies {
            let n = resource::normalize(&self.registry, Rtype::User, body, &p.compat)?;
            let ix = resource::index(&self.registry, Rtype::User, &n.doc);
            let json = to_json(&n.doc)?;
            prepared.push((uuid::Uuid::new_v4().to_string(), ix, json, n.doc));
        }
        let writes: Vec<ResourceWrite<'_>> = prepared
            .iter()
            .map(|(_, ix, doc, _)| ResourceWrite {
                indexed: ix,
                doc,
                now,
            })
            .collect();
        let items: Vec<(&str, &ResourceWrite<'_>)> = prepared
            .iter()
            .zip(&writes)
            .map(|((id, _, _, _), w)| (id.as_str(), w))
            .collect();
        let pks = storage::insert_resources(db, &p.tenant, Rtype::User, &items)
            .map_err(|e| Self::uniqueness(Rtype::User, e))?;
        j.count(Rtype::User, i64::try_from(pks.len()).unwrap_or(i64::MAX));
        let ctx = self.product_ctx(db, &p.tenant)?;
        for ((id, _, _, doc), pk) in prepared.iter().zip(&pks) {
            let meta = StoredMeta {
                id: id.clone(),
                created: now,
                modified: now,
                version: 1,
            };
            let full = self.full(Rtype::User, doc, &meta);
            self.on_user_created(db, &ctx, j, *pk, id, doc, full)?;
        }
        Ok(prepared.into_iter().map(|(id, _, _, _)| id).collect())
    }

    /// GET /Users/{id}. One statement (two with members): no transaction needed.
    pub fn get(&self, p: &Principal, rt: Rtype, id: &str, proj: &Projection) -> Result<Output> {
        let mut conn = self.conn()?;
        self.reload(&mut conn.db(), p, rt, id, proj)
    }

    /// PUT (RFC 7644 §3.5.1): replaces the resource. readOnly attributes are ignored,
    /// immutable ones may not change. `active` omitted keeps its value (see README).
    pub fn replace(
        &self,
        p: &Principal,
        rt: Rtype,
        id: &str,
        body: &Value,
        if_match: Option<&IfMatch>,
        proj: &Projection,
    ) -> Result<Output> {
        ensure_write(p)?;
        self.write(p, |db, j| {
            self.replace_in(db, j, p, rt, id, body, if_match, proj)
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the PUT request's parts plus the transaction"
    )]
    pub(crate) fn replace_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        rt: Rtype,
        id: &str,
        body: &Value,
        if_match: Option<&IfMatch>,
        proj: &Projection,
    ) -> Result<Output> {
        ensure_write(p)?;
        let mut n = resource::normalize(&self.registry, rt, body, &p.compat)?;
        let now = now_micros();
        let row = self.locked(db, p, rt, id, Lock::Update, if_match)?;
        let old = parse_doc(&row)?;
        resource::check_immutable(&self.registry, rt, &old, &n.doc)?;
        if rt == Rtype::User && !n.doc.contains_key("active") {
            if let Some(a) = old.get("active") {
                n.doc.insert("active".into(), a.clone());
            }
        }
        let ix = resource::index(&self.registry, rt, &n.doc);
        let w = ResourceWrite {
            indexed: &ix,
            doc: &to_json(&n.doc)?,
            now,
        };
        let mut watched = None;
        if rt == Rtype::Group {
            let members = n.members.clone().unwrap_or_default();
            let pks = self.resolve_members(db, p, Some(id), &members)?;
            watched = self.watched_members(db, &p.tenant, id, row.pk)?;
            storage::remove_all_members(db, row.pk)?;
            storage::add_members(db, &p.tenant, row.pk, &pks)?;
        }
        let version = storage::update_resource(db, &p.tenant, row.pk, row.version, &w)
            .map_err(|e| Self::uniqueness(rt, e))?;
        let meta = StoredMeta {
            id: row.id.clone(),
            created: row.created,
            modified: now,
            version,
        };
        let full = self.full(rt, &n.doc, &meta);
        match rt {
            Rtype::User => {
                let was_active = row.active != Some(false);
                self.on_user_changed(db, j, row.pk, id, &n.doc, was_active, "put:full", full)?;
            }
            Rtype::Group => {
                let external = n.doc.get("externalId").and_then(Value::as_str);
                let base = &self.settings.base_url;
                j.scim(base, "put:full", rt, id, external, Some(full), None);
                self.on_members_changed(db, j, row.pk, watched)?;
            }
        }
        self.written(db, rt, row.pk, meta, &n.doc, proj, true)
    }

    /// PATCH (RFC 7644 §3.5.2). Returns None when the answer is 204 (a Group PATCH that did
    /// not ask for attributes: a membership change never serialises the member list).
    pub fn patch(
        &self,
        p: &Principal,
        rt: Rtype,
        id: &str,
        body: &Value,
        if_match: Option<&IfMatch>,
        proj: &Projection,
    ) -> Result<Option<Output>> {
        ensure_write(p)?;
        // Parsed once, before taking the write lock: a malformed request never waits for it.
        let ops = patch::parse(body, &p.compat)?;
        self.write(p, |db, j| {
            self.patch_in(db, j, p, rt, id, &ops, if_match, proj)
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the PATCH request's parts plus the transaction"
    )]
    pub(crate) fn patch_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        rt: Rtype,
        id: &str,
        ops: &[patch::Operation],
        if_match: Option<&IfMatch>,
        proj: &Projection,
    ) -> Result<Option<Output>> {
        ensure_write(p)?;
        let compat = &p.compat;
        let now = now_micros();
        let row = self.locked(db, p, rt, id, Lock::Update, if_match)?;
        let old = parse_doc(&row)?;
        let patched = patch::apply(&self.registry, rt, &old, ops, compat)?;
        // The member limit is per request, however many operations share it.
        let named: usize = patched
            .members
            .iter()
            .map(|c| match c {
                MemberChange::Add(l) | MemberChange::Replace(l) => l.len(),
                MemberChange::Remove(ids) => ids.len(),
                MemberChange::RemoveAll | MemberChange::RemoveWhere(_) => 0,
            })
            .sum();
        if named > self.settings.max_members_per_request {
            return Err(Error::TooLarge(format!(
                "{named} members in one request; the most is {}",
                self.settings.max_members_per_request
            )));
        }
        let watched = if rt == Rtype::Group && !patched.members.is_empty() {
            self.watched_members(db, &p.tenant, id, row.pk)?
        } else {
            None
        };
        let mut members_changed = 0;
        for change in &patched.members {
            members_changed += self.apply_member_change(db, p, row.pk, id, change)?;
        }
        let doc_changed = patched.doc != old;
        let mut version = row.version;
        if doc_changed {
            let ix = resource::index(&self.registry, rt, &patched.doc);
            let w = ResourceWrite {
                indexed: &ix,
                doc: &to_json(&patched.doc)?,
                now,
            };
            version = storage::update_resource(db, &p.tenant, row.pk, row.version, &w)
                .map_err(|e| Self::uniqueness(rt, e))?;
        } else if members_changed > 0 {
            version = storage::touch_resource(db, &p.tenant, row.pk, row.version, now)?;
        }
        if version != row.version {
            let data = patch::to_json(ops);
            match rt {
                Rtype::User => {
                    let was_active = row.active != Some(false);
                    self.on_user_changed(
                        db,
                        j,
                        row.pk,
                        id,
                        &patched.doc,
                        was_active,
                        "patch:full",
                        data,
                    )?;
                }
                Rtype::Group => {
                    let external = patched.doc.get("externalId").and_then(Value::as_str);
                    let base = &self.settings.base_url;
                    j.scim(base, "patch:full", rt, id, external, Some(data), None);
                    self.on_members_changed(db, j, row.pk, watched)?;
                }
            }
        }
        if rt == Rtype::Group && !proj.is_requested() {
            return Ok(None);
        }
        let meta = StoredMeta {
            id: row.id.clone(),
            created: row.created,
            modified: if version != row.version {
                now
            } else {
                row.modified
            },
            version,
        };
        self.written(db, rt, row.pk, meta, &patched.doc, proj, true)
            .map(Some)
    }

    fn apply_member_change(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        group_pk: i64,
        group_id: &str,
        change: &MemberChange,
    ) -> Result<usize> {
        Ok(match change {
            MemberChange::Add(list) => {
                let pks = self.resolve_members(db, p, Some(group_id), list)?;
                storage::add_members(db, &p.tenant, group_pk, &pks)?
            }
            MemberChange::Replace(list) => {
                let pks = self.resolve_members(db, p, Some(group_id), list)?;
                let removed = storage::remove_all_members(db, group_pk)?;
                let added = storage::add_members(db, &p.tenant, group_pk, &pks)?;
                // Replacing with the same list is still a modification of the attribute.
                removed + added + usize::from(removed == 0 && added == 0 && !pks.is_empty())
            }
            MemberChange::Remove(ids) => {
                if ids.len() > self.settings.max_members_per_request {
                    return Err(Error::TooLarge(format!(
                        "{} members in one request; the most is {}",
                        ids.len(),
                        self.settings.max_members_per_request
                    )));
                }
                // Ids that are not members (or do not exist) are already "removed": no error.
                let pks: Vec<i64> = storage::resolve_ids(db, &p.tenant, ids)?
                    .into_iter()
                    .map(|r| r.pk)
                    .collect();
                storage::remove_members(db, group_pk, &pks)?
            }
            MemberChange::RemoveAll => storage::remove_all_members(db, group_pk)?,
            MemberChange::RemoveWhere(cond) => {
                storage::remove_members_where(db, &p.tenant, group_pk, cond)?
            }
        })
    }

    /// DELETE (RFC 7644 §3.6): removes the resource and its memberships; every group it
    /// belonged to gets a new version and an update event, in the same transaction.
    pub fn delete(
        &self,
        p: &Principal,
        rt: Rtype,
        id: &str,
        if_match: Option<&IfMatch>,
    ) -> Result<()> {
        ensure_write(p)?;
        self.write(p, |db, j| self.delete_in(db, j, p, rt, id, if_match))
    }

    pub(crate) fn delete_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        rt: Rtype,
        id: &str,
        if_match: Option<&IfMatch>,
    ) -> Result<()> {
        ensure_write(p)?;
        let now = now_micros();
        let row = storage::get_resource(db, &p.tenant, rt, id, Lock::None)?
            .ok_or_else(|| not_found(rt, id))?;
        // Lock order on Postgres: the groups it is in (pk order), then the row itself, the
        // same order as a membership change (group, then its members' keys), so a delete and
        // a PUT of one of its groups cannot deadlock.
        let groups = storage::groups_containing(db, &p.tenant, row.pk)?;
        let row = self.locked(db, p, rt, id, Lock::Delete, if_match)?;
        let base = &self.settings.base_url;
        for g in groups {
            storage::touch_resource(db, &p.tenant, g.pk, g.version, now)?;
            let data = json!({
                "schemas": [crate::scim::schema::PATCH_OP],
                "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}],
            });
            j.scim(
                base,
                "patch:full",
                Rtype::Group,
                &g.id,
                None,
                Some(data),
                None,
            );
        }
        let watched = match rt {
            Rtype::Group => self.watched_members(db, &p.tenant, id, row.pk)?,
            Rtype::User => None,
        };
        storage::delete_resource(db, &p.tenant, row.pk)?;
        j.count(rt, -1);
        match rt {
            Rtype::User => self.on_user_deleted(db, j, id)?,
            Rtype::Group => {
                j.scim(base, "delete", rt, id, None, None, None);
                self.on_members_changed(db, j, row.pk, watched)?;
            }
        }
        Ok(())
    }

    /// Parses a filter (syntax only), within the configured limits.
    pub fn parse_filter(&self, text: &str) -> Result<Filter> {
        Ok(parse_filter(text, &self.settings.filter_limits)
            .map_err(|e| ScimError::invalid_filter(format!("filter {e}")))?)
    }

    /// GET /Users?filter=..., POST /Users/.search and POST /.search (RFC 7644 §3.4.2-3):
    /// a ListResponse over one or several resource types. Over several types, a filter, sort
    /// or attribute that does not apply to one type excludes (filter) or is ignored for
    /// (sort, attributes) that type; it is an error only when it applies to none.
    pub fn list(&self, p: &Principal, types: &[Rtype], q: &ListQuery) -> Result<Value> {
        if q.count.is_some_and(|c| c < 0) {
            return Err(ScimError::new(ScimType::InvalidValue, "`count` must be 0 or more").into());
        }
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
                    .map(|f| self.parse_filter(f))
                    .transpose()?;
                let cond = filter
                    .as_ref()
                    .map(|f| query::resolve(&self.registry, rt, f))
                    .transpose()?;
                let (a, x) = (q.attributes.as_deref(), q.excluded_attributes.as_deref());
                let single = types.len() == 1;
                let proj = if single {
                    Projection::parse(&self.registry, rt, a, x)?
                } else {
                    Projection::parse_lenient(&self.registry, rt, a, x)?
                };
                let sort = match q.sort_by.as_deref() {
                    None => None,
                    Some(by) => match query::resolve_sort(&self.registry, rt, by, descending) {
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
        let count = q
            .count
            .unwrap_or(self.settings.default_page_size)
            .min(self.settings.max_page_size);
        let mut conn = self.conn()?;
        if let (Some(cursor), [plan]) = (&q.cursor, plans.as_slice()) {
            return conn.read_tx(|db| self.cursor_page(db, p, plan, q, cursor, count));
        }
        // RFC 7644 §3.4.2.4: startIndex below 1 is read as 1; count is capped by the server.
        let start = q.start_index.unwrap_or(1).max(1);
        let (total, outputs) = conn.read_tx(|db| {
            let mut total = 0;
            let mut outputs = Vec::new();
            // The types are concatenated in order; the page is a window over them.
            let mut skip = start - 1;
            for plan in &plans {
                let window = Window::Offset {
                    offset: skip,
                    limit: count - outputs.len() as i64,
                };
                let page = storage::search(
                    db,
                    &p.tenant,
                    plan.rt,
                    plan.cond.as_ref(),
                    plan.sort.as_ref(),
                    &window,
                    true,
                )?;
                let t = page.total.unwrap_or(0);
                total += t;
                skip = (skip - t).max(0);
                outputs.extend(self.render_rows(db, plan, &page.rows)?);
            }
            Ok::<_, Error>((total, outputs))
        })?;
        Ok(json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": outputs.len(),
            "Resources": outputs,
        }))
    }

    fn render_rows(
        &self,
        db: &mut Db<'_>,
        plan: &Plan,
        rows: &[ResourceRow],
    ) -> Result<Vec<Value>> {
        let mut refs = if plan.proj.wants_refs(plan.rt) && !rows.is_empty() {
            let pks: Vec<i64> = rows.iter().map(|r| r.pk).collect();
            Some(storage::refs_of(db, plan.rt, &pks)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let doc = parse_doc(row)?;
            let r = refs.as_mut().map(|m| m.remove(&row.pk).unwrap_or_default());
            out.push(
                self.render(plan.rt, row, &doc, r.as_deref(), &plan.proj)
                    .resource,
            );
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
        q: &ListQuery,
        cursor: &str,
        count: i64,
    ) -> Result<Value> {
        let sort_text = match &plan.sort {
            Some(s) => format!("{}|{}", s.key.loc, if s.descending { "d" } else { "a" }),
            None => String::new(),
        };
        let qh = cursor::query_hash(&p.tenant, &[plan.rt.name(), &plan.canonical, &sort_text]);
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
        let mut page = storage::search(
            db,
            &p.tenant,
            plan.rt,
            plan.cond.as_ref(),
            plan.sort.as_ref(),
            &window,
            false,
        )?;
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
        let mut body = json!({
            "schemas": [LIST_RESPONSE],
            "itemsPerPage": n,
            "Resources": self.render_rows(db, plan, &page.rows)?,
        });
        if n > 0 && has_next {
            body["nextCursor"] = json!(at(n - 1, Direction::Next));
        }
        if n > 0 && has_prev {
            body["previousCursor"] = json!(at(0, Direction::Previous));
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
                body[key] = json!(cursor::encode(&self.settings.cursor_key, &back));
            }
        }
        let _ = q;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_parses_weak_strong_and_star() {
        assert_eq!(IfMatch::parse("*"), IfMatch::Any);
        assert_eq!(IfMatch::parse("W/\"3\""), IfMatch::Versions(vec![3]));
        assert_eq!(
            IfMatch::parse("\"3\", W/\"4\""),
            IfMatch::Versions(vec![3, 4])
        );
        assert!(IfMatch::parse("W/\"abc\"").check(1).is_err());
        assert!(IfMatch::parse("W/\"2\"").check(2).is_ok());
    }
}
