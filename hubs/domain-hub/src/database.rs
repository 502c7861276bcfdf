//! `domain-hub verify`: is this database one the hub can serve, and what does its outbox still
//! owe the state hub? Run after a restore (scripts/restore.sh does) and before the hub starts on
//! the restored database: pending rows are events the state hub has not seen yet and will get
//! once the hub runs again.

use crate::migrations;
use chrono::{DateTime, Utc};
use hub_core::config::DatabaseConfig;
use hub_core::db::{self, DbError, SchemaState};
use tokio_postgres::GenericClient;

/// What a domain hub database holds and whether it is sound.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Every check passed.
    pub ok: bool,
    /// The database checked.
    pub database: String,
    /// Each schema history table against this binary.
    pub schema: Vec<SchemaState>,
    /// The outbox (absent when the schema is missing).
    pub outbox: Option<Outbox>,
    /// Annotations kept.
    pub annotations: Option<i64>,
    /// Observations kept.
    pub observations: Option<i64>,
    /// What failed, one line each.
    pub problems: Vec<String>,
}

/// The outbox's rows by state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outbox {
    /// Every row.
    pub total: i64,
    /// Relayed to the state hub.
    pub delivered: i64,
    /// Waiting to be relayed.
    pub pending: i64,
    /// Refused by the state hub for good.
    pub rejected: i64,
    /// When the oldest pending row was written.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// The delivery-order sequence is past every row, so new rows sort after the restored ones.
    pub sequence_ok: bool,
}

/// Checks the database `cfg` names; failing checks are in the report, errors are for not
/// reaching the database.
pub async fn verify(cfg: &DatabaseConfig) -> Result<Report, DbError> {
    let client = db::connect_tool(cfg, "domain-hub-verify").await?;
    let database: String = client
        .query_one("SELECT current_database()", &[])
        .await?
        .try_get(0)?;
    let expected: Vec<db::ExpectedSchema> = migrations::sets().iter().map(Into::into).collect();
    let schema = db::schema_state(&client, &expected).await?;
    let mut problems: Vec<String> = schema
        .iter()
        .filter(|s| !s.is_current())
        .map(ToString::to_string)
        .collect();
    let readable = schema.iter().all(|s| s.applied.is_some());
    let (outbox, annotations, observations) = if readable {
        let outbox = outbox(&client).await?;
        if !outbox.sequence_ok {
            problems.push(
                "outbox: the sequence is behind its rows; new events would sort before restored ones"
                    .to_owned(),
            );
        }
        let n = client
            .query_one(
                "SELECT (SELECT count(*) FROM annotations), (SELECT count(*) FROM observations)",
                &[],
            )
            .await?;
        (Some(outbox), Some(n.try_get(0)?), Some(n.try_get(1)?))
    } else {
        (None, None, None)
    };
    Ok(Report {
        ok: problems.is_empty(),
        database,
        schema,
        outbox,
        annotations,
        observations,
        problems,
    })
}

async fn outbox(c: &impl GenericClient) -> Result<Outbox, DbError> {
    let row = c
        .query_one(
            "SELECT count(*),
                    count(*) FILTER (WHERE delivered_at IS NOT NULL),
                    count(*) FILTER (WHERE delivered_at IS NULL AND rejected_at IS NULL),
                    count(*) FILTER (WHERE rejected_at IS NOT NULL),
                    min(created_at) FILTER (WHERE delivered_at IS NULL AND rejected_at IS NULL),
                    COALESCE(max(seq), 0)
               FROM outbox",
            &[],
        )
        .await?;
    let max_seq: i64 = row.try_get(5)?;
    let seq = c
        .query_one("SELECT last_value, is_called FROM outbox_seq_seq", &[])
        .await?;
    let (last, called): (i64, bool) = (seq.try_get(0)?, seq.try_get(1)?);
    // An uncalled sequence hands out `last_value` itself next.
    let next = if called { last + 1 } else { last };
    Ok(Outbox {
        total: row.try_get(0)?,
        delivered: row.try_get(1)?,
        pending: row.try_get(2)?,
        rejected: row.try_get(3)?,
        oldest_pending_at: row.try_get(4)?,
        sequence_ok: next > max_seq,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "database {}", self.database)?;
        for s in &self.schema {
            let verdict = if s.is_current() { "ok" } else { "NOT CURRENT" };
            writeln!(f, "schema   {s}: {verdict}")?;
        }
        if let Some(o) = &self.outbox {
            writeln!(
                f,
                "outbox   {} rows: {} delivered, {} pending, {} rejected{}",
                o.total,
                o.delivered,
                o.pending,
                o.rejected,
                o.oldest_pending_at
                    .map(|t| format!(" (oldest pending {})", t.to_rfc3339()))
                    .unwrap_or_default()
            )?;
        }
        if let (Some(a), Some(o)) = (self.annotations, self.observations) {
            writeln!(f, "records  {a} annotation(s), {o} observation(s)")?;
        }
        for p in &self.problems {
            writeln!(f, "problem  {p}")?;
        }
        write!(f, "{}", if self.ok { "ok" } else { "FAILED" })
    }
}
