//! The PATCH engine (RFC 7644 §3.5.2): parses a PatchOp message and applies its operations to
//! a stored document, atomically (on a copy). Group membership operations are not applied
//! here: they come back as `MemberChange`s for storage to apply as row changes, so a change
//! to a 100,000-member group never loads the member list. Pure: no actix, no diesel.

use serde_json::{Map, Value};

use super::compat::Compat;
use super::error::{ScimError, ScimResult, ScimType};
use super::filter::{parse_path, AttrPath, Filter, Limits, PatchPath};
use super::query::{self, Cond, ElemSet};
use super::resource::{
    check_required, missing_required, normalize_members, normalize_value, Doc, MemberInput,
};
use super::schema::{AttrType, Attribute, Mutability, Registry, Rtype, PATCH_OP};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    /// The path as the client wrote it, for error details.
    pub path_text: Option<String>,
    pub value: Option<Value>,
}

/// A change to a Group's membership rows.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberChange {
    Add(Vec<MemberInput>),
    /// Replace the whole list.
    Replace(Vec<MemberInput>),
    Remove(Vec<String>),
    RemoveAll,
    /// Remove the members matching an element condition (`members[type eq "Group"]`).
    RemoveWhere(Cond),
}

/// The outcome of a PATCH on a document.
#[derive(Clone, Debug, PartialEq)]
pub struct Patched {
    pub doc: Doc,
    pub members: Vec<MemberChange>,
}

/// The operations as a PatchOp message (what an RFC 9967 `patch:full` event carries).
pub fn to_json(ops: &[Operation]) -> Value {
    let ops: Vec<Value> = ops
        .iter()
        .map(|o| {
            let mut m = serde_json::Map::new();
            let op = match o.op {
                OpKind::Add => "add",
                OpKind::Replace => "replace",
                OpKind::Remove => "remove",
            };
            m.insert("op".into(), Value::String(op.into()));
            if let Some(p) = &o.path_text {
                m.insert("path".into(), Value::String(p.clone()));
            }
            if let Some(v) = &o.value {
                m.insert("value".into(), v.clone());
            }
            Value::Object(m)
        })
        .collect();
    serde_json::json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Parses a PatchOp request body (RFC 7644 §3.5.2).
pub fn parse(body: &Value, compat: &Compat) -> ScimResult<Vec<Operation>> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body must be a PatchOp JSON object"))?;
    let schemas = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v);
    let has_schema = schemas.and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
    });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must be [\"{PATCH_OP}\"]"
        )));
    }
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs an `Operations` array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("`Operations` is empty"));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_op(i, op, compat))
        .collect()
}

fn parse_op(i: usize, op: &Value, compat: &Compat) -> ScimResult<Operation> {
    let n = i + 1;
    let obj = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax(format!("operation {n} must be an object")))?;
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let op_text = field("op").and_then(Value::as_str).ok_or_else(|| {
        ScimError::invalid_syntax(format!("operation {n} needs `op`: add, replace or remove"))
    })?;
    let norm = if compat.op_case_insensitive {
        op_text.to_ascii_lowercase()
    } else {
        op_text.to_string()
    };
    let kind = match norm.as_str() {
        "add" => OpKind::Add,
        "replace" => OpKind::Replace,
        "remove" => OpKind::Remove,
        _ => {
            let lower = op_text.to_ascii_lowercase();
            let note = if matches!(lower.as_str(), "add" | "replace" | "remove") {
                Compat::off_note("op_case_insensitive")
            } else {
                String::new()
            };
            return Err(ScimError::invalid_syntax(format!(
                "operation {n}: unknown op `{op_text}`; use add, replace or remove{note}"
            )));
        }
    };
    let path_text = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "operation {n}: `path` must be a string"
            )))
        }
    };
    let path = match &path_text {
        None => None,
        Some(s) => Some(
            parse_path(s, &Limits::default())
                .map_err(|e| ScimError::invalid_path(format!("operation {n}: path `{s}`: {e}")))?,
        ),
    };
    let value = field("value").cloned().filter(|v| !v.is_null());
    match kind {
        OpKind::Remove if path.is_none() => {
            // RFC 7644 §3.5.2.2: remove without a path fails with noTarget.
            return Err(ScimError::no_target(format!(
                "operation {n}: remove needs a `path`"
            )));
        }
        OpKind::Add | OpKind::Replace if value.is_none() => {
            return Err(ScimError::invalid_value(format!(
                "operation {n}: {norm} needs a `value`"
            )));
        }
        OpKind::Add | OpKind::Replace
            if path.is_none() && !value.as_ref().is_some_and(Value::is_object) =>
        {
            return Err(ScimError::invalid_value(format!(
                "operation {n}: without a `path`, `value` must be an object of attributes"
            )));
        }
        _ => {}
    }
    Ok(Operation {
        op: kind,
        path,
        path_text,
        value,
    })
}

/// What a path addresses, resolved against the schema.
struct Target<'a> {
    /// Extension schema id, or None for core/common attributes.
    ext: Option<String>,
    attr: &'a Attribute,
    filter: Option<Cond>,
    sub: Option<&'a Attribute>,
    /// The `attr eq "v"` pairs of a conjunctive filter, used to create a missing element.
    eq_pairs: Vec<(String, Value)>,
}

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

