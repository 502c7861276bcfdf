//! The workspace's dependency rule: `hubctl` and `hubs/*` depend on `hub-core`; nothing else
//! links a workspace crate. Hubs talk to each other over HTTP with `hub_core::api` types.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn only_hubs_and_hubctl_depend_on_hub_core_and_nothing_else_links_a_workspace_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let members: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for required in ["hub-core", "state-hub", "domain-hub", "hubctl"] {
        assert!(members.contains(&required), "workspace lacks {required}");
    }
    let mut edges = Vec::new();
    for p in packages {
        let from = p["name"].as_str().unwrap();
        for d in p["dependencies"].as_array().unwrap() {
            let to = d["name"].as_str().unwrap();
            if members.contains(&to) {
                edges.push((from.to_owned(), to.to_owned()));
            }
        }
    }
    for (from, to) in &edges {
        let allowed = to == "hub-core" && from != "hub-core";
        assert!(allowed, "forbidden workspace dependency {from} -> {to}: hubs talk over HTTP using hub_core::api");
    }
    for hub in ["state-hub", "domain-hub", "hubctl"] {
        assert!(
            edges.iter().any(|(f, t)| f == hub && t == "hub-core"),
            "{hub} must build on hub-core"
        );
    }
}
