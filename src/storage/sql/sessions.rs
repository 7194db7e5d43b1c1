//! Admin console sessions (`admin_sessions`): insert, look up with the credential they came
//! from (one round trip), touch, delete. Raw SQL both backends accept, bound parameters only;
//! the caller owns the transaction. The rules (lifetimes, which credential is still good)
//! live in `auth::session`.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryableByName;

use super::conn::{Bind, Db, Sql};
use super::store::StoreResult;

fn text(s: &str) -> Bind {
    Bind::Text(s.to_string())
}

/// A session to store. `id_hash` is the SHA-256 of the cookie value, never the value.
pub struct NewSessionRow<'a> {
    pub id_hash: &'a str,
    pub tenant_id: &'a str,
    pub credential_kind: &'a str,
    pub credential_id: &'a str,
    pub csrf_token: &'a str,
    pub created: i64,
    pub expires: i64,
}

pub fn insert_session(db: &mut Db<'_>, s: &NewSessionRow<'_>) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO admin_sessions (id_hash, tenant_id, credential_kind, credential_id, \
         csrf_token, created, last_seen, expires) VALUES (",
    );
    q.bind_list([
        text(s.id_hash),
        text(s.tenant_id),
        text(s.credential_kind),
        text(s.credential_id),
        text(s.csrf_token),
        Bind::Int(s.created),
        Bind::Int(s.created),
        Bind::Int(s.expires),
    ])
    .push(")");
    db.execute(&q)?;
    Ok(())
}

/// A session with what the credential it came from looks like now (the `cred_*` columns are
/// null when that credential no longer exists). Not `Debug`: it holds the CSRF token.
#[derive(Clone, QueryableByName)]
pub struct SessionAuthRow {
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Text)]
    pub credential_kind: String,
    #[diesel(sql_type = Text)]
    pub credential_id: String,
    #[diesel(sql_type = Text)]
    pub csrf_token: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = BigInt)]
    pub last_seen: i64,
    #[diesel(sql_type = BigInt)]
    pub expires: i64,
    /// The tenant's settings (JSON), for the principal's dialect.
    #[diesel(sql_type = Text)]
    pub settings: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub cred_tenant: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub cred_scope: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub cred_revoked: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub cred_expires: Option<i64>,
    /// For a session from an external JWT: the tenant's trusted issuer now.
    #[diesel(sql_type = Nullable<Text>)]
    pub issuer: Option<String>,
}

/// The session whose id hashes to `id_hash`, joined to its credential (a token, an OAuth
/// client, or the tenant's external issuer) in one query.
pub fn find_session_for_auth(
    db: &mut Db<'_>,
    id_hash: &str,
) -> StoreResult<Option<SessionAuthRow>> {
    let mut q = Sql::new(
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
         WHERE s.id_hash = ",
    );
    q.bind(text(id_hash));
    Ok(db.first(&q)?)
}

/// Records activity on a session (throttled by the caller).
pub fn touch_session(db: &mut Db<'_>, id_hash: &str, now: i64) -> StoreResult<()> {
    let mut q = Sql::new("UPDATE admin_sessions SET last_seen = ");
    q.bind(Bind::Int(now))
        .push(" WHERE id_hash = ")
        .bind(text(id_hash));
    db.execute(&q)?;
    Ok(())
}

/// Deletes a session; returns whether there was one.
pub fn delete_session(db: &mut Db<'_>, id_hash: &str) -> StoreResult<bool> {
    let mut q = Sql::new("DELETE FROM admin_sessions WHERE id_hash = ");
    q.bind(text(id_hash));
    Ok(db.execute(&q)? > 0)
}

/// Deletes sessions past their absolute end (`expires <= now`) or idle since before
/// `idle_before`; returns how many.
pub fn delete_stale_sessions(db: &mut Db<'_>, now: i64, idle_before: i64) -> StoreResult<usize> {
    let mut q = Sql::new("DELETE FROM admin_sessions WHERE expires <= ");
    q.bind(Bind::Int(now));
    let mut n = db.execute(&q)?;
    let mut q = Sql::new("DELETE FROM admin_sessions WHERE last_seen < ");
    q.bind(Bind::Int(idle_before));
    n += db.execute(&q)?;
    Ok(n)
}
