//! PostgreSQL: the request pool, the small health pool, and migrations under an advisory lock.

use crate::config::DatabaseConfig;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;

/// Errors of the database layer, with the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("cannot build connection pool: {0}")]
    Pool(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// The two pools every hub holds.
#[derive(Clone)]
pub struct Pools {
    /// Requests and background work.
    pub requests: Pool,
    /// `/readyz` only.
    pub health: Pool,
}

impl Pools {
    /// Closes both pools; idle connections are dropped and new checkouts fail.
    pub fn close(&self) {
        self.requests.close();
        self.health.close();
    }
}

/// Builds the tokio-postgres config from the hub's settings, with the password read from its file.
pub fn pg_config(cfg: &DatabaseConfig, app_name: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut pg = tokio_postgres::Config::from_str(&cfg.url)
        .map_err(|e| DbError::Config(format!("database.url: {e}")))?;
    if let Some(pw) = cfg.password().map_err(|e| DbError::Config(e.to_string()))? {
        pg.password(pw.expose_secret());
    }
    pg.application_name(app_name);
    pg.connect_timeout(Duration::from_secs(cfg.connect_timeout_seconds));
    pg.options(format!(
        "-c statement_timeout={} -c idle_in_transaction_session_timeout=60000",
        cfg.statement_timeout_ms
    ));
    Ok(pg)
}

fn build_pool(pg: tokio_postgres::Config, size: usize, wait: Duration) -> Result<Pool, DbError> {
    let mgr = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .recycle_timeout(Some(wait))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Creates both pools. Connections are opened lazily, so this does not wait for the database.
pub fn pools(cfg: &DatabaseConfig, app_name: &str) -> Result<Pools, DbError> {
    let pg = pg_config(cfg, app_name)?;
    let wait = Duration::from_secs(cfg.connect_timeout_seconds);
    let mut health_pg = pg.clone();
    health_pg.application_name(format!("{app_name}-health"));
    Ok(Pools {
        requests: build_pool(pg, cfg.pool_size, wait)?,
        health: build_pool(health_pg, cfg.health_pool_size, Duration::from_secs(2))?,
    })
}

/// Opens one dedicated connection (not pooled), e.g. for LISTEN or migrations.
pub async fn connect_dedicated(
    pg: &tokio_postgres::Config,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    DbError,
> {
    pg.connect(NoTls).await.map_err(DbError::Connect)
}

/// One dedicated connection for a command-line tool, driven by a background task until the
/// client is dropped.
pub async fn connect_tool(
    cfg: &DatabaseConfig,
    application: &str,
) -> Result<tokio_postgres::Client, DbError> {
    let pg = pg_config(cfg, application)?;
    let (client, conn) = connect_dedicated(&pg).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "database connection closed with an error");
        }
    });
    Ok(client)
}

/// One folder of migrations and the history table that records it. hub-core's own tables
/// (identity, sessions) are one set; each hub adds its own.
pub struct MigrationSet {
    /// History table name, e.g. `refinery_schema_history`.
    pub table: &'static str,
    /// The embedded migrations.
    pub runner: refinery::Runner,
}

impl MigrationSet {
    /// The newest version this set carries.
    pub fn latest_version(&self) -> i64 {
        latest_version(&self.runner)
    }
}

/// hub-core's own migrations (`migrations/hub-core/`), recorded in `hub_core_schema_history`.
pub fn core_migrations() -> MigrationSet {
    mod embedded {
        refinery::embed_migrations!("../migrations/hub-core");
    }
    MigrationSet {
        table: "hub_core_schema_history",
        runner: embedded::migrations::runner(),
    }
}

