//! The `domain-hub` binary as an operator runs it: config checks with one line per problem,
//! systemd notification, and an ordered stop on SIGTERM that hands the outbox over first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The API suite's fresh-database fixture is the same here.
#[allow(dead_code)]
#[path = "api/fake_state_hub.rs"]
mod fake_state_hub;
#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[path = "../../../tests/support/standins.rs"]
mod standins;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_domain-hub");

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("domain-hub-proc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hub() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUB_")
            || k == "RUST_LOG"
            || k == "NOTIFY_SOCKET"
            || k == "DOMAIN_HUB_CONFIG"
            || k == "CREDENTIALS_DIRECTORY"
        {
            c.env_remove(k);
        }
    }
    c
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("manifests/{name}.json"))
}

#[test]
fn the_example_config_is_valid_once_its_files_exist() {
    let dir = temp_dir();
    let out = hub().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let example = dir.join("example.toml");
    std::fs::write(&example, &out.stdout).unwrap();
    let token = dir.join("state-hub.token");
    std::fs::write(&token, "hpt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG\n").unwrap();
    let ok = hub()
        .args(["--config", example.to_str().unwrap(), "configtest"])
        .env("HUB_HUB__MANIFEST_FILE", shipped("ops-hub"))
        .env("HUB_STATE_HUB__TOKEN_FILE", &token)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "config ok");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn configtest_lists_every_problem_of_the_config_and_the_manifest() {
    let dir = temp_dir();
    let manifest = dir.join("ops-hub.json");
    // Another hub's name, an undeclared scope on the action, a widget on a path nobody polls.
    let text = std::fs::read_to_string(shipped("ops-hub"))
        .unwrap()
        .replace("\"hub\": \"ops-hub\"", "\"hub\": \"dev-hub\"")
        .replace(
            "\"scope\": \"ops-hub:freeze.request\"",
            "\"scope\": \"ops-hub:freeze.now\"",
        )
        .replacen("\"path\": \"/status\"", "\"path\": \"/elsewhere\"", 1);
    std::fs::write(&manifest, text).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[hub]\nname = \"ops-hub\"\nkind = \"ops\"\nmanifest_file = \"{}\"\nheartbeat_seconds = 5\n\
             [state_hub]\nurl = \"http://state.example.org\"\ntoken_file = \"/nonexistent/state-hub.token\"\n\
             [server]\npublic_url = \"https://ops.example.org\"\n\
             [database]\nurl = \"postgres://u:secretpw@db/ops_hub\"\n\
             [identity.scopes]\n\"ops-hub:freeze.everything\" = [\"hub_admins\"]\n",
            manifest.display()
        ),
    )
    .unwrap();
    let out = hub()
        .args(["--config", cfg.to_str().unwrap(), "configtest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    for expected in [
        "config: hub.heartbeat_seconds: must be between 10 and 3600",
        "config: database.url: contains a password",
        "config: state_hub.url: plain http (http://state.example.org)",
        "config: state_hub.token_file: cannot read secret from file /nonexistent/state-hub.token",
        "config: hub.manifest_file: policy_scopes[0].name: must start with this hub's name",
        "config: hub.manifest_file: widget_types[0].path: not one of that capability's poll_paths",
        "config: hub.manifest_file: actions[0].scope: not declared in policy_scopes",
        "config: hub.manifest_file: hub: `dev-hub` is not this instance's hub.name `ops-hub`",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "missing `{expected}` in:\n{err}"
        );
    }
    assert_eq!(lines.len(), 8, "one line per problem:\n{err}");
    assert!(
        !err.contains("secretpw"),
        "secrets never reach error output"
    );

    // With a sound manifest, a scope the manifest does not declare is named.
    std::fs::write(&manifest, std::fs::read(shipped("ops-hub")).unwrap()).unwrap();
    let out = hub()
        .args(["--config", cfg.to_str().unwrap(), "configtest"])
        .env("HUB_HUB__HEARTBEAT_SECONDS", "30")
        .env("HUB_DEV_MODE", "true")
        .env("HUB_STATE_HUB__TOKEN_FILE", dir.join("missing.token"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("identity.scopes: `ops-hub:freeze.everything` is not one of the manifest's policy_scopes"),
        "{err}"
    );
    assert!(err.contains("missing.token"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_systemd_and_hands_the_outbox_over_before_stopping_on_sigterm() {
    let db = helpers::TestDb::create().await;
    let fake = fake_state_hub::FakeStateHub::start(helpers::STATE_HUB_TOKEN);
    let dir = temp_dir();
    let port = standins::free_port();
    let setup = helpers::Setup::ops(&fake, None);
    let cfg = dir.join("hub.toml");
    let text = helpers::config_text(&setup, &db.url, &dir)
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        // Long back-off, so what is pending at SIGTERM is handed over by the flush step.
        .replace("retry_max_seconds = 1", "retry_max_seconds = 60")
        + "[log]\nformat = \"json\"\n";
    std::fs::write(&cfg, text).unwrap();
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // systemd sets WATCHDOG_PID to the service's pid; `exec` keeps the shell's pid for the hub.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" serve",
            BIN,
            cfg.to_str().unwrap(),
        ])
        .env_clear()
        .envs(
            std::env::vars()
                .filter(|(k, _)| !k.starts_with("HUB_") && k != "RUST_LOG" && k != "NOTIFY_SOCKET"),
        )
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read notifications on a thread of their own, as systemd does: a notify socket nobody
    // drains fills up with watchdog pings and blocks the sender.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = sock.recv(&mut buf) {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
    }
    let notified = |what: &str| seen.lock().unwrap().iter().any(|m| m.contains(what));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(notified("READY=1") && notified("WATCHDOG=1")) {
        assert!(Instant::now() < deadline, "READY and WATCHDOG arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://127.0.0.1:{port}");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "READY is sent only once the hub serves"
    );

    // An event written while the state hub is away is handed over during the ordered stop.
    fake.stop().await;
    let conn = db.connect().await;
    let member = {
        use hub_core::auth::tokens::{generate, insert, NewToken};
        use hub_core::auth::{PrincipalKind, Role, Subject};
        let secret = generate();
        insert(
            &conn,
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
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/annotations"))
        .bearer_auth(&member)
        .json(
            &serde_json::json!({"category": "note", "target": "nodes", "text": "before the stop"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Failed attempts push the relay's next retry seconds away.
    tokio::time::sleep(Duration::from_secs(4)).await;
    fake.start_again();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "hub did not stop after SIGTERM:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        // The fake state hub runs on this runtime: wait without blocking it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    let steps = [
        "drain http requests",
        "stop pollers, relay and registrar",
        "flush outbox",
        "close database pools",
        "shutdown complete",
    ];
    let positions: Vec<usize> = steps
        .iter()
        .map(|s| log.find(s).unwrap_or_else(|| panic!("{s} missing:\n{log}")))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{log}"
    );
    assert!(
        !log.contains(helpers::STATE_HUB_TOKEN),
        "the token is never logged"
    );

    let delivered: bool = conn
        .query_one("SELECT bool_and(delivered_at IS NOT NULL) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert!(delivered, "the outbox was handed over before the stop");
    assert!(fake
        .events()
        .iter()
        .any(|(_, e)| e["detail"]["text"] == "before the stop"));
    assert!(notified("STOPPING=1"), "{:?}", seen.lock().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}
