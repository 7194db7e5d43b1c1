//! Typed configuration: command-line flags, each with an environment variable. No globals.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::storage::SqliteSync;

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
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
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
    #[arg(long, env = "SCIMITAR_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

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

    /// Turn off every client-dialect tolerance (for conformance testing); see README.
    #[arg(long, env = "SCIMITAR_STRICT")]
    pub strict: bool,

    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "SCIMITAR_WORKERS")]
    pub workers: Option<usize>,
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
