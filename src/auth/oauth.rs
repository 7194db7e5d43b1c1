//! The server's own OAuth 2.0 access tokens (RFC 6749 §4.4, client credentials): clients,
//! the keys that sign the tokens (HS256, 256-bit random, stored in the database and read from
//! it on every use, so instances sharing a database agree, rotatable) and the JWTs they sign.
//! Must not depend on actix.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::tenant::TenantSettings;
use super::{hash_secret, AuthError, Principal, Scope};
use crate::scim::compat::Compat;
use crate::storage::conn::{Conn, Db};
use crate::storage::tenancy::{self, ClientRow, Credential};
use crate::storage::{StorageError, TenantId};

/// `iss` of the tokens this server signs; external issuers may not use it.
pub const ISSUER: &str = "scimitar";
/// `aud` of the tokens this server signs.
pub const AUDIENCE: &str = "scimitar-scim";
/// Lifetime of an access token.
pub const ACCESS_TOKEN_SECS: i64 = 3600;
/// Clock skew tolerated on `exp` and `nbf`, here and for external issuers.
pub const LEEWAY_SECS: i64 = 60;
/// How long a retired key keeps verifying: until every token it signed has expired.
pub const RETIRED_KEY_GRACE_SECS: i64 = ACCESS_TOKEN_SECS + LEEWAY_SECS;

const ALG: &str = "HS256";
const MICROS: i64 = 1_000_000;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    /// The tenant, checked against the client's on every use.
    tid: String,
    scope: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

pub(super) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Byte comparison whose time does not depend on where the inputs differ.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new client of `tenant`: returns (client id, secret). Only the secret's hash is stored.
pub fn create_client(
    db: &mut Db<'_>,
    tenant: &TenantId,
    label: Option<&str>,
    scope: Scope,
    now: i64,
) -> Result<(String, String), StorageError> {
    let id = format!("scimitar-client-{}", random_hex(12));
    let secret = super::generate_token();
    tenancy::insert(
        db,
        Credential::Client,
        &tenancy::NewCredential {
            id: &id,
            tenant,
            label,
            scope: scope.as_str(),
            secret_hash: &hash_secret(&secret),
            created: now,
            expires: None,
        },
    )?;
    Ok((id, secret))
}

/// Checks a client's credentials (RFC 6749 §2.3.1). Unknown, revoked and wrong-secret
/// clients are the same `Invalid`.
pub fn authenticate_client(
    db: &mut Db<'_>,
    client_id: &str,
    secret: &str,
) -> Result<ClientRow, AuthError> {
    let row = tenancy::find_client(db, client_id)?.ok_or(AuthError::Invalid)?;
    let given = hash_secret(secret);
    if !constant_time_eq(given.as_bytes(), row.secret_hash.as_bytes()) || row.revoked {
        return Err(AuthError::Invalid);
    }
    Ok(row)
}

/// First start: a signing key, unless there is one.
pub fn ensure_signing_key(db: &mut Db<'_>, now: i64) -> Result<(), StorageError> {
    if tenancy::count_signing_keys(db)? == 0 {
        new_signing_key(db, now)?;
    }
    Ok(())
}

fn new_signing_key(db: &mut Db<'_>, now: i64) -> Result<String, StorageError> {
    let kid = random_hex(8);
    tenancy::insert_signing_key(db, &kid, ALG, &random_hex(32), now)?;
    Ok(kid)
}

/// `scimitar keys rotate`: retires the current key(s), makes a new current key, and deletes
/// keys whose tokens have all expired. Returns the new key's id.
pub fn rotate_keys(db: &mut Db<'_>, now: i64) -> Result<String, StorageError> {
    tenancy::retire_signing_keys(db, now)?;
    tenancy::prune_signing_keys(db, now - RETIRED_KEY_GRACE_SECS * MICROS)?;
    new_signing_key(db, now)
}

/// An access token as the token endpoint answers it (RFC 6749 §5.1).
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: &'static str,
}

