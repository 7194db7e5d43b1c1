//! SCIM filter and PATCH path parsing (RFC 7644 §3.4.2.2, §3.5.2): pure syntax, no schema knowledge.
//!
//! The grammar implemented is RFC 7644 Figure 1 with these readings of the reported errata:
//!
//! * EID 7319: whitespace between `not` and `(` is optional (`not (x)` and `not(x)`).
//! * EID 4690 / EID 7322: inside a value filter (`attr[...]`) `and`, `or`, `not` and parentheses
//!   are allowed, but value paths may not be nested.
//!
//! Beyond the ABNF, and as §3.4.2.2 says in prose, operators and keywords are case-insensitive,
//! and any run of whitespace is accepted where the ABNF requires a single SP.
//!
//! Positions in [`ParseError`] are 0-based character (not byte) offsets into the input.

use std::fmt;

mod cond;
mod eval;
mod parser;
mod resolve;
mod sort;
mod text;
mod values;

pub use cond::{Cond, ElemSet, Field, Kind, Loc, Operand, RefField, Target};
pub use eval::{cmp_value, elements_at, matches, matches_element, values_at};
pub use parser::{parse_filter, parse_filter_with, parse_path};
pub use resolve::resolve;
pub use sort::{resolve_sort, Sort, SortKey};

/// An absolute ceiling on nesting depth, applied whatever [`Limits::max_depth`] says, so that the
/// recursive-descent parser can never exhaust the stack.
pub(crate) const HARD_MAX_DEPTH: usize = 128;

/// `attrPath = [URI ":"] ATTRNAME *1subAttr` (RFC 7644 §3.4.2.2). Names are kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN, without the trailing `:`.
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

/// `compareOp` (RFC 7644 §3.4.2.2, Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// `compValue = false / null / true / number / string` (RFC 7644 §3.4.2.2, JSON rules of RFC 7159).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

/// A parsed `FILTER` (RFC 7644 §3.4.2.2, Figure 1).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompOp, CompValue),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    /// attr[inner]; the attr has sub == None; attribute paths inside `inner` are relative to attr (e.g. `type`, `value`)
    ValuePath(AttrPath, Box<Filter>),
}

/// A parsed PATCH `path` (RFC 7644 §3.5.2, Figure 7: `PATH = attrPath / valuePath [subAttr]`).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchPath {
    Attr(AttrPath),
    /// attr[filter] or attr[filter].sub
    ValuePath {
        attr: AttrPath,
        filter: Filter,
        sub: Option<String>,
    },
}

/// Resource limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Maximum input length in characters.
    pub max_len: usize,
    /// Maximum nesting of parentheses, `not` and value filters (each counts one level).
    pub max_depth: usize,
    /// Maximum number of comparisons and presence tests.
    pub max_terms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 4096,
            max_depth: 32,
            max_terms: 100,
        }
    }
}

/// A syntax error: where (0-based character offset) and what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

impl ParseError {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        ParseError {
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.pos, self.message)
    }
}

impl std::error::Error for ParseError {}

impl CompOp {
    const ALL: [CompOp; 9] = [
        CompOp::Eq,
        CompOp::Ne,
        CompOp::Co,
        CompOp::Sw,
        CompOp::Ew,
        CompOp::Gt,
        CompOp::Ge,
        CompOp::Lt,
        CompOp::Le,
    ];

    /// The operator as written in canonical (lowercase) form, e.g. `"eq"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CompOp::Eq => "eq",
            CompOp::Ne => "ne",
            CompOp::Co => "co",
            CompOp::Sw => "sw",
            CompOp::Ew => "ew",
            CompOp::Gt => "gt",
            CompOp::Ge => "ge",
            CompOp::Lt => "lt",
            CompOp::Le => "le",
        }
    }

    // RFC 7644 §3.4.2.2: "Attribute names and attribute operators used in filters are case
    // insensitive."
    fn from_keyword(word: &str) -> Option<CompOp> {
        CompOp::ALL
            .iter()
            .copied()
            .find(|op| word.eq_ignore_ascii_case(op.as_str()))
    }
}

