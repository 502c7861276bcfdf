//! The single journal writer: group commit under an advisory lock.

use super::draft::Draft;
use super::recent::Recent;
use super::store::{self, EVENT_COLUMNS};
use super::{NOTIFY_CHANNEL, WRITER_LOCK};
use chrono::Utc;
use futures_util::future::BoxFuture;
use hub_core::api::events::Event;
use hub_core::http::problem::ApiError;
use hub_core::journal;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

/// Identifies a retried write: the same principal, key and body return the original events.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// Client-chosen key.
    pub key: String,
    /// SHA-256 of the canonical request.
    pub request_hash: [u8; 32],
}

/// A request to append client events.
#[derive(Debug)]
pub struct AppendRequest {
    /// Principal writing the events.
    pub author: String,
    /// Validated events, appended in order.
    pub drafts: Vec<Draft>,
    /// Optional idempotency key.
    pub idempotency: Option<Idempotency>,
}

/// Outcome of an append.
#[derive(Debug)]
pub enum Appended {
    /// New events were written.
    Created(Vec<Arc<Event>>),
    /// The key was seen with the same body; these are the original events.
    Replayed(Vec<Arc<Event>>),
}

/// Events kept in memory for the newest pages (about 1 KiB each).
const RECENT_EVENTS: usize = 2048;

type AppendReply = oneshot::Sender<Result<Appended, ApiError>>;

/// A domain change that runs in the writer's transaction, in its own savepoint.
trait Job: Send {
    fn run<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, Result<(), ApiError>>;
    fn finish(self: Box<Self>, outcome: Result<(), ApiError>);
}

struct ClosureJob<T, F> {
    f: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, ApiError>>,
}

impl<T, F> Job for ClosureJob<T, F>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut Ctx) -> BoxFuture<'a, Result<T, ApiError>> + Send + 'static,
{
    fn run<'a>(&'a mut self, ctx: &'a mut Ctx) -> BoxFuture<'a, Result<(), ApiError>> {
        let f = self.f.take();
        Box::pin(async move {
            let f =
                f.ok_or_else(|| ApiError::internal(anyhow::anyhow!("journal job ran twice")))?;
            self.out = Some(f(ctx).await?);
            Ok(())
        })
    }

    fn finish(self: Box<Self>, outcome: Result<(), ApiError>) {
        let ClosureJob { out, reply, .. } = *self;
        let result = outcome.and_then(|()| {
            out.ok_or_else(|| ApiError::internal(anyhow::anyhow!("journal job produced no result")))
        });
        let _ = reply.send(result);
    }
}

enum Work {
    Append(AppendRequest, AppendReply),
    Job(Box<dyn Job>),
}

struct Statements {
    lock_head: Statement,
    lock_expect: Statement,
    insert_events: Statement,
    idem_lookup: Statement,
    idem_insert: Statement,
    by_seqs: Statement,
    notify: Statement,
}

/// What a job sees: the writer's connection inside the open transaction, and the chain head.
pub struct Ctx {
    client: Client,
    stmts: Statements,
    head_seq: i64,
    head_hash: [u8; 32],
    /// The head above is the committed head (this writer committed it last), so the next batch
    /// may take the one-round-trip fast path.
    head_known: bool,
    now: chrono::DateTime<Utc>,
    appended: u64,
    /// Events sealed in the open transaction, for the in-memory cache once it commits.
    fresh: Vec<Arc<Event>>,
}

impl Ctx {
    /// The connection, inside the batch transaction and the job's savepoint.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Server time of this batch (microsecond precision).
    pub fn now(&self) -> chrono::DateTime<Utc> {
        self.now
    }

    fn seal(&mut self, author: &str, drafts: Vec<Draft>, rows: &mut EventRows) -> Vec<Arc<Event>> {
        drafts
            .into_iter()
            .map(|d| {
                let seq = self.head_seq + 1;
                let prev = self.head_hash;
                let id = Uuid::now_v7();
                let hash = journal::link_tail(&prev, seq, id, self.now, &d.tail_for(author));
                let e = Arc::new(Event {
                    seq,
                    id,
                    created_at: self.now,
                    event_type: d.event_type.as_str().to_owned(),
                    summary: d.summary,
                    author: author.to_owned(),
                    workstream_id: d.workstream_id,
                    workplan_id: d.workplan_id,
                    task_id: d.task_id,
                    decision_id: d.decision_id,
                    detail: d.detail,
                    prev_hash: journal::to_hex(&prev),
                    hash: journal::to_hex(&hash),
                });
                rows.push(e.clone(), prev, hash);
                self.fresh.push(e.clone());
                self.head_seq = seq;
                self.head_hash = hash;
                self.appended += 1;
                e
            })
            .collect()
    }

