//! `hubctl capabilities` and `hubctl secret … --hub` as the platform team uses them: request a
//! capability, move it through review, seal its credential offline with the age CLI to the
//! hub's recipient, and rotate the hub's key.

use super::{run, str_of, words, Hub, Run, HUBCTL};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn secrets(files: &[&Path]) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    format!("[secrets]\nage_identity_files = [{}]\n", list.join(", "))
}

/// `hubctl secret keygen --out DIR/NAME`; returns the file and its recipient.
fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let out = run(Command::new(HUBCTL)
        .args(["secret", "keygen", "--out"])
        .arg(&path))
    .success();
    (path, out.stdout.trim().to_owned())
}

/// Runs `hubctl <line>` as `token_file` with `stdin` piped in.
fn ctl_with_stdin(hub: &Hub, token_file: &Path, line: &str, stdin: &[u8]) -> Run {
    let mut child = hub
        .hubctl(Some(token_file))
        .args(words(line))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `age -r RECIPIENT -a` of `plaintext`.
fn age_encrypt(recipient: &str, plaintext: &[u8]) -> String {
    let mut child = Command::new("age")
        .args(["-r", recipient, "-a"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the age CLI (Debian package `age`) is installed");
    child.stdin.take().unwrap().write_all(plaintext).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_capability_is_requested_reviewed_given_a_sealed_credential_and_its_key_rotated() {
    let scratch =
        std::env::temp_dir().join(format!("hubctl-cap-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).unwrap();
    let (old_key, old_recipient) = keygen(&scratch, "old.key");
    let mut hub = Hub::start_with(&secrets(&[&old_key]));
    let (alice, _) = hub.token_for("alice", "human", "member");
    let contract = hub.file(
        "contract.json",
        r#"{"openapi": "3.1.0", "info": {"title": "deployments", "version": "1"}, "paths": {}}"#,
    );
    let request = format!(
        "--output json capabilities request --name deployments --owning-service 'k3s inventory' \
         --base-url https://cluster.example.org/deployments --health-path /healthz \
         --contract-path /contract --contract {contract} --version 1.0.0"
    );

    // The hub names the bad field.
    let bad = request.replace("https://cluster.example.org", "http://cluster.example.org");
    let err = hub.ctl_as(&alice, &bad).fails_with(1);
    assert!(
        err.contains("base_url") && err.contains("https://"),
        "{err}"
    );
    let requested = hub.ctl_as(&alice, &request).success().json();
    assert_eq!(requested["status"], "requested");
    assert_eq!(requested["requested_by"], "alice");

    // Review: the admin accepts, the team builds, nobody completes without a credential.
    let err = hub
        .ctl_as(&alice, "capabilities transition deployments accepted")
        .fails_with(1);
    assert!(err.contains("registry.admin"), "{err}");
    hub.ctl("capabilities transition deployments accepted --note 'we build it'")
        .success();
    hub.ctl_as(&alice, "capabilities transition deployments in_progress")
        .success();
    hub.ctl_as(
        &alice,
        "capabilities transition deployments ready_for_review --if-match 3",
    )
    .success();
    let err = hub
        .ctl("capabilities transition deployments completed")
        .fails_with(1);
    assert!(err.contains("no credential"), "{err}");
    let usage = hub
        .ctl("capabilities transition deployments finished")
        .fails_with(2);
    assert!(usage.contains("not a capability status"), "{usage}");

    // The operator seals the credential offline to the hub's recipient, with the age CLI.
    let shown = hub.ctl("secret recipient --hub").success();
    assert_eq!(shown.stdout.trim(), old_recipient);
    let member = hub.ctl_as(&alice, "secret recipient --hub").fails_with(1);
    assert!(
        member.contains("403") || member.contains("Forbidden"),
        "{member}"
    );
    let token = "dep-token-from-age-7731";
    let sealed = hub.file(
        "deployments.age",
        &age_encrypt(&old_recipient, format!("{token}\n").as_bytes()),
    );
    let set = hub
        .ctl(&format!(
            "capabilities set-credential deployments --file {sealed}"
        ))
        .success();
    let old_id = hub_core::sealed::KeyId::of_recipient(&old_recipient).to_string();
    assert!(
        set.stdout.contains(&format!("sealed to key {old_id}")),
        "{}",
        set.stdout
    );
    assert!(!set.stdout.contains(token));
    let done = hub.json("capabilities transition deployments completed --note reviewed");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["credential_key_id"], old_id.as_str());

    // A second one gets its token from stdin, in clear text; the hub seals it.
    let nodes = request
        .replace("--name deployments", "--name nodes")
        .replace("/deployments ", "/nodes ");
    hub.ctl_as(&alice, &nodes).success();
    let set = ctl_with_stdin(
        &hub,
        &hub.admin_token,
        "--output json capabilities set-credential nodes",
        b"nodes-token-from-stdin-4410\n",
    )
    .success();
    assert!(
        !set.stdout.contains("nodes-token-from-stdin"),
        "{}",
        set.stdout
    );
    let empty = ctl_with_stdin(
        &hub,
        &hub.admin_token,
        "capabilities set-credential nodes",
        b"\n",
    );
    assert!(empty.fails_with(1).contains("empty"));

    let listed = hub.ctl("capabilities list").success().stdout;
    assert!(
        listed.contains("deployments") && listed.contains("completed"),
        "{listed}"
    );
    assert!(
        listed.contains("nodes") && listed.contains("requested"),
        "{listed}"
    );
    let callable = hub.json("capabilities callable");
    assert_eq!(callable["items"][0]["name"], "deployments");
    assert!(callable["items"][0]["credential"].is_null());
    let probes = hub.json("capabilities probes deployments --limit 5");
    assert_eq!(probes, Value::Array(vec![]));
    let shown = hub.ctl("capabilities show deployments").success().stdout;
    assert!(
        shown.contains("sealed to key") && !shown.contains(token),
        "{shown}"
    );
    let served = hub.json("capabilities contract deployments");
    assert_eq!(served["info"]["title"], "deployments");

    // Rotation: the new identity first, the old one behind it, restart, rotate, drop the old.
    let (new_key, new_recipient) = keygen(&scratch, "new.key");
    hub.extra = secrets(&[&new_key, &old_key]);
    hub.write_config();
    hub.restart();
    assert_eq!(
        hub.ctl("secret recipient --hub").success().stdout.trim(),
        new_recipient
    );
    let new_id = hub_core::sealed::KeyId::of_recipient(&new_recipient).to_string();
    let rotated = hub.ctl("secret rotate --hub").success().stdout;
    assert_eq!(
        rotated.trim(),
        format!("re-sealed to key {new_id}: 2, already current: 0")
    );
    let again = hub.json("secret rotate --hub");
    assert_eq!(again["resealed"], 0);
    assert_eq!(again["already_current"], 2);
    hub.extra = secrets(&[&new_key]);
    hub.write_config();
    hub.restart();
    let c = hub.json("capabilities show deployments");
    assert_eq!(str_of(&c["credential_key_id"]), new_id);

    // The offline forms are unchanged, and --hub does not mix with them.
    let usage = hub.ctl("secret rotate --hub -i x.key").fails_with(2);
    assert!(usage.contains("cannot be used with"), "{usage}");
    hub.ctl("secret recipient").fails_with(2);
    let _ = std::fs::remove_dir_all(&scratch);
}
