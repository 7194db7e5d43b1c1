//! Tenants and their credentials: tenants and settings, bearer tokens, OAuth clients, the
//! server's signing keys, each tenant's external JWT issuer, and the server's own secrets.
//! The caller owns the transaction. No caching: instances sharing a database always read the
//! same credentials.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryableByName;

use super::conn::Db;
use super::sql::{select, Bind, Sql};
use super::{StorageError, StoreResult, TenantId};

// ---------------------------------------------------------------------------------------
// Tenants

/// A tenant. Its `id` is the name it was created with (every row of its data carries it).
#[derive(Clone, Debug, QueryableByName)]
pub struct TenantRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    /// JSON object (see `auth::tenant::TenantSettings`).
    #[diesel(sql_type = Text)]
    pub settings: String,
}

/// A tenant with the size of what it holds, for `tenant list`.
#[derive(Clone, Debug, QueryableByName)]
pub struct TenantSummary {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = Text)]
    pub settings: String,
    #[diesel(sql_type = BigInt)]
    pub user_count: i64,
    #[diesel(sql_type = BigInt)]
    pub group_count: i64,
    #[diesel(sql_type = BigInt)]
    pub token_count: i64,
    #[diesel(sql_type = BigInt)]
    pub client_count: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub issuer: Option<String>,
}

/// Creates a tenant; an existing one of that name is `Conflict`.
pub fn create_tenant(db: &mut Db<'_>, tenant: &TenantId, now: i64) -> StoreResult<()> {
    insert_tenant(db, tenant, now, "")
}

/// Creates a tenant unless it exists (the default tenant at every start).
pub fn ensure_tenant(db: &mut Db<'_>, tenant: &TenantId, now: i64) -> StoreResult<()> {
    insert_tenant(db, tenant, now, " ON CONFLICT DO NOTHING")
}

fn insert_tenant(db: &mut Db<'_>, tenant: &TenantId, now: i64, tail: &str) -> StoreResult<()> {
    db.execute(&Sql::with(
        &format!("INSERT INTO tenants (id, name, created) VALUES (?, ?, ?){tail}"),
        [Bind::tenant(tenant), Bind::tenant(tenant), Bind::Int(now)],
    ))?;
    Ok(())
}