    /// Seals and inserts events written by the current job.
    pub async fn append(
        &mut self,
        author: &str,
        drafts: Vec<Draft>,
    ) -> Result<Vec<Arc<Event>>, ApiError> {
        let mut rows = EventRows::default();
        let events = self.seal(author, drafts, &mut rows);
        rows.insert(&self.client, &self.stmts.insert_events).await?;
        Ok(events)
    }
}

/// Sealed events of one multi-row insert; the column arrays borrow from them at insert time.
#[derive(Default)]
struct EventRows {
    events: Vec<Arc<Event>>,
    prev: Vec<[u8; 32]>,
    hash: Vec<[u8; 32]>,
}

impl EventRows {
    fn push(&mut self, e: Arc<Event>, prev: [u8; 32], hash: [u8; 32]) {
        self.events.push(e);
        self.prev.push(prev);
        self.hash.push(hash);
    }

    async fn insert(&self, client: &Client, stmt: &Statement) -> Result<(), tokio_postgres::Error> {
        if self.events.is_empty() {
            return Ok(());
        }
        let ev = &self.events;
        let seq: Vec<i64> = ev.iter().map(|e| e.seq).collect();
        let id: Vec<Uuid> = ev.iter().map(|e| e.id).collect();
        let created_at: Vec<chrono::DateTime<Utc>> = ev.iter().map(|e| e.created_at).collect();
        let event_type: Vec<&str> = ev.iter().map(|e| e.event_type.as_str()).collect();
        let summary: Vec<&str> = ev.iter().map(|e| e.summary.as_str()).collect();
        let author: Vec<&str> = ev.iter().map(|e| e.author.as_str()).collect();
        let workstream_id: Vec<Option<Uuid>> = ev.iter().map(|e| e.workstream_id).collect();
        let workplan_id: Vec<Option<Uuid>> = ev.iter().map(|e| e.workplan_id).collect();
        let task_id: Vec<Option<Uuid>> = ev.iter().map(|e| e.task_id).collect();
        let decision_id: Vec<Option<Uuid>> = ev.iter().map(|e| e.decision_id).collect();
        let detail: Vec<&serde_json::Value> = ev.iter().map(|e| &e.detail).collect();
        let prev: Vec<&[u8]> = self.prev.iter().map(|h| h.as_slice()).collect();
        let hash: Vec<&[u8]> = self.hash.iter().map(|h| h.as_slice()).collect();
        client
            .execute(
                stmt,
                &[
                    &seq,
                    &id,
                    &created_at,
                    &event_type,
                    &summary,
                    &author,
                    &workstream_id,
                    &workplan_id,
                    &task_id,
                    &decision_id,
                    &detail,
                    &prev,
                    &hash,
                ],
            )
            .await
            .map(|_| ())
    }
}

/// Writer metrics.
#[derive(Clone)]
struct WriterMetrics {
    batches: IntCounter,
    fast_batches: IntCounter,
    head_moved: IntCounter,
    events: IntCounter,
    failed_batches: IntCounter,
    batch_size: Histogram,
    commit_seconds: Histogram,
    head: IntGauge,
}

