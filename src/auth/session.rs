//! Admin console sessions (issue 17). An `admin` credential of a tenant (a token, an access
//! token from `/oauth/token`, an external JWT, or OAuth client credentials), checked once, is
//! exchanged for a random session id the browser keeps in an HttpOnly cookie; only its
//! SHA-256 is stored. Every use re-checks the credential the session came from, so revoking
//! it (or its expiry) ends its sessions; signing out deletes the session. Sessions live in
//! the database (`storage::sessions`), so every instance sharing it agrees. Must not depend
//! on actix.

use super::oauth::{self, constant_time_eq, random_hex};
use super::{hash_secret, looks_like_jwt, settings, AuthError, Principal, Scope};
use crate::scim::compat::Compat;
use crate::storage::conn::{Conn, Db};
use crate::storage::sessions::{self, CredentialKind, CredentialNow, NewSession, SessionAuthRow};
use crate::storage::TenantId;

/// Absolute lifetime of a session: a working day, after which the admin signs in again.
pub const LIFETIME_SECS: i64 = 8 * 3600;
/// A session unused for this long ends (OWASP's range for an administrative application).
pub const IDLE_SECS: i64 = 30 * 60;
/// How often a session's `last_seen` is written: a write per request would queue every
/// SQLite reader behind the writer. The idle timeout is therefore exact to within a minute.
const TOUCH_EVERY_SECS: i64 = 60;
const MICROS: i64 = 1_000_000;

/// A session just made. `cookie` goes to the browser once and is never stored.
pub struct Issued {
    pub cookie: String,
    pub csrf: String,
    pub tenant: TenantId,
    /// Microseconds since the epoch: the session's absolute end.
    pub expires: i64,
}

/// A live session: who it acts as, and the token its state-changing requests must carry.
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    /// The absolute end (microseconds since the epoch).
    pub expires: i64,
}

impl Session {
    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), given.as_bytes())
    }
}

/// Signs in as `p`, the principal a bearer credential `token` authenticated as
/// (`auth::authenticate`, whose every failure the caller answers alike). Anything that is
/// not a stored credential of scope `admin` (another scope, the bootstrap token) is the same
/// `Invalid`, so the answer says nothing about which.
pub fn sign_in_with_bearer(
    conn: &mut Conn,
    p: &Principal,
    token: &str,
    now: i64,
) -> Result<Issued, AuthError> {
    let credential = match (&p.credential, p.scope) {
        (Some(c), Scope::Admin) => c.clone(),
        _ => return Err(AuthError::Invalid),
    };
    let mut expires = now + LIFETIME_SECS * MICROS;
    let kind = if looks_like_jwt(token) {
        // Verified above; read again only for the issuer and the expiry. A session never
        // outlives the token it came from.
        let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Invalid)?;
        if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64) {
            expires = expires.min(exp.saturating_mul(MICROS));
        }
        if claims.get("iss").and_then(serde_json::Value::as_str) == Some(oauth::ISSUER) {
            CredentialKind::Client
        } else {
            CredentialKind::Jwt
        }
    } else {
        CredentialKind::Token
    };
    conn.write_tx(|db| create(db, &p.tenant, kind, &credential, expires, now))
}

/// Signs in with OAuth client credentials (RFC 6749 §2.3.1) of an `admin` client.
pub fn sign_in_with_client(
    conn: &mut Conn,
    client_id: &str,
    secret: &str,
    now: i64,
) -> Result<Issued, AuthError> {
    conn.write_tx(|db| {
        let client = oauth::authenticate_client(db, client_id, secret)?;
        if Scope::parse(&client.scope) != Some(Scope::Admin) {
            return Err(AuthError::Invalid);
        }
        let expires = now + LIFETIME_SECS * MICROS;
        create(
            db,
            &TenantId::from(client.tenant_id),
            CredentialKind::Client,
            &client.id,
            expires,
            now,
        )
    })
}

fn create(
    db: &mut Db<'_>,
    tenant: &TenantId,
    kind: CredentialKind,
    credential: &str,
    expires: i64,
    now: i64,
) -> Result<Issued, AuthError> {
    // Sign-ins are rare: a good moment to forget sessions nobody can use any more.
    sessions::delete_stale(db, now, now - IDLE_SECS * MICROS)?;
    let cookie = random_hex(32);
    let csrf = random_hex(32);
    sessions::insert(
        db,
        &NewSession {
            id_hash: &hash_secret(&cookie),
            tenant,
            kind,
            credential_id: credential,
            csrf_token: &csrf,
            created: now,
            expires,
        },
    )?;
    Ok(Issued {
        cookie,
        csrf,
        tenant: tenant.clone(),
        expires,
    })
}

