//! Starts a domain hub in-process against a fresh database per test, a state hub (the fake, or
//! anything at a URL) and, when asked, the cluster stand-in over HTTPS with its own CA.

use crate::fake_state_hub::FakeStateHub;
use crate::standins::ClusterStandin;
use domain_hub::cluster::Cluster;
use domain_hub::config::DomainHubConfig;
use domain_hub::startup::Application;
use hub_core::lifecycle::Shutdown;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// The superuser URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("HUB_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A throwaway database, dropped when the value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("domain_hub_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
            .await
            .expect("connect to test PostgreSQL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url()).unwrap();
        url.set_path(&format!("/{name}"));
        TestDb {
            name,
            url: url.to_string(),
        }
    }

    /// A direct superuser connection to this database.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TempDir(pub PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(prefix: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        hub_core::telemetry::init(&hub_core::config::LogConfig {
            format: hub_core::config::LogFormat::Pretty,
            filter: "debug".into(),
        });
    }
}

/// The shipped manifest of a hub.
pub fn shipped_manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("manifests/{name}.json"))
}

/// The token the domain hub presents to the state hub in tests.
pub const STATE_HUB_TOKEN: &str = "hpt_test-state-hub-token-0123456789abcdefghijk";

/// The callable entry of one of the stand-in's capabilities.
pub fn callable(cluster: &ClusterStandin, name: &str) -> Value {
    json!({"name": name, "base_url": cluster.base_url(name), "health_path": "/healthz",
           "credential": cluster.token, "contract_sha256": "0".repeat(64)})
}

/// How to start a test hub.
pub struct Setup<'a> {
    /// `[hub] name` (and the manifest's hub).
    pub name: &'a str,
    /// `[hub] kind`.
    pub kind: &'a str,
    /// The manifest file.
    pub manifest: PathBuf,
    /// The state hub's URL.
    pub state_hub_url: String,
    /// The token presented to it.
    pub state_hub_token: String,
    /// The cluster stand-in, to trust its CA and let its loopback address through.
    pub cluster: Option<&'a ClusterStandin>,
    /// More TOML appended.
    pub extra: String,
}

impl Setup<'_> {
    /// ops-hub with the shipped manifest against `fake` and `cluster`.
    pub fn ops<'a>(fake: &FakeStateHub, cluster: Option<&'a ClusterStandin>) -> Setup<'a> {
        Setup {
            name: "ops-hub",
            kind: "ops",
            manifest: shipped_manifest("ops-hub"),
            state_hub_url: fake.url(),
            state_hub_token: STATE_HUB_TOKEN.to_owned(),
            cluster,
            extra: "[identity.scopes]\n\"ops-hub:freeze.request\" = [\"hub_admins\"]\n".to_owned(),
        }
    }
}

/// The config text for `setup`, with the database at `db_url` and files under `dir`.
pub fn config_text(setup: &Setup<'_>, db_url: &str, dir: &Path) -> String {
    let token_file = dir.join("state-hub.token");
    std::fs::write(&token_file, &setup.state_hub_token).unwrap();
    let capabilities = match setup.cluster {
        Some(c) => format!(
            "[capabilities]\nca_file = \"{}\"\nallow_cidrs = [\"127.0.0.1/32\"]\nmax_retries = 0\n\
             breaker_failures = 2\nbreaker_open_seconds = 1\nconnect_timeout_ms = 500\nrequest_timeout_ms = 3000\n",
            c.ca_file().display()
        ),
        None => String::new(),
    };
    format!(
        "dev_mode = true\n\
         [hub]\nname = \"{}\"\nkind = \"{}\"\nmanifest_file = \"{}\"\nheartbeat_seconds = 10\nobservations_kept = 3\n\
         [state_hub]\nurl = \"{}\"\ntoken_file = \"{}\"\ntimeout_seconds = 2\ncallable_refresh_seconds = 1\nretry_max_seconds = 1\n\
         [server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\nshutdown_grace_seconds = 2\nworkers = 2\n\
         [database]\nurl = \"{db_url}\"\npool_size = 8\n\
         {capabilities}{}",
        setup.name,
        setup.kind,
        setup.manifest.display(),
        setup.state_hub_url,
        token_file.display(),
        setup.extra,
    )
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub shutdown: Arc<Shutdown>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub cluster: Cluster,
    pub config: DomainHubConfig,
    _dir: TempDir,
}

/// A second instance of the same hub on the same database.
pub struct Replica {
    pub base: String,
    pub shutdown: Arc<Shutdown>,
}

