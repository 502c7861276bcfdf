//! The hub registry, as hubs and admins use it: kinds an admin adds, hubs that register and
//! heartbeat with their own tokens, manifests that are validated, reviewed, activated and retired,
//! and the type registries activation fills.

use crate::helpers::{problem, TestApp};
use serde_json::{json, Value};

/// A sound manifest for `hub` of `kind` declaring the event type `event`; its other names carry
/// the hub's name, so two hubs' manifests only collide where a test means them to.
fn manifest(hub: &str, kind: &str, version: &str, event: &str) -> Value {
    json!({
        "hub": hub, "kind": kind, "version": version, "description": "Watches deployments",
        "event_types": [{"name": event, "description": "Something happened"}],
        "widget_types": [{"name": "deployments", "title": "Deployments", "capability": "deployments",
                          "path": "/deployments/status", "stale_after_seconds": 120, "render": "table",
                          "items_pointer": "/deployments"}],
        "annotation_categories": [{"name": "incident", "description": "An incident note"}],
        "policy_scopes": [{"name": format!("{hub}:freeze.request"), "description": "Ask for a freeze"}],
        "capabilities": [{"name": "deployments", "poll_paths": ["/deployments/status"], "poll_seconds": 30}],
        "actions": [{"name": "freeze", "description": "Freeze deploys", "capability": "deployments",
                     "path": "/deployments/freeze", "scope": format!("{hub}:freeze.request"), "requires_decision": true}]
    })
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

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    send(app, reqwest::Method::PUT, token, path, Some(body), None).await
}

fn registration(kind: &str) -> Value {
    json!({"kind": kind, "base_url": "https://ops.mgmt.example.org", "heartbeat_seconds": 30})
}

async fn add_kind(app: &TestApp, name: &str) {
    let r = app
        .post(
            "/api/v1/hub-kinds",
            json!({"name": name, "description": format!("{name} hubs")}),
        )
        .await;
    assert_eq!(r.status(), 201);
}

