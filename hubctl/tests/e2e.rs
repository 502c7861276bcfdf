//! `hubctl` against a real state hub: each test starts the built `state-hub` binary on its own
//! fresh PostgreSQL database and drives it only through the `hubctl` binary, as an operator would.
//! Command lines are written as an operator types them: words split on spaces, `'…'` quotes.
//!
//! Needs the workspace built (`cargo build --workspace`) and a PostgreSQL superuser URL in
//! `HUB_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). `HUB_BIN_DIR`
//! names the directory holding `state-hub` (default `target/debug`).

// clippy.toml allows these in tests, but clippy only recognises `#[test]` functions as tests, not
// the fixture helpers of an integration-test crate; failing loudly is what a fixture is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const HUBCTL: &str = env!("CARGO_BIN_EXE_hubctl");

// ---------------------------------------------------------------------------------------------
// The stack: one database and one hub process per test.
// ---------------------------------------------------------------------------------------------

fn admin_database_url() -> String {
    std::env::var("HUB_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// The superuser URL with its database name replaced by `db`.
fn database_url(db: &str) -> String {
    let mut url = reqwest::Url::parse(&admin_database_url())
        .expect("HUB_TEST_DATABASE_URL must be a postgres:// URL");
    url.set_path(&format!("/{db}"));
    url.to_string()
}

/// Runs SQL as the superuser on the database at `url`.
fn sql(url: &str, statements: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to PostgreSQL at {url}: {e} (set HUB_TEST_DATABASE_URL)")
            });
        let conn = tokio::spawn(conn);
        client
            .batch_execute(statements)
            .await
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{statements}"));
        drop(client);
        let _ = conn.await;
    });
}

fn state_hub_binary() -> PathBuf {
    let dirs: Vec<PathBuf> = match std::env::var_os("HUB_BIN_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => {
            let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug")];
            // With CARGO_TARGET_DIR set, the hub was built next to hubctl.
            dirs.extend(Path::new(HUBCTL).parent().map(Path::to_path_buf));
            dirs
        }
    };
    dirs.iter()
        .map(|d| d.join("state-hub"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the state-hub binary is not built (looked in {dirs:?}); run `cargo build --workspace` \
                 first, or point HUB_BIN_DIR at the directory holding it"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Splits a command line into words: spaces separate, `'…'` quotes (no escapes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => out.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quote in `{line}`");
    out.extend(word);
    out
}

/// A running state hub with its own database, bootstrap admin token and scratch directory.
struct Hub {
    child: Option<Child>,
    url: String,
    port: u16,
    db: String,
    dir: PathBuf,
    config: PathBuf,
    admin_token: PathBuf,
    /// Config sections appended to the generated file (e.g. `[secrets]`).
    extra: String,
}

impl Hub {
    fn start() -> Hub {
        Hub::start_with("")
    }

    /// A hub whose config file ends with `extra`.
    fn start_with(extra: &str) -> Hub {
        let db = format!("hubctl_test_{}", uuid::Uuid::new_v4().simple());
        sql(&admin_database_url(), &format!("CREATE DATABASE {db}"));
        Hub::start_on(db, extra)
    }

    /// A hub on the database `db`, which exists already (and is dropped with the hub).
    fn start_on(db: String, extra: &str) -> Hub {
        let binary = state_hub_binary();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.tmp/hubctl-e2e")
            .join(&id);
        std::fs::create_dir_all(&dir).unwrap();

        // The bootstrap token comes from `hubctl token generate`, as the runbook says.
        let token = run(Command::new(HUBCTL).args(["token", "generate"]))
            .success()
            .stdout;
        let token = token.trim();
        assert!(
            token.starts_with("hpt_") && token.len() == 47,
            "unexpected shape of a generated token"
        );
        let admin_token = dir.join("admin.token");
        std::fs::write(&admin_token, format!("{token}\n")).unwrap();

        let mut hub = Hub {
            child: None,
            url: String::new(),
            port: 0,
            db,
            config: dir.join("state-hub.toml"),
            dir,
            admin_token,
            extra: extra.to_owned(),
        };
        // Another process may take the probed port before the hub binds it: try a few.
        for attempt in 1.. {
            hub.port = free_port();
            hub.url = format!("http://127.0.0.1:{}", hub.port);
            hub.write_config();
            match hub.spawn(&binary) {
                Ok(()) => break,
                Err(why) if attempt < 3 && why.contains("cannot listen") => continue,
                Err(why) => panic!("the state hub did not become ready: {why}"),
            }
        }
        hub
    }

