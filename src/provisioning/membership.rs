//! Group membership in the SCIM writes: member ids resolved to rows of the tenant, the limit
//! on members one request names, a PATCH's membership changes applied, and the membership
//! references a written resource shows.

use std::collections::HashMap;

use super::{Error, Result, Service};
use crate::auth::Principal;
use crate::scim::error::ScimError;
use crate::scim::patch::MemberChange;
use crate::scim::projection::Projection;
use crate::scim::resource::{MemberInput, RefOut};
use crate::scim::schema::Rtype;
use crate::storage::conn::Db;
use crate::storage::members::{self, NewMember};
use crate::storage::resources::{self, IdRow};

/// How many members a PATCH's membership changes name (the limit is per request, however
/// many operations share it).
pub(super) fn named(changes: &[MemberChange]) -> usize {
    changes
        .iter()
        .map(|c| match c {
            MemberChange::Add(l) | MemberChange::Replace(l) => l.len(),
            MemberChange::Remove(ids) => ids.len(),
            MemberChange::RemoveAll | MemberChange::RemoveWhere(_) => 0,
        })
        .sum()
}

impl Service {
    /// The most members one request may add, remove or set (`--max-members-per-request`).
    pub(super) fn member_limit(&self, named: usize) -> Result<()> {
        if named > self.settings.max_members_per_request {
            return Err(Error::TooLarge(format!(
                "{named} members in one request; the most is {}",
                self.settings.max_members_per_request
            )));
        }
        Ok(())
    }

    /// The membership references of resource `pk` when the response shows them.
    pub(super) fn shown_refs(
        &self,
        db: &mut Db<'_>,
        rt: Rtype,
        pk: i64,
        proj: &Projection,
    ) -> Result<Option<Vec<RefOut>>> {
        if !proj.wants_refs(rt) {
            return Ok(None);
        }
        Ok(Some(
            members::refs_of(db, rt, &[pk])?
                .remove(&pk)
                .unwrap_or_default(),
        ))
    }

    /// Resolves member ids to rows of this tenant. An id that names nothing here, or whose
    /// type disagrees with the `type` sent, rejects the whole request (documented in README).
    pub(super) fn resolve_members(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        group_id: Option<&str>,
        members: &[MemberInput],
    ) -> Result<Vec<NewMember>> {
        self.member_limit(members.len())?;
        let ids: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
        let found: HashMap<String, IdRow> = resources::resolve_ids(db, &p.tenant, &ids)?
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
                        if kind != row.rtype {
                            return Err(ScimError::invalid_value(format!(
                                "member {} is a {}, not a {}",
                                m.value,
                                row.rtype.name(),
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

    /// Replaces the group's members with `list` (a PUT, or a PATCH `replace` of `members`);
    /// returns how many rows changed, at least one when `list` is not empty (replacing with
    /// the same list is still a modification of the attribute).
    pub(super) fn replace_members(
        &self,
        db: &mut Db<'_>,
        p: &Principal,
        group_pk: i64,
        group_id: &str,
        list: &[MemberInput],
    ) -> Result<usize> {
        let pks = self.resolve_members(db, p, Some(group_id), list)?;
        let removed = members::remove_all(db, group_pk)?;
        let added = members::add(db, &p.tenant, group_pk, &pks)?;
        Ok(removed + added + usize::from(removed == 0 && added == 0 && !pks.is_empty()))
    }

    /// Applies one membership change of a PATCH to the group; returns how many rows changed
    /// (the group's version moves when any did).
    pub(super) fn apply_member_change(
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
                members::add(db, &p.tenant, group_pk, &pks)?
            }
            MemberChange::Replace(list) => self.replace_members(db, p, group_pk, group_id, list)?,
            MemberChange::Remove(ids) => {
                self.member_limit(ids.len())?;
                // Ids that are not members (or do not exist) are already "removed": no error.
                let pks: Vec<i64> = resources::resolve_ids(db, &p.tenant, ids)?
                    .into_iter()
                    .map(|r| r.pk)
                    .collect();
                members::remove(db, group_pk, &pks)?
            }
            MemberChange::RemoveAll => members::remove_all(db, group_pk)?,
            MemberChange::RemoveWhere(cond) => {
                members::remove_where(db, &p.tenant, group_pk, cond)?
            }
        })
    }
}
