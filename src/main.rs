//! The `scimitar` command: serve (default) and admin commands.

use std::process::ExitCode;

use clap::Parser;

use scimitar::config::{Cli, Command, ServeArgs};
use scimitar::{admin, server, storage};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(ServeArgs::from_env()),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Migrate(db)) => storage::open(&db.database_url, db.sqlite_synchronous, 1)
            .map(|_| eprintln!("migrations applied"))
            .map_err(|e| e.to_string()),
        Some(admin_command) => admin::run(admin_command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimitar: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let (state, generated) = server::build_state(&args)?;
    if let Some(token) = generated {
        // Shown once; only its hash is stored.
        println!(
            "Generated an API token for the default tenant (shown once, keep it safe):\n{token}"
        );
    }
    actix_web::rt::System::new()
        .block_on(server::serve(args, state))
        .map_err(|e| format!("server failed: {e}"))
}
