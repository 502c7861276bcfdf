//! The `state-hub` binary as an operator runs it: config checks, systemd notification, signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The API suite's helpers: the fresh-database fixture is the same here.
#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_state-hub");

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("state-hub-proc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hub() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUB_")
            || k == "RUST_LOG"
            || k == "NOTIFY_SOCKET"
            || k == "STATE_HUB_CONFIG"
        {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn the_example_config_is_valid_and_configtest_lists_every_problem() {
    let dir = temp_dir();
    let out = hub().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let example = dir.join("example.toml");
    std::fs::write(&example, &out.stdout).unwrap();
    let ok = hub()
        .args(["--config", example.to_str().unwrap(), "configtest"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "config ok");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\npublic_url = \"http://hub.example.org\"\nbody_limit_bytes = 1\n[database]\nurl = \"postgres://u:secretpw@db/x\"\n\
         [auth]\nbootstrap_admin_token_file = \"/nonexistent/token\"\n",
    )
    .unwrap();
    let out = hub()
        .args(["--config", bad.to_str().unwrap(), "configtest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "one line per problem:\n{err}");
    assert!(err.contains("plain http"));
    assert!(err.contains("body_limit_bytes"));
    assert!(err.contains("password_file"));
    assert!(err.contains("/nonexistent/token"));
    assert!(
        !err.contains("secretpw"),
        "secrets never reach error output"
    );

    let out = hub()
        .args(["--config", example.to_str().unwrap(), "configtest"])
        .env("HUB_SERVER__LISTN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listn"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn notifies_systemd_pings_the_watchdog_and_stops_cleanly_on_sigterm() {
    let db = helpers::TestDb::create().await;
    let url = &db.url;

    let dir = temp_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("hub.toml");
    std::fs::write(
        &cfg,
        format!("dev_mode = true\n[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n[database]\nurl = \"{url}\"\n[log]\nformat = \"json\"\n"),
    )
    .unwrap();
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
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
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().any(|m| m.contains("WATCHDOG=1")))
    {
        let n = sock.recv(&mut buf).expect("notification arrives");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "READY is sent only once the hub serves"
    );

    // SAFETY-free signal delivery through the kill(1) utility, by pid.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hub did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("shutdown complete"), "{log}");
    while let Ok(n) = {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        sock.recv(&mut buf)
    } {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
    let _ = std::fs::remove_dir_all(dir);
}
