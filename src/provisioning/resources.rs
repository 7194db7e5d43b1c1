//! The SCIM resource use cases (RFC 7644 §3.3, §3.5, §3.6): create, read, replace, patch
//! and delete Users and Groups, each in one write transaction (see `Service::write`) that
//! also journals its feed events and decides the user's account. `*_in` variants run inside
//! the caller's transaction (bulk runs many in one).

use serde_json::{json, Value};

use super::journal::{new_id, Journal};
use super::membership;
use super::{ensure_write, Error, Result, Service};
use crate::auth::Principal;
use crate::scim::error::ScimError;
use crate::scim::patch;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Doc, RefOut, StoredMeta};
use crate::scim::schema::Rtype;
use crate::scim::time::now_micros;
use crate::storage::conn::{Conn, Db};
use crate::storage::dialect::Lock;
use crate::storage::index;
use crate::storage::members;
use crate::storage::resources::{self, ResourceRow, ResourceWrite};
use crate::storage::StorageError;

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

/// The resource a request changes: its type, its id and the versions `If-Match` accepts.
#[derive(Clone, Debug)]
pub struct Target {
    pub rt: Rtype,
    pub id: String,
    pub if_match: Option<IfMatch>,
}

/// One SCIM write: a single request's, or one operation of a bulk request.
#[derive(Clone, Debug)]
pub enum Change {
    Create(Rtype, Value),
    Replace(Target, Value),
    /// Its operations parsed before the write lock is taken (`Change::patch`).
    Patch(Target, Vec<patch::Operation>),
    Delete(Target),
}

impl Change {
    /// A PATCH request of `p`'s, its body parsed now (after the scope check): a malformed one
    /// never waits for the write lock.
    pub fn patch(t: Target, body: &Value, p: &Principal) -> Result<Change> {
        ensure_write(p)?;
        Ok(Change::Patch(t, patch::parse(body, &p.compat)?))
    }
}