    fn write_config(&self) {
        let text = format!(
            r#"dev_mode = true

[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
workers = 2
shutdown_grace_seconds = 1

[database]
url = "{db_url}"
pool_size = 4
health_pool_size = 1

[auth]
bootstrap_admin_token_file = "{token}"

[log]
filter = "warn"

{extra}"#,
            port = self.port,
            db_url = database_url(&self.db),
            token = self.admin_token.display(),
            extra = self.extra,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("state-hub.log")
    }

    /// Starts the hub process and waits for `/readyz`; on failure returns the hub's log.
    fn spawn(&mut self, binary: &Path) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("--config").arg(&self.config).arg("serve");
        // Only the config file configures this hub.
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("HUB_")
                || text == "CREDENTIALS_DIRECTORY"
                || text == "STATE_HUB_CONFIG"
            {
                cmd.env_remove(&name);
            }
        }
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if self.ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 20 s:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the hub process (by its pid, through the `Child` handle).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the hub abruptly and starts it again on the same port and database.
    fn restart(&mut self) {
        self.stop();
        self.spawn(&state_hub_binary())
            .unwrap_or_else(|why| panic!("the state hub did not come back: {why}"));
    }

    /// `hubctl` aimed at this hub; authenticated with `token_file` when given.
    fn hubctl(&self, token_file: Option<&Path>) -> Command {
        let mut cmd = Command::new(HUBCTL);
        for var in ["HUBCTL_TOKEN", "HUBCTL_TOKEN_FILE", "HUBCTL_URL"] {
            cmd.env_remove(var);
        }
        cmd.env("HUBCTL_URL", &self.url).stdin(Stdio::null());
        if let Some(t) = token_file {
            cmd.env("HUBCTL_TOKEN_FILE", t);
        }
        cmd
    }

    /// Runs `hubctl <line>` with the token in `token_file`.
    fn ctl_as(&self, token_file: &Path, line: &str) -> Run {
        run(self.hubctl(Some(token_file)).args(words(line)))
    }

    /// Runs `hubctl <line>` as the bootstrap admin.
    fn ctl(&self, line: &str) -> Run {
        self.ctl_as(&self.admin_token, line)
    }

    /// Runs `hubctl --output json <line>` as the bootstrap admin; it must succeed.
    fn json(&self, line: &str) -> Value {
        self.ctl(&format!("--output json {line}")).success().json()
    }

    /// Creates a token with `hubctl tokens create` and stores its secret in a file.
    fn token_for(&self, subject: &str, kind: &str, role: &str) -> (PathBuf, String) {
        let created = self.json(&format!(
            "tokens create --name '{subject} laptop' --subject {subject} --kind {kind} --role {role}"
        ));
        assert_eq!(created["info"]["subject"], subject);
        let path = self.dir.join(format!("{subject}.token"));
        std::fs::write(&path, str_of(&created["token"])).unwrap();
        (path, str_of(&created["info"]["id"]).to_owned())
    }

    /// The newest event's sequence number.
    fn head_seq(&self) -> i64 {
        self.json("events list --limit 1")["items"][0]["seq"]
            .as_i64()
            .expect("the journal has at least the bootstrap event")
    }

    /// A scratch file holding `content`, quoted for a command line.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        format!("'{}'", path.display())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
        sql(
            &admin_database_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
        if std::thread::panicking() {
            eprintln!(
                "state hub log and scratch files kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What a finished `hubctl` run left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run hubctl: {e}"));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "hubctl failed:\n{self:#?}");
        self
    }

