//! The architecture's open decisions (docs/decisions/open-decisions.json) are valid proposals:
//! each one, as `hubctl decisions import` sends it, is accepted by the API as an open decision.

use crate::helpers::TestApp;
use serde_json::{json, Value};

#[tokio::test]
async fn every_open_decision_of_the_seed_file_is_accepted_by_the_api() {
    let app = TestApp::spawn().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/decisions/open-decisions.json");
    let seeds: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let seeds = seeds["decisions"].as_array().unwrap();
    assert_eq!(seeds.len(), 5);
    for seed in seeds {
        let title = format!(
            "{}: {}",
            seed["id"].as_str().unwrap(),
            seed["title"].as_str().unwrap()
        );
        let r = app
            .post(
                "/api/v1/decisions",
                json!({"title": title, "context": seed["context"], "options": seed["options"]}),
            )
            .await;
        assert_eq!(r.status(), 201, "{title}: {}", r.text().await.unwrap());
        let d: Value = r.json().await.unwrap();
        assert_eq!(d["status"], "open");
        assert_eq!(d["title"], title.as_str());
        assert_eq!(d["options"], seed["options"]);
    }
}
