//! SCIM protocol errors (RFC 7644 §3.12): a `scimType` and a detail a person can act on.
//! Pure: no actix, no diesel.

/// The `scimType` values of RFC 7644 §3.12 (plus RFC 9865's cursor errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
    InvalidCursor,
    ExpiredCursor,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
            ScimType::ExpiredCursor => "expiredCursor",
        }
    }
}

/// `name: Kind` defines `ScimError::name(detail)`, a `ScimType::Kind` error.
macro_rules! shorthands {
    ($($name:ident: $kind:ident),* $(,)?) => {
        $(pub fn $name(detail: impl Into<String>) -> ScimError {
            ScimError::new(ScimType::$kind, detail)
        })*
    };
}

/// A client's request broke a SCIM rule. Always a 4xx; the detail goes to the client as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub scim_type: ScimType,
    pub detail: String,
}

impl ScimError {
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
        ScimError {
            scim_type,
            detail: detail.into(),
        }
    }
    shorthands! {
        invalid_value: InvalidValue,
        invalid_syntax: InvalidSyntax,
        invalid_filter: InvalidFilter,
        invalid_path: InvalidPath,
        mutability: Mutability,
        no_target: NoTarget,
    }
}

pub type ScimResult<T> = Result<T, ScimError>;