impl WriterMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            batches: IntCounter::new("journal_batches_total", "Writer transactions committed")?,
            fast_batches: IntCounter::new(
                "journal_fast_batches_total",
                "Writer transactions committed in one pipelined round trip",
            )?,
            head_moved: IntCounter::new(
                "journal_head_moved_total",
                "Fast-path batches redone because another writer moved the head",
            )?,
            events: IntCounter::new(
                "journal_events_appended_total",
                "Events appended to the journal",
            )?,
            failed_batches: IntCounter::new(
                "journal_batches_failed_total",
                "Writer transactions that failed",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("journal_batch_writes", "Writes committed per transaction")
                    .buckets(vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                    ]),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new("journal_batch_seconds", "Time per writer transaction").buckets(
                    vec![
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                    ],
                ),
            )?,
            head: IntGauge::new(
                "journal_head_seq",
                "Sequence number of the newest committed event",
            )?,
        };
        registry.register(Box::new(m.batches.clone()))?;
        registry.register(Box::new(m.fast_batches.clone()))?;
        registry.register(Box::new(m.head_moved.clone()))?;
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.failed_batches.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.commit_seconds.clone()))?;
        registry.register(Box::new(m.head.clone()))?;
        Ok(m)
    }
}

/// The cloneable handle handlers use.
#[derive(Clone)]
pub struct Journal {
    recent: Arc<Recent>,
    tx: mpsc::Sender<Work>,
    head: watch::Receiver<i64>,
    head_tx: std::sync::Arc<watch::Sender<i64>>,
    stop: std::sync::Arc<watch::Sender<bool>>,
}

/// The running writer task.
pub struct JournalHandle {
    /// The writer task; resolves after a stop once every queued write is answered.
    pub task: tokio::task::JoinHandle<()>,
}

fn unavailable() -> ApiError {
    ApiError::Unavailable(
        "the journal writer is not accepting writes (shutting down or overloaded)".into(),
    )
}

impl Journal {
    /// Starts the writer on its own connection.
    pub fn spawn(
        pg: tokio_postgres::Config,
        max_batch: usize,
        queue_depth: usize,
        registry: &Registry,
    ) -> Result<(Journal, JournalHandle), prometheus::Error> {
        let (tx, rx) = mpsc::channel(queue_depth);
        let (head_tx, head) = watch::channel(0i64);
        let head_tx = std::sync::Arc::new(head_tx);
        let (stop_tx, stop_rx) = watch::channel(false);
        let recent = Arc::new(Recent::new(RECENT_EVENTS));
        let writer = Writer {
            recent: recent.clone(),
            pg,
            rx,
            ctx: None,
            max_batch,
            head_tx: head_tx.clone(),
            metrics: WriterMetrics::new(registry)?,
        };
        let task = tokio::spawn(writer.run(stop_rx));
        Ok((
            Journal {
                recent,
                tx,
                head,
                head_tx,
                stop: std::sync::Arc::new(stop_tx),
            },
            JournalHandle { task },
        ))
    }

    /// Appends client events (with idempotency).
    pub async fn append(&self, req: AppendRequest) -> Result<Appended, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Work::Append(req, reply))
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// Runs a domain change and the events it appends in the writer's transaction.
    pub async fn transact<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Ctx) -> BoxFuture<'a, Result<T, ApiError>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = ClosureJob {
            f: Some(f),
            out: None,
            reply,
        };
        self.tx
            .try_send(Work::Job(Box::new(job)))
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// Newest committed sequence number, updated by this writer and by NOTIFY from replicas.
    pub fn head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    /// Records a sequence number committed elsewhere (another replica).
    pub fn observe_head(&self, seq: i64) {
        advance(&self.head_tx, seq);
    }

    /// The newest events, in memory.
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// Whether the writer task is still taking writes.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Stops accepting writes; queued writes are still committed and answered.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

struct Writer {
    recent: Arc<Recent>,
    pg: tokio_postgres::Config,
    rx: mpsc::Receiver<Work>,
    ctx: Option<Ctx>,
    max_batch: usize,
    head_tx: std::sync::Arc<watch::Sender<i64>>,
    metrics: WriterMetrics,
}

enum Pending {
    Append(AppendReply, Result<Appended, ApiError>),
    Job(Box<dyn Job>, Result<(), ApiError>),
}

