//! Logging: journald when systemd connected stdout/stderr to the journal, else stdout.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` wins over the configured filter. Safe to call twice
/// (the second call is ignored), which tests rely on.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(journald) => {
                let _ = registry.with(journald).try_init();
                return;
            }
            Err(e) => eprintln!("journald unavailable ({e}); logging to stdout"),
        }
    }
    match cfg.format {
        LogFormat::Json => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_current_span(true),
                )
                .try_init();
        }
        LogFormat::Pretty => {
            let _ = registry.with(tracing_subscriber::fmt::layer()).try_init();
        }
    }
}