fn apply_one(
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
                    for (k, v2) in inner {
                        if k.eq_ignore_ascii_case("schemas") {
                            continue;
                        }
                        let path = PatchPath::Attr(AttrPath {
                            urn: Some(ext.id.clone()),
                            attr: k.clone(),
                            sub: None,
                        });
                        apply_path(registry, rt, out, op.op, &path, Some(v2.clone()), compat)?;
                    }
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

fn is_read_only(registry: &Registry, rt: Rtype, path: &PatchPath) -> bool {
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

fn resolve_target<'a>(
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
            let cond = query::resolve(registry, rt, &vp)
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
fn eq_pairs_of(f: &Filter) -> Vec<(String, Value)> {
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

fn apply_path(
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

fn describe(t: &Target) -> String {
    let mut s = match &t.ext {
        Some(e) => format!("{e}:{}", t.attr.name),
        None => t.attr.name.clone(),
    };
    if let Some(sub) = t.sub {
        s.push('.');
        s.push_str(&sub.name);
    }
    s
}

fn apply_whole_extension(
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
            for (k, v) in obj {
                if k.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let path = PatchPath::Attr(AttrPath {
                    urn: Some(ext_id.to_string()),
                    attr: k,
                    sub: None,
                });
                apply_path(registry, rt, out, op, &path, Some(v), compat)?;
            }
            Ok(())
        }
    }
}

/// add/replace/remove on a whole attribute.
fn whole_attr(
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
            // change nothing, not append a second copy of it.
            let added: Vec<Value> = new
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|v| !items.contains(v))
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

fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

fn clear_primary(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("primary");
    }
}

/// add/replace/remove on `attr.sub` without a filter.
fn sub_attr(
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
        return Ok(if items.is_empty() {
            None
        } else {
            Some(Value::Array(items))
        });
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
            match normalize_value(sub, value.as_ref().unwrap_or(&Value::Null), compat, &path)? {
                Some(v) => {
                    obj.insert(sub.name.clone(), v);
                }
                None => {
                    obj.remove(&sub.name);
                }
            }
        }
    }
    Ok(if obj.is_empty() {
        None
    } else {
        Some(Value::Object(obj))
    })
}

/// Operations on `attr[filter]` and `attr[filter].sub`.
fn filtered(
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
        .filter(|(_, e)| query::matches_element(cond, e))
        .map(|(i, _)| i)
        .collect();
    let attr = t.attr;
    match (op, sub) {
        (OpKind::Remove, None) => {
            // Removing values that are not there succeeds with no change.
            let mut i = 0;
            items.retain(|_| {
                let keep = !hits.contains(&i);
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
                        match &new {
                            Some(v) => {
                                o.insert(s.name.clone(), v.clone());
                            }
                            None => {
                                o.remove(&s.name);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(if items.is_empty() {
        None
    } else {
        Some(Value::Array(items))
    })
}

fn single(attr: &Attribute) -> Attribute {
    Attribute {
        multi_valued: false,
        ..attr.clone()
    }
}

fn no_match(t: &Target) -> ScimError {
    ScimError::new(
        ScimType::NoTarget,
        format!("no value of `{}` matches the filter", describe(t)),
    )
}

/// noTarget for `attr[filter].sub` when nothing matches, saying when a value would have been
/// created instead.
fn no_match_creatable(t: &Target, compat: &Compat) -> ScimError {
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
fn creatable(attr: &Attribute, pairs: &[(String, Value)]) -> Option<Map<String, Value>> {
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

/// Turns an operation on a Group's `members` into a membership change.
fn member_change(
    op: OpKind,
    t: &Target,
    value: Option<Value>,
    compat: &Compat,
) -> ScimResult<MemberChange> {
    if t.sub.is_some() {
        return Err(ScimError::mutability(
            "member sub-attributes (value, type, display, $ref) cannot be changed; remove and add the member",
        ));
    }
    let list = |v: Option<Value>| -> ScimResult<Vec<MemberInput>> {
        let v = match v {
            Some(Value::Object(o)) => Value::Array(vec![Value::Object(o)]),
            Some(v) => v,
            None => Value::Null,
        };
        normalize_members(&v)
    };
    match (op, &t.filter) {
        (OpKind::Add, None) => Ok(MemberChange::Add(list(value)?)),
        (OpKind::Replace, None) => Ok(MemberChange::Replace(list(value)?)),
        (OpKind::Remove, None) => match value {
            None => Ok(MemberChange::RemoveAll),
            Some(v) if compat.remove_members_by_value => {
                Ok(MemberChange::Remove(list(Some(v))?.into_iter().map(|m| m.value).collect()))
            }
            Some(_) => Err(ScimError::invalid_value(format!(
                "remove takes no `value`; to remove some members use a path such as members[value eq \"id\"]{}",
                Compat::off_note("remove_members_by_value")
            ))),
        },
        (OpKind::Remove, Some(cond)) => Ok(match member_ids(cond) {
            Some(ids) => MemberChange::Remove(ids),
            None => MemberChange::RemoveWhere(Cond::Elem {
                set: ElemSet::Refs,
                loc: query::Loc {
                    ext: None,
                    attr: "members".into(),
                    sub: None,
                },
                inner: Box::new(cond.clone()),
            }),
        }),
        (_, Some(_)) => Err(ScimError::invalid_path(
            "add/replace on a filtered members path is not meaningful; add members with path `members`",
        )),
    }
}

/// `value eq "a" or value eq "b"` → ["a", "b"].
fn member_ids(cond: &Cond) -> Option<Vec<String>> {
    use super::filter::CompOp;
    use super::query::{Field, Operand, RefField};
    match cond {
        Cond::Cmp(t, CompOp::Eq, Operand::Str(s)) if t.field == Field::Ref(RefField::Value) => {
            Some(vec![s.clone()])
        }
        Cond::Or(a, b) => {
            let mut x = member_ids(a)?;
            x.extend(member_ids(b)?);
            Some(x)
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
