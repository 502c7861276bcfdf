//! The publisher: reads the journal after the cursor, publishes each event to JetStream in order
//! with a bounded number of acknowledgements in flight, and moves the cursor over the gapless
//! run of acknowledged events.
//!
//! Order and exactly-once come from three things together:
//! - each message carries `Nats-Msg-Id` = the event id, so JetStream drops a re-published event
//!   within the duplicate window;
//! - each message also carries `Nats-Expected-Last-Msg-Id` = the previous event's id, so JetStream
//!   stores an event only right after its predecessor: a lost message can never be overtaken by
//!   the ones behind it, and after a window-long outage a re-published tail is refused instead of
//!   stored twice (the publisher then reads the stream's last message and moves the cursor);
//! - the cursor only moves over acknowledged events, so nothing is skipped.
//!
//! Journal writes never wait for any of this: the publisher only reads committed events.

use super::config::{NatsAuth, NatsConfig};
use super::cursor::CursorDb;
use super::metrics::FanoutMetrics;
use super::stream::{self, StreamError};
use super::subject;
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use hub_core::api::events::Event;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Events read from the journal per query.
const PAGE: i64 = 1000;
/// How often the journal is read when no head change was announced (a missed NOTIFY).
const POLL: Duration = Duration::from_secs(1);
/// How often a replica without the lock asks for it again.
const LOCK_RETRY: Duration = Duration::from_secs(2);
/// The cursor is written at most this often while events stream through.
const PERSIST_EVERY: Duration = Duration::from_millis(100);
/// First and longest pause after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long what is in flight may take to settle after a failure or at a stop: one
/// acknowledgement timeout and a little.
const SETTLE: Duration = Duration::from_secs(6);
/// Pause after a problem only an operator can fix (logged as an error each time).
const OPERATOR_BACKOFF: Duration = Duration::from_secs(30);

/// What the publisher needs; built by [`super::spawn`].
pub struct Publisher {
    pub(super) cfg: NatsConfig,
    pub(super) auth: NatsAuth,
    pub(super) pg: tokio_postgres::Config,
    pub(super) head: watch::Receiver<i64>,
    pub(super) metrics: FanoutMetrics,
    pub(super) cursor_tx: watch::Sender<i64>,
    pub(super) stop: watch::Receiver<bool>,
}

/// Why a leadership term ended.
enum Term {
    Stopped,
    Database(tokio_postgres::Error),
}

/// Why a publishing run ended.
enum Run {
    Stopped,
    Database(tokio_postgres::Error),
    /// NATS failed; pause, then publish again from the cursor.
    Nats(String),
    /// The stream is gone; check (re-create) it before publishing again.
    StreamMissing(String),
    /// The position was reconciled with the stream; publish again at once.
    Again,
}

impl From<tokio_postgres::Error> for Run {
    fn from(e: tokio_postgres::Error) -> Self {
        Run::Database(e)
    }
}

/// Where publishing stands.
struct Position {
    /// Newest seq acknowledged with every earlier one.
    acked: i64,
    /// Its event id (`None` before the first event).
    acked_id: Option<Uuid>,
    /// The cursor as stored.
    stored: i64,
    /// Publish the next event without the predecessor check, once: the stream's last message is
    /// known to be fine (or cannot be known), but JetStream no longer remembers its id.
    resync: bool,
}

struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        d
    }
    fn reset(&mut self) {
        self.0 = FIRST_BACKOFF;
    }
}

type InFlight = FuturesOrdered<BoxFuture<'static, (i64, Uuid, Result<PublishAck, Failure>)>>;

/// The connection to NATS, kept across database reconnects.
struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    stream_ok: bool,
    /// True while connected, from the client's events.
    up: watch::Receiver<bool>,
}

impl Publisher {
    /// Runs until the stop signal: takes the lock, then publishes, reconnecting to PostgreSQL
    /// and NATS as often as it takes.
    pub async fn run(mut self) {
        let mut nats: Option<Nats> = None;
        let mut backoff = Backoff(FIRST_BACKOFF);
        loop {
            if self.stopping() {
                break;
            }
            let db = match CursorDb::connect(&self.pg, &self.cfg.stream).await {
                Ok(db) => db,
                Err(e) => {
                    tracing::warn!(error = %e, "journal fan-out: cannot reach the database");
                    if self.pause(backoff.next()).await {
                        break;
                    }
                    continue;
                }
            };
            let term = self.lead(&db, &mut nats, &mut backoff).await;
            self.metrics.leader.set(0);
            match term {
                Term::Stopped => break,
                Term::Database(e) => {
                    tracing::warn!(error = %e, "journal fan-out: database connection lost; the publisher lock is released");
                    if self.pause(backoff.next()).await {
                        break;
                    }
                }
            }
        }
        if let Some(n) = nats {
            // Sends whatever the client still buffers before the connection closes.
            let _ = tokio::time::timeout(Duration::from_secs(2), n.client.flush()).await;
        }
        self.metrics.connected.set(0);
        tracing::info!("journal fan-out stopped");
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `d`; true when the stop signal came first.
    async fn pause(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.stop.changed() => true,
        }
    }