pub fn find_tenant(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Option<TenantRow>> {
    let q = Sql::with(
        "SELECT id, name, created, settings FROM tenants WHERE id = ?",
        [Bind::tenant(tenant)],
    );
    Ok(db.first(&q)?)
}

pub fn list_tenants(db: &mut Db<'_>) -> StoreResult<Vec<TenantSummary>> {
    let q = Sql::new(
        "SELECT t.id, t.created, t.settings, \
         (SELECT COUNT(*) FROM resources r WHERE r.tenant_id = t.id AND r.rtype = 'User') AS user_count, \
         (SELECT COUNT(*) FROM resources r WHERE r.tenant_id = t.id AND r.rtype = 'Group') AS group_count, \
         (SELECT COUNT(*) FROM tokens k WHERE k.tenant_id = t.id AND NOT k.revoked) AS token_count, \
         (SELECT COUNT(*) FROM oauth_clients c WHERE c.tenant_id = t.id AND NOT c.revoked) AS client_count, \
         (SELECT j.issuer FROM jwt_issuers j WHERE j.tenant_id = t.id) AS issuer \
         FROM tenants t ORDER BY t.id",
    );
    Ok(db.load(&q)?)
}

pub fn set_tenant_settings(db: &mut Db<'_>, tenant: &TenantId, settings: &str) -> StoreResult<()> {
    let q = Sql::with(
        "UPDATE tenants SET settings = ? WHERE id = ?",
        [Bind::text(settings), Bind::tenant(tenant)],
    );
    if db.execute(&q)? == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

/// What `delete_tenant` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub resources: usize,
    pub events: usize,
    pub credentials: usize,
}

/// Deletes a tenant and everything it owns, in the caller's transaction. Tables without a
/// foreign key to `tenants` (values, members, the feed, deliveries) are cleared explicitly; the rest also
/// cascade, but explicit deletes keep the order (children first) visible. On Postgres it
/// takes the lock of the block counts' fold (`Backend::resource_block_lock`) before deleting
/// the tenant's row, whose cascade deletes its `resource_blocks` rows, so a fold waits for
/// the deletion to commit or the deletion waits for the fold, never both at once.
pub fn delete_tenant(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Deleted> {
    delete_tenant_with(db, tenant, &mut |_| {})
}

/// `delete_tenant`, calling `step(table)` as each table is done.
pub fn delete_tenant_with(
    db: &mut Db<'_>,
    tenant: &TenantId,
    step: &mut dyn FnMut(&str),
) -> StoreResult<Deleted> {
    let mut del = |db: &mut Db<'_>, table: &str| -> StoreResult<usize> {
        let q = Sql::with(
            &format!("DELETE FROM {table} WHERE tenant_id = ?"),
            [Bind::tenant(tenant)],
        );
        let n = db.execute(&q)?;
        step(table);
        Ok(n)
    };
    let mut d = Deleted::default();
    del(db, "members")?;
    del(db, "attr_values")?;
    d.resources = del(db, "resources")?;
    d.events = del(db, "feed")?;
    del(db, "feed_heads")?;
    del(db, "deliveries")?;
    del(db, "webhooks")?;
    del(db, "account_roles")?;
    del(db, "accounts")?;
    del(db, "rules")?;
    del(db, "roles")?;
    del(db, "policies")?;
    del(db, "product_changes")?;
    del(db, "admin_sessions")?;
    d.credentials += del(db, "tokens")?;
    d.credentials += del(db, "oauth_clients")?;
    del(db, "jwt_keys")?;
    d.credentials += del(db, "jwt_issuers")?;
    // Takes turns with a fold of the block counts, which would otherwise deadlock with the
    // cascade below (`Backend::resource_block_lock`).
    if let Some(lock) = db.backend().resource_block_lock() {
        db.execute(&Sql::new(lock))?;
    }
    if db.execute(&Sql::with(
        "DELETE FROM tenants WHERE id = ?",
        [Bind::tenant(tenant)],
    ))? == 0
    {
        return Err(StorageError::NotFound);
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------
// Credentials: bearer tokens and OAuth clients

pub fn count_tokens(db: &mut Db<'_>) -> StoreResult<i64> {
    db.count(&Sql::new("SELECT COUNT(*) AS n FROM tokens"))
}

/// The two kinds of stored credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token (`tokens`), found by the hash of its secret.
    Token,
    /// An OAuth client (`oauth_clients`), found by its id. Clients do not expire.
    Client,
}

impl Credential {
    fn table(self) -> &'static str {
        match self {
            Credential::Token => "tokens",
            Credential::Client => "oauth_clients",
        }
    }

    /// Its `expires` column, as read.
    fn expires(self) -> &'static str {
        match self {
            Credential::Token => "expires",
            Credential::Client => "CAST(NULL AS BIGINT)",
        }
    }

    /// What a message calls it.
    pub fn name(self) -> &'static str {
        match self {
            Credential::Token => "token",
            Credential::Client => "OAuth client",
        }
    }
}

/// A new credential: a bearer token, or an OAuth client (which never expires). Only the hash
/// of its secret is stored.
pub struct NewCredential<'a> {
    pub id: &'a str,
    pub tenant: &'a TenantId,
    pub label: Option<&'a str>,
    pub scope: &'a str,
    pub secret_hash: &'a str,
    pub created: i64,
    pub expires: Option<i64>,
}

pub fn insert(db: &mut Db<'_>, kind: Credential, c: &NewCredential<'_>) -> StoreResult<()> {
    // Only tokens have an `expires` column; a credential without an expiry leaves it out.
    let expires = if c.expires.is_some() { ", expires" } else { "" };
    let label = Bind::OptText(c.label.map(str::to_string));
    let mut q = Sql::with(
        &format!(
            "INSERT INTO {} (id, tenant_id, label, scope, secret_hash, created, revoked{expires}) \
             VALUES (?, ?, ?, ?, ",
            kind.table()
        ),
        [
            Bind::text(c.id),
            Bind::tenant(c.tenant),
            label,
            Bind::text(c.scope),
        ],
    );
    q.and(
        "?, ?, ?",
        [
            Bind::text(c.secret_hash),
            Bind::Int(c.created),
            Bind::Bool(false),
        ],
    );
    if let Some(e) = c.expires {
        q.and(", ?", [Bind::Int(e)]);
    }
    q.push(")");
    db.execute(&q)?;
    Ok(())
}

