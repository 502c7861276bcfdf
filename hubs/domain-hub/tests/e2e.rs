//! ops-hub against the real state hub (the built `state-hub` binary, on its own database) and
//! the cluster stand-in: the platform team registers the kind, the hub's token and the
//! `deployments` capability and activates the hub's manifest; the hub polls, journals through
//! its outbox across a state hub crash, and runs `freeze` only once a decision is approved.
//!
//! Needs the workspace built (`cargo build --workspace`), PostgreSQL at `HUB_TEST_DATABASE_URL`
//! and python3/openssl for the stand-in. `HUB_BIN_DIR` names the directory holding `state-hub`
//! (default `target/debug`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "api/fake_state_hub.rs"]
mod fake_state_hub;
#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[path = "../../../tests/support/standins.rs"]
mod standins;

use helpers::{eventually, recorded_actions, shipped_manifest, Setup, TestApp, TestDb};
use serde_json::{json, Value};
use standins::ClusterStandin;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCOPE: &str = "ops-hub:freeze.request";

fn state_hub_binary() -> PathBuf {
    let dirs: Vec<PathBuf> = match std::env::var_os("HUB_BIN_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => {
            let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug")];
            // With CARGO_TARGET_DIR set, the state hub was built next to this hub.
            dirs.extend(
                Path::new(env!("CARGO_BIN_EXE_domain-hub"))
                    .parent()
                    .map(Path::to_path_buf),
            );
            dirs
        }
    };
    dirs.iter()
        .map(|d| d.join("state-hub"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the state-hub binary is not built (looked in {dirs:?}); run `cargo build \
                 --workspace` first, or point HUB_BIN_DIR at the directory holding it"
            )
        })
}

/// The state hub as a process, restartable on the same port and database.
struct StateHub {
    child: Option<Child>,
    port: u16,
    config: PathBuf,
    admin: String,
    http: reqwest::Client,
    _db: TestDb,
    _dir: helpers::TempDir,
}