/// A change with its work that needs no database done (`Service::prepare`), ready to write.
enum Prepared<'a> {
    Create(NewResource),
    /// The body normalized.
    Replace(&'a Target, resource::Normalized),
    Patch(&'a Target, &'a [patch::Operation]),
    Delete(&'a Target),
}

/// A create ready to write: its document normalized, indexed and serialised, its new id.
struct NewResource {
    rt: Rtype,
    n: resource::Normalized,
    ix: index::Indexed,
    doc_json: String,
    id: String,
}

/// What a write answers.
#[derive(Debug)]
pub enum Done {
    /// POST (201), PUT and a PATCH that returns the resource (200).
    Resource { status: u16, output: Output },
    /// DELETE, and a Group PATCH that asked for no attributes (204).
    NoContent { location: String },
}

/// A resource as answered: its projected representation and version.
#[derive(Clone, Debug)]
pub struct Output {
    pub resource: Value,
    pub version: i64,
    pub location: String,
}

/// A resource as GET answers it: its wire text, and its version for the ETag.
#[derive(Debug)]
pub struct Fetched {
    pub text: String,
    pub version: i64,
}

fn not_found(rt: Rtype, id: &str) -> Error {
    Error::NotFound(format!("{} {id} not found", rt.name()))
}

/// The server-kept facts of a stored row, as rendering shows them.
pub(crate) fn stored_meta(row: &ResourceRow) -> StoredMeta {
    StoredMeta {
        id: row.id.clone(),
        created: row.created,
        modified: row.modified,
        version: row.version,
    }
}

/// The stored document of a row; one that does not decode is `Corrupt`, naming the row.
pub(crate) fn parse_doc(row: &ResourceRow) -> Result<Doc> {
    Ok(serde_json::from_str(&row.doc)
        .map_err(|e| StorageError::corrupt("resources", row.pk, format!("column doc: {e}")))?)
}

/// A document as stored, within the caps of one stored resource: at most
/// `max_values_per_attribute` values in any multi-valued attribute (group `members` are kept
/// apart, under `--max-members-per-request`) and `max_resource_bytes` of JSON. Checked before
/// the resource row is written (a PATCH's membership rows come first and roll back with the
/// change's savepoint), so a refused write changes nothing.
fn to_json(doc: &Doc, caps: &super::Caps) -> Result<String> {
    fn over(doc: &Doc, max: usize) -> Option<(String, usize)> {
        doc.iter().find_map(|(name, v)| match v {
            Value::Array(a) if a.len() > max && name != "members" => Some((name.clone(), a.len())),
            // An extension's attributes, under its URN.
            Value::Object(o) if name.starts_with("urn:") => {
                over(o, max).map(|(n, len)| (format!("{name}:{n}"), len))
            }
            _ => None,
        })
    }
    if let Some((name, len)) = over(doc, caps.max_values_per_attribute) {
        return Err(ScimError::invalid_value(format!(
            "`{name}` would hold {len} values; the most one attribute may hold is {} \
             (--max-values-per-attribute)",
            caps.max_values_per_attribute
        ))
        .into());
    }
    let json = serde_json::to_string(doc)
        .map_err(|e| Error::Storage(StorageError::Backend(Box::new(e))))?;
    if json.len() > caps.max_resource_bytes {
        return Err(Error::TooLarge(format!(
            "the resource would take {} bytes stored; the most is {} \
             (--max-resource-bytes)",
            json.len(),
            caps.max_resource_bytes
        )));
    }
    Ok(json)
}

impl Service {
    /// A SCIM write (POST, PUT, PATCH or DELETE of one resource) in its own transaction.
    pub fn change(
        &self,
        conn: &mut Conn,
        p: &Principal,
        change: &Change,
        proj: &Projection,
    ) -> Result<Done> {
        ensure_write(p)?;
        // What needs no database is done before the write takes its turn in a batch
        // (SQLite's single writer, a Postgres tenant's batch connection).
        let prepared = self.prepare(p, change)?;
        self.write(conn, p, |db, j| self.apply(db, j, p, prepared, proj))
    }

    /// `change` inside the caller's transaction (bulk runs many in one).
    pub(crate) fn change_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        change: &Change,
        proj: &Projection,
    ) -> Result<Done> {
        ensure_write(p)?;
        let prepared = self.prepare(p, change)?;
        self.apply(db, j, p, prepared, proj)
    }

    /// A change's work that needs no database: a create's body validated, normalized, indexed
    /// and serialised (within the caps), a PUT's body normalized.
    fn prepare<'a>(&self, p: &Principal, change: &'a Change) -> Result<Prepared<'a>> {
        Ok(match change {
            Change::Create(rt, body) => {
                let n = resource::normalize(&self.registry, *rt, body, &p.compat)?;
                let ix = index::index(&self.registry, *rt, &n.doc);
                let doc_json = to_json(&n.doc, &self.settings.caps)?;
                Prepared::Create(NewResource {
                    rt: *rt,
                    n,
                    ix,
                    doc_json,
                    id: new_id(),
                })
            }
            Change::Replace(t, body) => Prepared::Replace(
                t,
                resource::normalize(&self.registry, t.rt, body, &p.compat)?,
            ),
            Change::Patch(t, ops) => Prepared::Patch(t, ops),
            Change::Delete(t) => Prepared::Delete(t),
        })
    }

    /// Writes a prepared change.
    fn apply(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        change: Prepared<'_>,
        proj: &Projection,
    ) -> Result<Done> {
        let resource = |status, output| Done::Resource { status, output };
        let gone = |t: &Target| Done::NoContent {
            location: self.location(t.rt, &t.id),
        };
        Ok(match change {
            Prepared::Create(new) => resource(201, self.create_in(db, j, p, new, proj)?),
            Prepared::Replace(t, n) => resource(200, self.replace_in(db, j, p, t, n, proj)?),
            Prepared::Patch(t, ops) => match self.patch_in(db, j, p, t, ops, proj)? {
                Some(output) => resource(200, output),
                None => gone(t),
            },
            Prepared::Delete(t) => {
                self.delete_in(db, j, p, t)?;
                gone(t)
            }
        })
    }

    /// Where a resource is (its `meta.location`).
    pub(crate) fn location(&self, rt: Rtype, id: &str) -> String {
        format!("{}/{}/{id}", self.settings.base_url, rt.endpoint())
    }

    /// The full representation (no membership references) a `:full` event carries.
    fn full(&self, rt: Rtype, doc: &Doc, meta: &StoredMeta) -> Value {
        resource::render(
            &self.registry,
            rt,
            doc.clone(),
            meta,
            &self.settings.base_url,
            None,
        )
    }

    pub(crate) fn render(
        &self,
        rt: Rtype,
        row: &ResourceRow,
        doc: Doc,
        refs: Option<&[RefOut]>,
        proj: &Projection,
    ) -> Output {
        let meta = stored_meta(row);
        let base = &self.settings.base_url;
        let full = resource::render(&self.registry, rt, doc, &meta, base, refs);
        Output {
            resource: proj.apply(&self.registry, rt, full),
            version: row.version,
            location: self.location(rt, &row.id),
        }
    }

    /// A stored row's wire text under `proj`: spliced from its stored JSON when the
    /// projection is the default one or asks for whole core attributes only
    /// (`resource::render_text`), else rendered and projected.
    pub(crate) fn render_text(
        &self,
        rt: Rtype,
        row: &ResourceRow,
        refs: Option<&[RefOut]>,
        proj: &Projection,
    ) -> Result<String> {
        let meta = stored_meta(row);
        let base = &self.settings.base_url;
        if let Some(text) =
            resource::render_text(&self.registry, rt, &row.doc, &meta, base, refs, proj)
        {
            return Ok(text);
        }
        let doc = parse_doc(row)?;
        Ok(self.render(rt, row, doc, refs, proj).resource.to_string())
    }

    /// The resource to change, locked for it, at the version `If-Match` names (checked under
    /// the lock, so two writers cannot both pass it).
    fn locked(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        t: &Target,
        lock: Lock,
    ) -> Result<ResourceRow> {
        let row = resources::get(db, &p.tenant, t.rt, &t.id, lock)?
            .ok_or_else(|| not_found(t.rt, &t.id))?;
        if let Some(m) = &t.if_match {
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
        doc: Doc,
        proj: &Projection,
        may_have_refs: bool,
    ) -> Result<Output> {
        let refs = if may_have_refs {
            self.shown_refs(db, rt, pk, proj)?
        } else {
            None
        };
        Ok(self.written_with(rt, pk, meta, doc, proj, refs))
    }

    /// `written`, with the references it shows already read (`shown_refs`).
    fn written_with(
        &self,
        rt: Rtype,
        pk: i64,
        meta: StoredMeta,
        doc: Doc,
        proj: &Projection,
        refs: Option<Vec<RefOut>>,
    ) -> Output {
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
        self.render(rt, &row, doc, refs.as_deref(), proj)
    }

    /// A user's own change (PATCH, PUT) and its account's update: the user's groups, when the
    /// answer shows them, are read once for both (such a change moves no membership), then the
    /// answer. `changed` runs the account's update with them in the journal.
    #[expect(clippy::too_many_arguments, reason = "the user just written")]
    fn user_written(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        pk: i64,
        meta: StoredMeta,
        doc: Doc,
        proj: &Projection,
        changed: impl FnOnce(&Self, &mut Db<'_>, &mut Journal, &Doc) -> Result<()>,
    ) -> Result<Output> {
        j.user_groups = self
            .shown_refs(db, Rtype::User, pk, proj)?
            .map(|refs| (pk, refs));
        let done = changed(self, db, j, &doc);
        let refs = j.user_groups.take().map(|(_, refs)| refs);
        done?;
        Ok(self.written_with(Rtype::User, pk, meta, doc, proj, refs))
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

    /// POST /Users, /Groups (RFC 7644 §3.3), prepared (`prepare`).
    fn create_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        new: NewResource,
        proj: &Projection,
    ) -> Result<Output> {
        let NewResource {
            rt,
            n,
            ix,
            doc_json,
            id,
        } = new;
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
        // A new user's account is decided by the tenant's product version, read with the
        // insert.
        let (pk, version) = resources::insert(db, &p.tenant, rt, &id, &w, rt == Rtype::User)
            .map_err(|e| Self::uniqueness(rt, e))?;
        j.count(rt, 1);
        members::add(db, &p.tenant, pk, &member_pks)?;
        let meta = StoredMeta {
            id,
            created: now,
            modified: now,
            version: 1,
        };
        let full = self.full(rt, &n.doc, &meta);
        match rt {
            Rtype::User => {
                let ctx = self.accounts_ctx_at(db, &p.tenant, version)?;
                self.on_user_created(db, &ctx, j, pk, &meta.id, &n.doc, full)?;
            }
            Rtype::Group => {
                let external = n.doc.get("externalId").and_then(Value::as_str);
                j.scim("create:full", rt, &meta.id, external, Some(full), None)?;
            }
        }
        // A new user is in no group yet; a new group has the members just added.
        let may_have_refs = !member_pks.is_empty();
        self.written(db, rt, pk, meta, n.doc, proj, may_have_refs)
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
            let ix = index::index(&self.registry, Rtype::User, &n.doc);
            let json = to_json(&n.doc, &self.settings.caps)?;
            prepared.push((new_id(), ix, json, n.doc));
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
        let pks = resources::insert_many(db, &p.tenant, Rtype::User, &items)
            .map_err(|e| Self::uniqueness(Rtype::User, e))?;
        j.count(Rtype::User, i64::try_from(pks.len()).unwrap_or(i64::MAX));
        let ctx = self.accounts_ctx(db, &p.tenant)?;
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
    pub fn get(
        &self,
        conn: &mut Conn,
        p: &Principal,
        rt: Rtype,
        id: &str,
        proj: &Projection,
    ) -> Result<Fetched> {
        let db = &mut conn.db();
        let row =
            resources::get(db, &p.tenant, rt, id, Lock::None)?.ok_or_else(|| not_found(rt, id))?;
        let refs = self.shown_refs(db, rt, row.pk, proj)?;
        Ok(Fetched {
            text: self.render_text(rt, &row, refs.as_deref(), proj)?,
            version: row.version,
        })
    }

    /// PUT (RFC 7644 §3.5.1) of a normalized body: replaces the resource. readOnly attributes are ignored,
    /// immutable ones may not change. `active` omitted keeps its value (see README).
    fn replace_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        t: &Target,
        mut n: resource::Normalized,
        proj: &Projection,
    ) -> Result<Output> {
        let (rt, id) = (t.rt, t.id.as_str());
        let now = now_micros();
        let row = self.locked(db, p, t, Lock::Update)?;
        let old = parse_doc(&row)?;
        resource::check_immutable(&self.registry, rt, &old, &n.doc)?;
        if rt == Rtype::User && !n.doc.contains_key("active") {
            if let Some(a) = old.get("active") {
                n.doc.insert("active".into(), a.clone());
            }
        }
        let ix = index::index(&self.registry, rt, &n.doc);
        let w = ResourceWrite {
            indexed: &ix,
            doc: &to_json(&n.doc, &self.settings.caps)?,
            now,
        };
        let mut watched = None;
        if rt == Rtype::Group {
            let members = n.members.clone().unwrap_or_default();
            watched = self.watched_members(db, &p.tenant, id, row.pk)?;
            self.replace_members(db, p, row.pk, id, &members)?;
        }
        let version = resources::update(db, &p.tenant, row.pk, row.version, &w)
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
                let changed = |svc: &Self, db: &mut Db<'_>, j: &mut Journal, doc: &Doc| {
                    svc.on_user_changed(db, j, row.pk, id, doc, was_active, "put:full", full)
                };
                return self.user_written(db, j, row.pk, meta, n.doc, proj, changed);
            }
            Rtype::Group => {
                let external = n.doc.get("externalId").and_then(Value::as_str);
                j.scim("put:full", rt, id, external, Some(full), None)?;
                self.on_members_changed(db, j, row.pk, watched)?;
            }
        }
        self.written(db, rt, row.pk, meta, n.doc, proj, true)
    }

    /// PATCH (RFC 7644 §3.5.2). Returns None when the answer is 204 (a Group PATCH that did
    /// not ask for attributes: a membership change never serialises the member list).
    fn patch_in(
        &self,
        db: &mut Db<'_>,
        j: &mut Journal,
        p: &Principal,
        t: &Target,
        ops: &[patch::Operation],
        proj: &Projection,
    ) -> Result<Option<Output>> {
        let (rt, id) = (t.rt, t.id.as_str());
        let compat = &p.compat;
        let now = now_micros();
        let row = self.locked(db, p, t, Lock::Update)?;
        let old = parse_doc(&row)?;
        let patched = patch::apply(&self.registry, rt, &old, ops, compat)?;
        self.member_limit(membership::named(&patched.members))?;
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
            let ix = index::index(&self.registry, rt, &patched.doc);
            let w = ResourceWrite {
                indexed: &ix,
                doc: &to_json(&patched.doc, &self.settings.caps)?,
                now,
            };
            version = resources::update(db, &p.tenant, row.pk, row.version, &w)
                .map_err(|e| Self::uniqueness(rt, e))?;
        } else if members_changed > 0 {
            version = resources::touch(db, &p.tenant, row.pk, row.version, now)?;
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
        if version != row.version {
            let data = patch::to_json(ops);
            match rt {
                Rtype::User => {
                    let was_active = row.active != Some(false);
                    let changed = |svc: &Self, db: &mut Db<'_>, j: &mut Journal, doc: &Doc| {
                        svc.on_user_changed(db, j, row.pk, id, doc, was_active, "patch:full", data)
                    };
                    return self
                        .user_written(db, j, row.pk, meta, patched.doc, proj, changed)
                        .map(Some);
                }
                Rtype::Group => {
                    let external = patched.doc.get("externalId").and_then(Value::as_str);
                    j.scim("patch:full", rt, id, external, Some(data), None)?;
                    self.on_members_changed(db, j, row.pk, watched)?;
                }
            }
        }
        if rt == Rtype::Group && !proj.is_requested() {
            return Ok(None);
        }
        self.written(db, rt, row.pk, meta, patched.doc, proj, true)
            .map(Some)
    }

    /// DELETE (RFC 7644 §3.6): removes the resource and its memberships; every group it
    /// belonged to gets a new version and an update event, in the same transaction.
    fn delete_in(&self, db: &mut Db<'_>, j: &mut Journal, p: &Principal, t: &Target) -> Result<()> {
        let (rt, id) = (t.rt, t.id.as_str());
        let now = now_micros();
        // Lock order on Postgres: the groups it is in (pk order), then the row itself, the
        // same order as a membership change (group, then its members' keys), so a delete and
        // a PUT of one of its groups cannot deadlock. (A resource no group holds, or none of
        // this id, has no groups; `locked` then finds it, or answers 404.) A user's account
        // is locked after these, with its deletion (`delete_user`, which deletes the row
        // itself: on Postgres in the statement that reads the account); a group's row goes
        // below.
        let groups = members::groups_containing(db, &p.tenant, rt, id)?;
        let row = self.locked(db, p, t, Lock::Delete)?;
        for g in groups {
            resources::touch(db, &p.tenant, g.pk, g.version, now)?;
            let data = json!({
                "schemas": [crate::scim::schema::PATCH_OP],
                "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}],
            });
            j.scim("patch:full", Rtype::Group, &g.id, None, Some(data), None)?;
        }
        let watched = match rt {
            Rtype::Group => self.watched_members(db, &p.tenant, id, row.pk)?,
            Rtype::User => None,
        };
        j.count(rt, -1);
        match rt {
            Rtype::User => self.delete_user(db, j, row.pk, id)?,
            Rtype::Group => {
                resources::delete(db, &p.tenant, row.pk)?;
                j.scim("delete", rt, id, None, None, None)?;
                self.on_members_changed(db, j, row.pk, watched)?;
            }
        }
        Ok(())
    }
}
