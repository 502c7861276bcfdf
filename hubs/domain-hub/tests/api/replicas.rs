//! Two replicas of one hub on one database: each path is polled once per interval, each outbox
//! row is sent once, and the journal order is the outbox order.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{callable, eventually, Setup, TestApp, STATE_HUB_TOKEN};
use crate::standins::ClusterStandin;
use serde_json::json;

fn status_gets(cluster: &ClusterStandin) -> usize {
    std::fs::read_to_string(cluster.dir.join("run/cluster.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" GET /deployments/status "))
        .count()
}

#[tokio::test]
async fn two_replicas_poll_each_path_once_and_relay_each_event_once_in_order() {
    let cluster = ClusterStandin::start();
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().callable = vec![
        callable(&cluster, "deployments"),
        callable(&cluster, "nodes"),
    ];
    let app = TestApp::spawn(Setup::ops(&fake, Some(&cluster))).await;
    let replica = app.replica().await;
    let db = app.db.connect().await;
    let last_success = || async {
        let at: Option<chrono::DateTime<chrono::Utc>> = db
            .query_one(
                "SELECT last_success_at FROM poll_state WHERE capability = 'deployments'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        at
    };
    eventually(15, "first poll", || async { last_success().await }).await;
    // Both replicas' pollers tick every second; give them a few ticks to (not) poll again.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let before = status_gets(&cluster);
    for round in 0..3 {
        let seen = last_success().await;
        app.poll_now().await;
        eventually(10, &format!("poll round {round}"), || async {
            (last_success().await > seen).then_some(())
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    assert_eq!(
        status_gets(&cluster) - before,
        3,
        "one GET per due interval, whichever replica claimed it"
    );

    let member = app.token("bob", &["member"], &[]).await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let base = if i % 2 == 0 { &app.base } else { &replica.base };
        let r = http
            .post(format!("{base}/api/v1/annotations"))
            .bearer_auth(&member)
            .json(&json!({"category": "note", "target": "nodes", "text": format!("n{i:02}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    eventually(20, "all delivered", || async {
        app.outbox().await.iter().all(|r| r.2).then_some(())
    })
    .await;
    {
        let s = fake.state.lock().unwrap();
        let mut keys = s.event_requests.clone();
        let sent = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), sent, "no row was sent twice");
        let texts: Vec<String> = s
            .events
            .iter()
            .filter(|(_, e)| e["event_type"] == "annotation.added")
            .map(|(_, e)| e["detail"]["text"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        assert_eq!(texts, expected, "the journal order is the outbox order");
    }
    replica.shutdown.run().await;
}
