//! The probe job: every round it claims the completed registrations that are due (each replica
//! its own, through `FOR UPDATE SKIP LOCKED` on `next_probe_at`), calls their health path through
//! the hub-core capability client, fetches their contract and compares its sha256 with the
//! registered one, keeps the probe in the history, and writes an event only when the health
//! changes.

use super::rules::{self, Observation};
use super::store;
use crate::journal::Draft;
use crate::state::AppState;
use futures_util::StreamExt;
use hub_core::api::capabilities::{Capability, Probe, ProbeHealth};
use hub_core::capability::{CapabilityClient, Registration};
use hub_core::http::problem::ApiError;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Most registrations one replica claims per round.
const MAX_PER_ROUND: i64 = 200;
/// Probes run at once.
const CONCURRENCY: usize = 8;
/// Longest error text kept with a probe.
const MAX_ERROR_LEN: usize = 1000;
/// Author of the events probes write.
const AUTHOR: &str = "state-hub";

/// What one round did.
#[derive(Debug, Default)]
pub struct ProbeReport {
    /// Every registration probed, by name.
    pub probed: Vec<ProbeOutcome>,
}

/// One probe's result.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    /// The capability.
    pub capability: String,
    /// Its verdict.
    pub health: ProbeHealth,
    /// The event written because the health changed, if any.
    pub event: Option<&'static str>,
}

/// Runs one round now: claims what is due, probes it, records it.
pub async fn run_once(state: &AppState) -> Result<ProbeReport, ApiError> {
    let runtime = &state.capabilities;
    let client = state.pool.get().await?;
    let interval = runtime.probe_interval.as_secs_f64();
    // A registration due a moment after this round would otherwise wait a whole interval.
    let claimed = store::claim_due(
        &**client,
        interval,
        slack(runtime.probe_interval),
        MAX_PER_ROUND,
    )
    .await?;
    if claimed.is_empty() {
        return Ok(ProbeReport::default());
    }
    let rows = store::completed(&**client, None).await?;
    drop(client);

    // Every completed registration is callable through the client, with its credential opened;
    // the probes below use the claimed ones.
    let mut registrations = Vec::with_capacity(rows.len());
    let mut broken: HashMap<Uuid, String> = HashMap::new();
    for row in &rows {
        let cap = &row.capability;
        let credential = match (&row.sealed, &runtime.keyring) {
            (None, _) => None,
            (Some(sealed), Some(keyring)) => match keyring.open(sealed) {
                Ok(plain) => Some(plain),
                Err(e) => {
                    tracing::error!(capability = %cap.name, key_id = %sealed.key_id, error = %e, "a stored credential cannot be opened");
                    broken.insert(cap.id, format!("the stored credential (key {}) does not open with this hub's identities", sealed.key_id));
                    continue;
                }
            },
            (Some(sealed), None) => {
                broken.insert(
                    cap.id,
                    format!(
                        "the credential is sealed (key {}) but the hub has no age identity",
                        sealed.key_id
                    ),
                );
                continue;
            }
        };
        match url::Url::parse(&cap.base_url) {
            Ok(base_url) => registrations.push(Registration {
                name: cap.name.clone(),
                base_url,
                health_path: cap.health_path.clone(),
                credential,
            }),
            Err(e) => {
                broken.insert(cap.id, format!("the base URL cannot be parsed: {e}"));
            }
        }
    }
    runtime.client.set_registrations(registrations);

    let claimed: HashSet<Uuid> = claimed.into_iter().collect();
    // Owned futures: borrowing rows into a buffered stream makes the round's future not `Send`
    // for every lifetime, which `tokio::spawn` needs.
    let probes = rows
        .into_iter()
        .map(|r| r.capability)
        .filter(|c| claimed.contains(&c.id))
        .map(|cap| {
            let state = state.clone();
            let broken = broken.remove(&cap.id);
            async move {
                let probe = match broken {
                    Some(why) => unhealthy_now(why),
                    None => observe(&state.capabilities.client, &cap).await,
                };
                record(&state, &cap, probe).await
            }
        })
        .collect::<Vec<_>>();
    let results: Vec<Result<ProbeOutcome, ApiError>> = futures_util::stream::iter(probes)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut report = ProbeReport::default();
    for r in results {
        match r {
            Ok(outcome) => report.probed.push(outcome),
            Err(e) => {
                tracing::warn!(error = %e, "a capability probe could not be recorded");
            }
        }
    }
    report
        .probed
        .sort_by(|a, b| a.capability.cmp(&b.capability));
    Ok(report)
}

