//! Connecting to NATS and creating or checking the hub's stream.

use super::config::{NatsAuth, NatsConfig};
use super::metrics::FanoutMetrics;
use super::subject;
use async_nats::jetstream::{self, stream};
use async_nats::ServerAddr;
use secrecy::ExposeSecret;
use std::time::Duration;

/// JetStream API calls and publish acknowledgements give up after this long.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the stream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// NATS did not answer or the connection broke; retrying may help.
    #[error("{0}")]
    Transient(String),
    /// The server refused, or the stream is configured in a way the hub will not change; an
    /// operator has to act. The message says what to do.
    #[error("{0}")]
    Unfixable(String),
}

/// Connection failures; the message names servers and credential kinds, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {servers}: {reason}")]
pub struct ConnectError {
    servers: String,
    reason: String,
}

/// Connects once (the client reconnects by itself afterwards), keeping `fanout_connected`
/// current through the client's events.
pub async fn connect(
    cfg: &NatsConfig,
    auth: &NatsAuth,
    metrics: &FanoutMetrics,
    link: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
) -> Result<async_nats::Client, ConnectError> {
    let servers_text = cfg.servers().join(", ");
    let fail = |reason: String| ConnectError {
        servers: servers_text.clone(),
        reason,
    };
    let servers = cfg
        .servers()
        .iter()
        .map(|s| s.parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("bad server URL: {e}")))?;
    let mut opts = async_nats::ConnectOptions::new()
        .name("state-hub journal fan-out")
        .connection_timeout(API_TIMEOUT)
        .request_timeout(Some(API_TIMEOUT))
        .require_tls(cfg.require_tls)
        // The client's own reconnect loop, capped so a recovered server is found within seconds.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100u64.saturating_mul(1 << attempts.min(6)))
                .min(Duration::from_secs(5))
        });
    let connected = metrics.connected.clone();
    let up = link.clone();
    opts = opts.event_callback(move |event| {
        let (connected, up) = (connected.clone(), up.clone());
        async move {
            match event {
                async_nats::Event::Connected => {
                    connected.set(1);
                    up.send_replace(true);
                    tracing::info!("journal fan-out: connected to NATS");
                }
                async_nats::Event::Disconnected => {
                    connected.set(0);
                    up.send_replace(false);
                    tracing::warn!("journal fan-out: disconnected from NATS; reconnecting");
                }
                other => tracing::info!(event = %other, "journal fan-out: NATS event"),
            }
        }
    });
    if let Some(ca) = &cfg.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone());
    }
    opts = match auth {
        NatsAuth::None => opts,
        NatsAuth::Creds(text) => opts
            .credentials(text.expose_secret())
            .map_err(|_| fail("the .creds file cannot be parsed".into()))?,
        NatsAuth::NKey(seed) => opts.nkey(seed.expose_secret().to_owned()),
        NatsAuth::UserPassword(user, pw) => {
            opts.user_and_password(user.clone(), pw.expose_secret().to_owned())
        }
    };
    let client = opts
        .connect(servers)
        .await
        .map_err(|e| fail(e.to_string()))?;
    metrics.connected.set(1);
    link.send_replace(true);
    Ok(client)
}

/// The JetStream context the publisher uses: acknowledgements time out after [`API_TIMEOUT`] and
/// at most `max_in_flight` wait at once.
pub fn context(client: async_nats::Client, max_in_flight: usize) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(API_TIMEOUT)
        .ack_timeout(API_TIMEOUT)
        .max_ack_inflight(max_in_flight)
        .backpressure_on_inflight(true)
        .build(client)
}

/// The stream the hub wants: every event subject, limits retention, on disk, with the
/// configured duplicate window.
pub fn wanted(cfg: &NatsConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        description: Some("Hubplane state hub journal (one message per event)".into()),
        subjects: vec![subject::stream_filter(&cfg.subject_prefix)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        duplicate_window: cfg.duplicate_window(),
        ..Default::default()
    }
}

fn is_code(e: &jetstream::Error, code: jetstream::ErrorCode) -> bool {
    e.error_code() == code
}