/// A stored credential (bearer token or OAuth client) with its tenant's settings, as
/// authentication needs it. Not `Debug`: it holds the secret hash.
#[derive(Clone, QueryableByName)]
pub struct CredentialRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Text)]
    pub scope: String,
    #[diesel(sql_type = Text)]
    pub secret_hash: String,
    /// Tokens only (clients do not expire).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub expires: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub revoked: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_used: Option<i64>,
    #[diesel(sql_type = Text)]
    pub settings: String,
}

pub type TokenAuthRow = CredentialRow;
pub type ClientRow = CredentialRow;

/// The credential whose `key` column is `value`, with its tenant's settings.
fn find(
    db: &mut Db<'_>,
    kind: Credential,
    key: &str,
    value: &str,
) -> StoreResult<Option<CredentialRow>> {
    Ok(db.first(&Sql::with(
        &format!(
            "SELECT c.id, c.tenant_id, c.scope, c.secret_hash, {} AS expires, c.revoked, \
             c.last_used, t.settings FROM {} c JOIN tenants t ON t.id = c.tenant_id \
             WHERE c.{key} = ?",
            kind.expires(),
            kind.table()
        ),
        [Bind::text(value)],
    ))?)
}

pub fn find_token_for_auth(
    db: &mut Db<'_>,
    secret_hash: &str,
) -> StoreResult<Option<TokenAuthRow>> {
    find(db, Credential::Token, "secret_hash", secret_hash)
}

pub fn find_client(db: &mut Db<'_>, id: &str) -> StoreResult<Option<ClientRow>> {
    find(db, Credential::Client, "id", id)
}

/// A credential (bearer token or OAuth client) as `token list` and `client list` show it
/// (never its hash).
#[derive(Clone, Debug, QueryableByName)]
pub struct CredentialInfo {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub label: Option<String>,
    #[diesel(sql_type = Text)]
    pub scope: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_used: Option<i64>,
    /// Tokens only (clients do not expire).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub expires: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub revoked: bool,
}

/// A tenant's credentials of one kind, oldest first.
pub fn list(
    db: &mut Db<'_>,
    kind: Credential,
    tenant: &TenantId,
) -> StoreResult<Vec<CredentialInfo>> {
    let columns = format!(
        "id, label, scope, created, last_used, {} AS expires, revoked",
        kind.expires()
    );
    let mut q = select(&columns, kind.table(), tenant);
    q.push(" ORDER BY created, id");
    Ok(db.load(&q)?)
}

/// A stored credential as an account's timeline names it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialLabel {
    pub id: String,
    pub kind: Credential,
    pub label: Option<String>,
}

/// The tenant's tokens and OAuth clients among `ids`, with their labels.
pub fn labels(
    db: &mut Db<'_>,
    tenant: &TenantId,
    ids: &[String],
) -> StoreResult<Vec<CredentialLabel>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Nullable<Text>)]
        label: Option<String>,
    }
    let keys: Vec<Bind> = ids.iter().map(|i| Bind::text(i)).collect();
    let mut out = Vec::new();
    for kind in [Credential::Token, Credential::Client] {
        let start = select("id, label", kind.table(), tenant);
        let rows: Vec<Row> = db.load_keyed(&start, "id", &keys, "")?;
        out.extend(rows.into_iter().map(|r| CredentialLabel {
            id: r.id,
            kind,
            label: r.label,
        }));
    }
    Ok(out)
}

