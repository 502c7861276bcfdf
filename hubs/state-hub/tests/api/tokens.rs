use crate::helpers::{problem, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn tokens_are_shown_once_scoped_and_revocable() {
    let app = TestApp::spawn().await;
    let r = app.post("/api/v1/tokens", json!({"name": "viewer", "subject": "vera", "kind": "human", "roles": ["viewer"], "expires_in_days": 30})).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("hpt_"));
    let list: Vec<Value> = app.get_json("/api/v1/tokens").await;
    let listed = serde_json::to_string(&list).unwrap();
    assert!(!listed.contains(&secret[4..]), "the secret is never listed");
    let db = app.db.connect().await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM api_tokens WHERE token_prefix = $1",
            &[&created["info"]["prefix"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let plain: i64 = db.query_one("SELECT count(*) FROM api_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'", &[&&secret[4..20]]).await.unwrap().get(0);
    assert_eq!(plain, 0, "only a hash is stored");

    let who: Value = app
        .get_as(&secret, "/api/v1/whoami")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who["subject"], "vera");
    assert!(who["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("events.read")));
    assert_eq!(app.get_as(&secret, "/api/v1/events").await.status(), 200);
    let p = problem(
        app.post_as(
            &secret,
            "/api/v1/events",
            json!({"event_type": "a.b", "summary": "s"}),
        )
        .await,
        403,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("events.write"));
    problem(app.get_as(&secret, "/api/v1/tokens").await, 403).await;

    let id = created["info"]["id"].as_str().unwrap();
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p = problem(app.get_as(&secret, "/api/v1/events").await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"));
    let events: Value = app.get_json("/api/v1/events?noun=token&order=asc").await;
    let types = crate::helpers::event_types(&events);
    assert_eq!(
        types,
        vec!["token.bootstrapped", "token.created", "token.revoked"]
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains(&secret[4..]),
        "secrets never reach events"
    );
}

#[tokio::test]
async fn expired_tokens_and_bad_requests_are_refused() {
    let app = TestApp::spawn().await;
    let secret = app.token_for("eve", "human", &["member"]).await;
    let db = app.db.connect().await;
    db.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE subject = 'eve'",
        &[],
    )
    .await
    .unwrap();
    // The verification cache holds a token for at most two seconds.
    tokio::time::sleep(hub_core::auth::tokens::CACHE_TTL).await;
    let p = problem(app.get_as(&secret, "/api/v1/whoami").await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    let p = problem(
        app.post(
            "/api/v1/tokens",
            json!({"name": "", "subject": "Bad Name", "kind": "human", "roles": []}),
        )
        .await,
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("subject"));
    let p = problem(app.post("/api/v1/tokens", json!({"name": "", "subject": "ok", "kind": "human", "roles": [], "expires_in_days": 0})).await, 422).await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 3);
    let p = problem(
        app.post(
            "/api/v1/tokens",
            json!({"name": "x", "subject": "ok", "kind": "robot", "roles": ["admin"]}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("kind")
            || p["detail"].as_str().unwrap().contains("robot")
    );
    problem(
        app.http
            .delete(app.url(&format!("/api/v1/tokens/{}", uuid::Uuid::now_v7())))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn changing_the_bootstrap_file_rotates_the_admin_token() {
    let mut app = TestApp::spawn().await;
    let old = app.token.clone();
    app.stop().await;
    let dir = std::env::temp_dir().join(format!("rot-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let new = secrecy::ExposeSecret::expose_secret(&hub_core::auth::tokens::generate()).to_owned();
    std::fs::write(dir.join("admin.token"), &new).unwrap();
    let cfg = crate::helpers::config_for(&app.db, &dir, "");
    let hub = state_hub::startup::Application::build(cfg).await.unwrap();
    let base = format!("http://127.0.0.1:{}", hub.port());
    let shutdown = hub.shutdown();
    let server = tokio::spawn(hub.run_until_shutdown());
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/api/v1/whoami"))
            .bearer_auth(&new)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/api/v1/whoami"))
            .bearer_auth(&old)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    shutdown.run().await;
    let _ = server.await;
    let _ = std::fs::remove_dir_all(dir);
}
