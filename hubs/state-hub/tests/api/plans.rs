use crate::helpers::{problem, TestApp};
use serde_json::{json, Value};

async fn plan(app: &TestApp) -> (String, String) {
    let ws: Value = app
        .post(
            "/api/v1/workstreams",
            json!({"slug": "platform", "title": "Platform"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .post(
            "/api/v1/workstreams/platform/workplans",
            json!({"title": "Stand up the plane"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let wp: Value = r.json().await.unwrap();
    assert_eq!(wp["workstream_id"], ws["id"]);
    (
        ws["id"].as_str().unwrap().to_owned(),
        wp["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn tasks_move_through_statuses_with_aliases_and_reasons() {
    let app = TestApp::spawn().await;
    let (_, wp) = plan(&app).await;
    problem(
        app.post(
            "/api/v1/workstreams",
            json!({"slug": "platform", "title": "dup"}),
        )
        .await,
        409,
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/workplans/{wp}/tasks"),
            json!({"title": "Provision host", "assignee": "alice", "needs_human": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let id = t["id"].as_str().unwrap();
    assert_eq!(t["status"], "todo");

    let t: Value = app
        .patch(
            &format!("/api/v1/tasks/{id}"),
            json!({"status": "in_progress"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["status"], "progress");
    let p = problem(
        app.patch(&format!("/api/v1/tasks/{id}"), json!({"status": "blocked"}))
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "blocking_reason");
    let t: Value = app
        .patch(
            &format!("/api/v1/tasks/{id}"),
            json!({"status": "blocked", "blocking_reason": "waiting for DNS"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["status"], "wait");
    assert_eq!(t["blocking_reason"], "waiting for DNS");
    let t: Value = app
        .patch(
            &format!("/api/v1/tasks/{id}"),
            json!({"status": "todo", "assignee": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(t["blocking_reason"].is_null());
    assert!(t["assignee"].is_null());
    problem(
        app.patch(&format!("/api/v1/tasks/{id}"), json!({"status": "doing"}))
            .await,
        400,
    )
    .await;
    let r = app
        .http
        .patch(app.url(&format!("/api/v1/tasks/{id}")))
        .bearer_auth(&app.token)
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
    let list: Vec<Value> = app
        .get_json("/api/v1/tasks?status=todo&needs_human=true")
        .await;
    assert_eq!(list.len(), 1);
    let events: Value = app
        .get_json(&format!("/api/v1/events?task_id={id}&order=asc"))
        .await;
    let types = crate::helpers::event_types(&events);
    assert_eq!(
        types,
        vec![
            "task.created",
            "task.updated",
            "task.updated",
            "task.updated"
        ]
    );
}

#[tokio::test]
async fn escalated_decisions_block_linked_tasks_until_resolved() {
    let app = TestApp::spawn().await;
    let (_, wp) = plan(&app).await;
    let t: Value = app
        .post(
            &format!("/api/v1/workplans/{wp}/tasks"),
            json!({"title": "Rotate keys"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let task = t["id"].as_str().unwrap();
    let d: Value = app
        .post(
            "/api/v1/decisions",
            json!({"title": "Which KMS", "options": ["age", "vault"], "task_ids": [task]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let did = d["id"].as_str().unwrap();
    assert_eq!(
        app.patch(
            &format!("/api/v1/tasks/{task}"),
            json!({"status": "progress"})
        )
        .await
        .status(),
        200
    );
    app.patch(&format!("/api/v1/tasks/{task}"), json!({"status": "todo"}))
        .await;
    app.post(
        &format!("/api/v1/decisions/{did}/escalate"),
        json!({"reason": "security"}),
    )
    .await;
    let t: Value = app.get_json(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(t["blocked_by"], json!([did]));
    let blocked: Vec<Value> = app.get_json("/api/v1/tasks?blocked=true").await;
    assert_eq!(blocked.len(), 1);
    let p = problem(
        app.patch(
            &format!("/api/v1/tasks/{task}"),
            json!({"status": "progress"}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains(did));
    let bob = app.token_for("bob", "human", &["member"]).await;
    assert_eq!(
        app.post_as(
            &bob,
            &format!("/api/v1/decisions/{did}/resolve"),
            json!({"choice": "age", "rationale": "simple"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.patch(
            &format!("/api/v1/tasks/{task}"),
            json!({"status": "progress"})
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn workplans_finish_when_done_and_are_accepted_by_someone_else() {
    let app = TestApp::spawn().await;
    let (_, wp) = plan(&app).await;
    let t: Value = app
        .post(
            &format!("/api/v1/workplans/{wp}/tasks"),
            json!({"title": "Only task"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let task = t["id"].as_str().unwrap();
    let p = problem(
        app.post(&format!("/api/v1/workplans/{wp}/finish"), json!({}))
            .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("1 task"));
    app.patch(&format!("/api/v1/tasks/{task}"), json!({"status": "done"}))
        .await;
    let r = app
        .post(&format!("/api/v1/workplans/{wp}/finish"), json!({}))
        .await;
    assert_eq!(r.status(), 200);
    problem(
        app.post(
            &format!("/api/v1/workplans/{wp}/tasks"),
            json!({"title": "late"}),
        )
        .await,
        409,
    )
    .await;
    let p = problem(
        app.post(
            &format!("/api/v1/workplans/{wp}/accept"),
            json!({"comment": "lgtm"}),
        )
        .await,
        403,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("someone else"));
    let carol = app.token_for("carol", "human", &["member"]).await;
    let r = app
        .post_as(
            &carol,
            &format!("/api/v1/workplans/{wp}/accept"),
            json!({"comment": "reviewed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let w: Value = r.json().await.unwrap();
    assert_eq!(w["status"], "accepted");
    assert_eq!(w["accepted_by"], "carol");
    problem(
        app.post(
            &format!("/api/v1/workplans/{wp}/reopen"),
            json!({"reason": "nope"}),
        )
        .await,
        409,
    )
    .await;
    problem(
        app.post(&format!("/api/v1/tasks/{task}"), json!({})).await,
        404,
    )
    .await;
}
