use crate::helpers::{problem, TestApp};
use serde_json::{json, Value};

async fn propose(app: &TestApp, token: &str, title: &str) -> Value {
    let r = app
        .post_as(
            token,
            "/api/v1/decisions",
            json!({"title": title, "context": "why", "options": ["A", "B"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("etag").unwrap(), "\"1\"");
    r.json().await.unwrap()
}

#[tokio::test]
async fn escalated_decisions_need_a_second_human() {
    let app = TestApp::spawn().await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let bob = app.token_for("bob", "human", &["member"]).await;
    let relay = app.token_for("hub:ops-hub", "service", &["member"]).await;
    let d = propose(&app, &alice, "Freeze deploys over the holidays").await;
    let id = d["id"].as_str().unwrap();
    assert_eq!(d["status"], "open");
    assert_eq!(d["decision_type"], "pending");

    let r = app
        .post_as(
            &alice,
            &format!("/api/v1/decisions/{id}/escalate"),
            json!({"reason": "affects every team"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["status"], "escalated");

    let before = app.event_count().await;
    let p = problem(
        app.post_as(
            &alice,
            &format!("/api/v1/decisions/{id}/resolve"),
            json!({"choice": "A", "rationale": "mine"}),
        )
        .await,
        403,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("someone else"));
    let p = problem(
        app.post_as(
            &relay,
            &format!("/api/v1/decisions/{id}/resolve"),
            json!({"choice": "A", "rationale": "bot"}),
        )
        .await,
        403,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("human"));
    let p = problem(
        app.post_as(
            &bob,
            &format!("/api/v1/decisions/{id}/resolve"),
            json!({"choice": "C", "rationale": "?"}),
        )
        .await,
        422,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("one of the options"));
    assert_eq!(app.event_count().await, before, "refusals write nothing");

    let r = app
        .post_as(
            &bob,
            &format!("/api/v1/decisions/{id}/resolve"),
            json!({"choice": "A", "rationale": "agreed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["status"], "resolved");
    assert_eq!(d["decision_type"], "made");
    assert_eq!(d["outcome"]["decided_by"], "bob");
    assert_eq!(d["proposed_by"], "alice");

    // The outcome is immutable.
    let p = problem(
        app.post_as(
            &bob,
            &format!("/api/v1/decisions/{id}/resolve"),
            json!({"choice": "B", "rationale": "changed my mind"}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("supersede"));

    let events: Value = app
        .get_json(&format!("/api/v1/events?decision_id={id}&order=asc"))
        .await;
    let types = crate::helpers::event_types(&events);
    assert_eq!(
        types,
        vec![
            "decision.proposed",
            "decision.escalated",
            "decision.resolved"
        ]
    );
    assert_eq!(events["items"][2]["detail"]["approval"], true);
}

#[tokio::test]
async fn supersede_retires_a_decision_and_stale_etags_are_refused() {
    let app = TestApp::spawn().await;
    let d = propose(&app, &app.token.clone(), "Backups to S3").await;
    let id = d["id"].as_str().unwrap();
    let r = app
        .http
        .post(app.url(&format!("/api/v1/decisions/{id}/escalate")))
        .bearer_auth(&app.token)
        .header("If-Match", "\"7\"")
        .json(&json!({"reason": "cost"}))
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
    let unchanged: Value = app.get_json(&format!("/api/v1/decisions/{id}")).await;
    assert_eq!(unchanged["status"], "open");

    let r = app
        .post(&format!("/api/v1/decisions/{id}/supersede"), json!({"reason": "provider changed", "replacement": {"title": "Backups to B2", "options": ["B2"]}}))
        .await;
    assert_eq!(r.status(), 201);
    let new: Value = r.json().await.unwrap();
    assert_eq!(new["supersedes"], d["id"]);
    let old: Value = app.get_json(&format!("/api/v1/decisions/{id}")).await;
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], new["id"]);

    let p = problem(
        app.post(
            &format!("/api/v1/decisions/{id}/resolve"),
            json!({"choice": "A", "rationale": "late"}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("superseded"));
    problem(
        app.post(
            &format!("/api/v1/decisions/{id}/supersede"),
            json!({"reason": "again", "replacement": {"title": "x"}}),
        )
        .await,
        409,
    )
    .await;
    problem(
        app.post(
            &format!("/api/v1/decisions/{id}/escalate"),
            json!({"reason": "late"}),
        )
        .await,
        409,
    )
    .await;
}

#[tokio::test]
async fn listing_filters_and_pages_decisions() {
    let app = TestApp::spawn().await;
    let t = app.token.clone();
    for i in 0..5 {
        propose(&app, &t, &format!("decision {i}")).await;
    }
    let made = app
        .post(
            "/api/v1/decisions",
            json!({"title": "already made", "outcome": {"choice": "x", "rationale": "y"}}),
        )
        .await;
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["status"], "resolved");
    let page: Value = app.get_json("/api/v1/decisions?status=open&limit=3").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["title"], "decision 4");
    let next = page["next"].as_str().unwrap();
    let page2: Value = app
        .get_json(&format!(
            "/api/v1/decisions?status=open&limit=3&after={next}"
        ))
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    assert!(page2["next"].is_null());
    problem(app.get("/api/v1/decisions?status=maybe").await, 400).await;
    let p = problem(
        app.post(
            "/api/v1/decisions",
            json!({"title": "", "options": ["a", "a"]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
    problem(
        app.get(&format!("/api/v1/decisions/{}", uuid::Uuid::now_v7()))
            .await,
        404,
    )
    .await;
    problem(app.get("/api/v1/decisions/not-a-uuid").await, 404).await;
}

#[tokio::test]
async fn superseding_cannot_side_step_the_two_person_rule() {
    let app = TestApp::spawn().await;
    let alice = app.token_for("alice", "human", &["member"]).await;
    let bob = app.token_for("bob", "human", &["member"]).await;
    let d = propose(&app, &alice, "Open the firewall").await;
    let id = d["id"].as_str().unwrap();
    app.post_as(
        &alice,
        &format!("/api/v1/decisions/{id}/escalate"),
        json!({"reason": "risky"}),
    )
    .await;
    let before = app.event_count().await;
    let bypass = json!({"reason": "never mind", "replacement": {"title": "Open it anyway", "outcome": {"choice": "yes", "rationale": "me"}}});
    let p = problem(
        app.post_as(
            &alice,
            &format!("/api/v1/decisions/{id}/supersede"),
            bypass.clone(),
        )
        .await,
        403,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("someone else"));
    assert_eq!(app.event_count().await, before, "nothing was written");
    let still: Value = app.get_json(&format!("/api/v1/decisions/{id}")).await;
    assert_eq!(still["status"], "escalated");
    assert_eq!(
        app.post_as(&bob, &format!("/api/v1/decisions/{id}/supersede"), bypass)
            .await
            .status(),
        201
    );
}
