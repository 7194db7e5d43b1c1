//! The admin's review of accounts: reading them (`/accounts`), the candidates awaiting
//! approval (`/candidates`, provisioning `review`) and the removals awaiting confirmation
//! (`/removals`, deprovisioning `notify`), and the decisions on them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::policy::Role;
use super::{cursor, decode, found, invalid, page_limit, paged, ListParams, Page};
use crate::auth::Principal;
use crate::product::{Announce, State};
use crate::provisioning::accounts::Account;
use crate::provisioning::{Error, Result, Service};
use crate::scim::schema::Rtype;
use crate::storage::accounts::{self as stored, AccountQuery, AccountRow};
use crate::storage::conn::{Conn, Db};
use crate::storage::dialect::Lock;
use crate::storage::{members, resources, TenantId};

/// Which accounts a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// `GET /accounts`: every account (the `state` parameter may narrow it).
    All,
    /// `GET /candidates`: accounts in state `pending`.
    Candidates,
    /// `GET /removals`: accounts flagged for removal.
    Removals,
}

/// The body of `POST /candidates/approve`.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupApproval {
    /// SCIM group id: every pending member is approved.
    pub group: String,
}

/// The answer of `POST /candidates/approve`: the accounts approved, all or nothing.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct GroupApproved {
    pub approved: Vec<Account>,
}

fn account_or_404(db: &mut Db<'_>, tenant: &TenantId, id: &str) -> Result<AccountRow> {
    stored::get(db, tenant, id, Lock::Delete)?
        .ok_or_else(|| Error::NotFound(format!("account {id} not found")))
}

fn not_pending(a: &AccountRow, verb: &str) -> Error {
    Error::Conflict(format!(
        "account {} is {}, not pending: only a candidate can be {verb}",
        a.id,
        a.state.as_str()
    ))
}

impl Service {
    pub fn get_account(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Account> {
        self.admin_read(conn, p, |db| {
            let a = stored::get(db, &p.tenant, id, Lock::None)?
                .ok_or_else(|| Error::NotFound(format!("account {id} not found")))?;
            self.account_view(db, &a)
        })
    }

    /// `GET /accounts`, `/candidates`, `/removals`: pages of accounts by id.
    pub fn list_accounts(
        &self,
        conn: &mut Conn,
        p: &Principal,
        queue: Queue,
        q: &ListParams,
    ) -> Result<Page<Account>> {
        let after = match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(cursor::decode(c, "a")?),
        };
        let state = match queue {
            Queue::Candidates => Some(State::Pending),
            Queue::All | Queue::Removals => match q.state.as_deref() {
                None => None,
                Some(s) => Some(State::parse(s).ok_or_else(|| {
                    invalid(format!(
                        "unknown state `{s}`: use pending, active, suspended or removed"
                    ))
                })?),
            },
        };
        let limit = page_limit(q.limit)?;
        self.admin_read(conn, p, |db| {
            let group_pk = match q.group.as_deref() {
                None => None,
                Some(g) => Some(
                    resources::get(db, &p.tenant, Rtype::Group, g, Lock::None)?
                        .ok_or_else(|| Error::NotFound(format!("Group {g} not found")))?
                        .pk,
                ),
            };
            if let Some(r) = q.role.as_deref() {
                found::<Role>(db, &p.tenant, r)?;
            }
            let rows = stored::list(
                db,
                &p.tenant,
                &AccountQuery {
                    state,
                    role: q.role.as_deref(),
                    group_pk,
                    flagged: queue == Queue::Removals,
                    after: after.as_deref(),
                    limit: limit + 1,
                },
            )?;
            paged(
                rows,
                limit,
                |a| cursor::encode("a", &a.id),
                |a| self.account_view(db, a),
            )
        })
    }

    /// Approves one candidate: pending → active with the roles its rules grant.
    pub fn approve(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Account> {
        self.review(conn, p, id, "approved", State::Active, Announce::Activated)
    }

    /// Rejects one candidate: pending → removed, never having held a role.
    pub fn reject(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Account> {
        self.review(conn, p, id, "rejected", State::Removed, Announce::Rejected)
    }

    /// Decides one candidate (`done` says how, in the 409 when it is not pending).
    fn review(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        done: &str,
        to: State,
        ann: Announce,
    ) -> Result<Account> {
        self.admin_write(conn, p, |db, j| {
            let a = account_or_404(db, &p.tenant, id)?;
            if a.state != State::Pending {
                return Err(not_pending(&a, done));
            }
            self.decide(db, j, a, to, ann)
        })
    }

    /// Approves every pending member of a SCIM group, all or nothing.
    pub fn approve_group(
        &self,
        conn: &mut Conn,
        p: &Principal,
        body: Value,
    ) -> Result<GroupApproved> {
        let GroupApproval { group } = decode(body, "the body is {\"group\": \"<SCIM group id>\"}")?;
        self.admin_write(conn, p, |db, j| {
            let g = resources::get(db, &p.tenant, Rtype::Group, &group, Lock::None)?
                .ok_or_else(|| Error::NotFound(format!("Group {group} not found")))?;
            let members = members::member_pks(db, g.pk)?;
            let mut approved = Vec::new();
            for a in stored::of_users(db, &p.tenant, &members)? {
                if a.state == State::Pending {
                    approved.push(self.decide(db, j, a, State::Active, Announce::Activated)?);
                }
            }
            Ok(GroupApproved { approved })
        })
    }

    /// Confirms a flagged removal: the account ends suspended (deactivated) or removed
    /// (deleted), its roles revoked.
    pub fn confirm_removal(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<Account> {
        self.admin_write(conn, p, |db, j| {
            let a = account_or_404(db, &p.tenant, id)?;
            let Some(removal) = a.removal else {
                return Err(Error::Conflict(format!(
                    "account {} has no pending removal to confirm (state {})",
                    a.id,
                    a.state.as_str()
                )));
            };
            let state = removal.reason.final_state();
            let announce = match state {
                State::Removed => Announce::Removed,
                _ => Announce::Suspended,
            };
            self.decide(db, j, a, state, announce)
        })
    }
}
