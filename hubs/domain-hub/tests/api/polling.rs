//! Polling the cluster: observations, freshness, an outage and its recovery.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{callable, eventually, Setup, TestApp, STATE_HUB_TOKEN};
use crate::standins::ClusterStandin;
use hub_core::capability::BreakerState;
use serde_json::Value;
use std::time::Duration;

async fn ops_hub(cluster: &ClusterStandin) -> (FakeStateHub, TestApp) {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().callable =
        vec![callable(cluster, "deployments"), callable(cluster, "nodes")];
    let app = TestApp::spawn(Setup::ops(&fake, Some(cluster))).await;
    (fake, app)
}

async fn widget_in(app: &TestApp, token: &str, name: &str, state: &str) -> Value {
    eventually(20, &format!("widget {name} {state}"), || async {
        let w = app.widget(token, name).await;
        (w["freshness"]["state"] == state).then_some(w)
    })
    .await
}

#[tokio::test]
async fn polling_stores_observations_and_the_widget_says_fresh() {
    let cluster = ClusterStandin::start();
    let (_fake, app) = ops_hub(&cluster).await;
    let viewer = app.token("carol", &["viewer"], &[]).await;

    let w = widget_in(&app, &viewer, "deployments", "fresh").await;
    assert!(
        w["freshness"]["text"]
            .as_str()
            .unwrap()
            .starts_with("fresh ("),
        "{w}"
    );
    assert_eq!(w["render"], "table");
    let rows = w["data"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "the stand-in has six deployments: {w}");
    assert!(w["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "namespace"));

    let obs = app
        .get_json(
            &viewer,
            "/api/v1/observations?capability=deployments&path=/status&limit=5",
        )
        .await;
    let items = obs["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert_eq!(items[0]["status"], 200);
    assert_eq!(items[0]["sha256"].as_str().unwrap().len(), 64);
    assert!(items[0]["body"]["deployments"].is_array());

    // Polled again within the stand-in's 10 s tick, the answer is byte-identical: only
    // last_success_at moves, no second observation.
    let db = app.db.connect().await;
    let before: chrono::DateTime<chrono::Utc> = db
        .query_one(
            "SELECT last_success_at FROM poll_state WHERE capability = 'deployments'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    app.poll_now().await;
    eventually(10, "a second successful poll", || async {
        let at: chrono::DateTime<chrono::Utc> = db
            .query_one(
                "SELECT last_success_at FROM poll_state WHERE capability = 'deployments'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (at > before).then_some(())
    })
    .await;
    let (rows, distinct): (i64, i64) = {
        let r = db
            .query_one(
                "SELECT count(*), count(DISTINCT sha256) FROM observations WHERE capability = 'deployments'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(rows, distinct, "an unchanged answer is not stored twice");

    // History is bounded: observations_kept = 3 per path.
    for i in 0..5 {
        db.execute(
            "INSERT INTO observations (capability, path, fetched_at, status, body, sha256)
             VALUES ('deployments', '/status', now() - make_interval(mins => $1), 200, '{}', repeat('a', 64))",
            &[&(60 + i)],
        )
        .await
        .unwrap();
    }
    db.execute(
        "UPDATE poll_state SET last_sha256 = NULL WHERE capability = 'deployments'",
        &[],
    )
    .await
    .unwrap();
    app.poll_now().await;
    eventually(10, "old observations pruned", || async {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM observations WHERE capability = 'deployments'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (n == 3).then_some(())
    })
    .await;

    let browser = app.browser_as("carol", &["hub_viewers"], &[]).await;
    let (status, html) = browser.page("/").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"widget-deployments\""), "{html}");
    assert!(html.contains("data-freshness=\"fresh\""));
    assert!(html.contains("shop"));
}

#[tokio::test]
async fn a_cluster_outage_shows_as_unreachable_opens_the_breaker_and_recovers() {
    let cluster = ClusterStandin::start();
    let (fake, app) = ops_hub(&cluster).await;
    let viewer = app.token("carol", &["viewer"], &[]).await;
    widget_in(&app, &viewer, "deployments", "fresh").await;

    cluster.stop();
    app.poll_now().await;
    let w = widget_in(&app, &viewer, "deployments", "unreachable").await;
    let text = w["freshness"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("unreachable since ") && text.contains(" UTC — showing data from "),
        "{text}"
    );
    assert_eq!(
        w["data"].as_array().unwrap().len(),
        6,
        "the last data is still shown"
    );

    // Pages and the API keep answering.
    let browser = app.browser_as("carol", &["hub_viewers"], &[]).await;
    let (status, html) = browser.page("/").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-freshness=\"unreachable\""));
    assert_eq!(app.get(&viewer, "/api/v1/status").await.status(), 200);

    // Consecutive failures open the breaker (breaker_failures = 2).
    eventually(20, "breaker open", || async {
        if matches!(
            app.cluster.client.breaker_state("deployments"),
            BreakerState::Open { .. }
        ) {
            return Some(());
        }
        app.poll_now().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        None
    })
    .await;
    // The heartbeat says so.
    let manifest = domain_hub::manifest::load(
        &crate::helpers::shipped_manifest("ops-hub"),
        "ops-hub",
        "ops",
    )
    .unwrap();
    let beat = domain_hub::status::heartbeat(&app.pool(), &manifest).await;
    assert_eq!(beat.status, hub_core::api::registry::HubHealth::Warning);
    let detail = beat.detail.unwrap();
    assert!(
        detail.contains("deployments unreachable since "),
        "{detail}"
    );

    let unreachable: Vec<_> = app
        .outbox()
        .await
        .into_iter()
        .filter(|(t, s, _)| t == "capability.unreachable" && s.contains("deployments"))
        .collect();
    assert_eq!(
        unreachable.len(),
        1,
        "one event per outage: {unreachable:?}"
    );
    assert!(unreachable[0].1.contains("ops-hub"), "{unreachable:?}");

    cluster.start_again();
    eventually(20, "recovered", || async {
        app.poll_now().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = app.widget(&viewer, "deployments").await;
        (w["freshness"]["state"] == "fresh").then_some(())
    })
    .await;
    assert_eq!(
        app.cluster.client.breaker_state("deployments"),
        BreakerState::Closed
    );
    // Once every capability answers again (nodes recovers on its own schedule) the heartbeat
    // passes.
    eventually(20, "heartbeat passing", || async {
        app.poll_now().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let beat = domain_hub::status::heartbeat(&app.pool(), &manifest).await;
        (beat.status == hub_core::api::registry::HubHealth::Passing).then_some(())
    })
    .await;
    let events = app.outbox().await;
    let recovered: Vec<_> = events
        .iter()
        .filter(|(t, s, _)| t == "capability.recovered" && s.contains("deployments"))
        .collect();
    assert_eq!(recovered.len(), 1, "{events:?}");
    assert!(recovered[0].1.contains("ops-hub"));

    // Both reached the state hub.
    eventually(10, "events relayed", || async {
        let types: Vec<String> = fake
            .events()
            .iter()
            .map(|(_, e)| e["event_type"].as_str().unwrap().to_owned())
            .collect();
        (types.contains(&"capability.unreachable".to_owned())
            && types.contains(&"capability.recovered".to_owned()))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn without_a_callable_list_nothing_is_polled_and_widgets_say_no_data() {
    let cluster = ClusterStandin::start();
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    // Only nodes is callable: deployments is not registered for this hub.
    fake.state.lock().unwrap().callable = vec![callable(&cluster, "nodes")];
    let app = TestApp::spawn(Setup::ops(&fake, Some(&cluster))).await;
    let viewer = app.token("carol", &["viewer"], &[]).await;
    widget_in(&app, &viewer, "nodes", "fresh").await;
    let w = app.widget(&viewer, "deployments").await;
    assert_eq!(w["freshness"]["state"], "no_data", "{w}");
    assert_eq!(w["freshness"]["text"], "no data yet");
    assert!(
        w["freshness"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("not callable"),
        "{w}"
    );
}
