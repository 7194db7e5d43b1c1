//! The admin commands (`scimitar tenant|token|client|keys ...`): each opens the database
//! named by `--database-url` exactly as `serve` does (migrating it if needed), calls one
//! operator use case (`provisioning::tenancy`) and prints the result. Secrets are printed
//! once, alone on standard output; everything else goes to standard error. Parses command
//! arguments (durations, key files) and prints; decides nothing itself.

use std::time::Duration;

use crate::auth::external;
use crate::auth::tenant::TenantSettings;
use crate::auth::{self, oauth, Scope};
use crate::config::{
    BackupArgs, ClientCommand, Command, CredentialCommand, DbArgs, JwtArgs, KeysCommand,
    NewCredential, TenantCommand, TokenCommand,
};
use crate::provisioning::{self, tenancy};
use crate::scim::time::{format_micros, now_micros};
use crate::storage::pool::{self, PooledConn};
use crate::storage::tenancy::{Credential, JwtKeyRow};
use crate::storage::StorageError;

/// What a command can fail with: a use case's error, or a command line that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    UseCase(#[from] provisioning::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The arguments: a bad duration, a key file that cannot be read, a missing flag.
    #[error("{0}")]
    Usage(String),
}

type Result<T> = std::result::Result<T, CliError>;

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// `90d`, `12h`, `30m`, `45s`, `2w`, or a sum such as `1d12h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        CliError::Usage(format!(
            "invalid duration `{text}`: use e.g. 90d, 12h, 30m, 1w2d"
        ))
    };
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

fn open(db: &DbArgs) -> Result<PooledConn> {
    let pool = pool::open(&db.database_url, db.sqlite_synchronous, 1)?;
    pool.get()
        .map_err(|e| usage(format!("cannot connect to the database: {e}")))
}

fn scope(s: &str) -> Result<Scope> {
    Scope::parse(s).ok_or_else(|| usage(format!("invalid scope `{s}`: use read, write or admin")))
}

/// The keys named by `--jwks` and `--pem` files.
pub fn load_keys(args: &JwtArgs) -> Result<Vec<JwtKeyRow>> {
    let mut keys = Vec::new();
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))
    };
    for path in &args.jwks {
        let found = external::parse_jwks(&read(path)?, args.alg.as_deref())
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        keys.extend(found);
    }
    for path in &args.pem {
        let alg = args
            .alg
            .as_deref()
            .ok_or_else(|| usage("a PEM key needs --alg (e.g. RS256, ES256)"))?;
        keys.push(
            external::parse_pem(&read(path)?, alg, args.kid.as_deref())
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?,
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
        Command::Backup(a) => backup(a),
        Command::Serve(_) | Command::Migrate(_) => Err(usage("not an admin command")),
    }
}

/// A spinner on standard error while long work runs; it draws nothing when standard error
/// is not a terminal (indicatif's own check), so scripts and logs stay clean.
fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `scimitar backup --to PATH`: a progress bar in pages on a terminal, one line at the end.
fn backup(a: BackupArgs) -> Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} pages ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("backing up");
    let pages = tenancy::backup(&a.db.database_url, &a.to, &mut |copied, total| {
        bar.set_length(total);
        bar.set_position(copied);
    });
    bar.finish_and_clear();
    let pages = pages?;
    eprintln!("backed up {pages} pages to {}", a.to.display());
    Ok(())
}

