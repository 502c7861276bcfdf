use crate::helpers::TestApp;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

/// Reads SSE frames until `want` `data:` payloads arrived.
async fn read_events(resp: reqwest::Response, want: usize) -> Vec<(i64, Value)> {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < want {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events arrive in time")
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let id = frame
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(|s| s.parse::<i64>().unwrap());
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                out.push((id, serde_json::from_str(data).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn live_stream_delivers_new_events_and_resumes_from_last_event_id() {
    let app = TestApp::spawn().await;
    let resp = app.get("/api/v1/events/stream").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let reader = tokio::spawn(read_events(resp, 3));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..3 {
        app.post(
            "/api/v1/events",
            json!({"event_type": "live.tick", "summary": format!("t{i}")}),
        )
        .await;
    }
    let got = reader.await.unwrap();
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(got[2].1["summary"], "t2");

    // A client that saw event 2 resumes with the rest, in order, without gaps.
    let resp = app
        .http
        .get(app.url("/api/v1/events/stream"))
        .bearer_auth(&app.token)
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let got = read_events(resp, 2).await;
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![3, 4]
    );

    // Filters apply to the stream; ids still advance past filtered events.
    let resp = app
        .http
        .get(app.url("/api/v1/events/stream?after=0&noun=token"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let got = read_events(resp, 1).await;
    assert_eq!(got[0].1["event_type"], "token.bootstrapped");

    let bad = app
        .http
        .get(app.url("/api/v1/events/stream"))
        .bearer_auth(&app.token)
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    crate::helpers::problem(bad, 400).await;
}
