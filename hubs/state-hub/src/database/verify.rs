//! `state-hub verify`: is this database one the hub can serve, with an intact journal? Run after a
//! restore (scripts/restore.sh does) and before pointing the hub at the restored database.

use super::chain::{self, ChainState};
use super::document::Counts;
use super::{current_database, DatabaseError};
use hub_core::config::DatabaseConfig;
use hub_core::db::{self, SchemaState};
use tokio_postgres::GenericClient;

/// What a database holds and whether it is sound.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Every check passed.
    pub ok: bool,
    /// The database checked.
    pub database: String,
    /// Each schema history table against this binary.
    pub schema: Vec<SchemaState>,
    /// The hash chain: verified, or where it breaks.
    pub journal: Journal,
    /// Records held (absent when the schema is missing).
    pub counts: Option<Counts>,
}

/// The journal part of a [`Report`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Journal {
    /// The whole chain verified.
    pub verified: bool,
    /// The verified chain, when it verified.
    pub chain: Option<ChainState>,
    /// The first broken link, or why the journal could not be read.
    pub problem: Option<String>,
}

/// Checks the database `cfg` names. Failing checks are in the report; errors are reserved for
/// not reaching the database at all.
pub async fn verify(cfg: &DatabaseConfig) -> Result<Report, DatabaseError> {
    let client = db::connect_tool(cfg, "state-hub-verify").await?;
    let database = current_database(&client).await?;
    let expected: Vec<db::ExpectedSchema> =
        crate::migrations::sets().iter().map(Into::into).collect();
    let schema = db::schema_state(&client, &expected).await?;
    let readable = schema.iter().all(|s| s.applied.is_some());
    let journal = if readable {
        match chain::verify(&client).await? {
            Ok(chain) => Journal {
                verified: true,
                chain: Some(chain),
                problem: None,
            },
            Err(broken) => Journal {
                verified: false,
                chain: None,
                problem: Some(format!("broken link at {broken}")),
            },
        }
    } else {
        Journal {
            verified: false,
            chain: None,
            problem: Some("no state hub schema in this database".to_owned()),
        }
    };
    let counts = if readable {
        Some(counts(&client).await?)
    } else {
        None
    };
    Ok(Report {
        ok: journal.verified && schema.iter().all(SchemaState::is_current),
        database,
        schema,
        journal,
        counts,
    })
}

/// The records a database holds.
pub async fn counts(client: &impl GenericClient) -> Result<Counts, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM workstreams), (SELECT count(*) FROM workplans), \
             (SELECT count(*) FROM tasks), (SELECT count(*) FROM decisions), \
             (SELECT count(*) FROM decision_tasks), (SELECT count(*) FROM events)",
            &[],
        )
        .await?;
    let n = |i: usize| -> Result<u64, tokio_postgres::Error> {
        Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
    };
    Ok(Counts {
        workstreams: n(0)?,
        workplans: n(1)?,
        tasks: n(2)?,
        decisions: n(3)?,
        task_links: n(4)?,
        events: n(5)?,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "database {}", self.database)?;
        for s in &self.schema {
            let verdict = if s.is_current() { "ok" } else { "NOT CURRENT" };
            writeln!(f, "schema   {s}: {verdict}")?;
        }
        match (&self.journal.chain, &self.journal.problem) {
            (Some(c), _) if c.events == 0 => writeln!(f, "journal  verified: it is empty")?,
            (Some(c), _) => writeln!(
                f,
                "journal  verified: {} events, head {} {}",
                c.events, c.head_seq, c.head_hash
            )?,
            (None, Some(p)) => writeln!(f, "journal  DOES NOT VERIFY: {p}")?,
            (None, None) => writeln!(f, "journal  not checked")?,
        }
        if let Some(c) = &self.counts {
            writeln!(f, "records  {c}")?;
        }
        write!(f, "{}", if self.ok { "ok" } else { "FAILED" })
    }
}