impl TestApp {
    /// Builds and serves a hub for `setup`.
    pub async fn spawn(setup: Setup<'_>) -> TestApp {
        init_logs();
        let db = TestDb::create().await;
        let dir = temp_dir("domain-hub-test");
        let path = dir.0.join("domain-hub.toml");
        std::fs::write(&path, config_text(&setup, &db.url, &dir.0)).unwrap();
        let loaded = hub_core::config::load_with_env::<DomainHubConfig>(
            Some(&path),
            domain_hub::config::SECTIONS,
            &[],
        )
        .unwrap();
        if let Err(e) = loaded.config.validate() {
            panic!("test config invalid:\n{e}");
        }
        let config = loaded.config.clone();
        let app = Application::build(loaded.config)
            .await
            .expect("domain hub builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown();
        let cluster = app.cluster();
        let server = tokio::spawn(app.run_until_shutdown());
        TestApp {
            base,
            http: reqwest::Client::new(),
            db,
            shutdown,
            server: Some(server),
            cluster,
            config,
            _dir: dir,
        }
    }

    /// Starts a replica: the same config and database, another port.
    pub async fn replica(&self) -> Replica {
        let app = Application::build(self.config.clone())
            .await
            .expect("replica builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown();
        tokio::spawn(app.run_until_shutdown());
        Replica { base, shutdown }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an API token in the hub's database; returns its secret.
    pub async fn token(&self, subject: &str, roles: &[&str], scopes: &[&str]) -> String {
        use hub_core::auth::tokens::{generate, insert, NewToken};
        use hub_core::auth::{PrincipalKind, Role, Scope, Subject};
        let secret = generate();
        let db = self.db.connect().await;
        insert(
            &db,
            &NewToken {
                name: format!("{subject} test"),
                subject: Subject::parse(subject).unwrap(),
                kind: PrincipalKind::Human,
                roles: roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
                scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
                expires_at: None,
            },
            &secret,
            "test",
        )
        .await
        .unwrap();
        secrecy::ExposeSecret::expose_secret(&secret).to_owned()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let r = self.get(token, path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A small pool on the hub's database, for calling the hub's own functions.
    pub fn pool(&self) -> deadpool_postgres::Pool {
        let pg: tokio_postgres::Config = self.db.url.parse().unwrap();
        deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(pg, NoTls))
            .max_size(2)
            .build()
            .unwrap()
    }

    /// Makes every poll job due now; the pollers pick them up within a second.
    pub async fn poll_now(&self) {
        self.db
            .connect()
            .await
            .execute("UPDATE poll_state SET next_due_at = now()", &[])
            .await
            .unwrap();
    }

    /// Outbox rows (event type, summary, delivered?) in order.
    pub async fn outbox(&self) -> Vec<(String, String, bool)> {
        self.db
            .connect()
            .await
            .query(
                "SELECT event->>'event_type', event->>'summary', delivered_at IS NOT NULL FROM outbox ORDER BY seq",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// The widget named `name` from the API.
    pub async fn widget(&self, token: &str, name: &str) -> Value {
        let v = self.get_json(token, "/api/v1/widgets").await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no widget {name}"))
    }

    pub async fn stop(&mut self) {
        self.shutdown.run().await;
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

/// Waits until `check` answers `Some`, at most `secs` seconds; panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts a problem+json response and returns it.
pub async fn problem(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "unexpected status: {v}");
    assert_eq!(ct, "application/problem+json");
    v
}

/// The freeze actions the stand-in recorded.
pub fn recorded_actions(cluster: &ClusterStandin) -> Vec<Value> {
    match std::fs::read_to_string(cluster.dir.join("run/actions.jsonl")) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A logged-in browser: a session created directly in the database (the login flow itself is
/// hub-core's and tested there), sent as the session cookie. Redirects are not followed.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    /// Logs `username` in as if through SSO with directory `groups` (default role mapping) and
    /// the `scopes` those groups grant.
    pub async fn browser_as(&self, username: &str, groups: &[&str], scopes: &[&str]) -> Browser {
        use hub_core::identity::{roles::RoleMapping, sessions, users};
        let db = self.db.connect().await;
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let roles = RoleMapping::default().roles_for(&groups);
        let scopes = scopes
            .iter()
            .map(|s| hub_core::auth::Scope::parse(s).unwrap())
            .collect();
        let who = users::LoginIdentity {
            issuer: "https://sso.test".into(),
            subject: format!("sub-{username}"),
            username: hub_core::auth::Subject::parse(username).unwrap(),
            display_name: None,
            email: None,
            groups,
        };
        let rec = users::record_login(&db, &who, &roles, &scopes)
            .await
            .unwrap();
        let (_, secret) = sessions::create(
            &db,
            &sessions::NewSession {
                user_id: rec.user.id,
                method: sessions::LoginMethod::Oidc,
                client_ip: Some("127.0.0.1"),
                user_agent: Some("test"),
            },
            &sessions::SessionConfig::default(),
        )
        .await
        .unwrap();
        let secret = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
        Browser {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: format!("__Host-ops-hub-session={secret}"),
            csrf: sessions::csrf_for(&secret),
        }
    }
}

impl Browser {
    /// GET a page; returns status and HTML.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POSTs a form with this session's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &self.csrf));
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(&all)
            .send()
            .await
            .unwrap()
    }
}
