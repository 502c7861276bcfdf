use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_metrics_answer_without_auth_with_security_headers() {
    let app = TestApp::spawn().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert!(h.get("x-request-id").is_some());
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert!(h
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain http"
    );

    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["checks"]["migrations"], true);

    app.get("/api/v1/whoami").await;
    let text = app.metrics_text(&app.base).await;
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/api/v1/whoami\""),
        "routes are labelled by pattern"
    );
    assert!(text.contains("db_pool_connections"));
    assert!(text.contains("journal_events_appended_total"));
}

#[tokio::test]
async fn request_ids_are_echoed_when_plain_and_replaced_when_not() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "trace-abc-123");
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(
        r.headers().get("x-request-id").unwrap(),
        "bad id with spaces"
    );
}

#[tokio::test]
async fn readiness_turns_false_when_the_schema_is_behind() {
    let app = TestApp::spawn().await;
    let db = app.db.connect().await;
    db.batch_execute("DELETE FROM refinery_schema_history")
        .await
        .unwrap();
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["checks"]["problem"]
        .as_str()
        .unwrap()
        .contains("schema version 0"));
}

#[tokio::test]
async fn unknown_routes_are_problem_documents() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/v1/nothing-here").await;
    let p = crate::helpers::problem(r, 404).await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("/api/v1/nothing-here"));
}

/// Answers `req` within 1.5 s (generous for a shared machine, below every pool time-out).
async fn quick(req: reqwest::RequestBuilder, what: &str) -> reqwest::Response {
    let limit = std::time::Duration::from_millis(1500);
    tokio::time::timeout(limit, req.send())
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_with_the_request_pool_exhausted_and_fails_with_the_database_gone() {
    use std::time::Duration;
    let app = TestApp::spawn().await;
    // Every connection of the hub's own request pool, held here.
    let pool = app.state.pool.clone();
    let max = pool.status().max_size;
    let mut held = Vec::with_capacity(max);
    while held.len() < max {
        held.push(
            tokio::time::timeout(Duration::from_secs(10), pool.get())
                .await
                .expect("a connection within the pool's wait")
                .unwrap(),
        );
    }
    assert_eq!(pool.status().available, 0);
    let probe = tokio::spawn(
        app.http
            .get(app.url("/api/v1/decisions"))
            .bearer_auth(&app.token)
            .send(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !probe.is_finished(),
        "a request that needs the request pool waits: the pool is exhausted"
    );
    for _ in 0..5 {
        let r = quick(app.http.get(app.url("/readyz")), "readyz, pool exhausted").await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["checks"]["database"], true, "{v}");
    }
    drop(held);
    assert_eq!(
        probe.await.unwrap().unwrap().status(),
        200,
        "the waiting request is served once connections return"
    );

    // The database really goes away: no new connections, existing ones terminated.
    let (admin, conn) =
        tokio_postgres::connect(&crate::helpers::admin_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let name = &app.db.name;
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[name],
        )
        .await
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        app.http.get(app.url("/readyz")).send(),
    )
    .await
    .expect("readyz answers while the database is gone")
    .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "not_ready", "{v}");
    assert!(v["checks"]["problem"].is_string(), "{v}");
    let r = quick(app.http.get(app.url("/healthz")), "healthz").await;
    assert_eq!(r.status(), 200, "liveness is about the process");

    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.http.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
