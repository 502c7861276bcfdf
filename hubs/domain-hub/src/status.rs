//! How the hub is doing: the heartbeat it sends the state hub, and `GET /api/v1/status` for
//! operators (outbox backlog, capabilities and their breakers, the link to the state hub).

use crate::outbox::store::{self as outbox_store, Backlog};
use crate::polling::store::{self as poll_store, PollState};
use crate::state::AppState;
use crate::state_hub::registrar::LinkStatus;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{Heartbeat, HubHealth};
use hub_core::capability::BreakerState;
use hub_core::http::problem::ApiError;
use serde::Serialize;

/// The heartbeat: `warning` while a capability is unreachable or the state hub refused outbox
/// events, `critical` when the hub cannot reach its own database, else `passing`.
pub async fn heartbeat(pool: &Pool, manifest: &Manifest) -> Heartbeat {
    let looked = async {
        let client = pool.get().await?;
        let states = poll_store::all(&**client).await?;
        let backlog = outbox_store::backlog(&**client).await?;
        Ok::<_, ApiError>((states, backlog))
    }
    .await;
    let (states, backlog) = match looked {
        Ok(found) => found,
        Err(_) => {
            return Heartbeat {
                status: HubHealth::Critical,
                detail: Some("the hub cannot reach its database".to_owned()),
            }
        }
    };
    let mut problems = unreachable_lines(manifest, &states);
    if backlog.rejected > 0 {
        problems.push(format!(
            "{} outbox event(s) refused by the state hub",
            backlog.rejected
        ));
    }
    if problems.is_empty() {
        Heartbeat {
            status: HubHealth::Passing,
            detail: None,
        }
    } else {
        Heartbeat {
            status: HubHealth::Warning,
            detail: Some(problems.join("; ").chars().take(500).collect()),
        }
    }
}

/// One line per capability of the manifest that is unreachable now.
fn unreachable_lines(manifest: &Manifest, states: &[PollState]) -> Vec<String> {
    manifest
        .capabilities
        .iter()
        .filter_map(|c| {
            let since = states
                .iter()
                .filter(|s| s.capability == c.name)
                .filter_map(|s| s.unreachable_since)
                .min()?;
            Some(format!(
                "{} unreachable since {}",
                c.name,
                since.format("%H:%M:%S UTC")
            ))
        })
        .collect()
}

/// A capability's circuit breaker, as `/api/v1/status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// While open: when the next trial call goes through.
    pub until: Option<DateTime<Utc>>,
}

/// A capability of the manifest and how polling it goes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CapabilityView {
    /// Its name.
    pub name: String,
    /// Whether the state hub lists it as callable for this hub.
    pub callable: bool,
    /// Its circuit breaker.
    pub breaker: BreakerView,
    /// Each polled path.
    pub paths: Vec<PollState>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusReport {
    /// Instance name.
    pub hub: String,
    /// Its kind.
    pub kind: String,
    /// The local manifest's version.
    pub manifest_version: String,
    /// What the state hub last said.
    pub state_hub: LinkStatus,
    /// Events not yet in the journal.
    pub outbox: Backlog,
    /// The manifest's capabilities.
    pub capabilities: Vec<CapabilityView>,
}

/// `GET /api/v1/status`: the link to the state hub, the outbox backlog, the capabilities.
#[utoipa::path(
    get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = StatusReport)),
    security(("bearer" = []))
)]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let states = poll_store::all(&**client).await?;
    let backlog = outbox_store::backlog(&**client).await?;
    drop(client);
    let capabilities = state
        .manifest
        .capabilities
        .iter()
        .map(|c| {
            let breaker = match state.cluster.client.breaker_state(&c.name) {
                BreakerState::Closed => BreakerView {
                    state: "closed",
                    until: None,
                },
                BreakerState::HalfOpen => BreakerView {
                    state: "half_open",
                    until: None,
                },
                BreakerState::Open { until } => BreakerView {
                    state: "open",
                    until: Some(until),
                },
            };
            CapabilityView {
                name: c.name.clone(),
                callable: state.cluster.is_callable(&c.name),
                breaker,
                paths: states
                    .iter()
                    .filter(|s| s.capability == c.name)
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(StatusReport {
        hub: state.manifest.hub.clone(),
        kind: state.manifest.kind.clone(),
        manifest_version: state.manifest.version.clone(),
        state_hub: state.link.snapshot(),
        outbox: backlog,
        capabilities,
    }))
}
