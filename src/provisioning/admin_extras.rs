//! The `/api/v1` additions of issue 17. The admin console needed them; any integration may
//! use them (docs/api-v1.md): who an account is (`profile`, the SCIM `user`), what a
//! candidate would get on approval (`wouldGet`), the credential behind each timeline event,
//! a rule's preview before it is saved, restoring an account flagged for removal, a
//! subscription's recent deliveries, and the tenant's groups with their candidates. They
//! extend `product` through a few `pub(super)` helpers and are kept in their own file so the
//! restructuring of the product side can move them as one block.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::accounts::{Announce, RemovalReason};
use crate::auth::Principal;
use crate::scim::filter::parse_filter;
use crate::scim::resource::{self, Doc, StoredMeta};
use crate::scim::schema::{Rtype, ENTERPRISE_USER_SCHEMA};
use crate::storage::{self, AccountQuery, AccountRow, Db, FeedRow, Lock};

use super::product::{
    bad, decode_cursor, delivery_json, encode_cursor, internal, page_limit, AccountList,
};
use super::{Error, ListQuery, Result, Service};

/// What an item of an account list carries besides the account itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Details {
    /// The account alone (as in events and webhooks).
    #[default]
    None,
    /// With `profile`: who the user is (lists of accounts and removals).
    Profile,
    /// With `profile` and `wouldGet` (the review queue).
    Candidate,
    /// With `profile` and the whole SCIM `user` (one account).
    Full,
}

/// How many users a rule preview names.
const PREVIEW_SAMPLE: i64 = 5;

/// Who a SCIM user is, in a few flat fields (null when absent).
fn profile(user: &Value) -> Value {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let ent = &user[ENTERPRISE_USER_SCHEMA];
    let emails = user["emails"].as_array();
    let email = emails
        .and_then(|a| {
            a.iter()
                .find(|e| e["primary"] == Value::Bool(true))
                .or(a.first())
        })
        .and_then(|e| s(&e["value"]));
    let manager = if ent["manager"].is_object() {
        json!({"value": ent["manager"]["value"], "displayName": ent["manager"]["displayName"]})
    } else {
        Value::Null
    };
    json!({
        "displayName": s(&user["displayName"]),
        "givenName": s(&user["name"]["givenName"]),
        "familyName": s(&user["name"]["familyName"]),
        "email": email,
        "title": s(&user["title"]),
        "department": s(&ent["department"]),
        "manager": manager,
        "active": user["active"] != Value::Bool(false),
    })
}

impl Service {
    /// Adds `details` to the JSON of `rows` (same order), reading their users in one query.
    pub(super) fn add_details(
        &self,
        db: &mut Db<'_>,
        tenant: &str,
        rows: &[AccountRow],
        items: &mut [Value],
        details: Details,
    ) -> Result<()> {
        if details == Details::None {
            return Ok(());
        }
        let pks: Vec<i64> = rows.iter().filter_map(|a| a.user_pk).collect();
        let users: HashMap<i64, storage::ResourceRow> = storage::resources_by_pk(db, tenant, &pks)?
            .into_iter()
            .map(|r| (r.pk, r))
            .collect();
        let ctx = match details {
            Details::Candidate => Some(self.product_ctx(db, tenant)?),
            _ => None,
        };
        let mut managers = BTreeSet::new();
        for (a, item) in rows.iter().zip(items.iter_mut()) {
            let user = a.user_pk.and_then(|pk| users.get(&pk));
            let doc: Option<Doc> = user
                .map(|u| serde_json::from_str(&u.doc))
                .transpose()
                .map_err(internal)?;
            let rendered = match (user, &doc) {
                (Some(u), Some(doc)) => Some(resource::render(
                    &self.registry,
                    Rtype::User,
                    doc,
                    &StoredMeta {
                        id: u.id.clone(),
                        created: u.created,
                        modified: u.modified,
                        version: u.version,
                    },
                    &self.settings.base_url,
                    None,
                )),
                _ => None,
            };
            item["profile"] = rendered.as_ref().map_or(Value::Null, profile);
            if let Some(m) = item["profile"]["manager"]["value"].as_str() {
                managers.insert(m.to_string());
            }
            if let Some(ctx) = &ctx {
                item["wouldGet"] = match (user, &doc) {
                    (Some(u), Some(doc)) => self.would_get(db, ctx, u.pk, &u.id, doc)?,
                    _ => json!({"roles": [], "entitlements": {}}),
                };
            }
            if details == Details::Full {
                item["user"] = rendered.unwrap_or(Value::Null);
            }
        }
        self.name_managers(db, tenant, &managers, items)
    }

