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

use std::fmt::{self, Write as _};

/// An absolute ceiling on nesting depth, applied whatever [`Limits::max_depth`] says, so that the
/// recursive-descent parser can never exhaust the stack.
const HARD_MAX_DEPTH: usize = 128;

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

/// Parses a `filter` query parameter (RFC 7644 §3.4.2.2), by the RFC grammar alone.
pub fn parse_filter(input: &str, limits: &Limits) -> Result<Filter, ParseError> {
    parse_filter_with(input, limits, Syntax::RFC)
}

/// Parses a `filter` query parameter (RFC 7644 §3.4.2.2), also accepting the client forms
/// `syntax` allows.
pub fn parse_filter_with(
    input: &str,
    limits: &Limits,
    syntax: Syntax,
) -> Result<Filter, ParseError> {
    let mut p = Parser::new(input, limits, Mode::Filter)?;
    p.syntax = syntax;
    p.skip_ws();
    if p.at_end() {
        return Err(ParseError::new(0, "empty filter"));
    }
    let filter = p.parse_or(false)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.unexpected_after_expr(Closer::End));
    }
    Ok(filter)
}

/// Parses a PATCH operation `path` (RFC 7644 §3.5.2).
pub fn parse_path(input: &str, limits: &Limits) -> Result<PatchPath, ParseError> {
    let mut p = Parser::new(input, limits, Mode::Path)?;
    p.skip_ws();
    match p.peek() {
        None => return Err(ParseError::new(0, "empty path")),
        Some(c) if !is_word_char(c) => {
            return Err(ParseError::new(
                p.pos,
                format!("expected an attribute path, found {}", p.describe_at(p.pos)),
            ))
        }
        Some(_) => {}
    }
    // RFC 7644 §3.5.2, Figure 7: PATH = attrPath / valuePath [subAttr]
    let attr = p.parse_attr_path()?;
    p.skip_ws();
    let path = if p.peek() == Some('[') {
        let (attr, filter) = p.parse_value_filter(attr, false)?;
        // valuePath [subAttr]: the "." must follow "]" directly.
        let sub = if p.peek() == Some('.') {
            p.pos += 1;
            let (name, end) = p.scan_name(p.pos, "a sub-attribute name after \"].\"")?;
            p.pos = end;
            Some(name)
        } else {
            None
        };
        PatchPath::ValuePath { attr, filter, sub }
    } else {
        PatchPath::Attr(attr)
    };
    p.skip_ws();
    match p.peek() {
        None => Ok(path),
        Some('.') => Err(ParseError::new(
            p.pos,
            "unexpected \".\": a path has at most one sub-attribute, written directly after the \
             attribute name or the closing \"]\"",
        )),
        Some(_) => {
            let expected = match path {
                PatchPath::ValuePath { sub: None, .. } => {
                    "\".\" and a sub-attribute name or the end of the path"
                }
                _ => "the end of the path",
            };
            Err(ParseError::new(
                p.pos,
                format!(
                    "trailing input: expected {expected}, found {}",
                    p.describe_at(p.pos)
                ),
            ))
        }
    }
}

/// What is being parsed; changes the wording of messages and one filter-only rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Filter,
    Path,
}

impl Mode {
    fn noun(self) -> &'static str {
        match self {
            Mode::Filter => "filter",
            Mode::Path => "path",
        }
    }
}

/// What may legitimately follow a complete expression.
#[derive(Debug, Clone, Copy)]
enum Closer {
    End,
    Paren(usize),
    Bracket(usize),
}

/// Characters that end a bare word (attribute path, keyword, operator, number, literal).
fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '"')
}

// RFC 7644 §3.4.2.2: nameChar = "-" / "_" / DIGIT / ALPHA
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

// RFC 8141 §2: characters that may appear in a URN (pchar, "/", "%"-escapes). "(" and ")" are
// legal in URNs but end a word here; SCIM schema URNs never contain them.
fn is_urn_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$&'*+,;=:@/".contains(c)
}

const EXPECTED_EXPR: &str = "an attribute path, \"(\" or \"not\"";
const EXPECTED_OP: &str = "a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)";
const EXPECTED_VALUE: &str = "a value (a \"quoted string\", a number, true, false or null)";

struct Parser<'l> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    terms: usize,
    limits: &'l Limits,
    mode: Mode,
    syntax: Syntax,
}

