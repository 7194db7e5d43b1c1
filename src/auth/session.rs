//! Admin console sessions (issue 17). An `admin` credential of a tenant (a token, an access
//! token from `/oauth/token`, an external JWT, or OAuth client credentials), checked once, is
//! exchanged for a random session id the browser keeps in an HttpOnly cookie; only its
//! SHA-256 is stored. Every use re-checks the credential the session came from, so revoking
//! it (or its expiry) ends its sessions; signing out deletes the session. Sessions live in
//! the database, so every instance sharing it agrees. Must not depend on actix.

use super::oauth::{self, constant_time_eq, random_hex};
use super::tenant::TenantSettings;
use super::{authenticate, hash_secret, looks_like_jwt, AuthError, Principal, Scope};
use crate::scim::compat::Compat;
use crate::storage::{self, Conn, Db, NewSessionRow, SessionAuthRow, StorageError};

/// Absolute lifetime of a session: a working day, after which the admin signs in again.
pub const LIFETIME_SECS: i64 = 8 * 3600;
/// A session unused for this long ends (OWASP's range for an administrative application).
pub const IDLE_SECS: i64 = 30 * 60;
/// How often a session's `last_seen` is written: a write per request would queue every
/// SQLite reader behind the writer. The idle timeout is therefore exact to within a minute.
const TOUCH_EVERY_SECS: i64 = 60;
const MICROS: i64 = 1_000_000;

/// What kind of credential a session came from: how it is re-checked on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// A stored bearer token (`scimitar token create --scope admin`).
    Token,
    /// An OAuth client (its credentials, or an access token it obtained).
    Client,
    /// A JWT from the tenant's own issuer (`scimitar tenant jwt --scope admin`).
    Jwt,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Token => "token",
            CredentialKind::Client => "client",
            CredentialKind::Jwt => "jwt",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        match s {
            "token" => Some(CredentialKind::Token),
            "client" => Some(CredentialKind::Client),
            "jwt" => Some(CredentialKind::Jwt),
            _ => None,
        }
    }
}

/// A session just made. `cookie` goes to the browser once and is never stored.
pub struct Issued {
    pub cookie: String,
    pub csrf: String,
    pub tenant: String,
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

/// Signs in with a bearer credential as the API takes it. Anything that is not a valid
/// credential of scope `admin` (unknown, revoked, expired, another scope, the bootstrap
/// token) is the same `Invalid`, so the answer says nothing about which.
pub fn sign_in_with_bearer(
    conn: &mut Conn,
    bootstrap_hash: Option<&str>,
    server_compat: Compat,
    token: &str,
    now: i64,
) -> Result<Issued, AuthError> {
    let p = authenticate(conn, bootstrap_hash, server_compat, token, now).map_err(|e| match e {
        AuthError::Storage(s) => AuthError::Storage(s),
        _ => AuthError::Invalid,
    })?;
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
            &client.tenant_id,
            CredentialKind::Client,
            &client.id,
            expires,
            now,
        )
    })
}

fn create(
    db: &mut Db<'_>,
    tenant: &str,
    kind: CredentialKind,
    credential: &str,
    expires: i64,
    now: i64,
) -> Result<Issued, AuthError> {
    // Sign-ins are rare: a good moment to forget sessions nobody can use any more.
    storage::delete_stale_sessions(db, now, now - IDLE_SECS * MICROS)?;
    let cookie = random_hex(32);
    let csrf = random_hex(32);
    storage::insert_session(
        db,
        &NewSessionRow {
            id_hash: &hash_secret(&cookie),
            tenant_id: tenant,
            credential_kind: kind.as_str(),
            credential_id: credential,
            csrf_token: &csrf,
            created: now,
            expires,
        },
    )?;
    Ok(Issued {
        cookie,
        csrf,
        tenant: tenant.to_string(),
        expires,
    })
}

