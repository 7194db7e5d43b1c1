//! The operator's use cases (the `scimitar tenant|token|client|keys` commands): tenants and
//! their dialect settings, bearer tokens, OAuth clients, signing keys and external JWT
//! issuers. Each is one short transaction on the caller's connection, safe while servers run
//! on the same database (they read credentials on every request). Typed errors; the CLI
//! prints them.

use std::time::Duration;

use super::{Error, Result};
use crate::auth::tenant::TenantSettings;
use crate::auth::{self, oauth, Scope};
use crate::scim::time::now_micros;
use crate::storage::conn::{Conn, Db};
use crate::storage::tenancy::{
    self, Credential, CredentialInfo, Deleted, IssuerRow, JwtKeyRow, SigningKeyRow, TenantSummary,
};
use crate::storage::{StorageError, TenantId};

fn unknown_tenant(name: &str) -> Error {
    Error::NotFound(format!(
        "no tenant named `{name}` (see `scimitar tenant list`)"
    ))
}

/// A tenant name: 1 to 64 of ASCII letters, digits, `.`, `_`, `-`, starting with a letter or
/// digit.
pub fn check_tenant_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid tenant name `{name}`: use 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        )))
    }
}

/// The tenant named `name`, which must exist.
fn existing(db: &mut Db<'_>, name: &str) -> Result<TenantId> {
    let tenant = TenantId::from(name);
    match tenancy::find_tenant(db, &tenant)? {
        Some(_) => Ok(tenant),
        None => Err(unknown_tenant(name)),
    }
}

pub fn create_tenant(conn: &mut Conn, name: &str) -> Result<()> {
    check_tenant_name(name)?;
    conn.write_tx(
        |db| match tenancy::create_tenant(db, &TenantId::from(name), now_micros()) {
            Err(StorageError::Conflict(_)) => {
                Err(Error::Conflict(format!("tenant `{name}` already exists")))
            }
            other => Ok(other?),
        },
    )
}

pub fn list_tenants(conn: &mut Conn) -> Result<Vec<TenantSummary>> {
    Ok(tenancy::list_tenants(&mut conn.db())?)
}

/// Fails with `NotFound` unless the tenant exists (nothing changes).
pub fn require_tenant(conn: &mut Conn, name: &str) -> Result<()> {
    existing(&mut conn.db(), name).map(|_| ())
}

pub fn delete_tenant(conn: &mut Conn, name: &str) -> Result<Deleted> {
    delete_tenant_with(conn, name, &mut |_| {})
}

/// `delete_tenant`, calling `step(table)` as each of its tables is done (one
/// transaction all the same: nothing is deleted unless everything is).
pub fn delete_tenant_with(
    conn: &mut Conn,
    name: &str,
    step: &mut dyn FnMut(&str),
) -> Result<Deleted> {
    conn.write_tx(|db| {
        let tenant = existing(db, name)?;
        Ok(tenancy::delete_tenant_with(db, &tenant, step)?)
    })
}

/// Creates a bearer token; returns (id, token, expiry).
pub fn create_token(
    conn: &mut Conn,
    tenant: &str,
    label: Option<&str>,
    scope: Scope,
    expires_in: Option<Duration>,
) -> Result<(String, String, Option<i64>)> {
    let now = now_micros();
    let expires = match expires_in {
        Some(d) => Some(
            i64::try_from(d.as_micros())
                .ok()
                .and_then(|d| now.checked_add(d))
                .ok_or_else(|| Error::Invalid("the expiry is too far in the future".into()))?,
        ),
        None => None,
    };
    conn.write_tx(|db| {
        let tenant = existing(db, tenant)?;
        let (id, token) = auth::create_token(db, &tenant, label, scope, expires, now)?;
        Ok((id, token, expires))
    })
}

/// A tenant's credentials of one kind, oldest first (never their secrets).
pub fn list_credentials(
    conn: &mut Conn,
    kind: Credential,
    tenant: &str,
) -> Result<Vec<CredentialInfo>> {
    let mut db = conn.db();
    let tenant = existing(&mut db, tenant)?;
    Ok(tenancy::list(&mut db, kind, &tenant)?)
}

/// Revokes a credential (a client's access tokens stop at once too); returns its tenant.
pub fn revoke(conn: &mut Conn, kind: Credential, id: &str) -> Result<TenantId> {
    conn.write_tx(|db| {
        tenancy::revoke(db, kind, id)?
            .ok_or_else(|| Error::NotFound(format!("no {} with id `{id}`", kind.name())))
    })
}

pub fn revoke_token(conn: &mut Conn, id: &str) -> Result<TenantId> {
    revoke(conn, Credential::Token, id)
}