impl<'l> Parser<'l> {
    fn new(input: &str, limits: &'l Limits, mode: Mode) -> Result<Self, ParseError> {
        // Limits: refuse over-long input before doing any other work.
        if input.chars().nth(limits.max_len).is_some() {
            return Err(ParseError::new(
                limits.max_len,
                format!(
                    "the {} is too long (more than {} characters)",
                    mode.noun(),
                    limits.max_len
                ),
            ));
        }
        Ok(Parser {
            chars: input.chars().collect(),
            pos: 0,
            depth: 0,
            terms: 0,
            limits,
            mode,
            syntax: Syntax::RFC,
        })
    }

    // ----- low-level scanning -------------------------------------------------------------

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    // RFC 7644 §3.4.2.2 separates tokens with SP; any run of whitespace is accepted.
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn word_end(&self, from: usize) -> usize {
        let mut i = from;
        while self.chars.get(i).is_some_and(|&c| is_word_char(c)) {
            i += 1;
        }
        i
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// Consumes the bare word at the cursor if it equals `keyword`, ignoring ASCII case.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let end = self.word_end(self.pos);
        if self.text(self.pos, end).eq_ignore_ascii_case(keyword) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// A short, quoted description of what is at `pos`, for error messages.
    fn describe_at(&self, pos: usize) -> String {
        const MAX_SHOWN: usize = 40;
        match self.chars.get(pos) {
            None => format!("the end of the {}", self.mode.noun()),
            Some('"') => "a string".to_string(),
            Some(c) if c.is_whitespace() => "whitespace".to_string(),
            Some(&c) if !is_word_char(c) => format!("\"{c}\""),
            Some(_) => {
                let end = self.word_end(pos);
                if end - pos > MAX_SHOWN {
                    format!("\"{}...\"", self.text(pos, pos + MAX_SHOWN))
                } else {
                    format!("\"{}\"", self.text(pos, end))
                }
            }
        }
    }

    // ----- limits --------------------------------------------------------------------------

    /// Enters one nesting level (parenthesis, `not` or value filter), checked before recursing.
    fn enter(&mut self, pos: usize) -> Result<(), ParseError> {
        let max = self.limits.max_depth.min(HARD_MAX_DEPTH);
        if self.depth >= max {
            return Err(ParseError::new(
                pos,
                format!(
                    "the {} is nested too deeply (at most {max} levels of parentheses, \"not\" \
                     and \"[...]\")",
                    self.mode.noun()
                ),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn count_term(&mut self, pos: usize) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > self.limits.max_terms {
            return Err(ParseError::new(
                pos,
                format!(
                    "the {} has too many terms (at most {} comparisons or presence tests)",
                    self.mode.noun(),
                    self.limits.max_terms
                ),
            ));
        }
        Ok(())
    }

    // ----- FILTER ---------------------------------------------------------------------------

    // RFC 7644 §3.4.2.2: logExp = FILTER SP ("and" / "or") SP FILTER; precedence (Table 5 and
    // the text after it): "not" binds tighter than "and", which binds tighter than "or"; both are
    // left-associative.
    fn parse_or(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        let mut left = self.parse_and(in_value_filter)?;
        loop {
            self.skip_ws();
            if !self.eat_keyword("or") {
                return Ok(left);
            }
            let right = self.parse_and(in_value_filter)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
    }

    fn parse_and(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        let mut left = self.parse_factor(in_value_filter)?;
        loop {
            self.skip_ws();
            if !self.eat_keyword("and") {
                return Ok(left);
            }
            let right = self.parse_factor(in_value_filter)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    /// attrExp / valuePath / `not (` FILTER `)` / `(` FILTER `)`.
    fn parse_factor(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(ParseError::new(
                start,
                format!(
                    "unexpected end of the {}: expected {EXPECTED_EXPR}",
                    self.mode.noun()
                ),
            )),
            Some('(') => self.parse_group(in_value_filter),
            Some('"') => Err(ParseError::new(
                start,
                format!("expected {EXPECTED_EXPR}, found a string"),
            )),
            Some(c) if !is_word_char(c) => Err(ParseError::new(
                start,
                format!("unexpected \"{c}\": expected {EXPECTED_EXPR}"),
            )),
            Some(_) => {
                if self.eat_keyword("not") {
                    // RFC 7644 §3.4.2.2: *1"not" "(" FILTER ")" -- `not` always takes a
                    // parenthesised operand (EID 7319: a space before "(" is allowed).
                    self.skip_ws();
                    if self.peek() != Some('(') {
                        return Err(ParseError::new(
                            self.pos,
                            format!(
                                "expected \"(\" after \"not\", found {} (write: not (filter))",
                                self.describe_at(self.pos)
                            ),
                        ));
                    }
                    self.enter(start)?;
                    let inner = self.parse_group(in_value_filter)?;
                    self.leave();
                    return Ok(Filter::Not(Box::new(inner)));
                }
                let path = self.parse_attr_path()?;
                self.skip_ws();
                if self.peek() == Some('[') {
                    // RFC 7644 §3.4.2.2: valuePath = attrPath "[" valFilter "]"
                    let (path, inner) = self.parse_value_filter(path, in_value_filter)?;
                    if self.mode == Mode::Filter
                        && self.syntax.value_path_sub
                        && self.peek() == Some('.')
                    {
                        return self.parse_value_path_sub(path, inner);
                    }
                    return Ok(Filter::ValuePath(path, Box::new(inner)));
                }
                self.parse_attr_exp(path, start)
            }
        }
    }

    /// `emails[type eq "work"].value eq "x"`, with the cursor on the `.`: not in the RFC 7644
    /// ABNF, but clients send it (Entra ID); it means `emails[type eq "work" and value eq
    /// "x"]` and parses to exactly that. Kept out of `parse_factor` so the recursive frames
    /// stay small.
    #[inline(never)]
    fn parse_value_path_sub(
        &mut self,
        path: AttrPath,
        inner: Filter,
    ) -> Result<Filter, ParseError> {
        let (sub, end) = self.scan_name(self.pos + 1, "a sub-attribute name after \".\"")?;
        self.pos = end;
        self.skip_ws();
        let sub_start = self.pos;
        let leaf = self.parse_attr_exp(
            AttrPath {
                urn: None,
                attr: sub,
                sub: None,
            },
            sub_start,
        )?;
        Ok(Filter::ValuePath(
            path,
            Box::new(Filter::And(Box::new(inner), Box::new(leaf))),
        ))
    }

    /// `(` FILTER `)`, with the cursor on the `(`.
    fn parse_group(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(')') {
            return Err(ParseError::new(self.pos, "empty parentheses \"()\""));
        }
        let inner = self.parse_or(in_value_filter)?;
        self.skip_ws();
        match self.peek() {
            Some(')') => {
                self.pos += 1;
                self.leave();
                Ok(inner)
            }
            None => Err(ParseError::new(
                self.pos,
                format!("unbalanced parenthesis: the \"(\" at position {open} is never closed"),
            )),
            Some(_) => Err(self.unexpected_after_expr(Closer::Paren(open))),
        }
    }

    /// `[` valFilter `]` after `path`, with the cursor on the `[`.
    fn parse_value_filter(
        &mut self,
        path: AttrPath,
        in_value_filter: bool,
    ) -> Result<(AttrPath, Filter), ParseError> {
        let open = self.pos;
        // RFC 7644 EID 4690: value paths may not be nested.
        if in_value_filter {
            return Err(ParseError::new(
                open,
                "unexpected \"[\": value filters cannot be nested",
            ));
        }
        // valuePath = attrPath "[" valFilter "]" -- the filter selects values of a multi-valued
        // attribute, so it cannot follow a sub-attribute.
        if path.sub.is_some() {
            return Err(ParseError::new(
                open,
                format!(
                    "unexpected \"[\": a value filter must follow an attribute, not the \
                     sub-attribute \"{path}\""
                ),
            ));
        }
        self.enter(open)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(']') {
            return Err(ParseError::new(self.pos, "empty value filter \"[]\""));
        }
        let inner = self.parse_or(true)?;
        self.skip_ws();
        match self.peek() {
            Some(']') => {
                self.pos += 1;
                self.leave();
                Ok((path, inner))
            }
            None => Err(ParseError::new(
                self.pos,
                format!("unbalanced bracket: the \"[\" at position {open} is never closed"),
            )),
            Some(_) => Err(self.unexpected_after_expr(Closer::Bracket(open))),
        }
    }

    // RFC 7644 §3.4.2.2: attrExp = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
    fn parse_attr_exp(&mut self, path: AttrPath, start: usize) -> Result<Filter, ParseError> {
        let op_start = self.pos;
        let op_end = self.word_end(op_start);
        let word = self.text(op_start, op_end);
        if word.eq_ignore_ascii_case("pr") {
            self.pos = op_end;
            self.count_term(start)?;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompOp::from_keyword(&word) else {
            return Err(ParseError::new(
                op_start,
                format!(
                    "expected {EXPECTED_OP} after \"{path}\", found {}",
                    self.describe_at(op_start)
                ),
            ));
        };
        self.pos = op_end;
        self.count_term(start)?;
        self.skip_ws();
        let value = self.parse_value(op)?;
        Ok(Filter::Compare(path, op, value))
    }

    // RFC 7644 §3.4.2.2: compValue = false / null / true / number / string (RFC 7159 rules).
    fn parse_value(&mut self, op: CompOp) -> Result<CompValue, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('"') => return self.parse_string().map(CompValue::Str),
            Some(c) if is_word_char(c) => {}
            _ => {
                return Err(ParseError::new(
                    start,
                    format!(
                        "expected {EXPECTED_VALUE} after \"{op}\", found {}",
                        self.describe_at(start)
                    ),
                ))
            }
        }
        let end = self.word_end(start);
        let word = self.text(start, end);
        let value = if word.eq_ignore_ascii_case("true") {
            CompValue::Bool(true)
        } else if word.eq_ignore_ascii_case("false") {
            CompValue::Bool(false)
        } else if word.eq_ignore_ascii_case("null") {
            CompValue::Null
        } else if word.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            let n = parse_json_number(&word).map_err(|why| {
                ParseError::new(start, format!("invalid number \"{word}\": {why}"))
            })?;
            CompValue::Num(n)
        } else {
            return Err(ParseError::new(
                start,
                format!(
                    "expected {EXPECTED_VALUE} after \"{op}\", found \"{word}\" (strings must be \
                     in double quotes)"
                ),
            ));
        };
        self.pos = end;
        Ok(value)
    }

    // RFC 7159 §7: string = quotation-mark *char quotation-mark, with the escapes
    // \" \\ \/ \b \f \n \r \t \uXXXX (UTF-16 surrogate pairs for characters beyond the BMP).
    fn parse_string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError::new(
                    open,
                    "unterminated string: no closing '\"' for the string starting here",
                ));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => out.push(self.parse_escape(open)?),
                c if u32::from(c) < 0x20 => {
                    return Err(ParseError::new(
                        self.pos,
                        format!(
                            "control character U+{:04X} must be escaped in a string",
                            u32::from(c)
                        ),
                    ))
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// One escape sequence, with the cursor on the backslash; leaves the cursor after it.
    fn parse_escape(&mut self, open: usize) -> Result<char, ParseError> {
        let esc = self.pos;
        self.pos += 1;
        let simple = match self.peek() {
            None => {
                return Err(ParseError::new(
                    open,
                    "unterminated string: no closing '\"' for the string starting here",
                ))
            }
            Some('"') => '"',
            Some('\\') => '\\',
            Some('/') => '/',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                self.pos += 1;
                return self.parse_unicode_escape(esc);
            }
            Some(other) => {
                return Err(ParseError::new(
                    esc,
                    format!(
                        "invalid escape \"\\{other}\" in string (allowed: \\\" \\\\ \\/ \\b \\f \
                         \\n \\r \\t \\uXXXX)"
                    ),
                ))
            }
        };
        self.pos += 1;
        Ok(simple)
    }

    /// The rest of `\uXXXX` (cursor after the `u`), joining a surrogate pair if there is one.
    fn parse_unicode_escape(&mut self, esc: usize) -> Result<char, ParseError> {
        let unpaired = || {
            ParseError::new(
                esc,
                "unpaired UTF-16 surrogate: \\uD800-\\uDBFF must be followed by \\uDC00-\\uDFFF",
            )
        };
        let first = self.read_hex4(esc)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.peek() != Some('\\') || self.chars.get(self.pos + 1) != Some(&'u') {
                return Err(unpaired());
            }
            let second_esc = self.pos;
            self.pos += 2;
            let second = self.read_hex4(second_esc)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(unpaired());
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else if (0xDC00..0xE000).contains(&first) {
            return Err(unpaired());
        } else if first == 0 {
            // No stored value can contain U+0000 (Postgres text cannot hold it).
            return Err(ParseError::new(esc, "\\u0000 is not allowed in a value"));
        } else {
            first
        };
        char::from_u32(code).ok_or_else(unpaired)
    }

    fn read_hex4(&mut self, esc: usize) -> Result<u32, ParseError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                ParseError::new(
                    esc,
                    "invalid \\u escape: expected exactly 4 hexadecimal digits",
                )
            })?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    // RFC 7644 §3.4.2.2:
    //   attrPath = [URI ":"] ATTRNAME *1subAttr
    //   ATTRNAME = ALPHA *(nameChar)
    //   subAttr  = "." ATTRNAME
    // A name is URN-qualified when it starts with "urn:"; the URN is everything before the last
    // ":" (schema URNs such as "...:2.0:User" contain dots and colons, attribute names do not).
    fn parse_attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let end = self.word_end(start);
        let is_urn = self
            .text(start, (start + 4).min(end))
            .eq_ignore_ascii_case("urn:");
        let (urn, name_start) = if is_urn {
            let colon = (start..end)
                .rev()
                .find(|&i| self.chars.get(i) == Some(&':'))
                .unwrap_or(start + 3);
            if let Some(bad) =
                (start..colon).find(|&i| !self.chars.get(i).is_some_and(|&c| is_urn_char(c)))
            {
                return Err(ParseError::new(
                    bad,
                    format!(
                        "invalid character {} in schema URN",
                        self.describe_char(bad)
                    ),
                ));
            }
            (Some(self.text(start, colon)), colon + 1)
        } else {
            (None, start)
        };
        let what = if is_urn {
            "an attribute name after the schema URN"
        } else {
            "an attribute name"
        };
        let (attr, mut i) = self.scan_name(name_start, what)?;
        let mut sub = None;
        if self.chars.get(i) == Some(&'.') && i < end {
            let (name, next) = self.scan_name(i + 1, "a sub-attribute name after \".\"")?;
            sub = Some(name);
            i = next;
        }
        if i < end {
            let message = match self.chars.get(i) {
                Some('.') => "unexpected \".\": an attribute path has at most one sub-attribute \
                              (attribute.subAttribute)"
                    .to_string(),
                Some(':') => "unexpected \":\" in attribute name (a schema-qualified attribute \
                              must start with \"urn:\")"
                    .to_string(),
                _ => format!(
                    "invalid character {} in attribute name (allowed: letters, digits, \"-\" \
                     and \"_\")",
                    self.describe_char(i)
                ),
            };
            return Err(ParseError::new(i, message));
        }
        self.pos = end;
        Ok(AttrPath { urn, attr, sub })
    }

