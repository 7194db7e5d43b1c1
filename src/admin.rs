//! Admin commands: tenants, tokens, OAuth clients, signing keys, external JWT issuers. Each
//! opens the database named by `--database-url` exactly as `serve` does (migrating it if
//! needed) and does its work in one short transaction, so it is safe while servers run on the
//! same database: they read credentials from it on every request. Secrets are printed once,
//! alone on standard output; everything else goes to standard error.
//!
//! The functions taking a `Conn` are the operations themselves (the tests call them); `run`
//! parses nothing and only prints.

use std::time::Duration;

use crate::auth::external;
use crate::auth::tenant::TenantSettings;
use crate::auth::{self, oauth, Scope};
use crate::config::{
    ClientCommand, Command, DbArgs, JwtArgs, KeysCommand, TenantCommand, TokenCommand,
};
use crate::scim::time::{format_micros, now_micros};
use crate::storage::{self, Conn, Deleted, JwtKeyRow, StorageError};

type Result<T> = std::result::Result<T, String>;

fn db_error(e: StorageError) -> String {
    // Storage errors carry no secrets; the source chain helps an operator.
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

fn unknown_tenant(name: &str) -> String {
    format!("no tenant named `{name}` (see `scimitar tenant list`)")
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
        Err(format!(
            "invalid tenant name `{name}`: use 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        ))
    }
}

/// `90d`, `12h`, `30m`, `45s`, `2w`, or a sum such as `1d12h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || format!("invalid duration `{text}`: use e.g. 90d, 12h, 30m, 1w2d");
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
        any = true;
    }
    if !digits.is_empty() || !any || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

fn open(db: &DbArgs) -> Result<storage::PooledConn> {
    let pool =
        storage::open(&db.database_url, db.sqlite_synchronous, 1).map_err(|e| e.to_string())?;
    pool.get()
        .map_err(|e| format!("cannot connect to the database: {e}"))
}

fn scope(s: &str) -> Result<Scope> {
    Scope::parse(s).ok_or_else(|| format!("invalid scope `{s}`: use read, write or admin"))
}

fn require_tenant(db: &mut storage::Db<'_>, name: &str) -> std::result::Result<(), Err> {
    match storage::find_tenant(db, name)? {
        Some(_) => Ok(()),
        None => Err(Err::Msg(unknown_tenant(name))),
    }
}

/// An error inside a transaction: a message for the operator, or the database's.
enum Err {
    Msg(String),
    Db(StorageError),
}

impl From<StorageError> for Err {
    fn from(e: StorageError) -> Err {
        Err::Db(e)
    }
}

impl From<Err> for String {
    fn from(e: Err) -> String {
        match e {
            Err::Msg(m) => m,
            Err::Db(e) => db_error(e),
        }
    }
}

fn write<T>(
    conn: &mut Conn,
    f: impl FnOnce(&mut storage::Db<'_>) -> std::result::Result<T, Err>,
) -> Result<T> {
    conn.write_tx(f).map_err(String::from)
}

// ---------------------------------------------------------------------------------------
// Operations

pub fn create_tenant(conn: &mut Conn, name: &str) -> Result<()> {
    check_tenant_name(name)?;
    write(conn, |db| {
        match storage::create_tenant(db, name, now_micros()) {
            Err(StorageError::Conflict(_)) => {
                Err(Err::Msg(format!("tenant `{name}` already exists")))
            }
            other => Ok(other?),
        }
    })
}

pub fn delete_tenant(conn: &mut Conn, name: &str) -> Result<Deleted> {
    write(conn, |db| {
        require_tenant(db, name)?;
        Ok(storage::delete_tenant(db, name)?)
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
                .ok_or("the expiry is too far in the future")?,
        ),
        None => None,
    };
    write(conn, |db| {
        require_tenant(db, tenant)?;
        let (id, token) = auth::create_token(db, tenant, label, scope, expires, now)?;
        Ok((id, token, expires))
    })
}

/// Revokes a token; returns its tenant.
pub fn revoke_token(conn: &mut Conn, id: &str) -> Result<String> {
    write(conn, |db| {
        storage::revoke_token(db, id)?.ok_or_else(|| Err::Msg(format!("no token with id `{id}`")))
    })
}

/// Creates an OAuth client; returns (client id, secret).
pub fn create_client(
    conn: &mut Conn,
    tenant: &str,
    label: Option<&str>,
    scope: Scope,
) -> Result<(String, String)> {
    write(conn, |db| {
        require_tenant(db, tenant)?;
        Ok(oauth::create_client(
            db,
            tenant,
            label,
            scope,
            now_micros(),
        )?)
    })
}

pub fn revoke_client(conn: &mut Conn, id: &str) -> Result<String> {
    write(conn, |db| {
        storage::revoke_client(db, id)?
            .ok_or_else(|| Err::Msg(format!("no OAuth client with id `{id}`")))
    })
}

/// Makes a new current signing key; returns its id.
pub fn rotate_keys(conn: &mut Conn) -> Result<String> {
    write(conn, |db| Ok(oauth::rotate_keys(db, now_micros())?))
}

/// Changes a tenant's settings with `f`; returns the new settings.
pub fn update_settings(
    conn: &mut Conn,
    tenant: &str,
    f: impl FnOnce(&mut TenantSettings) -> Result<()>,
) -> Result<TenantSettings> {
    write(conn, |db| {
        let row =
            storage::find_tenant(db, tenant)?.ok_or_else(|| Err::Msg(unknown_tenant(tenant)))?;
        let mut s = TenantSettings::parse(&row.settings)
            .map_err(|e| Err::Msg(format!("the stored settings are not valid JSON: {e}")))?;
        f(&mut s).map_err(Err::Msg)?;
        storage::set_tenant_settings(db, tenant, &s.to_json())?;
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
    if issuer == oauth::ISSUER {
        return Err(format!("`{issuer}` is the issuer of Scimitar's own tokens"));
    }
    if issuer.is_empty() || audience.is_empty() {
        return Err("the issuer and the audience must not be empty".into());
    }
    if keys.is_empty() {
        return Err("give the issuer's keys with --jwks FILE or --pem FILE --alg ALG".into());
    }
    write(conn, |db| {
        require_tenant(db, tenant)?;
        match storage::set_jwt_issuer(db, tenant, issuer, audience, scope.as_str(), keys, now_micros()) {
            Err(StorageError::Conflict(_)) => Err(Err::Msg(format!(
                "another tenant already trusts issuer `{issuer}` with audience `{audience}`; a token must name one tenant"
            ))),
            other => Ok(other?),
        }
    })
}

pub fn remove_jwt_issuer(conn: &mut Conn, tenant: &str) -> Result<bool> {
    write(conn, |db| {
        require_tenant(db, tenant)?;
        Ok(storage::remove_jwt_issuer(db, tenant)?)
    })
}

/// The keys named by `--jwks` and `--pem` files.
pub fn load_keys(args: &JwtArgs) -> Result<Vec<JwtKeyRow>> {
    let mut keys = Vec::new();
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    for path in &args.jwks {
        let found = external::parse_jwks(&read(path)?, args.alg.as_deref())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        keys.extend(found);
    }
    for path in &args.pem {
        let alg = args
            .alg
            .as_deref()
            .ok_or("a PEM key needs --alg (e.g. RS256, ES256)")?;
        keys.push(
            external::parse_pem(&read(path)?, alg, args.kid.as_deref())
                .map_err(|e| format!("{}: {e}", path.display()))?,
        );
    }
    Ok(keys)
}

// ---------------------------------------------------------------------------------------
// The commands

fn when(micros: Option<i64>) -> String {
    match micros {
        // To the second: the microseconds are noise on a terminal.
        Some(m) => format_micros(m - m.rem_euclid(1_000_000)),
        None => "-".into(),
    }
}

/// Aligned columns.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Runs an admin command (anything but `serve` and `migrate`).
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Tenant(c) => tenant(c),
        Command::Token(c) => token(c),
        Command::Client(c) => client(c),
        Command::Keys(c) => keys(c),
        Command::Serve(_) | Command::Migrate(_) => Err("not an admin command".into()),
    }
}

fn tenant(c: TenantCommand) -> Result<()> {
    match c {
        TenantCommand::Create { name, db } => {
            create_tenant(&mut *open(&db)?, &name)?;
            eprintln!("created tenant `{name}`; next: scimitar token create --tenant {name}");
        }
        TenantCommand::List { db } => {
            let rows: Vec<Vec<String>> = storage::list_tenants(&mut open(&db)?.db())
                .map_err(db_error)?
                .into_iter()
                .map(|t| {
                    let settings = TenantSettings::parse(&t.settings)
                        .map(|s| s.describe())
                        .unwrap_or_else(|_| "settings: invalid".into());
                    vec![
                        t.id,
                        when(Some(t.created)),
                        t.user_count.to_string(),
                        t.group_count.to_string(),
                        t.token_count.to_string(),
                        t.client_count.to_string(),
                        t.issuer.unwrap_or_else(|| "-".into()),
                        settings,
                    ]
                })
                .collect();
            let headers = [
                "NAME",
                "CREATED",
                "USERS",
                "GROUPS",
                "TOKENS",
                "CLIENTS",
                "JWT ISSUER",
                "SETTINGS",
            ];
            println!("{}", table(&headers, &rows));
        }
        TenantCommand::Delete { name, yes, db } => {
            let mut conn = open(&db)?;
            if !yes {
                let known = storage::find_tenant(&mut conn.db(), &name).map_err(db_error)?;
                if known.is_none() {
                    return Err(unknown_tenant(&name));
                }
                return Err(format!(
                    "this deletes tenant `{name}` and all its users, groups, events and credentials; \
                     nothing was changed. Re-run with --yes to delete it"
                ));
            }
            let d = delete_tenant(&mut conn, &name)?;
            eprintln!(
                "deleted tenant `{name}`: {} resources, {} events, {} credentials",
                d.resources, d.events, d.credentials
            );
            if name == auth::DEFAULT_TENANT {
                eprintln!("(`serve` creates the default tenant again at its next start)");
            }
        }
        TenantCommand::Set {
            name,
            strict,
            lenient,
            server_default,
            tolerances,
            db,
        } => {
            if !strict && !lenient && !server_default && tolerances.is_empty() {
                return Err(
                    "nothing to set: give --strict, --lenient, --server-default or --tolerance NAME=on|off"
                        .into(),
                );
            }
            let s = update_settings(&mut *open(&db)?, &name, |s| {
                if server_default {
                    s.reset();
                }
                if strict || lenient {
                    s.set_all(lenient);
                }
                for t in &tolerances {
                    let (k, v) = t
                        .split_once('=')
                        .ok_or_else(|| format!("`{t}`: use NAME=on or NAME=off"))?;
                    let on = match v {
                        "on" | "true" => true,
                        "off" | "false" => false,
                        _ => return Err(format!("`{t}`: use NAME=on or NAME=off")),
                    };
                    s.set(k, on)?;
                }
                Ok(())
            })?;
            eprintln!("tenant `{name}`: {}", s.describe());
        }
        TenantCommand::Jwt(args) => jwt(args)?,
    }
    Ok(())
}

fn jwt(args: JwtArgs) -> Result<()> {
    let mut conn = open(&args.db)?;
    let name = args.name.clone();
    if args.remove {
        if remove_jwt_issuer(&mut conn, &name)? {
            eprintln!("tenant `{name}` no longer trusts an external issuer");
        } else {
            eprintln!("tenant `{name}` had no external issuer");
        }
        return Ok(());
    }
    match (&args.issuer, &args.audience) {
        (Some(issuer), Some(audience)) => {
            let keys = load_keys(&args)?;
            set_jwt_issuer(
                &mut conn,
                &name,
                issuer,
                audience,
                scope(&args.scope)?,
                &keys,
            )?;
            eprintln!(
                "tenant `{name}` trusts JWTs from `{issuer}` for audience `{audience}` ({} key(s), scope {})",
                keys.len(),
                args.scope
            );
            for k in &keys {
                eprintln!(
                    "  {} {} {}",
                    k.format,
                    k.alg,
                    k.kid.as_deref().unwrap_or("(no kid)")
                );
            }
        }
        (None, None) if args.jwks.is_empty() && args.pem.is_empty() => {
            let mut db = conn.db();
            if storage::find_tenant(&mut db, &name)
                .map_err(db_error)?
                .is_none()
            {
                return Err(unknown_tenant(&name));
            }
            match storage::tenant_issuer(&mut db, &name).map_err(db_error)? {
                None => println!("tenant `{name}` trusts no external issuer"),
                Some(i) => {
                    println!(
                        "issuer: {}\naudience: {}\nscope: {}",
                        i.issuer, i.audience, i.scope
                    );
                    for k in storage::jwt_keys(&mut db, &name).map_err(db_error)? {
                        println!(
                            "key: {} {} {}",
                            k.format,
                            k.alg,
                            k.kid.as_deref().unwrap_or("(no kid)")
                        );
                    }
                }
            }
        }
        _ => return Err("give both --issuer and --audience, with --jwks or --pem".into()),
    }
    Ok(())
}

fn token(c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Create {
            tenant,
            label,
            scope: s,
            expires_in,
            db,
        } => {
            let expires_in = expires_in.as_deref().map(parse_duration).transpose()?;
            let (id, token, expires) = create_token(
                &mut *open(&db)?,
                &tenant,
                label.as_deref(),
                scope(&s)?,
                expires_in,
            )?;
            eprintln!(
                "created token {id} for tenant `{tenant}` (scope {s}, expires {}); it is shown once:",
                expires.map_or("never".into(), |e| when(Some(e)))
            );
            println!("{token}");
        }
        TokenCommand::List { tenant, db } => {
            let mut conn = open(&db)?;
            let mut d = conn.db();
            if storage::find_tenant(&mut d, &tenant)
                .map_err(db_error)?
                .is_none()
            {
                return Err(unknown_tenant(&tenant));
            }
            let now = now_micros();
            let rows: Vec<Vec<String>> = storage::list_tokens(&mut d, &tenant)
                .map_err(db_error)?
                .into_iter()
                .map(|t| {
                    let status = if t.revoked {
                        "revoked"
                    } else if t.expires.is_some_and(|e| e <= now) {
                        "expired"
                    } else {
                        "active"
                    };
                    vec![
                        t.id,
                        t.label.unwrap_or_else(|| "-".into()),
                        t.scope,
                        when(Some(t.created)),
                        when(t.last_used),
                        when(t.expires),
                        status.into(),
                    ]
                })
                .collect();
            let headers = [
                "ID",
                "LABEL",
                "SCOPE",
                "CREATED",
                "LAST USED",
                "EXPIRES",
                "STATUS",
            ];
            println!("{}", table(&headers, &rows));
        }
        TokenCommand::Revoke { id, db } => {
            let tenant = revoke_token(&mut *open(&db)?, &id)?;
            eprintln!("revoked token {id} of tenant `{tenant}`");
        }
    }
    Ok(())
}

fn client(c: ClientCommand) -> Result<()> {
    match c {
        ClientCommand::Create {
            tenant,
            label,
            scope: s,
            db,
        } => {
            let (id, secret) =
                create_client(&mut *open(&db)?, &tenant, label.as_deref(), scope(&s)?)?;
            eprintln!(
                "created OAuth client for tenant `{tenant}` (scope {s}); client id, then secret (shown once):"
            );
            println!("{id}\n{secret}");
        }
        ClientCommand::List { tenant, db } => {
            let mut conn = open(&db)?;
            let mut d = conn.db();
            if storage::find_tenant(&mut d, &tenant)
                .map_err(db_error)?
                .is_none()
            {
                return Err(unknown_tenant(&tenant));
            }
            let rows: Vec<Vec<String>> = storage::list_clients(&mut d, &tenant)
                .map_err(db_error)?
                .into_iter()
                .map(|c| {
                    vec![
                        c.id,
                        c.label.unwrap_or_else(|| "-".into()),
                        c.scope,
                        when(Some(c.created)),
                        when(c.last_used),
                        if c.revoked { "revoked" } else { "active" }.into(),
                    ]
                })
                .collect();
            let headers = [
                "CLIENT ID",
                "LABEL",
                "SCOPE",
                "CREATED",
                "LAST USED",
                "STATUS",
            ];
            println!("{}", table(&headers, &rows));
        }
        ClientCommand::Revoke { id, db } => {
            let tenant = revoke_client(&mut *open(&db)?, &id)?;
            eprintln!("revoked OAuth client {id} of tenant `{tenant}`");
        }
    }
    Ok(())
}

fn keys(c: KeysCommand) -> Result<()> {
    match c {
        KeysCommand::Rotate { db } => {
            let kid = rotate_keys(&mut *open(&db)?)?;
            eprintln!(
                "signing key {kid} is now current; earlier keys keep verifying for {} s (until the tokens they signed expire)",
                oauth::RETIRED_KEY_GRACE_SECS
            );
            println!("{kid}");
        }
        KeysCommand::List { db } => {
            let rows: Vec<Vec<String>> = storage::list_signing_keys(&mut open(&db)?.db())
                .map_err(db_error)?
                .into_iter()
                .map(|k| {
                    let until = k
                        .retired_at
                        .map(|r| r + oauth::RETIRED_KEY_GRACE_SECS * 1_000_000);
                    vec![
                        k.kid,
                        k.alg,
                        when(Some(k.created)),
                        when(k.retired_at),
                        if k.retired_at.is_none() {
                            "-".into()
                        } else {
                            when(until)
                        },
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["KID", "ALG", "CREATED", "RETIRED", "VERIFIES UNTIL"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_duration("1d12h").unwrap(),
            Duration::from_secs(129_600)
        );
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(1_209_600)
        );
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        for bad in ["", "10", "d", "1x", "0s", "-1d", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_names() {
        for ok in ["acme", "Acme-2", "a.b_c", "0"] {
            assert!(check_tenant_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_tenant_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y");
    }
}
