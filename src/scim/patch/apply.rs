//! Applying PATCH operations to a stored document (RFC 7644 §3.5.2.1–§3.5.2.3): finding each
//! operation's target and changing the whole attribute, an extension, or a sub-attribute.
//! Value-filtered paths are `filtered`'s; membership changes are `members`'.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{OpKind, Operation, Patched};
use crate::scim::compat::Compat;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{self, parse_path, AttrPath, Cond, Filter, Limits, PatchPath};
use crate::scim::resource::{check_required, missing_required, normalize_value, Doc};
use crate::scim::schema::{AttrType, Attribute, Mutability, Registry, Rtype};

use super::filtered::{filtered, sub_attr};
use super::members::member_change;
use super::target::{clear_primary, describe, is_primary, Target};

/// Applies `ops` to `doc` (atomically: on error nothing changes). `members_mode` is true for
/// Groups, whose `members` become `MemberChange`s.
pub fn apply(
    registry: &Registry,
    rt: Rtype,
    doc: &Doc,
    ops: &[Operation],
    compat: &Compat,
) -> ScimResult<Patched> {
    let mut out = Patched {
        doc: doc.clone(),
        members: Vec::new(),
    };
    let complete = missing_required(registry, rt, doc).is_none();
    for (i, op) in ops.iter().enumerate() {
        let n = i + 1;
        apply_one(registry, rt, &mut out, op, compat)
            .map_err(|e| ScimError::new(e.scim_type, format!("operation {n}: {}", e.detail)))?;
        // RFC 7644 §3.5.2.2: an attribute that "is removed or becomes unassigned and is
        // defined as a required attribute" is a `mutability` error (by `remove`, or by a
        // `replace` with null).
        if complete {
            if let Some(path) = missing_required(registry, rt, &out.doc) {
                return Err(ScimError::mutability(format!(
                    "operation {n}: `{path}` is required and cannot be removed or unassigned; replace it with a new value instead"
                )));
            }
        }
    }
    check_required(registry, rt, &out.doc)?;
    Ok(out)
}

pub(super) fn apply_one(
    registry: &Registry,
    rt: Rtype,
    out: &mut Patched,
    op: &Operation,
    compat: &Compat,
) -> ScimResult<()> {
    match &op.path {
        Some(path) => {
            let value = op.value.clone();
            apply_path(registry, rt, out, op.op, path, value, compat)
        }
        None => {
            // No path: the value's attributes are each added/replaced (RFC 7644 §3.5.2.1/.3).
            let Some(Value::Object(obj)) = &op.value else {
                return Err(ScimError::invalid_value("`value` must be an object"));
            };
            for (key, v) in obj {
                if let Some(ext) = registry.extension(rt, key) {
                    let Value::Object(inner) = v else {
                        return Err(ScimError::invalid_value(format!(
                            "`{key}` must be an object"
                        )));
                    };
                    apply_extension_object(registry, rt, out, op.op, &ext.id, inner, compat)?;
                    continue;
                }
                let lower = key.to_ascii_lowercase();
                if matches!(lower.as_str(), "schemas" | "id" | "meta") {
                    if compat.ignore_read_only_in_patch || lower == "schemas" {
                        continue;
                    }
                    return Err(ScimError::mutability(format!(
                        "`{key}` is readOnly{}",
                        Compat::off_note("ignore_read_only_in_patch")
                    )));
                }
                let dotted = key.contains('.') && !lower.starts_with("urn:");
                if dotted && !compat.dotted_keys {
                    return Err(ScimError::invalid_value(format!(
                        "`{key}`: a no-path value takes attribute names, not paths{}",
                        Compat::off_note("dotted_keys")
                    )));
                }
                let path = parse_path(key, &Limits::default())
                    .map_err(|e| ScimError::invalid_path(format!("`{key}`: {e}")))?;
                if !matches!(path, PatchPath::Attr(_)) {
                    return Err(ScimError::invalid_path(format!(
                        "`{key}`: filters are not allowed in value keys"
                    )));
                }
                if is_read_only(registry, rt, &path) {
                    if compat.ignore_read_only_in_patch {
                        continue;
                    }
                    return Err(ScimError::mutability(format!(
                        "`{key}` is readOnly{}",
                        Compat::off_note("ignore_read_only_in_patch")
                    )));
                }
                apply_path(registry, rt, out, op.op, &path, Some(v.clone()), compat)?;
            }
            Ok(())
        }
    }
}

pub(super) fn is_read_only(registry: &Registry, rt: Rtype, path: &PatchPath) -> bool {
    let PatchPath::Attr(p) = path else {
        return false;
    };
    registry
        .resolve(rt, p.urn.as_deref(), &p.attr)
        .is_some_and(|r| {
            r.attr.mutability == Mutability::ReadOnly
                && !(rt == Rtype::Group && r.attr.name == "members")
        })
}