    /// ATTRNAME at `from`: ALPHA *(nameChar), or a `$`-prefixed name such as `$ref`
    /// (RFC 7643 §7 / §8.7.1 use "$ref" as a sub-attribute name). Returns the name and the
    /// index after it.
    fn scan_name(&self, from: usize, what: &str) -> Result<(String, usize), ParseError> {
        let mut i = from;
        match self.chars.get(i) {
            Some(c) if c.is_ascii_alphabetic() => i += 1,
            Some('$') if self.chars.get(i + 1).is_some_and(char::is_ascii_alphabetic) => i += 2,
            Some(&c) if is_word_char(c) => {
                return Err(ParseError::new(
                    i,
                    format!(
                        "expected {what}, found {} (names start with a letter)",
                        self.describe_char(i)
                    ),
                ))
            }
            _ => {
                return Err(ParseError::new(
                    i,
                    format!("expected {what}, found {}", self.describe_at(i)),
                ))
            }
        }
        while self.chars.get(i).is_some_and(|&c| is_name_char(c)) {
            i += 1;
        }
        Ok((self.text(from, i), i))
    }

    fn describe_char(&self, pos: usize) -> String {
        match self.chars.get(pos) {
            Some(c) => format!("\"{c}\""),
            None => format!("the end of the {}", self.mode.noun()),
        }
    }

