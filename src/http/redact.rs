//! What a log line may say of a request's target: its path, and of its query string the
//! parameters that carry no personal data. A SCIM `filter` keeps its attribute names and
//! operators and loses its values (`filter=userName eq "…"`); any other parameter not known
//! to be harmless keeps its name only (`cursor=…`). Bodies are never logged at all.
//! `--log-unredacted` logs targets verbatim, for local debugging.

/// Parameters whose values are shapes, sizes and positions, never data.
const HARMLESS: &[&str] = &[
    "attributes",
    "excludedAttributes",
    "sortBy",
    "sortOrder",
    "startIndex",
    "count",
    "after",
    "limit",
    "wait",
    "status",
];

/// What replaces a value.
pub const HIDDEN: &str = "…";

/// `path?query` with the query's values redacted (see the module comment).
pub fn target(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let params: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| {
            if HARMLESS.iter().any(|h| h.eq_ignore_ascii_case(&key)) {
                format!("{key}={value}")
            } else if key.eq_ignore_ascii_case("filter") {
                format!("{key}={}", filter(&value))
            } else {
                format!("{}={HIDDEN}", redact_key(&key))
            }
        })
        .collect();
    // A client's control characters (a decoded `%0A`, say) never reach the log line, where
    // they could forge another one.
    format!("{path}?{}", params.join("&"))
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A parameter's name is logged only when it looks like one (a name made of data is hidden).
fn redact_key(key: &str) -> &str {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if plain {
        key
    } else {
        HIDDEN
    }
}

const OPERATORS: &[&str] = &[
    "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not",
];
const LITERALS: &[&str] = &["true", "false", "null"];

/// What the next word of a filter is expected to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Attribute,
    Operator,
    Value,
}

/// A filter with every comparison value replaced: quoted strings become `"…"`, any other
/// value word (a number, or the bare word of a malformed filter) `…`; attribute paths,
/// operators, `true`/`false`/`null` and brackets stay.
pub fn filter(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut expect = Expect::Attribute;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A string, to its closing quote (escapes included): always a value.
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        break;
                    }
                }
                out.push('"');
                out.push_str(HIDDEN);
                out.push('"');
                expect = Expect::Operator;
            }
            '(' | '[' => {
                out.push(c);
                expect = Expect::Attribute;
            }
            ')' | ']' => {
                out.push(c);
                expect = Expect::Operator;
            }
            c if c.is_whitespace() => out.push(c),
            c => {
                let mut word = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '"' | '(' | ')' | '[' | ']') {
                        break;
                    }
                    word.push(d);
                    chars.next();
                }
                let lower = word.to_ascii_lowercase();
                if OPERATORS.contains(&lower.as_str()) {
                    out.push_str(&word);
                    expect = match lower.as_str() {
                        "and" | "or" | "not" => Expect::Attribute,
                        "pr" => Expect::Operator,
                        _ => Expect::Value,
                    };
                } else if LITERALS.contains(&lower.as_str())
                    || (expect == Expect::Attribute && is_attribute_path(&word))
                {
                    out.push_str(&word);
                    expect = Expect::Operator;
                } else {
                    out.push_str(HIDDEN);
                    expect = Expect::Operator;
                }
            }
        }
    }
    out
}

/// `userName`, `emails.value`, `name.givenName`, a schema URN with its attribute
/// (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`).
fn is_attribute_path(word: &str) -> bool {
    word.len() <= 256
        && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_hidden_and_the_shape_stays() {
        for (given, logged) in [
            (r#"userName eq "bjensen@example.com""#, r#"userName eq "…""#),
            (
                r#"emails[type eq "work" and value co "@example.com"] or meta.lastModified gt "2011-05-13T04:42:34Z""#,
                r#"emails[type eq "…" and value co "…"] or meta.lastModified gt "…""#,
            ),
            (
                r#"title pr and not (active eq true)"#,
                r#"title pr and not (active eq true)"#,
            ),
            (r#"userName eq "a \"quoted\" name""#, r#"userName eq "…""#),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 42",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq …",
            ),
            ("userName eq bob@example.com", "userName eq …"),
            ("bob@example.com", "…"),
            (r#"userName eq "unterminated"#, r#"userName eq "…""#),
        ] {
            assert_eq!(filter(given), logged, "{given}");
        }
    }

    #[test]
    fn a_clients_control_characters_never_reach_the_log_line() {
        // A decoded newline would start a forged line in the text log.
        let logged = target(
            "/scim/v2/Users",
            "count=1%0Ascimitar%3A%3Aaccess%20forged&sortBy=userName%0D%09x",
        );
        assert!(!logged.chars().any(char::is_control), "{logged}");
        assert_eq!(
            logged,
            "/scim/v2/Users?count=1 scimitar::access forged&sortBy=userName  x"
        );
    }

    #[test]
    fn query_strings_keep_only_harmless_values() {
        assert_eq!(
            target(
                "/scim/v2/Users",
                "filter=userName%20eq%20%22bjensen%40example.com%22&count=10&attributes=userName,emails"
            ),
            r#"/scim/v2/Users?filter=userName eq "…"&count=10&attributes=userName,emails"#
        );
        assert_eq!(
            target("/scim/v2/Users", "cursor=abc&email=x%40y.z&%40me=1"),
            "/scim/v2/Users?cursor=…&email=…&…=…"
        );
        assert_eq!(target("/scim/v2/Users", ""), "/scim/v2/Users");
        assert_eq!(
            target("/x", "filter=userName+eq+%22bob%22"),
            r#"/x?filter=userName eq "…""#
        );
        // A broken escape is logged as sent, never a panic.
        assert_eq!(target("/x", "count=%2"), "/x?count=%2");
        assert_eq!(target("/x", "count=%zz1"), "/x?count=%zz1");
    }
}