/// Applies each set's migrations, in order, while holding the advisory lock `lock_key`, so hubs
/// starting at the same moment apply them once. The lock lives on a dedicated session: if this
/// process dies mid-way, PostgreSQL releases it with the connection.
pub async fn migrate(
    pg: &tokio_postgres::Config,
    sets: Vec<MigrationSet>,
    lock_key: i64,
) -> Result<Vec<String>, DbError> {
    let (mut client, conn) = connect_dedicated(pg).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "migration connection closed with an error");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock_key])
        .await?;
    // The hubs' statement timeout (15 s by default) is meant for requests: an index built by a
    // migration on a large journal takes longer (18-40 s at 10M events, docs/journal-growth.md).
    client.batch_execute("SET statement_timeout = 0").await?;
    let mut applied = Vec::new();
    let mut failure = None;
    for set in sets {
        let report = set
            .runner
            .set_abort_divergent(true)
            .set_migration_table_name(set.table)
            .run_async(&mut client)
            .await;
        match report {
            Ok(r) => applied.extend(r.applied_migrations().iter().map(|m| m.to_string())),
            Err(e) => {
                failure = Some(DbError::Migrate(format!("{}: {e}", set.table)));
                break;
            }
        }
    }
    // Unlock explicitly; dropping the connection would release it too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock_key])
        .await;
    drop(client);
    let _ = driver.await;
    match failure {
        Some(e) => Err(e),
        None => Ok(applied),
    }
}

/// The newest migration version a runner carries.
pub fn latest_version(runner: &refinery::Runner) -> i64 {
    runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version a binary expects in one history table.
#[derive(Debug, Clone)]
pub struct ExpectedSchema {
    /// History table.
    pub table: &'static str,
    /// Newest version.
    pub version: i64,
}

impl From<&MigrationSet> for ExpectedSchema {
    fn from(set: &MigrationSet) -> Self {
        ExpectedSchema {
            table: set.table,
            version: set.latest_version(),
        }
    }
}

/// One history table as a database has it, next to what the binary expects.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchemaState {
    /// History table.
    pub table: &'static str,
    /// Newest applied version; `None` when the table does not exist (never migrated).
    pub applied: Option<i64>,
    /// Newest version the binary carries.
    pub expected: i64,
}

impl SchemaState {
    /// The applied schema is the one the binary expects.
    pub fn is_current(&self) -> bool {
        self.applied == Some(self.expected)
    }
}

impl std::fmt::Display for SchemaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.applied {
            None => write!(
                f,
                "{}: missing (expected version {})",
                self.table, self.expected
            ),
            Some(v) => write!(
                f,
                "{}: version {v} (expected {})",
                self.table, self.expected
            ),
        }
    }
}

/// Reads every expected history table's newest version, for offline checks such as the one
/// after a restore (a missing table is reported, not an error).
pub async fn schema_state(
    client: &impl tokio_postgres::GenericClient,
    expected: &[ExpectedSchema],
) -> Result<Vec<SchemaState>, DbError> {
    let mut out = Vec::with_capacity(expected.len());
    for want in expected {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&want.table])
            .await?
            .try_get(0)?;
        let applied = if exists {
            // The table name comes from the binary, never from input.
            let sql = format!(
                "SELECT COALESCE(MAX(version), 0)::bigint FROM {}",
                want.table
            );
            Some(client.query_one(&sql, &[]).await?.try_get(0)?)
        } else {
            None
        };
        out.push(SchemaState {
            table: want.table,
            applied,
            expected: want.version,
        });
    }
    Ok(out)
}

/// What `/readyz` found.
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    /// Database answered.
    pub database: bool,
    /// The applied schema is the one this binary expects.
    pub migrations: bool,
    /// Human-readable reason when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Checks the database through the health pool and that every schema is at its expected version.
pub async fn readiness(health: &Pool, expected: &[ExpectedSchema]) -> Readiness {
    let client = match tokio::time::timeout(Duration::from_secs(2), health.get()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return not_ready(false, format!("database unavailable: {e}")),
        Err(_) => return not_ready(false, "database connection timed out".to_owned()),
    };
    for want in expected {
        // The table name comes from the binary, never from input.
        let sql = format!(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM {}",
            want.table
        );
        match tokio::time::timeout(Duration::from_secs(2), client.query_one(&sql, &[])).await {
            Ok(Ok(row)) => {
                let applied: i64 = row.get(0);
                if applied != want.version {
                    return not_ready(
                        true,
                        format!(
                            "{}: schema version {applied}, this binary expects {}",
                            want.table, want.version
                        ),
                    );
                }
            }
            Ok(Err(e)) => {
                return not_ready(true, format!("cannot read {}: {e}", want.table));
            }
            Err(_) => return not_ready(false, "database query timed out".to_owned()),
        }
    }
    Readiness {
        database: true,
        migrations: true,
        problem: None,
    }
}

fn not_ready(database: bool, problem: String) -> Readiness {
    Readiness {
        database,
        migrations: false,
        problem: Some(problem),
    }
}