    fn show_cursor(&self, seq: i64) {
        self.metrics.cursor.set(seq);
        self.cursor_tx.send_replace(seq);
    }

    /// One term: wait for the lock, then publish until stopped or the database fails.
    async fn lead(
        &mut self,
        db: &CursorDb,
        nats: &mut Option<Nats>,
        backoff: &mut Backoff,
    ) -> Term {
        loop {
            match db.try_lock().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => return Term::Database(e),
            }
            // Another replica publishes; show its progress here too.
            match db.current().await {
                Ok(c) => self.show_cursor(c),
                Err(e) => return Term::Database(e),
            }
            if self.pause(LOCK_RETRY).await {
                return Term::Stopped;
            }
        }
        self.metrics.leader.set(1);
        let stored = match db.load().await {
            Ok(c) => c,
            Err(e) => return Term::Database(e),
        };
        let acked_id = match db.id_at(stored).await {
            Ok(id) => id,
            Err(e) => return Term::Database(e),
        };
        self.show_cursor(stored);
        tracing::info!(stream = %self.cfg.stream, cursor = stored, "journal fan-out: this replica publishes");
        let mut pos = Position {
            acked: stored,
            acked_id,
            stored,
            resync: false,
        };
        loop {
            let Some((js, up)) = self.ready(nats, backoff).await else {
                return Term::Stopped;
            };
            match self.publish(db, &js, up, &mut pos, backoff).await {
                Run::Stopped => return Term::Stopped,
                Run::Database(e) => return Term::Database(e),
                Run::Again => {}
                Run::StreamMissing(why) => {
                    self.metrics.failures.inc();
                    tracing::warn!(error = %why, "journal fan-out: the stream is missing; checking it again");
                    if let Some(n) = nats.as_mut() {
                        n.stream_ok = false;
                    }
                }
                Run::Nats(why) => {
                    self.metrics.failures.inc();
                    let wait = backoff.next();
                    tracing::warn!(error = %why, cursor = pos.acked, retry_in_ms = wait.as_millis() as u64, "journal fan-out: publishing failed; retrying from the cursor");
                    if self.pause(wait).await {
                        return Term::Stopped;
                    }
                }
            }
        }
    }

    /// Connected to NATS with the stream checked; `None` when stopped first.
    async fn ready(
        &mut self,
        nats: &mut Option<Nats>,
        backoff: &mut Backoff,
    ) -> Option<(jetstream::Context, watch::Receiver<bool>)> {
        loop {
            if self.stopping() {
                return None;
            }
            let Some(n) = nats.as_mut() else {
                let (link, up) = watch::channel(false);
                match stream::connect(&self.cfg, &self.auth, &self.metrics, link.into()).await {
                    Ok(client) => {
                        let js = stream::context(client.clone(), self.cfg.max_in_flight);
                        *nats = Some(Nats {
                            client,
                            js,
                            stream_ok: false,
                            up,
                        });
                    }
                    Err(e) => {
                        self.metrics.failures.inc();
                        let wait = backoff.next();
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "journal fan-out: NATS unreachable; journal writes go on and are published once it is back");
                        if self.pause(wait).await {
                            return None;
                        }
                    }
                }
                continue;
            };
            if n.client.connection_state() != State::Connected || !*n.up.borrow() {
                // The client reconnects by itself; publishing now would only queue messages.
                if self.pause(Duration::from_millis(200)).await {
                    return None;
                }
                continue;
            }
            if !n.stream_ok {
                match stream::ensure(&n.js, &self.cfg).await {
                    Ok(()) => n.stream_ok = true,
                    Err(StreamError::Unfixable(why)) => {
                        self.metrics.failures.inc();
                        tracing::error!("journal fan-out: {why}");
                        if self.pause(OPERATOR_BACKOFF).await {
                            return None;
                        }
                        continue;
                    }
                    Err(StreamError::Transient(why)) => {
                        self.metrics.failures.inc();
                        tracing::warn!(error = %why, "journal fan-out: cannot check the stream yet");
                        if self.pause(backoff.next()).await {
                            return None;
                        }
                        continue;
                    }
                }
            }
            return Some((n.js.clone(), n.up.clone()));
        }
    }

    /// Publishes from the cursor until something fails or the stop signal comes.
    async fn publish(
        &mut self,
        db: &CursorDb,
        js: &jetstream::Context,
        mut up: watch::Receiver<bool>,
        pos: &mut Position,
        backoff: &mut Backoff,
    ) -> Run {
        let mut inflight: InFlight = FuturesOrdered::new();
        let mut buffer: VecDeque<Event> = VecDeque::new();
        let mut fetched = pos.acked;
        let mut prev_id = pos.acked_id;
        let mut caught_up = false;
        let mut head_open = true;
        let mut poll = tokio::time::interval(POLL);
        let mut persisted_at = Instant::now();
        let max = self.cfg.max_in_flight;
        loop {
            while inflight.len() < max {
                if buffer.is_empty() {
                    if caught_up {
                        break;
                    }
                    let page = match db.events_after(fetched, PAGE).await {
                        Ok(p) => p,
                        Err(e) => return Run::Database(e),
                    };
                    caught_up = (page.len() as i64) < PAGE;
                    if let Some(last) = page.last() {
                        fetched = last.seq;
                    }
                    buffer.extend(page);
                }
                let Some(event) = buffer.pop_front() else {
                    break;
                };
                let expected = if pos.resync && event.seq == pos.acked + 1 {
                    None
                } else {
                    prev_id
                };
                let (seq, id) = (event.seq, event.id);
                let ack = match self.send(js, event, expected).await {
                    Ok(ack) => ack,
                    Err(why) => {
                        self.settle(&mut inflight, pos, SETTLE).await;
                        if let Err(e) = self.persist(db, pos).await {
                            return Run::Database(e);
                        }
                        return Run::Nats(why);
                    }
                };
                inflight.push_back(Box::pin(
                    async move { (seq, id, ack.await.map_err(describe)) },
                ));
                prev_id = Some(id);
            }
            if pos.acked > pos.stored
                && (inflight.is_empty() || persisted_at.elapsed() >= PERSIST_EVERY)
            {
                if let Err(e) = self.persist(db, pos).await {
                    return Run::Database(e);
                }
                persisted_at = Instant::now();
            }
            tokio::select! {
                biased;
                _ = self.stop.changed() => {
                    self.settle(&mut inflight, pos, SETTLE).await;
                    return match self.persist(db, pos).await {
                        Ok(()) => Run::Stopped,
                        Err(e) => Run::Database(e),
                    };
                }
                Some((seq, id, result)) = inflight.next(), if !inflight.is_empty() => match result {
                    Ok(ack) => {
                        self.acknowledged(pos, seq, id, &ack);
                        backoff.reset();
                    }
                    Err(why) => {
                        // Nothing behind a failed event counts: JetStream refuses it (its
                        // predecessor is missing) or it is re-published, de-duplicated, later.
                        self.settle_rest(&mut inflight, SETTLE).await;
                        if let Err(e) = self.persist(db, pos).await {
                            return Run::Database(e);
                        }
                        return match why {
                            Failure::WrongLast(_) => self.reconcile(db, js, pos).await,
                            Failure::StreamMissing(m) => Run::StreamMissing(m),
                            Failure::Other(m) => Run::Nats(format!("event {seq}: {m}")),
                        };
                    }
                },
                // Acknowledgements in flight are lost with the connection; rather than wait
                // for each to time out, publish again from the cursor once it is back (what was
                // stored meanwhile is recognised as a duplicate, nothing is stored out of order).
                _ = async { drop(up.wait_for(|c| !*c).await) } => {
                    self.settle(&mut inflight, pos, Duration::ZERO).await;
                    if let Err(e) = self.persist(db, pos).await {
                        return Run::Database(e);
                    }
                    return Run::Nats("the connection to NATS was lost".into());
                }
                changed = self.head.changed(), if head_open => {
                    head_open = changed.is_ok();
                    caught_up = false;
                }
                _ = poll.tick() => caught_up = false,
            }
        }
    }

    /// Hands one event to the client; the future resolves with JetStream's acknowledgement.
    async fn send(
        &self,
        js: &jetstream::Context,
        event: Event,
        expected: Option<Uuid>,
    ) -> Result<PublishAckFuture, String> {
        let subject = subject::for_event(&self.cfg.subject_prefix, &event.event_type);
        let payload = serde_json::to_vec(&event)
            .map_err(|e| format!("event {} cannot be encoded: {e}", event.seq))?;
        let mut msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(event.id.to_string())
            .expected_stream(&self.cfg.stream);
        if let Some(prev) = expected {
            msg = msg.expected_last_message_id(prev.to_string());
        }
        js.send_publish(subject, msg)
            .await
            .map_err(|e| format!("event {}: {e}", event.seq))
    }

    fn acknowledged(&self, pos: &mut Position, seq: i64, id: Uuid, ack: &PublishAck) {
        pos.acked = seq;
        pos.acked_id = Some(id);
        pos.resync = false;
        self.metrics.published.inc();
        if ack.duplicate {
            self.metrics.duplicates.inc();
        }
    }

    async fn persist(
        &self,
        db: &CursorDb,
        pos: &mut Position,
    ) -> Result<(), tokio_postgres::Error> {
        if pos.acked > pos.stored {
            db.store(pos.acked).await?;
            pos.stored = pos.acked;
            self.show_cursor(pos.acked);
        }
        Ok(())
    }

    /// Waits (at most `limit`) for what is in flight, counting the acknowledged run that
    /// follows the cursor; drops the rest.
    async fn settle(&self, inflight: &mut InFlight, pos: &mut Position, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Some((seq, id, result))) =
            tokio::time::timeout_at(deadline, inflight.next()).await
        {
            match result {
                Ok(ack) if seq == pos.acked + 1 => self.acknowledged(pos, seq, id, &ack),
                _ => {
                    self.settle_rest(inflight, limit).await;
                    return;
                }
            }
        }
        *inflight = FuturesOrdered::new();
    }

    /// Lets what is still in flight finish (time-boxed) without counting it, so the stream has
    /// settled before the publisher looks at it or publishes again.
    async fn settle_rest(&self, inflight: &mut InFlight, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, inflight.next()).await {}
        *inflight = FuturesOrdered::new();
    }

    /// JetStream refused the next event because the stream does not end with its predecessor:
    /// find out what the stream ends with and move on from there.
    async fn reconcile(
        &mut self,
        db: &CursorDb,
        js: &jetstream::Context,
        pos: &mut Position,
    ) -> Run {
        let last = match stream::last_message_id(js, &self.cfg.stream).await {
            Ok(last) => last,
            Err(e) => return Run::Nats(e.to_string()),
        };
        let last_seq = match last.as_deref().map(Uuid::parse_str) {
            Some(Ok(id)) => match db.seq_of(id).await {
                Ok(seq) => seq.map(|s| (s, id)),
                Err(e) => return Run::Database(e),
            },
            _ => None,
        };
        match last_seq {
            Some((seq, id)) if seq > pos.acked => {
                // A previous publisher's tail was stored but its acknowledgements were lost
                // (a crash, or an outage longer than the duplicate window): it is in the stream,
                // in order, so the cursor moves over it instead of publishing it twice.
                tracing::info!(
                    from = pos.acked,
                    to = seq,
                    "journal fan-out: the stream already holds these events; moving the cursor"
                );
                pos.acked = seq;
                pos.acked_id = Some(id);
                if let Err(e) = self.persist(db, pos).await {
                    return Run::Database(e);
                }
            }
            Some((seq, _)) if seq == pos.acked => {
                // The stream ends with our predecessor, but JetStream forgot its id (a restart
                // after the duplicate window): publish the next one without the check.
                pos.resync = true;
            }
            Some((seq, _)) => {
                tracing::warn!(stream_ends_at = seq, cursor = pos.acked, "journal fan-out: the stream lost events the cursor says were published (purged or restored?); publishing goes on after the cursor");
                pos.resync = true;
            }
            None => {
                tracing::warn!(cursor = pos.acked, "journal fan-out: the stream's last message is not a journal event (another publisher, or an emptied stream); publishing goes on after the cursor");
                pos.resync = true;
            }
        }
        Run::Again
    }
}

/// A failed acknowledgement, by what the publisher does about it.
enum Failure {
    WrongLast(String),
    StreamMissing(String),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::WrongLast(m) | Failure::StreamMissing(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

fn describe(e: jetstream::context::PublishError) -> Failure {
    match e.kind() {
        PublishErrorKind::WrongLastMessageId => Failure::WrongLast(e.to_string()),
        PublishErrorKind::StreamNotFound => Failure::StreamMissing(e.to_string()),
        _ => Failure::Other(e.to_string()),
    }
}
