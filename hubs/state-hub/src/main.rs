//! `state-hub`: serve, migrate, check the config; export, import and verify the database.

use clap::{Parser, Subcommand};
use state_hub::config::{self, StateHubConfig};
use state_hub::database::cli as database;
use state_hub::startup::{self, Application};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "state-hub", version, about = "Hubplane state hub")]
struct Cli {
    /// Config file (TOML); `HUB_*` environment variables override its keys.
    #[arg(long, short, env = "STATE_HUB_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate and serve (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the config (and secrets it names) and exit.
    Configtest,
    /// Print the commented example config.
    DefaultConfig,
    /// Exit 0 when the configured hub answers /readyz with 200.
    Healthcheck,
    /// Write the plans, decisions and journal to a JSON export (a consistent snapshot; the hub
    /// may keep serving).
    Export(database::ExportArgs),
    /// Load an export into an empty database: everything is checked first, the journal is sealed
    /// into a new hash chain and verified, all in one transaction.
    Import(database::ImportArgs),
    /// Check a database offline, e.g. after a restore: schema version, the journal's hash chain,
    /// record counts. Exits 1 when a check fails.
    Verify(database::VerifyArgs),
}

fn load(path: Option<&std::path::Path>) -> Result<StateHubConfig, ExitCode> {
    match StateHubConfig::load(path) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                eprintln!("config warning: {w}");
            }
            Ok(cfg)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command.unwrap_or(Command::Serve) {
        // Offline database work: no serving, no logging setup, and `--database-url` may stand in
        // for the whole config file.
        Command::Export(args) => return database::export(cli.config.as_deref(), args).await,
        Command::Import(args) => return database::import(cli.config.as_deref(), args).await,
        Command::Verify(args) => return database::verify(cli.config.as_deref(), args).await,
        other => other,
    };
    if let Command::DefaultConfig = command {
        print!("{}", config::EXAMPLE);
        return ExitCode::SUCCESS;
    }
    let cfg = match load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    hub_core::telemetry::init(&cfg.log);
    let result = match command {
        Command::Configtest => {
            println!("config ok");
            Ok(())
        }
        Command::Migrate => startup::migrate(&cfg).await.map(|applied| {
            if applied.is_empty() {
                println!("schema is up to date");
            }
            for m in applied {
                println!("applied {m}");
            }
        }),
        Command::Healthcheck => hub_core::lifecycle::healthcheck(cfg.server.listen).await,
        // Answered before the config was loaded.
        Command::DefaultConfig | Command::Export(_) | Command::Import(_) | Command::Verify(_) => {
            Ok(())
        }
        Command::Serve => match Application::build(cfg).await {
            Ok(app) => {
                tracing::info!(port = app.port(), "state hub ready");
                app.run_until_stopped().await
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "state hub failed");
            eprintln!("state-hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}
