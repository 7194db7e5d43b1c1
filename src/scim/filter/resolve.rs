//! Resolving a parsed filter against the schema registry (RFC 7643 §2, §7): each attribute
//! path to its definition and comparison kind, each value to a typed operand. Errors are
//! `invalidFilter`, naming the attribute.

use serde_json::Value;

use super::cond::{Cond, ElemSet, Field, Kind, Loc, Operand, RefField, Target};
use super::eval::cmp_value;
use super::{AttrPath, CompOp, CompValue, Filter};
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::schema::{AttrType, Attribute, Registry, Returned, Rtype};
use crate::scim::time::parse_datetime;

/// Resolves a parsed filter for resource type `rt`. Errors are `invalidFilter` with a detail
/// naming the attribute.
pub fn resolve(registry: &Registry, rt: Rtype, filter: &Filter) -> ScimResult<Cond> {
    Ok(match filter {
        Filter::Present(p) if is_schemas(registry, rt, p) => {
            resolve_schemas(registry, rt, p, None)?
        }
        Filter::Compare(p, op, v) if is_schemas(registry, rt, p) => {
            resolve_schemas(registry, rt, p, Some((*op, v)))?
        }
        Filter::Present(p) => Cond::Present(target(registry, rt, p, None)?),
        Filter::Compare(p, op, v) => {
            let t = target(registry, rt, p, None)?;
            compare(t, *op, v)?
        }
        Filter::Not(f) => not(resolve(registry, rt, f)?),
        Filter::And(a, b) => and(resolve(registry, rt, a)?, resolve(registry, rt, b)?),
        Filter::Or(a, b) => or(resolve(registry, rt, a)?, resolve(registry, rt, b)?),
        Filter::ValuePath(p, inner) => {
            let r = registry
                .resolve(rt, p.urn.as_deref(), &p.attr)
                .ok_or_else(|| unknown(rt, p))?;
            if r.attr.kind != AttrType::Complex || p.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "`{p}[...]` needs a complex attribute; `{}` is not one",
                    r.attr.name
                )));
            }
            let set = if is_ref_attr(rt, r.attr) {
                ElemSet::Refs
            } else {
                ElemSet::Values(r.storage_path(None))
            };
            let loc = Loc {
                ext: r.extension.map(str::to_string),
                attr: r.attr.name.clone(),
                sub: None,
            };
            let inner = resolve_inner(registry, rt, r.attr, &loc, inner)?;
            Cond::Elem {
                set,
                loc,
                inner: Box::new(inner),
            }
        }
    })
}

fn resolve_inner(
    registry: &Registry,
    rt: Rtype,
    parent: &Attribute,
    loc: &Loc,
    f: &Filter,
) -> ScimResult<Cond> {
    let sub_target = |p: &AttrPath| -> ScimResult<Target> {
        if p.urn.is_some() || p.sub.is_some() {
            return Err(ScimError::invalid_filter(format!(
                "inside `{}[...]` name a sub-attribute of `{}`, not `{p}`",
                parent.name, parent.name
            )));
        }
        let sub = parent.sub(&p.attr).ok_or_else(|| {
            ScimError::invalid_filter(format!(
                "`{}` has no sub-attribute `{}`",
                parent.name, p.attr
            ))
        })?;
        let ap = AttrPath {
            urn: loc.ext.clone(),
            attr: parent.name.clone(),
            sub: Some(sub.name.clone()),
        };
        target(registry, rt, &ap, Some(()))
    };
    Ok(match f {
        Filter::Present(p) => Cond::Present(sub_target(p)?),
        Filter::Compare(p, op, v) => compare(sub_target(p)?, *op, v)?,
        Filter::Not(x) => Cond::Not(Box::new(resolve_inner(registry, rt, parent, loc, x)?)),
        Filter::And(a, b) => Cond::And(
            Box::new(resolve_inner(registry, rt, parent, loc, a)?),
            Box::new(resolve_inner(registry, rt, parent, loc, b)?),
        ),
        Filter::Or(a, b) => Cond::Or(
            Box::new(resolve_inner(registry, rt, parent, loc, a)?),
            Box::new(resolve_inner(registry, rt, parent, loc, b)?),
        ),
        Filter::ValuePath(p, _) => {
            return Err(ScimError::invalid_filter(format!(
                "value paths cannot nest: `{p}[...]`"
            )))
        }
    })
}

// Constants fold away as conditions are built, so a `schemas` test that every resource
// passes (or fails) never reaches the SQL.
fn not(c: Cond) -> Cond {
    match c {
        Cond::Const(b) => Cond::Const(!b),
        c => Cond::Not(Box::new(c)),
    }
}