    /// Asserts the exit code and returns stderr.
    fn fails_with(self, code: i32) -> String {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self:#?}");
        self.stderr
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn items(v: &Value) -> &Vec<Value> {
    v.as_array()
        .or_else(|| v["items"].as_array())
        .unwrap_or_else(|| panic!("expected a listing, got {v}"))
}

// ---------------------------------------------------------------------------------------------
// The stories.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_escalated_decision_is_resolved_by_someone_other_than_its_proposer() {
    let hub = Hub::start();
    let proposed = hub.json(
        "decisions propose --title 'Choose the backup target' --context 'Nightly dumps need a home' \
         --option s3 --option nfs",
    );
    let id = str_of(&proposed["id"]);
    assert_eq!(proposed["status"], "open");
    assert_eq!(proposed["proposed_by"], "admin");

    // A stale ETag is refused; the current one is accepted.
    let stale = hub
        .ctl(&format!(
            "decisions escalate {id} --reason 'costs money' --if-match 7"
        ))
        .fails_with(1);
    assert!(
        stale.starts_with("error: Precondition failed (412): "),
        "{stale}"
    );
    let escalated = hub.json(&format!(
        "decisions escalate {id} --reason 'costs money' --if-match 1"
    ));
    assert_eq!(escalated["status"], "escalated");
    assert_eq!(escalated["escalation_reason"], "costs money");

    // The proposer cannot approve their own escalated decision…
    let refused = hub
        .ctl(&format!(
            "decisions resolve {id} --choice s3 --rationale cheapest"
        ))
        .fails_with(1);
    assert!(refused.starts_with("error: Forbidden (403): "), "{refused}");
    assert!(refused.contains("approved by someone else"), "{refused}");

    // …bob, another person, can.
    let (bob, _) = hub.token_for("bob", "human", "member");
    let resolved = hub
        .ctl_as(
            &bob,
            &format!("-o json decisions resolve {id} --choice s3 --rationale cheapest"),
        )
        .success()
        .json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["decision_type"], "made");
    assert_eq!(resolved["outcome"]["decided_by"], "bob");
    assert_eq!(resolved["outcome"]["choice"], "s3");

    // A choice outside the options is a validation problem, its field on its own line.
    let other = hub.json("decisions propose --title 'Pick a colour' --option red");
    let invalid = hub
        .ctl(&format!(
            "decisions resolve {} --choice blue --rationale 'why not'",
            str_of(&other["id"])
        ))
        .fails_with(1);
    assert!(
        invalid.starts_with("error: Validation failed (422): "),
        "{invalid}"
    );
    assert!(
        invalid.contains("\n  choice: must be one of the options: red"),
        "{invalid}"
    );

    let listed = hub.json("decisions list --status resolved --all");
    assert_eq!(items(&listed).len(), 1);
    assert_eq!(listed["items"][0]["id"], id);
    let table = hub.ctl(&format!("decisions show {id}")).success().stdout;
    assert!(
        table.contains("bob at ") && table.contains("resolved"),
        "{table}"
    );
}

#[test]
fn a_revoked_token_fails_on_its_next_call() {
    let hub = Hub::start();
    let (bob, token_id) = hub.token_for("bob", "human", "viewer");
    let me = hub.ctl_as(&bob, "--output json whoami").success().json();
    assert_eq!(me["subject"], "bob");
    assert_eq!(me["kind"], "human");
    assert!(
        !items(&me["permissions"]).contains(&json!("events.write")),
        "a viewer cannot write: {me}"
    );

    let secret = std::fs::read_to_string(&bob).unwrap();
    let listed = hub.json("tokens list");
    assert!(
        items(&listed).iter().any(|t| t["id"] == token_id.as_str()),
        "{listed}"
    );
    assert!(
        !listed.to_string().contains(secret.trim()),
        "the listing leaks a secret"
    );
    let table = hub.ctl("tokens list").success().stdout;
    assert!(
        table.contains("bob laptop") && !table.contains(secret.trim()),
        "{table}"
    );

    let revoked = hub.json(&format!("tokens revoke {token_id}"));
    assert_eq!(revoked["active"], false);
    let denied = hub.ctl_as(&bob, "whoami").fails_with(1);
    assert!(
        denied.starts_with("error: Authentication required (401): "),
        "{denied}"
    );
    assert!(denied.contains("revoked"), "{denied}");

    assert!(
        !hub.json("tokens list").to_string().contains(&token_id),
        "revoked tokens are hidden"
    );
    assert!(hub
        .json("tokens list --include-revoked")
        .to_string()
        .contains(&token_id));
}

