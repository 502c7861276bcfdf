//! `state-hub import`: loads a checked [`Document`] into an empty state hub database in one
//! transaction, or not at all.
//!
//! Records keep their ids, times, authors and contents. The journal does not keep its hashes: an
//! export from an older or another system may not carry hashes this hub can check, so the events
//! are renumbered in document order and sealed into a new chain with the hub's own canonical form
//! ([`hub_core::journal`]). What the source chain was (its head, and whether it verified) is
//! recorded in a closing `import.completed` event, and the whole new chain is verified with the
//! same [`Verifier`](hub_core::journal::Verifier) `hubctl audit verify` uses before the
//! transaction commits. Only INSERTs touch `events`, so the append-only triggers stay in force.

use super::chain::{self, ChainState};
use super::document::{ChainHeadRecord, Counts, Document, EventRecord, FORMAT};
use super::{require_current_schema, verify, DatabaseError};
use crate::journal::{MIGRATION_LOCK, WRITER_LOCK};
use chrono::{DateTime, Utc};
use hub_core::api::decisions::DecisionType;
use hub_core::api::events::Event;
use hub_core::config::DatabaseConfig;
use hub_core::db;
use hub_core::journal::{self, Sealed, Verifier, GENESIS};
use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

/// Rows per multi-row statement.
const CHUNK: usize = 1000;
/// The author of the closing event: the hub itself.
const AUTHOR: &str = "state-hub";
/// The type of the closing event.
pub const COMPLETED: &str = "import.completed";

/// How to run an import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Do everything, then roll back.
    pub dry_run: bool,
    /// SHA-256 of the input file (hex), recorded in the closing event.
    pub input_sha256: String,
}

/// What the source chain turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceChain {
    /// Every event carried its hashes and they verify from the genesis.
    Verified {
        /// Events checked.
        events: u64,
    },
    /// The hashes do not verify: rewritten, corrupted, or another system's canonical form.
    Broken {
        /// The first broken link.
        problem: String,
    },
    /// Some events carry no hashes.
    Absent,
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Rolled back at the end.
    pub dry_run: bool,
    /// The database part ran. A dry run against a database without the current schema only
    /// checks the document, since creating the schema is not something to roll back.
    pub rehearsed: bool,
    /// Records imported (events without the closing `import.completed`).
    pub imported: Counts,
    /// The source journal's head, as the export states it.
    pub source_head: Option<ChainHeadRecord>,
    /// Whether the source's own hashes verify.
    pub source_chain: SourceChain,
    /// Whether the new chain has the source head's hash at the source head's position: true
    /// when the export comes from a Hubplane state hub and nothing in it was changed.
    pub reproduces_source_head: Option<bool>,
    /// The new, verified chain (with the closing event).
    pub chain: Option<ChainState>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(f, "{verb}: {}", self.imported)?;
        match &self.source_head {
            Some(h) => writeln!(f, "source head: event {} {}", h.seq, h.hash)?,
            None => writeln!(f, "source head: not stated in the export")?,
        }
        match &self.source_chain {
            SourceChain::Verified { events } => {
                writeln!(f, "source chain: {events} events verify")?
            }
            SourceChain::Broken { problem } => writeln!(
                f,
                "source chain: DOES NOT VERIFY ({problem}); the events were imported as the export \
                 states them and sealed into a new chain"
            )?,
            SourceChain::Absent => writeln!(f, "source chain: the export carries no hashes")?,
        }
        match (self.reproduces_source_head, &self.source_head) {
            (Some(true), Some(h)) => writeln!(
                f,
                "the new chain reproduces the source head at event {}: same events, same hashes",
                h.seq
            )?,
            (Some(false), Some(h)) => writeln!(
                f,
                "the new chain differs from the source head at event {}: the hashes were rebuilt",
                h.seq
            )?,
            _ => {}
        }
        match (&self.chain, self.rehearsed) {
            (Some(c), _) => write!(
                f,
                "journal verified: {} events, head {} {}{}",
                c.events,
                c.head_seq,
                c.head_hash,
                if self.dry_run {
                    " (rolled back: dry run)"
                } else {
                    ""
                }
            ),
            (None, false) => write!(
                f,
                "the export is valid; the target has no state hub schema yet, so the import was not \
                 rehearsed against it (the real import creates the schema and runs in one \
                 transaction: all or nothing)"
            ),
            (None, true) => write!(f, "journal not verified"),
        }
    }
}

