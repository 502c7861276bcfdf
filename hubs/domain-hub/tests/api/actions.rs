//! Actions: scope, decision, callable capability, and exactly one run per request.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{
    callable, eventually, problem, recorded_actions, Setup, TestApp, STATE_HUB_TOKEN,
};
use crate::standins::ClusterStandin;
use hub_core::api::decisions::DecisionStatus;
use serde_json::json;

const SCOPE: &str = "ops-hub:freeze.request";

async fn ops_hub(cluster: &ClusterStandin) -> (FakeStateHub, TestApp) {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().callable = vec![callable(cluster, "deployments")];
    let app = TestApp::spawn(Setup::ops(&fake, Some(cluster))).await;
    let viewer = app.token("probe", &["viewer"], &[]).await;
    eventually(10, "deployments callable", || async {
        let a = app.get_json(&viewer, "/api/v1/actions").await;
        (a["items"][0]["callable"] == true).then_some(())
    })
    .await;
    (fake, app)
}

fn freeze(decision: Option<uuid::Uuid>) -> serde_json::Value {
    let mut body = json!({"params": {"namespace": "shop", "reason": "incident 42"}});
    if let Some(d) = decision {
        body["decision_id"] = json!(d);
    }
    body
}

#[tokio::test]
async fn an_action_needs_its_scope_and_an_approved_decision_before_anything_reaches_the_cluster() {
    let cluster = ClusterStandin::start();
    let (fake, app) = ops_hub(&cluster).await;

    let listed = app
        .get_json(
            &app.token("carol", &["viewer"], &[]).await,
            "/api/v1/actions",
        )
        .await;
    assert_eq!(listed["items"][0]["name"], "freeze");
    assert_eq!(listed["items"][0]["requires_decision"], true);

    // No scope: 403.
    let bob = app.token("bob", &["member"], &[]).await;
    let approved = fake.add_decision(DecisionStatus::Resolved);
    let p = problem(
        app.post(&bob, "/api/v1/actions/freeze", freeze(Some(approved)))
            .await,
        403,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains(SCOPE), "{p}");

    // Scope, no decision: 409.
    let alice = app.token("alice", &["member"], &[SCOPE]).await;
    let p = problem(
        app.post(&alice, "/api/v1/actions/freeze", freeze(None))
            .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("decision_id"), "{p}");

    // Escalated but not resolved: 409.
    let escalated = fake.add_decision(DecisionStatus::Escalated);
    let p = problem(
        app.post(&alice, "/api/v1/actions/freeze", freeze(Some(escalated)))
            .await,
        409,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("is escalated, not resolved"),
        "{p}"
    );

    // A decision the state hub does not know: 409.
    let p = problem(
        app.post(
            &alice,
            "/api/v1/actions/freeze",
            freeze(Some(uuid::Uuid::now_v7())),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("has no decision"));

    // The state hub cannot be asked: 503.
    fake.stop().await;
    let p = problem(
        app.post(&alice, "/api/v1/actions/freeze", freeze(Some(approved)))
            .await,
        503,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("nothing was sent"));
    fake.start_again();

    assert!(
        recorded_actions(&cluster).is_empty(),
        "nothing reached the cluster"
    );
    let runs = app.get_json(&alice, "/api/v1/action-runs").await;
    assert!(runs["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_approved_action_runs_once_however_often_it_is_sent() {
    let cluster = ClusterStandin::start();
    let (fake, app) = ops_hub(&cluster).await;
    let alice = app.token("alice", &["member"], &[SCOPE]).await;
    let approved = fake.add_decision(DecisionStatus::Resolved);

    let r = app
        .post(&alice, "/api/v1/actions/freeze", freeze(Some(approved)))
        .await;
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("idempotency-replayed").is_none());
    let run: serde_json::Value = r.json().await.unwrap();
    assert_eq!(run["status"], "executed");
    assert_eq!(run["response_status"], 202);
    assert_eq!(run["response"]["namespace"], "shop");
    assert_eq!(run["caller"], "alice");

    // The same request again (a retry): the same run, nothing new in the cluster.
    let again = app
        .post(&alice, "/api/v1/actions/freeze", freeze(Some(approved)))
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], run["id"]);
    let actions = recorded_actions(&cluster);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(actions[0]["idempotency_key"]
        .as_str()
        .unwrap()
        .contains(run["id"].as_str().unwrap()));

    // The same decision with other params is another request, refused.
    let mut other = freeze(Some(approved));
    other["params"]["namespace"] = json!("payments");
    problem(app.post(&alice, "/api/v1/actions/freeze", other).await, 409).await;

    let executed: Vec<_> = app
        .outbox()
        .await
        .into_iter()
        .filter(|(t, _, _)| t == "action.executed")
        .collect();
    assert_eq!(executed.len(), 1, "{executed:?}");
    assert!(
        executed[0].1.contains("alice ran freeze on ops-hub"),
        "{executed:?}"
    );
    eventually(10, "action.executed relayed", || async {
        fake.events()
            .iter()
            .any(|(_, e)| {
                e["event_type"] == "action.executed"
                    && e["detail"]["decision_id"] == json!(approved)
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_capability_that_is_not_callable_is_refused() {
    let cluster = ClusterStandin::start();
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().callable = vec![callable(&cluster, "nodes")];
    let app = TestApp::spawn(Setup::ops(&fake, Some(&cluster))).await;
    let alice = app.token("alice", &["member"], &[SCOPE]).await;
    eventually(10, "callable list loaded", || async {
        let s = app.get_json(&alice, "/api/v1/status").await;
        s["state_hub"]["callable_refreshed_at"]
            .is_string()
            .then_some(())
    })
    .await;
    let approved = fake.add_decision(DecisionStatus::Resolved);
    let p = problem(
        app.post(&alice, "/api/v1/actions/freeze", freeze(Some(approved)))
            .await,
        409,
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("is not callable"),
        "{p}"
    );
    assert!(recorded_actions(&cluster).is_empty());
}

#[tokio::test]
async fn the_actions_page_offers_the_form_and_runs_it_once_per_form() {
    let cluster = ClusterStandin::start();
    let (fake, app) = ops_hub(&cluster).await;
    let approved = fake.add_decision(DecisionStatus::Resolved);
    let alice = app.browser_as("alice", &["hub_members"], &[SCOPE]).await;
    let (status, html) = alice.page("/actions").await;
    assert_eq!(status, 200);
    assert!(html.contains("action=\"/actions/freeze\""), "{html}");
    let key = html
        .split("name=\"request_key\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let params = r#"{"namespace": "shop", "reason": "from the page"}"#;
    let decision = approved.to_string();
    let fields = [
        ("params", params),
        ("decision_id", decision.as_str()),
        ("request_key", key.as_str()),
    ];
    let r = alice.post_form("/actions/freeze", &fields).await;
    assert_eq!(r.status(), 303);
    // A double submit of the same form is the same run.
    let r = alice.post_form("/actions/freeze", &fields).await;
    assert_eq!(r.status(), 303);
    assert_eq!(recorded_actions(&cluster).len(), 1);

    // Someone without the scope sees no form, and a forged post is refused.
    let bob = app.browser_as("bob", &["hub_members"], &[]).await;
    let (_, html) = bob.page("/actions").await;
    assert!(!html.contains("action=\"/actions/freeze\""));
    let r = bob.post_form("/actions/freeze", &fields).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains(SCOPE), "{body}");
    assert_eq!(recorded_actions(&cluster).len(), 1);
}
