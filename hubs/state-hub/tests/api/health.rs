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
