//! `hubctl events`: append, list, show and follow the progress journal.

use super::{page_json, pages, Ctx};
use crate::cli::{EventLinks, EventsCommand, NatsTail};
use crate::client::{ClientError, IDEMPOTENCY_KEY, LAST_EVENT_ID};
use crate::output::{self, list, note, opt, record, time, Output};
use crate::sse;
use anyhow::Context;
use futures_util::StreamExt;
use hub_core::api::events::{Event, EventBatchResult, EventType, NewEvent, NewEventBatch};
use hub_core::api::page::MAX_LIMIT;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Runs an `events` subcommand.
pub async fn run(ctx: &Ctx, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Post {
            event_type,
            summary,
            detail,
            links,
            idempotency_key,
        } => {
            post(
                ctx,
                event_type,
                summary,
                detail.as_deref(),
                links,
                idempotency_key,
            )
            .await
        }
        EventsCommand::Batch {
            file,
            idempotency_key,
        } => batch(ctx, &file, idempotency_key).await,
        EventsCommand::List {
            event_type,
            noun,
            author,
            links,
            since,
            until,
            limit,
            after,
            asc,
            all,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            let mut put = |k: &'static str, v: Option<String>| {
                if let Some(v) = v {
                    query.push((k, v));
                }
            };
            put("event_type", event_type);
            put("noun", noun);
            put("author", author);
            put("workstream_id", links.workstream.map(|u| u.to_string()));
            put("workplan_id", links.workplan.map(|u| u.to_string()));
            put("task_id", links.task.map(|u| u.to_string()));
            put("decision_id", links.decision.map(|u| u.to_string()));
            put("since", since.map(|t| rfc3339(&t)));
            put("until", until.map(|t| rfc3339(&t)));
            put("order", asc.then(|| "asc".to_owned()));
            // Following every page goes fastest with the largest pages.
            put(
                "limit",
                limit.or(all.then_some(MAX_LIMIT)).map(|n| n.to_string()),
            );
            let (items, next) = pages(ctx, &["events"], &query, after, all).await?;
            if ctx.out.is_json() {
                return output::print_json(&page_json(items, next));
            }
            let events: Vec<Event> = serde_json::from_value(Value::Array(items))
                .context("the hub's events do not have the expected shape")?;
            output::print_line(&event_table(&events).to_string())?;
            if let Some(next) = next {
                note(&format!("more events: --after {next} (or --all)"));
            }
            Ok(())
        }
        EventsCommand::Get { key } => {
            let reply = ctx
                .client
                .send(ctx.client.get(&["events", &key.to_string()]))
                .await?;
            ctx.out.show(reply.body, event_record)
        }
        EventsCommand::Tail {
            from_seq,
            event_type,
            noun,
            // `--from-nats` never gets here: it needs no hub token, so `commands::run` routes
            // it to `tail_nats` first.
            nats: _,
        } => tail(ctx, from_seq, event_type, noun).await,
    }
}

fn rfc3339(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `--detail '{"k":1}'` or `--detail @file.json`.
fn parse_detail(arg: &str) -> anyhow::Result<Value> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --detail file {path}"))?,
            format!("file {path}"),
        ),
        None => (arg.to_owned(), "--detail".to_owned()),
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{from} is not valid JSON"))?;
    if !v.is_object() {
        anyhow::bail!("{from} must be a JSON object, e.g. '{{\"build\": 42}}'");
    }
    Ok(v)
}

async fn post(
    ctx: &Ctx,
    event_type: EventType,
    summary: String,
    detail: Option<&str>,
    links: EventLinks,
    idempotency_key: Option<String>,
) -> anyhow::Result<()> {
    let body = NewEvent {
        event_type,
        summary,
        detail: detail.map(parse_detail).transpose()?,
        workstream_id: links.workstream,
        workplan_id: links.workplan,
        task_id: links.task,
        decision_id: links.decision,
    };
    let mut req = ctx.client.post(&["events"], &body);
    if let Some(k) = idempotency_key {
        req = req.header(IDEMPOTENCY_KEY, k);
    }
    let reply = ctx.client.send(req).await?;
    if reply.replayed && !ctx.out.is_json() {
        note(
            "note: this Idempotency-Key was used before with the same event; showing the original",
        );
    }
    ctx.out.show(reply.body, event_record)
}

/// Reads a batch file: `{"events": [...]}` or a bare array, with serde's line and column on error.
fn read_batch(path: &Path) -> anyhow::Result<NewEventBatch> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bad = || format!("{} is not a valid event batch", path.display());
    if text.trim_start().starts_with('[') {
        let events: Vec<NewEvent> = serde_json::from_str(&text).with_context(bad)?;
        Ok(NewEventBatch { events })
    } else {
        serde_json::from_str(&text).with_context(bad)
    }
}

