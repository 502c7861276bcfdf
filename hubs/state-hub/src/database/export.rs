//! `state-hub export`: one consistent snapshot of the plans, decisions and journal as a
//! [`Document`], readable while the hub serves (one repeatable-read, read-only transaction).

use super::document::{
    ChainHeadRecord, DecisionRecord, Document, EventRecord, OutcomeRecord, Source, TaskLinkRecord,
    TaskRecord, WorkplanRecord, WorkstreamRecord, FORMAT, FORMAT_VERSION, SYSTEM,
};
use super::{current_database, require_current_schema, DatabaseError};
use crate::journal::store::{event_from_row, EVENT_COLUMNS};
use chrono::Utc;
use hub_core::api::decisions::{DecisionStatus, DecisionType};
use hub_core::api::plans::{TaskStatus, WorkplanStatus};
use hub_core::config::DatabaseConfig;
use hub_core::db;
use hub_core::journal::{BrokenLink, Verifier};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// Events read per query.
const PAGE: i64 = 1000;

/// A snapshot and what reading it found.
pub struct Export {
    /// The document.
    pub document: Document,
    /// The source journal's first broken link, if it has one (it is exported as it is).
    pub broken: Option<BrokenLink>,
}

/// Reads everything the document carries from the database `cfg` names.
pub async fn export(cfg: &DatabaseConfig) -> Result<Export, DatabaseError> {
    let mut client = db::connect_tool(cfg, "state-hub-export").await?;
    require_current_schema(&client).await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let database = current_database(&tx).await?;
    let workstreams = workstreams(&tx).await?;
    let workplans = workplans(&tx).await?;
    let tasks = tasks(&tx).await?;
    let decisions = decisions(&tx).await?;
    let (events, broken) = events(&tx).await?;
    tx.commit().await?;
    let chain_head = events.last().and_then(|e| {
        Some(ChainHeadRecord {
            seq: e.seq?,
            hash: e.hash.clone()?,
        })
    });
    Ok(Export {
        document: Document {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            exported_at: hub_core::journal::db_precision(Utc::now()),
            source: Some(Source {
                system: SYSTEM.to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                database: Some(database),
                chain_head,
            }),
            workstreams,
            workplans,
            tasks,
            decisions,
            events,
        },
        broken,
    })
}

/// Writes the document as pretty JSON: to stdout for `-`, else to `path` through a temporary
/// file renamed into place, readable by the owner only (the journal names people and changes).
pub fn write(doc: &Document, path: &Path) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    text.push(b'\n');
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(&text)?;
        return out.flush();
    }
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the output path names no file"))?;
    let mut partial = name.to_owned();
    partial.push(".partial");
    let tmp = path.with_file_name(partial);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp)?;
    file.write_all(&text)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

fn corrupt(what: &str) -> DatabaseError {
    DatabaseError::Unexpected(what.to_owned())
}

async fn workstreams(c: &impl GenericClient) -> Result<Vec<WorkstreamRecord>, DatabaseError> {
    let rows = c
        .query(
            "SELECT id, slug, title, description, created_by, created_at, version \
             FROM workstreams ORDER BY created_at, id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkstreamRecord {
                id: r.try_get(0)?,
                slug: r.try_get(1)?,
                title: r.try_get(2)?,
                description: r.try_get(3)?,
                created_by: r.try_get(4)?,
                created_at: r.try_get(5)?,
                version: r.try_get(6)?,
            })
        })
        .collect()
}

async fn workplans(c: &impl GenericClient) -> Result<Vec<WorkplanRecord>, DatabaseError> {
    let rows = c
        .query(
            "SELECT id, workstream_id, title, description, status, created_by, created_at, \
             finished_by, finished_at, accepted_by, accepted_at, review_comment, version \
             FROM workplans ORDER BY created_at, id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get(4)?;
            Ok(WorkplanRecord {
                id: r.try_get(0)?,
                workstream_id: r.try_get(1)?,
                title: r.try_get(2)?,
                description: r.try_get(3)?,
                status: WorkplanStatus::parse(&status)
                    .ok_or_else(|| corrupt("workplans.status"))?,
                created_by: r.try_get(5)?,
                created_at: r.try_get(6)?,
                finished_by: r.try_get(7)?,
                finished_at: r.try_get(8)?,
                accepted_by: r.try_get(9)?,
                accepted_at: r.try_get(10)?,
                review_comment: r.try_get(11)?,
                version: r.try_get(12)?,
            })
        })
        .collect()
}

