//! Typed configuration: command-line flags, each with an environment variable, and the value
//! types they parse into. No globals. Depends on no other module of the crate: everything may
//! read its configuration, and configuration knows nothing of what reads it.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// How hard SQLite syncs to disk. `Normal` (with WAL) survives a killed process;
/// `Full` also survives power loss, at a large cost in write rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSync {
    Normal,
    Full,
}

/// `N/second` or `N/minute` (`--rate-limit 600/min`); a bare `N` is per minute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<RateLimit, String> {
        let (n, unit) = s.split_once('/').unwrap_or((s, "minute"));
        let requests: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{s}`: expected N/second or N/minute with N > 0"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            other => return Err(format!("`{other}`: the period is `second` or `minute`")),
        };
        Ok(RateLimit { requests, per })
    }
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "scimitar",
    version,
    about = "A SCIM 2.0 provisioning server (RFC 7643, RFC 7644)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the SCIM API (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Manage tenants: create, list, delete, dialect settings, external JWT issuer.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage a tenant's OAuth 2.0 clients (client credentials grant).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the keys that sign access tokens from POST /oauth/token.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy a SQLite database, consistently, while servers keep writing to it (SQLite's
    /// online backup API). Postgres: use pg_dump.
    Backup(BackupArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where the copy goes: a new file (an existing one is never overwritten).
    #[arg(long, value_name = "PATH")]
    pub to: std::path::PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Letters, digits, `.`, `_` and `-`, at most 64.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tenants with their sizes, credentials and settings.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete a tenant and all its data (users, groups, events, credentials).
    Delete {
        name: String,
        /// Really delete; without it nothing changes.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a tenant's client-dialect tolerances (see README, "Client dialects").
    Set {
        name: String,
        /// Turn every tolerance off for this tenant.
        #[arg(long, conflicts_with_all = ["lenient", "server_default"])]
        strict: bool,
        /// Turn every tolerance on for this tenant.
        #[arg(long, conflicts_with = "server_default")]
        lenient: bool,
        /// Follow the server's setting (`serve --strict`) for every tolerance.
        #[arg(long)]
        server_default: bool,
        /// One tolerance, NAME=on|off (applied after the flags above); repeatable.
        #[arg(long = "tolerance", value_name = "NAME=on|off")]
        tolerances: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Trust JWTs from the tenant's own issuer (replaces any previous configuration), show
    /// it (no options), or remove it (--remove).
    Jwt(JwtArgs),
}

#[derive(Debug, Args)]
pub struct JwtArgs {
    pub name: String,
    /// The `iss` the tokens carry, exactly.
    #[arg(long, requires = "audience")]
    pub issuer: Option<String>,
    /// The `aud` the tokens must carry.
    #[arg(long, requires = "issuer")]
    pub audience: Option<String>,
    /// A JWKS file (JSON Web Key Set) with the issuer's public keys; repeatable.
    #[arg(long, value_name = "FILE")]
    pub jwks: Vec<std::path::PathBuf>,
    /// A PEM public key file; repeatable (each pinned to --alg).
    #[arg(long, value_name = "FILE")]
    pub pem: Vec<std::path::PathBuf>,
    /// The algorithm a PEM key (or a JWKS key that names none) is pinned to, e.g. RS256.
    #[arg(long)]
    pub alg: Option<String>,
    /// The `kid` a PEM key answers to (optional).
    #[arg(long)]
    pub kid: Option<String>,
    /// What the tokens may do.
    #[arg(long, default_value = "write", value_parser = ["read", "write", "admin"])]
    pub scope: String,
    /// Stop trusting the tenant's issuer.
    #[arg(long, conflicts_with_all = ["issuer", "audience", "jwks", "pem"])]
    pub remove: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token: the token alone on standard output, details on standard error.
    Create {
        #[command(flatten)]
        new: NewCredential,
        /// Lifetime, e.g. 90d, 12h, 30m, 1w2d (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    #[command(flatten)]
    Manage(CredentialCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an OAuth client: its id, then its secret, each alone on a line of standard output.
    Create {
        #[command(flatten)]
        new: NewCredential,
        #[command(flatten)]
        db: DbArgs,
    },
    #[command(flatten)]
    Manage(CredentialCommand),
}

/// What `token create` and `client create` both take: whose credential, its label, its scope.
#[derive(Debug, Args)]
pub struct NewCredential {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub label: Option<String>,
    /// `read` may only GET and search; `write` may do everything in its tenant through
    /// SCIM; `admin` may use the admin and product API (/api/v1) and read SCIM.
    #[arg(long, default_value = "write", value_parser = ["read", "write", "admin"])]
    pub scope: String,
}

/// `list` and `revoke`, the same for tokens and OAuth clients.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// List a tenant's credentials of this kind (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke one by id; it (and a client's access tokens) is refused from the next request on.
    Revoke {
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key current; older keys verify until their tokens have expired.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the signing keys (ids and dates, never the keys).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Clone, Debug, Args)]
pub struct DbArgs {
    /// Database: sqlite://PATH or postgres://USER@HOST:PORT/DB (the scheme picks the backend).
    #[arg(
        long,
        env = "SCIMITAR_DATABASE_URL",
        default_value = "sqlite://scimitar.db"
    )]
    pub database_url: String,

    /// Connections in the database pool.
    #[arg(long, env = "SCIMITAR_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,

    /// SQLite durability: `normal` survives a killed process (WAL), `full` also power loss.
    #[arg(
        long,
        env = "SCIMITAR_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "normal"
    )]
    pub sqlite_synchronous: SqliteSync,
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCIMITAR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub db: DbArgs,

    /// Public base URL of the SCIM API, used in meta.location and Location headers
    /// [default: http://LISTEN/scim/v2].
    #[arg(long, env = "SCIMITAR_BASE_URL")]
    pub base_url: Option<String>,

    /// A bearer token accepted for the default tenant (only its hash is kept in memory).
    #[arg(long, env = "SCIMITAR_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,

    /// Largest accepted request body, in bytes (answered with 413 above it).
    #[arg(long, env = "SCIMITAR_MAX_BODY_BYTES", default_value_t = 2_097_152)]
    pub max_body_bytes: usize,

    /// The most operations one /Bulk request may carry (maxOperations; 413 above it).
    #[arg(long, env = "SCIMITAR_BULK_MAX_OPERATIONS", default_value_t = 1000)]
    pub bulk_max_operations: usize,

    /// Largest page a list returns (advertised as filter.maxResults).
    #[arg(long, env = "SCIMITAR_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: i64,

    /// The most group members one request may add, remove or set (413 above it).
    #[arg(
        long,
        env = "SCIMITAR_MAX_MEMBERS_PER_REQUEST",
        default_value_t = 10_000
    )]
    pub max_members_per_request: usize,

    /// The longest one database statement may run, in ms (0: no limit). A list or search
    /// that runs out answers 400 tooMany; a write, 503 with Retry-After (it changes nothing).
    #[arg(
        long,
        env = "SCIMITAR_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub db_statement_timeout_ms: u64,

    /// The most values one multi-valued attribute of a stored resource may hold (group
    /// `members` have --max-members-per-request); above it 400 invalidValue.
    #[arg(
        long,
        env = "SCIMITAR_MAX_VALUES_PER_ATTRIBUTE",
        default_value_t = 1000
    )]
    pub max_values_per_attribute: usize,

    /// The most bytes one stored resource's JSON may take; above it 413.
    #[arg(long, env = "SCIMITAR_MAX_RESOURCE_BYTES", default_value_t = 262_144)]
    pub max_resource_bytes: usize,

    /// How often, in seconds, tables changed by more than 10 % since their last analyze are
    /// analyzed in the background (Postgres `ANALYZE`, SQLite `PRAGMA optimize`); 0: never.
    #[arg(long, env = "SCIMITAR_DB_ANALYZE_EVERY_SECS", default_value_t = 30)]
    pub db_analyze_every_secs: u64,

    /// How often, in seconds, the background thread folds the block counts' delta rows
    /// (Postgres `resource_blocks`, which gains a row per write statement; SQLite has nothing
    /// to fold); independent of --db-analyze-every-secs; 0: never.
    #[arg(long, env = "SCIMITAR_DB_FOLD_EVERY_SECS", default_value_t = 30)]
    pub db_fold_every_secs: u64,

    /// The most requests of one tenant that run at once; more wait a little, then 429 for that
    /// tenant only [default: half of --db-pool-size, at least 1].
    #[arg(long, env = "SCIMITAR_TENANT_MAX_CONCURRENCY")]
    pub tenant_max_concurrency: Option<usize>,

    /// A read (GET/HEAD) admitted while its tenant already runs this many others runs at low CPU
    /// priority (Linux: the SCHED_IDLE class, on a pool of its own), so tenants with fewer requests in
    /// flight get the cores first; 0: off.
    #[arg(long, env = "SCIMITAR_TENANT_LOW_PRIORITY_AFTER", default_value_t = 1)]
    pub tenant_low_priority_after: usize,

    /// Postgres: at most this many of those low-priority reads run at once while another tenant
    /// runs, or ran within the last second, a request at normal priority; the others wait
    /// their turn without a connection (at most 5 s). Their statements run in the database's
    /// processes, whose CPU priority the server cannot lower. Alone, a tenant's reads are not
    /// held back. SQLite lowers the threads' priority instead; 0: no limit.
    #[arg(long, env = "SCIMITAR_DB_LOW_PRIORITY_SLOTS", default_value_t = 1)]
    pub db_low_priority_slots: usize,

    /// Turn off every client-dialect tolerance (for conformance testing); see README.
    #[arg(long, env = "SCIMITAR_STRICT")]
    pub strict: bool,

    /// Requests per credential, `N/second` or `N/minute` (bare N: per minute); above it 429.
    /// Counted in this process: each instance enforces it on its own share [default: off].
    #[arg(long, env = "SCIMITAR_RATE_LIMIT")]
    pub rate_limit: Option<RateLimit>,

    /// Admin console sign-in attempts per client address, `N/second` or `N/minute`; above it
    /// 429. Counted in this process.
    #[arg(
        long,
        env = "SCIMITAR_ADMIN_SIGN_IN_LIMIT",
        default_value = "10/minute"
    )]
    pub admin_sign_in_limit: RateLimit,

    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "SCIMITAR_WORKERS")]
    pub workers: Option<usize>,

    #[command(flatten)]
    pub webhooks: WebhookArgs,

    #[command(flatten)]
    pub ops: OpsArgs,
}

/// Logs and metrics.
#[derive(Clone, Debug, Args)]
pub struct OpsArgs {
    /// Log lines as `text` or `json` (one object per line); RUST_LOG sets the levels
    /// (default `info`; the access log's target is `scimitar::access`).
    #[arg(long, env = "SCIMITAR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log request targets verbatim, query values included (filter values, userNames,
    /// emails). For local debugging only: the log then holds personal data.
    #[arg(long, env = "SCIMITAR_LOG_UNREDACTED")]
    pub log_unredacted: bool,

    /// Serve /metrics (and /healthz, /readyz) on this separate address instead of the main
    /// one [default: /metrics on the main address].
    #[arg(long, env = "SCIMITAR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Keep request and delivery metrics per tenant (one series per tenant: mind the
    /// cardinality with many tenants; tenant names become visible to whoever reads /metrics).
    #[arg(long, env = "SCIMITAR_METRICS_PER_TENANT")]
    pub metrics_per_tenant: bool,
}

/// Webhook delivery: concurrency, the destination policy, trust, timeouts, the retry
/// schedule and retention.
#[derive(Clone, Debug, Args)]
pub struct WebhookArgs {
    /// Deprecated (attempts run concurrently up to --webhook-concurrency): 0 still means
    /// this instance delivers nothing and leaves deliveries to other instances; any other
    /// value is ignored.
    #[arg(long, env = "SCIMITAR_WEBHOOK_WORKERS", default_value_t = 2)]
    pub webhook_workers: usize,

    /// Delivery attempts in flight at once in this instance (0: deliver nothing here).
    #[arg(long, env = "SCIMITAR_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,

    /// Where deliveries may go: a comma list of `external` (public unicast addresses),
    /// `loopback`, `private` (RFC 1918, RFC 4193, 100.64.0.0/10), `*` (anything), CIDRs and
    /// host names with `*` globs. Checked when a subscription is registered and at every
    /// connection.
    #[arg(
        long,
        env = "SCIMITAR_WEBHOOK_ALLOWED_HOSTS",
        default_value = "external"
    )]
    pub webhook_allowed_hosts: String,

    /// A PEM bundle of CA certificates trusted for https receivers, besides the system's.
    #[arg(long, env = "SCIMITAR_WEBHOOK_CA_FILE", value_name = "PATH")]
    pub webhook_ca_file: Option<std::path::PathBuf>,

    /// How long one delivery attempt may take, in milliseconds.
    #[arg(long, env = "SCIMITAR_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// First retry delay in milliseconds; it doubles with each failure (with jitter).
    #[arg(long, env = "SCIMITAR_WEBHOOK_BACKOFF_MS", default_value_t = 1_000)]
    pub webhook_backoff_ms: u64,

    /// The longest retry delay, in milliseconds.
    #[arg(
        long,
        env = "SCIMITAR_WEBHOOK_MAX_BACKOFF_MS",
        default_value_t = 600_000
    )]
    pub webhook_max_backoff_ms: u64,

    /// How long after it was queued a delivery is retried before it becomes a dead letter,
    /// in seconds [default: 3 days].
    #[arg(
        long,
        env = "SCIMITAR_WEBHOOK_RETRY_HORIZON_SECS",
        default_value_t = 259_200
    )]
    pub webhook_retry_horizon_secs: u64,

    /// How often idle delivery looks for deliveries queued by other instances, in
    /// milliseconds (this instance's own changes wake it at once).
    #[arg(long, env = "SCIMITAR_WEBHOOK_POLL_MS", default_value_t = 500)]
    pub webhook_poll_ms: u64,

    /// How long delivered deliveries and dead letters are kept once settled, in hours.
    #[arg(long, env = "SCIMITAR_WEBHOOK_RETENTION_HOURS", default_value_t = 168)]
    pub webhook_retention_hours: u64,

    /// The most webhook subscriptions one tenant may have.
    #[arg(long, env = "SCIMITAR_WEBHOOK_MAX_SUBSCRIPTIONS", default_value_t = 20)]
    pub webhook_max_subscriptions: usize,
}

impl ServeArgs {
    /// The arguments as if `scimitar serve` ran with no flags (environment still applies).
    pub fn from_env() -> ServeArgs {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::parse_from(["scimitar"]).serve
    }

    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => format!("http://{}/scim/v2", self.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rate_limits() {
        let m = |n, s| RateLimit {
            requests: n,
            per: Duration::from_secs(s),
        };
        assert_eq!("600".parse::<RateLimit>().unwrap(), m(600, 60));
        assert_eq!("10/second".parse::<RateLimit>().unwrap(), m(10, 1));
        assert_eq!("10/s".parse::<RateLimit>().unwrap(), m(10, 1));
        assert_eq!("100/min".parse::<RateLimit>().unwrap(), m(100, 60));
        for bad in ["0/s", "x", "10/hour", "-1"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }
}
