//! Logging: journald when systemd connected stdout/stderr to the journal, else stdout.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Library log targets held at a level whatever the filter asks for, because below it they print
/// values a hub must never log: tokio-postgres logs every query's parameters at debug (login flows'
/// PKCE verifiers and nonces, whatever else a hub stores); async-nats logs the CONNECT it sends,
/// with the NATS password or token, at trace.
const CAPPED_TARGETS: &[(&str, &str)] = &[
    ("tokio_postgres::query", "info"),
    ("async_nats::connection", "debug"),
];

/// Installs the global subscriber. `RUST_LOG` wins over the configured filter. Safe to call twice
/// (the second call is ignored), which tests rely on.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(without_secret_targets(filter));
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

/// `filter` with [`CAPPED_TARGETS`] capped; added last, so they replace a directive for the same
/// target.
fn without_secret_targets(mut filter: EnvFilter) -> EnvFilter {
    for (target, level) in CAPPED_TARGETS {
        match format!("{target}={level}").parse() {
            Ok(directive) => filter = filter.add_directive(directive),
            Err(e) => eprintln!("log filter: cannot cap {target}: {e}"),
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::without_secret_targets;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::EnvFilter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a hub logs with `filter`, when tokio-postgres and another library log at debug.
    fn logged_with(filter: &str) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(without_secret_targets(EnvFilter::new(filter)))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::query", "executing statement s1 with parameters: [\"pkce-verifier-value\"]");
            tracing::info!(target: "tokio_postgres::query", "query info line");
            tracing::debug!(target: "tokio_postgres::prepare", "preparing query s1");
            tracing::trace!(target: "async_nats::connection", "write operation: CONNECT pass: Some(\"nats-password-value\")");
            tracing::debug!(target: "async_nats::connection", "connection debug line");
            tracing::debug!(target: "hyper_util::client", "connecting");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn query_parameters_and_nats_credentials_are_not_logged_whatever_the_filter_says() {
        for filter in [
            "debug",
            "trace",
            "tokio_postgres=trace,async_nats=trace",
            "tokio_postgres::query=debug,async_nats::connection=trace",
            "info,tokio_postgres::query=trace",
        ] {
            let logged = logged_with(filter);
            assert!(
                !logged.contains("pkce-verifier-value"),
                "{filter}: parameters logged:\n{logged}"
            );
            assert!(
                !logged.contains("nats-password-value"),
                "{filter}: NATS CONNECT logged:\n{logged}"
            );
            assert!(logged.contains("query info line"), "{filter}:\n{logged}");
        }
        assert!(logged_with("trace").contains("connection debug line"));
    }

    #[test]
    fn other_debug_lines_still_follow_the_filter() {
        let logged = logged_with("debug");
        assert!(logged.contains("preparing query s1"), "{logged}");
        assert!(logged.contains("connecting"), "{logged}");
        let logged = logged_with("info");
        assert!(!logged.contains("preparing query s1"), "{logged}");
    }
}
