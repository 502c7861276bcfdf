//! The outbox and the state hub link: registration, manifest, heartbeats, delivery through an
//! outage, exactly once and in order, and a lost acknowledgement.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{eventually, Setup, TestApp, STATE_HUB_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;

async fn registered(fake: &FakeStateHub) {
    eventually(10, "registered and manifest submitted", || async {
        let s = fake.state.lock().unwrap();
        (!s.registrations.is_empty() && !s.manifests.is_empty() && !s.heartbeats.is_empty())
            .then_some(())
    })
    .await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_hub_registers_submits_its_manifest_and_heartbeats() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    registered(&fake).await;
    {
        let s = fake.state.lock().unwrap();
        assert_eq!(
            s.registrations[0],
            json!({"kind": "ops", "base_url": "http://127.0.0.1", "heartbeat_seconds": 10})
        );
        assert_eq!(s.manifests[0]["hub"], "ops-hub");
        assert_eq!(s.manifests[0]["actions"][0]["name"], "freeze");
        assert_eq!(s.heartbeats[0]["status"], "passing");
    }
    let viewer = app.token("carol", &["viewer"], &[]).await;
    let status = app.get_json(&viewer, "/api/v1/status").await;
    assert_eq!(status["state_hub"]["registered"], true);
    assert_eq!(status["state_hub"]["manifest"], "created");
    let doc = app.get_json(&viewer, "/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/actions/{name}"]["post"].is_object());
}

#[tokio::test]
async fn a_refused_manifest_is_reported_and_the_hub_keeps_working() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().manifest_problems = vec![
        ("kind".into(), "no hub kind `ops` is registered".into()),
        (
            "policy_scopes[0].name".into(),
            "taken by another hub".into(),
        ),
    ];
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    let viewer = app.token("carol", &["viewer"], &[]).await;
    let status = eventually(10, "manifest rejected", || async {
        let s = app.get_json(&viewer, "/api/v1/status").await;
        (s["state_hub"]["manifest"] == "rejected").then_some(s)
    })
    .await;
    let problems = status["state_hub"]["manifest_problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{status}");
    assert_eq!(problems[0], "kind: no hub kind `ops` is registered");
    assert_eq!(app.get(&viewer, "/api/v1/widgets").await.status(), 200);
    // Submitted once: resubmitting the same document cannot help.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.state.lock().unwrap().manifests.len(), 1);
}