/// Adds the kind, makes the hub's own token and registers the hub with it; returns the token.
async fn registered_hub(app: &TestApp, hub: &str, kind: &str) -> String {
    if app
        .get("/api/v1/hub-kinds")
        .await
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .iter()
        .all(|k| k["name"] != kind)
    {
        add_kind(app, kind).await;
    }
    let token = app
        .token_for(&format!("hub:{hub}"), "service", &["member"])
        .await;
    let r = put(
        app,
        &token,
        &format!("/api/v1/hubs/{hub}"),
        registration(kind),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    token
}

async fn submit(app: &TestApp, token: &str, hub: &str, doc: Value) -> reqwest::Response {
    app.post_as(token, &format!("/api/v1/hubs/{hub}/manifests"), doc)
        .await
}

/// Submits a manifest with the hub's token and activates it as the admin; returns its id.
async fn active_manifest(app: &TestApp, token: &str, hub: &str, doc: Value) -> String {
    let r = submit(app, token, hub, doc).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(&format!("/api/v1/manifests/{id}/activate"), json!({}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    id
}

async fn count_events(app: &TestApp, event_type: &str) -> usize {
    app.all_events()
        .await
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

async fn types(app: &TestApp) -> Vec<(String, String, String, String)> {
    let list: Vec<Value> = app.get_json("/api/v1/types").await;
    list.iter()
        .map(|t| {
            (
                t["registry"].as_str().unwrap().to_owned(),
                t["name"].as_str().unwrap().to_owned(),
                t["hub"].as_str().unwrap().to_owned(),
                t["manifest_version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn fields(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_hub_registers_only_with_a_kind_an_admin_added() {
    let app = TestApp::spawn().await;
    let hub = app.token_for("hub:ops-hub", "service", &["member"]).await;

    let p = problem(
        put(&app, &hub, "/api/v1/hubs/ops-hub", registration("ops")).await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["kind"]);
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("an admin must add it"),
        "{p}"
    );
    let hubs: Vec<Value> = app.get_json("/api/v1/hubs").await;
    assert!(hubs.is_empty());

    // Only admins add kinds; the same kind again is a no-op, a different one a conflict.
    problem(
        app.post_as(&hub, "/api/v1/hub-kinds", json!({"name": "ops"}))
            .await,
        403,
    )
    .await;
    add_kind(&app, "ops").await;
    let again = app
        .post(
            "/api/v1/hub-kinds",
            json!({"name": "ops", "description": "ops hubs"}),
        )
        .await;
    assert_eq!(again.status(), 200);
    problem(
        app.post(
            "/api/v1/hub-kinds",
            json!({"name": "ops", "description": "other"}),
        )
        .await,
        409,
    )
    .await;
    let p = problem(
        app.post("/api/v1/hub-kinds", json!({"name": "Ops Hub"}))
            .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["name"]);
    assert_eq!(count_events(&app, "hub_kind.created").await, 1);

    // Every problem of a registration at once.
    let p = problem(
        put(
            &app,
            &hub,
            "/api/v1/hubs/ops-hub",
            json!({"kind": "nope", "base_url": "http://ops.example.org", "heartbeat_seconds": 1}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["base_url", "heartbeat_seconds", "kind"]);

    let r = put(&app, &hub, "/api/v1/hubs/ops-hub", registration("ops")).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/api/v1/hubs/ops-hub");
    assert_eq!(r.headers()["etag"], "\"1\"");
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["health"], "unknown");
    assert_eq!(h["last_seen"], Value::Null);
    assert_eq!(h["base_url"], "https://ops.mgmt.example.org/");

    // Registering again unchanged (every start of the hub) writes nothing.
    let r = put(&app, &hub, "/api/v1/hubs/ops-hub", registration("ops")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let changed =
        json!({"kind": "ops", "base_url": "https://ops.mgmt.example.org", "heartbeat_seconds": 60});
    let stale = send(
        &app,
        reqwest::Method::PUT,
        &hub,
        "/api/v1/hubs/ops-hub",
        Some(changed.clone()),
        Some("\"7\""),
    )
    .await;
    problem(stale, 412).await;
    let r = send(
        &app,
        reqwest::Method::PUT,
        &hub,
        "/api/v1/hubs/ops-hub",
        Some(changed),
        Some("\"1\""),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["heartbeat_seconds"], 60);
    assert_eq!(count_events(&app, "hub.registered").await, 1);
    assert_eq!(count_events(&app, "hub.updated").await, 1);
    let hubs: Vec<Value> = app.get_json("/api/v1/hubs").await;
    assert_eq!(hubs.len(), 1);
    app.verify_chain().await;
}

#[tokio::test]
async fn a_hub_token_speaks_only_for_its_own_hub() {
    let app = TestApp::spawn().await;
    let ops = registered_hub(&app, "ops-hub", "ops").await;
    let dev = registered_hub(&app, "dev-hub", "dev").await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let before = app.event_count().await;

    for token in [&dev, &alice] {
        let p = problem(
            put(&app, token, "/api/v1/hubs/ops-hub", registration("dev")).await,
            403,
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("hub:ops-hub"), "{p}");
        problem(
            app.post_as(
                token,
                "/api/v1/hubs/ops-hub/heartbeat",
                json!({"status": "critical", "detail": "forged"}),
            )
            .await,
            403,
        )
        .await;
        problem(
            submit(
                &app,
                token,
                "ops-hub",
                manifest("ops-hub", "ops", "1.0.0", "deployment.frozen"),
            )
            .await,
            403,
        )
        .await;
    }
    assert_eq!(
        app.event_count().await,
        before,
        "a refused request wrote an event"
    );
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["health"], "unknown");
    assert_eq!(h["kind"], "ops");
    let listed: Vec<Value> = app.get_json("/api/v1/hubs/ops-hub/manifests").await;
    assert!(listed.is_empty());

    // The hub itself and an admin may.
    let r = app
        .post_as(
            &ops,
            "/api/v1/hubs/ops-hub/heartbeat",
            json!({"status": "passing"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .post(
            "/api/v1/hubs/ops-hub/heartbeat",
            json!({"status": "passing"}),
        )
        .await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn heartbeats_set_health_and_late_ones_downgrade_it() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let beat = |status: &'static str, detail: Option<&'static str>| {
        let hub = hub.clone();
        let app = &app;
        async move {
            let r = app
                .post_as(
                    &hub,
                    "/api/v1/hubs/ops-hub/heartbeat",
                    json!({"status": status, "detail": detail}),
                )
                .await;
            assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
        }
    };

    // Ten heartbeats with the same status: one change (unknown → passing), one event.
    for _ in 0..10 {
        beat("passing", None).await;
    }
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["health"], "passing");
    assert!(h["last_seen"].is_string());
    assert_eq!(count_events(&app, "hub.health_changed").await, 1);

    beat("warning", Some("cluster unreachable since 12:03")).await;
    beat("warning", Some("cluster unreachable since 12:03")).await;
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["health"], "warning");
    assert_eq!(h["detail"], "cluster unreachable since 12:03");
    let changes: Vec<_> = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "hub.health_changed")
        .collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].detail["from"], "passing");
    assert_eq!(changes[1].detail["to"], "warning");
    assert_eq!(changes[1].author, "hub:ops-hub");

    beat("passing", None).await;
    assert_eq!(count_events(&app, "hub.health_changed").await, 3);

    // Silence: older than 3 intervals (30 s) is at least warning, older than 10 critical.
    let db = app.db.connect().await;
    let silent_for = |seconds: f64| {
        let db = &db;
        async move {
            db.execute(
                "UPDATE hubs SET last_seen = now() - make_interval(secs => $1) WHERE name = 'ops-hub'",
                &[&seconds],
            )
            .await
            .unwrap();
        }
    };
    silent_for(60.0).await;
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["health"], "passing");
    silent_for(4.0 * 30.0).await;
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["health"], "warning");
    silent_for(11.0 * 30.0).await;
    let hubs: Vec<Value> = app.get_json("/api/v1/hubs").await;
    assert_eq!(hubs[0]["health"], "critical");
    // Judged at read time: the journal saw no change, the hub never said so.
    assert_eq!(count_events(&app, "hub.health_changed").await, 3);

    // The next heartbeat brings it back.
    beat("passing", None).await;
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["health"], "passing");
    assert_eq!(h["detail"], Value::Null);
    assert_eq!(count_events(&app, "hub.health_changed").await, 3);

    let p = problem(
        app.post_as(
            &hub,
            "/api/v1/hubs/ops-hub/heartbeat",
            json!({"status": "unknown"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["status"]);
    problem(
        app.post(
            "/api/v1/hubs/nobody/heartbeat",
            json!({"status": "passing"}),
        )
        .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn manifest_validation_reports_every_problem_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let mut bad = manifest("dev-hub", "dev", "1.0", "Deployment.Frozen");
    bad["actions"][0]["scope"] = json!("dev-hub:undeclared");
    bad["widget_types"][0]["path"] = json!("/elsewhere");
    // An admin may submit for any hub; the document must still name the hub it is for.
    for token in [hub.as_str(), app.token.as_str()] {
        let p = problem(submit(&app, token, "ops-hub", bad.clone()).await, 422).await;
        assert_eq!(
            fields(&p),
            [
                "version",
                "event_types[0].name",
                "widget_types[0].path",
                "actions[0].scope",
                "hub",
                "kind"
            ]
        );
    }
    let listed: Vec<Value> = app.get_json("/api/v1/hubs/ops-hub/manifests").await;
    assert!(listed.is_empty());
    assert_eq!(count_events(&app, "manifest.submitted").await, 0);

    // Unknown keys are refused by the parser, before validation.
    let mut extra = manifest("ops-hub", "ops", "1.0.0", "deployment.frozen");
    extra["surprise"] = json!(1);
    let p = problem(submit(&app, &hub, "ops-hub", extra).await, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("surprise"));

    // A hub that never registered has nowhere to put a manifest.
    let p = problem(
        submit(
            &app,
            &app.token,
            "fin-hub",
            manifest("fin-hub", "fin", "1.0.0", "budget.spent"),
        )
        .await,
        404,
    )
    .await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("PUT /api/v1/hubs/fin-hub"));
}

#[tokio::test]
async fn an_identical_resubmission_returns_the_same_record_and_a_changed_draft_is_replaced() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let doc = manifest("ops-hub", "ops", "1.0.0", "deployment.frozen");
    let r = submit(&app, &hub, "ops-hub", doc.clone()).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["status"], "draft");
    assert_eq!(first["submitted_by"], "hub:ops-hub");
    assert_eq!(
        location,
        format!("/api/v1/manifests/{}", first["id"].as_str().unwrap())
    );

    let r = submit(&app, &hub, "ops-hub", doc.clone()).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["revision"], 1);
    assert_eq!(count_events(&app, "manifest.submitted").await, 1);

    let mut changed = doc.clone();
    changed["description"] = json!("Watches deployments and freezes");
    let r = submit(&app, &hub, "ops-hub", changed).await;
    assert_eq!(r.status(), 200);
    let replaced: Value = r.json().await.unwrap();
    assert_eq!(replaced["id"], first["id"]);
    assert_eq!(replaced["revision"], 2);
    assert_eq!(
        replaced["manifest"]["description"],
        "Watches deployments and freezes"
    );
    assert_eq!(count_events(&app, "manifest.updated").await, 1);
    let listed: Vec<Value> = app.get_json("/api/v1/hubs/ops-hub/manifests").await;
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn drafts_are_edited_only_while_they_are_drafts() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let doc = manifest("ops-hub", "ops", "1.0.0", "deployment.frozen");
    let rec: Value = submit(&app, &hub, "ops-hub", doc.clone())
        .await
        .json()
        .await
        .unwrap();
    let id = rec["id"].as_str().unwrap();
    let path = format!("/api/v1/manifests/{id}");
    let mut edited = doc.clone();
    edited["event_types"][0]["description"] = json!("A deployment freeze began");

    let stale = send(
        &app,
        reqwest::Method::PUT,
        &hub,
        &path,
        Some(edited.clone()),
        Some("\"9\""),
    )
    .await;
    problem(stale, 412).await;
    let mut bumped = edited.clone();
    bumped["version"] = json!("1.0.1");
    let p = problem(put(&app, &hub, &path, bumped).await, 422).await;
    assert_eq!(fields(&p), ["version"]);
    let r = send(
        &app,
        reqwest::Method::PUT,
        &hub,
        &path,
        Some(edited.clone()),
        Some("\"1\""),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let got = app.get(&path).await;
    assert_eq!(got.headers()["etag"], "\"2\"");
    let got: Value = got.json().await.unwrap();
    assert_eq!(
        got["manifest"]["event_types"][0]["description"],
        "A deployment freeze began"
    );

    // Once in force, the version is fixed: no edits, and a changed document needs a new version.
    let r = app.post(&format!("{path}/activate"), json!({})).await;
    assert_eq!(r.status(), 200);
    let mut later = edited.clone();
    later["description"] = json!("changed after activation");
    problem(put(&app, &hub, &path, later.clone()).await, 409).await;
    let p = problem(submit(&app, &hub, "ops-hub", later).await, 409).await;
    assert!(
        p["detail"].as_str().unwrap().contains("bump the version"),
        "{p}"
    );
    let r = submit(&app, &hub, "ops-hub", edited).await;
    assert_eq!(r.status(), 200);
    let same: Value = r.json().await.unwrap();
    assert_eq!(same["id"], id);
    assert_eq!(same["status"], "active");
}

#[tokio::test]
async fn activation_registers_the_types_and_retires_the_previous_manifest() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    problem(app.get("/api/v1/hubs/ops-hub/manifest/active").await, 404).await;
    let v1 = active_manifest(
        &app,
        &hub,
        "ops-hub",
        manifest("ops-hub", "ops", "1.0.0", "deployment.frozen"),
    )
    .await;
    assert_eq!(
        types(&app).await,
        [
            (
                "annotation_category".into(),
                "incident".into(),
                "ops-hub".into(),
                "1.0.0".into()
            ),
            (
                "event".into(),
                "deployment.frozen".into(),
                "ops-hub".into(),
                "1.0.0".into()
            ),
            (
                "policy_scope".into(),
                "ops-hub:freeze.request".into(),
                "ops-hub".into(),
                "1.0.0".into()
            ),
            (
                "widget".into(),
                "deployments".into(),
                "ops-hub".into(),
                "1.0.0".into()
            ),
        ]
    );
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["active_manifest"], "1.0.0");

    let v2 = active_manifest(
        &app,
        &hub,
        "ops-hub",
        manifest("ops-hub", "ops", "1.1.0", "deployment.thawed"),
    )
    .await;
    let old: Value = app.get_json(&format!("/api/v1/manifests/{v1}")).await;
    assert_eq!(old["status"], "retired");
    assert!(old["retired_at"].is_string());
    let active: Value = app.get_json("/api/v1/hubs/ops-hub/manifest/active").await;
    assert_eq!(active["id"], v2.as_str());
    assert_eq!(active["activated_by"], "admin");
    let events: Vec<Value> = app.get_json("/api/v1/types?registry=event").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["name"], "deployment.thawed");
    assert_eq!(events[0]["manifest_version"], "1.1.0");
    assert_eq!(types(&app).await.len(), 4);
    problem(app.get("/api/v1/types?registry=bogus").await, 400).await;
    assert_eq!(count_events(&app, "manifest.activated").await, 2);
    assert_eq!(count_events(&app, "manifest.retired").await, 1);

    // Only drafts are activated.
    problem(
        app.post(&format!("/api/v1/manifests/{v2}/activate"), json!({}))
            .await,
        409,
    )
    .await;
    app.verify_chain().await;
}

#[tokio::test]
async fn hubs_share_event_types_and_widget_names_but_each_registers_its_own() {
    let app = TestApp::spawn().await;
    let dev = registered_hub(&app, "dev-hub", "dev").await;
    let ops = registered_hub(&app, "ops-hub", "ops").await;
    // Every domain hub emits the generic events (capability.unreachable, annotation.added…)
    // and may call its widget `deployments`: both activations succeed, each hub registered.
    active_manifest(
        &app,
        &dev,
        "dev-hub",
        manifest("dev-hub", "dev", "1.0.0", "capability.unreachable"),
    )
    .await;
    active_manifest(
        &app,
        &ops,
        "ops-hub",
        manifest("ops-hub", "ops", "1.0.0", "capability.unreachable"),
    )
    .await;
    let registered = types(&app).await;
    for (registry, name) in [
        ("event", "capability.unreachable"),
        ("widget", "deployments"),
    ] {
        let mut owners: Vec<&str> = registered
            .iter()
            .filter(|t| t.0 == registry && t.1 == name)
            .map(|t| t.2.as_str())
            .collect();
        owners.sort_unstable();
        assert_eq!(owners, vec!["dev-hub", "ops-hub"], "{registry} {name}");
    }
    // Policy scopes stay one namespace: a scope must carry its own hub's name.
    let mut foreign = manifest("ops-hub", "ops", "1.1.0", "capability.unreachable");
    foreign["policy_scopes"][0]["name"] = json!("dev-hub:freeze.request");
    foreign["actions"][0]["scope"] = json!("dev-hub:freeze.request");
    let p = problem(submit(&app, &ops, "ops-hub", foreign).await, 422).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("policy_scopes[0].name"),
        "{p}"
    );
}

