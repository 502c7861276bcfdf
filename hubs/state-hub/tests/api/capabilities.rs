//! The capability registry, as the platform team and hubs use it: a member requests an
//! interface, admins accept and review it, its credential is stored sealed to the hub's age
//! identity (never readable again through the API), hubs receive exactly what their active
//! manifest uses, and the state hub probes the real cluster stand-in over HTTPS for health and
//! contract drift, once per round across replicas.

use crate::helpers::{config_for, problem, TempDir, TestApp};
use crate::standins::ClusterStandin;
use hub_core::sealed::{Keyring, Sealed};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use state_hub::capabilities::probe::{self, ProbeReport};
use state_hub::startup::Application;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A scratch directory for identity files, removed at the end of the test.
fn scratch() -> TempDir {
    let dir = std::env::temp_dir().join(format!("cap-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A new age identity written to `dir/name`; returns its path and recipient.
fn identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let generated = hub_core::sealed::generate_identity();
    let path = dir.join(name);
    std::fs::write(&path, generated.file_text.expose_secret()).unwrap();
    (path, generated.recipient.as_str().to_owned())
}

fn secrets_toml(files: &[&Path]) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    format!("[secrets]\nage_identity_files = [{}]\n", list.join(", "))
}

/// `[capabilities]` for probing the cluster stand-in: its CA, loopback allowed, short time-outs,
/// and an interval long enough that only the test's own rounds run.
fn capabilities_toml(cluster: &ClusterStandin, interval: u64) -> String {
    format!(
        "[capabilities]\nca_file = \"{}\"\nallow_cidrs = [\"127.0.0.1/32\"]\nconnect_timeout_ms = 500\n\
         request_timeout_ms = 3000\nmax_retries = 0\nprobe_interval_seconds = {interval}\n",
        cluster.ca_file().display()
    )
}

fn request_body(name: &str, base_url: &str, contract: Value) -> Value {
    json!({
        "name": name, "owning_service": "k3s inventory", "base_url": base_url,
        "health_path": "/healthz", "contract_path": "/contract", "contract": contract,
        "version": "1.0.0"
    })
}

fn small_contract(title: &str) -> Value {
    json!({"openapi": "3.1.0", "info": {"title": title, "version": "1"}, "paths": {}})
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(m) = if_match {
        req = req.header("if-match", m);
    }
    req.send().await.unwrap()
}

async fn transition(app: &TestApp, token: &str, name: &str, to: &str) -> reqwest::Response {
    send(
        app,
        reqwest::Method::POST,
        token,
        &format!("/api/v1/capabilities/{name}/transition"),
        Some(json!({"to": to, "note": format!("moving to {to}")})),
        None,
    )
    .await
}

async fn set_credential(app: &TestApp, name: &str, credential: &str) -> reqwest::Response {
    send(
        app,
        reqwest::Method::PUT,
        &app.token,
        &format!("/api/v1/capabilities/{name}/credential"),
        Some(json!({ "credential": credential })),
        None,
    )
    .await
}

/// The platform team's whole path for one registration: requested by member `alice`,
/// accepted, built, reviewed and completed by the admin, with `credential` stored.
async fn completed(
    app: &TestApp,
    alice: &str,
    name: &str,
    base_url: &str,
    contract: Value,
    credential: &str,
) {
    let r = app
        .post_as(
            alice,
            "/api/v1/capabilities",
            request_body(name, base_url, contract),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for (token, to) in [
        (app.token.as_str(), "accepted"),
        (alice, "in_progress"),
        (alice, "ready_for_review"),
    ] {
        let r = transition(app, token, name, to).await;
        assert_eq!(r.status(), 200, "{to}: {}", r.text().await.unwrap());
    }
    let r = set_credential(app, name, credential).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = transition(app, &app.token, name, "completed").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn events_of(app: &TestApp, event_type: &str) -> Vec<hub_core::api::events::Event> {
    app.all_events()
        .await
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

/// Makes every completed registration due for a probe now (rounds claim only due ones).
async fn make_due(app: &TestApp) {
    app.db
        .connect()
        .await
        .execute("UPDATE capabilities SET next_probe_at = now()", &[])
        .await
        .unwrap();
}

async fn round(state: &state_hub::state::AppState) -> ProbeReport {
    tokio::time::timeout(Duration::from_secs(20), probe::run_once(state))
        .await
        .expect("a probe round ends within its time-outs")
        .unwrap()
}

/// Stops `app` and serves its database again from a new process with `extra` config, as an
/// operator's restart after editing the config does.
async fn restart(app: &mut TestApp, extra: &str) -> anyhow::Result<TempDir> {
    app.stop().await;
    let dir = scratch();
    std::fs::write(dir.0.join("admin.token"), &app.token).unwrap();
    let cfg = config_for(&app.db, &dir.0, extra);
    let built = Application::build(cfg).await?;
    app.base = format!("http://127.0.0.1:{}", built.port());
    app.state = built.state();
    app.identity = built.identity();
    app.shutdown = built.shutdown();
    app.server = Some(tokio::spawn(built.run_until_shutdown()));
    Ok(dir)
}

/// The stored columns of a registration's credential.
async fn stored_credential(app: &TestApp, name: &str) -> (String, String) {
    let row = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT credential_key_id, credential_sealed FROM capabilities WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn field_names(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_is_validated_field_by_field_and_its_contract_hashed_as_stored() {
    let app = TestApp::spawn().await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let good = request_body(
        "deployments",
        "https://cluster.example.org/deployments",
        small_contract("d"),
    );

    let cases: Vec<(&str, Value)> = vec![
        ("name", json!("Deploy Ments")),
        ("name", json!("callable")),
        ("name", json!("")),
        ("owning_service", json!("  ")),
        ("owning_service", json!("two\nlines")),
        ("base_url", json!("http://cluster.example.org/")),
        (
            "base_url",
            json!("https://user:hunter2@cluster.example.org/"),
        ),
        ("base_url", json!("https://cluster.example.org/?q=1")),
        ("base_url", json!("https://cluster.example.org/#f")),
        ("base_url", json!("not a url")),
        ("health_path", json!("healthz")),
        ("health_path", json!("//evil.example/")),
        ("health_path", json!("/a/../b")),
        ("contract_path", json!("/contract?x=1")),
        ("contract_path", json!("")),
        ("contract", json!(["an", "array"])),
        ("contract", json!("text")),
        ("contract", json!({"nul": "a\u{0000}b"})),
        ("version", json!("")),
        ("version", json!("1 0")),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        body[field] = value.clone();
        let p = problem(app.post_as(&alice, "/api/v1/capabilities", body).await, 422).await;
        assert_eq!(field_names(&p), [field], "{field} = {value}: {p}");
        assert!(!p.to_string().contains("hunter2"), "{p}");
    }
    // Every bad field at once.
    let all_bad = json!({"name": "X", "owning_service": "", "base_url": "ftp://x", "health_path": "h",
        "contract_path": "c", "contract": 1, "version": ""});
    let p = problem(
        app.post_as(&alice, "/api/v1/capabilities", all_bad).await,
        422,
    )
    .await;
    assert_eq!(field_names(&p).len(), 7, "{p}");
    // Unknown fields are refused too, before anything is stored.
    let mut extra = good.clone();
    extra["credential"] = json!("sneaky");
    assert_eq!(
        app.post_as(&alice, "/api/v1/capabilities", extra)
            .await
            .status(),
        400
    );
    let none: Value = app.get_json("/api/v1/capabilities").await;
    assert_eq!(none["items"], json!([]));

    // A good request: requested, hashed over the canonical bytes it serves back.
    let pretty = json!({"paths": {}, "openapi": "3.1.0", "info": {"version": "1", "title": "d"}});
    let mut body = good.clone();
    body["contract"] = pretty;
    let r = app.post_as(&alice, "/api/v1/capabilities", body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["etag"], "\"1\"");
    assert_eq!(r.headers()["location"], "/api/v1/capabilities/deployments");
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["status"], "requested");
    assert_eq!(c["health"], "unknown");
    assert_eq!(c["requested_by"], "alice");
    assert_eq!(c["credential_key_id"], Value::Null);
    let served = app.get("/api/v1/capabilities/deployments/contract").await;
    assert_eq!(served.status(), 200);
    let bytes = served.bytes().await.unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"info":{"title":"d","version":"1"},"openapi":"3.1.0","paths":{}}"#
    );
    use sha2::Digest;
    let sha = hub_core::journal::to_hex(&sha2::Sha256::digest(&bytes));
    assert_eq!(c["contract_sha256"], sha);

    // The name is taken now; viewers cannot request at all.
    problem(
        app.post_as(&alice, "/api/v1/capabilities", good.clone())
            .await,
        409,
    )
    .await;
    let viewer = app.token_for("victor", "human", &["viewer"]).await;
    problem(
        app.post_as(&viewer, "/api/v1/capabilities", good).await,
        403,
    )
    .await;
    let requested = events_of(&app, "capability.requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].author, "alice");
    assert_eq!(requested[0].detail["contract_sha256"], sha);
    // Viewers read.
    let listed: Value = serde_json::from_str(
        &app.get_as(&viewer, "/api/v1/capabilities?status=requested")
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(listed["items"][0]["name"], "deployments");
    problem(app.get("/api/v1/capabilities/nothing-here").await, 404).await;
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_lifecycle_takes_only_legal_steps_by_whoever_may_take_them() {
    let dir = scratch();
    let (key, _) = identity(&dir.0, "hub.key");
    let app = TestApp::spawn_with(&secrets_toml(&[&key])).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let bob = app.token_for("bob", "human", &["member"]).await;
    let carol = app.token_for("carol", "human", &["admin"]).await;
    let ops_hub = app.token_for("hub:ops-hub", "service", &["admin"]).await;
    let r = app
        .post_as(
            &carol,
            "/api/v1/capabilities",
            request_body("nodes", "https://c.example/nodes", small_contract("n")),
        )
        .await;
    assert_eq!(r.status(), 201);

    // Members cannot accept; illegal steps name the allowed ones.
    problem(transition(&app, &bob, "nodes", "accepted").await, 403).await;
    let p = problem(
        transition(&app, &app.token, "nodes", "completed").await,
        409,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Allowed next: accepted, rejected, withdrawn"),
        "{p}"
    );
    // A stale If-Match is refused before anything changes.
    let stale = send(
        &app,
        reqwest::Method::POST,
        &app.token,
        "/api/v1/capabilities/nodes/transition",
        Some(json!({"to": "accepted"})),
        Some("\"7\""),
    )
    .await;
    problem(stale, 412).await;
    let r = send(
        &app,
        reqwest::Method::POST,
        &app.token,
        "/api/v1/capabilities/nodes/transition",
        Some(json!({"to": "accepted", "note": "we will build it"})),
        Some("\"1\""),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    // Writers build it; a member cannot complete, nor can anyone without a credential set.
    assert_eq!(
        transition(&app, &bob, "nodes", "in_progress")
            .await
            .status(),
        200
    );
    assert_eq!(
        transition(&app, &alice, "nodes", "ready_for_review")
            .await
            .status(),
        200
    );
    problem(transition(&app, &bob, "nodes", "completed").await, 403).await;
    let p = problem(
        transition(&app, &app.token, "nodes", "completed").await,
        409,
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("no credential"),
        "{p}"
    );
    assert_eq!(
        set_credential(&app, "nodes", "nodes-token-1")
            .await
            .status(),
        200
    );
    // Two persons: the requester (an admin) cannot complete her own, nor can a hub.
    let p = problem(transition(&app, &carol, "nodes", "completed").await, 403).await;
    assert!(
        p["detail"].as_str().unwrap().contains("someone else"),
        "{p}"
    );
    problem(transition(&app, &ops_hub, "nodes", "completed").await, 403).await;
    let done: Value = transition(&app, &app.token, "nodes", "completed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    let p = problem(transition(&app, &app.token, "nodes", "accepted").await, 409).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Allowed next: withdrawn"),
        "{p}"
    );

    // Every step wrote its event with its note.
    for (kind, author) in [
        ("capability.accepted", "admin"),
        ("capability.in_progress", "bob"),
        ("capability.ready_for_review", "alice"),
        ("capability.completed", "admin"),
    ] {
        let evs = events_of(&app, kind).await;
        assert_eq!(evs.len(), 1, "{kind}");
        assert_eq!(evs[0].author, author, "{kind}");
        assert_eq!(evs[0].detail["capability"], "nodes");
    }
    assert_eq!(
        events_of(&app, "capability.accepted").await[0].detail["note"],
        "we will build it"
    );

    // Withdrawing: the requester or an admin, nobody else; then it is final.
    let r = app
        .post_as(
            &alice,
            "/api/v1/capabilities",
            request_body("costs", "https://c.example/costs", small_contract("c")),
        )
        .await;
    assert_eq!(r.status(), 201);
    problem(transition(&app, &bob, "costs", "withdrawn").await, 403).await;
    assert_eq!(
        transition(&app, &alice, "costs", "withdrawn")
            .await
            .status(),
        200
    );
    let p = problem(transition(&app, &app.token, "costs", "accepted").await, 409).await;
    assert!(
        p["detail"].as_str().unwrap().contains("none: it is final"),
        "{p}"
    );
    let p = problem(set_credential(&app, "costs", "late-token").await, 409).await;
    assert!(p["detail"].as_str().unwrap().contains("closed"), "{p}");
    // Rejection is for admins.
    let r = app
        .post_as(
            &alice,
            "/api/v1/capabilities",
            request_body("logs", "https://c.example/logs", small_contract("l")),
        )
        .await;
    assert_eq!(r.status(), 201);
    problem(transition(&app, &alice, "logs", "rejected").await, 403).await;
    assert_eq!(
        transition(&app, &app.token, "logs", "rejected")
            .await
            .status(),
        200
    );
    assert_eq!(events_of(&app, "capability.rejected").await.len(), 1);
    app.verify_chain().await;
}

// ---------------------------------------------------------------------------------------------
// Credentials and keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_credential_is_stored_only_sealed_and_never_returned() {
    let dir = scratch();
    let (key, recipient) = identity(&dir.0, "hub.key");
    let app = TestApp::spawn_with(&secrets_toml(&[&key])).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let secret = "cap-secret-6f1e2d3c4b5a";
    completed(
        &app,
        &alice,
        "deployments",
        "https://c.example/deployments",
        small_contract("d"),
        secret,
    )
    .await;

    // Only the sealed form is in the row, and the hub's keyring opens it.
    let (key_id, stored) = stored_credential(&app, "deployments").await;
    assert!(!stored.contains(secret));
    assert!(stored.starts_with("key-id: "), "{stored}");
    assert_eq!(
        key_id,
        hub_core::sealed::KeyId::of_recipient(&recipient).to_string()
    );
    let keyring = Keyring::load(std::slice::from_ref(&key)).unwrap();
    let opened = keyring
        .open(&Sealed::parse(stored.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(opened.expose_secret(), secret);

    // No answer carries it: the resource, the listing, the events, the admin's callable list,
    // the page.
    let c: Value = app.get_json("/api/v1/capabilities/deployments").await;
    assert_eq!(c["credential_key_id"], key_id);
    let admin_browser = app.browser_as("root", &["hub_admins"]).await;
    let texts = [
        app.get("/api/v1/capabilities/deployments")
            .await
            .text()
            .await
            .unwrap(),
        app.get("/api/v1/capabilities").await.text().await.unwrap(),
        app.get("/api/v1/events?limit=500")
            .await
            .text()
            .await
            .unwrap(),
        app.get("/api/v1/capabilities/callable")
            .await
            .text()
            .await
            .unwrap(),
        app.get("/api/v1/capabilities/deployments/probes")
            .await
            .text()
            .await
            .unwrap(),
        admin_browser.page("/capabilities/deployments").await,
    ];
    for t in &texts {
        assert!(!t.contains(secret), "{t}");
    }
    assert!(texts[5].contains("type=\"password\""));
    assert!(texts[5].contains(&key_id));
    let set = events_of(&app, "capability.credential_set").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].detail["key_id"], key_id);
    assert_eq!(set[0].detail["submitted_as"], "plaintext");
    let admin_list: Value = app.get_json("/api/v1/capabilities/callable").await;
    assert_eq!(admin_list["items"][0]["name"], "deployments");
    assert_eq!(admin_list["items"][0]["credential"], Value::Null);

    // Refusals do not echo what was sent.
    for (bad, why) in [
        ("spaces are not-a-token-77", "visible ASCII"),
        ("-----BEGIN AGE ENCRYPTED FILE-----\nbroken-secret-77\n-----END AGE ENCRYPTED FILE-----\n", "damaged"),
    ] {
        let p = problem(set_credential(&app, "deployments", bad).await, 422).await;
        assert!(p.to_string().contains(why), "{p}");
        assert!(!p.to_string().contains("-77"), "{p}");
    }
    // An age file for some other key does not open here.
    let stranger = hub_core::sealed::generate_identity().recipient;
    let foreign = hub_core::sealed::seal_to(
        &[stranger],
        &secrecy::SecretString::from("foreign-secret-77".to_owned()),
    )
    .unwrap();
    let p = problem(
        set_credential(&app, "deployments", &foreign.armored).await,
        422,
    )
    .await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not open"),
        "{p}"
    );
    // Only admins set credentials; the stored one is unchanged by all the refusals.
    let r = send(
        &app,
        reqwest::Method::PUT,
        &alice,
        "/api/v1/capabilities/deployments/credential",
        Some(json!({"credential": "member-token"})),
        None,
    )
    .await;
    problem(r, 403).await;
    assert_eq!(stored_credential(&app, "deployments").await.1, stored);
}

#[tokio::test]
async fn without_an_identity_no_credential_is_taken_and_the_hub_says_how_to_add_one() {
    let app = TestApp::spawn().await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let r = app
        .post_as(
            &alice,
            "/api/v1/capabilities",
            request_body("nodes", "https://c.example/nodes", small_contract("n")),
        )
        .await;
    assert_eq!(r.status(), 201);
    let p = problem(set_credential(&app, "nodes", "some-token").await, 409).await;
    assert!(
        p["detail"].as_str().unwrap().contains("age_identity_files"),
        "{p}"
    );
    let p = problem(app.get("/api/v1/secrets/recipient").await, 409).await;
    assert!(
        p["detail"].as_str().unwrap().contains("age_identity_files"),
        "{p}"
    );
}

#[tokio::test]
async fn a_credential_sealed_with_the_age_cli_to_the_hubs_recipient_is_accepted() {
    let dir = scratch();
    let (key, recipient) = identity(&dir.0, "hub.key");
    let app = TestApp::spawn_with(&secrets_toml(&[&key])).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let r = app
        .post_as(
            &alice,
            "/api/v1/capabilities",
            request_body("costs", "https://c.example/costs", small_contract("c")),
        )
        .await;
    assert_eq!(r.status(), 201);
    let member = problem(app.get_as(&alice, "/api/v1/secrets/recipient").await, 403).await;
    assert_eq!(member["status"], 403);
    let shown: Value = app.get_json("/api/v1/secrets/recipient").await;
    assert_eq!(shown["recipient"], recipient);

    // `echo token | age -r <recipient> -a`, as the runbook says.
    let mut child = std::process::Command::new("age")
        .args(["-r", shown["recipient"].as_str().unwrap(), "-a"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the age CLI (Debian package `age`) is installed");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"costs-token-from-age-cli\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let armored = String::from_utf8(out.stdout).unwrap();
    let r = set_credential(&app, "costs", &armored).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (key_id, stored) = stored_credential(&app, "costs").await;
    assert_eq!(key_id, shown["key_id"].as_str().unwrap());
    let keyring = Keyring::load(&[key]).unwrap();
    let opened = keyring
        .open(&Sealed::parse(stored.as_bytes()).unwrap())
        .unwrap();
    // The newline `echo` added is not part of the token.
    assert_eq!(opened.expose_secret(), "costs-token-from-age-cli");
    assert_eq!(
        events_of(&app, "capability.credential_set").await[0].detail["submitted_as"],
        "age"
    );
}

#[tokio::test]
async fn rotation_reseals_every_credential_from_the_old_identity_to_the_new_one() {
    let dir = scratch();
    let (old_key, _) = identity(&dir.0, "old.key");
    let (new_key, new_recipient) = identity(&dir.0, "new.key");
    let mut app = TestApp::spawn_with(&secrets_toml(&[&old_key])).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    for (name, token) in [("deployments", "dep-token-1"), ("nodes", "nodes-token-2")] {
        let r = app
            .post_as(
                &alice,
                "/api/v1/capabilities",
                request_body(
                    name,
                    &format!("https://c.example/{name}"),
                    small_contract(name),
                ),
            )
            .await;
        assert_eq!(r.status(), 201);
        assert_eq!(set_credential(&app, name, token).await.status(), 200);
    }
    let old_id = stored_credential(&app, "nodes").await.0;

    // Without any identity the hub refuses to start: the stored credentials would be useless.
    let refused = restart(&mut app, "").await;
    let why = format!("{:#}", refused.err().expect("the hub refuses to start"));
    assert!(why.contains("age_identity_files"), "{why}");

    // The new identity first, the old one behind it; then rotate.
    let _dir2 = restart(&mut app, &secrets_toml(&[&new_key, &old_key]))
        .await
        .unwrap();
    let shown: Value = app.get_json("/api/v1/secrets/recipient").await;
    assert_eq!(shown["recipient"], new_recipient);
    let new_id = shown["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    let report: Value = app
        .post("/api/v1/secrets/rotate", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        report,
        json!({"key_id": new_id, "resealed": 2, "already_current": 0, "failed": []})
    );
    let only_new = Keyring::load(std::slice::from_ref(&new_key)).unwrap();
    for (name, token) in [("deployments", "dep-token-1"), ("nodes", "nodes-token-2")] {
        let (key_id, stored) = stored_credential(&app, name).await;
        assert_eq!(key_id, new_id);
        let opened = only_new
            .open(&Sealed::parse(stored.as_bytes()).unwrap())
            .unwrap();
        assert_eq!(opened.expose_secret(), token);
    }
    let again: Value = app
        .post("/api/v1/secrets/rotate", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["resealed"], 0);
    assert_eq!(again["already_current"], 2);
    let rotated = events_of(&app, "secrets.rotated").await;
    assert_eq!(rotated.len(), 2);
    assert_eq!(rotated[0].detail["resealed"], 2);
    problem(
        app.post_as(&alice, "/api/v1/secrets/rotate", json!({}))
            .await,
        403,
    )
    .await;

    // The old identity can go now.
    let _dir3 = restart(&mut app, &secrets_toml(&[&new_key])).await.unwrap();
    let c: Value = app.get_json("/api/v1/capabilities/nodes").await;
    assert_eq!(c["credential_key_id"], new_id);
    app.verify_chain().await;
}

// ---------------------------------------------------------------------------------------------
// What hubs may call
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_hub_receives_only_the_capabilities_its_active_manifest_uses_with_credentials() {
    let dir = scratch();
    let (key, _) = identity(&dir.0, "hub.key");
    let app = TestApp::spawn_with(&secrets_toml(&[&key])).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    for (name, token) in [
        ("deployments", "dep-token-a1"),
        ("nodes", "nodes-token-b2"),
        ("costs", "costs-token-c3"),
    ] {
        completed(
            &app,
            &alice,
            name,
            &format!("https://c.example/{name}"),
            small_contract(name),
            token,
        )
        .await;
    }

    // ops-hub registers and its manifest, using `deployments` and `nodes`, is activated.
    assert_eq!(
        app.post(
            "/api/v1/hub-kinds",
            json!({"name": "ops", "description": "ops hubs"})
        )
        .await
        .status(),
        201
    );
    let hub = app.token_for("hub:ops-hub", "service", &["member"]).await;
    let r = send(&app, reqwest::Method::PUT, &hub, "/api/v1/hubs/ops-hub",
        Some(json!({"kind": "ops", "base_url": "https://ops.mgmt.example.org", "heartbeat_seconds": 30})), None).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let callable: Value = app
        .get_as(&hub, "/api/v1/capabilities/callable")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(callable["items"], json!([]), "no active manifest yet");
    let manifest = json!({
        "hub": "ops-hub", "kind": "ops", "version": "1.0.0", "description": "Ops",
        "capabilities": [
            {"name": "deployments", "poll_paths": ["/status"], "poll_seconds": 30},
            {"name": "nodes", "poll_paths": ["/status"], "poll_seconds": 60},
            {"name": "not-registered", "poll_paths": ["/status"], "poll_seconds": 60}
        ]
    });
    let r = app
        .post_as(&hub, "/api/v1/hubs/ops-hub/manifests", manifest)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(&format!("/api/v1/manifests/{id}/activate"), json!({}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let res = app.get_as(&hub, "/api/v1/capabilities/callable").await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let callable: Value = res.json().await.unwrap();
    assert_eq!(
        callable["items"],
        json!([
            {"name": "deployments", "base_url": "https://c.example/deployments", "health_path": "/healthz",
             "credential": "dep-token-a1", "contract_sha256": callable["items"][0]["contract_sha256"]},
            {"name": "nodes", "base_url": "https://c.example/nodes", "health_path": "/healthz",
             "credential": "nodes-token-b2", "contract_sha256": callable["items"][1]["contract_sha256"]},
        ])
    );
    // A withdrawn registration is no longer handed out.
    assert_eq!(
        transition(&app, &app.token, "nodes", "withdrawn")
            .await
            .status(),
        200
    );
    let callable: Value = app
        .get_as(&hub, "/api/v1/capabilities/callable")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = callable["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deployments"]);

    // Admins see what is callable without credentials; members and viewers get nothing.
    let admin: Value = app.get_json("/api/v1/capabilities/callable").await;
    let names: Vec<&str> = admin["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["costs", "deployments"]);
    assert!(admin["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["credential"].is_null()));
    problem(
        app.get_as(&alice, "/api/v1/capabilities/callable").await,
        403,
    )
    .await;
    let viewer = app.token_for("victor", "human", &["viewer"]).await;
    let p = problem(
        app.get_as(&viewer, "/api/v1/capabilities/callable").await,
        403,
    )
    .await;
    assert!(!p.to_string().contains("token-"), "{p}");
    // A human who happens to be called hub:… is not a hub.
    let fake = app
        .token_for("hub:ops-hub-admin", "human", &["member"])
        .await;
    problem(
        app.get_as(&fake, "/api/v1/capabilities/callable").await,
        403,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Probes against the cluster stand-in
// ---------------------------------------------------------------------------------------------

/// Registers the stand-in's capability `name` with its live contract, completed with the
/// cluster's token.
async fn register_cluster_capability(
    app: &TestApp,
    alice: &str,
    cluster: &ClusterStandin,
    name: &str,
) -> String {
    let contract: Value =
        serde_json::from_slice(&cluster.get(&format!("/{name}/contract")).await).unwrap();
    completed(
        app,
        alice,
        name,
        &cluster.base_url(name),
        contract,
        &cluster.token,
    )
    .await;
    let c: Value = app.get_json(&format!("/api/v1/capabilities/{name}")).await;
    c["contract_sha256"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn probes_follow_the_cluster_through_drift_outage_and_recovery() {
    let cluster = ClusterStandin::start();
    let dir = scratch();
    let (key, _) = identity(&dir.0, "hub.key");
    let extra = format!(
        "{}{}",
        capabilities_toml(&cluster, 3600),
        secrets_toml(&[&key])
    );
    let app = TestApp::spawn_with(&extra).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let registered = register_cluster_capability(&app, &alice, &cluster, "deployments").await;

    // Healthy, with the credential (the stand-in answers nothing without it).
    let report = round(&app.state).await;
    assert_eq!(report.probed.len(), 1);
    assert_eq!(report.probed[0].event, Some("capability.healthy"));
    let c: Value = app.get_json("/api/v1/capabilities/deployments").await;
    assert_eq!(c["health"], "healthy");
    assert!(c["last_probe_at"].is_string());
    let probes: Vec<Value> = app
        .get_json("/api/v1/capabilities/deployments/probes")
        .await;
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0]["status"], 200);
    assert_eq!(probes[0]["contract_sha256"], registered);
    assert!(probes[0]["latency_ms"].as_i64().unwrap() >= 0);
    // Claimed a moment ago, so not due again.
    assert!(round(&app.state).await.probed.is_empty());

    // The cluster changes its contract: drifted, and one warning with both hashes.
    let changed = cluster
        .control(
            "/_control/contract/deployments",
            json!({"openapi": "3.1.0", "info": {"title": "v2", "version": "2"}, "paths": {}}),
        )
        .await;
    make_due(&app).await;
    let report = round(&app.state).await;
    assert_eq!(report.probed[0].event, Some("capability.contract_drift"));
    make_due(&app).await;
    assert_eq!(
        round(&app.state).await.probed[0].event,
        None,
        "drift is raised once"
    );
    let drift = events_of(&app, "capability.contract_drift").await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].detail["severity"], "warning");
    assert_eq!(drift[0].detail["registered_sha256"], registered);
    let live = drift[0].detail["live_sha256"].as_str().unwrap().to_owned();
    assert_ne!(live, registered);
    // The stand-in hashes the bytes it serves; the hub the document's canonical form.
    assert_eq!(changed["capability"], "deployments");
    let c: Value = app.get_json("/api/v1/capabilities/deployments").await;
    assert_eq!(c["health"], "drifted");
    let viewer = app.browser_as("victor", &["hub_viewers"]).await;
    let page = viewer.page("/capabilities/deployments").await;
    assert!(
        page.contains("id=\"drift-warning\"") && page.contains(&live),
        "{page}"
    );

    // The cluster goes away: unhealthy, with the reason.
    cluster.stop();
    make_due(&app).await;
    let report = round(&app.state).await;
    assert_eq!(report.probed[0].event, Some("capability.unhealthy"));
    let c: Value = app.get_json("/api/v1/capabilities/deployments").await;
    assert_eq!(c["health"], "unhealthy");
    assert!(c["last_error"].as_str().unwrap().contains("connect"), "{c}");
    let down = events_of(&app, "capability.unhealthy").await;
    assert_eq!(down.len(), 1);
    assert!(!serde_json::to_string(&down[0])
        .unwrap()
        .contains(&cluster.token));

    // Back (with its original contract): recovered.
    cluster.start_again();
    make_due(&app).await;
    let report = round(&app.state).await;
    assert_eq!(report.probed[0].event, Some("capability.recovered"));
    assert_eq!(
        report.probed[0].health,
        hub_core::api::capabilities::ProbeHealth::Healthy
    );
    let probes: Vec<Value> = app
        .get_json("/api/v1/capabilities/deployments/probes?limit=3")
        .await;
    let healths: Vec<&str> = probes
        .iter()
        .map(|p| p["health"].as_str().unwrap())
        .collect();
    assert_eq!(healths, ["healthy", "unhealthy", "drifted"], "newest first");
    let all: Vec<Value> = app
        .get_json("/api/v1/capabilities/deployments/probes")
        .await;
    assert_eq!(all.len(), 5);
    problem(
        app.get("/api/v1/capabilities/deployments/probes?limit=0")
            .await,
        400,
    )
    .await;
    // Nothing the probes wrote holds the credential.
    let events = app
        .get("/api/v1/events?limit=500")
        .await
        .text()
        .await
        .unwrap();
    assert!(!events.contains(&cluster.token));

    // The history keeps the newest 500 probes.
    let db = app.db.connect().await;
    db.execute(
        "INSERT INTO capability_probes (capability_id, at, health) SELECT id, now() - interval '1 day', 'healthy' \
         FROM capabilities, generate_series(1, 600)",
        &[],
    )
    .await
    .unwrap();
    make_due(&app).await;
    assert_eq!(round(&app.state).await.probed.len(), 1);
    let kept: i64 = db
        .query_one("SELECT count(*) FROM capability_probes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 500);
    let newest: Vec<Value> = app
        .get_json("/api/v1/capabilities/deployments/probes?limit=1")
        .await;
    assert_eq!(newest[0]["status"], 200, "the fresh probe is kept");
    app.verify_chain().await;
}

#[tokio::test]
async fn two_replicas_on_one_database_probe_each_capability_once_per_round() {
    let cluster = ClusterStandin::start();
    let dir = scratch();
    let (key, _) = identity(&dir.0, "hub.key");
    let extra = format!(
        "{}{}",
        capabilities_toml(&cluster, 3600),
        secrets_toml(&[&key])
    );
    let mut app = TestApp::spawn_with(&extra).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    for name in ["deployments", "nodes", "costs"] {
        register_cluster_capability(&app, &alice, &cluster, name).await;
    }
    let replica_dir = scratch();
    std::fs::write(replica_dir.0.join("admin.token"), &app.token).unwrap();
    let replica = Application::build(config_for(&app.db, &replica_dir.0, &extra))
        .await
        .unwrap();
    let replica_state = replica.state();
    let replica_shutdown = replica.shutdown();
    let replica_server = tokio::spawn(replica.run_until_shutdown());

    for round_no in 1..=3i64 {
        make_due(&app).await;
        let (a, b) = tokio::join!(round(&app.state), round(&replica_state));
        let mut names: Vec<String> = a
            .probed
            .iter()
            .chain(&b.probed)
            .map(|o| o.capability.clone())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["costs", "deployments", "nodes"],
            "round {round_no}: each once"
        );
        let counts = app
            .db
            .connect()
            .await
            .query("SELECT c.name, count(p.id) FROM capabilities c LEFT JOIN capability_probes p ON p.capability_id = c.id GROUP BY c.name", &[])
            .await
            .unwrap();
        for row in counts {
            let (name, n): (String, i64) = (row.get(0), row.get(1));
            assert_eq!(n, round_no, "{name} after round {round_no}");
        }
    }
    // Health changed once per capability (unknown → healthy), not once per replica.
    assert_eq!(events_of(&app, "capability.healthy").await.len(), 3);
    replica_shutdown.run().await;
    let _ = replica_server.await;
    app.stop().await;
}

#[tokio::test]
async fn the_background_job_probes_on_its_own_and_stops_with_the_hub() {
    let cluster = ClusterStandin::start();
    let dir = scratch();
    let (key, _) = identity(&dir.0, "hub.key");
    let extra = format!(
        "{}{}",
        capabilities_toml(&cluster, 1),
        secrets_toml(&[&key])
    );
    let mut app = TestApp::spawn_with(&extra).await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    register_cluster_capability(&app, &alice, &cluster, "nodes").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let probes: Vec<Value> = app.get_json("/api/v1/capabilities/nodes/probes").await;
        if probes.len() >= 2 {
            assert!(
                probes.iter().all(|p| p["health"] == "healthy"),
                "{probes:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background probes: {probes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("the hub stops with its probe job");
    let count = |c: tokio_postgres::Client| async move {
        c.query_one("SELECT count(*) FROM capability_probes", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let after_stop = count(app.db.connect().await).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        count(app.db.connect().await).await,
        after_stop,
        "no probes after shutdown"
    );
}

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn capability_pages_offer_each_role_only_what_it_may_do() {
    let dir = scratch();
    let (key, _) = identity(&dir.0, "hub.key");
    let app = TestApp::spawn_with(&secrets_toml(&[&key])).await;
    let viewer = app.browser_as("victor", &["hub_viewers"]).await;
    let member = app.browser_as("alice", &["hub_members"]).await;
    let admin = app.browser_as("root", &["hub_admins"]).await;

    let list = viewer.page("/capabilities").await;
    assert!(list.contains(">Capabilities</a>"), "nav item");
    assert!(!list.contains("id=\"request\""));
    assert!(member
        .page("/capabilities")
        .await
        .contains("id=\"request\""));

    // A member requests through the form; a bad contract comes back with its message.
    let fields = [
        ("name", "nodes"),
        ("owning_service", "k3s inventory"),
        ("base_url", "https://c.example/nodes"),
        ("health_path", "/healthz"),
        ("contract_path", "/contract"),
        ("version", "1.0.0"),
    ];
    let mut bad: Vec<(&str, &str)> = fields.to_vec();
    bad.push(("contract", "{not json"));
    let res = member.post_form("/capabilities", &bad).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("contract is not JSON"));
    let mut good: Vec<(&str, &str)> = fields.to_vec();
    good.push(("contract", r#"{"openapi": "3.1.0"}"#));
    let res = member.post_form("/capabilities", &good).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/capabilities/nodes");

    // The requester may withdraw but not accept; the admin may accept.
    let page = member.page("/capabilities/nodes").await;
    assert!(
        page.contains("value=\"withdrawn\"") && !page.contains("value=\"accepted\""),
        "{page}"
    );
    assert!(!page.contains("id=\"credential\""));
    let page = admin.page("/capabilities/nodes").await;
    assert!(page.contains("value=\"accepted\""));
    let res = admin
        .post_form(
            "/capabilities/nodes/transition",
            &[("version", "1"), ("to", "accepted"), ("note", "ok")],
        )
        .await;
    assert_eq!(res.status(), 303);
    // A stale version is explained, not applied.
    let res = admin
        .post_form(
            "/capabilities/nodes/transition",
            &[("version", "1"), ("to", "rejected")],
        )
        .await;
    assert_eq!(res.status(), 412);
    // The admin's credential form takes the value and never shows it again.
    let res = admin
        .post_form(
            "/capabilities/nodes/credential",
            &[("version", "2"), ("credential", "page-secret-9911")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let page = admin.page("/capabilities/nodes").await;
    assert!(page.contains("sealed to key"), "{page}");
    assert!(!page.contains("page-secret-9911"));
    let res = admin
        .post_form(
            "/capabilities/nodes/credential",
            &[("version", "3"), ("credential", "bad secret 9922")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(!res.text().await.unwrap().contains("9922"));
    // Members cannot post credentials at all.
    let res = member
        .post_form(
            "/capabilities/nodes/credential",
            &[("version", "3"), ("credential", "x-token")],
        )
        .await;
    assert_eq!(res.status(), 403);
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn configtest_names_every_bad_capabilities_and_secrets_setting() {
    let dir = scratch();
    let garbage = dir.0.join("garbage.key");
    std::fs::write(&garbage, "AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    let config = dir.0.join("hub.toml");
    let base =
        "dev_mode = true\n[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\n\
                [database]\nurl = \"postgres://postgres@127.0.0.1/x\"\n";
    let configtest = |text: &str| {
        std::fs::write(&config, format!("{base}{text}")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_state-hub"))
            .args(["--config", config.to_str().unwrap(), "configtest"])
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = configtest(&format!(
        "[capabilities]\nprobe_interval_seconds = 0\nallow_cidrs = [\"0.0.0.0/0\"]\nca_file = \"/nonexistent/ca.pem\"\n\
         [secrets]\nage_identity_files = [\"/nonexistent/hub.key\", \"{}\"]\n",
        garbage.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "one line per problem:\n{err}");
    for wanted in [
        "capabilities.probe_interval_seconds",
        "capabilities.allow_cidrs: 0.0.0.0/0",
        "capabilities.ca_file",
        "secrets.age_identity_files: cannot read /nonexistent/hub.key",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(wanted)),
            "{wanted} missing:\n{err}"
        );
    }
    // A file that holds no usable identity is named with its line, never its content.
    let (code, err) = configtest(&format!(
        "[secrets]\nage_identity_files = [\"{}\"]\n",
        garbage.display()
    ));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("garbage.key, line 1") && !err.contains("NOTAKEY"),
        "{err}"
    );
    let (code, err) = configtest("[capabilities]\nprobe_interval = 5\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("probe_interval"), "{err}");
    let (key, _) = identity(&dir.0, "hub.key");
    let (code, err) = configtest(&format!(
        "[capabilities]\nprobe_interval_seconds = 10\nallow_cidrs = [\"10.20.0.0/16\"]\n{}",
        secrets_toml(&[&key])
    ));
    assert_eq!(code, Some(0), "{err}");
}