fn and(a: Cond, b: Cond) -> Cond {
    match (a, b) {
        (Cond::Const(true), c) | (c, Cond::Const(true)) => c,
        (Cond::Const(false), _) | (_, Cond::Const(false)) => Cond::Const(false),
        (a, b) => Cond::And(Box::new(a), Box::new(b)),
    }
}

fn or(a: Cond, b: Cond) -> Cond {
    match (a, b) {
        (Cond::Const(false), c) | (c, Cond::Const(false)) => c,
        (Cond::Const(true), _) | (_, Cond::Const(true)) => Cond::Const(true),
        (a, b) => Cond::Or(Box::new(a), Box::new(b)),
    }
}

/// Is `p` the common attribute `schemas` (RFC 7643 §3), unqualified or qualified by the
/// core schema as other common attributes may be?
pub(super) fn is_schemas(registry: &Registry, rt: Rtype, p: &AttrPath) -> bool {
    p.attr.eq_ignore_ascii_case("schemas")
        && p.urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(&registry.core_schema(rt).id))
}

/// `schemas` (RFC 7643 §3) is a multi-valued, case-exact string every resource has, derived
/// from its document: the core schema's URI always, an extension's URI when the resource
/// carries attributes of that extension (exactly what `resource::render` lists). The set of
/// URIs a resource type can list is finite and known, so a comparison is decided here for
/// each of them, and only "carries extension X" is left to storage. `ne` is "no value
/// equals", as for every multi-valued attribute.
fn resolve_schemas(
    registry: &Registry,
    rt: Rtype,
    p: &AttrPath,
    cmp: Option<(CompOp, &CompValue)>,
) -> ScimResult<Cond> {
    if let Some(sub) = &p.sub {
        return Err(ScimError::invalid_filter(format!(
            "`schemas` has no sub-attributes, so `schemas.{sub}` does not exist"
        )));
    }
    let (op, operand) = match cmp {
        // Every resource has at least its core schema.
        None => return Ok(Cond::Const(true)),
        Some((op, CompValue::Str(s))) => (op, Operand::Str(s.clone())),
        Some((CompOp::Eq, CompValue::Null)) => return Ok(Cond::Const(false)),
        Some((CompOp::Ne, CompValue::Null)) => return Ok(Cond::Const(true)),
        Some((op, v)) => {
            return Err(ScimError::invalid_filter(format!(
                "`schemas {op} {v}`: schemas holds schema URIs; compare it with a quoted string, e.g. schemas eq \"{}\"",
                registry.core_schema(rt).id
            )))
        }
    };
    let positive = if op == CompOp::Ne { CompOp::Eq } else { op };
    let kind = Kind::Str { case_exact: true };
    let hit = |uri: &str| cmp_value(kind, positive, &Value::String(uri.to_string()), &operand);
    let listed = if hit(&registry.core_schema(rt).id) {
        Cond::Const(true)
    } else {
        registry
            .extensions(rt)
            .into_iter()
            .filter(|e| hit(&e.id))
            .map(|e| Cond::Extension(e.id.clone()))
            .fold(Cond::Const(false), or)
    };
    Ok(if op == CompOp::Ne {
        not(listed)
    } else {
        listed
    })
}

fn unknown(rt: Rtype, p: &AttrPath) -> ScimError {
    ScimError::invalid_filter(format!(
        "unknown attribute `{p}` for resource type {}",
        rt.name()
    ))
}

fn is_ref_attr(rt: Rtype, a: &Attribute) -> bool {
    (rt == Rtype::Group && a.name == "members") || (rt == Rtype::User && a.name == "groups")
}