/// Whether the credential a session came from still lets it act as an admin of its tenant.
fn credential_holds(row: &SessionAuthRow, now: i64) -> bool {
    let same_tenant = row.cred_tenant.as_deref() == Some(row.tenant_id.as_str());
    let admin = row.cred_scope.as_deref() == Some(Scope::Admin.as_str());
    let live = match CredentialKind::parse(&row.credential_kind) {
        Some(CredentialKind::Token) => {
            row.cred_revoked == Some(false) && row.cred_expires.is_none_or(|e| e > now)
        }
        Some(CredentialKind::Client) => row.cred_revoked == Some(false),
        // The tenant still trusts the issuer the token came from (`ISSUER|SUBJECT`).
        Some(CredentialKind::Jwt) => row
            .issuer
            .as_ref()
            .is_some_and(|iss| row.credential_id.starts_with(&format!("{iss}|"))),
        None => false,
    };
    same_tenant && admin && live
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
    let row = storage::find_session_for_auth(&mut conn.db(), &hash)?.ok_or(AuthError::Invalid)?;
    let live = row.expires > now && row.last_seen + IDLE_SECS * MICROS > now;
    if !live || !credential_holds(&row, now) {
        conn.write_tx(|db| storage::delete_session(db, &hash))?;
        return Err(AuthError::Invalid);
    }
    if row.last_seen + TOUCH_EVERY_SECS * MICROS <= now {
        conn.write_tx(|db| storage::touch_session(db, &hash, now))?;
    }
    let settings =
        TenantSettings::parse(&row.settings).map_err(|e| StorageError::Backend(Box::new(e)))?;
    Ok(Session {
        principal: Principal {
            tenant: row.tenant_id,
            credential: Some(row.credential_id),
            scope: Scope::Admin,
            compat: settings.compat(server_compat),
        },
        csrf: row.csrf_token,
        expires: row.expires,
    })
}

/// Signs out: deletes the session the cookie names; returns whether there was one.
pub fn sign_out(conn: &mut Conn, cookie: &str) -> Result<bool, AuthError> {
    let hash = hash_secret(cookie);
    Ok(conn.write_tx(|db| storage::delete_session(db, &hash))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str) -> SessionAuthRow {
        SessionAuthRow {
            tenant_id: "acme".into(),
            credential_kind: kind.into(),
            credential_id: "https://idp.example.com/|alice".into(),
            csrf_token: "c".into(),
            created: 0,
            last_seen: 0,
            expires: 10,
            settings: "{}".into(),
            cred_tenant: Some("acme".into()),
            cred_scope: Some("admin".into()),
            cred_revoked: Some(false),
            cred_expires: None,
            issuer: Some("https://idp.example.com/".into()),
        }
    }

    #[test]
    fn a_session_holds_while_its_credential_does() {
        for kind in ["token", "client", "jwt"] {
            assert!(credential_holds(&row(kind), 5), "{kind}");
            let mut r = row(kind);
            r.cred_scope = Some("write".into());
            assert!(!credential_holds(&r, 5), "{kind} with scope write");
            let mut r = row(kind);
            r.cred_tenant = Some("other".into());
            assert!(!credential_holds(&r, 5), "{kind} of another tenant");
            let mut r = row(kind);
            r.cred_tenant = None;
            r.cred_scope = None;
            r.cred_revoked = None;
            r.issuer = None;
            assert!(!credential_holds(&r, 5), "{kind} deleted");
        }
        for kind in ["token", "client"] {
            let mut r = row(kind);
            r.cred_revoked = Some(true);
            assert!(!credential_holds(&r, 5), "{kind} revoked");
        }
        let mut r = row("token");
        r.cred_expires = Some(5);
        assert!(!credential_holds(&r, 5), "expired token");
        let mut r = row("jwt");
        r.issuer = Some("https://other.example.com/".into());
        assert!(!credential_holds(&r, 5), "issuer replaced");
        assert!(!credential_holds(&row("bootstrap"), 5), "unknown kind");
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let s = Session {
            principal: Principal {
                tenant: "t".into(),
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
