//! Building and running the state hub: migrate, connect, start the writer, serve, stop in order.

use crate::capabilities::{self, probe};
use crate::config::StateHubConfig;
use crate::journal::{self, Draft, Journal};
use crate::ledger::JournalLedger;
use crate::state::AppState;
use crate::{fanout, migrations, routes, ui};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;
use hub_core::auth::tokens::{self, Bootstrap, TokenAuthenticator};
use hub_core::auth::DynAuthenticator;
use hub_core::auth::Subject;
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
use serde_json::json;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// A built, not yet running, state hub.
pub struct Application {
    port: u16,
    server: Server,
    shutdown: Arc<Shutdown>,
    identity: Arc<IdentityService>,
    state: AppState,
}

/// Applies migrations under the advisory lock; returns the versions applied now.
pub async fn migrate(cfg: &StateHubConfig) -> anyhow::Result<Vec<String>> {
    let pg = db::pg_config(&cfg.database, "state-hub-migrate")?;
    let applied = db::migrate(&pg, migrations::sets(), journal::MIGRATION_LOCK).await?;
    Ok(applied)
}

impl Application {
    /// Migrates, connects, bootstraps the admin token and binds the listener (port 0 picks one).
    pub async fn build(cfg: StateHubConfig) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(cfg.server.listen)
            .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
        Self::build_with_listener(cfg, listener).await
    }

    /// As [`build`](Self::build), with a listener the caller bound.
    pub async fn build_with_listener(
        cfg: StateHubConfig,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let applied = migrate(&cfg).await.context("applying migrations")?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "migrations applied");
        }
        let pools = db::pools(&cfg.database, "state-hub")?;
        let metrics = HttpMetrics::new()?;
        // Before any task starts: a missing age identity stops the hub here, leaving nothing running.
        let capabilities = Arc::new(build_capabilities(&cfg, &pools, &metrics.registry).await?);
        let pg = db::pg_config(&cfg.database, "state-hub-journal")?;
        let (journal, writer) = Journal::spawn(
            pg.clone(),
            cfg.journal.max_batch,
            cfg.journal.queue_depth,
            &metrics.registry,
        )?;
        let shutdown = Arc::new(Shutdown::new());
        // systemd restarts the unit if the writer dies or the runtime stops answering.
        let watched = journal.clone();
        let stopping = shutdown.stopping();
        lifecycle::spawn_watchdog(move || {
            let alive = watched.is_running() || *stopping.borrow();
            async move { alive }
        });
        tokio::spawn(journal::listener::run(
            pg,
            journal.clone(),
            shutdown.stopping(),
        ));
        // Publishing reads committed events on its own connection: journal writes never wait
        // for NATS.
        let fanout = fanout::spawn(
            &cfg.nats,
            db::pg_config(&cfg.database, "state-hub-fanout")?,
            journal.head(),
            &metrics.registry,
        )
        .context("[nats]")?;

        if let Some(src) = cfg.bootstrap_source() {
            let secret = hub_core::secret::read(&src, tokens::MIN_TOKEN_LEN)?;
            let subject =
                Subject::parse(&cfg.auth.bootstrap_admin_subject).map_err(anyhow::Error::msg)?;
            bootstrap_admin(&journal, secret, subject)
                .await
                .context("bootstrapping the admin token")?;
        }

        let limiters = Arc::new(Limiters::new(&cfg.limits, &metrics.registry)?);
        let tokens = Arc::new(TokenAuthenticator::new(pools.requests.clone()));
        let identity = Arc::new(build_identity(&cfg, &journal, &pools, limiters.clone())?);
        let state = web::Data::new(AppState {
            pool: pools.requests.clone(),
            journal: journal.clone(),
            tokens: tokens.clone(),
            limiters: limiters.clone(),
            trusted_proxies: cfg.server.trusted_proxies.clone(),
            dev_mode: cfg.dev_mode,
            capabilities,
            stopping: shutdown.stopping(),
        });
        let app_state = state.get_ref().clone();
        let probes = probe::spawn(app_state.clone(), shutdown.stopping());
        // Every replica runs it; each table's batches are claimed through PostgreSQL.
        let purger = Arc::new(Purger::new(
            pools.requests.clone(),
            crate::retention::targets(&cfg.retention),
            &cfg.retention,
            &metrics.registry,
        )?);
        let retention = tokio::spawn(purger.run(shutdown.stopping()));
        let dyn_auth: DynAuthenticator = Arc::new(HubAuthenticator::new(
            tokens,
            pools.requests.clone(),
            cfg.identity.sessions.clone(),
            identity.cookie_name.clone(),
            limiters,
        ));
        let dyn_auth = web::Data::new(dyn_auth);
        let pages = web::Data::new(ui::pages()?);
        tokio::spawn(hub_core::identity::sync::run(
            identity.clone(),
            shutdown.stopping(),
        ));
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
            Background {
                probes,
                retention,
                fanout,
            },
            journal,
            writer,
            pools,
            cfg.server.shutdown_grace(),
        );
        Ok(Application {
            port,
            server,
            shutdown,
            identity: identity_handle,
            state: app_state,
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

    /// The shared state handlers see (tests run a probe round through it).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The shutdown registry (tests trigger it directly).
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

/// The background jobs the shutdown registry stops after the HTTP server.
struct Background {
    probes: tokio::task::JoinHandle<()>,
    retention: tokio::task::JoinHandle<()>,
    fanout: Option<fanout::Fanout>,
}

fn register_shutdown(
    shutdown: &Shutdown,
    server: ServerHandle,
    background: Background,
    journal: Journal,
    writer: journal::JournalHandle,
    pools: db::Pools,
    grace: Duration,
) {
    // 1. stop accepting and let in-flight requests finish (live streams end on `stopping`).
    shutdown.register(
        "drain http requests",
        grace + Duration::from_secs(1),
        move || async move {
            server.stop(true).await;
        },
    );
    // 2. stop the capability probes (they end on `stopping`); a round in flight is dropped and
    //    its claimed registrations are probed in the next round.
    shutdown.register(
        "stop capability probes",
        Duration::from_secs(5),
        move || async move {
            let _ = background.probes.await;
        },
    );
    // 2a. stop the retention purge (it ends on `stopping`); a batch in flight commits or rolls
    //     back as a whole, and what is left is purged by the next run, here or in a replica.
    shutdown.register(
        "stop retention purge",
        Duration::from_secs(5),
        move || async move {
            let _ = background.retention.await;
        },
    );
    // 2b. stop the journal fan-out: no new publishes, wait for the acknowledgements in flight
    //     (at most the ack timeout), store the cursor, release the publisher lock.
    if let Some(fanout) = background.fanout {
        shutdown.register(
            "stop journal fan-out",
            Duration::from_secs(10),
            move || async move {
                fanout.stop().await;
            },
        );
    }
    // 3. commit and answer every write already queued, then stop the writer.
    shutdown.register(
        "flush journal writer",
        Duration::from_secs(10),
        move || async move {
            journal.stop();
            let _ = writer.task.await;
        },
    );
    // 4. close pools last: nothing above needs them any more.
    shutdown.register(
        "close database pools",
        Duration::from_secs(2),
        move || async move {
            pools.close();
        },
    );
}

async fn bootstrap_admin(
    journal: &Journal,
    secret: secrecy::SecretString,
    subject: Subject,
) -> anyhow::Result<()> {
    let outcome = journal
        .transact(move |ctx| {
            Box::pin(async move {
                let outcome = tokens::bootstrap(ctx.client(), &secret, &subject).await?;
                if let Bootstrap::Created { record, replaced } = &outcome {
                    let detail = json!({"token_id": record.id, "subject": record.subject, "replaced": replaced});
                    let summary = format!("Bootstrap admin token installed for {}", record.subject);
                    ctx.append("state-hub", vec![Draft::system("token.bootstrapped", summary, detail)?]).await?;
                }
                Ok(outcome)
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {}", e.problem().detail))?;
    match outcome {
        Bootstrap::Unchanged => tracing::info!("bootstrap admin token unchanged"),
        Bootstrap::Created {
            replaced: Some(old),
            ..
        } => tracing::warn!(%old, "bootstrap admin token rotated; the previous one is revoked"),
        Bootstrap::Created { .. } => tracing::info!("bootstrap admin token installed"),
    }
    Ok(())
}

/// The OIDC client, the directory and the identity service, from `[identity]`.
fn build_identity(
    cfg: &StateHubConfig,
    journal: &Journal,
    pools: &db::Pools,
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
        "state-hub",
        cfg.identity.clone(),
        oidc,
        directory,
        Arc::new(JournalLedger::new(journal.clone())),
        pools.requests.clone(),
        limiters,
        cfg.server.trusted_proxies.clone(),
    ))
}

/// The capability registry's runtime from `[secrets]` and `[capabilities]`. Refuses to start
/// without an age identity while sealed credentials are stored: they could be neither handed
/// out nor probed with.
async fn build_capabilities(
    cfg: &StateHubConfig,
    pools: &db::Pools,
    registry: &prometheus::Registry,
) -> anyhow::Result<capabilities::Runtime> {
    let keyring = cfg
        .secrets
        .keyring()
        .context("secrets.age_identity_files")?;
    match &keyring {
        Some(k) => tracing::info!(key_id = %k.current_key_id(), "age identities loaded"),
        None => {
            let client = pools.requests.get().await?;
            let stored = capabilities::store::stored_credentials(&**client)
                .await
                .map_err(|e| anyhow::anyhow!("counting stored credentials: {e}"))?;
            if stored > 0 {
                anyhow::bail!(
                    "{stored} capability credential(s) are stored sealed, but no age identity is \
                     configured: set [secrets] age_identity_files (or the systemd credential \
                     `age-identity`)"
                );
            }
        }
    }
    let client = hub_core::capability::CapabilityClient::new(&cfg.capabilities.client, registry)
        .context("[capabilities]")?;
    Ok(capabilities::Runtime {
        keyring: keyring.map(Arc::new),
        client,
        probe_interval: cfg.capabilities.probe_interval(),
    })
}
