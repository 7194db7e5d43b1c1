//! Who an account's user is, as `/api/v1`'s answers about accounts show it (`profile`): a
//! few flat fields of the SCIM user (RFC 7643 core and enterprise attributes), read for a
//! page of accounts in one query for the users and one for their managers' names, never one
//! per account. Also the whole user, rendered as `GET /scim/v2/Users/{id}` renders it.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::provisioning::resources::{parse_doc, stored_meta};
use crate::provisioning::{Result, Service};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Doc};
use crate::scim::schema::{Rtype, ENTERPRISE_USER_SCHEMA};
use crate::storage::accounts::AccountRow;
use crate::storage::conn::Db;
use crate::storage::resources::{self, ResourceRow};
use crate::storage::{members, TenantId};

/// Who an account's user is now, from its SCIM attributes (absent ones are null). `email` is
/// the primary email, else the first; `department` and `manager` come from the enterprise
/// extension; the manager's `displayName` from the manager's own user when the client sent
/// only its id (RFC 7643 §4.3 makes it read-only).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// `displayName`.
    #[schema(required = true, examples("Ada Lovelace"))]
    pub display_name: Option<String>,
    /// `name.givenName`.
    #[schema(required = true)]
    pub given_name: Option<String>,
    /// `name.familyName`.
    #[schema(required = true)]
    pub family_name: Option<String>,
    /// The `value` of the primary `emails` entry, else of the first.
    #[schema(required = true, examples("ada@example.com"))]
    pub email: Option<String>,
    /// `title`.
    #[schema(required = true)]
    pub title: Option<String>,
    /// The enterprise extension's `department`.
    #[schema(required = true)]
    pub department: Option<String>,
    /// The enterprise extension's `manager`.
    #[schema(required = true)]
    pub manager: Option<Manager>,
    /// The SCIM user's `active`.
    pub active: bool,
}

/// The user's manager (enterprise extension).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manager {
    /// The manager's SCIM id.
    #[schema(required = true)]
    pub value: Option<String>,
    #[schema(required = true)]
    pub display_name: Option<String>,
}

/// A profile from a rendered SCIM user.
fn profile(user: &Value) -> Profile {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let ent = &user[ENTERPRISE_USER_SCHEMA];
    let email = user["emails"].as_array().and_then(|a| {
        a.iter()
            .find(|e| e["primary"] == Value::Bool(true))
            .or(a.first())
            .and_then(|e| s(&e["value"]))
    });
    let manager = ent["manager"].is_object().then(|| Manager {
        value: s(&ent["manager"]["value"]),
        display_name: s(&ent["manager"]["displayName"]),
    });
    Profile {
        display_name: s(&user["displayName"]),
        given_name: s(&user["name"]["givenName"]),
        family_name: s(&user["name"]["familyName"]),
        email,
        title: s(&user["title"]),
        department: s(&ent["department"]),
        manager,
        active: user["active"] != Value::Bool(false),
    }
}

/// A profile's manager whose name the client did not send, with the manager's id.
fn unnamed_manager(p: &mut Profile) -> Option<(String, &mut Manager)> {
    let m = p.manager.as_mut().filter(|m| m.display_name.is_none())?;
    Some((m.value.clone()?, m))
}

/// The user of an account, as stored.
pub(crate) struct User {
    pub row: ResourceRow,
    pub doc: Doc,
}

/// The users of a page of accounts (those still there), by key.
pub(crate) struct Users(HashMap<i64, User>);

impl Users {
    /// The user of account `a`; None once it is deleted.
    pub fn of(&self, a: &AccountRow) -> Option<&User> {
        a.user_pk.and_then(|pk| self.0.get(&pk))
    }
}

impl Service {
    /// The users of `rows`, in one query.
    pub(crate) fn users_of(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        rows: &[AccountRow],
    ) -> Result<Users> {
        let pks: Vec<i64> = rows.iter().filter_map(|a| a.user_pk).collect();
        let mut by_pk = HashMap::with_capacity(pks.len());
        for row in resources::by_pks(db, tenant, &pks)? {
            let doc = parse_doc(&row)?;
            by_pk.insert(row.pk, User { row, doc });
        }
        Ok(Users(by_pk))
    }

    /// The profile of each of `rows` (same order; None once its user is deleted), managers
    /// named from their own users in one more query.
    pub(crate) fn profiles(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        rows: &[AccountRow],
        users: &Users,
    ) -> Result<Vec<Option<Profile>>> {
        let mut out: Vec<Option<Profile>> = rows
            .iter()
            .map(|a| users.of(a).map(|u| profile(&self.full_user(u))))
            .collect();
        let ids: BTreeSet<String> = out
            .iter_mut()
            .flatten()
            .filter_map(|p| unnamed_manager(p).map(|(id, _)| id))
            .collect();
        if ids.is_empty() {
            return Ok(out);
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let mut names: HashMap<String, String> = HashMap::new();
        for row in resources::users_by_id(db, tenant, &ids)? {
            let doc = parse_doc(&row)?;
            let name = ["displayName", "userName"]
                .into_iter()
                .find_map(|k| doc.get(k).and_then(Value::as_str));
            if let Some(n) = name {
                names.insert(row.id, n.to_string());
            }
        }
        for p in out.iter_mut().flatten() {
            if let Some((id, m)) = unnamed_manager(p) {
                m.display_name = names.get(&id).cloned();
            }
        }
        Ok(out)
    }

    /// A user as SCIM renders it in full, without its groups: what a profile reads.
    fn full_user(&self, u: &User) -> Value {
        let meta = stored_meta(&u.row);
        let base = &self.settings.base_url;
        resource::render(
            &self.registry,
            Rtype::User,
            u.doc.clone(),
            &meta,
            base,
            None,
        )
    }

    /// A user as `GET /scim/v2/Users/{id}` answers it (with its groups).
    pub(crate) fn scim_user(&self, db: &mut Db<'_>, u: &User) -> Result<Value> {
        let refs = members::refs_of(db, Rtype::User, &[u.row.pk])?
            .remove(&u.row.pk)
            .unwrap_or_default();
        let proj = Projection::parse(&self.registry, Rtype::User, None, None)?;
        Ok(self
            .render(Rtype::User, &u.row, u.doc.clone(), Some(&refs), &proj)
            .resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            serde_json::to_value(profile(&user)).unwrap(),
            json!({"displayName": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace",
                "email": "ada@example.com", "title": "Finance Manager", "department": "Finance",
                "manager": {"value": "m1", "displayName": "Grace"}, "active": true})
        );
        let bare =
            profile(&json!({"userName": "x", "active": false, "emails": [{"value": "x@y"}]}));
        assert_eq!(bare.email.as_deref(), Some("x@y"));
        assert!(!bare.active);
        assert!(bare.department.is_none() && bare.manager.is_none());
    }
}
