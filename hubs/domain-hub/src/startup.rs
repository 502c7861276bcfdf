//! Building and running a domain hub: validate, migrate, connect, start the background jobs
//! (registrar, pollers, retention purge, outbox relay, directory sync), serve, and stop in order.

use crate::cluster::Cluster;
use crate::config::DomainHubConfig;
use crate::ledger::OutboxLedger;
use crate::outbox::relay::Relay;
use crate::outbox::{Outbox, OutboxMetrics};
use crate::polling::{self, Poller};
use crate::state::AppState;
use crate::state_hub::registrar::{Link, Registrar};
use crate::state_hub::StateHubClient;
use crate::{migrations, routes, ui};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;
use hub_core::api::registry::HubRegistration;
use hub_core::auth::tokens::TokenAuthenticator;
use hub_core::auth::DynAuthenticator;
use hub_core::capability::CapabilityClient;
use hub_core::db;
use hub_core::http::problem::ApiError;
use hub_core::http::ratelimit::Limiters;
use hub_core::http::{self, CoreData, HealthState, HttpMetrics};
use hub_core::identity::authenticator::HubAuthenticator;
use hub_core::identity::directory::Directory;
use hub_core::identity::oidc::OidcClient;
use hub_core::identity::IdentityService;
use hub_core::lifecycle::{self, Shutdown};
use hub_core::retention::Purger;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A built, not yet running, domain hub.
pub struct Application {
    port: u16,
    server: Server,
    shutdown: Arc<Shutdown>,
    identity: Arc<IdentityService>,
    cluster: Cluster,
    poller: Arc<Poller>,
    relay: Arc<Relay>,
}

/// Applies migrations under the advisory lock; returns the versions applied now.
pub async fn migrate(cfg: &DomainHubConfig) -> anyhow::Result<Vec<String>> {
    let pg = db::pg_config(&cfg.database, &format!("{}-migrate", cfg.hub.name))?;
    let applied = db::migrate(&pg, migrations::sets(), migrations::MIGRATION_LOCK).await?;
    Ok(applied)
}