/// Checks the source's own hashes, for the record: the import does not depend on them.
pub fn source_chain(events: &[EventRecord]) -> SourceChain {
    let mut v = Verifier::new();
    for e in events {
        let (Some(seq), Some(prev_hash), Some(hash)) = (e.seq, &e.prev_hash, &e.hash) else {
            return SourceChain::Absent;
        };
        let event = Event {
            seq,
            id: e.id,
            created_at: e.created_at,
            event_type: e.event_type.clone(),
            summary: e.summary.clone(),
            author: e.author.clone(),
            workstream_id: e.workstream_id,
            workplan_id: e.workplan_id,
            task_id: e.task_id,
            decision_id: e.decision_id,
            detail: e.detail.clone(),
            prev_hash: prev_hash.clone(),
            hash: hash.clone(),
        };
        if let Err(broken) = v.push(&event) {
            return SourceChain::Broken {
                problem: broken.to_string(),
            };
        }
    }
    SourceChain::Verified {
        events: v.checked(),
    }
}

/// What the target holds, when it holds anything ("3 events, 1 decision"); `None` when it is
/// empty or has no state hub tables yet.
async fn occupied(c: &impl GenericClient) -> Result<Option<String>, DatabaseError> {
    let has_tables: bool = c
        .query_one("SELECT to_regclass('events') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !has_tables {
        return Ok(None);
    }
    let n = verify::counts(c).await?;
    let held: Vec<String> = [
        (n.events, "event"),
        (n.decisions, "decision"),
        (n.workstreams, "workstream"),
        (n.workplans, "workplan"),
        (n.tasks, "task"),
    ]
    .iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}(s)"))
    .collect();
    Ok(if held.is_empty() {
        None
    } else {
        Some(held.join(", "))
    })
}

/// Imports `doc` into the database `cfg` names, which must be empty (it is migrated first,
/// except on a dry run).
pub async fn import(
    cfg: &DatabaseConfig,
    doc: &Document,
    opts: &Options,
) -> Result<Report, DatabaseError> {
    let mut client = db::connect_tool(cfg, "state-hub-import").await?;
    // Refuse before migrating, so a refused import leaves the target exactly as it was.
    if let Some(held) = occupied(&client).await? {
        return Err(DatabaseError::NotEmpty(held));
    }
    let mut report = Report {
        dry_run: opts.dry_run,
        rehearsed: false,
        imported: doc.counts(),
        source_head: doc.source_head(),
        source_chain: source_chain(&doc.events),
        reproduces_source_head: None,
        chain: None,
    };
    if opts.dry_run {
        if require_current_schema(&client).await.is_err() {
            return Ok(report);
        }
    } else {
        let pg = db::pg_config(cfg, "state-hub-import-migrate")?;
        db::migrate(&pg, crate::migrations::sets(), MIGRATION_LOCK).await?;
        require_current_schema(&client).await?;
    }
    let tx = client.transaction().await?;
    // The journal writer's lock: a hub started on this database meanwhile waits for the import.
    let head = tx
        .query_one(
            "SELECT head_seq FROM journal_lock_head($1)",
            &[&WRITER_LOCK],
        )
        .await?;
    let head_seq: i64 = head.try_get(0)?;
    if let Some(held) = occupied(&tx).await? {
        return Err(DatabaseError::NotEmpty(held));
    }
    if head_seq != 0 {
        return Err(DatabaseError::NotEmpty(format!(
            "a journal up to event {head_seq}"
        )));
    }
    insert_plans(&tx, doc).await?;
    insert_decisions(&tx, doc).await?;
    let (sealed, at_source_head) = seal_events(&tx, doc, opts, &report).await?;
    let chain = match chain::verify(&tx).await? {
        Ok(c) if c.events == sealed.events && c.head_hash == sealed.head_hash => c,
        Ok(c) => {
            return Err(DatabaseError::Rebuilt(format!(
                "{} events with head {} read back, {} sealed with head {}",
                c.events, c.head_hash, sealed.events, sealed.head_hash
            )))
        }
        Err(broken) => return Err(DatabaseError::Rebuilt(format!("broken link at {broken}"))),
    };
    let mut stored = verify::counts(&tx).await?;
    stored.events = stored.events.saturating_sub(1);
    if stored != report.imported {
        return Err(DatabaseError::Rebuilt(format!(
            "the database holds {stored}, the export {}",
            report.imported
        )));
    }
    if opts.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    report.rehearsed = true;
    report.reproduces_source_head = report
        .source_head
        .as_ref()
        .map(|h| at_source_head.as_deref() == Some(h.hash.as_str()));
    report.chain = Some(chain);
    Ok(report)
}