async fn batch(ctx: &Ctx, file: &Path, idempotency_key: Option<String>) -> anyhow::Result<()> {
    let body = read_batch(file)?;
    let mut req = ctx.client.post(&["events", "batch"], &body);
    if let Some(k) = idempotency_key {
        req = req.header(IDEMPOTENCY_KEY, k);
    }
    let reply = ctx.client.send(req).await?;
    if ctx.out.is_json() {
        return output::print_json(&reply.body);
    }
    let result: EventBatchResult = serde_json::from_value(reply.body)
        .context("the hub's batch result does not have the expected shape")?;
    let verb = if reply.replayed {
        "replayed"
    } else {
        "appended"
    };
    let range = match (result.events.first(), result.events.last()) {
        (Some(a), Some(b)) => format!(" (seq {}–{})", a.seq, b.seq),
        _ => String::new(),
    };
    output::print_line(&format!("{verb} {} events{range}", result.events.len()))
}

fn event_table(events: &[Event]) -> comfy_table::Table {
    list(
        ["seq", "time", "type", "author", "summary"],
        events.iter().map(|e| {
            [
                e.seq.to_string(),
                time(&e.created_at),
                e.event_type.clone(),
                e.author.clone(),
                e.summary.clone(),
            ]
        }),
    )
}

fn event_record(e: &Event) -> comfy_table::Table {
    record([
        ("seq", e.seq.to_string()),
        ("id", e.id.to_string()),
        ("time", time(&e.created_at)),
        ("type", e.event_type.clone()),
        ("author", e.author.clone()),
        ("summary", e.summary.clone()),
        ("workstream", opt(e.workstream_id)),
        ("workplan", opt(e.workplan_id)),
        ("task", opt(e.task_id)),
        ("decision", opt(e.decision_id)),
        (
            "detail",
            serde_json::to_string_pretty(&e.detail).unwrap_or_default(),
        ),
        ("hash", e.hash.clone()),
    ])
}

/// One followed event as a single line.
fn tail_line(e: &Event) -> String {
    format!(
        "{:>7}  {}  {:<24}  {:<16}  {}",
        e.seq,
        time(&e.created_at),
        e.event_type,
        e.author,
        e.summary
    )
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Whether a failed connection is worth retrying: the network and the hub's transient states are;
/// a refused token or a bad request will fail the same way again.
fn retryable(e: &ClientError) -> bool {
    match e.status() {
        Some(s) => s == 408 || s == 429 || s >= 500,
        None => matches!(e, ClientError::Connect { .. } | ClientError::Timeout { .. }),
    }
}

/// Follows `/events/stream`, resuming with `Last-Event-ID` after a dropped connection.
async fn tail(
    ctx: &Ctx,
    from_seq: Option<i64>,
    event_type: Option<String>,
    noun: Option<String>,
) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(t) = event_type {
        query.push(("event_type", t));
    }
    if let Some(n) = noun {
        query.push(("noun", n));
    }
    let mut last: Option<i64> = from_seq;
    let mut delay = FIRST_RETRY;
    let mut connected_once = false;
    loop {
        let mut req = ctx.client.get(&["events", "stream"]).query(&query);
        if let Some(seq) = last {
            req = req.header(LAST_EVENT_ID, seq.to_string());
        }
        let mut parser = sse::Parser::new();
        let why = match ctx.client.open(req).await {
            Ok(res) => {
                if connected_once {
                    note("hubctl: reconnected");
                }
                connected_once = true;
                delay = FIRST_RETRY;
                let url = res.url().clone();
                let mut body = res.bytes_stream();
                loop {
                    match body.next().await {
                        Some(Ok(chunk)) => {
                            for m in parser.feed(&chunk) {
                                if let Some(seq) = print_message(ctx, &m)? {
                                    last = Some(seq);
                                }
                            }
                        }
                        Some(Err(e)) => break ctx.client.transport(&url, &e).to_string(),
                        None => break "the hub closed the stream".to_owned(),
                    }
                }
            }
            Err(e) if !connected_once || !retryable(&e) => return Err(e.into()),
            Err(e) => e.to_string(),
        };
        let wait = parser.retry().map_or(delay, |r| r.max(delay));
        note(&format!(
            "hubctl: {why}; reconnecting in {:.1} s{}",
            wait.as_secs_f64(),
            last.map(|s| format!(" (resuming after event {s})"))
                .unwrap_or_default()
        ));
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Follows the journal's JetStream fan-out with an ephemeral ordered consumer: the client
/// re-creates it after a lost connection and resumes after the last message it delivered, so
/// the events come in order without gaps. `--from-seq` reads the stream from its start and skips
/// up to that journal seq (stream and journal sequence numbers need not match).
pub async fn tail_nats(
    out: &Output,
    opts: &NatsTail,
    ca_file: Option<&Path>,
    from_seq: Option<i64>,
    event_type: Option<String>,
    noun: Option<String>,
) -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::{pull, DeliverPolicy};
    let url = opts.from_nats.as_deref().unwrap_or("nats://127.0.0.1:4222");
    let mut connect = async_nats::ConnectOptions::new().name("hubctl events tail");
    if let Some(creds) = &opts.creds {
        connect = connect
            .credentials_file(creds)
            .await
            .with_context(|| format!("cannot use --creds {}", creds.display()))?;
    }
    if let Some(ca) = ca_file {
        connect = connect.add_root_certificates(ca.to_path_buf());
    }
    let client = connect
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let js = async_nats::jetstream::new(client);
    let name = match &opts.stream {
        Some(s) => s.clone(),
        None => js
            .stream_by_subject(opts.subject.clone())
            .await
            .with_context(|| {
                format!(
                    "no JetStream stream captures {} (is the state hub's [nats] fan-out on? \
                 name the stream with --stream)",
                    opts.subject
                )
            })?,
    };
    let stream = js
        .get_stream(&name)
        .await
        .with_context(|| format!("cannot open stream {name}"))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: opts.subject.clone(),
            deliver_policy: if from_seq.is_some() {
                DeliverPolicy::All
            } else {
                DeliverPolicy::New
            },
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create a consumer on stream {name}"))?;
    let mut messages = consumer
        .messages()
        .await
        .with_context(|| format!("cannot read stream {name}"))?;
    note(&format!(
        "hubctl: following {} on stream {name}",
        opts.subject
    ));
    while let Some(m) = messages.next().await {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                note(&format!("hubctl: {e}; the consumer resumes by itself"));
                continue;
            }
        };
        let event: Event = match serde_json::from_slice(&m.payload) {
            Ok(e) => e,
            Err(e) => {
                note(&format!(
                    "hubctl: skipping a message on {} that is not an event ({e})",
                    m.subject
                ));
                continue;
            }
        };
        let wanted = from_seq.is_none_or(|s| event.seq > s)
            && event_type.as_deref().is_none_or(|t| t == event.event_type)
            && noun
                .as_deref()
                .is_none_or(|n| event.event_type.split('.').next() == Some(n));
        if !wanted {
            continue;
        }
        if out.is_json() {
            output::print_line(&String::from_utf8_lossy(&m.payload))?;
        } else {
            output::print_line(&tail_line(&event))?;
        }
    }
    anyhow::bail!("the NATS connection closed")
}

