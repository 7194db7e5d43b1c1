//! Credentials: bearer tokens (only their SHA-256 is stored) and the principal a request acts
//! as (tenant + scope). Must not depend on actix.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::storage::{self, Db, StorageError};

/// The tenant every resource belongs to until full tenancy exists.
pub const DEFAULT_TENANT: &str = "default";

/// Prefix of every token Scimitar issues, so secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "scimitar_";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }
}

/// Who a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// The stored credential's id (None for the bootstrap token from the environment).
    pub credential: Option<String>,
    pub scope: Scope,
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

/// Resolves a bearer token to a principal: the bootstrap token (compared by hash) or a stored,
/// unrevoked, unexpired token.
pub fn authenticate(
    db: &mut Db<'_>,
    bootstrap_hash: Option<&str>,
    token: &str,
    now: i64,
) -> Result<Principal, AuthError> {
    let hash = hash_secret(token);
    if bootstrap_hash == Some(hash.as_str()) {
        return Ok(Principal {
            tenant: DEFAULT_TENANT.into(),
            credential: None,
            scope: Scope::Write,
        });
    }
    let row = storage::find_token(db, &hash)?.ok_or(AuthError::Invalid)?;
    if row.revoked || row.expires.is_some_and(|e| e <= now) {
        return Err(AuthError::Invalid);
    }
    Ok(Principal {
        tenant: row.tenant_id,
        credential: Some(row.id),
        scope: Scope::parse(&row.scope).ok_or(AuthError::Invalid)?,
    })
}

/// First start: ensure the default tenant, and if no token is configured or stored, create one
/// and return it (to be printed once). Only its hash is kept.
pub fn bootstrap(
    db: &mut Db<'_>,
    have_env_token: bool,
    now: i64,
) -> Result<Option<String>, StorageError> {
    storage::ensure_tenant(db, DEFAULT_TENANT, DEFAULT_TENANT, now)?;
    if have_env_token || storage::count_tokens(db)? > 0 {
        return Ok(None);
    }
    let token = generate_token();
    let id = uuid::Uuid::new_v4().to_string();
    storage::insert_token(
        db,
        &storage::NewToken {
            id: &id,
            tenant_id: DEFAULT_TENANT,
            label: Some("generated at first start"),
            scope: "write",
            secret_hash: &hash_secret(&token),
            created: now,
            expires: None,
        },
    )?;
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
