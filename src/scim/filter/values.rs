//! The literal values of a filter: JSON strings (with escapes) and numbers (RFC 7644
//! §3.4.2.2 takes JSON's grammar, RFC 8259 §6-7), and `true`, `false`, `null`.

use super::parser::{is_word_char, Parser, EXPECTED_VALUE};
use super::{CompOp, CompValue, ParseError};

impl Parser<'_> {
    pub(super) fn parse_value(&mut self, op: CompOp) -> Result<CompValue, ParseError> {
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
    pub(super) fn parse_string(&mut self) -> Result<String, ParseError> {
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
}

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
