//! Resource documents: validating and canonicalising client input against the schemas
//! (RFC 7643 §2, §3; RFC 7644 §3.3, §3.5.1), deriving the indexed values storage needs,
//! and rendering the wire representation. Pure: no actix, no diesel.

use serde_json::{Map, Value};

use super::compat::Compat;
use super::error::{ScimError, ScimResult};
use super::projection::Projection;
use super::schema::{AttrType, Attribute, Mutability, Registry, Returned, Rtype, Schema};
use super::time::{format_micros, parse_datetime};

/// A stored document: canonical attribute names, no `id`/`meta`/`schemas`/`members`/`groups`
/// (those are derived), extension attributes under their schema URN.
pub type Doc = Map<String, Value>;

/// A member named in a Group's `members`.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberInput {
    pub value: String,
    /// The `type` the client claimed, checked against the real resource.
    pub kind: Option<Rtype>,
    /// The `display` the client sent, kept with the membership.
    pub display: Option<String>,
}

/// Validated client input.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    pub doc: Doc,
    /// `members` of a Group (None when the request did not mention them).
    pub members: Option<Vec<MemberInput>>,
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<(&'a String, &'a Value)> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))
}

/// Validates a POST/PUT body for `rt` and returns the canonical document.
pub fn normalize(
    registry: &Registry,
    rt: Rtype,
    body: &Value,
    compat: &Compat,
) -> ScimResult<Normalized> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let core = registry.core_schema(rt);
    let ignored = match get_ci(obj, "schemas") {
        Some((_, schemas)) => check_schemas(registry, rt, schemas, obj, compat)?,
        None if compat.schemas_optional => Vec::new(),
        None => {
            // RFC 7643 §3: `schemas` is REQUIRED in every resource representation.
            return Err(ScimError::invalid_value(format!(
                "`schemas` is required: [\"{}\"]{}",
                core.id,
                Compat::off_note("schemas_optional")
            )));
        }
    };
    let mut doc = Doc::new();
    let mut members = None;
    for (key, value) in obj {
        let lower = key.to_ascii_lowercase();
        if lower == "schemas" || lower == "id" || lower == "meta" {
            // `schemas` was checked above; `id` and `meta` are readOnly: ignored (RFC 7643 §3.1).
            continue;
        }
        if ignored.iter().any(|u| u.eq_ignore_ascii_case(key)) {
            // An ignored schema URI's own key, null or `{}` (it carries nothing).
            continue;
        }
        if lower == "externalid" {
            match value {
                Value::Null => {}
                Value::String(s) => {
                    check_length(s, "externalId", true)?;
                    doc.insert("externalId".into(), Value::String(s.clone()));
                }
                _ => return Err(ScimError::invalid_value("`externalId` must be a string")),
            }
            continue;
        }
        if lower.starts_with("urn:") {
            if key.eq_ignore_ascii_case(&core.id) {
                // Core attributes qualified by their schema: `{"urn:...:User": {...}}`.
                let inner = value.as_object().ok_or_else(|| {
                    ScimError::invalid_value(format!("`{key}` must be an object"))
                })?;
                for (k, v) in inner {
                    normalize_top(core, None, rt, k, v, compat, &mut doc, &mut members)?;
                }
                continue;
            }
            let ext = registry.extension(rt, key).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "`{key}` is not a schema extension of {} (see /ResourceTypes/{})",
                    rt.name(),
                    rt.name()
                ))
            })?;
            if value.is_null() {
                continue;
            }
            let inner = value
                .as_object()
                .ok_or_else(|| ScimError::invalid_value(format!("`{key}` must be an object")))?;
            let mut ext_doc = Doc::new();
            for (k, v) in inner {
                normalize_top(
                    ext,
                    Some(&ext.id),
                    rt,
                    k,
                    v,
                    compat,
                    &mut ext_doc,
                    &mut members,
                )?;
            }
            if !ext_doc.is_empty() {
                doc.insert(ext.id.clone(), Value::Object(ext_doc));
            }
            continue;
        }
        normalize_top(core, None, rt, key, value, compat, &mut doc, &mut members)?;
    }
    check_required(registry, rt, &doc)?;
    Ok(Normalized { doc, members })
}