pub(super) fn resolve_target<'a>(
    registry: &'a Registry,
    rt: Rtype,
    path: &PatchPath,
) -> ScimResult<Target<'a>> {
    let (ap, filter, sub_after) = match path {
        PatchPath::Attr(p) => (p, None, None),
        PatchPath::ValuePath { attr, filter, sub } => (attr, Some(filter), sub.as_deref()),
    };
    let r = registry
        .resolve(rt, ap.urn.as_deref(), &ap.attr)
        .ok_or_else(|| {
            ScimError::invalid_path(format!("`{ap}` is not an attribute of {}", rt.name()))
        })?;
    let sub_name = ap.sub.as_deref().or(sub_after);
    let sub = match sub_name {
        None => None,
        Some(s) => {
            if r.attr.kind != AttrType::Complex {
                return Err(ScimError::invalid_path(format!(
                    "`{}` has no sub-attributes",
                    r.attr.name
                )));
            }
            Some(r.attr.sub(s).ok_or_else(|| {
                ScimError::invalid_path(format!("`{}` has no sub-attribute `{s}`", r.attr.name))
            })?)
        }
    };
    let (cond, eq_pairs) = match filter {
        None => (None, Vec::new()),
        Some(f) => {
            if r.attr.kind != AttrType::Complex || !r.attr.multi_valued {
                return Err(ScimError::invalid_path(format!(
                    "a filter needs a multi-valued complex attribute; `{}` is not one",
                    r.attr.name
                )));
            }
            let vp = Filter::ValuePath(
                AttrPath {
                    urn: r.extension.map(str::to_string),
                    attr: r.attr.name.clone(),
                    sub: None,
                },
                Box::new(f.clone()),
            );
            let cond = filter::resolve(registry, rt, &vp)
                .map_err(|e| ScimError::invalid_path(format!("filter in path: {}", e.detail)))?;
            let Cond::Elem { inner, .. } = cond else {
                return Err(ScimError::invalid_path(
                    "filter in path must be a value filter",
                ));
            };
            (Some(*inner), eq_pairs_of(f))
        }
    };
    Ok(Target {
        ext: r.extension.map(str::to_string),
        attr: r.attr,
        filter: cond,
        sub,
        eq_pairs,
    })
}

/// `type eq "work" and primary eq true` → [("type","work"), ("primary",true)]; empty when
/// the filter is anything else (then a missing element cannot be created from it).
pub(super) fn eq_pairs_of(f: &Filter) -> Vec<(String, Value)> {
    use super::filter::{CompOp, CompValue};
    match f {
        Filter::Compare(p, CompOp::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
            let v = match v {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Num(n) => serde_json::Number::from_f64(*n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                CompValue::Null => return Vec::new(),
            };
            vec![(p.attr.clone(), v)]
        }
        Filter::And(a, b) => {
            let (x, y) = (eq_pairs_of(a), eq_pairs_of(b));
            if x.is_empty() || y.is_empty() {
                Vec::new()
            } else {
                x.into_iter().chain(y).collect()
            }
        }
        _ => Vec::new(),
    }
}

pub(super) fn apply_path(
    registry: &Registry,
    rt: Rtype,
    out: &mut Patched,
    op: OpKind,
    path: &PatchPath,
    value: Option<Value>,
    compat: &Compat,
) -> ScimResult<()> {
    // A path naming a whole extension (`urn:...:enterprise:2.0:User`).
    if let PatchPath::Attr(p) = path {
        if let Some(urn) = &p.urn {
            let whole = format!("{urn}:{}", p.attr);
            if p.sub.is_none() {
                if let Some(ext) = registry.extension(rt, &whole) {
                    return apply_whole_extension(registry, rt, out, op, &ext.id, value, compat);
                }
            }
        }
    }
    let t = resolve_target(registry, rt, path)?;
    if rt == Rtype::Group && t.ext.is_none() && t.attr.name == "members" {
        let change = member_change(op, &t, value, compat)?;
        out.members.push(change);
        return Ok(());
    }
    if op == OpKind::Remove && value.is_some() {
        // RFC 7644 §3.5.2.2: `remove` selects by its path alone. Ignoring a `value` would
        // remove every value where the client meant some.
        return Err(ScimError::invalid_value(format!(
            "remove takes no `value`; to remove some values of `{}`, select them with a filter path, e.g. emails[value eq \"x\"]",
            describe(&t)
        )));
    }
    let leaf = t.sub.unwrap_or(t.attr);
    if t.attr.mutability == Mutability::ReadOnly || leaf.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "`{}` is readOnly",
            describe(&t)
        )));
    }
    if t.attr.name == "password" && t.ext.is_none() {
        // Type-check and discard, as on create (see resource::normalize_top).
        if let Some(v) = &value {
            normalize_value(t.attr, v, compat, "password")?;
        }
        return Ok(());
    }
    // Work on the attribute's container (the document or its extension object), taken out
    // and put back; on error the whole PATCH is abandoned, so nothing half-applied survives.
    let mut container = match &t.ext {
        None => std::mem::take(&mut out.doc),
        Some(e) => match out.doc.remove(e) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        },
    };
    let existing = container.get(&t.attr.name).cloned();
    if leaf.mutability == Mutability::Immutable
        && t.sub.is_none()
        && existing.is_some()
        && op != OpKind::Add
    {
        return Err(ScimError::mutability(format!(
            "`{}` is immutable",
            describe(&t)
        )));
    }
    let new = match (&t.filter, t.sub) {
        (None, None) => whole_attr(op, t.attr, existing, value, compat)?,
        (None, Some(sub)) => sub_attr(op, t.attr, sub, existing, value, compat)?,
        (Some(cond), sub) => filtered(op, &t, cond, sub, existing, value, compat)?,
    };
    match new {
        Some(v) => {
            container.insert(t.attr.name.clone(), v);
        }
        None => {
            container.remove(&t.attr.name);
        }
    }
    match &t.ext {
        None => out.doc = container,
        Some(e) => {
            if !container.is_empty() {
                out.doc.insert(e.clone(), Value::Object(container));
            }
        }
    }
    Ok(())
}

