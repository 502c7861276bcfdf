use crate::helpers::TestApp;
use hub_core::auth::Access;

#[test]
fn every_route_names_its_access_and_none_is_public() {
    let table = state_hub::routes::table();
    assert!(table.len() > 20);
    for r in &table {
        assert_ne!(
            r.access,
            Access::Public,
            "{} {} must not be public: only health and metrics are",
            r.method,
            r.path
        );
        assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
    }
    let mut seen = std::collections::HashSet::new();
    for r in &table {
        assert!(
            seen.insert((r.method.clone(), r.path)),
            "duplicate route {} {}",
            r.method,
            r.path
        );
    }
}

#[tokio::test]
async fn every_route_refuses_requests_without_a_valid_token() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7();
    for r in state_hub::routes::table() {
        let path = r
            .path
            .replace("{id}", &id.to_string())
            .replace("{key}", "1");
        for token in [
            None,
            Some("hpt_not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ] {
            let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
            let mut req = app
                .http
                .request(method, app.url(&path))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                401,
                "{} {} answered {} without a valid token",
                r.method,
                path,
                res.status()
            );
        }
    }
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app.get_json("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for r in state_hub::routes::table() {
        if r.path == "/api/v1/openapi.json" {
            continue;
        }
        let entry = paths
            .get(r.path)
            .unwrap_or_else(|| panic!("{} missing from OpenAPI", r.path));
        assert!(
            entry.get(r.method.as_str().to_lowercase()).is_some(),
            "{} {} missing from OpenAPI",
            r.method,
            r.path
        );
    }
}