/// Prints one stream message; returns the sequence number it carried.
fn print_message(ctx: &Ctx, m: &sse::Message) -> anyhow::Result<Option<i64>> {
    if m.event.as_deref().is_some_and(|e| e != "progress") {
        return Ok(None);
    }
    let value: Value = match serde_json::from_str(&m.data) {
        Ok(v) => v,
        Err(e) => {
            note(&format!(
                "hubctl: skipping a stream message that is not JSON ({e})"
            ));
            return Ok(None);
        }
    };
    let event: Event = match serde_json::from_value(value.clone()) {
        Ok(e) => e,
        Err(e) => {
            note(&format!(
                "hubctl: skipping a stream message that is not an event ({e})"
            ));
            return Ok(None);
        }
    };
    if ctx.out.is_json() {
        output::print_line(&serde_json::to_string(&value)?)?;
    } else {
        output::print_line(&tail_line(&event))?;
    }
    let seq =
        m.id.as_deref()
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or(event.seq);
    Ok(Some(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_must_be_a_json_object() {
        assert!(parse_detail(r#"{"build": 42}"#).is_ok());
        let err = parse_detail("[1]").unwrap_err().to_string();
        assert!(err.contains("JSON object"), "{err}");
        let err = format!("{:#}", parse_detail("{nope").unwrap_err());
        assert!(err.contains("not valid JSON"), "{err}");
        let err = format!(
            "{:#}",
            parse_detail("@/nonexistent/detail.json").unwrap_err()
        );
        assert!(err.contains("/nonexistent/detail.json"), "{err}");
    }

    #[test]
    fn batch_files_may_be_wrapped_or_bare() {
        let dir = std::env::temp_dir().join(format!("hubctl-batch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let bare = dir.join("bare.json");
        std::fs::write(&bare, r#"[{"event_type":"a.b","summary":"s"}]"#).unwrap();
        assert_eq!(read_batch(&bare).unwrap().events.len(), 1);
        let wrapped = dir.join("wrapped.json");
        std::fs::write(
            &wrapped,
            r#"{"events":[{"event_type":"a.b","summary":"s"},{"event_type":"a.c","summary":"t"}]}"#,
        )
        .unwrap();
        assert_eq!(read_batch(&wrapped).unwrap().events.len(), 2);
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "[\n{\"event_type\":\"Bad\",\"summary\":\"s\"}]").unwrap();
        let err = format!("{:#}", read_batch(&bad).unwrap_err());
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let url = reqwest::Url::parse("http://127.0.0.1:1/").unwrap();
        assert!(retryable(&ClientError::Connect {
            url: url.clone(),
            cause: "refused".into()
        }));
        let problem = |status| {
            ClientError::Api(hub_core::http::problem::Problem {
                kind: String::new(),
                title: String::new(),
                status,
                detail: String::new(),
                errors: Vec::new(),
            })
        };
        assert!(retryable(&problem(503)));
        assert!(!retryable(&problem(401)));
        assert!(!retryable(&problem(400)));
    }
}
