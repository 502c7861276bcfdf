//! The outbox against the real state hub (the built `state-hub` binary on its own database): the
//! state hub crashes while people annotate, comes back, and the domain hub itself is killed
//! half-way through handing the backlog over; the journal ends up with every event once, in order.
//!
//! Needs what `e2e.rs` needs: the workspace built (`cargo build --workspace`), PostgreSQL at
//! `HUB_TEST_DATABASE_URL`; `HUB_BIN_DIR` names the directory holding `state-hub`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "api/fake_state_hub.rs"]
mod fake_state_hub;
#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[path = "../../../tests/support/standins.rs"]
mod standins;

use helpers::{config_text, eventually, shipped_manifest, temp_dir, Setup, TempDir, TestDb};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOTES: i64 = 200;

fn binary(name: &str) -> PathBuf {
    if name == "domain-hub" {
        return PathBuf::from(env!("CARGO_BIN_EXE_domain-hub"));
    }
    let mut dirs: Vec<PathBuf> = match std::env::var_os("HUB_BIN_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug")],
    };
    // With CARGO_TARGET_DIR set, the state hub was built next to this hub.
    dirs.extend(
        Path::new(env!("CARGO_BIN_EXE_domain-hub"))
            .parent()
            .map(Path::to_path_buf),
    );
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not built (looked in {dirs:?}); run `cargo build --workspace` first")
        })
}