#[tokio::test]
async fn retiring_takes_the_types_out_of_the_registries() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let id = active_manifest(
        &app,
        &hub,
        "ops-hub",
        manifest("ops-hub", "ops", "1.0.0", "deployment.frozen"),
    )
    .await;
    assert_eq!(types(&app).await.len(), 4);
    let r = app
        .post(&format!("/api/v1/manifests/{id}/retire"), json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["status"], "retired");
    assert!(types(&app).await.is_empty());
    let h: Value = app.get_json("/api/v1/hubs/ops-hub").await;
    assert_eq!(h["active_manifest"], Value::Null);
    problem(app.get("/api/v1/hubs/ops-hub/manifest/active").await, 404).await;
    problem(
        app.post(&format!("/api/v1/manifests/{id}/retire"), json!({}))
            .await,
        409,
    )
    .await;
    // A retired version stays retired: submitting it again is refused, not revived.
    problem(
        submit(
            &app,
            &hub,
            "ops-hub",
            manifest("ops-hub", "ops", "1.0.0", "deployment.frozen"),
        )
        .await,
        409,
    )
    .await;

    // A draft can be withdrawn too.
    let draft: Value = submit(
        &app,
        &hub,
        "ops-hub",
        manifest("ops-hub", "ops", "1.0.1", "deployment.frozen"),
    )
    .await
    .json()
    .await
    .unwrap();
    let r = send(
        &app,
        reqwest::Method::POST,
        &app.token,
        &format!("/api/v1/manifests/{}/retire", draft["id"].as_str().unwrap()),
        None,
        Some("\"1\""),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(count_events(&app, "manifest.retired").await, 2);
}