    /// The error for something other than `and`/`or`/the expected closer after an expression.
    fn unexpected_after_expr(&self, closer: Closer) -> ParseError {
        let pos = self.pos;
        let c = self.peek();
        // RFC 7644 §3.4.2.2 vs §3.5.2: "attr[filter].sub" is PATH syntax only.
        if self.mode == Mode::Filter
            && c == Some('.')
            && pos > 0
            && self.chars.get(pos - 1) == Some(&']')
        {
            return ParseError::new(
                pos,
                "a sub-attribute after a value filter (\"attr[...].sub\") is only allowed in \
                 PATCH paths; in a filter, put the condition inside the brackets, e.g. \
                 emails[type eq \"work\" and value eq \"x\"] (the client form \
                 emails[type eq \"work\"].value eq \"x\" needs the `filter_value_path_sub` \
                 client-dialect tolerance, which is off)",
            );
        }
        let found = self.describe_at(pos);
        let message = match (c, closer) {
            (Some(')'), Closer::End) => {
                "unbalanced parenthesis: \")\" has no matching \"(\"".to_string()
            }
            (Some(']'), Closer::End) => "unexpected \"]\" with no matching \"[\"".to_string(),
            (Some(')'), Closer::Bracket(open)) => {
                format!("unexpected \")\": expected \"]\" to close the \"[\" at position {open}")
            }
            (Some(']'), Closer::Paren(open)) => {
                format!("unexpected \"]\": expected \")\" to close the \"(\" at position {open}")
            }
            (_, Closer::End) => format!(
                "trailing input: expected \"and\", \"or\" or the end of the {}, found {found}",
                self.mode.noun()
            ),
            (_, Closer::Paren(open)) => format!(
                "expected \"and\", \"or\" or \")\" (closing the \"(\" at position {open}), found \
                 {found}"
            ),
            (_, Closer::Bracket(open)) => format!(
                "expected \"and\", \"or\" or \"]\" (closing the \"[\" at position {open}), found \
                 {found}"
            ),
        };
        ParseError::new(pos, message)
    }
}

