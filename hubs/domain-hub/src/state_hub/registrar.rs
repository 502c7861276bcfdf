//! Keeps this hub known to the state hub: registers it, submits its manifest, heartbeats every
//! `heartbeat_seconds`, and refreshes the callable capability list every
//! `callable_refresh_seconds`. While the state hub is down each step is retried with back-off;
//! nothing else in the hub waits for it, and the last callable list stays in force.

use super::{ManifestOutcome, StateHubClient, StateHubError};
use crate::backoff::Backoff;
use crate::cluster::Cluster;
use crate::status;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{HubHealth, HubRegistration};
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the hub last heard from the state hub, for `/api/v1/status` and the logs.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct LinkStatus {
    /// The hub instance is registered.
    pub registered: bool,
    /// What became of the manifest: `created`, `already_stored`, `rejected`, or nothing yet.
    pub manifest: Option<String>,
    /// The state hub's objections to the manifest, one per line.
    pub manifest_problems: Vec<String>,
    /// Last heartbeat the state hub accepted.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// What it said.
    pub last_heartbeat: Option<HubHealth>,
    /// Last time the callable list was refreshed.
    pub callable_refreshed_at: Option<DateTime<Utc>>,
    /// The last failure talking to the state hub, cleared by the next success.
    pub last_error: Option<String>,
}

/// The shared link status.
#[derive(Debug, Default)]
pub struct Link(Mutex<LinkStatus>);

impl Link {
    /// A copy of the current status.
    pub fn snapshot(&self) -> LinkStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut LinkStatus)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Records a failure; logs it when it is news (a new kind of failure), so an outage of
    /// hours is one warning, not thousands.
    fn failed(&self, step: &str, e: &StateHubError) {
        let text = format!("{step}: {e}");
        let mut news = false;
        self.update(|s| {
            news = s.last_error.as_deref() != Some(text.as_str());
            s.last_error = Some(text.clone());
        });
        if news {
            tracing::warn!(step, error = %e, "state hub call failed; retrying with back-off");
        }
    }

    fn succeeded(&self) {
        let mut was_failing = false;
        self.update(|s| {
            was_failing = s.last_error.take().is_some();
        });
        if was_failing {
            tracing::info!("the state hub answers again");
        }
    }
}

/// The registrar's settings.
pub struct Registrar {
    /// The state hub.
    pub client: StateHubClient,
    /// Receives the callable list.
    pub cluster: Cluster,
    /// For the heartbeat's view of the hub.
    pub pool: Pool,
    /// Submitted at start.
    pub manifest: Arc<Manifest>,
    /// What `PUT /hubs/{name}` sends.
    pub registration: HubRegistration,
    /// Between heartbeats.
    pub heartbeat_every: Duration,
    /// Between callable list refreshes.
    pub callable_every: Duration,
    /// Longest back-off.
    pub retry_max: Duration,
    /// Shared status.
    pub link: Arc<Link>,
}

impl Registrar {
    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut registered = false;
        let mut manifest_done = false;
        let mut register_retry = Backoff::new(self.retry_max);
        let mut callable_retry = Backoff::new(self.retry_max.min(self.callable_every));
        let now = Instant::now();
        let (mut register_at, mut callable_at, mut beat_at) = (now, now, now);
        loop {
            let now = Instant::now();
            if !(registered && manifest_done) && now >= register_at {
                match self.register(&mut registered, &mut manifest_done).await {
                    Ok(()) => {
                        register_retry.reset();
                        beat_at = now;
                    }
                    Err(()) => register_at = now + register_retry.next_delay(),
                }
            }
            if now >= callable_at {
                callable_at = match self.refresh_callable().await {
                    Ok(()) => {
                        callable_retry.reset();
                        now + self.callable_every
                    }
                    Err(()) => now + callable_retry.next_delay(),
                };
            }
            if registered && now >= beat_at {
                beat_at = now + self.heartbeat_every;
                if let Err(e) = self.heartbeat().await {
                    if e.status() == Some(404) {
                        // The state hub forgot this hub (a restored database): register again.
                        registered = false;
                        manifest_done = false;
                        register_at = now;
                    }
                }
            }
            let mut wake = callable_at;
            if registered {
                wake = wake.min(beat_at);
            }
            if !(registered && manifest_done) {
                wake = wake.min(register_at);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    async fn register(&self, registered: &mut bool, manifest_done: &mut bool) -> Result<(), ()> {
        if !*registered {
            match self.client.register(&self.registration).await {
                Ok(()) => {
                    *registered = true;
                    self.link.succeeded();
                    self.link.update(|s| s.registered = true);
                    tracing::info!("registered with the state hub");
                }
                Err(e) => {
                    self.link.failed("register", &e);
                    return Err(());
                }
            }
        }
        if !*manifest_done {
            match self.client.submit_manifest(&self.manifest).await {
                Ok(outcome) => {
                    *manifest_done = true;
                    self.link.succeeded();
                    let label = match outcome {
                        ManifestOutcome::Created => "created",
                        ManifestOutcome::AlreadyStored => "already_stored",
                    };
                    self.link.update(|s| {
                        s.manifest = Some(label.to_owned());
                        s.manifest_problems.clear();
                    });
                    tracing::info!(version = %self.manifest.version, outcome = label, "manifest submitted");
                }
                Err(StateHubError::Status {
                    status,
                    detail,
                    errors,
                }) if matches!(status, 400 | 409 | 422) => {
                    // Resubmitting the same document cannot help (invalid, or a changed document
                    // under a version already in force); the hub keeps working from its local
                    // manifest and says why the state hub refused it.
                    *manifest_done = true;
                    let problems: Vec<String> = if errors.is_empty() {
                        vec![detail]
                    } else {
                        errors
                            .iter()
                            .map(|f| format!("{}: {}", f.field, f.message))
                            .collect()
                    };
                    for p in &problems {
                        tracing::error!(status, problem = %p, "the state hub refused the manifest");
                    }
                    self.link.update(|s| {
                        s.manifest = Some("rejected".to_owned());
                        s.manifest_problems = problems;
                    });
                }
                Err(e) => {
                    self.link.failed("submit manifest", &e);
                    return Err(());
                }
            }
        }
        Ok(())
    }

    async fn refresh_callable(&self) -> Result<(), ()> {
        match self.client.callable().await {
            Ok(list) => {
                let names: Vec<String> = list.items.iter().map(|c| c.name.clone()).collect();
                let first = !self.cluster.loaded();
                let before = self.cluster.callable_names();
                self.cluster.set_callable(list.items);
                if first || before != self.cluster.callable_names() {
                    tracing::info!(capabilities = ?names, "callable capabilities updated");
                }
                self.link.succeeded();
                self.link
                    .update(|s| s.callable_refreshed_at = Some(Utc::now()));
                Ok(())
            }
            Err(e) => {
                self.link.failed("refresh callable capabilities", &e);
                Err(())
            }
        }
    }

    async fn heartbeat(&self) -> Result<(), StateHubError> {
        let beat = status::heartbeat(&self.pool, &self.manifest).await;
        match self.client.heartbeat(&beat).await {
            Ok(()) => {
                self.link.succeeded();
                self.link.update(|s| {
                    s.last_heartbeat_at = Some(Utc::now());
                    s.last_heartbeat = Some(beat.status);
                });
                Ok(())
            }
            Err(e) => {
                self.link.failed("heartbeat", &e);
                Err(e)
            }
        }
    }
}
