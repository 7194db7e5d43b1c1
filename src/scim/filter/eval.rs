//! In-memory evaluation of a validated filter over a rendered resource (canonical attribute
//! names), with exactly the semantics of the SQL translation: PATCH value paths, rule
//! filters and the differential tests use it.

use serde_json::Value;

use super::cond::{Cond, Kind, Loc, Operand, Target};
use super::CompOp;
use crate::scim::time::parse_datetime;

/// Does `resource` (rendered JSON with canonical names, including `members`/`groups` when
/// the filter needs them) satisfy `cond`?
pub fn matches(cond: &Cond, resource: &Value) -> bool {
    match cond {
        Cond::Present(t) => values_at(resource, &t.loc).iter().any(non_empty),
        // `ne` is "no value equals" (absent included), exactly as the SQL translation.
        Cond::Cmp(t, CompOp::Ne, operand) => !values_at(resource, &t.loc)
            .iter()
            .any(|v| cmp_value(t.kind, CompOp::Eq, v, operand)),
        Cond::Cmp(t, op, operand) => values_at(resource, &t.loc)
            .iter()
            .any(|v| cmp_value(t.kind, *op, v, operand)),
        Cond::Not(c) => !matches(c, resource),
        Cond::And(a, b) => matches(a, resource) && matches(b, resource),
        Cond::Or(a, b) => matches(a, resource) || matches(b, resource),
        Cond::Elem { loc, inner, .. } => elements_at(resource, loc)
            .iter()
            .any(|e| matches_element(inner, e)),
        Cond::Extension(urn) => get_ci(resource, urn).is_some_and(non_empty),
        Cond::Const(b) => *b,
    }
}

/// Evaluates an element-relative condition against one element object.
pub fn matches_element(cond: &Cond, element: &Value) -> bool {
    let field = |t: &Target| -> Vec<Value> {
        match t.loc.sub.as_deref().and_then(|s| get_ci(element, s)) {
            Some(v) => vec![v.clone()],
            None => Vec::new(),
        }
    };
    match cond {
        Cond::Present(t) => field(t).iter().any(non_empty),
        Cond::Cmp(t, CompOp::Ne, operand) => !field(t)
            .iter()
            .any(|v| cmp_value(t.kind, CompOp::Eq, v, operand)),
        Cond::Cmp(t, op, operand) => field(t).iter().any(|v| cmp_value(t.kind, *op, v, operand)),
        Cond::Not(c) => !matches_element(c, element),
        Cond::And(a, b) => matches_element(a, element) && matches_element(b, element),
        Cond::Or(a, b) => matches_element(a, element) || matches_element(b, element),
        Cond::Const(b) => *b,
        Cond::Elem { .. } | Cond::Extension(_) => false,
    }
}

fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The container object of an attribute: the resource or its extension object.
fn container<'a>(resource: &'a Value, loc: &Loc) -> Option<&'a Value> {
    match &loc.ext {
        Some(e) => get_ci(resource, e),
        None => Some(resource),
    }
}

/// Every leaf value at `loc` (flattening multi-valued attributes).
pub fn values_at(resource: &Value, loc: &Loc) -> Vec<Value> {
    let Some(c) = container(resource, loc) else {
        return Vec::new();
    };
    let Some(v) = get_ci(c, &loc.attr) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match &loc.sub {
        None => items.into_iter().cloned().collect(),
        Some(s) => items
            .into_iter()
            .filter_map(|i| get_ci(i, s))
            .cloned()
            .collect(),
    }
}

/// The element objects of a complex attribute at `loc` (one for a singular one).
pub fn elements_at(resource: &Value, loc: &Loc) -> Vec<Value> {
    let Some(v) = container(resource, loc).and_then(|c| get_ci(c, &loc.attr)) else {
        return Vec::new();
    };
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![v.clone()],
        _ => Vec::new(),
    }
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(non_empty),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Compares one stored value with an operand, exactly as the SQL translation does.
pub fn cmp_value(kind: Kind, op: CompOp, v: &Value, operand: &Operand) -> bool {
    match (kind, operand) {
        (Kind::Str { case_exact }, Operand::Str(o)) => {
            let Some(s) = v.as_str() else { return false };
            let s = if case_exact {
                s.to_string()
            } else {
                s.to_lowercase()
            };
            match op {
                CompOp::Eq => s == *o,
                CompOp::Ne => s != *o,
                CompOp::Co => s.contains(o.as_str()),
                CompOp::Sw => s.starts_with(o.as_str()),
                CompOp::Ew => s.ends_with(o.as_str()),
                CompOp::Gt => s.as_str() > o.as_str(),
                CompOp::Ge => s.as_str() >= o.as_str(),
                CompOp::Lt => s.as_str() < o.as_str(),
                CompOp::Le => s.as_str() <= o.as_str(),
            }
        }
        (Kind::Bool, Operand::Bool(b)) => match (v.as_bool(), op) {
            (Some(x), CompOp::Eq) => x == *b,
            (Some(x), CompOp::Ne) => x != *b,
            _ => false,
        },
        (Kind::Num, Operand::Num(n)) => v.as_f64().is_some_and(|x| num_cmp(op, x, *n)),
        (Kind::DateTime, Operand::Num(n)) => v
            .as_str()
            .and_then(parse_datetime)
            .is_some_and(|x| num_cmp(op, x as f64, *n)),
        _ => false,
    }
}

fn num_cmp(op: CompOp, x: f64, n: f64) -> bool {
    match op {
        CompOp::Eq => x == n,
        CompOp::Ne => x != n,
        CompOp::Gt => x > n,
        CompOp::Ge => x >= n,
        CompOp::Lt => x < n,
        CompOp::Le => x <= n,
        CompOp::Co | CompOp::Sw | CompOp::Ew => false,
    }
}
