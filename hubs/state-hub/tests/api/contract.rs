//! What tests/suites/api-contract.sh (schemathesis) found, kept as regressions: the API answers
//! as its OpenAPI document says, and odd input is the client's error, never a 500.

use crate::helpers::{problem, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn text_the_database_cannot_store_is_a_bad_request_not_a_server_error() {
    let app = TestApp::spawn().await;
    let events_before = app.event_count().await;
    // A NUL character in a query filter reached PostgreSQL, which refused it: a 500 before.
    for query in ["noun=a%00b", "author=%00", "event_type=x%00"] {
        let p = problem(app.get(&format!("/api/v1/events?{query}")).await, 400).await;
        assert!(
            p["detail"].as_str().unwrap().contains("NUL"),
            "{query}: {p}"
        );
    }
    // In a body, the event's own validation refuses it before the database sees it.
    let r = app
        .post(
            "/api/v1/events",
            json!({"event_type": "deploy.started", "summary": "nul in detail", "detail": {"k": "a\u{0}b"}}),
        )
        .await;
    problem(r, 422).await;
    // Nothing was appended, and the hub still serves.
    assert_eq!(app.event_count().await, events_before);
    assert_eq!(app.get("/api/v1/events").await.status(), 200);
}

#[tokio::test]
async fn the_document_declares_the_refusals_of_the_http_edge_as_problems() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get_json("/api/v1/openapi.json").await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            operations += 1;
            for status in ["401", "403", "429", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path}: 404");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        vec!["application/problem+json"],
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 50, "only {operations} operations");
}