impl StateHub {
    async fn start(cluster: &ClusterStandin) -> StateHub {
        let db = TestDb::create().await;
        let dir = helpers::temp_dir("state-hub-e2e");
        let admin =
            secrecy::ExposeSecret::expose_secret(&hub_core::auth::tokens::generate()).to_owned();
        std::fs::write(dir.0.join("admin.token"), &admin).unwrap();
        let identity = hub_core::sealed::generate_identity();
        std::fs::write(
            dir.0.join("age.key"),
            secrecy::ExposeSecret::expose_secret(&identity.file_text),
        )
        .unwrap();
        let port = standins::free_port();
        let config = dir.0.join("state-hub.toml");
        std::fs::write(
            &config,
            format!(
                "dev_mode = true\n[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
                 shutdown_grace_seconds = 2\nworkers = 2\n[database]\nurl = \"{}\"\npool_size = 8\n\
                 [auth]\nbootstrap_admin_token_file = \"{}\"\n\
                 [secrets]\nage_identity_files = [\"{}\"]\n\
                 [capabilities]\nca_file = \"{}\"\nallow_cidrs = [\"127.0.0.1/32\"]\nprobe_interval_seconds = 3600\n",
                db.url,
                dir.0.join("admin.token").display(),
                dir.0.join("age.key").display(),
                cluster.ca_file().display(),
            ),
        )
        .unwrap();
        let mut hub = StateHub {
            child: None,
            port,
            config,
            admin,
            http: reqwest::Client::new(),
            _db: db,
            _dir: dir,
        };
        hub.run().await;
        hub
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until it is ready.
    async fn run(&mut self) {
        let mut cmd = Command::new(state_hub_binary());
        for (k, _) in std::env::vars() {
            if k.starts_with("HUB_") || k == "RUST_LOG" || k == "NOTIFY_SOCKET" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["--config", self.config.to_str().unwrap(), "serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url())).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the state hub did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process (a crash: no shutdown steps).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url()))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        self.call(token, reqwest::Method::POST, path, Some(body))
            .await
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.call(token, reqwest::Method::GET, path, None).await
    }

    /// A token created by the admin.
    async fn token(&self, subject: &str, kind: &str, roles: &[&str]) -> String {
        let v = self
            .post(
                &self.admin,
                "/api/v1/tokens",
                json!({"name": format!("{subject} e2e"), "subject": subject, "kind": kind, "roles": roles}),
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    /// Events of one type, oldest first.
    async fn events(&self, event_type: &str) -> Vec<Value> {
        let page = self
            .get(
                &self.admin,
                &format!("/api/v1/events?order=asc&limit=500&event_type={event_type}"),
            )
            .await;
        page["items"].as_array().unwrap().clone()
    }
}

impl Drop for StateHub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The platform team's path for the `deployments` capability: requested by a member,
/// accepted, built, reviewed and completed by the admin, with the cluster's credential.
async fn register_deployments(hub: &StateHub, cluster: &ClusterStandin, alice: &str) {
    let contract: Value =
        serde_json::from_slice(&cluster.get("/deployments/contract").await).unwrap();
    hub.post(
        alice,
        "/api/v1/capabilities",
        json!({"name": "deployments", "owning_service": "k3s inventory",
               "base_url": cluster.base_url("deployments"), "health_path": "/healthz",
               "contract_path": "/contract", "contract": contract, "version": "1.0.0"}),
    )
    .await;
    for (token, to) in [
        (&hub.admin, "accepted"),
        (&alice.to_owned(), "in_progress"),
        (&alice.to_owned(), "ready_for_review"),
    ] {
        hub.post(
            token,
            "/api/v1/capabilities/deployments/transition",
            json!({"to": to}),
        )
        .await;
    }
    hub.call(
        &hub.admin,
        reqwest::Method::PUT,
        "/api/v1/capabilities/deployments/credential",
        Some(json!({"credential": cluster.token})),
    )
    .await;
    hub.post(
        &hub.admin,
        "/api/v1/capabilities/deployments/transition",
        json!({"to": "completed"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_hub_with_the_real_state_hub_journals_once_in_order_and_acts_only_on_approval() {
    let cluster = ClusterStandin::start();
    let mut hub = StateHub::start(&cluster).await;
    hub.post(
        &hub.admin,
        "/api/v1/hub-kinds",
        json!({"name": "ops", "description": "operations"}),
    )
    .await;
    let hub_token = hub.token("hub:ops-hub", "service", &["member"]).await;
    let alice = hub.token("alice", "human", &["member"]).await;

    let app = TestApp::spawn(Setup {
        name: "ops-hub",
        kind: "ops",
        manifest: shipped_manifest("ops-hub"),
        state_hub_url: hub.url(),
        state_hub_token: hub_token,
        cluster: Some(&cluster),
        extra: format!("[identity.scopes]\n\"{SCOPE}\" = [\"hub_admins\"]\n"),
    })
    .await;
    let viewer = app.token("carol", &["viewer"], &[]).await;

    // The hub registers itself and submits its manifest as a draft; the admin activates it.
    let manifests = eventually(15, "manifest submitted", || async {
        let r = hub
            .http
            .get(format!("{}/api/v1/hubs/ops-hub/manifests", hub.url()))
            .bearer_auth(&hub.admin)
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return None;
        }
        let v: Value = r.json().await.unwrap();
        (!v.as_array().unwrap().is_empty()).then_some(v)
    })
    .await;
    assert_eq!(manifests[0]["status"], "draft");
    let id = manifests[0]["id"].as_str().unwrap().to_owned();
    hub.post(
        &hub.admin,
        &format!("/api/v1/manifests/{id}/activate"),
        json!({}),
    )
    .await;
    register_deployments(&hub, &cluster, &alice).await;

    // Within a refresh the hub may call deployments, polls it, and the widget is fresh.
    eventually(20, "deployments fresh", || async {
        let w = app.widget(&viewer, "deployments").await;
        (w["freshness"]["state"] == "fresh").then_some(())
    })
    .await;
    let registered = hub.get(&hub.admin, "/api/v1/hubs/ops-hub").await;
    assert_eq!(registered["kind"], "ops");
    assert!(
        registered["last_seen"].is_string(),
        "heartbeats arrive: {registered}"
    );

    // The state hub crashes; annotations wait in the outbox and arrive once, in order.
    hub.kill();
    let bob = app.token("bob", &["member"], &[]).await;
    for i in 1..=3 {
        let r = app
            .post(
                &bob,
                "/api/v1/annotations",
                json!({"category": "incident", "target": "deployments", "text": format!("outage note {i}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        app.outbox().await.iter().any(|r| !r.2),
        "events wait while the state hub is down"
    );
    assert_eq!(
        app.widget(&viewer, "deployments").await["freshness"]["state"],
        "fresh",
        "polling goes on with the last callable list"
    );
    hub.run().await;
    eventually(20, "outbox drained", || async {
        app.outbox().await.iter().all(|r| r.2).then_some(())
    })
    .await;
    let notes: Vec<String> = hub
        .events("annotation.added")
        .await
        .iter()
        .map(|e| e["detail"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(notes, ["outage note 1", "outage note 2", "outage note 3"]);
    let annotated = &hub.events("annotation.added").await[0];
    assert_eq!(annotated["author"], "hub:ops-hub");
    assert_eq!(annotated["detail"]["actor"], "bob");

    // freeze needs a decision someone else approved.
    let freezer = app.token("alice", &["member"], &[SCOPE]).await;
    let decision = hub
        .post(
            &alice,
            "/api/v1/decisions",
            json!({"title": "Freeze shop during incident 42", "options": ["freeze", "wait"]}),
        )
        .await;
    let decision_id = decision["id"].as_str().unwrap().to_owned();
    hub.post(
        &alice,
        &format!("/api/v1/decisions/{decision_id}/escalate"),
        json!({"reason": "changes the cluster"}),
    )
    .await;
    let body = json!({"params": {"namespace": "shop", "reason": "incident 42"}, "decision_id": decision_id});
    let r = app
        .post(&freezer, "/api/v1/actions/freeze", body.clone())
        .await;
    let p = helpers::problem(r, 409).await;
    assert!(p["detail"].as_str().unwrap().contains("escalated"), "{p}");
    assert!(recorded_actions(&cluster).is_empty());

    hub.post(
        &hub.admin,
        &format!("/api/v1/decisions/{decision_id}/resolve"),
        json!({"choice": "freeze", "rationale": "the incident needs a stable shop"}),
    )
    .await;
    let r = app
        .post(&freezer, "/api/v1/actions/freeze", body.clone())
        .await;
    assert_eq!(r.status(), 202);
    let run: Value = r.json().await.unwrap();
    let r = app.post(&freezer, "/api/v1/actions/freeze", body).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["idempotency-replayed"], "true");
    assert_eq!(
        recorded_actions(&cluster).len(),
        1,
        "the cluster froze shop once"
    );
    let executed = eventually(15, "action.executed journaled", || async {
        let e = hub.events("action.executed").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0]["detail"]["run_id"], run["id"]);
    assert_eq!(executed[0]["detail"]["decision_id"], json!(decision_id));
}