#[test]
fn work_is_planned_as_workstreams_workplans_and_tasks() {
    let hub = Hub::start();
    let ws = hub.json("workstreams create --slug backups --title Backups");
    assert_eq!(ws["slug"], "backups");
    let plan = hub.json("workplans create --workstream backups --title 'Nightly dumps'");
    let plan_id = str_of(&plan["id"]);
    assert_eq!(plan["workstream_id"], ws["id"]);
    assert_eq!(plan["status"], "active");

    let task = hub.json(&format!(
        "tasks create --workplan {plan_id} --title 'Write the dump timer' --assignee bob"
    ));
    let task_id = str_of(&task["id"]);
    assert_eq!(task["status"], "todo");
    assert_eq!(task["assignee"], "bob");

    // The `in_progress` alias is accepted and stored as `progress`.
    let moving = hub.json(&format!(
        "tasks update {task_id} --status in_progress --needs-human true"
    ));
    assert_eq!(moving["status"], "progress");
    assert_eq!(moving["needs_human"], true);
    let unassigned = hub.json(&format!("tasks update {task_id} --unassign --if-match 2"));
    assert_eq!(unassigned["assignee"], Value::Null);
    let nothing = hub.ctl(&format!("tasks update {task_id}")).fails_with(2);
    assert!(nothing.contains("required"), "{nothing}");
    let no_reason = hub
        .ctl(&format!("tasks update {task_id} --status blocked"))
        .fails_with(1);
    assert!(
        no_reason.contains("(422)") && no_reason.contains("blocking_reason"),
        "{no_reason}"
    );

    let listed = hub.json(&format!(
        "tasks list --workplan {plan_id} --status in_progress"
    ));
    assert_eq!(items(&listed).len(), 1);
    assert_eq!(listed[0]["id"], task_id);
    let plans = hub.json("workplans list --workstream backups --status active");
    assert_eq!(plans[0]["id"], plan_id);

    // An escalated decision linked to the task blocks it until the decision is settled.
    let decision =
        hub.json("decisions propose --title 'Which timer' --option systemd --option cron");
    let decision_id = str_of(&decision["id"]);
    let linked = hub.json(&format!("decisions link {decision_id} --task {task_id}"));
    assert_eq!(linked["task_ids"][0], task_id);
    hub.json(&format!(
        "decisions escalate {decision_id} --reason 'ops must agree'"
    ));
    let blocked = hub.json("tasks list --blocked");
    assert_eq!(blocked[0]["id"], task_id);
    assert_eq!(blocked[0]["blocked_by"][0], decision_id);
    let refused = hub
        .ctl(&format!("tasks update {task_id} --status done"))
        .fails_with(1);
    assert!(
        refused.contains("blocked by escalated decision"),
        "{refused}"
    );
    // Superseding an escalated decision is an approval too: not by its proposer…
    let supersede = format!(
        "decisions supersede {decision_id} --reason 'cron is gone' --title 'Which systemd timer' \
         --option daily --option hourly"
    );
    let own = hub.ctl(&supersede).fails_with(1);
    assert!(
        own.contains("(403)") && own.contains("someone else"),
        "{own}"
    );
    // …but by another person.
    let (carol, _) = hub.token_for("carol", "human", "member");
    let replacement = hub
        .ctl_as(&carol, &format!("--output json {supersede}"))
        .success()
        .json();
    assert_eq!(replacement["supersedes"], decision_id);
    let old = hub.json(&format!("decisions show {decision_id}"));
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], replacement["id"]);
    assert_eq!(hub.json("tasks list --blocked"), json!([]));

    hub.json(&format!("tasks update {task_id} --status done"));
    let finished = hub.json(&format!("workplans finish {plan_id}"));
    assert_eq!(finished["status"], "finished");
    let self_review = hub
        .ctl(&format!("workplans accept {plan_id}"))
        .fails_with(1);
    assert!(
        self_review.starts_with("error: Forbidden (403): "),
        "{self_review}"
    );

    let table = hub.ctl(&format!("tasks show {task_id}")).success().stdout;
    assert!(
        table.contains("Write the dump timer") && table.contains("done"),
        "{table}"
    );

    // Every change left its event, linked to the plan.
    let events = hub.json(&format!("events list --workplan {plan_id} --all --asc"));
    let types: Vec<&str> = items(&events)
        .iter()
        .map(|e| str_of(&e["event_type"]))
        .collect();
    assert_eq!(
        types,
        [
            "workplan.created",
            "task.created",
            "task.updated",
            "task.updated",
            "task.updated",
            "workplan.finished"
        ]
    );
}

