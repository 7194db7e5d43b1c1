//! Validated filters: the typed conditions (`Cond`) a parsed filter resolves to (`resolve`),
//! which storage translates to SQL and `eval` evaluates in memory with the same semantics.
//! They name attributes, never storage: which of them have columns is storage's business.

use super::CompOp;

/// A sub-attribute of a membership reference (`members.*` on Groups, `groups.*` on Users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefField {
    Value,
    Display,
    Type,
}

/// What a comparison reads. Which attributes storage keeps in columns of their own is its
/// business, not the protocol's.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// An attribute by its canonical path (`Resolved::storage_path`): lower-cased, with the
    /// extension URN before an extension's attribute and `.sub` after a sub-attribute, e.g.
    /// `username`, `meta.created`, `name.familyname`. Inside a value path (`emails[...]`)
    /// the paths are the element's sub-attributes (`emails.value`).
    Attr(String),
    /// A member of a group (Group `members`) or a group of a user (User `groups`).
    Ref(RefField),
}

/// How values compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str { case_exact: bool },
    Bool,
    Num,
    DateTime,
    Complex,
}

/// Location of a value in the rendered JSON resource, with canonical names.
#[derive(Clone, Debug, PartialEq)]
pub struct Loc {
    pub ext: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub field: Field,
    pub kind: Kind,
    pub loc: Loc,
    /// No other resource type defines the attribute (`Registry::only_on`): every stored
    /// value at its path belongs to a resource of the filtered type.
    pub exclusive: bool,
}

/// A comparison value, already normalised for the target (lower-cased when not caseExact,
/// dateTimes as microseconds).
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// Which collection a value-path filter ranges over.
#[derive(Clone, Debug, PartialEq)]
pub enum ElemSet {
    /// Elements of a multi-valued (or complex) attribute at this canonical path.
    Values(String),
    /// Group members (on Groups) or groups (on Users).
    Refs,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Present(Target),
    Cmp(Target, CompOp, Operand),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    /// `attr[inner]`: some element of the collection satisfies `inner`; the targets inside are
    /// relative to the element (their `loc.attr` is the element attribute, `loc.sub` the field).
    Elem {
        set: ElemSet,
        loc: Loc,
        inner: Box<Cond>,
    },
    /// The resource carries attributes of this extension schema, so its `schemas` lists the
    /// extension's URI (RFC 7643 §3; see `resolve_schemas`).
    Extension(String),
    /// A test every resource of the type passes (`true`) or fails: `schemas` compared with
    /// the core schema's URI, `schemas pr`.
    Const(bool),
}

impl Cond {
    /// Whether the condition reads membership references (`groups`/`members`), which are
    /// not part of the stored document.
    pub fn uses_refs(&self) -> bool {
        match self {
            Cond::Present(t) | Cond::Cmp(t, _, _) => matches!(t.field, Field::Ref(_)),
            Cond::Not(c) => c.uses_refs(),
            Cond::And(a, b) | Cond::Or(a, b) => a.uses_refs() || b.uses_refs(),
            Cond::Elem { set, inner, .. } => *set == ElemSet::Refs || inner.uses_refs(),
            Cond::Extension(_) | Cond::Const(_) => false,
        }
    }
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.ext {
            write!(f, "{e}:")?;
        }
        write!(f, "{}", self.attr)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}