pub fn revoke_client(conn: &mut Conn, id: &str) -> Result<TenantId> {
    revoke(conn, Credential::Client, id)
}

/// Creates an OAuth client; returns (client id, secret).
pub fn create_client(
    conn: &mut Conn,
    tenant: &str,
    label: Option<&str>,
    scope: Scope,
) -> Result<(String, String)> {
    conn.write_tx(|db| {
        let tenant = existing(db, tenant)?;
        Ok(oauth::create_client(
            db,
            &tenant,
            label,
            scope,
            now_micros(),
        )?)
    })
}

/// Makes a new current signing key; returns its id.
pub fn rotate_keys(conn: &mut Conn) -> Result<String> {
    conn.write_tx(|db| Ok(oauth::rotate_keys(db, now_micros())?))
}

pub fn list_signing_keys(conn: &mut Conn) -> Result<Vec<SigningKeyRow>> {
    Ok(tenancy::list_signing_keys(&mut conn.db())?)
}

/// Changes a tenant's settings with `f`; returns the new settings.
pub fn update_settings(
    conn: &mut Conn,
    tenant: &str,
    f: impl FnOnce(&mut TenantSettings) -> std::result::Result<(), String>,
) -> Result<TenantSettings> {
    conn.write_tx(|db| {
        let id = TenantId::from(tenant);
        let row = tenancy::find_tenant(db, &id)?.ok_or_else(|| unknown_tenant(tenant))?;
        let mut s = TenantSettings::parse(&row.settings).map_err(|e| {
            StorageError::corrupt("tenants", tenant, format!("column settings: {e}"))
        })?;
        f(&mut s).map_err(Error::Invalid)?;
        tenancy::set_tenant_settings(db, &id, &s.to_json())?;
        Ok(s)
    })
}

/// Trusts `issuer` for `tenant` (replacing its previous issuer and keys).
pub fn set_jwt_issuer(
    conn: &mut Conn,
    tenant: &str,
    issuer: &str,
    audience: &str,
    scope: Scope,
    keys: &[JwtKeyRow],
) -> Result<()> {
    let invalid = |m: String| Err(Error::Invalid(m));
    if issuer == oauth::ISSUER {
        return invalid(format!("`{issuer}` is the issuer of Scimitar's own tokens"));
    }
    if issuer.is_empty() || audience.is_empty() {
        return invalid("the issuer and the audience must not be empty".into());
    }
    if keys.is_empty() {
        return invalid("give the issuer's keys with --jwks FILE or --pem FILE --alg ALG".into());
    }
    conn.write_tx(|db| {
        let tenant = existing(db, tenant)?;
        match tenancy::set_jwt_issuer(db, &tenant, issuer, audience, scope.as_str(), keys, now_micros()) {
            Err(StorageError::Conflict(_)) => Err(Error::Conflict(format!(
                "another tenant already trusts issuer `{issuer}` with audience `{audience}`; a token must name one tenant"
            ))),
            other => Ok(other?),
        }
    })
}

/// Stops trusting a tenant's issuer; returns whether it had one.
pub fn remove_jwt_issuer(conn: &mut Conn, tenant: &str) -> Result<bool> {
    conn.write_tx(|db| {
        let tenant = existing(db, tenant)?;
        Ok(tenancy::remove_jwt_issuer(db, &tenant)?)
    })
}

/// A tenant's issuer and its keys, if it trusts one.
pub fn jwt_issuer(conn: &mut Conn, tenant: &str) -> Result<Option<(IssuerRow, Vec<JwtKeyRow>)>> {
    let mut db = conn.db();
    let tenant = existing(&mut db, tenant)?;
    match tenancy::tenant_issuer(&mut db, &tenant)? {
        None => Ok(None),
        Some(i) => Ok(Some((i, tenancy::jwt_keys(&mut db, &tenant)?))),
    }
}

/// `scimitar backup --to PATH`: a consistent copy of the SQLite database at `database_url`
/// through SQLite's online backup API, safe while servers write; `progress(copied, total)`
/// in pages. Returns the pages copied. Postgres has its own tools (`pg_dump`).
pub fn backup(
    database_url: &str,
    to: &std::path::Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    let Some(file) = crate::storage::conn::sqlite_file(database_url)? else {
        return Err(Error::Invalid(
            "`backup` copies SQLite databases; back up Postgres with pg_dump (see docs/deploying.md)"
                .into(),
        ));
    };
    Ok(crate::storage::backup::sqlite_backup(&file, to, progress)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["acme", "Acme-2", "a.b_c", "0"] {
            assert!(check_tenant_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_tenant_name(bad).is_err(), "{bad}");
        }
    }
}