/// The background jobs, stopped by shutdown step 2.
struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    /// Validates, migrates, connects and binds the listener (port 0 picks one).
    pub async fn build(cfg: DomainHubConfig) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(cfg.server.listen)
            .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
        Self::build_with_listener(cfg, listener).await
    }

    /// As [`build`](Self::build), with a listener the caller bound.
    pub async fn build_with_listener(
        cfg: DomainHubConfig,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let manifest = Arc::new(cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?);
        let name = cfg.hub.name.clone();
        let applied = migrate(&cfg).await.context("applying migrations")?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "migrations applied");
        }
        let pools = db::pools(&cfg.database, &name)?;
        let metrics = HttpMetrics::new()?;
        let outbox = Outbox::new(&name, OutboxMetrics::register(&metrics.registry)?);
        let state_hub = StateHubClient::new(&cfg.state_hub, &name)?;
        let cluster = Cluster::new(CapabilityClient::new(&cfg.capabilities, &metrics.registry)?);
        {
            let client = pools
                .requests
                .get()
                .await
                .context("connecting to the database")?;
            crate::polling::store::sync(&**client, &manifest)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("preparing the poll jobs: {}", polling::error_text(&e))
                })?;
        }

        let limiters = Arc::new(Limiters::new(&cfg.limits, &metrics.registry)?);
        let tokens = Arc::new(TokenAuthenticator::new(pools.requests.clone()));
        let identity = Arc::new(build_identity(&cfg, &pools, &outbox, limiters.clone())?);
        let link = Arc::new(Link::default());
        let state = AppState {
            pool: pools.requests.clone(),
            manifest: manifest.clone(),
            outbox: outbox.clone(),
            cluster: cluster.clone(),
            state_hub: state_hub.clone(),
            link: link.clone(),
        };

        let shutdown = Arc::new(Shutdown::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let registrar = Arc::new(Registrar {
            client: state_hub.clone(),
            cluster: cluster.clone(),
            pool: pools.requests.clone(),
            manifest: manifest.clone(),
            registration: HubRegistration {
                kind: cfg.hub.kind.clone(),
                base_url: cfg.server.public_url.clone(),
                heartbeat_seconds: cfg.hub.heartbeat_seconds,
            },
            heartbeat_every: Duration::from_secs(u64::from(cfg.hub.heartbeat_seconds)),
            callable_every: Duration::from_secs(cfg.state_hub.callable_refresh_seconds),
            retry_max: cfg.state_hub.retry_max(),
            link,
        });
        let poller = Arc::new(Poller::new(
            pools.requests.clone(),
            cluster.clone(),
            manifest.clone(),
            outbox.clone(),
            cfg.hub.observations_kept,
        ));
        let relay = Arc::new(Relay::new(
            pools.requests.clone(),
            outbox.clone(),
            state_hub,
            cfg.state_hub.retry_max(),
        ));
        // Every replica runs it; each table's batches are claimed through PostgreSQL.
        let purger = Arc::new(Purger::new(
            pools.requests.clone(),
            crate::retention::targets(&cfg.retention),
            &cfg.retention,
            &metrics.registry,
        )?);
        let tasks = vec![
            tokio::spawn(registrar.run(stop_rx.clone())),
            tokio::spawn(poller.clone().run(stop_rx.clone())),
            tokio::spawn(purger.run(stop_rx.clone())),
            tokio::spawn(relay.clone().run(stop_rx)),
        ];
        // systemd restarts the unit when a background job died or the runtime stopped answering.
        let watched: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let stopping = shutdown.stopping();
        lifecycle::spawn_watchdog(move || {
            let alive = watched.iter().all(|t| !t.is_finished()) || *stopping.borrow();
            async move { alive }
        });
        tokio::spawn(hub_core::identity::sync::run(
            identity.clone(),
            shutdown.stopping(),
        ));

        let state = web::Data::new(state);
        let dyn_auth: DynAuthenticator = Arc::new(HubAuthenticator::new(
            tokens,
            pools.requests.clone(),
            cfg.identity.sessions.clone(),
            identity.cookie_name.clone(),
            limiters,
        ));
        let dyn_auth = web::Data::new(dyn_auth);
        let pages = web::Data::new(ui::pages(&manifest)?);
        let identity_handle = identity.clone();
        let identity = web::Data::from(identity);
        let core = CoreData {
            health: web::Data::new(HealthState {
                pools: pools.clone(),
                expected_schema: migrations::sets().iter().map(Into::into).collect(),
            }),
            metrics: web::Data::new(metrics),
            body_limit: cfg.server.body_limit_bytes,
            tls: cfg.server.is_tls(),
        };
        let port = listener.local_addr()?.port();
        let mut server =
            HttpServer::new(move || {
                let (state, dyn_auth) = (state.clone(), dyn_auth.clone());
                let (pages, identity) = (pages.clone(), identity.clone());
                http::app(&core, move |c| {
                    c.app_data(state)
                        .app_data(dyn_auth)
                        .app_data(pages)
                        .app_data(identity)
                        .app_data(web::FormConfig::default().limit(64 * 1024).error_handler(
                            |e, _| ApiError::BadRequest(format!("invalid form: {e}")).into(),
                        ));
                    hub_core::http::routes::mount_all(&routes::table(), c);
                })
            })
            .shutdown_timeout(cfg.server.shutdown_grace_seconds)
            .disable_signals();
        if let Some(n) = cfg.server.workers {
            server = server.workers(n);
        }
        let server = server.listen(listener)?.run();
        register_shutdown(
            &shutdown,
            server.handle(),
            Jobs {
                stop: stop_tx,
                tasks,
            },
            relay.clone(),
            pools,
            cfg.server.shutdown_grace(),
        );
        Ok(Application {
            port,
            server,
            shutdown,
            identity: identity_handle,
            cluster,
            poller,
            relay,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The identity service (tests run the directory sync through it).
    pub fn identity(&self) -> Arc<IdentityService> {
        self.identity.clone()
    }

    /// The cluster client (tests read breaker states through it).
    pub fn cluster(&self) -> Cluster {
        self.cluster.clone()
    }

    /// The pollers (tests poll due paths without waiting a tick).
    pub fn poller(&self) -> Arc<Poller> {
        self.poller.clone()
    }

    /// The outbox relay.
    pub fn relay(&self) -> Arc<Relay> {
        self.relay.clone()
    }

    /// The shutdown registry (tests stop the hub through it).
    pub fn shutdown(&self) -> Arc<Shutdown> {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/SIGINT (or the server stops), then runs the shutdown steps.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let mut server = tokio::spawn(self.server);
        lifecycle::notify_ready();
        tokio::select! {
            sig = lifecycle::terminate_signal() => {
                tracing::info!(signal = sig?, "stopping");
                shutdown.run().await;
                let _ = server.await;
            }
            r = &mut server => {
                shutdown.run().await;
                r.context("server task")??;
            }
        }
        Ok(())
    }

    /// Serves until the shutdown registry runs (for tests, which stop it directly).
    pub async fn run_until_shutdown(self) -> anyhow::Result<()> {
        let mut stopping = self.shutdown.stopping();
        let server = tokio::spawn(self.server);
        let _ = stopping.wait_for(|s| *s).await;
        let _ = server.await;
        Ok(())
    }
}

fn register_shutdown(
    shutdown: &Shutdown,
    server: ServerHandle,
    jobs: Jobs,
    relay: Arc<Relay>,
    pools: db::Pools,
    grace: Duration,
) {
    // 1. stop accepting and let in-flight requests finish (they may still write outbox rows).
    shutdown.register(
        "drain http requests",
        grace + Duration::from_secs(1),
        move || async move {
            server.stop(true).await;
        },
    );
    // 2. stop the registrar, the pollers, the retention purge and the relay loop; a poll or a
    //    purge batch in flight finishes.
    shutdown.register(
        "stop pollers, relay and registrar",
        Duration::from_secs(15),
        move || async move {
            jobs.stop.send_replace(true);
            for t in jobs.tasks {
                let _ = t.await;
            }
        },
    );
    // 3. one last attempt to hand what is in the outbox to the state hub; what is left stays
    //    in the database for the next start (or another replica).
    shutdown.register("flush outbox", Duration::from_secs(5), move || async move {
        let delivered = relay.flush().await;
        tracing::info!(delivered, "outbox flushed");
    });
    // 4. close pools last: nothing above needs them any more.
    shutdown.register(
        "close database pools",
        Duration::from_secs(2),
        move || async move {
            pools.close();
        },
    );
}

/// The OIDC client, the directory and the identity service, from `[identity]`.
fn build_identity(
    cfg: &DomainHubConfig,
    pools: &db::Pools,
    outbox: &Outbox,
    limiters: Arc<Limiters>,
) -> anyhow::Result<IdentityService> {
    let oidc = match &cfg.identity.oidc {
        Some(o) => {
            let secret = o
                .client_secret()
                .context("identity.oidc.client_secret_file")?;
            Some(Arc::new(
                OidcClient::new(o, secret).context("identity.oidc")?,
            ))
        }
        None => None,
    };
    let directory = match &cfg.identity.ldap {
        Some(l) => {
            let password = l
                .bind_password()
                .context("identity.ldap.bind_password_file")?;
            Some(Arc::new(
                Directory::new(l, password).context("identity.ldap")?,
            ))
        }
        None => None,
    };
    Ok(IdentityService::new(
        &cfg.hub.name,
        cfg.identity.clone(),
        oidc,
        directory,
        Arc::new(OutboxLedger::new(pools.requests.clone(), outbox.clone())),
        pools.requests.clone(),
        limiters,
        cfg.server.trusted_proxies.clone(),
    ))
}
