//! The admin's review of accounts: reading them (`/accounts`), the candidates awaiting
//! approval (`/candidates`, provisioning `review`) and the removals awaiting confirmation
//! (`/removals`, deprovisioning `notify`), the decisions on them (approve, reject, confirm,
//! restore), and the SCIM groups they are reviewed by (`/groups`). Every answer about an
//! account carries who its user is (`profile`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::policy::Role;
use super::profile::{Profile, Users};
use super::{cursor, cut, decode, found, invalid, page_limit, paged, ListParams, Page};
use crate::auth::Principal;
use crate::product::{Announce, Entitlements, EntitlementsSchema, RemovalReason, RoleRef, State};
use crate::provisioning::accounts::{holding, Account};
use crate::provisioning::{Error, Result, Service};
use crate::scim::schema::Rtype;
use crate::storage::accounts::{self as stored, AccountQuery, AccountRow};
use crate::storage::conn::{Conn, Db};
use crate::storage::dialect::Lock;
use crate::storage::{members, resources, StorageError, TenantId};

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

/// An account as this API answers it (lists, one account, the decisions on one): the
/// account, as events carry it, and who its user is now. Events and webhooks carry the
/// account alone.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountAnswer {
    #[serde(flatten)]
    pub account: Account,
    /// Null once the SCIM user is deleted.
    #[schema(required = true)]
    pub profile: Option<Profile>,
}

/// A candidate of `GET /candidates`: the account, its profile, and what approval would give.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(flatten)]
    pub answer: AccountAnswer,
    pub would_get: WouldGet,
}

/// What the candidate's rules grant now: what approval would give (roles by name, the
/// entitlements merged as for an account).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WouldGet {
    pub roles: Vec<RoleRef>,
    #[schema(value_type = EntitlementsSchema)]
    pub entitlements: Entitlements,
}

/// One account (`GET /accounts/{id}`): the account, its profile, and its SCIM user.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AccountDetail {
    #[serde(flatten)]
    pub answer: AccountAnswer,
    /// The SCIM User as `GET /scim/v2/Users/{scimId}` returns it; null once deleted.
    #[schema(required = true, value_type = Option<Object>)]
    pub user: Option<Value>,
}

/// A SCIM group of the tenant, with the users the review is about.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// SCIM group id.
    pub id: String,
    #[schema(required = true)]
    pub display_name: Option<String>,
    /// Its members that have an account.
    #[schema(minimum = 0)]
    pub users: i64,
    /// How many of those are candidates.
    #[schema(minimum = 0)]
    pub pending: i64,
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
    pub approved: Vec<AccountAnswer>,
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

/// The only item of a list made from one row.
fn only<T>(items: Vec<T>) -> Result<T> {
    items
        .into_iter()
        .next()
        .ok_or(Error::Storage(StorageError::NotFound))
}

impl Service {
    /// The answers of `rows` (same order): the accounts and their profiles.
    fn answers(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        rows: &[AccountRow],
        users: &Users,
    ) -> Result<Vec<AccountAnswer>> {
        let profiles = self.profiles(db, tenant, rows, users)?;
        rows.iter()
            .zip(profiles)
            .map(|(a, profile)| {
                Ok(AccountAnswer {
                    account: self.account_view(db, a)?,
                    profile,
                })
            })
            .collect()
    }

    /// The answer of one account.
    fn answer(&self, db: &mut Db<'_>, tenant: &TenantId, a: AccountRow) -> Result<AccountAnswer> {
        let rows = [a];
        let users = self.users_of(db, tenant, &rows)?;
        only(self.answers(db, tenant, &rows, &users)?)
    }

