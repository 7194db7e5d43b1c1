//! The `scimitar` command: serve (default), migrate, and the admin commands (`cli`).

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;

use scimitar::config::{Cli, Command, LogFormat, ServeArgs};
use scimitar::errors::chain;
use scimitar::{cli, server, storage};

fn main() -> ExitCode {
    let args = Cli::parse();
    let format = match &args.command {
        Some(Command::Serve(a)) => a.ops.log_format,
        None => ServeArgs::from_env().ops.log_format,
        Some(_) => LogFormat::Text,
    };
    server::init_logging(format);
    let result: Result<(), Box<dyn Error>> = match args.command {
        None => serve(ServeArgs::from_env()),
        Some(Command::Serve(a)) => serve(*a),
        Some(Command::Migrate(db)) => {
            storage::pool::open(&db.database_url, db.sqlite_synchronous, 1)
                .map(|_| eprintln!("migrations applied"))
                .map_err(Into::into)
        }
        Some(admin_command) => cli::run(admin_command).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimitar: {}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn Error>> {
    let (state, generated) = server::build_state(&args)?;
    if let Some(token) = generated {
        // Shown once; only its hash is stored.
        println!(
            "Generated an API token for the default tenant (shown once, keep it safe):\n{token}"
        );
    }
    actix_web::rt::System::new()
        .block_on(server::serve(args, state))
        .map_err(|e| format!("server failed: {e}").into())
}