/// Checks `schemas` (RFC 7643 §3): an array holding the core schema and any of the resource
/// type's extensions. Returns the URIs ignored under `ignore_undeclared_schemas` (see
/// `compat.rs`); they are never stored, so never echoed.
fn check_schemas(
    registry: &Registry,
    rt: Rtype,
    schemas: &Value,
    body: &Map<String, Value>,
    compat: &Compat,
) -> ScimResult<Vec<String>> {
    let list = schemas
        .as_array()
        .ok_or_else(|| ScimError::invalid_value("`schemas` must be an array of schema URNs"))?;
    let core = &registry.core_schema(rt).id;
    let mut has_core = false;
    let mut ignored = Vec::new();
    for s in list {
        let s = s
            .as_str()
            .ok_or_else(|| ScimError::invalid_value("`schemas` must be an array of schema URNs"))?;
        if s.eq_ignore_ascii_case(core) {
            has_core = true;
            continue;
        }
        if registry.extension(rt, s).is_some() {
            continue;
        }
        let undeclared = registry.schema(s).is_none() && is_absolute_uri(s);
        let carries = carries_attributes(body, s);
        if undeclared && !carries && compat.ignore_undeclared_schemas {
            ignored.push(s.to_string());
            continue;
        }
        let why = if carries {
            format!(
                "the body carries attributes under it, and no resource type here declares it (see /ResourceTypes/{})",
                rt.name()
            )
        } else if undeclared {
            format!(
                "no resource type declares it{}",
                Compat::off_note("ignore_undeclared_schemas")
            )
        } else {
            format!("see /ResourceTypes/{}", rt.name())
        };
        return Err(ScimError::invalid_value(format!(
            "`schemas` names `{s}`, which is not a schema of {}: {why}",
            rt.name()
        )));
    }
    if !has_core {
        return Err(ScimError::invalid_value(format!(
            "`schemas` must include `{core}`"
        )));
    }
    Ok(ignored)
}

/// Does the body hold attributes under schema `uri`: its own key with a value other than
/// null or `{}`, or a key qualified by it (`uri:attr`)?
fn carries_attributes(body: &Map<String, Value>, uri: &str) -> bool {
    let prefix = format!("{}:", uri.to_ascii_lowercase());
    body.iter().any(|(k, v)| {
        let k = k.to_ascii_lowercase();
        (k == uri.to_ascii_lowercase() && !v.is_null() && !v.as_object().is_some_and(Map::is_empty))
            || k.starts_with(&prefix)
    })
}

/// `scheme ":" rest` (RFC 3986 §3.1): what any schema identifier looks like, a URN or a URL.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !rest.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[allow(clippy::too_many_arguments)]
fn normalize_top(
    schema: &Schema,
    ext: Option<&str>,
    rt: Rtype,
    key: &str,
    value: &Value,
    compat: &Compat,
    doc: &mut Doc,
    members: &mut Option<Vec<MemberInput>>,
) -> ScimResult<()> {
    let attr = schema.attribute(key).ok_or_else(|| {
        ScimError::invalid_value(format!(
            "unknown attribute `{key}` for {} (schema {})",
            rt.name(),
            schema.id
        ))
    })?;
    if ext.is_none() && rt == Rtype::Group && attr.name == "members" {
        *members = Some(normalize_members(value)?);
        return Ok(());
    }
    if attr.mutability == Mutability::ReadOnly {
        // RFC 7644 §3.5.1: readOnly values sent by the client are ignored.
        return Ok(());
    }
    if attr.name == "password" && ext.is_none() {
        // Scimitar does not authenticate end users (products use SSO): a password is
        // type-checked and then discarded, never stored (it is writeOnly/returned never).
        normalize_value(attr, value, compat, &attr.name)?;
        return Ok(());
    }
    if let Some(v) = normalize_value(attr, value, compat, &attr.name)? {
        doc.insert(attr.name.clone(), v);
    }
    Ok(())
}

/// Validates a Group's `members` value: an array of `{value, type?}`.
pub fn normalize_members(value: &Value) -> ScimResult<Vec<MemberInput>> {
    let list = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => {
            return Err(ScimError::invalid_value(
                "`members` must be an array of {\"value\": id}",
            ))
        }
    };
    let mut out: Vec<MemberInput> = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for m in list {
        let obj = m.as_object().ok_or_else(|| {
            ScimError::invalid_value("each member must be an object with a `value`")
        })?;
        let value = get_ci(obj, "value")
            .and_then(|(_, v)| v.as_str())
            .ok_or_else(|| {
                ScimError::invalid_value("each member needs `value`: the id of a User or Group")
            })?;
        let kind = match get_ci(obj, "type").map(|(_, v)| v) {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(Rtype::from_name(t).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "member `{value}` has type `{t}`; expected \"User\" or \"Group\""
                ))
            })?),
            Some(_) => {
                return Err(ScimError::invalid_value(
                    "a member's `type` must be a string",
                ))
            }
        };
        let display = match get_ci(obj, "display").map(|(_, v)| v) {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => {
                return Err(ScimError::invalid_value(
                    "a member's `display` must be a string",
                ))
            }
        };
        if seen.insert(value.to_string()) {
            out.push(MemberInput {
                value: value.to_string(),
                kind,
                display,
            });
        }
    }
    Ok(out)
}

