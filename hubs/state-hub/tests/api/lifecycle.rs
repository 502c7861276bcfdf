use crate::helpers::TestApp;
use serde_json::{json, Value};
use std::collections::HashSet;

#[tokio::test]
async fn graceful_shutdown_loses_no_acknowledged_write() {
    let mut app = TestApp::spawn().await;
    let http = app.http.clone();
    let url = app.url("/api/v1/events");
    let token = app.token.clone();
    let writers: Vec<_> = (0..400)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"event_type": "load.tick", "summary": format!("n{i}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        Some(r.json::<Value>().await.unwrap()["seq"].as_i64().unwrap())
                    }
                    _ => None,
                }
            })
        })
        .collect();
    // Stop while writes are still arriving: wait for the first ones to land.
    while app.event_count().await < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    app.stop().await;
    let mut acked = HashSet::new();
    for w in writers {
        if let Some(seq) = w.await.unwrap() {
            acked.insert(seq);
        }
    }
    assert!(
        !acked.is_empty(),
        "some writes were acknowledged before the stop"
    );
    let db = app.db.connect().await;
    let stored: HashSet<i64> = db
        .query("SELECT seq FROM events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for seq in &acked {
        assert!(stored.contains(seq), "acknowledged event {seq} is missing");
    }
    let max: i64 = db
        .query_one("SELECT max(seq) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max as usize, stored.len(), "sequence is gapless");
}
