//! The tenant's provisioning policy, its roles (a name and typed entitlements) and the rules
//! that grant them (a SCIM filter over the user, or a SCIM group). Changing a role or a rule
//! recomputes every active account in the same transaction; a rule can be previewed (how
//! many accounts it would match) before it is saved.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::{decode, found, invalid, Shown};
use crate::auth::Principal;
use crate::product::{self, Entitlements, EntitlementsSchema, Policy, RoleDef};
use crate::provisioning::accounts::{policy_of, role_def, user_name};
use crate::provisioning::journal::new_id;
use crate::provisioning::resources::parse_doc;
use crate::provisioning::{ensure_admin, Error, Result, Service};
use crate::scim::filter::{parse_filter_with, Syntax};
use crate::scim::schema::Rtype;
use crate::scim::time::{format_micros, now_micros};
use crate::storage::accounts::{self as stored, AccountQuery};
use crate::storage::conn::{Conn, Db};
use crate::storage::dialect::Lock;
use crate::storage::roles::{self, RoleRow, RuleGrant, RuleRow};
use crate::storage::search::{self, Window};
use crate::storage::{resources, Keyed, StorageError, StoreResult, TenantId};

/// A named set of entitlements. Names are unique per tenant. When roles grant the same key:
/// numbers → the highest wins; booleans → true wins; strings → the value of the role whose
/// name sorts first (byte order).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(examples("finance-manager"))]
    pub name: String,
    #[schema(value_type = EntitlementsSchema)]
    pub entitlements: Entitlements,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub created: String,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub last_modified: String,
}

/// A role's name and entitlements (a PUT replaces both).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// 1 to 200 bytes (surrounding spaces are dropped); unique per tenant (409 if taken).
    #[schema(value_type = String, required = true, min_length = 1)]
    pub name: Option<String>,
    /// A key has one type across the tenant's roles (400 otherwise).
    #[schema(value_type = Option<EntitlementsSchema>)]
    pub entitlements: Option<Entitlements>,
    /// Accepted and ignored: a role read back may be sent again.
    #[schema(value_type = Option<String>)]
    pub id: Option<Value>,
}

/// Grants a role: by SCIM filter over the User or by SCIM group membership (exactly one of
/// `filter`/`group`). A user holds a role when any rule of that role matches.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Rule id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Role id.
    #[schema(format = "uuid")]
    pub role: String,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub created: String,
    /// RFC 3339 in UTC, e.g. 2026-11-26T20:00:00.123456Z.
    #[schema(format = DateTime)]
    pub last_modified: String,
    #[serde(flatten)]
    pub grant: Grant,
}

/// What a rule tests: `filter` or `group`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = RuleGrant)]
pub enum Grant {
    /// Grants `role` to every user matching `filter`.
    Filter {
        /// SCIM filter over the User (the language of /scim/v2/Users?filter=).
        #[schema(examples("title eq \"Finance Manager\""))]
        filter: String,
    },
    /// Grants `role` to every member of the SCIM group `group`.
    Group {
        /// SCIM group id.
        group: String,
    },
}

/// The body of `POST /rules` and `PUT /rules/{id}` (its schema: `RuleInput::schema`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// The id of the role it grants.
    pub role: Option<String>,
    /// A SCIM filter over the user (the query language of `?filter=`).
    pub filter: Option<String>,
    /// A SCIM group id: its members get the role.
    pub group: Option<String>,
    /// Accepted and ignored (a rule read back may be sent again).
    pub id: Option<Value>,
}

/// `{"role", "filter"}` or `{"role", "group"}`: one object shape per kind of rule.
impl PartialSchema for RuleInput {
    fn schema() -> RefOr<Schema> {
        let shape = |title: &str, grant: &str, about: &str| {
            ObjectBuilder::new()
                .title(Some(title))
                .property(
                    "role",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(utoipa::openapi::SchemaFormat::Custom("uuid".into())))
                        .description(Some("Role id.")),
                )
                .property(
                    grant,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(about)),
                )
                .required("role")
                .required(grant)
        };
        OneOfBuilder::new()
            .description(Some(
                "`{\"role\", \"filter\"}` or `{\"role\", \"group\"}` (exactly one of `filter`/`group`). \
                 A filter that does not parse or names an unknown attribute gives 400 with the position. \
                 Group membership is tested with a `group` rule, not with a filter on `groups`.",
            ))
            .item(shape(
                "filter rule",
                "filter",
                "SCIM filter over the User (the language of /scim/v2/Users?filter=).",
            ))
            .item(shape("group rule", "group", "SCIM group id."))
            .into()
    }
}

