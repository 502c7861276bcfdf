//! `hubctl decisions import`: proposes the decisions of a seed file, such as the architecture's
//! open decisions (docs/decisions/open-decisions.json), each exactly once.
//!
//! A seed decision is proposed titled `<id>: <title>`. The decisions API takes no idempotency key,
//! so the title is the key: a decision whose title starts with `<id>:` (in any status, even after
//! it was superseded or its wording changed) counts as already imported, and re-running the
//! import, as the demo's seeding does, proposes nothing twice.

use super::{pages, Ctx};
use crate::output::{self, list};
use anyhow::Context;
use hub_core::api::decisions::{Decision, NewDecision};
use hub_core::api::page::MAX_LIMIT;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The `format` of a seed file.
pub const FORMAT: &str = "hubplane.open-decisions";
/// The `format_version` this hubctl reads.
pub const FORMAT_VERSION: u32 = 1;

/// A seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`].
    pub format_version: u32,
    /// What the file is, for people.
    #[serde(default)]
    pub description: String,
    /// The decisions, proposed in this order.
    pub decisions: Vec<Seed>,
}

/// One decision to propose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Stable key, e.g. `OA-D01`; prefixes the title in the hub.
    pub id: String,
    /// One line.
    pub title: String,
    /// Background.
    #[serde(default)]
    pub context: String,
    /// The options considered.
    #[serde(default)]
    pub options: Vec<String>,
}

impl Seed {
    /// The title the decision has in the hub.
    pub fn hub_title(&self) -> String {
        format!("{}: {}", self.id, self.title)
    }

    /// Whether `title` is this seed's decision (by its id prefix).
    pub fn matches(&self, title: &str) -> bool {
        title
            .strip_prefix(self.id.as_str())
            .is_some_and(|rest| rest.starts_with(':'))
    }
}

