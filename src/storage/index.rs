//! What storage keeps of a document for queries: the columns of `resources` (`userName`,
//! `displayName`, `externalId`, `active`; see `search::columns`) and one `attr_values` row
//! per other filterable value, under its canonical path (`Resolved::storage_path`).

use serde_json::Value;

use crate::scim::resource::Doc;
use crate::scim::schema::{AttrType, Attribute, Registry, Rtype};
use crate::scim::time::parse_datetime;

/// One filterable value (see `attr_values` in the migrations).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexValue {
    pub path: String,
    pub elem: i32,
    pub val: Option<String>,
    pub num: Option<f64>,
}

/// The queryable projection of a document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Indexed {
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub values: Vec<IndexValue>,
}

/// Derives the indexed columns and values of a document.
pub fn index(registry: &Registry, rt: Rtype, doc: &Doc) -> Indexed {
    let s = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = Indexed {
        user_name: if rt == Rtype::User {
            s("userName")
        } else {
            None
        },
        display_name: s("displayName"),
        external_id: s("externalId"),
        active: if rt == Rtype::User {
            doc.get("active").and_then(Value::as_bool)
        } else {
            None
        },
        values: Vec::new(),
    };
    let columns = [
        "userName",
        "displayName",
        "active",
        "password",
        "members",
        "groups",
    ];
    for attr in &registry.core_schema(rt).attributes {
        if columns.contains(&attr.name.as_str()) {
            continue;
        }
        if let Some(v) = doc.get(&attr.name) {
            index_attr(attr, &attr.name.to_lowercase(), v, &mut out.values);
        }
    }
    for ext in registry.extensions(rt) {
        let Some(ext_doc) = doc.get(&ext.id).and_then(Value::as_object) else {
            continue;
        };
        for attr in &ext.attributes {
            if let Some(v) = ext_doc.get(&attr.name) {
                let path = format!("{}:{}", ext.id.to_lowercase(), attr.name.to_lowercase());
                index_attr(attr, &path, v, &mut out.values);
            }
        }
    }
    out
}

fn index_attr(attr: &Attribute, path: &str, value: &Value, out: &mut Vec<IndexValue>) {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    for (i, item) in items.into_iter().enumerate() {
        let elem = i32::try_from(i).unwrap_or(i32::MAX);
        if attr.kind == AttrType::Complex {
            // A marker row per element: `pr` on the complex attribute and the anchor that
            // value-path filters correlate sub-attributes through.
            out.push(IndexValue {
                path: path.to_string(),
                elem,
                val: None,
                num: None,
            });
            let Some(obj) = item.as_object() else {
                continue;
            };
            for sub in &attr.sub_attributes {
                if let Some(v) = obj.get(&sub.name) {
                    if let Some(iv) =
                        scalar(sub, &format!("{path}.{}", sub.name.to_lowercase()), elem, v)
                    {
                        out.push(iv);
                    }
                }
            }
        } else if let Some(iv) = scalar(attr, path, elem, item) {
            out.push(iv);
        }
    }
}

