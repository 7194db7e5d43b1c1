//! Credentials and the principal a request acts as (tenant, credential, scope, the tenant's
//! client-dialect tolerances). A bearer credential is one of: the bootstrap token from the
//! environment, a stored token (only its SHA-256 is kept), an access token this server
//! signed (`oauth`), or a JWT from the tenant's own issuer (`external`). An `admin` credential
//! may also be exchanged for an admin console session (`session`), which acts as it. The
//! tenant always comes from the credential, never from the request. Must not depend on actix.

pub mod external;
pub mod oauth;
pub mod session;
pub mod tenant;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::scim::compat::Compat;
use crate::storage::conn::{Conn, Db};
use crate::storage::tenancy::Credential;
use crate::storage::{self, StorageError, TenantId};
use tenant::TenantSettings;

/// The tenant the bootstrap token (and the token generated at first start) acts for.
pub const DEFAULT_TENANT: &str = "default";

/// Prefix of every token Scimitar issues, so secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "scimitar_";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    /// The admin and product API (`/api/v1`); reads SCIM but cannot write it.
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// Who a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    /// The stored credential's id (a token id, an OAuth client id, or `issuer|subject` for an
    /// external JWT); None for the bootstrap token from the environment. Events record it.
    pub credential: Option<String>,
    pub scope: Scope,
    /// The client-dialect tolerances in force for the tenant.
    pub compat: Compat,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the request has no bearer token")]
    Missing,
    #[error("the bearer token is not valid")]
    Invalid,
    #[error("this credential may only read")]
    ReadOnly,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// SHA-256 of a token, hex. Tokens are 256-bit random values, so a fast hash is enough:
/// there is nothing to brute-force.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random token: the prefix and 32 random bytes in hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// How often `last_used` is written for one credential: `token list` shows it to the
/// minute, and a write per request would queue every SQLite reader behind the writer.
const TOUCH_EVERY_MICROS: i64 = 60 * 1_000_000;

fn settings(json: &str) -> Result<TenantSettings, StorageError> {
    TenantSettings::parse(json).map_err(|e| StorageError::Backend(Box::new(e)))
}

/// Whether a bearer credential has the shape of a JWS compact serialisation (tokens
/// Scimitar generates never contain a dot).
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Resolves a bearer credential to a principal (see the module comment). Every failure,
/// whatever its cause (unknown, revoked, expired, malformed, foreign), is the same
/// `Invalid`, so a client learns only that the credential is bad.
pub fn authenticate(
    conn: &mut Conn,
    bootstrap_hash: Option<&str>,
    server_compat: Compat,
    token: &str,
    now: i64,
) -> Result<Principal, AuthError> {
    let hash = hash_secret(token);
    if bootstrap_hash == Some(hash.as_str()) {
        let tenant =
            storage::tenancy::find_tenant(&mut conn.db(), &TenantId::from(DEFAULT_TENANT))?
                .ok_or(AuthError::Invalid)?;
        return Ok(Principal {
            tenant: TenantId::from(tenant.id),
            credential: None,
            scope: Scope::Write,
            compat: settings(&tenant.settings)?.compat(server_compat),
        });
    }
    if looks_like_jwt(token) {
        return authenticate_jwt(conn, server_compat, token, now);
    }
    let row =
        storage::tenancy::find_token_for_auth(&mut conn.db(), &hash)?.ok_or(AuthError::Invalid)?;
    if row.revoked || row.expires.is_some_and(|e| e <= now) {
        return Err(AuthError::Invalid);
    }
    let principal = Principal {
        tenant: TenantId::from(row.tenant_id),
        scope: Scope::parse(&row.scope).ok_or(AuthError::Invalid)?,
        compat: settings(&row.settings)?.compat(server_compat),
        credential: Some(row.id),
    };
    if row.last_used.is_none_or(|t| t + TOUCH_EVERY_MICROS <= now) {
        if let Some(id) = &principal.credential {
            conn.write_tx(|db| storage::tenancy::touch(db, Credential::Token, id, now))?;
        }
    }
    Ok(principal)
}

fn authenticate_jwt(
    conn: &mut Conn,
    server_compat: Compat,
    token: &str,
    now: i64,
) -> Result<Principal, AuthError> {
    // `alg: none` and unknown algorithms fail here, before any key is looked at.
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| AuthError::Invalid)?;
    // Unverified claims only choose where to look for the key; nothing is trusted yet.
    let routing = external::Unverified::from_claims(&claims).ok_or(AuthError::Invalid)?;
    if routing.iss != oauth::ISSUER {
        return external::verify(&mut conn.db(), token, &header, &routing, server_compat, now);
    }
    let (principal, last_used) = oauth::verify(&mut conn.db(), token, &header, server_compat, now)?;
    if last_used.is_none_or(|t| t + TOUCH_EVERY_MICROS <= now) {
        if let Some(id) = &principal.credential {
            conn.write_tx(|db| storage::tenancy::touch(db, Credential::Client, id, now))?;
        }
    }
    Ok(principal)
}

/// A new bearer token for `tenant`; returns (id, token). Only the hash is stored.
pub fn create_token(
    db: &mut Db<'_>,
    tenant: &TenantId,
    label: Option<&str>,
    scope: Scope,
    expires: Option<i64>,
    now: i64,
) -> Result<(String, String), StorageError> {
    let token = generate_token();
    let id = uuid::Uuid::new_v4().to_string();
    storage::tenancy::insert(
        db,
        Credential::Token,
        &storage::tenancy::NewCredential {
            id: &id,
            tenant,
            label,
            scope: scope.as_str(),
            secret_hash: &hash_secret(&token),
            created: now,
            expires,
        },
    )?;
    Ok((id, token))
}

/// First start: ensure the default tenant and a key to sign access tokens with, and if no
/// token is configured or stored, create one and return it (to be printed once). Only its
/// hash is kept.
pub fn bootstrap(
    db: &mut Db<'_>,
    have_env_token: bool,
    now: i64,
) -> Result<Option<String>, StorageError> {
    let tenant = TenantId::from(DEFAULT_TENANT);
    storage::tenancy::ensure_tenant(db, &tenant, now)?;
    oauth::ensure_signing_key(db, now)?;
    if have_env_token || storage::tenancy::count_tokens(db)? > 0 {
        return Ok(None);
    }
    let label = Some("generated at first start");
    let (_, token) = create_token(db, &tenant, label, Scope::Write, None, now)?;
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