#[tokio::test]
async fn viewers_read_members_write_and_only_admins_activate() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let rec: Value = submit(
        &app,
        &hub,
        "ops-hub",
        manifest("ops-hub", "ops", "1.0.0", "deployment.frozen"),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = rec["id"].as_str().unwrap();
    let viewer = app.token_for("victor", "human", &["viewer"]).await;
    let member = app.token_for("alice", "human", &["member"]).await;

    for path in [
        "/api/v1/hub-kinds".to_owned(),
        "/api/v1/hubs".to_owned(),
        "/api/v1/hubs/ops-hub".to_owned(),
        "/api/v1/hubs/ops-hub/manifests".to_owned(),
        format!("/api/v1/manifests/{id}"),
        "/api/v1/types".to_owned(),
    ] {
        assert_eq!(app.get_as(&viewer, &path).await.status(), 200, "{path}");
    }
    problem(
        put(&app, &viewer, "/api/v1/hubs/ops-hub", registration("ops")).await,
        403,
    )
    .await;
    problem(
        app.post_as(&viewer, "/api/v1/hub-kinds", json!({"name": "fin"}))
            .await,
        403,
    )
    .await;
    problem(
        app.post_as(
            &viewer,
            "/api/v1/hubs/ops-hub/heartbeat",
            json!({"status": "passing"}),
        )
        .await,
        403,
    )
    .await;
    for token in [&member, &hub] {
        problem(
            app.post_as(
                token,
                &format!("/api/v1/manifests/{id}/activate"),
                json!({}),
            )
            .await,
            403,
        )
        .await;
        problem(
            app.post_as(token, &format!("/api/v1/manifests/{id}/retire"), json!({}))
                .await,
            403,
        )
        .await;
    }
    let still: Value = app.get_json(&format!("/api/v1/manifests/{id}")).await;
    assert_eq!(still["status"], "draft");
}

