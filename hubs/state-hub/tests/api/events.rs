use crate::helpers::{problem, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn post_get_list_and_filter_events() {
    let app = TestApp::spawn().await;
    let r = app.post("/api/v1/events", json!({"event_type": "deploy.started", "summary": "Deploy staging", "detail": {"env": "staging"}})).await;
    assert_eq!(r.status(), 201);
    let loc = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["author"], "admin",
        "author comes from the token, not the body"
    );
    assert_eq!(loc, format!("/api/v1/events/{}", e["seq"]));
    let by_seq: Value = app.get_json(&loc).await;
    assert_eq!(by_seq, e);
    let by_id: Value = app
        .get_json(&format!("/api/v1/events/{}", e["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id, e);

    for i in 0..5 {
        app.post(
            "/api/v1/events",
            json!({"event_type": "note.added", "summary": format!("note {i}")}),
        )
        .await;
    }
    let page: Value = app
        .get_json("/api/v1/events?event_type=note.added&limit=2")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["summary"], "note 4", "newest first");
    let next = page["next"].as_str().unwrap();
    let page2: Value = app
        .get_json(&format!(
            "/api/v1/events?event_type=note.added&limit=2&after={next}"
        ))
        .await;
    assert_eq!(page2["items"][0]["summary"], "note 2");
    let noun: Value = app.get_json("/api/v1/events?noun=deploy").await;
    assert_eq!(noun["items"].as_array().unwrap().len(), 1);
    let asc: Value = app.get_json("/api/v1/events?order=asc&limit=1").await;
    assert_eq!(asc["items"][0]["seq"], 1);
    assert_eq!(app.verify_chain().await, 7);
}

#[tokio::test]
async fn bad_input_gets_a_clear_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;
    let t = app.token.clone();
    let raw = |body: &'static str| {
        app.http
            .post(app.url("/api/v1/events"))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let p = problem(raw("{\"event_type\": ").await.unwrap(), 400).await;
    assert!(p["detail"].as_str().unwrap().contains("invalid JSON"));
    let p = problem(
        raw(r#"{"event_type":"a.b","summary":"s","sneaky":1}"#)
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("unknown field `sneaky`"));
    let p = problem(
        raw(r#"{"event_type":"nodot","summary":"s"}"#)
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("<noun>.<verb>"));
    let p = problem(
        app.post(
            "/api/v1/events",
            json!({"event_type": "a.b", "summary": "  "}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "summary");
    let p = problem(
        app.post(
            "/api/v1/events",
            json!({"event_type": "a.b", "summary": "s", "detail": [1]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "detail");
    let p = problem(
        app.post(
            "/api/v1/events",
            json!({"event_type": "a.b", "summary": "s", "detail": {"x": "nul\u{0000}"}}),
        )
        .await,
        422,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("NUL"));
    let p = problem(
        app.post(
            "/api/v1/events",
            json!({"event_type": "a.b", "summary": "s", "task_id": uuid::Uuid::now_v7()}),
        )
        .await,
        422,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("no such task"));
    // Oversize body (limit is 256 KiB in tests).
    let big =
        json!({"event_type": "a.b", "summary": "s", "detail": {"blob": "x".repeat(300 * 1024)}});
    problem(app.post("/api/v1/events", big).await, 413).await;
    let r = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    problem(app.get("/api/v1/events?after=garbage").await, 400).await;
    problem(app.get("/api/v1/events?limit=0").await, 400).await;
    problem(app.get("/api/v1/events?order=sideways").await, 400).await;
    let decision_cursor =
        hub_core::http::cursor::encode("decisions", &uuid::Uuid::now_v7().to_string());
    let p = problem(
        app.get(&format!("/api/v1/events?after={decision_cursor}"))
            .await,
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("events"));
    problem(app.get("/api/v1/events/999999").await, 404).await;
    assert_eq!(app.event_count().await, before, "nothing was written");
}

#[tokio::test]
async fn idempotency_key_replays_the_same_event_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let send = |body: Value, key: &'static str| {
        app.http
            .post(app.url("/api/v1/events"))
            .bearer_auth(&app.token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let body =
        json!({"event_type": "deploy.started", "summary": "once", "detail": {"b": 2, "a": 1}});
    let first = send(body.clone(), "k-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // Same body with keys in another order is the same request.
    let again = send(
        json!({"detail": {"a": 1, "b": 2}, "summary": "once", "event_type": "deploy.started"}),
        "k-1",
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotency-replayed").unwrap(), "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let p = problem(
        send(
            json!({"event_type": "deploy.started", "summary": "twice"}),
            "k-1",
        )
        .await
        .unwrap(),
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("k-1"));
    let count = app.event_count().await;
    assert_eq!(count, 2, "bootstrap event + one");
    // Keys are per principal: another principal may use the same key.
    let bob = app.token_for("bob", "human", &["member"]).await;
    let r = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(&bob)
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotency-replayed").is_none());
    let bad = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(&app.token)
        .header("Idempotency-Key", "has space")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(bad, 400).await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_write_once() {
    let app = TestApp::spawn().await;
    let body = json!({"event_type": "deploy.started", "summary": "race"});
    let futs = (0..20).map(|_| {
        app.http
            .post(app.url("/api/v1/events"))
            .bearer_auth(&app.token)
            .header("Idempotency-Key", "race-1")
            .json(&body)
            .send()
    });
    let results = futures_util::future::join_all(futs).await;
    let mut seqs = std::collections::HashSet::new();
    for r in results {
        let r = r.unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        seqs.insert(v["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs.len(), 1, "every retry saw the same event");
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn batch_is_all_or_nothing_and_ordered() {
    let app = TestApp::spawn().await;
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"event_type": "load.tick", "summary": format!("tick {i}")}))
        .collect();
    let r = app
        .post("/api/v1/events/batch", json!({"events": events}))
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let seqs: Vec<i64> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (2..52).collect::<Vec<_>>());

    let before = app.event_count().await;
    let mixed = json!({"events": [
        {"event_type": "load.tick", "summary": "fine"},
        {"event_type": "load.tick", "summary": ""},
        {"event_type": "load.tick", "summary": "ok", "detail": "not an object"}
    ]});
    let p = problem(app.post("/api/v1/events/batch", mixed).await, 422).await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["events[1].summary", "events[2].detail"]);
    problem(
        app.post("/api/v1/events/batch", json!({"events": []}))
            .await,
        422,
    )
    .await;
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"event_type": "a.b", "summary": "s"}))
        .collect();
    // 1001 small events fit in the body limit but exceed the batch size.
    problem(
        app.post("/api/v1/events/batch", json!({"events": too_many}))
            .await,
        422,
    )
    .await;
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.verify_chain().await as i64, before);
}

#[tokio::test]
async fn concurrent_writers_get_a_gapless_verifiable_chain() {
    let app = TestApp::spawn().await;
    let futs = (0..300).map(|i| {
        let body = json!({"event_type": "load.tick", "summary": format!("w{i}"), "detail": {"i": i, "f": -0.0, "x": 1.5e300, "u": "é😀"}});
        app.http.post(app.url("/api/v1/events")).bearer_auth(&app.token).json(&body).send()
    });
    for r in futures_util::future::join_all(futs).await {
        assert_eq!(r.unwrap().status(), 201);
    }
    assert_eq!(app.verify_chain().await, 301);
    let metrics = app.metrics_text(&app.base).await;
    let batches = crate::helpers::metric(&metrics, "journal_batches_total");
    assert!(
        batches < 301.0,
        "writes were grouped into fewer transactions ({batches})"
    );
}

#[tokio::test]
async fn pages_from_memory_equal_pages_from_the_database() {
    let app = TestApp::spawn().await;
    let events: Vec<Value> = (0..120)
        .map(|i| json!({"event_type": "load.tick", "summary": format!("m{i}"), "detail": {"i": i}}))
        .collect();
    app.post("/api/v1/events/batch", json!({"events": events}))
        .await;
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        // `since` far in the past filters nothing but forces the database path.
        let memory: Value = app.get_json(&format!("/api/v1/events?limit=25{q}")).await;
        let database: Value = app
            .get_json(&format!(
                "/api/v1/events?limit=25&since=1970-01-01T00:00:00Z{q}"
            ))
            .await;
        assert_eq!(memory, database, "page {pages}");
        pages += 1;
        match memory["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 5, "121 events in pages of 25");

    // Events written by another replica show up at once on this one's newest page.
    let replica = app.replica().await;
    let r = app
        .http
        .post(format!("{}/api/v1/events", replica.base))
        .bearer_auth(&app.token)
        .json(&json!({"event_type": "note.added", "summary": "from the replica"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let page: Value = app.get_json("/api/v1/events?limit=1").await;
        if page["items"][0]["summary"] == "from the replica" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica's event never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    replica.shutdown.run().await;
}