impl Writer {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let first = tokio::select! {
                w = self.rx.recv() => w,
                _ = stop.changed(), if !*stop.borrow() => {
                    // Refuse new writes; the loop drains what is already queued.
                    self.rx.close();
                    continue;
                }
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
            self.process(batch).await;
        }
        tracing::info!("journal writer stopped");
    }

    async fn connect(&self) -> Result<Ctx, tokio_postgres::Error> {
        let (client, conn) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "journal writer connection lost");
            }
        });
        let stmts = Statements {
            lock_head: client.prepare("SELECT head_seq, head_hash FROM journal_lock_head($1)").await?,
            lock_expect: client
                .prepare("SELECT journal_lock_expect($1, $2, $3)")
                .await?,
            insert_events: client
                .prepare(
                    "INSERT INTO events (seq, id, created_at, event_type, summary, author, workstream_id, \
                     workplan_id, task_id, decision_id, detail, prev_hash, hash) \
                     SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], \
                     $6::text[], $7::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::jsonb[], $12::bytea[], $13::bytea[])",
                )
                .await?,
            idem_lookup: client
                .prepare(
                    "SELECT i.principal, i.key, i.request_hash, i.event_seqs FROM idempotency_keys i \
                     JOIN unnest($1::text[], $2::text[]) AS k(principal, key) \
                     ON i.principal = k.principal AND i.key = k.key",
                )
                .await?,
            idem_insert: client
                .prepare(
                    "INSERT INTO idempotency_keys (principal, key, request_hash, event_seqs) \
                     SELECT p, k, h, string_to_array(s, ',')::bigint[] \
                     FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) AS t(p, k, h, s)",
                )
                .await?,
            by_seqs: client
                .prepare(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ANY($1) ORDER BY seq"))
                .await?,
            notify: client.prepare("SELECT pg_notify($1, $2)").await?,
        };
        Ok(Ctx {
            client,
            stmts,
            head_seq: 0,
            head_hash: journal::GENESIS,
            head_known: false,
            now: Utc::now(),
            appended: 0,
            fresh: Vec::new(),
        })
    }

    async fn process(&mut self, batch: Vec<Work>) {
        let started = Instant::now();
        let size = batch.len();
        if self.ctx.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.ctx = match self.connect().await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "journal writer cannot reach the database");
                    // Back off briefly so a flood of writes during an outage does not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return fail_all(batch, database_down);
                }
            };
        }
        let Some(mut ctx) = self.ctx.take() else {
            return fail_all(batch, database_down);
        };
        let batch = if ctx.head_known && batch.iter().all(is_unkeyed_append) {
            match fast_append(&mut ctx, batch).await {
                Ok(batch) => {
                    self.metrics.head_moved.inc();
                    batch
                }
                Err(outcome) => {
                    if outcome.is_ok() {
                        self.metrics.fast_batches.inc();
                    }
                    return self.settle(ctx, outcome, size, started).await;
                }
            }
        } else {
            batch
        };
        let outcome = run_batch(&mut ctx, batch).await;
        self.settle(ctx, outcome, size, started).await;
    }

    /// Answers every write of a batch and keeps the connection if it is still usable.
    async fn settle(&mut self, mut ctx: Ctx, outcome: BatchOutcome, size: usize, started: Instant) {
        let healthy = !ctx.client.is_closed();
        ctx.head_known = outcome.is_ok();
        match outcome {
            Ok(pending) => {
                self.metrics.batches.inc();
                self.metrics.events.inc_by(ctx.appended);
                self.metrics.batch_size.observe(size as f64);
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.head.set(ctx.head_seq);
                self.recent.extend(std::mem::take(&mut ctx.fresh));
                advance(&self.head_tx, ctx.head_seq);
                deliver(pending);
            }
            Err((pending, e)) => {
                self.metrics.failed_batches.inc();
                tracing::error!(error = %e, writes = size, "journal batch failed; nothing of it was committed");
                let _ = ctx.client.batch_execute("ROLLBACK").await;
                let err = if healthy { internal_db } else { database_down };
                for p in pending {
                    match p {
                        Pending::Append(reply, Ok(_)) => {
                            let _ = reply.send(Err(err()));
                        }
                        Pending::Append(reply, Err(own)) => {
                            let _ = reply.send(Err(own));
                        }
                        Pending::Job(job, Ok(())) => job.finish(Err(err())),
                        Pending::Job(job, Err(own)) => job.finish(Err(own)),
                    }
                }
            }
        }
        if healthy {
            self.ctx = Some(ctx);
        }
    }
}

/// Moves the known head forward (never back: notifications and commits race).
fn advance(head: &watch::Sender<i64>, seq: i64) {
    head.send_if_modified(|h| {
        let newer = seq > *h;
        if newer {
            *h = seq;
        }
        newer
    });
}