fn tenant(c: TenantCommand) -> Result<()> {
    match c {
        TenantCommand::Create { name, db } => {
            tenancy::create_tenant(&mut *open(&db)?, &name)?;
            eprintln!("created tenant `{name}`; next: scimitar token create --tenant {name}");
        }
        TenantCommand::List { db } => {
            let rows: Vec<Vec<String>> = tenancy::list_tenants(&mut *open(&db)?)?
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
                tenancy::require_tenant(&mut conn, &name)?;
                return Err(usage(format!(
                    "this deletes tenant `{name}` and all its users, groups, events and credentials; \
                     nothing was changed. Re-run with --yes to delete it"
                )));
            }
            let bar = spinner(format!("deleting tenant `{name}`"));
            let d = tenancy::delete_tenant_with(&mut conn, &name, &mut |table| {
                bar.set_message(format!("deleting tenant `{name}`: {table} done"));
                bar.inc(1);
            });
            bar.finish_and_clear();
            let d = d?;
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
                return Err(usage(
                    "nothing to set: give --strict, --lenient, --server-default or --tolerance NAME=on|off",
                ));
            }
            let s = tenancy::update_settings(&mut *open(&db)?, &name, |s| {
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
        if tenancy::remove_jwt_issuer(&mut conn, &name)? {
            eprintln!("tenant `{name}` no longer trusts an external issuer");
        } else {
            eprintln!("tenant `{name}` had no external issuer");
        }
        return Ok(());
    }
    match (&args.issuer, &args.audience) {
        (Some(issuer), Some(audience)) => {
            let keys = load_keys(&args)?;
            tenancy::set_jwt_issuer(
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
            match tenancy::jwt_issuer(&mut conn, &name)? {
                None => println!("tenant `{name}` trusts no external issuer"),
                Some((i, keys)) => {
                    println!(
                        "issuer: {}\naudience: {}\nscope: {}",
                        i.issuer, i.audience, i.scope
                    );
                    for k in keys {
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
        _ => {
            return Err(usage(
                "give both --issuer and --audience, with --jwks or --pem",
            ))
        }
    }
    Ok(())
}

/// `token list|revoke` and `client list|revoke`.
fn manage(c: CredentialCommand, kind: Credential) -> Result<()> {
    match c {
        CredentialCommand::List { tenant, db } => list(&db, kind, &tenant),
        CredentialCommand::Revoke { id, db } => revoke(&db, kind, &id),
    }
}

/// `token revoke` and `client revoke`.
fn revoke(db: &DbArgs, kind: Credential, id: &str) -> Result<()> {
    let tenant = tenancy::revoke(&mut *open(db)?, kind, id)?;
    eprintln!("revoked {} {id} of tenant `{tenant}`", kind.name());
    Ok(())
}

/// `token list` and `client list`: a table of the tenant's credentials of one kind (clients
/// have no expiry column).
fn list(db: &DbArgs, kind: Credential, tenant: &str) -> Result<()> {
    let now = now_micros();
    let tokens = kind == Credential::Token;
    let rows: Vec<Vec<String>> = tenancy::list_credentials(&mut *open(db)?, kind, tenant)?
        .into_iter()
        .map(|c| {
            let status = if c.revoked {
                "revoked"
            } else if c.expires.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            let mut row = vec![
                c.id,
                c.label.unwrap_or_else(|| "-".into()),
                c.scope,
                when(Some(c.created)),
                when(c.last_used),
            ];
            row.extend(tokens.then(|| when(c.expires)));
            row.push(status.into());
            row
        })
        .collect();
    let id = if tokens { "ID" } else { "CLIENT ID" };
    let mut headers = vec![id, "LABEL", "SCOPE", "CREATED", "LAST USED"];
    headers.extend(tokens.then_some("EXPIRES"));
    headers.push("STATUS");
    println!("{}", table(&headers, &rows));
    Ok(())
}

fn token(c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Create {
            new,
            expires_in,
            db,
        } => {
            let NewCredential {
                tenant,
                label,
                scope: s,
            } = new;
            let expires_in = expires_in.as_deref().map(parse_duration).transpose()?;
            let (id, token, expires) = tenancy::create_token(
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
        TokenCommand::Manage(m) => manage(m, Credential::Token)?,
    }
    Ok(())
}

fn client(c: ClientCommand) -> Result<()> {
    match c {
        ClientCommand::Create { new, db } => {
            let NewCredential {
                tenant,
                label,
                scope: s,
            } = new;
            let (id, secret) =
                tenancy::create_client(&mut *open(&db)?, &tenant, label.as_deref(), scope(&s)?)?;
            eprintln!(
                "created OAuth client for tenant `{tenant}` (scope {s}); client id, then secret (shown once):"
            );
            println!("{id}\n{secret}");
        }
        ClientCommand::Manage(m) => manage(m, Credential::Client)?,
    }
    Ok(())
}

fn keys(c: KeysCommand) -> Result<()> {
    match c {
        KeysCommand::Rotate { db } => {
            let kid = tenancy::rotate_keys(&mut *open(&db)?)?;
            eprintln!(
                "signing key {kid} is now current; earlier keys keep verifying for {} s (until the tokens they signed expire)",
                oauth::RETIRED_KEY_GRACE_SECS
            );
            println!("{kid}");
        }
        KeysCommand::List { db } => {
            let rows: Vec<Vec<String>> = tenancy::list_signing_keys(&mut *open(&db)?)?
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
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y");
    }
}