/// Validates one attribute value; `None` means unassigned (null or empty array,
/// RFC 7643 §2.5).
pub fn normalize_value(
    attr: &Attribute,
    value: &Value,
    compat: &Compat,
    path: &str,
) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi_valued {
        let items = match value {
            Value::Array(a) => a,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "`{path}` is multi-valued: send an array"
                )))
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for item in items {
            if let Some(v) = normalize_single(attr, item, compat, path)? {
                // Linear de-duplication: a huge array must not cost quadratic time.
                if seen.insert(v.to_string()) {
                    out.push(v);
                }
            }
        }
        if attr.kind == AttrType::Complex {
            let primaries = out
                .iter()
                .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
                .count();
            if primaries > 1 {
                // RFC 7643 §2.4: the primary attribute value `true` MUST appear no more than once.
                return Err(ScimError::invalid_value(format!(
                    "`{path}` has {primaries} values marked primary; at most one may be"
                )));
            }
        }
        return Ok(if out.is_empty() {
            None
        } else {
            Some(Value::Array(out))
        });
    }
    normalize_single(attr, value, compat, path)
}

fn normalize_single(
    attr: &Attribute,
    value: &Value,
    compat: &Compat,
    path: &str,
) -> ScimResult<Option<Value>> {
    let wrong = |expected: &str| {
        ScimError::invalid_value(format!(
            "`{path}` must be {expected}, not {}",
            describe(value)
        ))
    };
    Ok(Some(match attr.kind {
        _ if value.is_null() => return Ok(None),
        AttrType::Binary => match value {
            Value::String(_) => value.clone(),
            _ => return Err(wrong("a string")),
        },
        AttrType::String | AttrType::Reference => match value {
            Value::String(s) => {
                check_length(s, path, attr.case_exact)?;
                value.clone()
            }
            _ => return Err(wrong("a string")),
        },
        AttrType::Boolean => match (value, value.as_str().map(str::to_ascii_lowercase)) {
            (Value::Bool(_), _) => value.clone(),
            (_, Some(s)) if s == "true" || s == "false" => {
                if !compat.boolean_strings {
                    let mut e = wrong("a boolean");
                    e.detail.push_str(&Compat::off_note("boolean_strings"));
                    return Err(e);
                }
                Value::Bool(s == "true")
            }
            _ => return Err(wrong("a boolean")),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            _ => return Err(wrong("an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => value.clone(),
            _ => return Err(wrong("a number")),
        },
        AttrType::DateTime => match value {
            Value::String(s) if parse_datetime(s).is_some() => value.clone(),
            _ => {
                return Err(wrong(
                    "an RFC 3339 dateTime such as \"2026-01-31T09:00:00Z\"",
                ))
            }
        },
        AttrType::Complex
            if value.is_string()
                && compat.complex_value_from_string
                && !attr.multi_valued
                && attr.sub("value").is_some() =>
        {
            let wrapped = serde_json::json!({ "value": value });
            return normalize_single(attr, &wrapped, compat, path);
        }
        AttrType::Complex => {
            let obj = value.as_object().ok_or_else(|| {
                let mut e = wrong("an object");
                if value.is_string() && !attr.multi_valued && attr.sub("value").is_some() {
                    e.detail
                        .push_str(&Compat::off_note("complex_value_from_string"));
                }
                e
            })?;
            let mut out = Map::new();
            for (k, v) in obj {
                let sub = attr.sub(k).ok_or_else(|| {
                    ScimError::invalid_value(format!("`{path}` has no sub-attribute `{k}`"))
                })?;
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                let sub_path = format!("{path}.{}", sub.name);
                if let Some(v) = normalize_value(sub, v, compat, &sub_path)? {
                    out.insert(sub.name.clone(), v);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
    }))
}

/// The longest string value that is indexed for filters (bytes). Longer ones are refused:
/// index entries have a size limit (Postgres b-tree: 2,704 bytes with the key's other columns).
pub const MAX_STRING_BYTES: usize = 2048;

/// Checks a string value's length as sent and, when it is indexed lower-cased (not
/// `case_exact`), in lower case too (`İ` takes 2 bytes and its lower case 3, so a value of
/// 2,048 bytes could take 3,072 in the index).
fn check_length(s: &str, path: &str, case_exact: bool) -> ScimResult<()> {
    if s.len() > MAX_STRING_BYTES {
        return Err(ScimError::invalid_value(format!(
            "`{path}` is {} bytes long; the most is {MAX_STRING_BYTES}",
            s.len()
        )));
    }
    if !case_exact && !s.is_ascii() {
        let lower: usize = s
            .chars()
            .flat_map(char::to_lowercase)
            .map(char::len_utf8)
            .sum();
        if lower > MAX_STRING_BYTES {
            return Err(ScimError::invalid_value(format!(
                "`{path}` is {lower} bytes long in lower case (as it is indexed); the most is \
                 {MAX_STRING_BYTES}"
            )));
        }
    }
    Ok(())
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Required attributes (RFC 7643 §2.2 `required`), core and of present extensions.
pub fn check_required(registry: &Registry, rt: Rtype, doc: &Doc) -> ScimResult<()> {
    match missing_required(registry, rt, doc) {
        Some(path) => Err(ScimError::invalid_value(format!(
            "`{path}` is required for {}",
            rt.name()
        ))),
        None => Ok(()),
    }
}

/// The first required attribute `doc` lacks, as a path (`userName`,
/// `urn:...:Extension:attr`): of the core schema, and of every extension that is present or
/// that the resource type requires.
pub fn missing_required(registry: &Registry, rt: Rtype, doc: &Doc) -> Option<String> {
    for attr in &registry.core_schema(rt).attributes {
        if attr.required && !doc.contains_key(&attr.name) {
            return Some(attr.name.clone());
        }
    }
    for ext in registry.extensions(rt) {
        let ext_doc = doc.get(&ext.id).and_then(Value::as_object);
        let required_ext = registry
            .resource_type(rt)
            .schema_extensions
            .iter()
            .any(|e| e.required && e.schema == ext.id);
        if ext_doc.is_none() && !required_ext {
            continue;
        }
        for attr in &ext.attributes {
            if attr.required && !ext_doc.is_some_and(|d| d.contains_key(&attr.name)) {
                return Some(format!("{}:{}", ext.id, attr.name));
            }
        }
    }
    None
}

/// PUT (RFC 7644 §3.5.1): an immutable attribute that has a value may not change.
pub fn check_immutable(registry: &Registry, rt: Rtype, old: &Doc, new: &Doc) -> ScimResult<()> {
    let check = |schema: &Schema, old: Option<&Doc>, new: Option<&Doc>| -> ScimResult<()> {
        for attr in &schema.attributes {
            if attr.mutability != Mutability::Immutable {
                continue;
            }
            let (o, n) = (
                old.and_then(|d| d.get(&attr.name)),
                new.and_then(|d| d.get(&attr.name)),
            );
            if o.is_some() && o != n {
                return Err(ScimError::mutability(format!(
                    "`{}` is immutable and already set",
                    attr.name
                )));
            }
        }
        Ok(())
    };
    check(registry.core_schema(rt), Some(old), Some(new))?;
    for ext in registry.extensions(rt) {
        check(
            ext,
            old.get(&ext.id).and_then(Value::as_object),
            new.get(&ext.id).and_then(Value::as_object),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Rendering.

/// Server-maintained facts about a stored resource.
#[derive(Clone, Debug)]
pub struct StoredMeta {
    pub id: String,
    pub created: i64,
    pub modified: i64,
    pub version: i64,
}

/// A membership reference: a member of a group, or a group of a user.
#[derive(Clone, Debug, PartialEq)]
pub struct RefOut {
    pub id: String,
    pub kind: Rtype,
    pub display: Option<String>,
}

/// The weak ETag of a version (RFC 7644 §3.14): same in `meta.version` and the header.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The full wire representation (before projection). `refs` are the Group's members or the
/// User's groups when they were loaded. Takes the document: its values move into the answer.
pub fn render(
    registry: &Registry,
    rt: Rtype,
    doc: Doc,
    meta: &StoredMeta,
    base_url: &str,
    refs: Option<&[RefOut]>,
) -> Value {
    let schemas = Value::from(schema_ids(registry, rt, |id| doc.contains_key(id)));
    let mut out = doc;
    out.shift_insert(0, "schemas".into(), schemas);
    out.shift_insert(1, "id".into(), Value::String(meta.id.clone()));
    if let Some((key, list)) = refs.and_then(|r| refs_entry(rt, r, base_url)) {
        out.insert(key.into(), list);
    }
    // A struct of strings always serializes.
    let meta = serde_json::to_value(MetaOut::new(rt, meta, base_url)).unwrap_or_default();
    out.insert("meta".into(), meta);
    Value::Object(out)
}

/// The wire text of a stored resource as `render` and then the default projection (no
/// `attributes` or `excludedAttributes`) give it, spliced from the document's stored JSON
/// text: the values are copied as text, never parsed into a tree and written out again (for
/// a page of 100 users, that was most of a list's CPU). Under a projection of whole core
/// attributes (`Projection::whole_core_only`, such as `attributes=userName,name`), what that
/// projection gives: the members it names and those returned always, `meta` and references
/// if named, no extension. None when the projection is another, or the document holds
/// anything the projection would change or `render` would replace (an attribute the schemas
/// do not know or, under the default projection, do not return by default; an extension
/// that is not an object, or one with an attribute returned always under a selection; a
/// derived attribute; a key twice): then the caller renders through `render`. The values
/// are checked as JSON syntax only: a stored value serde_json writes but would not read
/// back (a lone surrogate escape, a number beyond f64, nesting past 128 levels: none comes
/// through the API, whose input serde_json reads) is sent as stored, where the tree path
/// answers that the document is corrupt.
pub fn render_text(
    registry: &Registry,
    rt: Rtype,
    doc_text: &str,
    meta: &StoredMeta,
    base_url: &str,
    refs: Option<&[RefOut]>,
    proj: &Projection,
) -> Option<String> {
    // Whether the projection selects whole core attributes (else it is the default one).
    let selection = proj.is_requested();
    if selection && !proj.whole_core_only() {
        return None;
    }
    let shown = |a: &Attribute| matches!(a.returned, Returned::Default | Returned::Always);
    let members = top_level(doc_text)?;
    if has_duplicates(&members) {
        return None;
    }
    let core = registry.core_schema(rt);
    let mut kept = Vec::with_capacity(members.len());
    for (key, value) in members {
        if matches!(key, "schemas" | "id" | "meta" | "members" | "groups") {
            return None;
        }
        match registry.extension(rt, key) {
            Some(ext) => {
                let inner = top_level(value.get())?;
                if inner.is_empty() || has_duplicates(&inner) {
                    return None;
                }
                // By default, kept when every attribute it holds is returned by default;
                // under a selection of core attributes, left out unless it holds one
                // returned always. One the schema does not know: the tree says.
                let splices = |a: &Attribute| {
                    if selection {
                        a.returned != Returned::Always
                    } else {
                        shown(a)
                    }
                };
                if !inner
                    .iter()
                    .all(|(k, _)| ext.attribute(k).is_some_and(splices))
                {
                    return None;
                }
                if !selection {
                    kept.push((key, value));
                }
            }
            None => {
                let attr = core
                    .attribute(key)
                    .or_else(|| registry.common_attribute(key))?;
                let keep = match (selection, attr.returned) {
                    (false, _) => shown(attr).then_some(true)?,
                    (true, Returned::Never) => false,
                    (true, Returned::Always) => true,
                    (true, _) => proj.selects_whole(&attr.name),
                };
                if keep {
                    kept.push((key, value));
                }
            }
        }
    }
    let members = kept;
    let shows = |name: &str| !selection || proj.selects_whole(name);
    // Written straight into one buffer: a page of 100 users spent a third of its rendering
    // formatting small `Value`s into strings of their own.
    let mut out: Vec<u8> = Vec::with_capacity(doc_text.len() + 512);
    out.extend_from_slice(b"{\"schemas\":");
    write_json(
        &mut out,
        &schema_ids(registry, rt, |id| members.iter().any(|(k, _)| *k == id)),
    );
    out.extend_from_slice(b",\"id\":");
    write_json(&mut out, &meta.id);
    for (key, value) in &members {
        // `top_level` took the key as it stands in the text, without escapes: it holds no
        // quote, backslash or control character, so it is written as it was read.
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value.get().as_bytes());
    }
    if let Some((key, list)) = refs.and_then(|r| refs_entry(rt, r, base_url)) {
        // Under a selection, shown when named (its callers read references only then).
        if shows(key) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            write_json(&mut out, &list);
        }
    }
    if shows("meta") {
        out.extend_from_slice(b",\"meta\":");
        write_json(&mut out, &MetaOut::new(rt, meta, base_url));
    }
    out.push(b'}');
    // Only UTF-8 went in: the document's own text, keys and values copied from it whole,
    // and strings serde_json escaped.
    String::from_utf8(out).ok()
}

/// Appends `v` as serde_json writes it.
fn write_json(out: &mut Vec<u8>, v: &impl serde::Serialize) {
    // Writing into a Vec cannot fail, and strings and lists of them always serialize.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Whether a key stands twice (the tree keeps the last value, a splice would send both).
fn has_duplicates(members: &[(&str, &serde_json::value::RawValue)]) -> bool {
    let mut keys: Vec<&str> = members.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// The members of a JSON object's text, in order, each value as its text. None when the text
/// is not an object, or a key needs unescaping (attribute names never do).
fn top_level(text: &str) -> Option<Vec<(&str, &serde_json::value::RawValue)>> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};
    use serde_json::value::RawValue;
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(&'de str, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let members = (&mut de).deserialize_map(Members).ok()?;
    de.end().ok()?;
    Some(members)
}

/// `schemas`: the core schema, then each of the type's extensions that `has` names.
fn schema_ids(registry: &Registry, rt: Rtype, has: impl Fn(&str) -> bool) -> Vec<&str> {
    let mut ids = vec![registry.core_schema(rt).id.as_str()];
    for ext in registry.extensions(rt) {
        if has(&ext.id) {
            ids.push(ext.id.as_str());
        }
    }
    ids
}

/// The `members` of a Group or the `groups` of a User, when there are any.
fn refs_entry(rt: Rtype, refs: &[RefOut], base_url: &str) -> Option<(&'static str, Value)> {
    if refs.is_empty() {
        return None;
    }
    let key = if rt == Rtype::Group {
        "members"
    } else {
        "groups"
    };
    let list = refs
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("value".into(), Value::String(r.id.clone()));
            m.insert(
                "$ref".into(),
                Value::String(format!("{base_url}/{}/{}", r.kind.endpoint(), r.id)),
            );
            if let Some(d) = &r.display {
                m.insert("display".into(), Value::String(d.clone()));
            }
            let kind = if rt == Rtype::Group {
                r.kind.name()
            } else {
                "direct"
            };
            m.insert("type".into(), Value::String(kind.into()));
            Value::Object(m)
        })
        .collect();
    Some((key, Value::Array(list)))
}

/// `meta` (RFC 7643 §3.1), for both the tree (`render`) and the splice (`render_text`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaOut {
    resource_type: &'static str,
    created: String,
    last_modified: String,
    location: String,
    version: String,
}

impl MetaOut {
    fn new(rt: Rtype, meta: &StoredMeta, base_url: &str) -> MetaOut {
        MetaOut {
            resource_type: rt.name(),
            created: format_micros(meta.created),
            last_modified: format_micros(meta.modified),
            location: format!("{base_url}/{}/{}", rt.endpoint(), meta.id),
            version: etag(meta.version),
        }
    }
}

/// Removes what is never returned (RFC 7643 §2.2 `returned: never`), e.g. `password`.
pub fn strip_never(registry: &Registry, rt: Rtype, resource: &mut Value) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    for attr in &registry.core_schema(rt).attributes {
        if attr.returned == Returned::Never {
            obj.remove(&attr.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg() -> Registry {
        Registry::load().unwrap()
    }

    /// `normalize` with every tolerance on.
    fn lenient(rt: Rtype, body: &Value) -> ScimResult<Normalized> {
        normalize(&reg(), rt, body, &Compat::default())
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    /// `render_text` is `render` then the default projection, to the byte, and declines
    /// what it cannot splice exactly.
    #[test]
    fn render_text_is_render_then_projection() {
        let registry = reg();
        let base = "https://example.com/scim/v2";
        let meta = StoredMeta {
            id: "2819c223".into(),
            created: 1_700_000_000_123_456,
            modified: 1_700_000_100_000_000,
            version: 7,
        };
        let user = lenient(
            Rtype::User,
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": "Bjensen@Example.com",
                "externalId": "e-1",
                "name": {"givenName": "Barbara", "familyName": "Jensen \"BJ\" Ünal"},
                "active": true,
                "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                           {"value": "b@home.example", "type": "home"}],
                "password": "t1meMach1ne",
                ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
            }),
        )
        .unwrap()
        .doc;
        let group = lenient(
            Rtype::Group,
            &json!({"displayName": "Tour Guides", "externalId": "g\u{1F600}"}),
        )
        .unwrap()
        .doc;
        let refs = [RefOut {
            id: "g-1".into(),
            kind: Rtype::Group,
            display: Some("Tour \"Guides\"".into()),
        }];
        let members = [RefOut {
            id: "u-1".into(),
            kind: Rtype::User,
            display: None,
        }];
        for (rt, doc, refs) in [
            (Rtype::User, &user, None),
            (Rtype::User, &user, Some(&[][..])),
            (Rtype::User, &user, Some(&refs[..])),
            (Rtype::Group, &group, Some(&members[..])),
            (Rtype::User, &Doc::new(), None),
        ] {
            let text = serde_json::to_string(doc).unwrap();
            let spliced = render_text(
                &registry,
                rt,
                &text,
                &meta,
                base,
                refs,
                &Projection::default(),
            )
            .unwrap_or_else(|| panic!("a normalized document splices: {text}"));
            let tree = render(&registry, rt, doc.clone(), &meta, base, refs);
            let projected = Projection::default().apply(&registry, rt, tree);
            assert_eq!(spliced, projected.to_string(), "{rt:?} {text}");
            // Projections of whole core attributes splice too, to the same bytes; others
            // are not offered to the splice (`whole_core_attributes` is None).
            for attributes in [
                "userName,name",
                "userName",
                "emails,meta",
                "name,externalId,active",
                "displayName",
                "groups,userName",
                "members",
                "meta",
                "externalId,displayName,members,meta",
                "name.familyName",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                ENTERPRISE,
            ] {
                let Ok(proj) = Projection::parse(&registry, rt, Some(attributes), None) else {
                    continue;
                };
                let tree = render(&registry, rt, doc.clone(), &meta, base, refs);
                let projected = proj.apply(&registry, rt, tree).to_string();
                if !proj.whole_core_only() {
                    assert!(
                        attributes.contains('.') || attributes.contains(':'),
                        "{attributes}"
                    );
                    assert_eq!(
                        render_text(&registry, rt, &text, &meta, base, refs, &proj),
                        None
                    );
                    continue;
                }
                let spliced = render_text(&registry, rt, &text, &meta, base, refs, &proj)
                    .unwrap_or_else(|| panic!("{attributes} splices: {text}"));
                assert_eq!(spliced, projected, "{rt:?} {attributes} {text}");
            }
        }
        // `excludedAttributes`, alone or beside `attributes`, is not a whole selection.
        let proj = Projection::parse(&registry, Rtype::User, Some("userName"), Some("name"));
        assert!(!proj.unwrap().whole_core_only());
        assert!(!user.contains_key("password"), "never stored");
        // What the default projection would change, or `render` would replace: the tree.
        for text in [
            r#"{"userName":"a","nickName2":"x"}"#.to_string(),
            format!(r#"{{"userName":"a","{ENTERPRISE}":"x"}}"#),
            format!(r#"{{"userName":"a","{ENTERPRISE}":{{}}}}"#),
            format!(r#"{{"userName":"a","{ENTERPRISE}":{{"shoeSize":"9"}}}}"#),
            r#"{"userName":"a","password":"x"}"#.to_string(),
            r#"{"user\u004eame":"a"}"#.to_string(),
            r#"{"userName":"a","id":"x"}"#.to_string(),
            r#"{"userName":"a","groups":[]}"#.to_string(),
            r#"{"userName":"a","meta":{}}"#.to_string(),
            r#"{"userName":"a","userName":"b"}"#.to_string(),
            format!(r#"{{"userName":"a","{ENTERPRISE}":{{"department":"x","department":"y"}}}}"#),
            r#"{"userName":"a"} "#.trim_end().to_string() + "x",
            "[1]".to_string(),
            "{".to_string(),
        ] {
            assert_eq!(
                render_text(
                    &registry,
                    Rtype::User,
                    &text,
                    &meta,
                    base,
                    None,
                    &Projection::default()
                ),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn canonicalises_names_and_drops_read_only() {
        let n = lenient(
            Rtype::User,
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "USERNAME": "bjensen", "id": "client-chosen", "meta": {"x": 1},
                "groups": [{"value": "g"}], "name": {"GivenName": "Barbara"},
                "emails": [{"value": "b@example.com", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "Tour"}
            }),
        )
        .unwrap();
        assert_eq!(n.doc["userName"], "bjensen");
        assert!(!n.doc.contains_key("id") && !n.doc.contains_key("groups"));
        assert_eq!(n.doc["name"], json!({"givenName": "Barbara"}));
        assert_eq!(
            n.doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "Tour"})
        );
    }

    #[test]
    fn rejects_bad_input_with_invalid_value() {
        let r = reg();
        let c = Compat::default();
        let cases = [
            json!({"displayName": "x"}),
            json!({"userName": 5}),
            json!({"userName": "a", "active": "yes"}),
            json!({"userName": "a", "emails": {"value": "x"}}),
            json!({"userName": "a", "emails": [{"value": "x", "primary": true}, {"value": "y", "primary": true}]}),
            json!({"userName": "a", "nickName": ["x"]}),
            json!({"userName": "a", "unknownThing": 1}),
            json!({"userName": "a", "name": {"middle": "x"}}),
            json!({"userName": "a", "schemas": ["urn:x"]}),
            json!({"userName": "a", "urn:example:ext": {"a": 1}}),
        ];
        for body in cases {
            let err = normalize(&r, Rtype::User, &body, &c).unwrap_err();
            assert_eq!(
                err.scim_type,
                super::super::error::ScimType::InvalidValue,
                "{body}"
            );
        }
        assert!(normalize(&r, Rtype::User, &json!([1]), &c).is_err());
    }

    const ADSCIM_GROUP: &str =
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

    #[test]
    fn undeclared_schema_uris_without_attributes_are_ignored_only_with_compat() {
        let r = reg();
        let entra = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", ADSCIM_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"}
        });
        let n = normalize(&r, Rtype::Group, &entra, &Compat::default()).unwrap();
        assert_eq!(
            Value::Object(n.doc),
            json!({"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName"})
        );
        let e = normalize(&r, Rtype::Group, &entra, &Compat::strict()).unwrap_err();
        assert_eq!(e.scim_type, super::super::error::ScimType::InvalidValue);
        assert!(
            e.detail.contains(ADSCIM_GROUP) && e.detail.contains("ignore_undeclared_schemas"),
            "{}",
            e.detail
        );

        let okta = "urn:okta:onprem_app:1.0:user:custom";
        let c = Compat::default();
        // Listed, carrying nothing (its key absent, null or {}): ignored, never stored.
        for body in [
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", okta], "userName": "a"}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", okta], "userName": "a", okta: null}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", okta], "userName": "a", okta: {}}),
        ] {
            let n = normalize(&r, Rtype::User, &body, &c).unwrap();
            assert_eq!(Value::Object(n.doc), json!({"userName": "a"}), "{body}");
        }
        // Carrying attributes: refused, with or without the tolerance.
        for body in [
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", okta], "userName": "a", okta: {"isAdmin": true}}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", okta], "userName": "a", format!("{okta}:isAdmin"): true}),
        ] {
            for compat in [Compat::default(), Compat::strict()] {
                let e = normalize(&r, Rtype::User, &body, &compat).unwrap_err();
                assert_eq!(
                    e.scim_type,
                    super::super::error::ScimType::InvalidValue,
                    "{body}"
                );
                assert!(e.detail.contains(okta), "{}", e.detail);
            }
        }
        // Schemas this server knows are never "undeclared": another type's core schema, a
        // discovery schema, an extension on the wrong type; nor is a string that is no URI.
        for (rt, other) in [
            (Rtype::User, "urn:ietf:params:scim:schemas:core:2.0:Group"),
            (
                Rtype::User,
                "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
            ),
            (
                Rtype::Group,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            ),
            (Rtype::User, "not a uri"),
        ] {
            let core = r.core_schema(rt).id.clone();
            let body = json!({"schemas": [core, other], "userName": "a", "displayName": "g"});
            let e = normalize(&r, rt, &body, &c).unwrap_err();
            assert!(e.detail.contains(other), "{}", e.detail);
        }
    }

    #[test]
    fn schemas_may_be_omitted_only_with_compat() {
        let r = reg();
        let body = json!({"userName": "a"});
        assert!(normalize(&r, Rtype::User, &body, &Compat::default()).is_ok());
        let e = normalize(&r, Rtype::User, &body, &Compat::strict()).unwrap_err();
        assert_eq!(e.scim_type, super::super::error::ScimType::InvalidValue);
        assert!(e.detail.contains("`schemas` is required"), "{}", e.detail);
        let with =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
        assert!(normalize(&r, Rtype::User, &with, &Compat::strict()).is_ok());
    }

    #[test]
    fn every_extension_attribute_leaves_an_index_row() {
        // `schemas` filters (storage::sql::filter, `Cond::Extension`) find the extensions a
        // resource carries by its `attr_values` rows under `urn:`: that needs a row for every
        // top-level attribute of every extension, which binary values (never indexed) would
        // not have; and no extension's URI may be a prefix of another's.
        let r = reg();
        for rt in Rtype::ALL {
            let exts = r.extensions(rt);
            for ext in &exts {
                for attr in &ext.attributes {
                    assert_ne!(attr.kind, AttrType::Binary, "{}:{}", ext.id, attr.name);
                }
                for other in &exts {
                    let prefix = format!("{}:", ext.id.to_lowercase());
                    assert!(ext.id == other.id || !other.id.to_lowercase().starts_with(&prefix));
                }
            }
        }
    }

    #[test]
    fn boolean_strings_only_with_compat() {
        let r = reg();
        let body = json!({"userName": "a", "active": "False"});
        let n = normalize(&r, Rtype::User, &body, &Compat::default()).unwrap();
        assert_eq!(n.doc["active"], json!(false));
        assert!(normalize(&r, Rtype::User, &body, &Compat::strict()).is_err());
    }

    #[test]
    fn bare_string_for_a_complex_value_only_with_compat() {
        let r = reg();
        let body = json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "m-1"}});
        let n = normalize(&r, Rtype::User, &body, &Compat::default()).unwrap();
        assert_eq!(
            n.doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
            json!({"value": "m-1"})
        );
        assert!(normalize(&r, Rtype::User, &body, &Compat::strict()).is_err());
        // `name` has no `value` sub-attribute: still an error.
        assert!(lenient(Rtype::User, &json!({"userName": "a", "name": "x"})).is_err());
    }

    #[test]
    fn members_are_validated_and_deduplicated() {
        let n = lenient(Rtype::Group, &json!({"displayName": "g", "members": [{"value": "a"}, {"value": "a", "type": "User"}, {"value": "b", "type": "Group"}]}))
        .unwrap();
        assert_eq!(n.members.unwrap().len(), 2);
        assert!(lenient(
            Rtype::Group,
            &json!({"displayName": "g", "members": [{"type": "User"}]})
        )
        .is_err());
        assert!(lenient(
            Rtype::Group,
            &json!({"displayName": "g", "members": [{"value": "a", "type": "Robot"}]})
        )
        .is_err());
    }
}
