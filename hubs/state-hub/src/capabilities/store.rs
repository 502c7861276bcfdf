//! SQL of the `capabilities` and `capability_probes` tables. The sealed credential is read only
//! by the functions that hand it to the keyring; listings never select it.

use super::rules::{self, ValidRequest};
use chrono::{DateTime, Utc};
use hub_core::api::capabilities::{Capability, CapabilityStatus, Probe, ProbeHealth};
use hub_core::http::problem::ApiError;
use hub_core::sealed::Sealed;
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

const COLUMNS: &str = "id, name, owning_service, base_url, health_path, contract_path, contract_sha256, \
version, status, requested_by, created_at, credential_key_id, health, last_probe_at, last_error, revision";

/// Most probes kept per capability; older ones are pruned as new ones arrive.
pub const PROBES_KEPT: i64 = 500;

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("corrupt capabilities row: {what}"))
}

fn from_row(r: &Row) -> Result<Capability, ApiError> {
    let status: String = r.try_get("status")?;
    let health: String = r.try_get("health")?;
    Ok(Capability {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        owning_service: r.try_get("owning_service")?,
        base_url: r.try_get("base_url")?,
        health_path: r.try_get("health_path")?,
        contract_path: r.try_get("contract_path")?,
        contract_sha256: r.try_get("contract_sha256")?,
        version: r.try_get("version")?,
        status: rules::parse_status(&status).ok_or_else(|| corrupt("status"))?,
        requested_by: r.try_get("requested_by")?,
        created_at: r.try_get("created_at")?,
        credential_key_id: r.try_get("credential_key_id")?,
        health: rules::parse_health(&health).ok_or_else(|| corrupt("health"))?,
        last_probe_at: r.try_get("last_probe_at")?,
        last_error: r.try_get("last_error")?,
        revision: r.try_get("revision")?,
    })
}

fn sealed_from(r: &Row) -> Result<Option<Sealed>, ApiError> {
    let text: Option<String> = r.try_get("credential_sealed")?;
    text.map(|t| {
        Sealed::parse(t.as_bytes())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("stored credential: {e}")))
    })
    .transpose()
}

/// Inserts a requested registration; a taken name is a conflict.
pub async fn insert(
    client: &impl GenericClient,
    v: &ValidRequest,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Capability, ApiError> {
    let id = Uuid::now_v7();
    let inserted = client
        .execute(
            "INSERT INTO capabilities (id, name, owning_service, base_url, health_path, contract_path, \
             contract, contract_sha256, version, status, requested_by, created_at, status_changed_by, status_changed_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'requested',$10,$11,$10,$11)",
            &[&id, &v.name, &v.owning_service, &v.base_url, &v.health_path, &v.contract_path,
              &v.contract, &v.contract_sha256, &v.version, &by, &now],
        )
        .await;
    match inserted {
        Ok(_) => require(client, &v.name, false).await,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(ApiError::Conflict(
            format!("a capability named {} is already registered", v.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// One registration by name; `for_update` locks its row for a change.
pub async fn get(
    client: &impl GenericClient,
    name: &str,
    for_update: bool,
) -> Result<Option<Capability>, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM capabilities WHERE name = $1{lock}"),
            &[&name],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// One registration or 404.
pub async fn require(
    client: &impl GenericClient,
    name: &str,
    for_update: bool,
) -> Result<Capability, ApiError> {
    get(client, name, for_update)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no capability named {name}")))
}

/// Registrations ordered by name, after `after`; returns the page and the next cursor.
pub async fn page(
    client: &impl GenericClient,
    status: Option<CapabilityStatus>,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<Capability>, Option<String>), ApiError> {
    let status = status.map(rules::status_str);
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM capabilities WHERE ($1::text IS NULL OR status = $1) \
                 AND ($2::text IS NULL OR name > $2) ORDER BY name LIMIT $3"
            ),
            &[&status, &after, &(limit + 1)],
        )
        .await?;
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|c| c.name.clone())
    } else {
        None
    };
    Ok((items, next))
}

/// The stored contract text of a registration.
pub async fn contract(client: &impl GenericClient, name: &str) -> Result<String, ApiError> {
    client
        .query_opt(
            "SELECT contract FROM capabilities WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or_else(|| ApiError::NotFound(format!("no capability named {name}")))
}

/// Moves a registration to `to`, recording who did it (and who completed it).
pub async fn set_status(
    client: &impl GenericClient,
    id: Uuid,
    to: CapabilityStatus,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let completed_by = (to == CapabilityStatus::Completed).then_some(by);
    client
        .execute(
            "UPDATE capabilities SET status = $2, status_changed_by = $3, status_changed_at = $4, \
             completed_by = COALESCE($5, completed_by), next_probe_at = $4, revision = revision + 1 WHERE id = $1",
            &[&id, &rules::status_str(to), &by, &now, &completed_by],
        )
        .await?;
    Ok(())
}

/// Stores a sealed credential (replacing any earlier one).
pub async fn set_credential(
    client: &impl GenericClient,
    id: Uuid,
    sealed: &Sealed,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE capabilities SET credential_key_id = $2, credential_sealed = $3, credential_set_by = $4, \
             credential_set_at = $5, revision = revision + 1 WHERE id = $1",
            &[&id, &sealed.key_id.as_str(), &sealed.to_stored_text(), &by, &now],
        )
        .await?;
    Ok(())
}

/// A completed registration with its sealed credential.
pub struct CallableRow {
    /// The registration.
    pub capability: Capability,
    /// Its sealed credential.
    pub sealed: Option<Sealed>,
}

/// Completed registrations, all or those named, with their sealed credentials, by name.
pub async fn completed(
    client: &impl GenericClient,
    names: Option<&[String]>,
) -> Result<Vec<CallableRow>, ApiError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, credential_sealed FROM capabilities WHERE status = 'completed' \
                 AND ($1::text[] IS NULL OR name = ANY($1)) ORDER BY name"
            ),
            &[&names],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CallableRow {
                capability: from_row(r)?,
                sealed: sealed_from(r)?,
            })
        })
        .collect()
}