#[tokio::test]
async fn events_wait_in_the_outbox_while_the_state_hub_is_down_and_arrive_once_in_order() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    let member = app.token("bob", &["member"], &[]).await;
    registered(&fake).await;

    fake.stop().await;
    for i in 1..=5 {
        let r = app
            .post(
                &member,
                "/api/v1/annotations",
                json!({"category": "incident", "target": "deployments", "text": format!("note {i}")}),
            )
            .await;
        assert_eq!(
            r.status(),
            201,
            "annotating works while the state hub is down"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = app.outbox().await;
    let pending: Vec<_> = rows.iter().filter(|r| !r.2).collect();
    assert_eq!(pending.len(), 5, "{rows:?}");
    let viewer = app.token("carol", &["viewer"], &[]).await;
    let status = app.get_json(&viewer, "/api/v1/status").await;
    assert_eq!(status["outbox"]["pending"], 5);
    assert!(status["state_hub"]["last_error"].is_string(), "{status}");

    fake.start_again();
    eventually(15, "outbox drained", || async {
        app.outbox().await.iter().all(|r| r.2).then_some(())
    })
    .await;
    let notes: Vec<String> = fake
        .events()
        .iter()
        .filter(|(_, e)| e["event_type"] == "annotation.added")
        .map(|(_, e)| e["detail"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(notes, ["note 1", "note 2", "note 3", "note 4", "note 5"]);
    {
        let s = fake.state.lock().unwrap();
        let mut keys = s.event_requests.clone();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            s.events.len(),
            "every stored event was sent once"
        );
        let first = &s.events[0].1;
        assert_eq!(first["detail"]["actor"], "bob");
        assert_eq!(first["detail"]["hub"], "ops-hub");
    }

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(&metrics, "outbox_delivered_total") >= 5.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "outbox_failures_total") >= 1.0);
    eventually(5, "pending gauge back to 0", || async {
        let m = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (metric(&m, "outbox_pending") == 0.0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_lost_acknowledgement_is_retried_with_the_same_key_and_stored_once() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    let member = app.token("bob", &["member"], &[]).await;
    registered(&fake).await;
    fake.state.lock().unwrap().lose_next_ack = true;
    let r = app
        .post(
            &member,
            "/api/v1/annotations",
            json!({"category": "note", "target": "nodes", "text": "acknowledge me"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    eventually(15, "delivered after the retry", || async {
        app.outbox().await.iter().all(|r| r.2).then_some(())
    })
    .await;
    let s = fake.state.lock().unwrap();
    let stored: Vec<&(String, Value)> = s
        .events
        .iter()
        .filter(|(_, e)| e["event_type"] == "annotation.added")
        .collect();
    assert_eq!(stored.len(), 1, "stored once");
    let key = &stored[0].0;
    assert!(key.starts_with("ops-hub:"), "{key}");
    let sent = s.event_requests.iter().filter(|k| *k == key).count();
    assert!(
        sent >= 2,
        "the same key was sent again after the lost answer ({sent})"
    );
}

#[tokio::test]
async fn a_break_glass_review_opens_an_escalated_decision_before_its_event() {
    use domain_hub::ledger::OutboxLedger;
    use domain_hub::outbox::{Outbox, OutboxMetrics};
    use hub_core::identity::ledger::{record, AuditEvent, Review};

    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    registered(&fake).await;
    // The ledger the identity routes use, over the same database.
    let pg: tokio_postgres::Config = app.db.url.parse().unwrap();
    let pool = deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(
        pg,
        tokio_postgres::NoTls,
    ))
    .max_size(2)
    .build()
    .unwrap();
    let outbox = Outbox::new(
        "ops-hub",
        OutboxMetrics::register(&prometheus::Registry::new()).unwrap(),
    );
    let ledger = OutboxLedger::new(pool, outbox);
    record(&ledger, "erin", |_client| {
        Box::pin(async move {
            let mut login = AuditEvent::new(
                "session.break_glass",
                "erin logged in by break-glass (LDAP bind)",
                json!({"method": "break_glass"}),
            );
            login.review = Some(Review {
                title: "Review break-glass login of erin".into(),
                context: "erin logged in while SSO was down".into(),
            });
            Ok(((), vec![login]))
        })
    })
    .await
    .unwrap();
    let event = eventually(15, "review relayed", || async {
        fake.events()
            .into_iter()
            .find(|(_, e)| e["event_type"] == "session.break_glass")
            .map(|(_, e)| e)
    })
    .await;
    let decision: uuid::Uuid = event["decision_id"].as_str().unwrap().parse().unwrap();
    let s = fake.state.lock().unwrap();
    let d = &s.decisions[&decision];
    assert_eq!(d.title, "Review break-glass login of erin");
    assert_eq!(
        d.status,
        hub_core::api::decisions::DecisionStatus::Escalated
    );
    assert_eq!(s.decisions.len(), 1, "one decision, however often retried");
    assert_eq!(event["detail"]["actor"], "erin");
}

#[tokio::test]
async fn stopping_the_hub_hands_pending_events_over_first() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let mut app = TestApp::spawn(Setup::ops(&fake, None)).await;
    let member = app.token("bob", &["member"], &[]).await;
    registered(&fake).await;
    fake.stop().await;
    let r = app
        .post(
            &member,
            "/api/v1/annotations",
            json!({"category": "note", "target": "nodes", "text": "last words"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    fake.start_again();
    app.stop().await;
    assert!(
        app.outbox().await.iter().all(|r| r.2),
        "delivered by the stop at the latest"
    );
    assert!(fake
        .events()
        .iter()
        .any(|(_, e)| e["detail"]["text"] == "last words"));
    assert!(
        app.http.get(app.url("/healthz")).send().await.is_err(),
        "the listener is closed"
    );
}