/// Filter forms beyond the RFC 7644 ABNF that clients send. Each is switched by a named
/// client-dialect tolerance (`scim::compat`); the caller maps one to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Syntax {
    /// `emails[type eq "work"].value eq "x"`, read as `emails[type eq "work" and value eq
    /// "x"]` (Entra ID; `Compat::filter_value_path_sub`).
    pub value_path_sub: bool,
}

impl Syntax {
    /// The RFC 7644 grammar only.
    pub const RFC: Syntax = Syntax {
        value_path_sub: false,
    };
    /// The RFC grammar and every client form above.
    pub const LENIENT: Syntax = Syntax {
        value_path_sub: true,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- AST builders ------------------------------------------------------------------------

    fn p(attr: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.to_string(),
            sub: None,
        }
    }

    fn ps(attr: &str, sub: &str) -> AttrPath {
        AttrPath {
            sub: Some(sub.to_string()),
            ..p(attr)
        }
    }

    fn pu(urn: &str, attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: Some(urn.to_string()),
            attr: attr.to_string(),
            sub: sub.map(str::to_string),
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.to_string())
    }

    fn cmp(path: AttrPath, op: CompOp, value: CompValue) -> Filter {
        Filter::Compare(path, op, value)
    }

    fn pr(path: AttrPath) -> Filter {
        Filter::Present(path)
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn vp(path: AttrPath, inner: Filter) -> Filter {
        Filter::ValuePath(path, Box::new(inner))
    }

    /// The grammar with every client form on (`Syntax::LENIENT`); `rfc_syntax_refuses_...`
    /// shows what each form costs without it.
    fn parse(input: &str) -> Result<Filter, ParseError> {
        parse_filter_with(input, &Limits::default(), Syntax::LENIENT)
    }

    #[test]
    fn rfc_syntax_refuses_the_sub_attribute_after_a_value_filter() {
        let entra = r#"emails[type eq "work"].value eq "x@example.com""#;
        let e = parse_filter(entra, &Limits::default()).unwrap_err();
        assert_eq!(e.pos, 22, "{e}");
        assert!(e.message.contains("filter_value_path_sub"), "{e}");
        assert!(e.message.contains("only allowed in PATCH paths"), "{e}");
        assert_eq!(
            parse(entra).unwrap().to_string(),
            r#"emails[type eq "work" and value eq "x@example.com"]"#
        );
        // The RFC form means the same under either syntax.
        let rfc = r#"emails[type eq "work" and value eq "x@example.com"]"#;
        assert_eq!(
            parse_filter(rfc, &Limits::default()).unwrap(),
            parse(entra).unwrap()
        );
    }

    fn ok(input: &str) -> Filter {
        match parse(input) {
            Ok(f) => f,
            Err(e) => panic!("{input:?} was rejected: {e}"),
        }
    }

    fn assert_round_trips(input: &str) {
        let first = ok(input);
        let text = first.to_string();
        let second = parse(&text)
            .unwrap_or_else(|e| panic!("canonical {text:?} of {input:?} was rejected: {e}"));
        assert_eq!(first, second, "round trip of {input:?} via {text:?}");
        assert_eq!(text, second.to_string(), "canonical text is a fixed point");
    }

    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    /// RFC 7644 §3.4.2.2, Figure 2, every example in order (without the "filter=" prefix).
    fn rfc_examples() -> Vec<(&'static str, Filter)> {
        use CompOp::*;
        let last_modified = || ps("meta", "lastModified");
        let ts = || s("2011-05-13T04:42:34Z");
        let emails_either = || {
            or(
                cmp(p("emails"), Co, s("example.com")),
                cmp(ps("emails", "value"), Co, s("example.org")),
            )
        };
        let work_at_example = || {
            vp(
                p("emails"),
                and(
                    cmp(p("type"), Eq, s("work")),
                    cmp(p("value"), Co, s("@example.com")),
                ),
            )
        };
        vec![
            (
                r#"userName eq "bjensen""#,
                cmp(p("userName"), Eq, s("bjensen")),
            ),
            (
                r#"name.familyName co "O'Malley""#,
                cmp(ps("name", "familyName"), Co, s("O'Malley")),
            ),
            (r#"userName sw "J""#, cmp(p("userName"), Sw, s("J"))),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                cmp(pu(CORE_USER, "userName", None), Sw, s("J")),
            ),
            ("title pr", pr(p("title"))),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                cmp(last_modified(), Gt, ts()),
            ),
            (
                r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
                cmp(last_modified(), Ge, ts()),
            ),
            (
                r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
                cmp(last_modified(), Lt, ts()),
            ),
            (
                r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
                cmp(last_modified(), Le, ts()),
            ),
            (
                r#"title pr and userType eq "Employee""#,
                and(pr(p("title")), cmp(p("userType"), Eq, s("Employee"))),
            ),
            (
                r#"title pr or userType eq "Intern""#,
                or(pr(p("title")), cmp(p("userType"), Eq, s("Intern"))),
            ),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                cmp(p("schemas"), Eq, s(ENTERPRISE_USER)),
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                and(cmp(p("userType"), Eq, s("Employee")), emails_either()),
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                and(cmp(p("userType"), Ne, s("Employee")), not(emails_either())),
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                and(
                    cmp(p("userType"), Eq, s("Employee")),
                    cmp(ps("emails", "type"), Eq, s("work")),
                ),
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                and(cmp(p("userType"), Eq, s("Employee")), work_at_example()),
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                or(
                    work_at_example(),
                    vp(
                        p("ims"),
                        and(
                            cmp(p("type"), Eq, s("xmpp")),
                            cmp(p("value"), Co, s("@foo.com")),
                        ),
                    ),
                ),
            ),
        ]
    }

    /// Further valid filters: precedence, case, whitespace, literals, escapes, errata.
    fn other_valid() -> Vec<(&'static str, Filter)> {
        use CompOp::*;
        let n = CompValue::Num;
        let (a, b, c) = (|| p("a"), || p("b"), || p("c"));
        vec![
            // Clients' `attr[filter].sub op value` means `attr[filter and sub op value]`.
            (
                r#"emails[type eq "work"].value eq "x@example.com""#,
                vp(
                    p("emails"),
                    and(
                        cmp(p("type"), Eq, s("work")),
                        cmp(p("value"), Eq, s("x@example.com")),
                    ),
                ),
            ),
            // Precedence: not > and > or; left-associative.
            (
                "a eq 1 or b eq 2 and c eq 3",
                or(
                    cmp(a(), Eq, n(1.0)),
                    and(cmp(b(), Eq, n(2.0)), cmp(c(), Eq, n(3.0))),
                ),
            ),
            (
                "a eq 1 and b eq 2 or c eq 3",
                or(
                    and(cmp(a(), Eq, n(1.0)), cmp(b(), Eq, n(2.0))),
                    cmp(c(), Eq, n(3.0)),
                ),
            ),
            ("not (a pr) and b pr", and(not(pr(a())), pr(b()))),
            (
                "a pr and b pr and c pr",
                and(and(pr(a()), pr(b())), pr(c())),
            ),
            ("a pr or b pr or c pr", or(or(pr(a()), pr(b())), pr(c()))),
            (
                "a pr and (b pr and c pr)",
                and(pr(a()), and(pr(b()), pr(c()))),
            ),
            (
                "(a pr or b pr) and c pr",
                and(or(pr(a()), pr(b())), pr(c())),
            ),
            ("((a pr))", pr(a())),
            ("not (not (a pr))", not(not(pr(a())))),
            // Case-insensitive operators and keywords (RFC 7644 §3.4.2.2).
            (r#"userName EQ "x""#, cmp(p("userName"), Eq, s("x"))),
            ("title PR", pr(p("title"))),
            (
                "a eq 1 AND b eq 2",
                and(cmp(a(), Eq, n(1.0)), cmp(b(), Eq, n(2.0))),
            ),
            ("a Pr Or b pR", or(pr(a()), pr(b()))),
            ("NOT (a pr)", not(pr(a()))),
            ("a eq TRUE or b eq False or c eq NULL", {
                or(
                    or(
                        cmp(a(), Eq, CompValue::Bool(true)),
                        cmp(b(), Eq, CompValue::Bool(false)),
                    ),
                    cmp(c(), Eq, CompValue::Null),
                )
            }),
            // Whitespace variations; no space before "(" (EID 7319) or "[".
            ("  a   pr   and\tb  pr  ", and(pr(a()), pr(b()))),
            ("not(a pr)", not(pr(a()))),
            ("( a pr )", pr(a())),
            (
                r#"emails[ type eq "work" ]"#,
                vp(p("emails"), cmp(p("type"), Eq, s("work"))),
            ),
            // Literals: RFC 7159 numbers, true/false/null.
            ("a eq -1.5e3", cmp(a(), Eq, n(-1500.0))),
            ("a gt 0", cmp(a(), Gt, n(0.0))),
            ("a le 1E+2", cmp(a(), Le, n(100.0))),
            ("a lt 2.5e-3", cmp(a(), Lt, n(0.0025))),
            (
                "a ge 12345678901234567890",
                cmp(a(), Ge, n(12_345_678_901_234_567_890.0)),
            ),
            ("a eq 1e300", cmp(a(), Eq, n(1e300))),
            ("a eq 0.1", cmp(a(), Eq, n(0.1))),
            ("a eq 1.0e-7", cmp(a(), Eq, n(1e-7))),
            (
                "active eq true",
                cmp(p("active"), Eq, CompValue::Bool(true)),
            ),
            (
                "active ne false",
                cmp(p("active"), Ne, CompValue::Bool(false)),
            ),
            ("title eq null", cmp(p("title"), Eq, CompValue::Null)),
            // String escapes (RFC 7159 §7).
            (r#"a eq "a\"b""#, cmp(a(), Eq, s("a\"b"))),
            (r#"a eq "\u00e9""#, cmp(a(), Eq, s("é"))),
            (r#"a eq "\uD83D\uDE00""#, cmp(a(), Eq, s("😀"))),
            (
                r#"a eq "\\ \/ \b \f \n \r \t""#,
                cmp(a(), Eq, s("\\ / \u{8} \u{c} \n \r \t")),
            ),
            (r#"a eq "é😀 and ) ] (""#, cmp(a(), Eq, s("é😀 and ) ] ("))),
            (r#"a eq """#, cmp(a(), Eq, s(""))),
            // Names: "$ref", digits/hyphens/underscores, URN with sub-attribute.
            (
                r#"members[$ref eq "https://example.com/v2/Users/1"]"#,
                vp(
                    p("members"),
                    cmp(p("$ref"), Eq, s("https://example.com/v2/Users/1")),
                ),
            ),
            ("manager.$ref pr", pr(ps("manager", "$ref"))),
            ("x-y_z9.a_1 pr", pr(ps("x-y_z9", "a_1"))),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                cmp(
                    pu(ENTERPRISE_USER, "manager", Some("value")),
                    Eq,
                    s("26118915-6090-4610-87e4-49d8ca9f808d"),
                ),
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "Jensen""#,
                cmp(pu(CORE_USER, "name", Some("familyName")), Eq, s("Jensen")),
            ),
            (
                "URN:Example:Schema:attr pr",
                pr(pu("URN:Example:Schema", "attr", None)),
            ),
            // Value filters: not, parentheses (EID 7322), sub-attributes.
            (
                r#"emails[type eq "work" or (type eq "home" and value ew "@example.com")]"#,
                vp(
                    p("emails"),
                    or(
                        cmp(p("type"), Eq, s("work")),
                        and(
                            cmp(p("type"), Eq, s("home")),
                            cmp(p("value"), Ew, s("@example.com")),
                        ),
                    ),
                ),
            ),
            (
                r#"emails[not (type eq "work")]"#,
                vp(p("emails"), not(cmp(p("type"), Eq, s("work")))),
            ),
            ("x[y.z pr]", vp(p("x"), pr(ps("y", "z")))),
            (
                r#"not (emails[type eq "work"]) or a pr"#,
                or(not(vp(p("emails"), cmp(p("type"), Eq, s("work")))), pr(a())),
            ),
        ]
    }

    #[test]
    fn rfc_examples_parse_to_the_expected_ast() {
        for (input, expected) in rfc_examples() {
            assert_eq!(ok(input), expected, "{input}");
        }
    }

    #[test]
    fn other_valid_filters_parse_to_the_expected_ast() {
        for (input, expected) in other_valid() {
            assert_eq!(ok(input), expected, "{input}");
        }
    }

    #[test]
    fn every_valid_filter_round_trips_through_display() {
        for (input, _) in rfc_examples().into_iter().chain(other_valid()) {
            assert_round_trips(input);
        }
    }

    #[test]
    fn display_is_canonical() {
        let cases = [
            ("userName EQ \"x\"", "userName eq \"x\""),
            ("a pr AND  b pr  OR c pr", "a pr and b pr or c pr"),
            ("a pr or b pr and c pr", "a pr or b pr and c pr"),
            ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("((a pr))", "a pr"),
            ("not(a pr)", "not (a pr)"),
            ("a eq -1.5e3", "a eq -1500"),
            ("a eq 1.0", "a eq 1"),
            ("a eq 0.5", "a eq 0.5"),
            ("a eq 1e300", "a eq 1e300"),
            ("a eq 1.5E-7", "a eq 1.5e-7"),
            ("a eq TRUE", "a eq true"),
            ("a eq Null", "a eq null"),
            (r#"a eq "\u00e9\/\u0001""#, r#"a eq "é/\u0001""#),
            (r#"a eq "q\"b\\s\n""#, r#"a eq "q\"b\\s\n""#),
            (r#"emails[ type eq "work" ]"#, r#"emails[type eq "work"]"#),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName pr",
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName pr",
            ),
        ];
        for (input, canonical) in cases {
            assert_eq!(ok(input).to_string(), canonical, "{input}");
        }
        assert_eq!(CompOp::Le.as_str(), "le");
        assert_eq!(CompOp::Co.to_string(), "co");
    }

    /// (input, expected position, expected fragment of the message)
    fn filter_errors() -> Vec<(String, usize, &'static str)> {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("", 0, "empty filter"),
            ("   ", 0, "empty filter"),
            // Operators and values.
            ("userName", 8, "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \"userName\", found the end of the filter"),
            ("userName \"x\"", 9, "comparison operator"),
            ("userName like \"x\"", 9, "after \"userName\", found \"like\""),
            ("userName eq", 11, "expected a value"),
            ("userName eq bjensen", 12, "found \"bjensen\" (strings must be in double quotes)"),
            ("userName eq )", 12, "expected a value"),
            ("a eq 01", 5, "invalid number \"01\""),
            ("a eq 1.", 5, "invalid number"),
            ("a eq .5", 5, "expected a value"),
            ("a eq +1", 5, "expected a value"),
            ("a eq -", 5, "invalid number"),
            ("a eq 1e", 5, "invalid number"),
            ("a eq 1e999", 5, "out of range"),
            ("a eq 1,", 5, "invalid number"),
            ("a eq truex", 5, "expected a value"),
            // Strings.
            ("userName eq \"bjensen", 12, "unterminated string"),
            ("a eq \"x\\", 5, "unterminated string"),
            ("a eq \"\\x\"", 6, "invalid escape \"\\x\""),
            ("a eq \"\\u00g1\"", 6, "4 hexadecimal digits"),
            ("a eq \"\\u12\"", 6, "4 hexadecimal digits"),
            ("a eq \"\\uD83D\"", 6, "unpaired UTF-16 surrogate"),
            ("a eq \"\\uD83Dx\"", 6, "unpaired UTF-16 surrogate"),
            ("a eq \"\\uD83D\\u0041\"", 6, "unpaired UTF-16 surrogate"),
            ("a eq \"\\uDE00\"", 6, "unpaired UTF-16 surrogate"),
            ("a eq \"x\ny\"", 7, "control character U+000A"),
            // Parentheses and brackets.
            ("(a pr", 5, "unbalanced parenthesis: the \"(\" at position 0 is never closed"),
            ("a pr)", 4, "unbalanced parenthesis: \")\" has no matching \"(\""),
            ("((a pr)", 7, "the \"(\" at position 0 is never closed"),
            ("()", 1, "empty parentheses"),
            (")", 0, "unexpected \")\""),
            ("a pr]", 4, "unexpected \"]\""),
            ("]", 0, "unexpected \"]\""),
            ("(a pr]", 5, "expected \")\" to close the \"(\" at position 0"),
            ("emails[type pr)", 14, "expected \"]\" to close the \"[\" at position 6"),
            ("emails[type pr", 14, "the \"[\" at position 6 is never closed"),
            ("emails[]", 7, "empty value filter"),
            ("[a pr]", 0, "unexpected \"[\""),
            ("a pr [", 5, "trailing input"),
            ("emails[type eq \"work\"].value", 28, "expected a comparison operator"),
            ("emails[a[b pr]]", 8, "cannot be nested"),
            ("name.givenName[a pr]", 14, "not the sub-attribute \"name.givenName\""),
            // not.
            ("not a pr", 4, "expected \"(\" after \"not\""),
            ("not", 3, "expected \"(\" after \"not\", found the end of the filter"),
            ("a pr and not", 12, "expected \"(\" after \"not\""),
            // and / or / trailing input.
            ("a pr and", 8, "unexpected end of the filter"),
            ("a pr or ()", 9, "empty parentheses"),
            ("a pr b pr", 5, "trailing input: expected \"and\", \"or\" or the end of the filter, found \"b\""),
            ("title pr \"x\"", 9, "trailing input"),
            ("(a pr b pr)", 6, "expected \"and\", \"or\" or \")\""),
            ("a eq 1 andb eq 2", 7, "trailing input"),
            ("\"x\" eq a", 0, "found a string"),
            // Attribute names.
            (".foo pr", 0, "expected an attribute name, found \".\""),
            ("a..b pr", 2, "expected a sub-attribute name after \".\", found \".\""),
            ("a. pr", 2, "expected a sub-attribute name"),
            ("a.b.c pr", 3, "at most one sub-attribute"),
            ("1abc pr", 0, "names start with a letter"),
            ("user@name pr", 4, "invalid character \"@\""),
            ("foo:bar pr", 3, "must start with \"urn:\""),
            ("urn:x: pr", 6, "expected an attribute name after the schema URN"),
            ("urn:a b:c pr", 6, "comparison operator"),
            ("urn:x{y:a pr", 5, "invalid character \"{\" in schema URN"),
            ("$ pr", 0, "names start with a letter"),
        ];
        cases
            .into_iter()
            .map(|(i, pos, msg)| (i.to_string(), pos, msg))
            .collect()
    }

    /// `input` was refused at `pos` with a message containing `fragment`.
    fn refused<T: std::fmt::Debug>(
        input: &str,
        r: Result<T, ParseError>,
        pos: usize,
        fragment: &str,
    ) {
        match r {
            Ok(v) => panic!("{input:?} was accepted as {v:?}"),
            Err(e) => {
                assert_eq!(e.pos, pos, "position for {input:?}: {e}");
                assert!(
                    e.message.contains(fragment),
                    "message for {input:?} is {:?}, expected it to contain {fragment:?}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn filter_errors_have_positions_and_messages() {
        for (input, pos, fragment) in filter_errors() {
            refused(&input, parse(&input), pos, fragment);
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let e = parse("a eq \"é😀\" b pr").unwrap_err();
        assert_eq!(e.pos, 10);
    }

    #[test]
    fn parse_error_display() {
        let e = parse("userName \"bjensen\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at position 9: expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) \
             after \"userName\", found a string"
        );
    }

    #[test]
    fn length_limit() {
        let limits = Limits {
            max_len: 10,
            ..Limits::default()
        };
        assert!(parse_filter("abcde pr", &limits).is_ok());
        assert!(parse_filter("abcdefg pr", &limits).is_ok()); // exactly 10
        let e = parse_filter("abcdefgh pr", &limits).unwrap_err();
        assert_eq!(e.pos, 10);
        assert!(e.message.contains("too long"), "{e}");
        // Characters, not bytes: ten two-byte characters fit.
        assert!(parse_filter("a eq \"éé\"", &limits).is_ok());
        let e = parse_path("abcdefghijk", &limits).unwrap_err();
        assert_eq!(e.pos, 10);
        let long = format!("a eq \"{}\"", "x".repeat(5000));
        assert_eq!(parse(&long).unwrap_err().pos, 4096);
    }

    #[test]
    fn depth_limit() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert!(parse_filter("(((a pr)))", &limits).is_ok());
        let e = parse_filter("((((a pr))))", &limits).unwrap_err();
        assert_eq!(e.pos, 3);
        assert!(e.message.contains("nested too deeply"), "{e}");
        // `not` and its parentheses count one level each; so does a value filter.
        assert!(parse_filter("not ((a pr))", &limits).is_ok());
        assert_eq!(parse_filter("not (((a pr)))", &limits).unwrap_err().pos, 6);
        assert!(parse_filter("((x[a pr]))", &limits).is_ok());
        assert_eq!(parse_filter("(((x[a pr])))", &limits).unwrap_err().pos, 4);
        // Default: 32 levels.
        let ok32 = format!("{}a pr{}", "(".repeat(32), ")".repeat(32));
        assert!(parse(&ok32).is_ok());
        let too_deep = format!("{}a pr{}", "(".repeat(33), ")".repeat(33));
        assert_eq!(parse(&too_deep).unwrap_err().pos, 32);
    }

    #[test]
    fn hundred_thousand_parentheses_do_not_overflow_the_stack() {
        let generous = Limits {
            max_len: 1_000_000,
            ..Limits::default()
        };
        let input = "(".repeat(100_000);
        let e = parse_filter(&input, &generous).unwrap_err();
        assert_eq!(e.pos, 32);
        let nots = "not (".repeat(100_000);
        assert!(parse_filter(&nots, &generous).is_err());

        // Even an unlimited max_depth is capped internally.
        let unlimited = Limits {
            max_len: usize::MAX,
            max_depth: usize::MAX,
            max_terms: usize::MAX,
        };
        let e = parse_filter(&input, &unlimited).unwrap_err();
        assert_eq!(e.pos, HARD_MAX_DEPTH);
        let e = parse_path(&format!("a[{input}"), &unlimited).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e}");
        // The default length limit stops it before any parsing.
        assert_eq!(parse(&input).unwrap_err().pos, 4096);
    }

    #[test]
    fn term_limit() {
        let chain = |n: usize| {
            (0..n)
                .map(|i| format!("a{i} pr"))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        assert!(parse(&chain(100)).is_ok());
        let input = chain(101);
        let e = parse(&input).unwrap_err();
        let start_of_101st = input.rfind("a100").unwrap_or_default();
        assert_eq!(e.pos, start_of_101st);
        assert!(e.message.contains("too many terms"), "{e}");

        let limits = Limits {
            max_terms: 2,
            ..Limits::default()
        };
        assert!(parse_filter("x[a eq 1 or b pr]", &limits).is_ok());
        assert_eq!(
            parse_filter("x[a eq 1 or b pr] or c eq 2", &limits)
                .unwrap_err()
                .pos,
            21
        );
        assert!(parse_path("x[a eq 1 and b eq 2 and c eq 3].y", &limits).is_err());
    }

    #[test]
    fn long_and_chains_round_trip_within_the_depth_limit() {
        let input = (0..100)
            .map(|i| format!("a{i} eq {i}"))
            .collect::<Vec<_>>()
            .join(" or ");
        assert_round_trips(&input);
        assert_eq!(ok(&input).to_string(), input);
    }

    // ----- PATCH paths (RFC 7644 §3.5.2) ---------------------------------------------------------

    /// `attr[filter]` or `attr[filter].sub`.
    fn vpath(attr: AttrPath, filter: Filter, sub: Option<&str>) -> PatchPath {
        PatchPath::ValuePath {
            attr,
            filter,
            sub: sub.map(str::to_string),
        }
    }

    fn path_ok(input: &str) -> PatchPath {
        match parse_path(input, &Limits::default()) {
            Ok(p) => p,
            Err(e) => panic!("path {input:?} was rejected: {e}"),
        }
    }

    #[test]
    fn patch_paths_from_rfc_7644() {
        use CompOp::*;
        let member = "2819c223-7f76-453a-919d-413861904646";
        let cases = vec![
            ("members", PatchPath::Attr(p("members"))),
            ("name.familyName", PatchPath::Attr(ps("name", "familyName"))),
            (
                r#"addresses[type eq "work"]"#,
                vpath(p("addresses"), cmp(p("type"), Eq, s("work")), None),
            ),
            (
                r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
                vpath(p("members"), cmp(p("value"), Eq, s(member)), None),
            ),
            (
                r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#,
                vpath(
                    p("members"),
                    cmp(p("value"), Eq, s(member)),
                    Some("displayName"),
                ),
            ),
            (
                r#"emails[type eq "work" and value ew "example.com"]"#,
                vpath(
                    p("emails"),
                    and(
                        cmp(p("type"), Eq, s("work")),
                        cmp(p("value"), Ew, s("example.com")),
                    ),
                    None,
                ),
            ),
            (
                r#"emails[type eq "work"].value"#,
                vpath(p("emails"), cmp(p("type"), Eq, s("work")), Some("value")),
            ),
            (
                r#"addresses[type eq "work"].streetAddress"#,
                vpath(
                    p("addresses"),
                    cmp(p("type"), Eq, s("work")),
                    Some("streetAddress"),
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                PatchPath::Attr(pu(ENTERPRISE_USER, "manager", None)),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                PatchPath::Attr(pu(ENTERPRISE_USER, "manager", Some("value"))),
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"].value"#,
                vpath(
                    pu(CORE_USER, "emails", None),
                    cmp(p("type"), Eq, s("work")),
                    Some("value"),
                ),
            ),
            (
                r#"members[value eq "x"].displayName"#,
                vpath(
                    p("members"),
                    cmp(p("value"), Eq, s("x")),
                    Some("displayName"),
                ),
            ),
            (
                "members[$ref pr].$ref",
                vpath(p("members"), pr(p("$ref")), Some("$ref")),
            ),
            (
                // The caller decides whether this is a whole schema URN.
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                PatchPath::Attr(pu(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0",
                    "User",
                    None,
                )),
            ),
        ];
        for (input, expected) in cases {
            let parsed = path_ok(input);
            assert_eq!(parsed, expected, "{input}");
            // Round trip through Display.
            assert_eq!(path_ok(&parsed.to_string()), parsed, "{input}");
        }
        assert_eq!(
            path_ok(r#"emails[type EQ "work"].value"#).to_string(),
            r#"emails[type eq "work"].value"#
        );
    }

    #[test]
    fn patch_path_errors() {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("", 0, "empty path"),
            ("  ", 0, "empty path"),
            (
                r#"emails[type eq "work""#,
                21,
                "the \"[\" at position 6 is never closed",
            ),
            ("emails[]", 7, "empty value filter"),
            (".foo", 0, "expected an attribute name, found \".\""),
            ("a..b", 2, "expected a sub-attribute name after \".\""),
            ("a.b.c", 3, "at most one sub-attribute"),
            (
                r#"emails[type eq "work"]x"#,
                22,
                "trailing input: expected \".\" and a sub-attribute name",
            ),
            (
                r#"emails[type eq "work"]."#,
                23,
                "expected a sub-attribute name after \"].\"",
            ),
            (
                r#"emails[type eq "work"].value.x"#,
                28,
                "at most one sub-attribute",
            ),
            (
                r#"emails[type eq "work"] .value"#,
                23,
                "at most one sub-attribute",
            ),
            (
                r#"emails[type eq "work"].value[x pr]"#,
                28,
                "trailing input: expected the end of the path",
            ),
            (r#"name.givenName[a pr]"#, 14, "not the sub-attribute"),
            (r#"emails[a[b pr]]"#, 8, "cannot be nested"),
            (r#"emails[type eq "work"]]"#, 22, "trailing input"),
            (
                "userName eq \"x\"",
                9,
                "trailing input: expected the end of the path, found \"eq\"",
            ),
            ("(a)", 0, "expected an attribute path, found \"(\""),
            ("[a pr]", 0, "expected an attribute path"),
            ("1a", 0, "names start with a letter"),
            (
                "emails[type eq work]",
                15,
                "strings must be in double quotes",
            ),
        ];
        for (input, pos, fragment) in cases {
            refused(input, parse_path(input, &Limits::default()), pos, fragment);
        }
    }

    #[test]
    fn patch_path_limits() {
        let limits = Limits {
            max_depth: 1,
            ..Limits::default()
        };
        assert!(parse_path("x[a pr].y", &limits).is_ok());
        assert_eq!(parse_path("x[(a pr)].y", &limits).unwrap_err().pos, 2);
    }
}
