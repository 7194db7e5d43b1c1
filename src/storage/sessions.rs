//! The admin console's sessions (`admin_sessions`): one row per signed-in browser, found by
//! the SHA-256 of its cookie (never the cookie itself), naming the credential it came from.
//! Insert, look up joined to that credential as it is now (one query), touch, delete. The
//! rules (lifetimes, which credential still holds) are `auth::session`'s. Found by the
//! cookie's hash like a token by its secret's, so not scoped by a tenant: the row names it.
//! The caller owns the transaction.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::sql::{Bind, Sql};
use super::{Decode, StorageError, StoreResult, TenantId};

/// What kind of credential a session came from: how it is re-checked on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// A stored bearer token.
    Token,
    /// An OAuth client (its credentials, or an access token it obtained).
    Client,
    /// A JWT from the tenant's own issuer; the credential id is `ISSUER|SUBJECT`.
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
        [
            CredentialKind::Token,
            CredentialKind::Client,
            CredentialKind::Jwt,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A session to store. `id_hash` is the SHA-256 of the cookie value, never the value.
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub tenant: &'a TenantId,
    pub kind: CredentialKind,
    pub credential_id: &'a str,
    pub csrf_token: &'a str,
    pub created: i64,
    pub expires: i64,
}

pub fn insert(db: &mut Db<'_>, s: &NewSession<'_>) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO admin_sessions (id_hash, tenant_id, credential_kind, credential_id, \
         csrf_token, created, last_seen, expires) VALUES (",
    );
    q.bind_list([
        Bind::text(s.id_hash),
        Bind::tenant(s.tenant),
        Bind::text(s.kind.as_str()),
        Bind::text(s.credential_id),
        Bind::text(s.csrf_token),
        Bind::Int(s.created),
        Bind::Int(s.created),
        Bind::Int(s.expires),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

/// A session, with what the credential it came from looks like now. Not `Debug`: it holds
/// the CSRF token.
#[derive(Clone)]
pub struct SessionAuthRow {
    pub tenant: TenantId,
    pub credential_id: String,
    pub csrf_token: String,
    /// Microseconds since the epoch, as every time here.
    pub created: i64,
    /// The last request, to within `auth::session`'s touch interval (the idle timeout).
    pub last_seen: i64,
    /// The absolute end.
    pub expires: i64,
    /// The tenant's settings (JSON), for the principal's dialect.
    pub settings: String,
    /// None once the credential is deleted.
    pub credential: Option<CredentialNow>,
}

/// The credential a session came from, as it is now: its tenant and scope, and what decides
/// whether it still holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialNow {
    Token {
        tenant: String,
        scope: String,
        revoked: bool,
        expires: Option<i64>,
    },
    Client {
        tenant: String,
        scope: String,
        revoked: bool,
    },
    /// The tenant's external issuer now (the session's credential id is `ISSUER|SUBJECT`).
    Jwt {
        tenant: String,
        scope: String,
        issuer: String,
    },
}

#[derive(QueryableByName)]
struct RawSessionAuth {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    credential_kind: String,
    #[diesel(sql_type = Text)]
    credential_id: String,
    #[diesel(sql_type = Text)]
    csrf_token: String,
    #[diesel(sql_type = BigInt)]
    created: i64,
    #[diesel(sql_type = BigInt)]
    last_seen: i64,
    #[diesel(sql_type = BigInt)]
    expires: i64,
    #[diesel(sql_type = Text)]
    settings: String,
    #[diesel(sql_type = Nullable<Text>)]
    cred_tenant: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    cred_scope: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    cred_revoked: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    cred_expires: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    issuer: Option<String>,
}

impl RawSessionAuth {
    /// The credential's columns, as its kind has them (all null when it is gone).
    fn credential(&self, kind: CredentialKind) -> Result<Option<CredentialNow>, String> {
        let (tenant, scope) = match (&self.cred_tenant, &self.cred_scope) {
            (None, None) => return Ok(None),
            (Some(t), Some(s)) => (t.clone(), s.clone()),
            (t, s) => return Err(format!("credential tenant {t:?} without scope {s:?}")),
        };
        let missing = |what: &str| format!("a live {} credential without {what}", kind.as_str());
        Ok(Some(match kind {
            CredentialKind::Token => CredentialNow::Token {
                tenant,
                scope,
                revoked: self.cred_revoked.ok_or_else(|| missing("revoked"))?,
                expires: self.cred_expires,
            },
            CredentialKind::Client => CredentialNow::Client {
                tenant,
                scope,
                revoked: self.cred_revoked.ok_or_else(|| missing("revoked"))?,
            },
            CredentialKind::Jwt => CredentialNow::Jwt {
                tenant,
                scope,
                issuer: self.issuer.clone().ok_or_else(|| missing("issuer"))?,
            },
        }))
    }
}

impl Decode for RawSessionAuth {
    type Row = SessionAuthRow;

    fn decode(self) -> StoreResult<SessionAuthRow> {
        // Named by its credential: the row's key is the hash of a live cookie.
        let corrupt = |detail: String| {
            StorageError::corrupt(
                "admin_sessions",
                format!("of credential {}", self.credential_id),
                detail,
            )
        };
        let kind = CredentialKind::parse(&self.credential_kind)
            .ok_or_else(|| corrupt(format!("credential_kind `{}`", self.credential_kind)))?;
        let credential = self.credential(kind).map_err(corrupt)?;
        Ok(SessionAuthRow {
            tenant: TenantId::from(self.tenant_id),
            credential_id: self.credential_id,
            csrf_token: self.csrf_token,
            created: self.created,
            last_seen: self.last_seen,
            expires: self.expires,
            settings: self.settings,
            credential,
        })
    }
}

/// The session whose id hashes to `id_hash`, joined to its credential (a token, an OAuth
/// client, or the tenant's external issuer) in one query.
pub fn find_for_auth(db: &mut Db<'_>, id_hash: &str) -> StoreResult<Option<SessionAuthRow>> {
    let q = Sql::with(
        "SELECT s.tenant_id, s.credential_kind, s.credential_id, s.csrf_token, s.created, \
         s.last_seen, s.expires, t.settings, \
         COALESCE(k.tenant_id, c.tenant_id, j.tenant_id) AS cred_tenant, \
         COALESCE(k.scope, c.scope, j.scope) AS cred_scope, \
         COALESCE(k.revoked, c.revoked) AS cred_revoked, \
         k.expires AS cred_expires, j.issuer \
         FROM admin_sessions s JOIN tenants t ON t.id = s.tenant_id \
         LEFT JOIN tokens k ON s.credential_kind = 'token' AND k.id = s.credential_id \
         LEFT JOIN oauth_clients c ON s.credential_kind = 'client' AND c.id = s.credential_id \
         LEFT JOIN jwt_issuers j ON s.credential_kind = 'jwt' AND j.tenant_id = s.tenant_id \
         WHERE s.id_hash = ?",
        [Bind::text(id_hash)],
    );
    db.row::<RawSessionAuth>(&q)
}

/// Records activity on a session (throttled by the caller).
pub fn touch(db: &mut Db<'_>, id_hash: &str, now: i64) -> StoreResult<()> {
    let q = Sql::with(
        "UPDATE admin_sessions SET last_seen = ? WHERE id_hash = ?",
        [Bind::Int(now), Bind::text(id_hash)],
    );
    db.execute(&q)?;
    Ok(())
}

/// Deletes a session; returns whether there was one.
pub fn delete(db: &mut Db<'_>, id_hash: &str) -> StoreResult<bool> {
    let q = Sql::with(
        "DELETE FROM admin_sessions WHERE id_hash = ?",
        [Bind::text(id_hash)],
    );
    Ok(db.execute(&q)? > 0)
}

/// Deletes sessions past their absolute end (`expires <= now`) or idle since before
/// `idle_before`; returns how many. Two statements, each on its own index.
pub fn delete_stale(db: &mut Db<'_>, now: i64, idle_before: i64) -> StoreResult<usize> {
    let mut n = db.execute(&Sql::with(
        "DELETE FROM admin_sessions WHERE expires <= ?",
        [Bind::Int(now)],
    ))?;
    n += db.execute(&Sql::with(
        "DELETE FROM admin_sessions WHERE last_seen < ?",
        [Bind::Int(idle_before)],
    ))?;
    Ok(n)
}

/// A decoded row of a live session from a stored `admin` token, for tests of the rules built
/// on it.
#[cfg(test)]
pub(crate) fn sample_row() -> SessionAuthRow {
    match tests::raw("token").decode() {
        Ok(row) => row,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn raw(kind: &str) -> RawSessionAuth {
        RawSessionAuth {
            tenant_id: "acme".into(),
            credential_kind: kind.into(),
            credential_id: "tok-1".into(),
            csrf_token: "c".into(),
            created: 0,
            last_seen: 0,
            expires: 10,
            settings: "{}".into(),
            cred_tenant: Some("acme".into()),
            cred_scope: Some("admin".into()),
            cred_revoked: (kind != "jwt").then_some(false),
            cred_expires: None,
            issuer: (kind == "jwt").then(|| "https://idp.example.com/".into()),
        }
    }

    #[test]
    fn a_row_decodes_into_its_credential_as_it_is_now() {
        let live = |kind: &str| raw(kind).decode().ok().and_then(|r| r.credential);
        assert!(matches!(
            live("token"),
            Some(CredentialNow::Token { revoked: false, .. })
        ));
        assert!(matches!(live("client"), Some(CredentialNow::Client { .. })));
        assert!(matches!(live("jwt"), Some(CredentialNow::Jwt { .. })));
        let mut gone = raw("client");
        (gone.cred_tenant, gone.cred_scope, gone.cred_revoked) = (None, None, None);
        assert!(gone.decode().is_ok_and(|r| r.credential.is_none()));
        let mut half = raw("token");
        half.cred_revoked = None;
        for bad in [raw("bootstrap"), half] {
            let e = bad
                .decode()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("admin_sessions") && e.contains("tok-1"), "{e}");
        }
    }
}
