//! The architecture's open decisions (docs/decisions/open-decisions.json) as the demo seeds them:
//! `hubctl decisions import` proposes each once, however often it runs.

use super::{items, str_of, Hub};
use serde_json::Value;
use std::path::Path;

fn seed_file() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/decisions/open-decisions.json");
    format!("'{}'", path.display())
}

fn open_decisions(hub: &Hub) -> Vec<Value> {
    items(&hub.json("decisions list --all --status open"))
        .iter()
        .filter(|d| str_of(&d["title"]).starts_with("OA-D"))
        .cloned()
        .collect()
}

#[test]
fn the_open_decisions_are_imported_once_however_often_the_demo_seeds() {
    let hub = Hub::start();
    let file = seed_file();

    let dry = hub.json(&format!("decisions import {file} --dry-run"));
    assert_eq!(dry["created"], 5, "{dry}");
    assert!(
        open_decisions(&hub).is_empty(),
        "a dry run proposes nothing"
    );

    let first = hub.json(&format!("decisions import {file}"));
    assert_eq!(first["created"], 5, "{first}");
    assert_eq!(first["existing"], 0);
    let seeded = open_decisions(&hub);
    let mut titles: Vec<&str> = seeded.iter().map(|d| str_of(&d["title"])).collect();
    titles.sort();
    let ids: Vec<&str> = titles.iter().map(|t| &t[..6]).collect();
    assert_eq!(ids, ["OA-D01", "OA-D02", "OA-D03", "OA-D04", "OA-D05"]);
    for d in &seeded {
        assert_eq!(d["status"], "open");
        assert_eq!(d["decision_type"], "pending");
        assert!(d["options"].as_array().unwrap().len() >= 2, "{d}");
        assert!(!str_of(&d["context"]).is_empty());
    }

    // Again, and once more after one of them moved on: nothing is proposed twice.
    let second = hub.json(&format!("decisions import {file}"));
    assert_eq!(second["created"], 0, "{second}");
    assert_eq!(second["existing"], 5);
    let oa_d02 = seeded
        .iter()
        .find(|d| str_of(&d["title"]).starts_with("OA-D02:"))
        .unwrap();
    hub.json(&format!(
        "decisions escalate {} --reason 'Needs the budget owner'",
        str_of(&oa_d02["id"])
    ));
    let table = hub.ctl(&format!("decisions import {file}")).success();
    assert!(
        table.stderr.contains("proposed 0, already present 5"),
        "{table:?}"
    );
    let all = items(&hub.json("decisions list --all")).clone();
    for id in ["OA-D01", "OA-D02", "OA-D03", "OA-D04", "OA-D05"] {
        let n = all
            .iter()
            .filter(|d| str_of(&d["title"]).starts_with(&format!("{id}:")))
            .count();
        assert_eq!(n, 1, "{id} exists once");
    }
}