#[test]
fn events_are_posted_with_detail_and_idempotency_keys() {
    let hub = Hub::start();
    let post =
        "events post --type deploy.started --summary 'Deploy 42' --idempotency-key deploy-42";
    let posted = hub.json(&format!("{post} --detail '{{\"build\": 42}}'"));
    assert_eq!(posted["detail"], json!({"build": 42}));
    assert_eq!(posted["author"], "admin");

    // Same key and body (the detail read from a file this time): the original event comes back.
    let detail = hub.file("detail.json", r#"{"build":42}"#);
    let replay = hub.ctl(&format!("{post} --detail @{detail}")).success();
    assert!(replay.stderr.contains("used before"), "{}", replay.stderr);
    let again = hub.json(&format!("{post} --detail @{detail}"));
    assert_eq!(again["seq"], posted["seq"]);
    assert_eq!(again["id"], posted["id"]);
    assert_eq!(
        Some(hub.head_seq()),
        posted["seq"].as_i64(),
        "nothing new was appended"
    );

    // Same key, another body: a conflict.
    let conflict = hub.ctl(post).fails_with(1);
    assert!(
        conflict.starts_with("error: Conflict (409): "),
        "{conflict}"
    );
    assert!(conflict.contains("deploy-42"), "{conflict}");

    assert_eq!(hub.json(&format!("events get {}", posted["seq"])), posted);
    assert_eq!(
        hub.json(&format!("events get {}", str_of(&posted["id"]))),
        posted
    );
    let table = hub
        .ctl(&format!("events get {}", posted["seq"]))
        .success()
        .stdout;
    assert!(
        table.contains("deploy.started") && table.contains("\"build\": 42"),
        "{table}"
    );

    let not_json = hub
        .ctl("events post --type a.b --summary s --detail {")
        .fails_with(1);
    assert!(
        not_json.contains("--detail is not valid JSON"),
        "{not_json}"
    );
    let bad_type = hub
        .ctl("events post --type Deploy --summary s")
        .fails_with(2);
    assert!(bad_type.contains("<noun>.<verb>"), "{bad_type}");
    let missing = hub.ctl("events get 999999").fails_with(1);
    assert!(missing.starts_with("error: Not found (404): "), "{missing}");
}

#[test]
fn events_list_all_follows_cursors_across_pages() {
    let hub = Hub::start();
    let events: Vec<Value> = (0..620)
        .map(|i| json!({"event_type": "load.generated", "summary": format!("load {i}"), "detail": {"i": i}}))
        .collect();
    let batch = hub.file("batch.json", &json!({ "events": events }).to_string());
    let appended = hub
        .ctl(&format!("events batch --file {batch}"))
        .success()
        .stdout;
    assert!(appended.starts_with("appended 620 events"), "{appended}");
    let bare = hub.file(
        "bare.json",
        r#"[{"event_type": "load.extra", "summary": "one more"}]"#,
    );
    let extra = hub.json(&format!("events batch --file {bare}"));
    assert_eq!(extra["events"][0]["event_type"], "load.extra");

    let one_page = hub.json("events list --noun load");
    assert_eq!(items(&one_page).len(), 50);
    assert!(one_page["next"].is_string());

    let all = hub.json("events list --noun load --all");
    let seqs: Vec<i64> = items(&all)
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 621);
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    assert_eq!(all["next"], Value::Null);

    let asc = hub.json("events list --type load.generated --all --asc --limit 200");
    let summaries: Vec<&str> = items(&asc).iter().map(|e| str_of(&e["summary"])).collect();
    assert_eq!(summaries.len(), 620);
    assert_eq!((summaries[0], summaries[619]), ("load 0", "load 619"));

    let future = hub.json("events list --since 2999-01-01T00:00:00+02:00");
    assert_eq!(future["items"], json!([]));
    let past = hub.json("events list --noun load --until 2999-01-01T00:00:00Z --limit 5");
    assert_eq!(items(&past).len(), 5);

    // The cursor printed for people resumes where their page ended.
    let first = hub.ctl("events list --noun load --limit 10").success();
    let cursor = first
        .stderr
        .split("--after ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cursor hint: {}", first.stderr));
    let next = hub.json(&format!(
        "events list --noun load --limit 10 --after {cursor}"
    ));
    assert_eq!(next["items"][0]["seq"].as_i64(), Some(seqs[10]));
}