async fn tasks(c: &impl GenericClient) -> Result<Vec<TaskRecord>, DatabaseError> {
    let rows = c
        .query(
            "SELECT id, workplan_id, title, description, status, needs_human, blocking_reason, \
             assignee, created_by, created_at, updated_at, version FROM tasks ORDER BY created_at, id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get(4)?;
            Ok(TaskRecord {
                id: r.try_get(0)?,
                workplan_id: r.try_get(1)?,
                title: r.try_get(2)?,
                description: r.try_get(3)?,
                status: TaskStatus::parse(&status).ok_or_else(|| corrupt("tasks.status"))?,
                needs_human: r.try_get(5)?,
                blocking_reason: r.try_get(6)?,
                assignee: r.try_get(7)?,
                created_by: r.try_get(8)?,
                created_at: r.try_get(9)?,
                updated_at: r.try_get(10)?,
                version: r.try_get(11)?,
            })
        })
        .collect()
}

async fn decisions(c: &impl GenericClient) -> Result<Vec<DecisionRecord>, DatabaseError> {
    let mut links: HashMap<Uuid, Vec<TaskLinkRecord>> = HashMap::new();
    for r in c
        .query(
            "SELECT decision_id, task_id, linked_by, linked_at FROM decision_tasks \
             ORDER BY linked_at, task_id",
            &[],
        )
        .await?
    {
        links
            .entry(r.try_get(0)?)
            .or_default()
            .push(TaskLinkRecord {
                task_id: r.try_get(1)?,
                linked_by: r.try_get(2)?,
                linked_at: r.try_get(3)?,
            });
    }
    let rows = c
        .query(
            "SELECT id, title, context, options, decision_type, status, proposed_by, created_at, \
             escalated_by, escalated_at, escalation_reason, outcome_choice, outcome_rationale, \
             decided_by, decided_at, superseded_by, supersedes, version \
             FROM decisions ORDER BY created_at, id",
            &[],
        )
        .await?;
    rows.iter().map(|r| decision(r, &mut links)).collect()
}

fn decision(
    r: &Row,
    links: &mut HashMap<Uuid, Vec<TaskLinkRecord>>,
) -> Result<DecisionRecord, DatabaseError> {
    let id: Uuid = r.try_get(0)?;
    let dtype: String = r.try_get(4)?;
    let status: String = r.try_get(5)?;
    let choice: Option<String> = r.try_get(11)?;
    let outcome = match choice {
        Some(choice) => Some(OutcomeRecord {
            choice,
            rationale: r.try_get::<_, Option<String>>(12)?.unwrap_or_default(),
            decided_by: r
                .try_get::<_, Option<String>>(13)?
                .ok_or_else(|| corrupt("decisions.decided_by"))?,
            decided_at: r
                .try_get::<_, Option<chrono::DateTime<Utc>>>(14)?
                .ok_or_else(|| corrupt("decisions.decided_at"))?,
        }),
        None => None,
    };
    Ok(DecisionRecord {
        id,
        title: r.try_get(1)?,
        context: r.try_get(2)?,
        options: r.try_get(3)?,
        decision_type: match dtype.as_str() {
            "made" => DecisionType::Made,
            "pending" => DecisionType::Pending,
            _ => return Err(corrupt("decisions.decision_type")),
        },
        status: DecisionStatus::parse(&status).ok_or_else(|| corrupt("decisions.status"))?,
        proposed_by: r.try_get(6)?,
        created_at: r.try_get(7)?,
        escalated_by: r.try_get(8)?,
        escalated_at: r.try_get(9)?,
        escalation_reason: r.try_get(10)?,
        outcome,
        superseded_by: r.try_get(15)?,
        supersedes: r.try_get(16)?,
        task_links: links.remove(&id).unwrap_or_default(),
        version: r.try_get(17)?,
    })
}

/// Every event in order, and the first broken link of the source chain (exported regardless:
/// an export is evidence, and an import rebuilds the chain anyway).
async fn events(
    c: &impl GenericClient,
) -> Result<(Vec<EventRecord>, Option<BrokenLink>), DatabaseError> {
    let stmt = c
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .await?;
    let mut out = Vec::new();
    let mut verifier = Verifier::new();
    let mut broken = None;
    let mut after = 0i64;
    loop {
        let rows = c.query(&stmt, &[&after, &PAGE]).await?;
        for row in &rows {
            let e = event_from_row(row)?;
            if broken.is_none() {
                broken = verifier.push(&e).err();
            }
            after = e.seq;
            out.push(EventRecord {
                seq: Some(e.seq),
                id: e.id,
                created_at: e.created_at,
                event_type: e.event_type,
                summary: e.summary,
                author: e.author,
                workstream_id: e.workstream_id,
                workplan_id: e.workplan_id,
                task_id: e.task_id,
                decision_id: e.decision_id,
                detail: e.detail,
                prev_hash: Some(e.prev_hash),
                hash: Some(e.hash),
            });
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok((out, broken))
}