// RFC 7159 §6: number = [ minus ] int [ frac ] [ exp ]
fn parse_json_number(s: &str) -> Result<f64, &'static str> {
    const SYNTAX: &str = "numbers use JSON syntax, e.g. 42, -1.5 or 2e10";
    let b = s.as_bytes();
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_from(i),
        _ => return Err(SYNTAX),
    }
    if b.get(i) == Some(&b'.') {
        let end = digits_from(i + 1);
        if end == i + 1 {
            return Err(SYNTAX);
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits_from(i);
        if end == i {
            return Err(SYNTAX);
        }
        i = end;
    }
    if i != b.len() {
        return Err(SYNTAX);
    }
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err("out of range"),
    }
}

// ----- canonical text ------------------------------------------------------------------------

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

    #[test]
    fn filter_errors_have_positions_and_messages() {
        for (input, pos, fragment) in filter_errors() {
            match parse(&input) {
                Ok(f) => panic!("{input:?} was accepted as {f:?}"),
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
                PatchPath::ValuePath {
                    attr: p("addresses"),
                    filter: cmp(p("type"), Eq, s("work")),
                    sub: None,
                },
            ),
            (
                r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
                PatchPath::ValuePath {
                    attr: p("members"),
                    filter: cmp(p("value"), Eq, s(member)),
                    sub: None,
                },
            ),
            (
                r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#,
                PatchPath::ValuePath {
                    attr: p("members"),
                    filter: cmp(p("value"), Eq, s(member)),
                    sub: Some("displayName".to_string()),
                },
            ),
            (
                r#"emails[type eq "work" and value ew "example.com"]"#,
                PatchPath::ValuePath {
                    attr: p("emails"),
                    filter: and(
                        cmp(p("type"), Eq, s("work")),
                        cmp(p("value"), Ew, s("example.com")),
                    ),
                    sub: None,
                },
            ),
            (
                r#"emails[type eq "work"].value"#,
                PatchPath::ValuePath {
                    attr: p("emails"),
                    filter: cmp(p("type"), Eq, s("work")),
                    sub: Some("value".to_string()),
                },
            ),
            (
                r#"addresses[type eq "work"].streetAddress"#,
                PatchPath::ValuePath {
                    attr: p("addresses"),
                    filter: cmp(p("type"), Eq, s("work")),
                    sub: Some("streetAddress".to_string()),
                },
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
                PatchPath::ValuePath {
                    attr: pu(CORE_USER, "emails", None),
                    filter: cmp(p("type"), Eq, s("work")),
                    sub: Some("value".to_string()),
                },
            ),
            (
                r#"members[value eq "x"].displayName"#,
                PatchPath::ValuePath {
                    attr: p("members"),
                    filter: cmp(p("value"), Eq, s("x")),
                    sub: Some("displayName".to_string()),
                },
            ),
            (
                "members[$ref pr].$ref",
                PatchPath::ValuePath {
                    attr: p("members"),
                    filter: pr(p("$ref")),
                    sub: Some("$ref".to_string()),
                },
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
            match parse_path(input, &Limits::default()) {
                Ok(p) => panic!("path {input:?} was accepted as {p:?}"),
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