/// Reads a child's stdout lines on a thread, so the test can wait with a time-out.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_event(lines: &mpsc::Receiver<String>, what: &str) -> Value {
    let line = lines
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("events tail printed nothing for {what}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("tail line is not JSON ({e}): {line}"))
}

#[test]
fn events_tail_follows_new_events_and_resumes_after_the_hub_restarts() {
    let mut hub = Hub::start();
    let start = hub.head_seq();
    let mut tail = hub
        .hubctl(Some(&hub.admin_token))
        .args(words(&format!(
            "--output json events tail --from-seq {start} --noun deploy"
        )))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut tail);

    hub.json("events post --type note.added --summary 'filtered out'");
    let posted = hub.json("events post --type deploy.started --summary 'live one'");
    let seen = next_event(&lines, "an event posted after it started");
    assert_eq!(seen["seq"], posted["seq"]);
    assert_eq!(seen["summary"], "live one");

    // The connection drops; the event appended as soon as the hub is back still arrives, once.
    hub.restart();
    let after = hub.json("events post --type deploy.finished --summary 'after the restart'");
    let seen = next_event(&lines, "an event posted after the restart");
    assert_eq!(seen, after);
    assert!(
        lines.recv_timeout(Duration::from_millis(300)).is_err(),
        "no duplicates"
    );

    let _ = tail.kill();
    let _ = tail.wait();
    let mut stderr = String::new();
    tail.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("reconnecting in"),
        "tail says it reconnects: {stderr}"
    );
    assert!(
        stderr.contains(&format!("resuming after event {}", posted["seq"])),
        "{stderr}"
    );
}

#[test]
fn audit_verify_proves_the_journal_and_names_a_rewritten_event() {
    let hub = Hub::start();
    for i in 0..4 {
        hub.json(&format!(
            "events post --type note.added --summary 'note {i}'"
        ));
    }
    let ok = hub.ctl("audit verify").success().stdout;
    assert!(ok.contains("journal verified: 5 events checked"), "{ok}");
    let report = hub.json("audit verify");
    assert_eq!(report["ok"], true);
    assert_eq!(report["events_checked"], 5);
    assert_eq!(report["head_hash"], report["hub_head"]["hash"]);

    sql(
        &database_url(&hub.db),
        "ALTER TABLE events DISABLE TRIGGER events_no_update; \
         UPDATE events SET summary = 'rewritten' WHERE seq = 3; \
         ALTER TABLE events ENABLE TRIGGER events_no_update;",
    );
    let failed = hub.ctl("audit verify");
    assert!(failed.stdout.is_empty(), "{failed:?}");
    let why = failed.fails_with(3);
    assert!(
        why.contains("event 3: content does not match its hash"),
        "{why}"
    );
}