impl ToSchema for RuleInput {}

/// The body of `POST /rules/preview`: a rule's body, its `role` (if sent) ignored.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "A rule's body (its `role`, if sent, is ignored, so a rule can be previewed as it will be saved): exactly one of `filter` and `group`."
)]
pub struct RulePreviewInput {
    /// Accepted and ignored.
    #[schema(value_type = Option<String>)]
    pub role: Option<Value>,
    /// SCIM filter over the User (the language of /scim/v2/Users?filter=).
    pub filter: Option<String>,
    /// SCIM group id.
    pub group: Option<String>,
}

/// What a rule would match now, before it is saved. A filter a rule cannot take is an answer
/// here, not an error.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RulePreview {
    /// The rule is good: how many accounts it would match now, and some of their userNames.
    Valid {
        #[schema(schema_with = always_true)]
        valid: bool,
        /// Accounts the rule would match now.
        #[schema(minimum = 0)]
        matches: i64,
        /// userNames of some of them (at most 5).
        sample: Vec<String>,
    },
    /// The filter is not one a rule takes.
    Invalid {
        #[schema(schema_with = always_false)]
        valid: bool,
        /// The filter parser's message, or why a rule cannot test what the filter names.
        detail: String,
        /// The character the parser stopped at; null when the filter parses but names what
        /// a rule cannot test.
        #[schema(required = true, minimum = 0)]
        position: Option<usize>,
    },
}

fn always_true() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
}

fn always_false() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([false]))
}

/// How many users a rule preview names.
const PREVIEW_SAMPLE: i64 = 5;

const PREVIEW_SHAPE: &str =
    "a preview is {\"filter\": \"...\"} or {\"group\": \"<SCIM group id>\"} (a `role` is ignored)";

const POLICY_SHAPE: &str =
    "a policy is {\"provisioning\": \"auto\"|\"review\", \"deprovisioning\": \"auto\"|\"notify\"}";
const ROLE_SHAPE: &str = "a role is a JSON object with `name` and `entitlements`";
const RULE_SHAPE: &str = "a rule is a JSON object: {\"role\", \"filter\"} or {\"role\", \"group\"}";

impl Shown for Role {
    type Row = RoleRow;
    const NAME: &'static str = "role";

    fn of(row: &RoleRow) -> Role {
        Role {
            id: row.id.clone(),
            name: row.name.clone(),
            entitlements: row.entitlements.clone(),
            created: format_micros(row.created),
            last_modified: format_micros(row.modified),
        }
    }
}

impl Shown for Rule {
    type Row = RuleRow;
    const NAME: &'static str = "rule";

    fn of(row: &RuleRow) -> Rule {
        Rule {
            id: row.id.clone(),
            role: row.role_id.clone(),
            created: format_micros(row.created),
            last_modified: format_micros(row.modified),
            grant: match &row.grant {
                RuleGrant::Filter(f) => Grant::Filter { filter: f.clone() },
                RuleGrant::Group(g) => Grant::Group { group: g.clone() },
            },
        }
    }
}

fn role_conflict(e: StorageError) -> Error {
    match e {
        StorageError::Conflict(_) => Error::Conflict("a role with this name already exists".into()),
        other => Error::Storage(other),
    }
}

/// A role body's name (trimmed) and entitlements.
fn role_fields(body: RoleInput) -> Result<(String, Entitlements)> {
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 200)
        .ok_or_else(|| invalid("a role needs a `name`: a string of 1 to 200 bytes"))?
        .to_string();
    Ok((name, body.entitlements.unwrap_or_default()))
}

