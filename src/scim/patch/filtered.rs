//! PATCH on one sub-attribute, and on the elements a value filter selects
//! (`emails[type eq "work"].value`): which elements match, and when a filter that matches
//! nothing may create the element (the Entra ID tolerance) or is `noTarget`.

use serde_json::{Map, Value};

use super::target::{clear_primary, describe, is_primary, Target};
use super::OpKind;
use crate::scim::compat::Compat;
use crate::scim::error::{ScimError, ScimResult, ScimType};
use crate::scim::filter::{self, Cond};
use crate::scim::resource::normalize_value;
use crate::scim::schema::{Attribute, Mutability};

/// add/replace/remove on `attr.sub` without a filter.
pub(super) fn sub_attr(
    op: OpKind,
    attr: &Attribute,
    sub: &Attribute,
    existing: Option<Value>,
    value: Option<Value>,
    compat: &Compat,
) -> ScimResult<Option<Value>> {
    if attr.multi_valued {
        // `emails.type` addresses every element; only removal is meaningful for all of them.
        if op != OpKind::Remove {
            return Err(ScimError::invalid_path(format!(
                "`{}.{}` names a sub-attribute of every value; use a filter, e.g. `{}[type eq \"work\"].{}`",
                attr.name, sub.name, attr.name, sub.name
            )));
        }
        let Some(Value::Array(mut items)) = existing else {
            return Ok(existing);
        };
        for i in items.iter_mut() {
            if let Some(o) = i.as_object_mut() {
                o.remove(&sub.name);
            }
        }
        items.retain(|i| i.as_object().is_some_and(|o| !o.is_empty()));
        return Ok(unless_empty(Value::Array(items)));
    }
    let mut obj = match existing {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    if sub.mutability == Mutability::Immutable && obj.contains_key(&sub.name) && op != OpKind::Add {
        return Err(ScimError::mutability(format!(
            "`{}.{}` is immutable",
            attr.name, sub.name
        )));
    }
    match op {
        OpKind::Remove => {
            obj.remove(&sub.name);
        }
        OpKind::Add | OpKind::Replace => {
            let path = format!("{}.{}", attr.name, sub.name);
            let v = normalize_value(sub, value.as_ref().unwrap_or(&Value::Null), compat, &path)?;
            put(&mut obj, &sub.name, v);
        }
    }
    Ok(unless_empty(Value::Object(obj)))
}

/// Operations on `attr[filter]` and `attr[filter].sub`.
pub(super) fn filtered(
    op: OpKind,
    t: &Target,
    cond: &Cond,
    sub: Option<&Attribute>,
    existing: Option<Value>,
    value: Option<Value>,
    compat: &Compat,
) -> ScimResult<Option<Value>> {
    let mut items = match existing {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, e)| filter::matches_element(cond, e))
        .map(|(i, _)| i)
        .collect();
    let attr = t.attr;
    match (op, sub) {
        (OpKind::Remove, None) => {
            // Removing values that are not there succeeds with no change.
            let mut hit = vec![false; items.len()];
            for &i in &hits {
                hit[i] = true;
            }
            let mut i = 0;
            items.retain(|_| {
                let keep = !hit[i];
                i += 1;
                keep
            });
        }
        (OpKind::Remove, Some(s)) => {
            for &i in &hits {
                if let Some(o) = items[i].as_object_mut() {
                    o.remove(&s.name);
                }
            }
            items.retain(|i| i.as_object().is_some_and(|o| !o.is_empty()));
        }
        (OpKind::Add | OpKind::Replace, None) => {
            if hits.is_empty() {
                return Err(no_match(t));
            }
            let v = value.unwrap_or(Value::Null);
            if !v.is_object() {
                return Err(ScimError::invalid_value(format!(
                    "`{}[...]` takes an object of sub-attributes",
                    attr.name
                )));
            }
            let new = normalize_value(&single(attr), &v, compat, &attr.name)?.ok_or_else(|| {
                ScimError::invalid_value(format!("`{}` needs a value object", attr.name))
            })?;
            if is_primary(&new) {
                items.iter_mut().for_each(clear_primary);
            }
            for &i in &hits {
                items[i] = match (op, &items[i], &new) {
                    (OpKind::Add, Value::Object(old), Value::Object(n)) => {
                        let mut m = old.clone();
                        m.extend(n.clone());
                        Value::Object(m)
                    }
                    _ => new.clone(),
                };
            }
        }
        (OpKind::Add | OpKind::Replace, Some(s)) => {
            let path = format!("{}.{}", attr.name, s.name);
            let new = normalize_value(s, value.as_ref().unwrap_or(&Value::Null), compat, &path)?;
            if hits.is_empty() {
                // Entra ID: `emails[type eq "work"].value` when there is no work email yet
                // (`create_on_filtered_path`); any other filter that matches nothing is
                // noTarget (RFC 7644 §3.5.2.3).
                let Some(mut elem) = creatable(attr, &t.eq_pairs) else {
                    return Err(no_match_creatable(t, compat));
                };
                if !compat.create_on_filtered_path {
                    return Err(no_match_creatable(t, compat));
                }
                if let Some(v) = new {
                    elem.insert(s.name.clone(), v);
                }
                let elem =
                    normalize_value(&single(attr), &Value::Object(elem), compat, &attr.name)?;
                if let Some(e) = elem {
                    if is_primary(&e) {
                        items.iter_mut().for_each(clear_primary);
                    }
                    items.push(e);
                }
            } else {
                if s.name == "primary" && new == Some(Value::Bool(true)) {
                    items.iter_mut().for_each(clear_primary);
                }
                for &i in &hits {
                    if let Some(o) = items[i].as_object_mut() {
                        put(o, &s.name, new.clone());
                    }
                }
            }
        }
    }
    Ok(unless_empty(Value::Array(items)))
}

