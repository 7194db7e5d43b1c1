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
}
