//! Annotations through the API and the page.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{problem, Setup, TestApp, STATE_HUB_TOKEN};
use serde_json::json;

#[tokio::test]
async fn annotations_are_checked_against_the_manifest_listed_and_journaled() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    let bob = app.token("bob", &["member"], &[]).await;
    let carol = app.token("carol", &["viewer"], &[]).await;

    let r = app
        .post(
            &bob,
            "/api/v1/annotations",
            json!({"category": "incident", "target": "deployments/shop/web", "text": "rollout stuck"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let a: serde_json::Value = r.json().await.unwrap();
    assert_eq!(a["author"], "bob");

    let p = problem(
        app.post(
            &bob,
            "/api/v1/annotations",
            json!({"category": "gossip", "target": "", "text": "x"}),
        )
        .await,
        422,
    )
    .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["category", "target"]);

    // Viewers read but do not write.
    problem(
        app.post(
            &carol,
            "/api/v1/annotations",
            json!({"category": "note", "target": "nodes", "text": "x"}),
        )
        .await,
        403,
    )
    .await;

    let list = app
        .get_json(&carol, "/api/v1/annotations?target=deployments/shop/web")
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let none = app
        .get_json(&carol, "/api/v1/annotations?category=maintenance")
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());

    let rows = app.outbox().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "annotation.added");
    assert!(rows[0]
        .1
        .contains("bob annotated deployments/shop/web on ops-hub"));
}

#[tokio::test]
async fn the_annotations_page_adds_with_csrf_and_shows_refusals() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let app = TestApp::spawn(Setup::ops(&fake, None)).await;
    let bob = app.browser_as("bob", &["hub_members"], &[]).await;
    let (status, html) = bob.page("/annotations").await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"csrf_token\""));

    let r = bob
        .post_form(
            "/annotations",
            &[
                ("category", "maintenance"),
                ("target", "nodes"),
                ("text", "kernel update"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/annotations?target=nodes");
    let (_, html) = bob.page("/annotations?target=nodes").await;
    assert!(html.contains("kernel update"));

    let r = bob
        .post_form(
            "/annotations",
            &[
                ("category", "gossip"),
                ("target", "nodes"),
                ("text", "psst"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"refusal\""));
    assert!(html.contains("psst"), "the input is kept");

    // Without the CSRF token the change is refused.
    let r = bob
        .http
        .post(format!("{}/annotations", bob.base))
        .header("cookie", &bob.cookie)
        .form(&[("category", "note"), ("target", "nodes"), ("text", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