async fn insert_plans(tx: &Transaction<'_>, doc: &Document) -> Result<(), DatabaseError> {
    let ws = tx
        .prepare(
            "INSERT INTO workstreams (id, slug, title, description, created_by, created_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    for w in &doc.workstreams {
        tx.execute(
            &ws,
            &[
                &w.id,
                &w.slug,
                &w.title,
                &w.description,
                &w.created_by,
                &w.created_at,
                &w.version,
            ],
        )
        .await?;
    }
    let wp = tx
        .prepare(
            "INSERT INTO workplans (id, workstream_id, title, description, status, created_by, \
             created_at, finished_by, finished_at, accepted_by, accepted_at, review_comment, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .await?;
    for w in &doc.workplans {
        tx.execute(
            &wp,
            &[
                &w.id,
                &w.workstream_id,
                &w.title,
                &w.description,
                &w.status.as_str(),
                &w.created_by,
                &w.created_at,
                &w.finished_by,
                &w.finished_at,
                &w.accepted_by,
                &w.accepted_at,
                &w.review_comment,
                &w.version,
            ],
        )
        .await?;
    }
    let task = tx
        .prepare(
            "INSERT INTO tasks (id, workplan_id, title, description, status, needs_human, \
             blocking_reason, assignee, created_by, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .await?;
    for t in &doc.tasks {
        tx.execute(
            &task,
            &[
                &t.id,
                &t.workplan_id,
                &t.title,
                &t.description,
                &t.status.as_str(),
                &t.needs_human,
                &t.blocking_reason,
                &t.assignee,
                &t.created_by,
                &t.created_at,
                &t.updated_at,
                &t.version,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Decisions refer to each other both ways (`supersedes` / `superseded_by`) through foreign keys
/// that cannot be deferred, and a superseded decision must name its replacement. So every
/// decision is inserted first without those links (a superseded one as `open`), and the links
/// and the `superseded` status are set afterwards; the guard trigger allows that, since neither
/// the outcome nor the proposer changes.
async fn insert_decisions(tx: &Transaction<'_>, doc: &Document) -> Result<(), DatabaseError> {
    let insert = tx
        .prepare(
            "INSERT INTO decisions (id, title, context, options, decision_type, status, proposed_by, \
             created_at, escalated_by, escalated_at, escalation_reason, outcome_choice, \
             outcome_rationale, decided_by, decided_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .await?;
    let relink = tx
        .prepare(
            "UPDATE decisions SET status = $2, superseded_by = $3, supersedes = $4 WHERE id = $1",
        )
        .await?;
    let link = tx
        .prepare(
            "INSERT INTO decision_tasks (decision_id, task_id, linked_by, linked_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    for d in &doc.decisions {
        let status = d.status.as_str();
        let first_status = if d.superseded_by.is_some() {
            "open"
        } else {
            status
        };
        let dtype = match d.decision_type {
            DecisionType::Made => "made",
            DecisionType::Pending => "pending",
        };
        let o = d.outcome.as_ref();
        tx.execute(
            &insert,
            &[
                &d.id,
                &d.title,
                &d.context,
                &d.options,
                &dtype,
                &first_status,
                &d.proposed_by,
                &d.created_at,
                &d.escalated_by,
                &d.escalated_at,
                &d.escalation_reason,
                &o.map(|o| o.choice.as_str()),
                &o.map(|o| o.rationale.as_str()),
                &o.map(|o| o.decided_by.as_str()),
                &o.map(|o| o.decided_at),
                &d.version,
            ],
        )
        .await?;
    }
    for d in &doc.decisions {
        if d.superseded_by.is_some() || d.supersedes.is_some() {
            tx.execute(
                &relink,
                &[&d.id, &d.status.as_str(), &d.superseded_by, &d.supersedes],
            )
            .await?;
        }
        for l in &d.task_links {
            tx.execute(&link, &[&d.id, &l.task_id, &l.linked_by, &l.linked_at])
                .await?;
        }
    }
    Ok(())
}

/// The details as `jsonb` gives them back, so the hashes sealed now are the ones a verifier
/// computes from the stored rows (jsonb normalizes numbers, e.g. it has no negative zero).
async fn as_stored(tx: &Transaction<'_>, details: &[&Value]) -> Result<Vec<Value>, DatabaseError> {
    let stmt = tx
        .prepare("SELECT d FROM unnest($1::jsonb[]) WITH ORDINALITY AS t(d, n) ORDER BY n")
        .await?;
    let mut out = Vec::with_capacity(details.len());
    for chunk in details.chunks(CHUNK) {
        for row in tx.query(&stmt, &[&chunk]).await? {
            out.push(row.try_get(0)?);
        }
    }
    Ok(out)
}

/// The columns of one multi-row event insert.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    id: Vec<Uuid>,
    created_at: Vec<DateTime<Utc>>,
    event_type: Vec<String>,
    summary: Vec<String>,
    author: Vec<String>,
    workstream_id: Vec<Option<Uuid>>,
    workplan_id: Vec<Option<Uuid>>,
    task_id: Vec<Option<Uuid>>,
    decision_id: Vec<Option<Uuid>>,
    detail: Vec<Value>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.seq.len()
    }

    async fn flush(&mut self, tx: &Transaction<'_>) -> Result<(), DatabaseError> {
        if self.len() == 0 {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO events (seq, id, created_at, event_type, summary, author, workstream_id, \
             workplan_id, task_id, decision_id, detail, prev_hash, hash) \
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], \
             $6::text[], $7::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::jsonb[], $12::bytea[], $13::bytea[])",
            &[
                &self.seq,
                &self.id,
                &self.created_at,
                &self.event_type,
                &self.summary,
                &self.author,
                &self.workstream_id,
                &self.workplan_id,
                &self.task_id,
                &self.decision_id,
                &self.detail,
                &self.prev_hash,
                &self.hash,
            ],
        )
        .await?;
        *self = Rows::default();
        Ok(())
    }
}

/// One event ready for the chain.
struct Unsealed<'a> {
    id: Uuid,
    created_at: DateTime<Utc>,
    event_type: &'a str,
    summary: &'a str,
    author: &'a str,
    workstream_id: Option<Uuid>,
    workplan_id: Option<Uuid>,
    task_id: Option<Uuid>,
    decision_id: Option<Uuid>,
    detail: Value,
}

/// Renumbers the document's events from 1, appends the closing `import.completed` event, seals
/// them all into a chain from the genesis and inserts them; returns the chain it sealed and the
/// new hash at the source head's position.
async fn seal_events(
    tx: &Transaction<'_>,
    doc: &Document,
    opts: &Options,
    report: &Report,
) -> Result<(ChainState, Option<String>), DatabaseError> {
    let completed_detail = json!({
        "format": FORMAT,
        "format_version": doc.format_version,
        "exported_at": doc.exported_at,
        "source": doc.source.as_ref().map(|s| json!({
            "system": s.system, "version": s.version, "database": s.database,
        })),
        "source_head": report.source_head,
        "source_chain": report.source_chain,
        "imported": report.imported,
        "input_sha256": opts.input_sha256,
    });
    let mut details: Vec<&Value> = doc.events.iter().map(|e| &e.detail).collect();
    details.push(&completed_detail);
    let mut details = as_stored(tx, &details).await?.into_iter();
    let summary = format!("Imported a state hub export: {}", report.imported);
    let mut events: Vec<Unsealed<'_>> = Vec::with_capacity(doc.events.len() + 1);
    for e in &doc.events {
        events.push(Unsealed {
            id: e.id,
            created_at: journal::db_precision(e.created_at),
            event_type: &e.event_type,
            summary: &e.summary,
            author: &e.author,
            workstream_id: e.workstream_id,
            workplan_id: e.workplan_id,
            task_id: e.task_id,
            decision_id: e.decision_id,
            detail: details.next().unwrap_or_default(),
        });
    }
    events.push(Unsealed {
        id: Uuid::now_v7(),
        created_at: journal::db_precision(Utc::now()),
        event_type: COMPLETED,
        summary: &summary,
        author: AUTHOR,
        workstream_id: None,
        workplan_id: None,
        task_id: None,
        decision_id: None,
        detail: details.next().unwrap_or_default(),
    });

    let mut prev = GENESIS;
    let mut seq = 0i64;
    let mut rows = Rows::default();
    let source_head_seq = report.source_head.as_ref().map(|h| h.seq);
    let mut at_source_head = None;
    for e in events {
        seq += 1;
        let hash = journal::link(
            &prev,
            &Sealed {
                seq,
                id: e.id,
                created_at: e.created_at,
                event_type: e.event_type,
                summary: e.summary,
                author: e.author,
                workstream_id: e.workstream_id,
                workplan_id: e.workplan_id,
                task_id: e.task_id,
                decision_id: e.decision_id,
                detail: &e.detail,
            },
        );
        rows.seq.push(seq);
        rows.id.push(e.id);
        rows.created_at.push(e.created_at);
        rows.event_type.push(e.event_type.to_owned());
        rows.summary.push(e.summary.to_owned());
        rows.author.push(e.author.to_owned());
        rows.workstream_id.push(e.workstream_id);
        rows.workplan_id.push(e.workplan_id);
        rows.task_id.push(e.task_id);
        rows.decision_id.push(e.decision_id);
        rows.detail.push(e.detail);
        rows.prev_hash.push(prev.to_vec());
        rows.hash.push(hash.to_vec());
        prev = hash;
        if Some(seq) == source_head_seq {
            at_source_head = Some(journal::to_hex(&hash));
        }
        if rows.len() >= CHUNK {
            rows.flush(tx).await?;
        }
    }
    rows.flush(tx).await?;
    let chain = ChainState {
        events: u64::try_from(seq).unwrap_or(0),
        head_seq: seq,
        head_hash: journal::to_hex(&prev),
    };
    Ok((chain, at_source_head))
}