/// Signs an access token for `client` with the current key (made if there is none yet).
pub fn issue(db: &mut Db<'_>, client: &ClientRow, now: i64) -> Result<Issued, AuthError> {
    let key = match tenancy::current_signing_key(db)? {
        Some(k) => k,
        None => {
            let kid = new_signing_key(db, now)?;
            tenancy::signing_key(db, &kid)?.ok_or(StorageError::NotFound)?
        }
    };
    let scope = Scope::parse(&client.scope).ok_or(AuthError::Invalid)?;
    let secs = now / MICROS;
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: client.id.clone(),
        tid: client.tenant_id.clone(),
        scope: scope.as_str().into(),
        iat: secs,
        nbf: secs,
        exp: secs + ACCESS_TOKEN_SECS,
        jti: random_hex(16),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let secret = hex::decode(&key.secret).map_err(|e| StorageError::Backend(Box::new(e)))?;
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
        .map_err(|e| StorageError::Backend(Box::new(e)))?;
    Ok(Issued {
        access_token: token,
        expires_in: ACCESS_TOKEN_SECS,
        scope: scope.as_str(),
    })
}

/// What the token endpoint answers a client that authenticated.
pub enum Grant {
    Issued(Issued),
    /// Over its rate limit: retry after this many seconds.
    Throttled(u64),
}

/// The client credentials grant (RFC 6749 §4.4): checks the client's credentials, asks
/// `admit` whether the client may make another request (after authentication, so nobody can
/// drain a client's bucket by guessing), then records its use and signs an access token in
/// one write transaction.
pub fn grant(
    conn: &mut Conn,
    client_id: &str,
    secret: &str,
    now: i64,
    admit: impl FnOnce(&TenantId, &str) -> Result<(), u64>,
) -> Result<Grant, AuthError> {
    let client = authenticate_client(&mut conn.db(), client_id, secret)?;
    if let Err(retry_after) = admit(&TenantId::from(client.tenant_id.as_str()), &client.id) {
        return Ok(Grant::Throttled(retry_after));
    }
    let issued = conn.write_tx(|db| {
        tenancy::touch(db, Credential::Client, &client.id, now)?;
        issue(db, &client, now)
    })?;
    Ok(Grant::Issued(issued))
}

/// Verifies one of our own access tokens: a known, unexpired signing key named by `kid`,
/// HS256 only, our issuer and audience, `exp`/`nbf` within the leeway, and a client that
/// still exists, is not revoked, and belongs to the tenant the token names. Returns the
/// principal and the client's last use (for throttled bookkeeping).
pub fn verify(
    db: &mut Db<'_>,
    token: &str,
    header: &Header,
    server_compat: Compat,
    now: i64,
) -> Result<(Principal, Option<i64>), AuthError> {
    if header.alg != Algorithm::HS256 {
        return Err(AuthError::Invalid);
    }
    let kid = header.kid.as_deref().ok_or(AuthError::Invalid)?;
    let key = tenancy::signing_key(db, kid)?.ok_or(AuthError::Invalid)?;
    if key.alg != ALG
        || key
            .retired_at
            .is_some_and(|r| now >= r + RETIRED_KEY_GRACE_SECS * MICROS)
    {
        return Err(AuthError::Invalid);
    }
    let secret = hex::decode(&key.secret).map_err(|e| StorageError::Backend(Box::new(e)))?;
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Time is checked below against the caller's clock (testable, same leeway everywhere).
    v.validate_exp = false;
    v.validate_nbf = false;
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret), &v)
        .map_err(|_| AuthError::Invalid)?;
    let c = data.claims;
    let secs = now / MICROS;
    if c.exp + LEEWAY_SECS <= secs || c.nbf - LEEWAY_SECS > secs {
        return Err(AuthError::Invalid);
    }
    let client = tenancy::find_client(db, &c.sub)?.ok_or(AuthError::Invalid)?;
    if client.revoked || client.tenant_id != c.tid {
        return Err(AuthError::Invalid);
    }
    let settings =
        TenantSettings::parse(&client.settings).map_err(|e| StorageError::Backend(Box::new(e)))?;
    Ok((
        Principal {
            tenant: TenantId::from(client.tenant_id),
            credential: Some(client.id),
            scope: Scope::parse(&client.scope).ok_or(AuthError::Invalid)?,
            compat: settings.compat(server_compat),
        },
        client.last_used,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