    /// A manager's `displayName` is read-only in SCIM (RFC 7643 §4.3): clients send only
    /// the manager's id. Names it from the manager's own user when that user is here.
    fn name_managers(
        &self,
        db: &mut Db<'_>,
        tenant: &str,
        ids: &BTreeSet<String>,
        items: &mut [Value],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().cloned().collect();
        let names: HashMap<String, String> = storage::user_names(db, tenant, &ids)?
            .into_iter()
            .filter_map(|u| Some((u.id, u.display_name.or(u.user_name)?)))
            .collect();
        for item in items {
            // `get_mut`, not indexing: indexing a null would turn it into an object.
            let Some(manager) = item
                .get_mut("profile")
                .and_then(|p| p.get_mut("manager"))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let name = manager
                .get("value")
                .and_then(Value::as_str)
                .and_then(|m| names.get(m))
                .cloned();
            if let (Some(n), Some(Value::Null)) = (name, manager.get("displayName")) {
                manager.insert("displayName".into(), Value::String(n));
            }
        }
        Ok(())
    }

    /// One account as the API answers it: the account and its `details`.
    pub(super) fn account_answer(
        &self,
        db: &mut Db<'_>,
        tenant: &str,
        a: AccountRow,
        details: Details,
    ) -> Result<Value> {
        let mut items = vec![self.account_json(db, &a)?];
        self.add_details(db, tenant, &[a], &mut items, details)?;
        Ok(items.swap_remove(0))
    }

    /// Adds to each timeline event the credential whose request wrote it:
    /// `{"id", "kind": "token"|"client"|"jwt"|null, "label"}`, or null for the bootstrap token.
    pub(super) fn add_credentials(
        &self,
        db: &mut Db<'_>,
        tenant: &str,
        rows: &[FeedRow],
        items: &mut [Value],
    ) -> Result<()> {
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.credential_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let known: HashMap<String, storage::CredentialLabel> =
            storage::credential_labels(db, tenant, &ids)?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect();
        for (r, item) in rows.iter().zip(items.iter_mut()) {
            item["credential"] = match &r.credential_id {
                None => Value::Null,
                Some(id) => match known.get(id) {
                    Some(c) => json!({"id": id, "kind": c.kind, "label": c.label}),
                    // An external issuer's token: `ISSUER|SUBJECT`, nothing stored to name it.
                    None if id.contains('|') => json!({"id": id, "kind": "jwt", "label": null}),
                    None => json!({"id": id, "kind": null, "label": null}),
                },
            };
        }
        Ok(())
    }

