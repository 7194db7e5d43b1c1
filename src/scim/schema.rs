//! The schema registry: RFC 7643 schemas and resource types loaded from `scim-schemas/`
//! (embedded at build time). Attribute handling everywhere is driven by these definitions.
//! Pure: no actix, no diesel.

use serde::Deserialize;
use serde_json::Value;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Binary,
    Complex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default = "read_write")]
    pub mutability: Mutability,
    #[serde(default = "returned_default")]
    pub returned: Returned,
    #[serde(default)]
    pub sub_attributes: Vec<Attribute>,
    /// RFC 7643 §7 `canonicalValues` (e.g. `work`, `home`, `other` for `emails.type`).
    #[serde(default)]
    pub canonical_values: Vec<String>,
}

fn read_write() -> Mutability {
    Mutability::ReadWrite
}
fn returned_default() -> Returned {
    Returned::Default
}

impl Attribute {
    /// The sub-attribute named `name` (attribute names are case-insensitive, RFC 7643 §2.1).
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn simple(
        name: &str,
        kind: AttrType,
        case_exact: bool,
        mutability: Mutability,
        returned: Returned,
    ) -> Attribute {
        Attribute {
            name: name.to_string(),
            kind,
            multi_valued: false,
            required: false,
            case_exact,
            mutability,
            returned,
            sub_attributes: Vec::new(),
            canonical_values: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Schema {
    pub id: String,
    pub name: String,
    pub attributes: Vec<Attribute>,
    /// The file as loaded, served by `/Schemas`.
    #[serde(skip)]
    pub document: Value,
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct SchemaExtension {
    pub schema: String,
    pub required: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTypeDef {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub schema: String,
    #[serde(default)]
    pub schema_extensions: Vec<SchemaExtension>,
    #[serde(skip)]
    pub document: Value,
}

/// The two resource types Scimitar serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rtype {
    User,
    Group,
}

impl Rtype {
    pub const ALL: [Rtype; 2] = [Rtype::User, Rtype::Group];

    pub fn name(self) -> &'static str {
        match self {
            Rtype::User => "User",
            Rtype::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            Rtype::User => "Users",
            Rtype::Group => "Groups",
        }
    }
    pub fn from_name(name: &str) -> Option<Rtype> {
        Rtype::ALL
            .into_iter()
            .find(|rt| name.eq_ignore_ascii_case(rt.name()))
    }
}

/// Where an attribute lives: the core schema (or a common attribute) or an extension.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    /// `None` for core and common attributes, the extension's schema id otherwise.
    pub extension: Option<&'a str>,
    pub attr: &'a Attribute,
}

impl Resolved<'_> {
    /// Canonical, lower-cased path used in storage and comparisons:
    /// `name.familyname`, `urn:...:enterprise:2.0:user:manager.value`.
    pub fn storage_path(&self, sub: Option<&Attribute>) -> String {
        let mut p = match self.extension {
            Some(urn) => format!("{}:{}", urn.to_lowercase(), self.attr.name.to_lowercase()),
            None => self.attr.name.to_lowercase(),
        };
        if let Some(s) = sub {
            p.push('.');
            p.push_str(&s.name.to_lowercase());
        }
        p
    }
}

/// All schemas and resource types, plus the common attributes (RFC 7643 §3.1).
#[derive(Debug)]
pub struct Registry {
    schemas: Vec<Schema>,
    resource_types: Vec<ResourceTypeDef>,
    common: Vec<Attribute>,
}

const SCHEMA_FILES: &[&str] = &[
    include_str!("../../scim-schemas/User.json"),
    include_str!("../../scim-schemas/Group.json"),
    include_str!("../../scim-schemas/EnterpriseUser.json"),
    include_str!("../../scim-schemas/ServiceProviderConfig.json"),
    include_str!("../../scim-schemas/ResourceType.json"),
    include_str!("../../scim-schemas/Schema.json"),
];
const RESOURCE_TYPE_FILES: &[&str] = &[
    include_str!("../../scim-schemas/resource-types/User.json"),
    include_str!("../../scim-schemas/resource-types/Group.json"),
];

/// Definitions from embedded JSON files, each keeping its document as written (`keep`).
fn embedded<T: serde::de::DeserializeOwned>(
    files: &[&str],
    what: &str,
    keep: fn(&mut T, Value),
) -> Result<Vec<T>, String> {
    files
        .iter()
        .map(|text| {
            let document: Value = serde_json::from_str(text).map_err(|e| format!("{what}: {e}"))?;
            let mut def: T =
                serde_json::from_value(document.clone()).map_err(|e| format!("{what}: {e}"))?;
            keep(&mut def, document);
            Ok(def)
        })
        .collect()
}

impl Registry {
    /// Loads the embedded definitions. They are part of the binary, so a failure here is a
    /// build defect, reported at start-up (and caught by the unit test below).
    pub fn load() -> Result<Registry, String> {
        let schemas = embedded(SCHEMA_FILES, "schema file", |s: &mut Schema, d| {
            s.document = d
        })?;
        let resource_types = embedded(
            RESOURCE_TYPE_FILES,
            "resource type file",
            |rt: &mut ResourceTypeDef, d| rt.document = d,
        )?;
        let mut meta = Attribute::simple(
            "meta",
            AttrType::Complex,
            false,
            Mutability::ReadOnly,
            Returned::Default,
        );
        meta.sub_attributes = vec![
            Attribute::simple(
                "resourceType",
                AttrType::String,
                true,
                Mutability::ReadOnly,
                Returned::Default,
            ),
            Attribute::simple(
                "created",
                AttrType::DateTime,
                false,
                Mutability::ReadOnly,
                Returned::Default,
            ),
            Attribute::simple(
                "lastModified",
                AttrType::DateTime,
                false,
                Mutability::ReadOnly,
                Returned::Default,
            ),
            Attribute::simple(
                "location",
                AttrType::Reference,
                true,
                Mutability::ReadOnly,
                Returned::Default,
            ),
            Attribute::simple(
                "version",
                AttrType::String,
                true,
                Mutability::ReadOnly,
                Returned::Default,
            ),
        ];
        let common = vec![
            Attribute::simple(
                "id",
                AttrType::String,
                true,
                Mutability::ReadOnly,
                Returned::Always,
            ),
            Attribute::simple(
                "externalId",
                AttrType::String,
                true,
                Mutability::ReadWrite,
                Returned::Default,
            ),
            meta,
        ];
        let registry = Registry {
            schemas,
            resource_types,
            common,
        };
        for rt in Rtype::ALL {
            let def = registry.resource_type(rt);
            registry.schema(&def.schema).ok_or_else(|| {
                format!(
                    "resource type {} names unknown schema {}",
                    def.id, def.schema
                )
            })?;
            for ext in &def.schema_extensions {
                registry.schema(&ext.schema).ok_or_else(|| {
                    format!(
                        "resource type {} names unknown extension {}",
                        def.id, ext.schema
                    )
                })?;
            }
        }
        Ok(registry)
    }

    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }

    pub fn schema(&self, id: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    pub fn resource_types(&self) -> &[ResourceTypeDef] {
        &self.resource_types
    }

    pub fn resource_type(&self, rt: Rtype) -> &ResourceTypeDef {
        // Both definitions are embedded and checked by `load`.
        self.resource_types
            .iter()
            .find(|d| d.id == rt.name())
            .unwrap_or(&self.resource_types[0])
    }

    pub fn core_schema(&self, rt: Rtype) -> &Schema {
        let id = &self.resource_type(rt).schema;
        self.schema(id).unwrap_or(&self.schemas[0])
    }

    /// The extension schemas a resource type allows.
    pub fn extensions(&self, rt: Rtype) -> Vec<&Schema> {
        self.resource_type(rt)
            .schema_extensions
            .iter()
            .filter_map(|e| self.schema(&e.schema))
            .collect()
    }

    /// The extension of `rt` whose id is `urn` (case-insensitive).
    pub fn extension(&self, rt: Rtype, urn: &str) -> Option<&Schema> {
        self.resource_type(rt)
            .schema_extensions
            .iter()
            .filter(|e| e.schema.eq_ignore_ascii_case(urn))
            .find_map(|e| self.schema(&e.schema))
    }

    /// Whether attribute `attr` of extension `ext` (None: of the core schema) is defined for
    /// resource type `rt` only: no other type's core schema, extensions or common attributes
    /// name it, so every stored value at its path belongs to a resource of type `rt`.
    pub fn only_on(&self, rt: Rtype, ext: Option<&str>, attr: &str) -> bool {
        Rtype::ALL
            .into_iter()
            .filter(|other| *other != rt)
            .all(|other| match ext {
                None => {
                    self.core_schema(other).attribute(attr).is_none()
                        && self.common_attribute(attr).is_none()
                }
                Some(urn) => self
                    .extension(other, urn)
                    .is_none_or(|s| s.attribute(attr).is_none()),
            })
    }

    pub fn common_attribute(&self, name: &str) -> Option<&Attribute> {
        self.common
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn common_attributes(&self) -> &[Attribute] {
        &self.common
    }

    /// Resolves `[urn:]attr` for resource type `rt`. `urn` may name the core schema
    /// (`urn:...:core:2.0:User:userName`) or one of the type's extensions.
    pub fn resolve(&self, rt: Rtype, urn: Option<&str>, attr: &str) -> Option<Resolved<'_>> {
        let core = self.core_schema(rt);
        match urn {
            None => core
                .attribute(attr)
                .or_else(|| self.common_attribute(attr))
                .map(|a| Resolved {
                    extension: None,
                    attr: a,
                }),
            Some(u) if u.eq_ignore_ascii_case(&core.id) => core
                .attribute(attr)
                .or_else(|| self.common_attribute(attr))
                .map(|a| Resolved {
                    extension: None,
                    attr: a,
                }),
            Some(u) => {
                let ext = self.extension(rt, u)?;
                ext.attribute(attr).map(|a| Resolved {
                    extension: Some(ext.id.as_str()),
                    attr: a,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_load_and_are_complete() {
        let r = Registry::load().expect("embedded schemas load");
        assert_eq!(r.schemas().len(), 6);
        let user = r.core_schema(Rtype::User);
        assert_eq!(user.id, USER_SCHEMA);
        let user_name = user.attribute("USERNAME").expect("userName");
        assert!(user_name.required);
        assert!(!user_name.case_exact);
        let password = user.attribute("password").expect("password");
        assert_eq!(password.returned, Returned::Never);
        assert_eq!(password.mutability, Mutability::WriteOnly);
        let groups = user.attribute("groups").expect("groups");
        assert_eq!(groups.mutability, Mutability::ReadOnly);
        let emails = user.attribute("emails").expect("emails");
        assert!(emails.multi_valued);
        assert!(emails.sub("value").is_some() && emails.sub("primary").is_some());
        let email_type = emails.sub("type").expect("emails.type");
        assert_eq!(email_type.canonical_values, ["work", "home", "other"]);
        let members = r
            .core_schema(Rtype::Group)
            .attribute("members")
            .expect("members");
        assert!(members.sub("display").is_some());
        assert_eq!(r.extensions(Rtype::User).len(), 1);
        assert!(r.extensions(Rtype::Group).is_empty());
    }

    /// Attributes only one resource type defines, and those another type (or every type)
    /// defines too.
    #[test]
    fn attributes_only_one_type_defines() {
        let r = Registry::load().unwrap();
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        for attr in ["name", "emails", "title", "userName"] {
            assert!(r.only_on(Rtype::User, None, attr), "{attr}");
        }
        assert!(r.only_on(Rtype::User, Some(ent), "department"));
        assert!(r.only_on(Rtype::Group, None, "members"));
        // Both core schemas define displayName; common attributes belong to every type.
        for rt in Rtype::ALL {
            assert!(!r.only_on(rt, None, "displayName"), "{rt:?}");
            assert!(!r.only_on(rt, None, "externalId"), "{rt:?}");
        }
    }

    #[test]
    fn resolve_core_common_urn_and_extension() {
        let r = Registry::load().unwrap();
        assert_eq!(
            r.resolve(Rtype::User, None, "username").unwrap().attr.name,
            "userName"
        );
        assert_eq!(
            r.resolve(Rtype::User, None, "externalid")
                .unwrap()
                .attr
                .name,
            "externalId"
        );
        assert_eq!(
            r.resolve(Rtype::User, Some(USER_SCHEMA), "userName")
                .unwrap()
                .attr
                .name,
            "userName"
        );
        let dep = r
            .resolve(Rtype::User, Some(ENTERPRISE_USER_SCHEMA), "department")
            .unwrap();
        assert_eq!(
            dep.storage_path(None),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department"
        );
        assert!(r.resolve(Rtype::User, None, "department").is_none());
        assert!(r
            .resolve(Rtype::Group, Some(ENTERPRISE_USER_SCHEMA), "department")
            .is_none());
        assert!(r.resolve(Rtype::User, None, "nope").is_none());
    }
}
