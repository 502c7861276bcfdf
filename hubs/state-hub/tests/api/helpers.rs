//! Starts a state hub in-process against a fresh database per test.

use hub_core::lifecycle::Shutdown;
use serde_json::Value;
use state_hub::config::StateHubConfig;
use state_hub::startup::Application;
use std::sync::Arc;
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
        let name = format!("state_hub_test_{}", uuid::Uuid::new_v4().simple());
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
        // Drop runs outside any runtime guarantee; use a private one on a plain thread.
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

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub shutdown: Arc<Shutdown>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub identity: Arc<hub_core::identity::IdentityService>,
    /// The hub's shared state (capability probe rounds run through it).
    pub state: state_hub::state::AppState,
    _dir: TempDir,
}

pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        hub_core::telemetry::init(&hub_core::config::LogConfig {
            format: hub_core::config::LogFormat::Pretty,
            filter: "debug".into(),
        });
    }
}

pub fn config_for(db: &TestDb, dir: &std::path::Path, extra: &str) -> StateHubConfig {
    let token_path = dir.join("admin.token");
    let path = dir.join("state-hub.toml");
    std::fs::write(
        &path,
        format!(
            "dev_mode = true\n[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\nbody_limit_bytes = 262144\nshutdown_grace_seconds = 5\nworkers = 2\n\
             [database]\nurl = \"{}\"\npool_size = 8\n[auth]\nbootstrap_admin_token_file = \"{}\"\n{extra}",
            db.url,
            token_path.display()
        ),
    )
    .unwrap();
    let loaded = hub_core::config::load_with_env::<StateHubConfig>(
        Some(&path),
        state_hub::config::SECTIONS,
        &[],
    )
    .unwrap();
    loaded.config.validate().unwrap();
    loaded.config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with("").await
    }

    pub async fn spawn_with(extra: &str) -> TestApp {
        Self::spawn_bound(|_| extra.to_owned()).await
    }

    /// Binds the port first, so the config (an OIDC redirect URL) can name it.
    pub async fn spawn_bound(extra: impl FnOnce(u16) -> String) -> TestApp {
        init_logs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let extra = extra(listener.local_addr().unwrap().port());
        let extra = extra.as_str();
        let db = TestDb::create().await;
        let dir =
            std::env::temp_dir().join(format!("state-hub-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let token =
            secrecy::ExposeSecret::expose_secret(&hub_core::auth::tokens::generate()).to_owned();
        std::fs::write(dir.join("admin.token"), &token).unwrap();
        let cfg = config_for(&db, &dir, extra);
        let app = Application::build_with_listener(cfg, listener)
            .await
            .expect("state hub builds");
        let identity = app.identity();
        let state = app.state();
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown();
        let server = tokio::spawn(app.run_until_shutdown());
        TestApp {
            base,
            token,
            http: reqwest::Client::new(),
            db,
            shutdown,
            server: Some(server),
            identity,
            state,
            _dir: TempDir(dir),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// GET as the admin and parse the JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).await.json().await.unwrap()
    }

    /// The `/metrics` text of the hub at `base` (this one or a replica).
    pub async fn metrics_text(&self, base: &str) -> String {
        self.http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.post_as(&self.token.clone(), path, body).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a token and returns its secret.
    pub async fn token_for(&self, subject: &str, kind: &str, roles: &[&str]) -> String {
        let r = self
            .post("/api/v1/tokens", serde_json::json!({"name": format!("{subject} test"), "subject": subject, "kind": kind, "roles": roles}))
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Every event, oldest first, through the API.
    pub async fn all_events(&self) -> Vec<hub_core::api::events::Event> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(c) => format!("/api/v1/events?order=asc&limit=500&after={c}"),
                None => "/api/v1/events?order=asc&limit=500".to_owned(),
            };
            let page: hub_core::api::Page<hub_core::api::events::Event> =
                self.get_json(&path).await;
            out.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    }

    /// Verifies the whole chain through the API and returns the number of events.
    pub async fn verify_chain(&self) -> u64 {
        let mut v = hub_core::journal::Verifier::new();
        for e in self.all_events().await {
            v.push(&e).unwrap_or_else(|b| panic!("chain broken: {b}"));
        }
        v.checked()
    }

    pub async fn event_count(&self) -> i64 {
        let c = self.db.connect().await;
        c.query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get(0)
    }

    pub async fn stop(&mut self) {
        self.shutdown.run().await;
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

/// Asserts a problem+json response and returns it.
pub async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let ct = r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], status);
    assert!(v["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:hubplane:problem:"));
    v
}

/// A second state hub on the same database: a replica.
pub struct Replica {
    pub base: String,
    pub shutdown: Arc<Shutdown>,
    _dir: TempDir,
}

impl TestApp {
    pub async fn replica(&self) -> Replica {
        let dir = std::env::temp_dir().join(format!(
            "state-hub-replica-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("admin.token"), &self.token).unwrap();
        let cfg = config_for(&self.db, &dir, "");
        let app = Application::build(cfg).await.expect("replica builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown();
        tokio::spawn(app.run_until_shutdown());
        Replica {
            base,
            shutdown,
            _dir: TempDir(dir),
        }
    }
}

/// The types of the events a listing query returns, in order.
pub fn event_types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

/// A counter's value from a `/metrics` text, 0 when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A logged-in browser: a session created directly in the database (the OIDC flow itself is
/// tested in `login.rs` against the real stand-ins), sent as the session cookie. Redirects are
/// not followed, so tests see them.
#[allow(dead_code)] // each test module uses a different part of it
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
    pub username: String,
    pub session_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
}

pub const SESSION_COOKIE: &str = "__Host-state-hub-session";

impl TestApp {
    /// Logs `username` in as if through SSO, with directory `groups` (roles via the default
    /// mapping: hub_admins, hub_members, hub_viewers).
    pub async fn browser_as(&self, username: &str, groups: &[&str]) -> Browser {
        use hub_core::identity::{roles::RoleMapping, sessions, users};
        let db = self.db.connect().await;
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let roles = RoleMapping::default().roles_for(&groups);
        let who = users::LoginIdentity {
            issuer: "https://sso.test".into(),
            subject: format!("sub-{username}"),
            username: hub_core::auth::Subject::parse(username).unwrap(),
            display_name: Some(format!("{username} Example")),
            email: Some(format!("{username}@example.com")),
            groups,
        };
        let rec = users::record_login(&db, &who, &roles, &Default::default())
            .await
            .unwrap();
        let (session_id, secret) = sessions::create(
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
            cookie: format!("{SESSION_COOKIE}={secret}"),
            csrf: sessions::csrf_for(&secret),
            username: username.to_owned(),
            session_id,
            user_id: rec.user.id,
        }
    }
}

#[allow(dead_code)]
impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }
    /// GET and return the HTML, asserting 200.
    pub async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        let status = res.status();
        let body = res.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
    /// POSTs a form with this session's CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &self.csrf));
        self.post_form_raw(path, &all).await
    }
    /// POSTs a form exactly as given (no CSRF token added).
    pub async fn post_form_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("cookie", &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap()
    }
    /// Sends a JSON request with the session cookie and the X-CSRF-Token header.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}