pub fn list_tokens(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<CredentialInfo>> {
    list(db, Credential::Token, tenant)
}

pub fn list_clients(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<CredentialInfo>> {
    list(db, Credential::Client, tenant)
}

/// Revokes a credential (a client's access tokens stop working at once too); returns its
/// tenant, or None when no credential of this kind has this id.
pub fn revoke(db: &mut Db<'_>, kind: Credential, id: &str) -> StoreResult<Option<TenantId>> {
    #[derive(QueryableByName)]
    struct Tenant {
        #[diesel(sql_type = Text)]
        tenant_id: String,
    }
    let q = Sql::with(
        &format!(
            "UPDATE {} SET revoked = ? WHERE id = ? RETURNING tenant_id",
            kind.table()
        ),
        [Bind::Bool(true), Bind::text(id)],
    );
    Ok(db.first::<Tenant>(&q)?.map(|t| TenantId::from(t.tenant_id)))
}

/// Records that a credential was used (throttled by the caller: `token list` shows it to
/// the minute, and a write per request would serialise SQLite readers behind the writer).
pub fn touch(db: &mut Db<'_>, kind: Credential, id: &str, now: i64) -> StoreResult<()> {
    db.execute(&Sql::with(
        &format!("UPDATE {} SET last_used = ? WHERE id = ?", kind.table()),
        [Bind::Int(now), Bind::text(id)],
    ))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Signing keys

/// A key that signs the server's access tokens. Not `Debug`: it holds the secret.
#[derive(Clone, QueryableByName)]
pub struct SigningKeyRow {
    #[diesel(sql_type = Text)]
    pub kid: String,
    #[diesel(sql_type = Text)]
    pub alg: String,
    /// The key, hex.
    #[diesel(sql_type = Text)]
    pub secret: String,
    #[diesel(sql_type = BigInt)]
    pub created: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub retired_at: Option<i64>,
}

const KEY_COLUMNS: &str = "kid, alg, secret, created, retired_at";

pub fn insert_signing_key(
    db: &mut Db<'_>,
    kid: &str,
    alg: &str,
    secret: &str,
    now: i64,
) -> StoreResult<()> {
    db.execute(&Sql::with(
        "INSERT INTO signing_keys (kid, alg, secret, created) VALUES (?, ?, ?, ?)",
        [
            Bind::text(kid),
            Bind::text(alg),
            Bind::text(secret),
            Bind::Int(now),
        ],
    ))?;
    Ok(())
}

/// The key that signs new tokens: the newest one not retired.
pub fn current_signing_key(db: &mut Db<'_>) -> StoreResult<Option<SigningKeyRow>> {
    let q = Sql::new(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL ORDER BY created DESC, kid DESC LIMIT 1"
    ));
    Ok(db.first(&q)?)
}

pub fn signing_key(db: &mut Db<'_>, kid: &str) -> StoreResult<Option<SigningKeyRow>> {
    Ok(db.first(&Sql::with(
        &format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE kid = ?"),
        [Bind::text(kid)],
    ))?)
}

pub fn list_signing_keys(db: &mut Db<'_>) -> StoreResult<Vec<SigningKeyRow>> {
    let q = Sql::new(&format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created, kid"
    ));
    Ok(db.load(&q)?)
}

/// Retires every current key; returns how many.
pub fn retire_signing_keys(db: &mut Db<'_>, now: i64) -> StoreResult<usize> {
    Ok(db.execute(&Sql::with(
        "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL",
        [Bind::Int(now)],
    ))?)
}

/// Deletes keys retired before `before` (no token they signed can still be valid).
pub fn prune_signing_keys(db: &mut Db<'_>, before: i64) -> StoreResult<usize> {
    Ok(db.execute(&Sql::with(
        "DELETE FROM signing_keys WHERE retired_at < ?",
        [Bind::Int(before)],
    ))?)
}

pub fn count_signing_keys(db: &mut Db<'_>) -> StoreResult<i64> {
    db.count(&Sql::new(
        "SELECT COUNT(*) AS n FROM signing_keys WHERE retired_at IS NULL",
    ))
}

// ---------------------------------------------------------------------------------------
// External JWT issuers

/// A tenant's trusted issuer, with the tenant's settings.
#[derive(Clone, Debug, QueryableByName)]
pub struct IssuerRow {
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Text)]
    pub issuer: String,
    #[diesel(sql_type = Text)]
    pub audience: String,
    #[diesel(sql_type = Text)]
    pub scope: String,
    #[diesel(sql_type = Text)]
    pub settings: String,
}

/// One verification key of an issuer, pinned to `alg`.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct JwtKeyRow {
    #[diesel(sql_type = Nullable<Text>)]
    pub kid: Option<String>,
    #[diesel(sql_type = Text)]
    pub alg: String,
    /// `pem` or `jwk`.
    #[diesel(sql_type = Text)]
    pub format: String,
    #[diesel(sql_type = Text)]
    pub material: String,
}