type BatchOutcome = Result<Vec<Pending>, (Vec<Pending>, tokio_postgres::Error)>;

fn is_unkeyed_append(w: &Work) -> bool {
    matches!(w, Work::Append(r, _) if r.idempotency.is_none())
}

/// The common case in one round trip: plain appends sealed against the head this writer
/// committed last, sent as one pipelined flight (BEGIN, lock and check the head, INSERT, NOTIFY,
/// COMMIT). If another writer moved the head meanwhile, the check fails, nothing is written, and
/// the writes come back (`Ok`) for the slow path, which reads the head first.
async fn fast_append(ctx: &mut Ctx, batch: Vec<Work>) -> Result<Vec<Work>, BatchOutcome> {
    let (expect_seq, expect_hash) = (ctx.head_seq, ctx.head_hash);
    ctx.appended = 0;
    ctx.fresh.clear();
    ctx.now = journal::db_precision(Utc::now());
    let mut rows = EventRows::default();
    let mut sealed: Vec<(String, Vec<Arc<Event>>, AppendReply)> = Vec::with_capacity(batch.len());
    for w in batch {
        if let Work::Append(req, reply) = w {
            let events = ctx.seal(&req.author, req.drafts, &mut rows);
            sealed.push((req.author, events, reply));
        }
    }
    let head = ctx.head_seq.to_string();
    let expect = expect_hash.to_vec();
    let lock: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&WRITER_LOCK, &expect_seq, &expect];
    let notify: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&NOTIFY_CHANNEL, &head];
    let (begun, locked, inserted, notified, committed) = tokio::join!(
        ctx.client.batch_execute("BEGIN"),
        ctx.client.query_one(&ctx.stmts.lock_expect, &lock),
        rows.insert(&ctx.client, &ctx.stmts.insert_events),
        ctx.client.execute(&ctx.stmts.notify, &notify),
        ctx.client.batch_execute("COMMIT")
    );
    // A COMMIT of a transaction that failed earlier answers ROLLBACK, not an error: the
    // statements' own results say whether anything was written.
    let written = begun
        .and(locked.map(|_| ()))
        .and(inserted)
        .and(notified.map(|_| ()))
        .and(committed);
    let created = |sealed: Vec<(String, Vec<Arc<Event>>, AppendReply)>| -> Vec<Pending> {
        sealed
            .into_iter()
            .map(|(_, e, reply)| Pending::Append(reply, Ok(Appended::Created(e))))
            .collect()
    };
    match written {
        Ok(()) => Err(Ok(created(sealed))),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) => {
            ctx.head_seq = expect_seq;
            ctx.head_hash = expect_hash;
            ctx.appended = 0;
            ctx.fresh.clear();
            Ok(sealed
                .into_iter()
                .map(|(author, events, reply)| Work::Append(unseal(author, events), reply))
                .collect())
        }
        Err(e) => Err(Err((created(sealed), e))),
    }
}

/// Turns sealed events back into the request they came from, for a retry on the slow path.
fn unseal(author: String, events: Vec<Arc<Event>>) -> AppendRequest {
    let drafts = events
        .into_iter()
        .filter_map(|e| {
            let e = Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone());
            Some(Draft {
                event_type: hub_core::api::events::EventType::parse(&e.event_type).ok()?,
                summary: e.summary,
                detail: e.detail,
                workstream_id: e.workstream_id,
                workplan_id: e.workplan_id,
                task_id: e.task_id,
                decision_id: e.decision_id,
                tail: None,
            })
        })
        .collect();
    AppendRequest {
        author,
        drafts,
        idempotency: None,
    }
}

fn database_down() -> ApiError {
    ApiError::Unavailable("the database is unavailable; nothing was written, retry shortly".into())
}

fn internal_db() -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "journal transaction failed; nothing was written"
    ))
}

fn fail_all(batch: Vec<Work>, err: impl Fn() -> ApiError) {
    for w in batch {
        match w {
            Work::Append(_, reply) => {
                let _ = reply.send(Err(err()));
            }
            Work::Job(job) => job.finish(Err(err())),
        }
    }
}

