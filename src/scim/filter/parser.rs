//! The recursive-descent parser of filters and PATCH paths (RFC 7644 Figure 1, §3.5.2):
//! expressions, attribute paths and value filters. Literal values (strings, numbers) are
//! read in `values`.

use super::{AttrPath, CompOp, Filter, Limits, ParseError, PatchPath, Syntax, HARD_MAX_DEPTH};

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
pub(super) enum Mode {
    Filter,
    Path,
}

impl Mode {
    pub(super) fn noun(self) -> &'static str {
        match self {
            Mode::Filter => "filter",
            Mode::Path => "path",
        }
    }
}

/// What may legitimately follow a complete expression.
#[derive(Debug, Clone, Copy)]
pub(super) enum Closer {
    End,
    Paren(usize),
    Bracket(usize),
}

/// Characters that end a bare word (attribute path, keyword, operator, number, literal).
pub(super) fn is_word_char(c: char) -> bool {
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
pub(super) const EXPECTED_VALUE: &str =
    "a value (a \"quoted string\", a number, true, false or null)";

pub(super) struct Parser<'l> {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
    pub(super) depth: usize,
    pub(super) terms: usize,
    pub(super) limits: &'l Limits,
    pub(super) mode: Mode,
    pub(super) syntax: Syntax,
}

impl<'l> Parser<'l> {
    pub(super) fn new(input: &str, limits: &'l Limits, mode: Mode) -> Result<Self, ParseError> {
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

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    // RFC 7644 §3.4.2.2 separates tokens with SP; any run of whitespace is accepted.
    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    pub(super) fn word_end(&self, from: usize) -> usize {
        let mut i = from;
        while self.chars.get(i).is_some_and(|&c| is_word_char(c)) {
            i += 1;
        }
        i
    }

    pub(super) fn text(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// Consumes the bare word at the cursor if it equals `keyword`, ignoring ASCII case.
    pub(super) fn eat_keyword(&mut self, keyword: &str) -> bool {
        let end = self.word_end(self.pos);
        if self.text(self.pos, end).eq_ignore_ascii_case(keyword) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// A short, quoted description of what is at `pos`, for error messages.
    pub(super) fn describe_at(&self, pos: usize) -> String {
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
    pub(super) fn enter(&mut self, pos: usize) -> Result<(), ParseError> {
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

    pub(super) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    pub(super) fn count_term(&mut self, pos: usize) -> Result<(), ParseError> {
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
    pub(super) fn parse_or(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        self.parse_chain(in_value_filter, "or", Self::parse_and, Filter::Or)
    }

    pub(super) fn parse_and(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        self.parse_chain(in_value_filter, "and", Self::parse_factor, Filter::And)
    }

    /// `operand (keyword operand)*`, left-associative.
    fn parse_chain(
        &mut self,
        in_value_filter: bool,
        keyword: &str,
        operand: fn(&mut Self, bool) -> Result<Filter, ParseError>,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> Result<Filter, ParseError> {
        let mut left = operand(self, in_value_filter)?;
        loop {
            self.skip_ws();
            if !self.eat_keyword(keyword) {
                return Ok(left);
            }
            let right = operand(self, in_value_filter)?;
            left = join(Box::new(left), Box::new(right));
        }
    }

    /// attrExp / valuePath / `not (` FILTER `)` / `(` FILTER `)`.
    pub(super) fn parse_factor(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
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
    pub(super) fn parse_value_path_sub(
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
    pub(super) fn parse_group(&mut self, in_value_filter: bool) -> Result<Filter, ParseError> {
        let open = self.pos;
        self.parse_enclosed(in_value_filter, Closer::Paren(open))
    }

    /// The filter inside `(` `)` or `[` `]` (`closer` says which, and where it opened), with
    /// the cursor on the opener.
    fn parse_enclosed(
        &mut self,
        in_value_filter: bool,
        closer: Closer,
    ) -> Result<Filter, ParseError> {
        let open = self.pos;
        let (opener, close, empty, name) = match closer {
            Closer::Paren(_) => ('(', ')', "empty parentheses \"()\"", "parenthesis"),
            _ => ('[', ']', "empty value filter \"[]\"", "bracket"),
        };
        self.enter(open)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            return Err(ParseError::new(self.pos, empty));
        }
        let inner = self.parse_or(in_value_filter)?;
        self.skip_ws();
        match self.peek() {
            Some(c) if c == close => {
                self.pos += 1;
                self.leave();
                Ok(inner)
            }
            None => Err(ParseError::new(
                self.pos,
                format!("unbalanced {name}: the \"{opener}\" at position {open} is never closed"),
            )),
            Some(_) => Err(self.unexpected_after_expr(closer)),
        }
    }

    /// `[` valFilter `]` after `path`, with the cursor on the `[`.
    pub(super) fn parse_value_filter(
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
        let inner = self.parse_enclosed(true, Closer::Bracket(open))?;
        Ok((path, inner))
    }

    // RFC 7644 §3.4.2.2: attrExp = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
    pub(super) fn parse_attr_exp(
        &mut self,
        path: AttrPath,
        start: usize,
    ) -> Result<Filter, ParseError> {
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

    pub(super) fn parse_attr_path(&mut self) -> Result<AttrPath, ParseError> {
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
    pub(super) fn scan_name(&self, from: usize, what: &str) -> Result<(String, usize), ParseError> {
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

    pub(super) fn describe_char(&self, pos: usize) -> String {
        match self.chars.get(pos) {
            Some(c) => format!("\"{c}\""),
            None => format!("the end of the {}", self.mode.noun()),
        }
    }

    /// The error for something other than `and`/`or`/the expected closer after an expression.
    pub(super) fn unexpected_after_expr(&self, closer: Closer) -> ParseError {
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
