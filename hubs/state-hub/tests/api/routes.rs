use crate::helpers::TestApp;
use hub_core::auth::{Access, Surface};
use hub_core::identity::PUBLIC_MUTATIONS;

/// Pages anyone may open: the login pages and the static assets.
const PUBLIC_PAGES: &[&str] = &[
    "/static/{name}",
    "/auth/login",
    "/auth/oidc/start",
    "/auth/callback",
    "/auth/break-glass",
];

fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::now_v7().to_string())
        .replace("{key}", "1")
        .replace("{name}", "hub.css")
}

#[test]
fn every_route_names_its_access_and_only_login_pages_are_public() {
    let table = state_hub::routes::table();
    assert!(table.len() > 30);
    for r in &table {
        if r.access == Access::Public {
            assert_eq!(
                r.surface,
                Surface::Page,
                "{} {} is a public API route",
                r.method,
                r.path
            );
            assert!(
                PUBLIC_PAGES.contains(&r.path),
                "{} {} must not be public: only the login pages and static assets are",
                r.method,
                r.path
            );
            if r.method != actix_web::http::Method::GET {
                assert!(
                    PUBLIC_MUTATIONS.contains(&r.path),
                    "{} {} is an unprotected mutation",
                    r.method,
                    r.path
                );
            }
        }
        if r.surface == Surface::Api {
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
        }
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
async fn every_protected_route_refuses_requests_without_valid_credentials() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for r in state_hub::routes::table() {
        if r.access == Access::Public {
            continue;
        }
        let path = concrete(r.path);
        for (token, cookie) in [
            (None, None),
            (
                Some("hpt_not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                None,
            ),
            (None, Some("__Host-state-hub-session=forged-session-secret")),
        ] {
            let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
            let mut req = http
                .request(method, app.url(&path))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.unwrap();
            match r.surface {
                Surface::Api => assert_eq!(
                    res.status(),
                    401,
                    "{} {} answered {} without valid credentials",
                    r.method,
                    path,
                    res.status()
                ),
                Surface::Page => {
                    assert_eq!(res.status(), 303, "{} {}", r.method, path);
                    let to = res.headers()["location"].to_str().unwrap();
                    assert!(
                        to.starts_with("/auth/login?next="),
                        "{} {} → {to}",
                        r.method,
                        path
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn every_mutation_reached_with_a_cookie_needs_the_csrf_token() {
    let app = TestApp::spawn().await;
    let admin = app.browser_as("root-admin", &["hub_admins"]).await;
    let before = app.event_count().await;
    let mut checked = 0;
    for r in state_hub::routes::table() {
        if r.access == Access::Public || r.method == actix_web::http::Method::GET {
            continue;
        }
        let path = concrete(r.path);
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        for (header, form) in [
            (None, None),
            (Some("wrong-token"), None),
            (None, Some("csrf_token=wrong-token&title=x")),
        ] {
            let mut req = admin
                .http
                .request(method.clone(), admin.url(&path))
                .header("cookie", &admin.cookie);
            req = match form {
                Some(f) => req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(f),
                None => req.header("content-type", "application/json").body("{}"),
            };
            if let Some(h) = header {
                req = req.header("x-csrf-token", h);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                403,
                "{} {} without a valid CSRF token",
                r.method,
                path
            );
            let body = res.text().await.unwrap();
            match r.surface {
                Surface::Api => assert!(body.contains("csrf-failed"), "{body}"),
                Surface::Page => assert!(body.contains("security token"), "{body}"),
            }
        }
        checked += 1;
    }
    assert!(checked > 15, "only {checked} mutations found");
    assert_eq!(
        app.event_count().await,
        before,
        "a refused request wrote an event"
    );
}

#[tokio::test]
async fn bearer_tokens_need_no_csrf_token_even_with_a_cookie_present() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(&app.token)
        .header("cookie", "__Host-state-hub-session=whatever")
        .json(&serde_json::json!({"event_type": "test.sent", "summary": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn openapi_documents_every_api_route() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app.get_json("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for r in state_hub::routes::table() {
        if r.path == "/api/v1/openapi.json" || r.surface == Surface::Page {
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

#[tokio::test]
async fn pages_render_for_a_bearer_token_without_a_session() {
    let app = TestApp::spawn().await;
    for path in ["/", "/decisions", "/registry", "/capabilities", "/journal"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "GET {path} with a bearer token");
        assert!(!res.text().await.unwrap().contains("break-glass"));
    }
}