/// Sets (replacing any previous) a tenant's issuer and keys. Another tenant with the same
/// (issuer, audience) is `Conflict`: a token must name exactly one tenant.
pub fn set_jwt_issuer(
    db: &mut Db<'_>,
    tenant: &TenantId,
    issuer: &str,
    audience: &str,
    scope: &str,
    keys: &[JwtKeyRow],
    now: i64,
) -> StoreResult<()> {
    remove_jwt_issuer(db, tenant)?;
    let (t, iss, aud) = (
        Bind::tenant(tenant),
        Bind::text(issuer),
        Bind::text(audience),
    );
    db.execute(&Sql::with(
        "INSERT INTO jwt_issuers (tenant_id, issuer, audience, scope, created) VALUES (?, ?, ?, ?, ?)",
        [t.clone(), iss, aud, Bind::text(scope), Bind::Int(now)],
    ))?;
    for (i, k) in keys.iter().enumerate() {
        let seq = Bind::I32(i32::try_from(i).unwrap_or(i32::MAX));
        let (alg, format) = (Bind::text(&k.alg), Bind::text(&k.format));
        db.execute(&Sql::with(
            "INSERT INTO jwt_keys (tenant_id, seq, kid, alg, format, material) VALUES (?, ?, ?, ?, ?, ?)",
            [t.clone(), seq, Bind::OptText(k.kid.clone()), alg, format, Bind::text(&k.material)],
        ))?;
    }
    Ok(())
}

/// Removes a tenant's issuer; returns whether it had one.
pub fn remove_jwt_issuer(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<bool> {
    let t = [Bind::tenant(tenant)];
    db.execute(&Sql::with(
        "DELETE FROM jwt_keys WHERE tenant_id = ?",
        t.clone(),
    ))?;
    Ok(db.execute(&Sql::with("DELETE FROM jwt_issuers WHERE tenant_id = ?", t))? > 0)
}

/// The issuer configurations naming `issuer` (one per audience at most).
/// Issuer configurations, with their tenants' settings, where `column` is `value`.
fn issuers_where(db: &mut Db<'_>, column: &str, value: Bind) -> StoreResult<Vec<IssuerRow>> {
    Ok(db.load(&Sql::with(
        &format!(
            "SELECT j.tenant_id, j.issuer, j.audience, j.scope, t.settings FROM jwt_issuers j \
             JOIN tenants t ON t.id = j.tenant_id WHERE j.{column} = ? ORDER BY j.tenant_id"
        ),
        [value],
    ))?)
}

/// The issuer configurations naming `issuer` (one per audience at most).
pub fn issuers_named(db: &mut Db<'_>, issuer: &str) -> StoreResult<Vec<IssuerRow>> {
    issuers_where(db, "issuer", Bind::text(issuer))
}

pub fn tenant_issuer(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Option<IssuerRow>> {
    Ok(issuers_where(db, "tenant_id", Bind::tenant(tenant))?
        .into_iter()
        .next())
}

pub fn jwt_keys(db: &mut Db<'_>, tenant: &TenantId) -> StoreResult<Vec<JwtKeyRow>> {
    let mut q = select("kid, alg, format, material", "jwt_keys", tenant);
    q.push(" ORDER BY seq");
    Ok(db.load(&q)?)
}

// ---------------------------------------------------------------------------------------
// Server secrets

#[derive(QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The server secret `name`, created with `fresh` on first use. Every instance sharing the
/// database reads the same value (the insert is a no-op when another instance won).
pub fn server_secret(db: &mut Db<'_>, name: &str, fresh: &str, now: i64) -> StoreResult<String> {
    db.execute(&Sql::with(
        "INSERT INTO server_secrets (name, value, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [Bind::text(name), Bind::text(fresh), Bind::Int(now)],
    ))?;
    let q = Sql::with(
        "SELECT value FROM server_secrets WHERE name = ?",
        [Bind::text(name)],
    );
    db.first::<SecretRow>(&q)?
        .map(|r| r.value)
        .ok_or(StorageError::NotFound)
}
