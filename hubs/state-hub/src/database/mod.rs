//! The state hub's database offline, without serving: `export` writes a portable JSON document
//! ([`document`]), `import` loads one into an empty database and seals its events into a new hash
//! chain ([`import`]), and `verify` checks a database, e.g. right after a restore: schema version,
//! hash chain, record counts ([`verify`]).

pub mod chain;
pub mod cli;
pub mod document;
pub mod export;
pub mod import;
pub mod validate;
pub mod verify;

use hub_core::config::DatabaseConfig;
use hub_core::db::{self, DbError};
use validate::Problem;

/// Why an offline database operation stopped.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// Connecting or migrating failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A statement failed.
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The export is not one this state hub can import.
    #[error("the export has {} problem(s); nothing was imported:\n{}", .0.len(), lines(.0))]
    Invalid(Vec<Problem>),
    /// The target already holds data.
    #[error(
        "the target database already holds {0}; import only into a new, empty state hub database \
         (create one, then run `state-hub import` before the hub starts on it)"
    )]
    NotEmpty(String),
    /// The schema is not the one this binary reads.
    #[error("the database schema is not the one this state hub expects: {0}")]
    Schema(String),
    /// A value the schema allows but this binary does not know (a newer release wrote it).
    #[error("unexpected value in {0}")]
    Unexpected(String),
    /// The chain built by an import does not verify (a bug, or a database that changes values).
    #[error("the imported journal does not verify: {0}; nothing was imported")]
    Rebuilt(String),
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `[database]` settings for `--database-url`, its problems named after the option.
pub fn database_from_url(url: &str) -> Result<DatabaseConfig, String> {
    DatabaseConfig::from_url(url).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.replace("database.url", "--database-url"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The name of the database a client is connected to.
pub async fn current_database(
    client: &impl tokio_postgres::GenericClient,
) -> Result<String, tokio_postgres::Error> {
    client
        .query_one("SELECT current_database()", &[])
        .await?
        .try_get(0)
}

/// Every schema history table at the version this binary expects, or the reason it is not.
pub async fn require_current_schema(
    client: &impl tokio_postgres::GenericClient,
) -> Result<(), DatabaseError> {
    let expected: Vec<db::ExpectedSchema> =
        crate::migrations::sets().iter().map(Into::into).collect();
    let state = db::schema_state(client, &expected).await?;
    let stale: Vec<String> = state
        .iter()
        .filter(|s| !s.is_current())
        .map(ToString::to_string)
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(DatabaseError::Schema(stale.join("; ")))
    }
}
