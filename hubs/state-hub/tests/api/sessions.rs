//! Browser sessions: authentication by cookie, time-outs, revocation, logout, rate limits.

use crate::helpers::{metric, problem, TestApp};
use serde_json::{json, Value};

async fn set_session(app: &TestApp, id: uuid::Uuid, sql_set: &str) {
    app.db
        .connect()
        .await
        .execute(
            &format!("UPDATE sessions SET {sql_set} WHERE id = $1"),
            &[&id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_cookie_authenticates_a_human_with_roles_from_groups() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members", "unrelated"]).await;
    let who: Value = alice.get("/api/v1/whoami").await.json().await.unwrap();
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["kind"], "human");
    assert_eq!(who["roles"], json!(["member"]));
    let res = alice.get("/api/v1/sessions").await;
    assert_eq!(res.status(), 403, "members do not manage sessions");
    let html = alice.page("/").await;
    assert!(html.contains("alice") && html.contains("Log out"), "{html}");
    assert!(
        html.contains(&alice.csrf),
        "the page carries the CSRF token for its forms"
    );
}

#[tokio::test]
async fn idle_and_absolute_time_outs_end_a_session_with_a_clear_answer() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    set_session(
        &app,
        alice.session_id,
        "idle_expires_at = now() - interval '1 second'",
    )
    .await;
    let p = problem(alice.get("/api/v1/whoami").await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    let res = alice.get("/account?tab=1").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/auth/login?next=%2Faccount%3Ftab%3D1&session=ended"
    );
    let login = alice.get("/auth/login?next=%2Faccount&session=ended").await;
    let body = login.text().await.unwrap();
    assert!(body.contains("Your session has ended"), "{body}");

    let bob = app.browser_as("bob", &["hub_members"]).await;
    set_session(
        &app,
        bob.session_id,
        "absolute_expires_at = now() - interval '1 second', idle_expires_at = now() - interval '1 second', created_at = now() - interval '13 hours'",
    )
    .await;
    problem(bob.get("/api/v1/whoami").await, 401).await;
}

#[tokio::test]
async fn a_busy_session_slides_its_idle_deadline_but_not_past_the_absolute_one() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    set_session(
        &app,
        alice.session_id,
        "last_seen_at = now() - interval '5 minutes', idle_expires_at = now() + interval '1 minute'",
    )
    .await;
    assert_eq!(alice.get("/api/v1/whoami").await.status(), 200);
    let row = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT idle_expires_at > now() + interval '25 minutes', idle_expires_at <= absolute_expires_at FROM sessions WHERE id = $1",
            &[&alice.session_id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "idle deadline moved forward");
    assert!(row.get::<_, bool>(1));
}

#[tokio::test]
async fn an_admin_revoke_takes_effect_on_the_next_request_and_is_journaled() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    assert_eq!(alice.get("/api/v1/whoami").await.status(), 200);
    let list: Value = app.get_json("/api/v1/sessions").await;
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["username"] == "alice" && s["method"] == "oidc"));
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/sessions/{}", alice.session_id)))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let p = problem(alice.get("/api/v1/whoami").await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("ended"), "{p}");
    let again = app
        .http
        .delete(app.url(&format!("/api/v1/sessions/{}", alice.session_id)))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let missing = app
        .http
        .delete(app.url(&format!("/api/v1/sessions/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let events = app.all_events().await;
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "session.revoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].summary.contains("alice"));
}

#[tokio::test]
async fn logout_ends_this_session_and_logout_everywhere_ends_all() {
    let app = TestApp::spawn().await;
    let a1 = app.browser_as("alice", &["hub_members"]).await;
    let a2 = app.browser_as("alice", &["hub_members"]).await;
    let a3 = app.browser_as("alice", &["hub_members"]).await;
    let res = a1.post_form("/auth/logout", &[]).await;
    assert_eq!(res.status(), 200);
    let cleared = res.headers().get_all("set-cookie").iter().any(|c| {
        c.to_str()
            .unwrap()
            .starts_with("__Host-state-hub-session=;")
    });
    assert!(cleared, "the cookie is removed");
    assert!(res.text().await.unwrap().contains("logged out"));
    assert_eq!(a1.get("/api/v1/whoami").await.status(), 401);
    assert_eq!(
        a2.get("/api/v1/whoami").await.status(),
        200,
        "other sessions live on"
    );

    let res = a2.post_form("/auth/logout-everywhere", &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("(2)"));
    assert_eq!(a2.get("/api/v1/whoami").await.status(), 401);
    assert_eq!(a3.get("/api/v1/whoami").await.status(), 401);
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(types.contains(&"session.logout".to_owned()));
    assert!(types.contains(&"session.revoked_all".to_owned()));
}

#[tokio::test]
async fn the_account_page_lists_only_my_sessions() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let _other = app.browser_as("alice", &["hub_members"]).await;
    let _bob = app.browser_as("bob", &["hub_members"]).await;
    let html = alice.page("/account").await;
    assert_eq!(html.matches("<tr><td>").count(), 2, "{html}");
    assert!(html.contains("this one"));
    assert!(html.contains("alice@example.com"));
}

#[tokio::test]
async fn token_issuing_is_rate_limited_per_principal_and_counted() {
    let app = TestApp::spawn_with("[limits]\ntokens_per_principal_per_minute = 3\n").await;
    for i in 0..3 {
        let res = app
            .post("/api/v1/tokens", json!({"name": format!("t{i}"), "subject": "ci", "kind": "service", "roles": ["viewer"]}))
            .await;
        assert_eq!(res.status(), 201);
    }
    let res = app
        .post(
            "/api/v1/tokens",
            json!({"name": "t4", "subject": "ci", "kind": "service", "roles": ["viewer"]}),
        )
        .await;
    let p = problem(res, 429).await;
    assert!(p["detail"].as_str().unwrap().contains("too many"), "{p}");
    let text = app.metrics_text(&app.base).await;
    assert_eq!(
        metric(
            &text,
            r#"hub_rate_limit_decisions_total{limit="token_issue",outcome="limited"}"#
        ),
        1.0
    );
    let tokens: Value = app.get_json("/api/v1/tokens").await;
    assert_eq!(tokens.as_array().unwrap().len(), 4, "bootstrap + 3");
}

#[tokio::test]
async fn token_issuing_is_rate_limited_per_client_address_across_principals() {
    let app = TestApp::spawn_with("[limits]\ntokens_per_ip_per_minute = 2\n").await;
    let other_admin = app.token_for("second-admin", "human", &["admin"]).await;
    let body = |i: u32| json!({"name": format!("t{i}"), "subject": "ci", "kind": "service", "roles": ["viewer"]});
    // token_for itself issued one token from this address.
    assert_eq!(
        app.post_as(&other_admin, "/api/v1/tokens", body(1))
            .await
            .status(),
        201
    );
    let p = problem(
        app.post_as(&other_admin, "/api/v1/tokens", body(2)).await,
        429,
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("token issue per ip"),
        "{p}"
    );
    let res = app.post("/api/v1/tokens", body(3)).await;
    assert_eq!(
        res.status(),
        429,
        "another principal from the same address is limited too"
    );
    assert_eq!(res.headers()["retry-after"], "60");
}