pub(super) fn apply_whole_extension(
    registry: &Registry,
    rt: Rtype,
    out: &mut Patched,
    op: OpKind,
    ext_id: &str,
    value: Option<Value>,
    compat: &Compat,
) -> ScimResult<()> {
    match op {
        OpKind::Remove if value.is_some() => Err(ScimError::invalid_value(format!(
            "remove takes no `value`; the path `{ext_id}` removes the whole extension"
        ))),
        OpKind::Remove => {
            out.doc.remove(ext_id);
            Ok(())
        }
        OpKind::Add | OpKind::Replace => {
            let Some(Value::Object(obj)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "`{ext_id}` takes an object of its attributes"
                )));
            };
            apply_extension_object(registry, rt, out, op, ext_id, &obj, compat)
        }
    }
}

/// Each attribute of an extension's object as its own path (`schemas` inside is ignored).
fn apply_extension_object(
    registry: &Registry,
    rt: Rtype,
    out: &mut Patched,
    op: OpKind,
    ext_id: &str,
    obj: &serde_json::Map<String, Value>,
    compat: &Compat,
) -> ScimResult<()> {
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = PatchPath::Attr(AttrPath {
            urn: Some(ext_id.to_string()),
            attr: k.clone(),
            sub: None,
        });
        apply_path(registry, rt, out, op, &path, Some(v.clone()), compat)?;
    }
    Ok(())
}

/// A value as text with every object's keys sorted: equal for values `==` calls equal.
pub(super) fn canonical(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&o[k.as_str()], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    write(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// add/replace/remove on a whole attribute.
pub(super) fn whole_attr(
    op: OpKind,
    attr: &Attribute,
    existing: Option<Value>,
    value: Option<Value>,
    compat: &Compat,
) -> ScimResult<Option<Value>> {
    if op == OpKind::Remove {
        return Ok(None);
    }
    let mut value = value.unwrap_or(Value::Null);
    if attr.multi_valued && !value.is_array() && !value.is_null() {
        // A single value for a multi-valued attribute: treat it as a one-element list.
        value = Value::Array(vec![value]);
    }
    let Some(new) = normalize_value(attr, &value, compat, &attr.name)? else {
        return Ok(if op == OpKind::Replace {
            None
        } else {
            existing
        });
    };
    Ok(Some(match (op, attr.multi_valued, attr.kind, existing) {
        // Add to a multi-valued attribute appends values not already present (RFC 7644 §3.5.2.1).
        (OpKind::Add, true, _, Some(Value::Array(mut items))) => {
            // Compare before clearing `primary`: re-adding the current primary value must
            // change nothing, not append a second copy of it. Looked up by a canonical form
            // (object keys sorted, as `Value`'s equality ignores their order), so adding n
            // values onto m costs n + m, not n * m.
            let present: HashSet<String> = items.iter().map(canonical).collect();
            let added: Vec<Value> = new
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|v| !present.contains(&canonical(v)))
                .collect();
            if added.iter().any(is_primary) {
                items.iter_mut().for_each(clear_primary);
            }
            items.extend(added);
            Value::Array(items)
        }
        // Add/replace on a singular complex attribute merges sub-attributes (§3.5.2.1, §3.5.2.3).
        (_, false, AttrType::Complex, Some(Value::Object(mut old))) => {
            if let Value::Object(n) = new {
                old.extend(n);
            }
            Value::Object(old)
        }
        (_, _, _, _) => new,
    }))
}
