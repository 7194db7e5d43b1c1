//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) honouring each attribute's
//! `returned` characteristic (RFC 7643 §2.2). Pure: no actix, no diesel.

use serde_json::{Map, Value};

use super::error::{ScimError, ScimResult};
use super::filter::{parse_path, Limits, PatchPath};
use super::schema::{Attribute, Registry, Returned, Rtype};

/// One selected attribute, with canonical names.
#[derive(Clone, Debug, PartialEq)]
struct Sel {
    /// The extension schema id, or None for core/common attributes.
    ext: Option<String>,
    /// None selects the whole extension object.
    attr: Option<String>,
    sub: Option<String>,
}

/// What a request asked to see.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Projection {
    include: Option<Vec<Sel>>,
    exclude: Vec<Sel>,
}

impl Projection {
    /// Parses the two comma-separated lists for resource type `rt`. Unknown attributes are
    /// `invalidValue`: a typo would otherwise silently return the wrong shape.
    pub fn parse(
        registry: &Registry,
        rt: Rtype,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> ScimResult<Projection> {
        let list = |s: Option<&str>| -> ScimResult<Vec<Sel>> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| selection(registry, rt, p))
                    .collect()
            })
            .unwrap_or_else(|| Ok(Vec::new()))
        };
        let include = list(attributes)?;
        Ok(Projection {
            include: if include.is_empty() {
                None
            } else {
                Some(include)
            },
            exclude: list(excluded)?,
        })
    }

    /// As `parse`, but entries that do not apply to `rt` are dropped instead of rejected: a
    /// search across resource types (`POST /.search`) names attributes of several types.
    /// When `attributes` named only other types' attributes, just `id` and `schemas` remain.
    /// Never fails.
    pub fn parse_lenient(
        registry: &Registry,
        rt: Rtype,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Projection {
        let keep = |s: Option<&str>| -> Vec<Sel> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter_map(|p| selection(registry, rt, p).ok())
                    .collect()
            })
            .unwrap_or_default()
        };
        let include = keep(attributes);
        let asked = attributes.is_some_and(|a| a.split(',').any(|p| !p.trim().is_empty()));
        Projection {
            include: if asked { Some(include) } else { None },
            exclude: keep(excluded),
        }
    }

    /// Does the response need the membership references (`members` / `groups`)?
    /// `excludedAttributes=members` must not read the membership table at all.
    pub fn wants_refs(&self, rt: Rtype) -> bool {
        let name = if rt == Rtype::Group {
            "members"
        } else {
            "groups"
        };
        let hits = |sels: &[Sel]| {
            sels.iter()
                .any(|s| s.ext.is_none() && s.attr.as_deref() == Some(name))
        };
        match &self.include {
            Some(inc) => hits(inc),
            None => !self
                .exclude
                .iter()
                .any(|s| s.ext.is_none() && s.attr.as_deref() == Some(name) && s.sub.is_none()),
        }
    }

    /// Whether this projection asks for whole core (or common) attributes and nothing else
    /// (`attributes=userName,name`: no `excludedAttributes`, no sub-attribute, no extension
    /// attribute): what `resource::render_text` can serve from the stored text, with
    /// `selects_whole`.
    pub fn whole_core_only(&self) -> bool {
        self.exclude.is_empty()
            && self.include.as_ref().is_some_and(|inc| {
                inc.iter()
                    .all(|s| s.ext.is_none() && s.attr.is_some() && s.sub.is_none())
            })
    }

    /// Whether `attributes` names the core (or common) attribute `name` (canonical) whole.
    pub fn selects_whole(&self, name: &str) -> bool {
        self.include.as_ref().is_some_and(|inc| {
            inc.iter()
                .any(|s| s.ext.is_none() && s.sub.is_none() && s.attr.as_deref() == Some(name))
        })
    }

    /// Whether a client asked for a specific shape (a Group PATCH then answers 200 with it).
    pub fn is_requested(&self) -> bool {
        self.include.is_some() || !self.exclude.is_empty()
    }

    /// Applies the projection to a rendered resource, in place (attributes are dropped or
    /// trimmed where they stand; nothing is copied).
    pub fn apply(&self, registry: &Registry, rt: Rtype, resource: Value) -> Value {
        let Value::Object(mut obj) = resource else {
            return resource;
        };
        let core = registry.core_schema(rt);
        obj.retain(|key, value| {
            if key == "schemas" || key == "id" {
                return true;
            }
            if let Some(ext) = registry.extension(rt, key) {
                let Value::Object(inner) = value else {
                    return false;
                };
                inner.retain(|k, v| {
                    ext.attribute(k)
                        .is_some_and(|attr| self.project_in_place(Some(&ext.id), attr, v))
                });
                return !inner.is_empty();
            }
            core.attribute(key)
                .or_else(|| registry.common_attribute(key))
                .is_some_and(|attr| self.project_in_place(None, attr, value))
        });
        // `schemas` lists only the extensions still present.
        let listed = |s: &Value, obj: &Map<String, Value>| {
            s.as_str()
                .is_some_and(|s| registry.extension(rt, s).is_none() || obj.contains_key(s))
        };
        if let Some(Value::Array(schemas)) = obj.get("schemas") {
            if !schemas.iter().all(|s| listed(s, &obj)) {
                let kept: Vec<Value> = schemas
                    .iter()
                    .filter(|s| listed(s, &obj))
                    .cloned()
                    .collect();
                obj.insert("schemas".into(), Value::Array(kept));
            }
        }
        Value::Object(obj)
    }

    /// `project_attr` on a value where it stands: false when the attribute is dropped.
    fn project_in_place(&self, ext: Option<&str>, attr: &Attribute, value: &mut Value) -> bool {
        match self.project_attr(ext, attr, std::mem::take(value)) {
            Some(kept) => {
                *value = kept;
                true
            }
            None => false,
        }
    }

    fn project_attr(&self, ext: Option<&str>, attr: &Attribute, value: Value) -> Option<Value> {
        match attr.returned {
            Returned::Never => return None,
            Returned::Always => return Some(value),
            _ => {}
        }
        let same = |s: &Sel| {
            s.ext.as_deref().map(str::to_ascii_lowercase) == ext.map(str::to_ascii_lowercase)
                && (s.attr.is_none() || s.attr.as_deref() == Some(attr.name.as_str()))
        };
        match &self.include {
            Some(inc) => {
                let sels: Vec<&Sel> = inc.iter().filter(|s| same(s)).collect();
                if sels.is_empty() {
                    return None;
                }
                if sels.iter().any(|s| s.attr.is_none() || s.sub.is_none()) {
                    return Some(value);
                }
                let subs: Vec<&str> = sels.iter().filter_map(|s| s.sub.as_deref()).collect();
                keep_subs(attr, value, |name| subs.contains(&name))
            }
            None => {
                if attr.returned == Returned::Request {
                    return None;
                }
                let sels: Vec<&Sel> = self.exclude.iter().filter(|s| same(s)).collect();
                if sels.iter().any(|s| s.attr.is_none() || s.sub.is_none()) {
                    return None;
                }
                let subs: Vec<&str> = sels.iter().filter_map(|s| s.sub.as_deref()).collect();
                if subs.is_empty() {
                    return Some(value);
                }
                keep_subs(attr, value, |name| !subs.contains(&name))
            }
        }
    }
}

