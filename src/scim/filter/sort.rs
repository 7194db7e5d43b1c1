//! `sortBy` and `sortOrder` (RFC 7644 §3.4.2.3), resolved against the schema registry.

use super::cond::{Field, Kind, Loc};
use super::resolve::{is_schemas, target};
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::schema::{AttrType, Registry, Rtype};

/// What a list is ordered by (besides the final tie-break on insertion order).
#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    pub field: Field,
    pub kind: Kind,
    /// For a multi-valued complex attribute: the canonical path of its `primary`
    /// sub-attribute; the primary value sorts, else the first one.
    pub primary: Option<String>,
    /// A singular attribute (and sub-attribute): each resource has at most one value, so
    /// the storage can walk its value index in order instead of computing a key per row.
    pub singular: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// Resolves `sortBy` for `rt`: any singular attribute, or a multi-valued attribute's
/// primary (else first) value. Errors are `invalidValue` naming the attribute.
pub fn resolve_sort(
    registry: &Registry,
    rt: Rtype,
    sort_by: &str,
    descending: bool,
) -> ScimResult<Sort> {
    use super::{parse_path, PatchPath};
    let bad = |why: &str| ScimError::invalid_value(format!("sortBy `{sort_by}`: {why}"));
    let path = parse_path(sort_by, &super::Limits::default()).map_err(|e| bad(&e.to_string()))?;
    let PatchPath::Attr(p) = path else {
        return Err(bad("filters are not allowed here"));
    };
    if is_schemas(registry, rt, &p) {
        return Err(bad(
            "`schemas` is multi-valued with no primary value, so it cannot order a list",
        ));
    }
    let t = target(registry, rt, &p, None).map_err(|e| bad(&e.detail))?;
    if matches!(t.field, Field::Ref(_)) {
        return Err(bad("cannot sort by group membership"));
    }
    if t.kind == Kind::Complex {
        return Err(bad("name a sub-attribute, e.g. name.familyName"));
    }
    let r = registry
        .resolve(rt, p.urn.as_deref(), &p.attr)
        .ok_or_else(|| bad("unknown attribute"))?;
    let primary = (r.attr.kind == AttrType::Complex && r.attr.multi_valued)
        .then(|| r.attr.sub("primary").map(|s| r.storage_path(Some(s))))
        .flatten();
    let sub_multi = p
        .sub
        .as_deref()
        .and_then(|s| r.attr.sub(s))
        .is_some_and(|s| s.multi_valued);
    let singular = !r.attr.multi_valued && !sub_multi;
    Ok(Sort {
        key: SortKey {
            field: t.field,
            kind: t.kind,
            primary,
            singular,
            loc: t.loc,
        },
        descending,
    })
}