    pub fn get_account(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<AccountDetail> {
        self.admin_read(conn, p, |db| {
            let a = stored::get(db, &p.tenant, id, Lock::None)?
                .ok_or_else(|| Error::NotFound(format!("account {id} not found")))?;
            let rows = [a];
            let users = self.users_of(db, &p.tenant, &rows)?;
            let user = match users.of(&rows[0]) {
                Some(u) => Some(self.scim_user(db, u)?),
                None => None,
            };
            let answer = only(self.answers(db, &p.tenant, &rows, &users)?)?;
            Ok(AccountDetail { answer, user })
        })
    }

    /// `GET /accounts`, `/removals`: pages of accounts by id.
    pub fn list_accounts(
        &self,
        conn: &mut Conn,
        p: &Principal,
        queue: Queue,
        q: &ListParams,
    ) -> Result<Page<AccountAnswer>> {
        self.account_page(conn, p, queue, q, |s, db, rows| {
            let users = s.users_of(db, &p.tenant, rows)?;
            s.answers(db, &p.tenant, rows, &users)
        })
    }

    /// `GET /candidates`: pages of candidates by id, each with what its rules grant now
    /// (what approval would give).
    pub fn list_candidates(
        &self,
        conn: &mut Conn,
        p: &Principal,
        q: &ListParams,
    ) -> Result<Page<Candidate>> {
        self.account_page(conn, p, Queue::Candidates, q, |s, db, rows| {
            let users = s.users_of(db, &p.tenant, rows)?;
            let answers = s.answers(db, &p.tenant, rows, &users)?;
            let ctx = s.accounts_ctx(db, &p.tenant)?;
            let mut out = Vec::with_capacity(rows.len());
            for (a, answer) in rows.iter().zip(answers) {
                let granted = match users.of(a) {
                    Some(u) => s.granted(db, &ctx, Some(u.row.pk), &u.row.id, &u.doc)?,
                    None => Vec::new(),
                };
                let (roles, entitlements) = holding(&ctx, &granted);
                out.push(Candidate {
                    answer,
                    would_get: WouldGet {
                        roles,
                        entitlements,
                    },
                });
            }
            Ok(out)
        })
    }

    /// A page of the accounts of `queue` narrowed by `q`, each page's rows shown by `show`.
    fn account_page<T>(
        &self,
        conn: &mut Conn,
        p: &Principal,
        queue: Queue,
        q: &ListParams,
        show: impl FnOnce(&Self, &mut Db<'_>, &[AccountRow]) -> Result<Vec<T>>,
    ) -> Result<Page<T>> {
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
        let filter = q
            .filter
            .as_deref()
            .map(|f| self.rule_filter(f))
            .transpose()?;
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
                    filter: filter.as_ref(),
                    flagged: queue == Queue::Removals,
                    after: after.as_deref(),
                    limit: limit + 1,
                },
            )?;
            cut(rows, limit, |a| cursor::encode("a", &a.id)).show(|rows| show(self, db, &rows))
        })
    }

    /// Approves one candidate: pending → active with the roles its rules grant.
    pub fn approve(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<AccountAnswer> {
        self.review(conn, p, id, "approved", State::Active, Announce::Activated)
    }

    /// Rejects one candidate: pending → removed, never having held a role.
    pub fn reject(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<AccountAnswer> {
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
    ) -> Result<AccountAnswer> {
        self.admin_write(conn, p, |db, j| {
            let a = account_or_404(db, &p.tenant, id)?;
            if a.state != State::Pending {
                return Err(not_pending(&a, done));
            }
            let a = self.decide(db, j, a, to, ann)?;
            self.answer(db, &p.tenant, a)
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
            let users = self.users_of(db, &p.tenant, &approved)?;
            let approved = self.answers(db, &p.tenant, &approved, &users)?;
            Ok(GroupApproved { approved })
        })
    }

    /// Confirms a flagged removal: the account ends suspended (deactivated) or removed
    /// (deleted), its roles revoked.
    pub fn confirm_removal(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
    ) -> Result<AccountAnswer> {
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
            let a = self.decide(db, j, a, state, announce)?;
            self.answer(db, &p.tenant, a)
        })
    }

    /// Keeps an account flagged because its user was deactivated: the flag goes, the account
    /// stays active with the roles its rules grant (`account.restored`). A deleted user's
    /// account cannot be restored (no SCIM change could ever remove it): confirm it instead.
    pub fn restore(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<AccountAnswer> {
        self.admin_write(conn, p, |db, j| {
            let a = account_or_404(db, &p.tenant, id)?;
            match a.removal.map(|r| r.reason) {
                Some(RemovalReason::Deactivated) => {}
                Some(RemovalReason::Deleted) => {
                    return Err(Error::Conflict(format!(
                        "account {id} was flagged because its SCIM user was deleted: there is \
                         no user to keep access for; confirm the removal instead"
                    )))
                }
                None => {
                    return Err(Error::Conflict(format!(
                        "account {id} has no pending removal to restore (state {})",
                        a.state.as_str()
                    )))
                }
            }
            let a = self.decide(db, j, a, State::Active, Announce::Restored)?;
            self.answer(db, &p.tenant, a)
        })
    }

    /// `GET /groups`: the tenant's SCIM groups in creation order, each with how many of its
    /// users have an account and how many of those are candidates; paged.
    pub fn list_groups(
        &self,
        conn: &mut Conn,
        p: &Principal,
        q: &ListParams,
    ) -> Result<Page<GroupSummary>> {
        let after = cursor::decode_key(q.cursor.as_deref(), "g")?;
        let limit = page_limit(q.limit)?;
        self.admin_read(conn, p, |db| {
            let rows = members::groups_with_counts(db, &p.tenant, after, limit + 1)?;
            paged(
                rows,
                limit,
                |g| cursor::encode("g", &g.pk.to_string()),
                |g| {
                    Ok(GroupSummary {
                        id: g.id.clone(),
                        display_name: g.display_name.clone(),
                        users: g.users,
                        pending: g.pending,
                    })
                },
            )
        })
    }
}