#[test]
fn missing_tokens_unreachable_hubs_and_usage_errors_are_explained() {
    // Nothing listens here: every failure below happens before or at the first request.
    let url = format!("http://127.0.0.1:{}", free_port());
    let hubctl = |env: &[(&str, &str)], line: &str| {
        let mut cmd = Command::new(HUBCTL);
        cmd.env_remove("HUBCTL_TOKEN")
            .env_remove("HUBCTL_TOKEN_FILE")
            .env("HUBCTL_URL", &url)
            .envs(env.iter().copied());
        run(cmd.args(words(line)))
    };

    let why = hubctl(&[], "whoami").fails_with(1);
    assert!(why.starts_with("error: no API token: "), "{why}");
    assert!(
        why.contains("--token-file") && why.contains("HUBCTL_TOKEN"),
        "{why}"
    );

    let why = hubctl(
        &[("HUBCTL_TOKEN_FILE", "/nonexistent/hubctl.token")],
        "whoami",
    )
    .fails_with(1);
    assert!(why.contains("/nonexistent/hubctl.token"), "{why}");

    let secret = "hpt_not-a-real-token-but-long-enough-to-look-like-one";
    let why = hubctl(&[("HUBCTL_TOKEN", secret)], "events list").fails_with(1);
    assert!(
        why.starts_with(&format!(
            "error: cannot reach the hub at {url}/api/v1/events"
        )),
        "{why}"
    );
    assert!(!why.contains(secret), "the token is never printed: {why}");

    let usage = hubctl(&[], "events post --summary 'no type'").fails_with(2);
    assert!(usage.contains("--type"), "{usage}");
    let usage = hubctl(&[], &format!("--token {secret} whoami")).fails_with(2);
    assert!(usage.contains("unexpected argument '--token'"), "{usage}");
    assert!(
        !usage.contains(secret),
        "the token is never echoed: {usage}"
    );

    let completions = hubctl(&[], "completions bash").success().stdout;
    assert!(
        completions.contains("_hubctl()"),
        "bash completions define their function"
    );
    let generated = hubctl(&[], "--output json token generate").success().json();
    assert!(str_of(&generated["token"]).starts_with("hpt_"));
}

#[test]
fn command_lines_split_like_a_shell() {
    assert_eq!(words("a  'b c' '' d'e f'g"), ["a", "b c", "", "de fg"]);
}

/// A manifest for ops-hub, as a hub author writes it.
fn ops_manifest(version: &str) -> String {
    json!({
        "hub": "ops-hub", "kind": "ops", "version": version, "description": "Watches deployments",
        "event_types": [{"name": "deployment.frozen", "description": "A freeze began"}],
        "widget_types": [{"name": "deployments", "title": "Deployments", "capability": "deployments",
                          "path": "/deployments/status", "stale_after_seconds": 120, "render": "table",
                          "items_pointer": "/deployments"}],
        "annotation_categories": [{"name": "incident"}],
        "policy_scopes": [{"name": "ops-hub:freeze.request"}],
        "capabilities": [{"name": "deployments", "poll_paths": ["/deployments/status"], "poll_seconds": 30}],
        "actions": [{"name": "freeze", "capability": "deployments", "path": "/deployments/freeze",
                     "scope": "ops-hub:freeze.request", "requires_decision": true}]
    })
    .to_string()
}

