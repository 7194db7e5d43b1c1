//! How an error is told: itself and its sources on one line. Imports nothing; any module
//! may use it.

use std::error::Error;

/// An error and its sources, `: `-separated (errors here carry no secrets; the sources help
/// an operator).
pub fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}