fn deliver(pending: Vec<Pending>) {
    for p in pending {
        match p {
            Pending::Append(reply, r) => {
                let _ = reply.send(r);
            }
            Pending::Job(job, r) => job.finish(r),
        }
    }
}

/// Everything for one transaction. On a database error the whole batch is rolled back and
/// returned so each caller gets an answer.
async fn run_batch(
    ctx: &mut Ctx,
    batch: Vec<Work>,
) -> Result<Vec<Pending>, (Vec<Pending>, tokio_postgres::Error)> {
    let mut pending: Vec<Pending> = Vec::with_capacity(batch.len());
    let mut iter = batch.into_iter().peekable();
    ctx.appended = 0;
    ctx.fresh.clear();
    ctx.now = journal::db_precision(Utc::now());
    // Pipelined: both statements leave in one round trip and run in order.
    let (begun, head) = tokio::join!(
        ctx.client.batch_execute("BEGIN"),
        ctx.client.query_one(&ctx.stmts.lock_head, &[&WRITER_LOCK])
    );
    let head = match begun.and(head) {
        Ok(row) => row,
        Err(e) => {
            let rest: Vec<Pending> = iter.map(unanswered).collect();
            return Err((rest, e));
        }
    };
    ctx.head_seq = head.get(0);
    let hash: Vec<u8> = head.get(1);
    ctx.head_hash = <[u8; 32]>::try_from(hash.as_slice()).unwrap_or(journal::GENESIS);
    let start_seq = ctx.head_seq;

    while let Some(work) = iter.next() {
        match work {
            Work::Append(req, reply) => {
                let mut group = vec![(req, reply)];
                while matches!(iter.peek(), Some(Work::Append(..))) {
                    if let Some(Work::Append(r, rp)) = iter.next() {
                        group.push((r, rp));
                    }
                }
                let (reqs, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                match append_group(ctx, reqs).await {
                    Ok(results) => pending.extend(
                        replies
                            .into_iter()
                            .zip(results)
                            .map(|(rp, r)| Pending::Append(rp, r)),
                    ),
                    Err(e) => {
                        pending.extend(
                            replies
                                .into_iter()
                                .map(|rp| Pending::Append(rp, Err(internal_db()))),
                        );
                        pending.extend(iter.map(unanswered));
                        return Err((pending, e));
                    }
                }
            }
            Work::Job(mut job) => {
                if let Err(e) = ctx.client.batch_execute("SAVEPOINT job").await {
                    pending.push(Pending::Job(job, Err(internal_db())));
                    pending.extend(iter.map(unanswered));
                    return Err((pending, e));
                }
                let (seq, hash, appended, fresh) =
                    (ctx.head_seq, ctx.head_hash, ctx.appended, ctx.fresh.len());
                let r = job.run(ctx).await;
                let sql = if r.is_ok() {
                    "RELEASE SAVEPOINT job"
                } else {
                    "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job"
                };
                if r.is_err() {
                    ctx.head_seq = seq;
                    ctx.head_hash = hash;
                    ctx.appended = appended;
                    ctx.fresh.truncate(fresh);
                }
                if let Err(e) = ctx.client.batch_execute(sql).await {
                    pending.push(Pending::Job(job, r));
                    pending.extend(iter.map(unanswered));
                    return Err((pending, e));
                }
                pending.push(Pending::Job(job, r));
            }
        }
    }
    let finish = async {
        if ctx.head_seq > start_seq {
            let head = ctx.head_seq.to_string();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&NOTIFY_CHANNEL, &head];
            let (notified, committed) = tokio::join!(
                ctx.client.execute(&ctx.stmts.notify, &params),
                ctx.client.batch_execute("COMMIT")
            );
            notified.and(committed)
        } else {
            ctx.client.batch_execute("COMMIT").await
        }
    };
    match finish.await {
        Ok(()) => Ok(pending),
        Err(e) => Err((pending, e)),
    }
}

fn unanswered(w: Work) -> Pending {
    match w {
        Work::Append(_, reply) => Pending::Append(reply, Ok(Appended::Created(Vec::new()))),
        Work::Job(job) => Pending::Job(job, Ok(())),
    }
}

