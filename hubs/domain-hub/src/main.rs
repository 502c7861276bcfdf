//! `domain-hub`: serve, migrate, check the config, print the example config, health-check,
//! verify a database.

use clap::{Parser, Subcommand};
use domain_hub::config::{self, DomainHubConfig};
use domain_hub::startup::{self, Application};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "domain-hub",
    version,
    about = "Hubplane domain hub (one instance per config file: dev-hub, ops-hub, fin-hub, …)"
)]
struct Cli {
    /// Config file (TOML); `HUB_*` environment variables override its keys.
    #[arg(long, short, env = "DOMAIN_HUB_CONFIG", global = true)]
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
    /// Validate the config, the manifest and the secrets they name, and exit.
    Configtest,
    /// Print the commented example config.
    DefaultConfig,
    /// Exit 0 when the configured hub answers /readyz with 200.
    Healthcheck,
    /// Check a database offline, e.g. after a restore: schema version and the outbox's rows.
    /// Exits 1 when a check fails.
    Verify {
        /// Use this database instead of the config's `[database]` (no password inside; e.g.
        /// `postgres:///ops-hub?host=/run/postgresql` as the postgres user); the config file is
        /// then not read.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn load(path: Option<&std::path::Path>) -> Result<DomainHubConfig, ExitCode> {
    match DomainHubConfig::load(path) {
        Ok((cfg, _manifest, warnings)) => {
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
        Command::Verify { database_url, json } => {
            return verify(cli.config.as_deref(), database_url.as_deref(), json).await
        }
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
        Command::Verify { .. } => Ok(()),
        Command::Serve | Command::DefaultConfig => {
            let name = cfg.hub.name.clone();
            match Application::build(cfg).await {
                Ok(app) => {
                    tracing::info!(hub = %name, port = app.port(), "domain hub ready");
                    app.run_until_stopped().await
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "domain hub failed");
            eprintln!("domain-hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `domain-hub verify`: the database from `--database-url`, else from the config file.
async fn verify(config: Option<&std::path::Path>, url: Option<&str>, json: bool) -> ExitCode {
    let db = match url {
        Some(url) => match hub_core::config::DatabaseConfig::from_url(url) {
            Ok(db) => db,
            Err(problems) => {
                for p in problems {
                    eprintln!("{}", p.replace("database.url", "--database-url"));
                }
                return ExitCode::from(2);
            }
        },
        None => match load(config) {
            Ok(cfg) => cfg.database,
            Err(code) => return code,
        },
    };
    let report = match domain_hub::database::verify(&db).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("domain-hub verify: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("domain-hub verify: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!("{report}");
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