/// Why a seed file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Not readable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a seed file.
    #[error("{path} is not a decision seed file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: serde_json::Error,
    },
    /// A seed file with problems, one per line.
    #[error("{path} has {} problem(s); nothing was proposed:\n{}", .problems.len(), .problems.join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `decisions[i].field: what`.
        problems: Vec<String>,
    },
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.as_bytes()[0].is_ascii_uppercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// Reads and checks a seed file; the hub checks each decision's fields again when proposed.
pub fn load(path: &Path) -> Result<SeedFile, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: SeedFile = serde_json::from_str(&text).map_err(|source| SeedError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    if file.format != FORMAT {
        problems.push(format!("format: must be \"{FORMAT}\""));
    }
    if file.format_version != FORMAT_VERSION {
        problems.push(format!(
            "format_version: version {} is not supported; this hubctl reads version {FORMAT_VERSION}",
            file.format_version
        ));
    }
    if file.decisions.is_empty() {
        problems.push("decisions: the file proposes nothing".to_owned());
    }
    for (i, seed) in file.decisions.iter().enumerate() {
        if !valid_id(&seed.id) {
            problems.push(format!(
                "decisions[{i}].id: `{}` must be 1-32 upper-case letters, digits or `-`, starting with a letter",
                seed.id
            ));
        } else if let Some(j) = file.decisions[..i].iter().position(|s| s.id == seed.id) {
            problems.push(format!(
                "decisions[{i}].id: `{}` is also decisions[{j}].id",
                seed.id
            ));
        }
        if seed.title.trim().is_empty() {
            problems.push(format!("decisions[{i}].title: must not be empty"));
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(SeedError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// What happened to one seed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Proposed now.
    Created,
    /// The hub had it already.
    Exists,
    /// A dry run would propose it.
    WouldCreate,
}

/// Runs `hubctl decisions import FILE`.
pub async fn import(ctx: &Ctx, path: &Path, dry_run: bool) -> anyhow::Result<()> {
    let file = load(path)?;
    let c = &ctx.client;
    let (items, _) = pages(
        ctx,
        &["decisions"],
        &[("limit", MAX_LIMIT.to_string())],
        None,
        true,
    )
    .await?;
    let known: Vec<Decision> = serde_json::from_value(Value::Array(items))
        .context("the hub's decisions do not have the expected shape")?;
    let mut results: Vec<(String, Outcome, Option<Decision>, String)> = Vec::new();
    for seed in &file.decisions {
        let title = seed.hub_title();
        if let Some(d) = known.iter().find(|d| seed.matches(&d.title)) {
            results.push((
                seed.id.clone(),
                Outcome::Exists,
                Some(d.clone()),
                d.title.clone(),
            ));
            continue;
        }
        if dry_run {
            results.push((seed.id.clone(), Outcome::WouldCreate, None, title));
            continue;
        }
        let body = NewDecision {
            title: title.clone(),
            context: seed.context.clone(),
            options: seed.options.clone(),
            outcome: None,
            task_ids: Vec::new(),
        };
        let reply = c
            .send(c.post(&["decisions"], &body))
            .await
            .with_context(|| format!("proposing {}", seed.id))?;
        let d: Decision = serde_json::from_value(reply.body)
            .context("the hub's decision does not have the expected shape")?;
        results.push((seed.id.clone(), Outcome::Created, Some(d), title));
    }
    let count = |o: fn(&Outcome) -> bool| results.iter().filter(|r| o(&r.1)).count();
    let created = count(|o| matches!(o, Outcome::Created | Outcome::WouldCreate));
    let existing = count(|o| matches!(o, Outcome::Exists));
    if ctx.out.is_json() {
        let rows: Vec<Value> = results
            .iter()
            .map(|(id, outcome, d, title)| json!({"seed": id, "result": outcome, "title": title, "decision": d}))
            .collect();
        return output::print_json(&json!({
            "file": path, "description": file.description, "dry_run": dry_run,
            "created": created, "existing": existing, "decisions": rows,
        }));
    }
    let table = list(
        ["seed", "result", "decision", "status", "title"],
        results.iter().map(|(id, outcome, d, title)| {
            [
                id.clone(),
                match outcome {
                    Outcome::Created => "proposed",
                    Outcome::Exists => "exists",
                    Outcome::WouldCreate => "would propose",
                }
                .to_owned(),
                d.as_ref().map(|d| d.id.to_string()).unwrap_or_default(),
                d.as_ref()
                    .map(|d| d.status.as_str().to_owned())
                    .unwrap_or_default(),
                title.clone(),
            ]
        }),
    );
    output::print_line(&table.to_string())?;
    let verb = if dry_run { "would propose" } else { "proposed" };
    output::note(&format!(
        "{verb} {created}, already present {existing} (of {} in {})",
        results.len(),
        path.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    #[test]
    fn the_architecture_open_decisions_are_a_valid_seed_file() {
        let file = load(&repo_file("docs/decisions/open-decisions.json")).unwrap();
        let ids: Vec<&str> = file.decisions.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["OA-D01", "OA-D02", "OA-D03", "OA-D04", "OA-D05"]);
        for s in &file.decisions {
            assert!(s.hub_title().chars().count() <= 200, "{}", s.id);
            assert!(s.options.len() >= 2, "{} offers a choice", s.id);
            assert!(!s.context.is_empty(), "{} has context", s.id);
        }
    }

    #[test]
    fn a_seed_matches_its_id_prefix_only() {
        let s = Seed {
            id: "OA-D01".into(),
            title: "t".into(),
            context: String::new(),
            options: Vec::new(),
        };
        assert!(s.matches("OA-D01: t"));
        assert!(s.matches("OA-D01: reworded"));
        assert!(!s.matches("OA-D010: other"));
        assert!(!s.matches("About OA-D01: t"));
    }

    #[test]
    fn every_problem_of_a_seed_file_is_listed() {
        let dir = std::env::temp_dir().join(format!("seeds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.json");
        std::fs::write(
            &path,
            r#"{"format": "x", "format_version": 2, "decisions": [
                {"id": "OA-D01", "title": "a"}, {"id": "OA-D01", "title": " "}, {"id": "oa", "title": "b"}]}"#,
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        for want in [
            "format: must be",
            "format_version: version 2",
            "decisions[1].id: `OA-D01` is also decisions[0].id",
            "decisions[1].title: must not be empty",
            "decisions[2].id: `oa` must be",
        ] {
            assert!(err.contains(want), "{want} in {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