/// Keeps the sub-attributes `keep` accepts (plus `returned: always` ones) in a complex value
/// or in each element of a multi-valued one.
fn keep_subs(attr: &Attribute, value: Value, keep: impl Fn(&str) -> bool) -> Option<Value> {
    let filter_obj = |v: Value| -> Option<Value> {
        let Value::Object(o) = v else { return None };
        let kept: Map<String, Value> = o
            .into_iter()
            .filter(|(k, _)| {
                attr.sub(k).is_some_and(|s| {
                    s.returned == Returned::Always
                        || (s.returned != Returned::Never && keep(&s.name))
                })
            })
            .collect();
        if kept.is_empty() {
            None
        } else {
            Some(Value::Object(kept))
        }
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.into_iter().filter_map(filter_obj).collect();
            if kept.is_empty() {
                None
            } else {
                Some(Value::Array(kept))
            }
        }
        other => filter_obj(other),
    }
}

fn selection(registry: &Registry, rt: Rtype, text: &str) -> ScimResult<Sel> {
    let bad =
        |why: String| ScimError::invalid_value(format!("attribute list entry `{text}`: {why}"));
    // A bare extension URN selects the whole extension object.
    if let Some(ext) = registry.extension(rt, text) {
        return Ok(Sel {
            ext: Some(ext.id.clone()),
            attr: None,
            sub: None,
        });
    }
    let path = parse_path(text, &Limits::default()).map_err(|e| bad(e.to_string()))?;
    let PatchPath::Attr(p) = path else {
        return Err(bad("filters are not allowed here".into()));
    };
    let r = registry
        .resolve(rt, p.urn.as_deref(), &p.attr)
        .ok_or_else(|| bad(format!("unknown attribute for {}", rt.name())))?;
    let sub = match &p.sub {
        None => None,
        Some(s) => Some(
            r.attr
                .sub(s)
                .ok_or_else(|| bad(format!("`{}` has no sub-attribute `{s}`", r.attr.name)))?
                .name
                .clone(),
        ),
    };
    Ok(Sel {
        ext: r.extension.map(str::to_string),
        attr: Some(r.attr.name.clone()),
        sub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "1", "userName": "bjensen", "displayName": "Babs",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}],
            "groups": [{"value": "g1", "display": "G"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour", "employeeNumber": "7"},
            "meta": {"resourceType": "User", "version": "W/\"1\""}
        })
    }

    fn project(attrs: Option<&str>, excl: Option<&str>) -> Value {
        let r = Registry::load().unwrap();
        Projection::parse(&r, Rtype::User, attrs, excl)
            .unwrap()
            .apply(&r, Rtype::User, user())
    }

    #[test]
    fn attributes_keep_only_selected_plus_always() {
        let v = project(Some("userName,name.givenName,emails.value"), None);
        assert_eq!(
            v,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "bjensen",
                   "name": {"givenName": "Barbara"}, "emails": [{"value": "a@x"}, {"value": "b@x"}]})
        );
    }

    #[test]
    fn excluded_attributes_remove_but_never_always() {
        let v = project(None, Some("id,emails,name.familyName,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"));
        assert_eq!(v["id"], "1");
        assert!(v.get("emails").is_none() && v.get("meta").is_none());
        assert_eq!(v["name"], json!({"givenName": "Barbara"}));
        assert_eq!(
            v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"employeeNumber": "7"})
        );
    }

    #[test]
    fn whole_extension_and_urn_qualified_core_names() {
        let v = project(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,urn:ietf:params:scim:schemas:core:2.0:User:displayName"), None);
        assert_eq!(v["displayName"], "Babs");
        assert_eq!(
            v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "Tour"
        );
        assert!(v.get("userName").is_none());
    }

    #[test]
    fn refs_are_loaded_only_when_wanted() {
        let r = Registry::load().unwrap();
        let p = |a, e| Projection::parse(&r, Rtype::Group, a, e).unwrap();
        assert!(p(None, None).wants_refs(Rtype::Group));
        assert!(!p(None, Some("members")).wants_refs(Rtype::Group));
        assert!(!p(Some("displayName"), None).wants_refs(Rtype::Group));
        assert!(p(Some("members.value"), None).wants_refs(Rtype::Group));
    }

    #[test]
    fn unknown_attribute_is_invalid_value() {
        let r = Registry::load().unwrap();
        assert!(Projection::parse(&r, Rtype::User, Some("nope"), None).is_err());
        assert!(Projection::parse(&r, Rtype::User, None, Some("name.nope")).is_err());
        assert!(
            Projection::parse(&r, Rtype::User, Some("emails[type eq \"work\"]"), None).is_err()
        );
    }
}