/// One hub binary serving `config` on `port`, killed (SIGKILL) when dropped.
struct Process {
    child: Option<Child>,
    name: &'static str,
    config: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Process {
    fn new(name: &'static str, dir: &TempDir, text: &str) -> Process {
        let port = standins::free_port();
        let config = dir.0.join(format!("{name}.toml"));
        std::fs::write(&config, text.replace("{PORT}", &port.to_string())).unwrap();
        Process {
            child: None,
            name,
            config,
            port,
            log: dir.0.join(format!("{name}.log")),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts the process and waits until `/readyz` answers 200.
    async fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child =
            Command::new(binary(self.name))
                .args(["--config", self.config.to_str().unwrap(), "serve"])
                .env_clear()
                .envs(std::env::vars().filter(|(k, _)| {
                    !k.starts_with("HUB_") && k != "RUST_LOG" && k != "NOTIFY_SOCKET"
                }))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
        self.child = Some(child);
        let http = reqwest::Client::new();
        eventually(30, &format!("{} ready", self.name), || async {
            let r = http.get(self.url("/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    /// SIGKILL: no stop handler runs, nothing is flushed.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn call(token: &str, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method.clone(), &url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// `annotation.added` texts in the state hub's journal, in journal order.
async fn journal_notes(db: &tokio_postgres::Client) -> Vec<String> {
    db.query(
        "SELECT detail->>'text' FROM events WHERE event_type = 'annotation.added' ORDER BY seq",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_hub_crash_and_a_killed_relay_leave_every_event_in_the_journal_once() {
    let dir = temp_dir("faults-e2e");
    // The state hub.
    let state_db = TestDb::create().await;
    let admin =
        secrecy::ExposeSecret::expose_secret(&hub_core::auth::tokens::generate()).to_owned();
    std::fs::write(dir.0.join("admin.token"), &admin).unwrap();
    let identity = hub_core::sealed::generate_identity();
    std::fs::write(
        dir.0.join("age.key"),
        secrecy::ExposeSecret::expose_secret(&identity.file_text),
    )
    .unwrap();
    let mut state = Process::new(
        "state-hub",
        &dir,
        &format!(
            "dev_mode = true\n[server]\nlisten = \"127.0.0.1:{{PORT}}\"\npublic_url = \"http://127.0.0.1:{{PORT}}\"\n\
             shutdown_grace_seconds = 2\nworkers = 2\n[database]\nurl = \"{}\"\npool_size = 8\n\
             [auth]\nbootstrap_admin_token_file = \"{}\"\n\
             [secrets]\nage_identity_files = [\"{}\"]\n",
            state_db.url,
            dir.0.join("admin.token").display(),
            dir.0.join("age.key").display(),
        ),
    );
    state.run().await;
    let journal = state_db.connect().await;
    call(
        &admin,
        reqwest::Method::POST,
        state.url("/api/v1/hub-kinds"),
        Some(json!({"name": "ops", "description": "operations"})),
    )
    .await;
    let hub_token = call(
        &admin,
        reqwest::Method::POST,
        state.url("/api/v1/tokens"),
        Some(json!({"name": "ops-hub", "subject": "hub:ops-hub", "kind": "service", "roles": ["member"]})),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The domain hub, as a process on its own database.
    let hub_db = TestDb::create().await;
    let setup = Setup {
        name: "ops-hub",
        kind: "ops",
        manifest: shipped_manifest("ops-hub"),
        state_hub_url: state.url(""),
        state_hub_token: hub_token,
        cluster: None,
        extra: String::new(),
    };
    let text = config_text(&setup, &hub_db.url, &dir.0)
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:{PORT}\"");
    let mut hub = Process::new("domain-hub", &dir, &text);
    hub.run().await;
    let outbox = hub_db.connect().await;

    // The admin activates the hub's manifest, so its event types are known.
    let manifests = eventually(15, "manifest submitted", || async {
        let r = reqwest::Client::new()
            .get(state.url("/api/v1/hubs/ops-hub/manifests"))
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (!v.as_array()?.is_empty()).then_some(v)
    })
    .await;
    let id = manifests[0]["id"].as_str().unwrap().to_owned();
    call(
        &admin,
        reqwest::Method::POST,
        state.url(&format!("/api/v1/manifests/{id}/activate")),
        Some(json!({})),
    )
    .await;

    // The state hub crashes; people keep annotating.
    state.kill();
    let member = {
        use hub_core::auth::tokens::{generate, insert, NewToken};
        use hub_core::auth::{PrincipalKind, Role, Subject};
        let secret = generate();
        insert(
            &outbox,
            &NewToken {
                name: "bob".into(),
                subject: Subject::parse("bob").unwrap(),
                kind: PrincipalKind::Human,
                roles: [Role::Member].into(),
                scopes: Default::default(),
                expires_at: None,
            },
            &secret,
            "test",
        )
        .await
        .unwrap();
        secrecy::ExposeSecret::expose_secret(&secret).to_owned()
    };
    let http = reqwest::Client::new();
    for i in 1..=NOTES {
        let r = http
            .post(hub.url("/api/v1/annotations"))
            .bearer_auth(&member)
            .json(&json!({"category": "incident", "target": "deployments", "text": format!("note {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "annotation {i} while the state hub is down"
        );
    }
    let pending: i64 = outbox
        .query_one(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND rejected_at IS NULL
                AND event->>'event_type' = 'annotation.added'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, NOTES, "every note waits in the outbox");

    // The state hub comes back; the domain hub is killed half-way through the backlog.
    state.run().await;
    let started = Instant::now();
    let at_kill = loop {
        let n = journal_notes(&journal).await.len() as i64;
        if n >= NOTES / 4 {
            hub.kill();
            break journal_notes(&journal).await.len() as i64;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the drain never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(
        at_kill < NOTES,
        "the kill came before the end of the drain ({at_kill} of {NOTES} journaled)"
    );

    hub.run().await;
    eventually(60, "the outbox drains", || async {
        let left: i64 = outbox
            .query_one(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND rejected_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    let rejected: i64 = outbox
        .query_one(
            "SELECT count(*) FROM outbox WHERE rejected_at IS NOT NULL
                AND event->>'event_type' = 'annotation.added'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rejected, 0, "no note was set aside");
    let want: Vec<String> = (1..=NOTES).map(|i| format!("note {i}")).collect();
    assert_eq!(
        journal_notes(&journal).await,
        want,
        "every note journaled once, in the order written"
    );
    // Every delivered outbox row is one journal event: the keys the state hub remembers.
    let keys: i64 = journal
        .query_one(
            "SELECT count(*) FROM idempotency_keys WHERE principal = 'hub:ops-hub'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let delivered: i64 = outbox
        .query_one(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, delivered, "one idempotency record per delivered row");
}
