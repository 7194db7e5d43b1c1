//! The canonical text of a filter and a path (`Display`): what cursors are bound to and what
//! error messages quote. Re-parsing the text gives back the same filter.

use std::fmt::{self, Write as _};

use super::{AttrPath, CompOp, CompValue, Filter, PatchPath};

impl fmt::Display for CompOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Num(n) => write_number(f, *n),
            CompValue::Str(s) => write_json_string(f, s),
        }
    }
}

/// Shortest text that parses back to the same `f64`, in JSON number syntax: plain notation
/// (whole numbers without ".0") for ordinary magnitudes, exponent notation otherwise.
/// Non-finite values cannot come from the parser and have no JSON form; they print as Rust does.
fn write_number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    let magnitude = n.abs();
    if !n.is_finite() || magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        write!(f, "{n}")
    } else {
        write!(f, "{n:e}")
    }
}

// RFC 7159 §7: quote, escape '"', '\' and control characters.
fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Binding strength for parenthesisation: or < and < everything else.
fn precedence(filter: &Filter) -> u8 {
    match filter {
        Filter::Or(..) => 1,
        Filter::And(..) => 2,
        _ => 3,
    }
}

/// Writes an operand of `and`/`or`, adding parentheses only where needed to keep the tree:
/// a weaker child always, and an equal-strength child on the right (both are left-associative).
fn write_operand(
    f: &mut fmt::Formatter<'_>,
    child: &Filter,
    parent: u8,
    right: bool,
) -> fmt::Result {
    let child_prec = precedence(child);
    if child_prec < parent || (right && child_prec == parent) {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(left, right) | Filter::Or(left, right) => {
                let prec = precedence(self);
                write_operand(f, left, prec, false)?;
                f.write_str(if prec == 1 { " or " } else { " and " })?;
                write_operand(f, right, prec, true)
            }
            Filter::ValuePath(path, inner) => write!(f, "{path}[{inner}]"),
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchPath::Attr(path) => write!(f, "{path}"),
            PatchPath::ValuePath { attr, filter, sub } => {
                write!(f, "{attr}[{filter}]")?;
                if let Some(sub) = sub {
                    write!(f, ".{sub}")?;
                }
                Ok(())
            }
        }
    }
}