/// Appends consecutive client requests with one idempotency look-up and one insert.
async fn append_group(
    ctx: &mut Ctx,
    reqs: Vec<AppendRequest>,
) -> Result<Vec<Result<Appended, ApiError>>, tokio_postgres::Error> {
    let mut known: HashMap<(String, String), ([u8; 32], Vec<i64>)> = HashMap::new();
    let keyed: Vec<(&str, &str)> = reqs
        .iter()
        .filter_map(|r| {
            r.idempotency
                .as_ref()
                .map(|i| (r.author.as_str(), i.key.as_str()))
        })
        .collect();
    if !keyed.is_empty() {
        let principals: Vec<&str> = keyed.iter().map(|k| k.0).collect();
        let keys: Vec<&str> = keyed.iter().map(|k| k.1).collect();
        for row in ctx
            .client
            .query(&ctx.stmts.idem_lookup, &[&principals, &keys])
            .await?
        {
            let principal: String = row.get(0);
            let key: String = row.get(1);
            let hash: Vec<u8> = row.get(2);
            let seqs: Vec<i64> = row.get(3);
            if let Ok(h) = <[u8; 32]>::try_from(hash.as_slice()) {
                known.insert((principal, key), (h, seqs));
            }
        }
    }

    enum Slot {
        Done(Result<Appended, ApiError>),
        ReplayDb(Vec<i64>),
        ReplayBatch(usize),
    }
    let mut rows = EventRows::default();
    let mut slots: Vec<Slot> = Vec::with_capacity(reqs.len());
    let mut seen: HashMap<(String, String), ([u8; 32], usize)> = HashMap::new();
    let (mut idem_p, mut idem_k, mut idem_h, mut idem_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, req) in reqs.into_iter().enumerate() {
        if let Some(idem) = &req.idempotency {
            let id = (req.author.clone(), idem.key.clone());
            let conflict = || {
                Slot::Done(Err(ApiError::Conflict(format!(
                    "Idempotency-Key `{}` was already used with a different request body",
                    idem.key
                ))))
            };
            if let Some((h, seqs)) = known.get(&id) {
                slots.push(if *h == idem.request_hash {
                    Slot::ReplayDb(seqs.clone())
                } else {
                    conflict()
                });
                continue;
            }
            if let Some((h, at)) = seen.get(&id) {
                slots.push(if *h == idem.request_hash {
                    Slot::ReplayBatch(*at)
                } else {
                    conflict()
                });
                continue;
            }
            seen.insert(id, (idem.request_hash, i));
        }
        let events = ctx.seal(&req.author, req.drafts, &mut rows);
        if let Some(idem) = req.idempotency {
            idem_p.push(req.author);
            idem_k.push(idem.key);
            idem_h.push(idem.request_hash.to_vec());
            idem_s.push(
                events
                    .iter()
                    .map(|e| e.seq.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        slots.push(Slot::Done(Ok(Appended::Created(events))));
    }
    rows.insert(&ctx.client, &ctx.stmts.insert_events).await?;
    if !idem_p.is_empty() {
        ctx.client
            .execute(
                &ctx.stmts.idem_insert,
                &[&idem_p, &idem_k, &idem_h, &idem_s],
            )
            .await?;
    }
    let wanted: Vec<i64> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::ReplayDb(seqs) => Some(seqs.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let mut by_seq: HashMap<i64, Event> = HashMap::new();
    if !wanted.is_empty() {
        for row in ctx.client.query(&ctx.stmts.by_seqs, &[&wanted]).await? {
            let e = store::event_from_row(&row)?;
            by_seq.insert(e.seq, e);
        }
    }
    let mut out: Vec<Result<Appended, ApiError>> = Vec::with_capacity(slots.len());
    for slot in slots {
        let r = match slot {
            Slot::Done(r) => r,
            Slot::ReplayDb(seqs) => Ok(Appended::Replayed(
                seqs.iter()
                    .filter_map(|s| by_seq.get(s).cloned())
                    .map(Arc::new)
                    .collect(),
            )),
            Slot::ReplayBatch(at) => match out.get(at) {
                Some(Ok(Appended::Created(evs) | Appended::Replayed(evs))) => {
                    Ok(Appended::Replayed(evs.clone()))
                }
                _ => Err(ApiError::Conflict(
                    "the original request with this Idempotency-Key failed".into(),
                )),
            },
        };
        out.push(r);
    }
    Ok(out)
}
