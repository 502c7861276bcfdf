//! `hubctl`: the operator and automation CLI over the Hubplane state hub's REST API.
//!
//! Exit codes: 0 success, 1 the operation failed (the hub's problem is printed), 2 usage error,
//! 3 `audit verify` found a broken hash chain.

mod cli;
mod client;
mod commands;
mod output;
mod sse;

use clap::Parser;
use std::process::ExitCode;

/// Exit code of a failed audit.
const AUDIT_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::note(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &anyhow::Error) -> ExitCode {
    // A reader that went away (`hubctl events list | head`) is not an error.
    let broken_pipe = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    if let Some(failure) = e.downcast_ref::<commands::audit::AuditFailure>() {
        output::note(&format!("{failure}"));
        return ExitCode::from(AUDIT_FAILED);
    }
    output::note(&format!("error: {e:#}"));
    ExitCode::FAILURE
}