fn scalar(attr: &Attribute, path: &str, elem: i32, v: &Value) -> Option<IndexValue> {
    let (val, num) = match attr.kind {
        // Binary values (certificates) are long and never usefully filtered: not indexed.
        AttrType::Binary => return None,
        AttrType::String | AttrType::Reference => {
            let s = v.as_str()?;
            (
                Some(if attr.case_exact {
                    s.to_string()
                } else {
                    s.to_lowercase()
                }),
                None,
            )
        }
        AttrType::Boolean => (Some(v.as_bool()?.to_string()), None),
        AttrType::Integer | AttrType::Decimal => (None, Some(v.as_f64()?)),
        AttrType::DateTime => (None, Some(parse_datetime(v.as_str()?)? as f64)),
        AttrType::Complex => return None,
    };
    Some(IndexValue {
        path: path.to_string(),
        elem,
        val,
        num,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::compat::Compat;
    use crate::scim::resource::normalize;
    use serde_json::json;

    #[test]
    fn index_values_follow_case_exactness() {
        let r = Registry::load().unwrap();
        let n = normalize(
            &r,
            Rtype::User,
            &json!({"userName": "BJensen", "externalId": "AbC", "title": "Tour Guide",
                    "emails": [{"value": "B@Example.com", "type": "work"}],
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "X1", "manager": {"value": "M"}}}),
            &Compat::default(),
        )
        .unwrap();
        let ix = index(&r, Rtype::User, &n.doc);
        assert_eq!(ix.user_name.as_deref(), Some("BJensen"));
        assert_eq!(ix.external_id.as_deref(), Some("AbC"));
        let find = |p: &str| ix.values.iter().find(|v| v.path == p).cloned();
        assert_eq!(find("title").unwrap().val.as_deref(), Some("tour guide"));
        assert_eq!(
            find("emails.value").unwrap().val.as_deref(),
            Some("b@example.com")
        );
        assert!(find("emails").is_some(), "marker row");
        let en = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber";
        assert_eq!(find(en).unwrap().val.as_deref(), Some("x1"));
    }

    /// Every value a document of one type stores is of an attribute that type defines, so
    /// what `Registry::only_on` says of an attribute holds for its stored values (the counted
    /// keys of `search` rely on it). The document names every attribute of every type and
    /// extension, the other type's included.
    #[test]
    fn a_type_stores_values_of_its_own_attributes_only() {
        let r = Registry::load().unwrap();
        let sample = |a: &Attribute| -> serde_json::Value {
            let scalar = |k: AttrType| match k {
                AttrType::Boolean => json!(true),
                AttrType::Integer | AttrType::Decimal => json!(1),
                AttrType::DateTime => json!("2024-01-01T00:00:00Z"),
                _ => json!("x"),
            };
            let one = if a.kind == AttrType::Complex {
                serde_json::Value::Object(
                    a.sub_attributes
                        .iter()
                        .map(|s| (s.name.clone(), scalar(s.kind)))
                        .collect(),
                )
            } else {
                scalar(a.kind)
            };
            if a.multi_valued {
                json!([one])
            } else {
                one
            }
        };
        let mut doc = Doc::new();
        for rt in Rtype::ALL {
            for a in &r.core_schema(rt).attributes {
                doc.insert(a.name.clone(), sample(a));
            }
            for ext in r.extensions(rt) {
                let inner: serde_json::Map<String, serde_json::Value> = ext
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), sample(a)))
                    .collect();
                doc.insert(ext.id.clone(), serde_json::Value::Object(inner));
            }
        }
        for rt in Rtype::ALL {
            let ix = index(&r, rt, &doc);
            // (A Group stores none: `displayName` is a column, `members` a table.)
            assert!(rt == Rtype::Group || !ix.values.is_empty(), "{rt:?}");
            for v in &ix.values {
                // `urn:...:attr[.sub]` or `attr[.sub]`, lower-cased.
                let (ext, rest) = match v.path.rfind(':') {
                    Some(i) => (Some(&v.path[..i]), &v.path[i + 1..]),
                    None => (None, v.path.as_str()),
                };
                let attr = rest.split('.').next().unwrap_or(rest);
                let defined = match ext {
                    None => r.core_schema(rt).attribute(attr).is_some(),
                    Some(urn) => r
                        .extension(rt, urn)
                        .is_some_and(|e| e.attribute(attr).is_some()),
                };
                assert!(defined, "{rt:?} stored {}", v.path);
                for other in Rtype::ALL.into_iter().filter(|o| *o != rt) {
                    assert!(
                        !r.only_on(other, ext, attr),
                        "{rt:?} stored {}, which only {other:?} defines",
                        v.path
                    );
                }
            }
        }
    }
}
