//! Opaque, tamper-evident list cursors (RFC 9865): the keyset boundary of a page, bound to
//! the tenant and the query, MAC'd with a server secret shared through the database, and
//! expiring after `CURSOR_TIMEOUT_SECS`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scim::error::{ScimError, ScimType};
use crate::storage::search::SortValue;

/// How long a cursor stays valid (advertised as `pagination.cursorTimeout`).
pub const CURSOR_TIMEOUT_SECS: i64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    #[serde(rename = "n")]
    Next,
    #[serde(rename = "p")]
    Previous,
}

/// What a cursor carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Hash of tenant + resource type + query: a cursor only continues its own query.
    pub q: String,
    pub d: Direction,
    pub k: SortValue,
    pub pk: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// The binding of a cursor to a tenant and a query.
pub fn query_hash(tenant: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

pub fn encode(key: &[u8], pos: &Position) -> String {
    let payload = serde_json::to_vec(pos).unwrap_or_default();
    let tag = mac(key, &payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

fn invalid(detail: &str) -> ScimError {
    ScimError::new(ScimType::InvalidCursor, detail)
}

/// Verifies and opens a cursor for the query `q` at time `now` (seconds).
pub fn decode(key: &[u8], text: &str, q: &str, now: i64) -> Result<Position, ScimError> {
    let (p, t) = text
        .split_once('.')
        .ok_or_else(|| invalid("the cursor is not one this server issued"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| invalid("the cursor is not one this server issued"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| invalid("the cursor is not one this server issued"))?;
    let mut m =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| invalid("cursor key unavailable"))?;
    m.update(&payload);
    m.verify_slice(&tag)
        .map_err(|_| invalid("the cursor has been altered or was not issued by this server"))?;
    let pos: Position = serde_json::from_slice(&payload)
        .map_err(|_| invalid("the cursor is not one this server issued"))?;
    if pos.q != q {
        return Err(invalid(
            "the cursor belongs to another query; repeat the same filter and sort with it",
        ));
    }
    if pos.exp < now {
        return Err(ScimError::new(
            ScimType::ExpiredCursor,
            "the cursor has expired; start again without one",
        ));
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Position {
        Position {
            q: query_hash("t", &["User", "userName pr"]),
            d: Direction::Next,
            k: SortValue::Text("abc".into()),
            pk: 42,
            exp: 1000,
        }
    }

    #[test]
    fn round_trip() {
        let c = encode(b"key", &pos());
        assert_eq!(decode(b"key", &c, &pos().q, 10).unwrap(), pos());
    }

    #[test]
    fn tampered_foreign_other_query_and_expired_cursors_are_rejected() {
        let c = encode(b"key", &pos());
        let (p, t) = c.split_once('.').unwrap();
        let mut payload = URL_SAFE_NO_PAD.decode(p).unwrap();
        let i = payload.iter().position(|b| *b == b'4').unwrap();
        payload[i] = b'5';
        let forged = format!("{}.{t}", URL_SAFE_NO_PAD.encode(payload));
        let err = |r: Result<Position, ScimError>| r.unwrap_err().scim_type;
        assert_eq!(
            err(decode(b"key", &forged, &pos().q, 10)),
            ScimType::InvalidCursor
        );
        assert_eq!(
            err(decode(b"other", &c, &pos().q, 10)),
            ScimType::InvalidCursor
        );
        assert_eq!(
            err(decode(b"key", "garbage", &pos().q, 10)),
            ScimType::InvalidCursor
        );
        let other_tenant = query_hash("u", &["User", "userName pr"]);
        assert_eq!(
            err(decode(b"key", &c, &other_tenant, 10)),
            ScimType::InvalidCursor
        );
        assert_eq!(
            err(decode(b"key", &c, &pos().q, 2000)),
            ScimType::ExpiredCursor
        );
    }
}
