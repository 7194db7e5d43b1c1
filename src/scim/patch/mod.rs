//! The PATCH engine (RFC 7644 §3.5.2): parses a PatchOp message and applies its operations to
//! a stored document, atomically (on a copy). Group membership operations are not applied
//! here: they come back as `MemberChange`s for storage to apply as row changes, so a change
//! to a 100,000-member group never loads the member list. Pure: no actix, no diesel.

use serde_json::Value;

use super::compat::Compat;
use super::error::{ScimError, ScimResult};
use super::filter::{self, parse_path, Cond, Limits, PatchPath};
use super::resource::{Doc, MemberInput};
use super::schema::PATCH_OP;

mod apply;
mod filtered;
mod members;
mod target;

pub use apply::apply;

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

#[cfg(test)]
mod tests;