#[tokio::test]
async fn registry_pages_show_each_role_what_it_may_do_and_admins_activate_with_csrf() {
    let app = TestApp::spawn().await;
    let hub = registered_hub(&app, "ops-hub", "ops").await;
    let r = app
        .post_as(
            &hub,
            "/api/v1/hubs/ops-hub/heartbeat",
            json!({"status": "warning", "detail": "cluster slow"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let rec: Value = submit(
        &app,
        &hub,
        "ops-hub",
        manifest("ops-hub", "ops", "1.0.0", "deployment.frozen"),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = rec["id"].as_str().unwrap();
    let manifest_page = format!("/registry/manifests/{id}");
    let activate_form = format!("action=\"/registry/manifests/{id}/activate\"");

    let viewer = app.browser_as("victor", &["hub_viewers"]).await;
    let member = app.browser_as("alice", &["hub_members"]).await;
    let admin = app.browser_as("root", &["hub_admins"]).await;
    for b in [&viewer, &member, &admin] {
        let overview = b.page("/registry").await;
        assert!(overview.contains(">Registry</a>"), "nav item");
        assert!(overview.contains("/registry/hubs/ops-hub"));
        assert!(overview.contains("data-health=\"warning\"") && overview.contains("cluster slow"));
        let detail = b.page("/registry/hubs/ops-hub").await;
        assert!(detail.contains(&format!("/registry/manifests/{id}")) && detail.contains("1.0.0"));
        let page = b.page(&manifest_page).await;
        for wanted in [
            "deployment.frozen",
            "deployments",
            "incident",
            "ops-hub:freeze.request",
            // Tera escapes the slashes of values.
            "&#x2F;deployments&#x2F;status",
            "needs an approved decision",
        ] {
            assert!(
                page.contains(wanted),
                "{manifest_page} as {} lacks {wanted}",
                b.username
            );
        }
        assert!(b
            .page("/registry/types")
            .await
            .contains("id=\"types-event\""));
    }
    for b in [&viewer, &member] {
        assert!(
            !b.page(&manifest_page).await.contains(&activate_form),
            "{} sees activate",
            b.username
        );
        assert!(!b
            .page("/registry")
            .await
            .contains("action=\"/registry/kinds\""));
    }
    let page = admin.page(&manifest_page).await;
    assert!(
        page.contains(&activate_form)
            && page.contains("data-confirm=\"Activate ops-hub manifest 1.0.0?")
    );
    assert!(admin
        .page("/registry")
        .await
        .contains("action=\"/registry/kinds\""));

    // A member's form post is refused by the route; the admin's needs the session's CSRF token.
    let path = format!("/registry/manifests/{id}/activate");
    assert_eq!(
        member.post_form(&path, &[("version", "1")]).await.status(),
        403
    );
    let forged = admin
        .post_form_raw(&path, &[("version", "1"), ("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status(), 403);
    let r: Value = app.get_json(&format!("/api/v1/manifests/{id}")).await;
    assert_eq!(r["status"], "draft");
    let stale = admin.post_form(&path, &[("version", "5")]).await;
    assert_eq!(stale.status(), 412);
    assert!(stale
        .text()
        .await
        .unwrap()
        .contains("changed by someone else"));
    let res = admin.post_form(&path, &[("version", "1")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], manifest_page.as_str());
    let r: Value = app.get_json(&format!("/api/v1/manifests/{id}")).await;
    assert_eq!(r["status"], "active");
    assert_eq!(r["activated_by"], "root");
    let page = admin.page(&manifest_page).await;
    assert!(!page.contains(&activate_form) && page.contains("/retire\""));
    assert!(admin
        .page("/registry/types?registry=event")
        .await
        .contains("deployment.frozen"));

    // The add-kind form re-renders with the field's message, then adds the kind.
    let res = admin
        .post_form(
            "/registry/kinds",
            &[("name", "Fin Hub"), ("description", "money")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("field-error") && html.contains("value=\"Fin Hub\""),
        "{html}"
    );
    let res = admin
        .post_form(
            "/registry/kinds",
            &[("name", "fin"), ("description", "money")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let kinds: Vec<Value> = app.get_json("/api/v1/hub-kinds").await;
    assert!(kinds
        .iter()
        .any(|k| k["name"] == "fin" && k["description"] == "money"));
}