/// How early a registration counts as due: a tenth of the interval, at most five seconds.
fn slack(interval: Duration) -> f64 {
    (interval.as_secs_f64() / 10.0).min(5.0)
}

fn unhealthy_now(error: String) -> Probe {
    Probe {
        at: chrono::Utc::now(),
        health: ProbeHealth::Unhealthy,
        status: None,
        latency_ms: None,
        contract_sha256: None,
        error: Some(error),
    }
}

/// Calls the health path once, then (on 2xx) fetches the live contract.
async fn observe(client: &CapabilityClient, cap: &Capability) -> Probe {
    let (observation, status, latency_ms) = match client.probe(&cap.name).await {
        Err(e) => (Observation::Unreachable(e.to_string()), None, None),
        Ok(r) => {
            let latency = i64::try_from(r.latency.as_millis()).unwrap_or(i64::MAX);
            if (200..300).contains(&r.status) {
                let contract = match client.get(&cap.name, &cap.contract_path).await {
                    Ok(body) => Observation::Contract(rules::live_contract_sha256(&body.body)),
                    Err(e) => Observation::ContractFailed(e.to_string()),
                };
                (contract, Some(r.status), Some(latency))
            } else {
                (
                    Observation::BadStatus(r.status),
                    Some(r.status),
                    Some(latency),
                )
            }
        }
    };
    let (health, error) = rules::judge(&observation, &cap.contract_sha256);
    let contract_sha256 = match &observation {
        Observation::Contract(live) => Some(live.clone()),
        _ => None,
    };
    Probe {
        at: chrono::Utc::now(),
        health,
        status,
        latency_ms,
        contract_sha256,
        error: error.map(|e| e.chars().take(MAX_ERROR_LEN).collect()),
    }
}

/// Stores the probe and, when the health changed, its event, in one transaction.
async fn record(
    state: &AppState,
    cap: &Capability,
    probe: Probe,
) -> Result<ProbeOutcome, ApiError> {
    let id = cap.id;
    let registered = cap.contract_sha256.clone();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let Some((name, before, status)) = store::lock_health(ctx.client(), id).await?
                else {
                    return Err(ApiError::NotFound(format!("capability {id} is gone")));
                };
                store::record_probe(ctx.client(), id, &probe).await?;
                // A registration withdrawn while it was probed keeps the probe but raises nothing.
                let event = rules::health_event(before, probe.health)
                    .filter(|_| status == hub_core::api::capabilities::CapabilityStatus::Completed);
                if let Some(kind) = event {
                    let draft = health_draft(kind, &name, before, &probe, &registered)?;
                    ctx.append(AUTHOR, vec![draft]).await?;
                }
                Ok(ProbeOutcome {
                    capability: name,
                    health: probe.health,
                    event,
                })
            })
        })
        .await
}

fn health_draft(
    kind: &str,
    name: &str,
    before: ProbeHealth,
    probe: &Probe,
    registered: &str,
) -> Result<Draft, ApiError> {
    let (summary, severity) = match probe.health {
        ProbeHealth::Unhealthy => (format!("Capability {name} is unhealthy"), "warning"),
        ProbeHealth::Drifted => (
            format!("Capability {name}: the live contract differs from the registered one"),
            "warning",
        ),
        _ if before == ProbeHealth::Unknown => (format!("Capability {name} is healthy"), "info"),
        _ => (format!("Capability {name} recovered"), "info"),
    };
    let mut detail = json!({
        "capability": name,
        "from": rules::health_str(before),
        "to": rules::health_str(probe.health),
        "severity": severity,
        "status": probe.status,
        "latency_ms": probe.latency_ms,
        "error": probe.error,
    });
    if probe.health == ProbeHealth::Drifted {
        detail["registered_sha256"] = json!(registered);
        detail["live_sha256"] = json!(probe.contract_sha256);
    }
    Draft::system(kind, summary, detail)
}

/// Starts the background job: a round every probe interval (the first one interval after
/// start) until shutdown begins. Rounds never overlap.
pub fn spawn(state: AppState, mut stopping: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let period = state.capabilities.probe_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            tokio::select! {
                r = run_once(&state) => match r {
                    Ok(report) if !report.probed.is_empty() => {
                        tracing::debug!(probed = report.probed.len(), "capability probe round");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "capability probe round failed"),
                },
                // Stopping mid-round only leaves the claimed registrations for the next round.
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    })
}