/// Creates the stream, or checks an existing one and fixes what can be fixed without losing
/// messages (a missing subject filter, the duplicate window). Limits an operator set (max age,
/// max bytes, replicas) are left alone.
pub async fn ensure(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), StreamError> {
    use jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
    use jetstream::ErrorCode;
    let want = wanted(cfg);
    let name = &cfg.stream;
    match js.get_stream(name).await {
        Ok(mut s) => {
            let info = s
                .info()
                .await
                .map_err(|e| StreamError::Transient(format!("stream {name}: {e}")))?;
            let have = info.config.clone();
            if have.storage != stream::StorageType::File {
                return Err(StreamError::Unfixable(format!(
                    "stream {name} exists with memory storage, which loses the journal's messages \
                     on a NATS restart; the hub will not convert it. Delete it (`nats stream rm \
                     {name}`) so the hub re-creates it on file storage, or set nats.stream to \
                     another name"
                )));
            }
            if have.retention != stream::RetentionPolicy::Limits {
                return Err(StreamError::Unfixable(format!(
                    "stream {name} exists with {:?} retention, which drops events once consumed; \
                     the fan-out needs limits retention. Delete the stream or set nats.stream to \
                     another name",
                    have.retention
                )));
            }
            let mut fixed = have.clone();
            let mut changes = Vec::new();
            if !have
                .subjects
                .iter()
                .any(|f| subject::covers(f, &cfg.subject_prefix))
            {
                fixed.subjects.push(want.subjects.concat());
                changes.push(format!("subjects += {}", want.subjects.concat()));
            }
            if have.duplicate_window != want.duplicate_window {
                fixed.duplicate_window = want.duplicate_window;
                changes.push(format!(
                    "duplicate window {}s -> {}s",
                    have.duplicate_window.as_secs(),
                    want.duplicate_window.as_secs()
                ));
            }
            if changes.is_empty() {
                return Ok(());
            }
            js.update_stream(&fixed).await.map_err(|e| match e.kind() {
                CreateStreamErrorKind::JetStream(err) => StreamError::Unfixable(format!(
                    "stream {name} differs from the config ({}) and NATS refused the update: {err}",
                    changes.join(", ")
                )),
                _ => StreamError::Transient(format!("updating stream {name}: {e}")),
            })?;
            tracing::info!(stream = %name, changes = %changes.join(", "), "journal fan-out: stream updated");
            Ok(())
        }
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(err) if is_code(&err, ErrorCode::STREAM_NOT_FOUND) => {
                js.create_stream(want).await.map_err(|e| match e.kind() {
                    CreateStreamErrorKind::JetStream(err)
                        if is_code(&err, ErrorCode::STREAM_SUBJECT_OVERLAP) =>
                    {
                        StreamError::Unfixable(format!(
                            "cannot create stream {name}: another stream already captures \
                             subjects under {}; set nats.subject_prefix or nats.stream to match it",
                            cfg.subject_prefix
                        ))
                    }
                    CreateStreamErrorKind::JetStream(err) => StreamError::Unfixable(format!(
                        "NATS refused to create stream {name}: {err}"
                    )),
                    CreateStreamErrorKind::JetStreamUnavailable => not_enabled(),
                    _ => StreamError::Transient(format!("creating stream {name}: {e}")),
                })?;
                tracing::info!(stream = %name, "journal fan-out: stream created");
                Ok(())
            }
            GetStreamErrorKind::JetStream(err)
                if is_code(&err, ErrorCode::JETSTREAM_NOT_ENABLED)
                    || is_code(&err, ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT) =>
            {
                Err(not_enabled())
            }
            GetStreamErrorKind::JetStream(err) => Err(StreamError::Unfixable(format!(
                "NATS refused to describe stream {name}: {err}"
            ))),
            _ if no_responders(&e) => Err(not_enabled()),
            _ => Err(StreamError::Transient(format!("stream {name}: {e}"))),
        },
    }
}

fn no_responders(e: &impl std::error::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("no responders") {
            return true;
        }
        cur = err.source();
    }
    false
}

fn not_enabled() -> StreamError {
    StreamError::Unfixable(
        "the NATS server has no JetStream for this account (start nats-server with -js, or \
         `services.nats.jetstream = true`)"
            .into(),
    )
}

/// What the stream holds last: the `Nats-Msg-Id` of its newest message, `None` when the stream
/// is empty or the message carries none.
pub async fn last_message_id(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<String>, StreamError> {
    let mut s = js
        .get_stream(name)
        .await
        .map_err(|e| StreamError::Transient(format!("stream {name}: {e}")))?;
    let last = s
        .info()
        .await
        .map_err(|e| StreamError::Transient(format!("stream {name}: {e}")))?
        .state
        .last_sequence;
    if last == 0 {
        return Ok(None);
    }
    match s.get_raw_message(last).await {
        Ok(m) => Ok(m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned())),
        // Deleted by an operator: as good as a foreign message.
        Err(e) if e.to_string().contains("not found") => Ok(None),
        Err(e) => Err(StreamError::Transient(format!(
            "reading the last message of {name}: {e}"
        ))),
    }
}