/// What a domain hub does at start, with its own token: `PUT /api/v1/hubs/{name}`.
fn register_hub(hub: &Hub, token_file: &Path, name: &str, kind: &str) -> u16 {
    let token = std::fs::read_to_string(token_file).unwrap();
    let url = format!("{}/api/v1/hubs/{name}", hub.url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .put(url)
            .bearer_auth(token.trim())
            .json(&json!({"kind": kind, "base_url": "https://ops.mgmt.example.org", "heartbeat_seconds": 30}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

#[test]
fn a_hub_manifest_is_validated_submitted_activated_and_retired() {
    let hub = Hub::start();

    // Offline validation lists every problem with its field path and needs no token or hub.
    let mut broken: Value = serde_json::from_str(&ops_manifest("1.0")).unwrap();
    broken["event_types"][0]["name"] = json!("Frozen");
    broken["actions"][0]["scope"] = json!("ops-hub:undeclared");
    let bad = hub.file("broken.json", &broken.to_string());
    let why = run(hub
        .hubctl(None)
        .args(words(&format!("manifests validate {bad}"))))
    .fails_with(1);
    for line in [
        "3 problem(s):",
        "\n  version: must look like 1.2.3",
        "\n  event_types[0].name: ",
        "\n  actions[0].scope: not declared in policy_scopes",
    ] {
        assert!(why.contains(line), "{line} missing from:\n{why}");
    }
    let garbage = hub.file("garbage.json", "{\"hub\": \"ops-hub\", \"surprise\": 1}");
    let why = run(hub
        .hubctl(None)
        .args(words(&format!("manifests validate {garbage}"))))
    .fails_with(1);
    assert!(
        why.contains("not a manifest document") && why.contains("surprise"),
        "{why}"
    );
    let good = hub.file("ops-hub.json", &ops_manifest("1.0.0"));
    let ok = run(hub
        .hubctl(None)
        .args(words(&format!("manifests validate {good}"))))
    .success();
    assert!(
        ok.stdout.contains("manifest 1.0.0 of ops-hub is valid"),
        "{ok:?}"
    );

    // The hub registers once an admin added its kind, then submits with its own token.
    let (ops, _) = hub.token_for("hub:ops-hub", "service", "member");
    assert_eq!(register_hub(&hub, &ops, "ops-hub", "ops"), 422);
    let kind = hub.json("hubs kinds add ops --description 'Operations hubs'");
    assert_eq!(kind["name"], "ops");
    assert!(hub
        .ctl("hubs kinds list")
        .success()
        .stdout
        .contains("Operations hubs"));
    assert_eq!(register_hub(&hub, &ops, "ops-hub", "ops"), 201);
    let submitted = hub
        .ctl_as(&ops, &format!("-o json manifests submit {good}"))
        .success()
        .json();
    assert_eq!(submitted["status"], "draft");
    assert_eq!(submitted["submitted_by"], "hub:ops-hub");
    let id = str_of(&submitted["id"]);
    let listed = hub.ctl("manifests list ops-hub").success().stdout;
    assert!(listed.contains(id) && listed.contains("draft"), "{listed}");

    // Only an admin activates.
    let refused = hub
        .ctl_as(&ops, &format!("manifests activate {id}"))
        .fails_with(1);
    assert!(refused.starts_with("error: Forbidden (403): "), "{refused}");
    let active = hub.json(&format!("manifests activate {id} --if-match 1"));
    assert_eq!(active["status"], "active");
    let shown = hub.ctl(&format!("manifests show {id}")).success().stdout;
    assert!(
        shown.contains("deployment.frozen") && shown.contains("needs an approved decision"),
        "{shown}"
    );
    let hubs = hub.json("hubs list");
    assert_eq!(hubs[0]["name"], "ops-hub");
    assert_eq!(hubs[0]["active_manifest"], "1.0.0");
    assert_eq!(hubs[0]["health"], "unknown");
    let table = hub.ctl("hubs show ops-hub").success().stdout;
    assert!(
        table.contains("1.0.0") && table.contains("unknown"),
        "{table}"
    );

    let stale = hub
        .ctl(&format!("manifests retire {id} --if-match 9"))
        .fails_with(1);
    assert!(
        stale.starts_with("error: Precondition failed (412): "),
        "{stale}"
    );
    let retired = hub.json(&format!("manifests retire {id}"));
    assert_eq!(retired["status"], "retired");
    assert_eq!(
        hub.json("hubs show ops-hub")["active_manifest"],
        Value::Null
    );
}

#[path = "e2e/capabilities.rs"]
mod capabilities;
#[path = "e2e/migrate.rs"]
mod migrate;
#[path = "e2e/open_decisions.rs"]
mod open_decisions;
