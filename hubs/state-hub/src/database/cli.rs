//! The `export`, `import` and `verify` subcommands: arguments, where the database comes from,
//! and what is printed. They run offline (the hub need not be serving), like `migrate`.

use super::validate;
use super::{database_from_url, export, import, verify, DatabaseError};
use crate::config::StateHubConfig;
use hub_core::config::DatabaseConfig;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Which database to work on.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// Use this database instead of the config's `[database]`. No password inside: meant for a
    /// local socket with peer authentication, e.g. `postgres:///state-hub?host=/run/postgresql`
    /// run as the postgres user; the config file is then not read at all.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// `state-hub export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Where to write the JSON document (`-` for stdout); written as FILE.partial, then renamed.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub target: Target,
}

/// `state-hub import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The export to load.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// Check everything and run the import in a transaction that is rolled back.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report (or the problems) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `state-hub verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// The database to use: `--database-url`, else the config file's (exit code 2 when neither is
/// usable, as for a bad config).
fn database(config: Option<&Path>, target: &Target) -> Result<DatabaseConfig, ExitCode> {
    if let Some(url) = &target.database_url {
        return database_from_url(url).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        });
    }
    match StateHubConfig::load(config) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                eprintln!("config warning: {w}");
            }
            Ok(cfg.database)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn fail(command: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("state-hub {command}: {e}");
    ExitCode::FAILURE
}

fn print_json(v: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail("output", e),
    }
}

/// Runs `state-hub export`.
pub async fn export(config: Option<&Path>, args: ExportArgs) -> ExitCode {
    let db = match database(config, &args.target) {
        Ok(db) => db,
        Err(code) => return code,
    };
    let out = match export::export(&db).await {
        Ok(out) => out,
        Err(e) => return fail("export", e),
    };
    if let Err(e) = export::write(&out.document, &args.output) {
        return fail(
            "export",
            format!("cannot write {}: {e}", args.output.display()),
        );
    }
    if let Some(broken) = &out.broken {
        eprintln!(
            "warning: the journal does not verify (broken link at {broken}); it was exported as \
             it is, and an import seals it into a new chain"
        );
    }
    // With `-` the document is stdout; the summary must not corrupt it.
    let summary = format!(
        "exported {}{}",
        out.document.counts(),
        out.document
            .source_head()
            .map(|h| format!("; head event {} {}", h.seq, h.hash))
            .unwrap_or_default()
    );
    if args.output == Path::new("-") {
        eprintln!("{summary}");
    } else {
        println!("{summary}\nwritten to {}", args.output.display());
    }
    ExitCode::SUCCESS
}

/// Runs `state-hub import`.
pub async fn import(config: Option<&Path>, args: ImportArgs) -> ExitCode {
    let db = match database(config, &args.target) {
        Ok(db) => db,
        Err(code) => return code,
    };
    let bytes = match std::fs::read(&args.input) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                "import",
                format!("cannot read {}: {e}", args.input.display()),
            )
        }
    };
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|e| {
            vec![validate::Problem {
                path: "$".to_owned(),
                message: format!("not UTF-8 text: {e}"),
            }]
        })
        .and_then(validate::parse);
    let doc = match parsed {
        Ok(doc) => doc,
        Err(problems) if args.json => {
            print_json(&serde_json::json!({"ok": false, "problems": problems}));
            return ExitCode::FAILURE;
        }
        Err(problems) => return fail("import", DatabaseError::Invalid(problems)),
    };
    let opts = import::Options {
        dry_run: args.dry_run,
        input_sha256: hub_core::journal::to_hex(&Sha256::digest(&bytes)),
    };
    match import::import(&db, &doc, &opts).await {
        Ok(report) if args.json => print_json(&report),
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => fail("import", e),
    }
}

/// Runs `state-hub verify`; exits 1 when a check fails.
pub async fn verify(config: Option<&Path>, args: VerifyArgs) -> ExitCode {
    let db = match database(config, &args.target) {
        Ok(db) => db,
        Err(code) => return code,
    };
    let report = match verify::verify(&db).await {
        Ok(r) => r,
        Err(e) => return fail("verify", e),
    };
    let printed = if args.json {
        print_json(&report)
    } else {
        println!("{report}");
        ExitCode::SUCCESS
    };
    if report.ok {
        printed
    } else {
        ExitCode::FAILURE
    }
}