/// `name` set to `v`, or removed when there is none.
fn put(obj: &mut Map<String, Value>, name: &str, v: Option<Value>) {
    match v {
        Some(v) => obj.insert(name.to_string(), v),
        None => obj.remove(name),
    };
}

/// An empty array or object is no value (the attribute goes).
fn unless_empty(v: Value) -> Option<Value> {
    match &v {
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        _ => Some(v),
    }
}

pub(super) fn single(attr: &Attribute) -> Attribute {
    Attribute {
        multi_valued: false,
        ..attr.clone()
    }
}

pub(super) fn no_match(t: &Target) -> ScimError {
    ScimError::new(
        ScimType::NoTarget,
        format!("no value of `{}` matches the filter", describe(t)),
    )
}

/// noTarget for `attr[filter].sub` when nothing matches, saying when a value would have been
/// created instead.
pub(super) fn no_match_creatable(t: &Target, compat: &Compat) -> ScimError {
    let canon = t
        .attr
        .sub("type")
        .map(|ty| ty.canonical_values.join(", "))
        .unwrap_or_default();
    let why = match (compat.create_on_filtered_path, canon.is_empty()) {
        (_, true) => String::new(),
        (true, false) => format!(
            "; a missing value is created only for a filter such as `type eq \"{}\"` naming one of its canonical types ({canon})",
            canon.split(", ").next().unwrap_or_default()
        ),
        (false, false) => format!(
            "; add the value without a filter{}",
            Compat::off_note("create_on_filtered_path")
        ),
    };
    ScimError::new(
        ScimType::NoTarget,
        format!("no value of `{}` matches the filter{why}", describe(t)),
    )
}

/// The element that `attr[filter].sub` may create when nothing matches (the Entra ID form,
/// see `Compat::create_on_filtered_path`): the filter is `eq` tests on sub-attributes joined
/// by `and`, one of which pins `type` to a canonical value of the attribute's schema.
pub(super) fn creatable(attr: &Attribute, pairs: &[(String, Value)]) -> Option<Map<String, Value>> {
    let ty = attr.sub("type")?;
    let canonical = pairs.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("type")
            && v.as_str().is_some_and(|v| {
                ty.canonical_values.iter().any(|c| {
                    if ty.case_exact {
                        c == v
                    } else {
                        c.eq_ignore_ascii_case(v)
                    }
                })
            })
    });
    if !canonical {
        return None;
    }
    let mut elem = Map::new();
    for (k, v) in pairs {
        elem.insert(attr.sub(k)?.name.clone(), v.clone());
    }
    Some(elem)
}