/// Whether the credential a session came from still lets it act as an admin of its tenant.
fn credential_holds(row: &SessionAuthRow, now: i64) -> bool {
    let Some(c) = &row.credential else {
        return false;
    };
    let (tenant, scope, live) = match c {
        CredentialNow::Token {
            tenant,
            scope,
            revoked,
            expires,
        } => (tenant, scope, !revoked && expires.is_none_or(|e| e > now)),
        CredentialNow::Client {
            tenant,
            scope,
            revoked,
        } => (tenant, scope, !revoked),
        // The tenant still trusts the issuer the token came from (`ISSUER|SUBJECT`).
        CredentialNow::Jwt {
            tenant,
            scope,
            issuer,
        } => (
            tenant,
            scope,
            row.credential_id.starts_with(&format!("{issuer}|")),
        ),
    };
    tenant == row.tenant.as_str() && scope == Scope::Admin.as_str() && live
}

/// The session a cookie names, if it is live: not signed out, not past its absolute end or
/// idle timeout, and its credential still valid and `admin`. A session found dead is
/// deleted. Every failure is the same `Invalid`.
pub fn resolve(
    conn: &mut Conn,
    server_compat: Compat,
    cookie: &str,
    now: i64,
) -> Result<Session, AuthError> {
    let hash = hash_secret(cookie);
    let row = sessions::find_for_auth(&mut conn.db(), &hash)?.ok_or(AuthError::Invalid)?;
    let live = row.expires > now && row.last_seen + IDLE_SECS * MICROS > now;
    if !live || !credential_holds(&row, now) {
        conn.write_tx(|db| sessions::delete(db, &hash))?;
        return Err(AuthError::Invalid);
    }
    if row.last_seen + TOUCH_EVERY_SECS * MICROS <= now {
        conn.write_tx(|db| sessions::touch(db, &hash, now))?;
    }
    Ok(Session {
        principal: Principal {
            compat: settings(&row.settings)?.compat(server_compat),
            tenant: row.tenant,
            credential: Some(row.credential_id),
            scope: Scope::Admin,
        },
        csrf: row.csrf_token,
        expires: row.expires,
    })
}

/// Signs out: deletes the session the cookie names; returns whether there was one.
pub fn sign_out(conn: &mut Conn, cookie: &str) -> Result<bool, AuthError> {
    let hash = hash_secret(cookie);
    Ok(conn.write_tx(|db| sessions::delete(db, &hash))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialKind::{Client, Jwt, Token};

    const ISSUER: &str = "https://idp.example.com/";

    /// The credential of `kind` as it is now: live, of `tenant` and `scope`.
    fn now_as(kind: CredentialKind, tenant: &str, scope: &str) -> CredentialNow {
        let (tenant, scope) = (tenant.to_string(), scope.to_string());
        match kind {
            Token => CredentialNow::Token {
                tenant,
                scope,
                revoked: false,
                expires: None,
            },
            Client => CredentialNow::Client {
                tenant,
                scope,
                revoked: false,
            },
            Jwt => CredentialNow::Jwt {
                tenant,
                scope,
                issuer: ISSUER.into(),
            },
        }
    }

    /// Whether a session of tenant `acme` from a JWT of `ISSUER` (or a token or client)
    /// whose credential is now `c` holds.
    fn holds(c: Option<CredentialNow>) -> bool {
        let mut r = sessions::sample_row();
        r.credential_id = format!("{ISSUER}|alice");
        r.credential = c;
        credential_holds(&r, 5)
    }

    #[test]
    fn a_session_holds_while_its_credential_does() {
        for kind in [Token, Client, Jwt] {
            assert!(holds(Some(now_as(kind, "acme", "admin"))), "{kind:?}");
            let write = now_as(kind, "acme", "write");
            assert!(!holds(Some(write)), "{kind:?} with scope write");
            let other = now_as(kind, "other", "admin");
            assert!(!holds(Some(other)), "{kind:?} of another tenant");
        }
        assert!(!holds(None), "deleted");
        let (tenant, scope) = ("acme".to_string(), "admin".to_string());
        let revoked = [
            CredentialNow::Token {
                tenant: tenant.clone(),
                scope: scope.clone(),
                revoked: true,
                expires: None,
            },
            CredentialNow::Client {
                tenant: tenant.clone(),
                scope: scope.clone(),
                revoked: true,
            },
        ];
        for c in revoked {
            assert!(!holds(Some(c.clone())), "{c:?} revoked");
        }
        let expired = CredentialNow::Token {
            tenant: tenant.clone(),
            scope: scope.clone(),
            revoked: false,
            expires: Some(5),
        };
        assert!(!holds(Some(expired)), "expired token");
        let replaced = CredentialNow::Jwt {
            tenant,
            scope,
            issuer: "https://other.example.com/".into(),
        };
        assert!(!holds(Some(replaced)), "issuer replaced");
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let s = Session {
            principal: Principal {
                tenant: TenantId::from("t"),
                credential: None,
                scope: Scope::Admin,
                compat: Compat::default(),
            },
            csrf: "abc".into(),
            expires: 0,
        };
        assert!(s.csrf_matches("abc"));
        assert!(!s.csrf_matches("abd"));
        assert!(!s.csrf_matches(""));
    }
}
