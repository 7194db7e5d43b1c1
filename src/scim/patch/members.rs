//! PATCH on a Group's `members`: each operation becomes a `MemberChange` for storage to
//! apply as row changes (the member list is never loaded).

use serde_json::Value;

use super::target::Target;
use super::{MemberChange, OpKind};
use crate::scim::compat::Compat;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{self, Cond, ElemSet};
use crate::scim::resource::{normalize_members, MemberInput};

/// Turns an operation on a Group's `members` into a membership change.
pub(super) fn member_change(
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
                loc: filter::Loc {
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
pub(super) fn member_ids(cond: &Cond) -> Option<Vec<String>> {
    use super::filter::CompOp;
    use super::filter::{Field, Operand, RefField};
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
