//! What a PATCH path addresses, resolved against the schema: the attribute (and
//! sub-attribute) and where it lives in the document; shared by the ways of applying an
//! operation (`apply`, `filtered`, `members`).

use serde_json::Value;

use crate::scim::filter::Cond;
use crate::scim::schema::Attribute;

/// What a path addresses, resolved against the schema.
pub(super) struct Target<'a> {
    /// Extension schema id, or None for core/common attributes.
    pub(super) ext: Option<String>,
    pub(super) attr: &'a Attribute,
    pub(super) filter: Option<Cond>,
    pub(super) sub: Option<&'a Attribute>,
    /// The `attr eq "v"` pairs of a conjunctive filter, used to create a missing element.
    pub(super) eq_pairs: Vec<(String, Value)>,
}

pub(super) fn describe(t: &Target) -> String {
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

pub(super) fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

pub(super) fn clear_primary(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("primary");
    }
}
