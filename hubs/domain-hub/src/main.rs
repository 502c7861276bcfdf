//! `domain-hub`: one binary, run as many instances (dev-hub, ops-hub, fin-hub).
//!
//! The domain hub (manifest submission, heartbeats, capability polling, widgets, outbox relay)
//! is built in a later issue. Until then this binary refuses to start rather than pretend to run.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "domain-hub",
    version,
    about = "Hubplane domain hub (not yet available)"
)]
struct Cli {
    /// Config file (TOML).
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!(
        "domain-hub: not available in this release; the domain hub ships with the hub registry and \
         capability work (see docs/architecture.md)"
    );
    ExitCode::from(78)
}