/// Every stored credential, rows locked: what a key rotation re-seals.
pub async fn sealed_credentials(
    client: &impl GenericClient,
) -> Result<Vec<(Uuid, String, Sealed)>, ApiError> {
    let rows = client
        .query(
            "SELECT id, name, credential_sealed FROM capabilities WHERE credential_sealed IS NOT NULL \
             ORDER BY name FOR UPDATE",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let sealed = sealed_from(r)?.ok_or_else(|| corrupt("credential_sealed"))?;
            Ok((r.try_get(0)?, r.try_get(1)?, sealed))
        })
        .collect()
}

/// Replaces a stored credential by its re-sealed form (same secret, current key); the
/// registration's revision is unchanged, as nothing anyone sees changed.
pub async fn reseal(
    client: &impl GenericClient,
    id: Uuid,
    sealed: &Sealed,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE capabilities SET credential_key_id = $2, credential_sealed = $3 WHERE id = $1",
            &[&id, &sealed.key_id.as_str(), &sealed.to_stored_text()],
        )
        .await?;
    Ok(())
}

/// How many credentials are stored (start-up refuses to run without a keyring when any is).
pub async fn stored_credentials(client: &impl GenericClient) -> Result<i64, ApiError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM capabilities WHERE credential_sealed IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?)
}

/// Claims up to `limit` completed registrations due within `slack_seconds`, moving their next
/// probe `interval_seconds` ahead. Rows another replica is claiming are skipped, and a row
/// claimed a moment ago is no longer due, so each one is probed by one replica per round.
pub async fn claim_due(
    client: &impl GenericClient,
    interval_seconds: f64,
    slack_seconds: f64,
    limit: i64,
) -> Result<Vec<Uuid>, ApiError> {
    let rows = client
        .query(
            "UPDATE capabilities c SET next_probe_at = now() + make_interval(secs => $1) \
             FROM (SELECT id FROM capabilities WHERE status = 'completed' \
                   AND next_probe_at <= now() + make_interval(secs => $2) \
                   ORDER BY next_probe_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
             WHERE c.id = due.id RETURNING c.id",
            &[&interval_seconds, &slack_seconds, &limit],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The health a registration had before this probe, its row locked for the update.
pub async fn lock_health(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<(String, ProbeHealth, CapabilityStatus)>, ApiError> {
    let row = client
        .query_opt(
            "SELECT name, health, status FROM capabilities WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    row.map(|r| {
        let health: String = r.try_get(1)?;
        let status: String = r.try_get(2)?;
        Ok((
            r.try_get(0)?,
            rules::parse_health(&health).ok_or_else(|| corrupt("health"))?,
            rules::parse_status(&status).ok_or_else(|| corrupt("status"))?,
        ))
    })
    .transpose()
}

/// Stores a probe, prunes the history to [`PROBES_KEPT`] and updates the registration's health.
pub async fn record_probe(
    client: &impl GenericClient,
    id: Uuid,
    p: &Probe,
) -> Result<(), ApiError> {
    let status = p.status.map(i32::from);
    client
        .execute(
            "INSERT INTO capability_probes (capability_id, at, health, status, latency_ms, contract_sha256, error) \
             VALUES ($1,$2,$3,$4,$5,$6,$7)",
            &[&id, &p.at, &rules::health_str(p.health), &status, &p.latency_ms, &p.contract_sha256, &p.error],
        )
        .await?;
    client
        .execute(
            "DELETE FROM capability_probes WHERE capability_id = $1 AND id <= \
             (SELECT id FROM capability_probes WHERE capability_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
            &[&id, &PROBES_KEPT],
        )
        .await?;
    client
        .execute(
            "UPDATE capabilities SET health = $2, last_probe_at = $3, last_error = $4 WHERE id = $1",
            &[&id, &rules::health_str(p.health), &p.at, &p.error],
        )
        .await?;
    Ok(())
}

/// The newest probes of a registration, newest first.
pub async fn probes(
    client: &impl GenericClient,
    id: Uuid,
    limit: i64,
) -> Result<Vec<Probe>, ApiError> {
    let rows = client
        .query(
            "SELECT at, health, status, latency_ms, contract_sha256, error FROM capability_probes \
             WHERE capability_id = $1 ORDER BY id DESC LIMIT $2",
            &[&id, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let health: String = r.try_get(1)?;
            let status: Option<i32> = r.try_get(2)?;
            Ok(Probe {
                at: r.try_get(0)?,
                health: rules::parse_health(&health).ok_or_else(|| corrupt("probe health"))?,
                status: status.and_then(|s| u16::try_from(s).ok()),
                latency_ms: r.try_get(3)?,
                contract_sha256: r.try_get(4)?,
                error: r.try_get(5)?,
            })
        })
        .collect()
}