    /// `POST /rules/preview`: how many accounts a rule (`{"filter"}` or `{"group"}`, a
    /// `role` allowed and ignored) would match now, with a few of their userNames. An invalid
    /// filter is an answer here, not an error: `{"valid": false, "detail", "position"}`.
    pub fn preview_rule(&self, p: &Principal, body: &Value) -> Result<Value> {
        let obj = body.as_object().ok_or_else(|| {
            bad("a preview is {\"filter\": \"...\"} or {\"group\": \"<SCIM group id>\"}")
        })?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["role", "filter", "group"].contains(&k.as_str()))
        {
            return Err(bad(format!("unknown rule attribute `{k}`")));
        }
        let filter = obj.get("filter").filter(|v| !v.is_null());
        let group = obj.get("group").filter(|v| !v.is_null());
        match (filter, group) {
            (Some(Value::String(f)), None) => self.preview_filter(p, f),
            (None, Some(Value::String(g))) => self.preview_group(p, g),
            (Some(_), Some(_)) | (None, None) => Err(bad(
                "a preview has exactly one of `filter` (a SCIM filter over the user) and `group` (a SCIM group id)",
            )),
            _ => Err(bad("`filter` and `group` are strings")),
        }
    }

    fn preview_filter(&self, p: &Principal, text: &str) -> Result<Value> {
        if let Err(e) = parse_filter(text, &self.settings.filter_limits) {
            return Ok(json!({"valid": false, "detail": format!("filter {e}"), "position": e.pos}));
        }
        match self.rule_filter(text) {
            Ok(_) => {}
            Err(Error::Scim(e)) => {
                return Ok(json!({"valid": false, "detail": e.detail, "position": null}))
            }
            Err(other) => return Err(other),
        }
        // Through SCIM's own list: the same SQL a `?filter=` runs, counted.
        let page = self.list(
            p,
            &[Rtype::User],
            &ListQuery {
                filter: Some(text.to_string()),
                count: Some(PREVIEW_SAMPLE),
                attributes: Some("userName".into()),
                ..ListQuery::default()
            },
        )?;
        let sample: Vec<Value> = page["Resources"]
            .as_array()
            .map(|a| a.iter().map(|u| u["userName"].clone()).collect())
            .unwrap_or_default();
        Ok(json!({"valid": true, "matches": page["totalResults"], "sample": sample}))
    }

    fn preview_group(&self, p: &Principal, group: &str) -> Result<Value> {
        self.admin_read(p, |db| {
            let g = storage::get_resource(db, &p.tenant, Rtype::Group, group, Lock::None)?
                .ok_or_else(|| Error::NotFound(format!("Group {group} not found")))?;
            let matches = storage::count_group_accounts(db, &p.tenant, g.pk)?;
            let sample: Vec<Value> = storage::list_accounts(
                db,
                &p.tenant,
                &AccountQuery {
                    state: None,
                    role: None,
                    group_pk: Some(g.pk),
                    filter: None,
                    flagged: false,
                    after: None,
                    limit: PREVIEW_SAMPLE,
                },
            )?
            .into_iter()
            .map(|a| Value::String(a.user_name))
            .collect();
            Ok(json!({"valid": true, "matches": matches, "sample": sample}))
        })
    }

    /// Keeps an account flagged because its user was deactivated: the flag goes, the account
    /// stays active with the roles its rules grant (`account.restored`). A deleted user's
    /// account cannot be restored (nothing would ever remove it): confirm it instead.
    pub fn restore(&self, p: &Principal, id: &str) -> Result<Value> {
        self.admin_tx(p, |db, j| {
            let a = Self::account_or_404(db, &p.tenant, id)?;
            match a.removal_reason.as_deref().and_then(RemovalReason::parse) {
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
                        a.state
                    )))
                }
            }
            self.activate(db, j, a, Announce::Restored)
        })
    }

    /// `GET /webhooks/{id}/deliveries`: a subscription's deliveries, newest first, optionally
    /// of one `status` (pending, delivered, dead); paged.
    pub fn deliveries(
        &self,
        p: &Principal,
        webhook: &str,
        status: Option<&str>,
        q: &AccountList,
    ) -> Result<Value> {
        if let Some(s) = status {
            if !["pending", "delivered", "dead"].contains(&s) {
                return Err(bad(format!(
                    "unknown delivery status `{s}`: use pending, delivered or dead"
                )));
            }
        }
        let before = match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                decode_cursor(c, "r")?
                    .parse::<i64>()
                    .map_err(|_| bad("this cursor is not one Scimitar issued"))?,
            ),
        };
        let limit = page_limit(q.limit)?;
        self.admin_read(p, |db| {
            if storage::get_webhook(db, &p.tenant, webhook)?.is_none() {
                return Err(Error::NotFound(format!("webhook {webhook} not found")));
            }
            let rows =
                storage::recent_deliveries(db, &p.tenant, webhook, status, before, limit + 1)?;
            Ok(page_of(&rows, limit, delivery_json, |d| {
                encode_cursor("r", &d.seq.to_string())
            }))
        })
    }

    /// `GET /groups`: the tenant's SCIM groups in creation order, each with how many of its
    /// users have an account (`users`) and how many of those are candidates (`pending`).
    pub fn list_groups(&self, p: &Principal, q: &AccountList) -> Result<Value> {
        let after = match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                decode_cursor(c, "g")?
                    .parse::<i64>()
                    .map_err(|_| bad("this cursor is not one Scimitar issued"))?,
            ),
        };
        let limit = page_limit(q.limit)?;
        self.admin_read(p, |db| {
            let rows = storage::group_summaries(db, &p.tenant, after, limit + 1)?;
            Ok(page_of(
                &rows,
                limit,
                |g| json!({"id": g.id, "displayName": g.display_name, "users": g.users, "pending": g.pending}),
                |g| encode_cursor("g", &g.pk.to_string()),
            ))
        })
    }
}

/// A page of `limit` items from `rows` (fetched with one extra to know there is more), and
/// the cursor after its last item.
fn page_of<T>(
    rows: &[T],
    limit: i64,
    item: impl Fn(&T) -> Value,
    cursor: impl Fn(&T) -> String,
) -> Value {
    let limit = usize::try_from(limit).unwrap_or(0);
    let page = &rows[..rows.len().min(limit)];
    let next = if rows.len() > limit {
        page.last().map(&cursor)
    } else {
        None
    };
    let items: Vec<Value> = page.iter().map(item).collect();
    json!({"items": items, "nextCursor": next})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_reads_the_core_and_enterprise_attributes() {
        let user = json!({
            "userName": "ada@example.com",
            "displayName": "Ada Lovelace",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "title": "Finance Manager",
            "emails": [{"value": "a@home.example"}, {"value": "ada@example.com", "primary": true}],
            ENTERPRISE_USER_SCHEMA: {"department": "Finance",
                "manager": {"value": "m1", "displayName": "Grace"}},
        });
        assert_eq!(
            profile(&user),
            json!({"displayName": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace",
                "email": "ada@example.com", "title": "Finance Manager", "department": "Finance",
                "manager": {"value": "m1", "displayName": "Grace"}, "active": true})
        );
        let bare =
            profile(&json!({"userName": "x", "active": false, "emails": [{"value": "x@y"}]}));
        assert_eq!(bare["email"], "x@y");
        assert_eq!(bare["active"], false);
        assert!(bare["department"].is_null() && bare["manager"].is_null());
    }

    #[test]
    fn pages_say_when_there_is_more() {
        let rows = [1, 2, 3];
        let page = page_of(&rows, 2, |n| json!(n), |n| n.to_string());
        assert_eq!(page, json!({"items": [1, 2], "nextCursor": "2"}));
        let page = page_of(&rows, 3, |n| json!(n), |n| n.to_string());
        assert_eq!(page, json!({"items": [1, 2, 3], "nextCursor": null}));
    }
}
