//! The instance's manifest file: read, parsed and validated at start, with every problem listed,
//! so an operator fixes the file in one round before the hub submits it anywhere.

use hub_core::api::manifest::Manifest;
use std::path::Path;

/// Reads `path` and checks it is a valid manifest of hub `name` of kind `kind`; on failure,
/// one line per problem (`actions[0].scope: not declared in policy_scopes`).
pub fn load(path: &Path, name: &str, kind: &str) -> Result<Manifest, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    // serde_json's message names an unknown field or the line and column of a syntax error.
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| vec![format!("{} is not a manifest: {e}", path.display())])?;
    let mut problems: Vec<String> = manifest
        .validate()
        .into_iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    if manifest.hub != name {
        problems.push(format!(
            "hub: `{}` is not this instance's hub.name `{name}`",
            manifest.hub
        ));
    }
    if manifest.kind != kind {
        problems.push(format!(
            "kind: `{}` is not this instance's hub.kind `{kind}`",
            manifest.kind
        ));
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(problems)
    }
}

/// The manifest's rule for hub, kind and capability names: 1–64 lowercase letters, digits, `-`
/// or `_`, starting with a letter.
pub fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("dh-manifest-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let p = write(
            r#"{"hub": "ops-hub", "kind": "ops", "version": "1.0",
                "policy_scopes": [{"name": "ops-hub:freeze.request"}],
                "capabilities": [{"name": "deployments", "poll_paths": ["/deployments/status"], "poll_seconds": 5}],
                "actions": [{"name": "freeze", "capability": "deployments", "path": "/deployments/freeze",
                             "scope": "ops-hub:nope", "requires_decision": true}]}"#,
        );
        let problems = load(&p, "dev-hub", "ops").unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("version:"));
        assert!(problems[1].starts_with("capabilities[0].poll_seconds:"));
        assert!(problems[2].starts_with("actions[0].scope:"));
        assert!(problems[3].contains("`ops-hub` is not this instance's hub.name `dev-hub`"));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn syntax_errors_and_unknown_fields_say_where() {
        let p = write("{\"hub\": \"x\", \"kind\": \"x\", \"version\": \"1.0.0\", \"oops\": 1}");
        let problems = load(&p, "x", "x").unwrap_err();
        assert!(problems[0].contains("unknown field `oops`"), "{problems:?}");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn the_shipped_manifests_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        for (name, kind) in [("dev-hub", "dev"), ("ops-hub", "ops"), ("fin-hub", "fin")] {
            let m = load(&dir.join(format!("{name}.json")), name, kind);
            assert!(m.is_ok(), "{name}: {:?}", m.err());
        }
    }
}