/// Checks entitlements against the tenant's other roles (a key keeps its type).
fn check_entitlements(
    db: &mut Db<'_>,
    tenant: &TenantId,
    ents: &Entitlements,
    except: Option<&str>,
) -> Result<()> {
    let others: Vec<RoleDef> = RoleRow::list(db, tenant)?
        .iter()
        .filter(|r| Some(r.id.as_str()) != except)
        .map(role_def)
        .collect();
    product::check_entitlements(ents, &others).map_err(Error::Invalid)
}

impl Service {
    pub fn get_policy(&self, conn: &mut Conn, p: &Principal) -> Result<Policy> {
        self.admin_read(conn, p, |db| policy_of(db, &p.tenant))
    }

    pub fn put_policy(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<Policy> {
        let policy: Policy = decode(body, POLICY_SHAPE)?;
        self.admin_write(conn, p, |db, _| {
            roles::put_policy(db, &p.tenant, policy)?;
            Ok(policy)
        })
    }

    pub fn create_role(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<Role> {
        let (name, entitlements) = role_fields(decode(body, ROLE_SHAPE)?)?;
        self.admin_write(conn, p, |db, _| {
            check_entitlements(db, &p.tenant, &entitlements, None)?;
            let now = now_micros();
            let row = RoleRow {
                id: new_id(),
                name,
                entitlements,
                created: now,
                modified: now,
            };
            roles::insert_role(db, &p.tenant, &row).map_err(role_conflict)?;
            Ok(Role::of(&row))
        })
    }

    pub fn replace_role(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        body: Value,
    ) -> Result<Role> {
        let (name, entitlements) = role_fields(decode(body, ROLE_SHAPE)?)?;
        self.admin_write(conn, p, |db, j| {
            let old = found::<Role>(db, &p.tenant, id)?;
            check_entitlements(db, &p.tenant, &entitlements, Some(id))?;
            let row = RoleRow {
                id: old.id,
                name,
                entitlements,
                created: old.created,
                modified: now_micros(),
            };
            roles::update_role(db, &p.tenant, &row).map_err(role_conflict)?;
            self.recompute_all(db, j)?;
            Ok(Role::of(&row))
        })
    }

    pub fn delete_role(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<()> {
        self.delete_grant::<Role>(conn, p, id, roles::delete_role)
    }

    /// Deletes a role or a rule, then recomputes every active account.
    fn delete_grant<V: Shown>(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        delete: fn(&mut Db<'_>, &TenantId, &str) -> StoreResult<usize>,
    ) -> Result<()> {
        self.admin_write(conn, p, |db, j| {
            if delete(db, &p.tenant, id)? == 0 {
                return Err(Error::NotFound(format!("{} {id} not found", V::NAME)));
            }
            self.recompute_all(db, j)
        })
    }

    /// Checks a rule body against the tenant: role exists, filter parses, group exists.
    fn rule_input(
        &self,
        db: &mut Db<'_>,
        tenant: &TenantId,
        body: RuleInput,
    ) -> Result<(String, RuleGrant)> {
        let role = body
            .role
            .ok_or_else(|| invalid("a rule needs `role`: the id of the role it grants"))?;
        let grant = match (body.filter, body.group) {
            (Some(f), None) => {
                self.rule_filter(&f)?;
                RuleGrant::Filter(f)
            }
            (None, Some(g)) => {
                if resources::get(db, tenant, Rtype::Group, &g, Lock::None)?.is_none() {
                    return Err(Error::NotFound(format!("Group {g} not found")));
                }
                RuleGrant::Group(g)
            }
            _ => {
                return Err(invalid(
                    "a rule has exactly one of `filter` (a SCIM filter over the user) and `group` (a SCIM group id)",
                ))
            }
        };
        found::<Role>(db, tenant, &role)?;
        Ok((role, grant))
    }

    pub fn create_rule(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<Rule> {
        let body: RuleInput = decode(body, RULE_SHAPE)?;
        self.admin_write(conn, p, |db, j| {
            let (role_id, grant) = self.rule_input(db, &p.tenant, body)?;
            let now = now_micros();
            let row = RuleRow {
                id: new_id(),
                role_id,
                grant,
                created: now,
                modified: now,
            };
            roles::insert_rule(db, &p.tenant, &row)?;
            self.recompute_all(db, j)?;
            Ok(Rule::of(&row))
        })
    }

    pub fn replace_rule(
        &self,
        conn: &mut Conn,
        p: &Principal,
        id: &str,
        body: Value,
    ) -> Result<Rule> {
        self.admin_write(conn, p, |db, j| {
            let old = found::<Rule>(db, &p.tenant, id)?;
            let (role_id, grant) = self.rule_input(db, &p.tenant, decode(body, RULE_SHAPE)?)?;
            let row = RuleRow {
                id: old.id,
                role_id,
                grant,
                created: old.created,
                modified: now_micros(),
            };
            roles::update_rule(db, &p.tenant, &row)?;
            self.recompute_all(db, j)?;
            Ok(Rule::of(&row))
        })
    }

    pub fn delete_rule(&self, conn: &mut Conn, p: &Principal, id: &str) -> Result<()> {
        self.delete_grant::<Rule>(conn, p, id, roles::delete_rule)
    }
}

impl Service {
    /// `POST /rules/preview`: how many accounts a rule would match now, with a few of their
    /// userNames; writes nothing. A filter that does not parse, or names what a rule cannot
    /// test, is answered as invalid (with the parser's position), not as an error.
    pub fn preview_rule(&self, conn: &mut Conn, p: &Principal, body: Value) -> Result<RulePreview> {
        // An invalid filter is answered without a read: check the caller first.
        ensure_admin(p)?;
        let input: RulePreviewInput = decode(body, PREVIEW_SHAPE)?;
        match (input.filter, input.group) {
            (Some(f), None) => self.preview_filter(conn, p, &f),
            (None, Some(g)) => self.preview_group(conn, p, &g),
            _ => Err(invalid(
                "a preview has exactly one of `filter` (a SCIM filter over the user) and `group` (a SCIM group id)",
            )),
        }
    }

    fn preview_filter(&self, conn: &mut Conn, p: &Principal, text: &str) -> Result<RulePreview> {
        // The parser again for its position: a rule's filter is parsed as `rule_filter` does.
        if let Err(e) = parse_filter_with(text, &self.settings.filter_limits, Syntax::LENIENT) {
            return Ok(RulePreview::Invalid {
                valid: false,
                detail: format!("filter {e}"),
                position: Some(e.pos),
            });
        }
        let cond = match self.rule_filter(text) {
            Ok(c) => c,
            Err(Error::Scim(e)) => return Ok(not_testable(e.detail)),
            Err(Error::Invalid(detail)) => return Ok(not_testable(detail)),
            Err(other) => return Err(other),
        };
        self.admin_read(conn, p, |db| {
            // The search a `?filter=` runs, counted.
            let window = Window::Offset {
                offset: 0,
                limit: PREVIEW_SAMPLE,
            };
            let page =
                search::search(db, &p.tenant, Rtype::User, Some(&cond), None, &window, true)?;
            let sample = page
                .rows
                .iter()
                .map(|r| Ok(user_name(&parse_doc(r)?)))
                .collect::<Result<Vec<String>>>()?;
            Ok(RulePreview::Valid {
                valid: true,
                matches: page.total.unwrap_or(0),
                sample,
            })
        })
    }

    fn preview_group(&self, conn: &mut Conn, p: &Principal, group: &str) -> Result<RulePreview> {
        self.admin_read(conn, p, |db| {
            let g = resources::get(db, &p.tenant, Rtype::Group, group, Lock::None)?
                .ok_or_else(|| Error::NotFound(format!("Group {group} not found")))?;
            let matches = stored::count_in_group(db, &p.tenant, g.pk)?;
            let query = AccountQuery {
                group_pk: Some(g.pk),
                limit: PREVIEW_SAMPLE,
                ..AccountQuery::default()
            };
            let sample = stored::list(db, &p.tenant, &query)?
                .into_iter()
                .map(|a| a.user_name)
                .collect();
            Ok(RulePreview::Valid {
                valid: true,
                matches,
                sample,
            })
        })
    }
}

/// A filter that parses but names what a rule cannot test.
fn not_testable(detail: String) -> RulePreview {
    RulePreview::Invalid {
        valid: false,
        detail,
        position: None,
    }
}