/// Resolves an attribute path to a storage target. `in_element` marks a path inside a value
/// path filter, whose storage is addressed relative to the element.
pub(super) fn target(
    registry: &Registry,
    rt: Rtype,
    p: &AttrPath,
    in_element: Option<()>,
) -> ScimResult<Target> {
    let r = registry
        .resolve(rt, p.urn.as_deref(), &p.attr)
        .ok_or_else(|| unknown(rt, p))?;
    let attr = r.attr;
    let mut sub: Option<&Attribute> = None;
    if let Some(s) = &p.sub {
        if attr.kind != AttrType::Complex {
            return Err(ScimError::invalid_filter(format!(
                "`{}` has no sub-attributes, so `{p}` does not exist",
                attr.name
            )));
        }
        sub = Some(attr.sub(s).ok_or_else(|| {
            ScimError::invalid_filter(format!("`{}` has no sub-attribute `{s}`", attr.name))
        })?);
    } else if attr.kind == AttrType::Complex && attr.multi_valued {
        // RFC 7644 §3.4.2.2: a complex multi-valued attribute without a sub-attribute
        // compares its `value` sub-attribute (e.g. `emails co "@example.com"`).
        sub = attr.sub("value");
    }
    if attr.returned == Returned::Never || sub.is_some_and(|s| s.returned == Returned::Never) {
        return Err(ScimError::invalid_filter(format!(
            "`{p}` is never returned and cannot be filtered"
        )));
    }
    let loc = Loc {
        ext: r.extension.map(str::to_string),
        attr: attr.name.clone(),
        sub: sub.map(|s| s.name.clone()),
    };
    let leaf = sub.unwrap_or(attr);
    let kind = match leaf.kind {
        AttrType::String | AttrType::Reference | AttrType::Binary => Kind::Str {
            case_exact: leaf.case_exact,
        },
        AttrType::Boolean => Kind::Bool,
        AttrType::Integer | AttrType::Decimal => Kind::Num,
        AttrType::DateTime => Kind::DateTime,
        AttrType::Complex => Kind::Complex,
    };
    let lname = |a: &Attribute| a.name.to_ascii_lowercase();
    let field = if r.extension.is_none() && is_ref_attr(rt, r.attr) {
        match sub.map(lname).as_deref() {
            Some("value") => Field::Ref(RefField::Value),
            Some("display") => Field::Ref(RefField::Display),
            Some("type") => Field::Ref(RefField::Type),
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "`{p}` cannot be filtered; use `{}.value`, `.display` or `.type`",
                    attr.name
                )))
            }
        }
    } else {
        // Of the server-maintained `meta`, only the times and the type are kept to filter on.
        let meta_sub = sub.map(lname);
        if r.extension.is_none()
            && in_element.is_none()
            && lname(attr) == "meta"
            && !matches!(
                meta_sub.as_deref(),
                Some("created" | "lastmodified" | "resourcetype")
            )
        {
            return Err(ScimError::invalid_filter(format!(
                "`{p}` cannot be filtered; meta.created, meta.lastModified and meta.resourceType can"
            )));
        }
        Field::Attr(r.storage_path(sub))
    };
    let exclusive = registry.only_on(rt, loc.ext.as_deref(), &loc.attr);
    Ok(Target {
        field,
        kind,
        loc,
        exclusive,
    })
}

fn compare(t: Target, op: CompOp, v: &CompValue) -> ScimResult<Cond> {
    let bad =
        |why: &str| ScimError::invalid_filter(format!("`{} {} {}`: {why}", t.loc, op.as_str(), v));
    // RFC 7644 §3.4.2.2 leaves `eq null` undefined; we read it as "not present" and
    // `ne null` as "present", the only sensible meaning.
    if matches!(v, CompValue::Null) {
        return match op {
            CompOp::Eq => Ok(Cond::Not(Box::new(Cond::Present(t)))),
            CompOp::Ne => Ok(Cond::Present(t)),
            _ => Err(bad("null can only be compared with eq or ne")),
        };
    }
    let operand = match (t.kind, v) {
        (Kind::Complex, _) => {
            return Err(bad(
                "a complex attribute needs a sub-attribute, e.g. `name.familyName`",
            ))
        }
        (Kind::Str { case_exact }, CompValue::Str(s)) => Operand::Str(if case_exact {
            s.clone()
        } else {
            s.to_lowercase()
        }),
        (Kind::Str { .. }, _) => {
            return Err(bad("a string attribute compares with a quoted string"))
        }
        (Kind::Bool, CompValue::Bool(b)) => {
            if !matches!(op, CompOp::Eq | CompOp::Ne) {
                return Err(bad("a boolean attribute supports only eq, ne and pr"));
            }
            Operand::Bool(*b)
        }
        (Kind::Bool, _) => return Err(bad("a boolean attribute compares with true or false")),
        (Kind::Num, CompValue::Num(n)) => Operand::Num(*n),
        (Kind::Num, _) => return Err(bad("a numeric attribute compares with a number")),
        (Kind::DateTime, CompValue::Str(s)) => match parse_datetime(s) {
            Some(micros) => Operand::Num(micros as f64),
            None => {
                return Err(bad(
                    "not a valid dateTime (RFC 3339, e.g. \"2011-05-13T04:42:34Z\")",
                ))
            }
        },
        (Kind::DateTime, _) => {
            return Err(bad(
                "a dateTime attribute compares with a quoted RFC 3339 time",
            ))
        }
    };
    if matches!(op, CompOp::Co | CompOp::Sw | CompOp::Ew) && !matches!(t.kind, Kind::Str { .. }) {
        return Err(bad("co, sw and ew apply only to string attributes"));
    }
    Ok(Cond::Cmp(t, op, operand))
}
