//! `hubctl manifests`: submit a hub's manifest, validate one offline with the hub's own
//! validator, review, activate and retire.

use super::Ctx;
use crate::cli::ManifestsCommand;
use crate::client::with_if_match;
use crate::output::{joined, list, opt_time, record, text, time, Output};
use anyhow::Context;
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{ManifestRecord, ManifestStatus};
use std::path::Path;

/// A manifest file with problems: every one, each with its field path.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {} problem(s):{}", .problems.len(), .problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
pub struct InvalidManifest {
    /// The file.
    pub file: String,
    /// `field: message` lines.
    pub problems: Vec<String>,
}

/// Reads and parses a manifest file (JSON).
fn read(path: &Path) -> anyhow::Result<Manifest> {
    let raw =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&raw).map_err(|e| {
        InvalidManifest {
            file: path.display().to_string(),
            problems: vec![format!("not a manifest document: {e}")],
        }
        .into()
    })
}

/// `hubctl manifests validate FILE`: the validator the state hub runs, without a hub.
pub fn validate(out: Output, file: &Path) -> anyhow::Result<()> {
    let m = read(file)?;
    let problems = m.validate();
    if !problems.is_empty() {
        return Err(InvalidManifest {
            file: file.display().to_string(),
            problems: problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect(),
        }
        .into());
    }
    let body = serde_json::json!({"file": file.display().to_string(), "hub": m.hub, "version": m.version, "valid": true});
    out.confirm(
        &body,
        &format!(
            "{}: manifest {} of {} is valid",
            file.display(),
            m.version,
            m.hub
        ),
    )
}

/// Runs a `manifests` subcommand that talks to the hub.
pub async fn run(ctx: &Ctx, cmd: ManifestsCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let reply = match cmd {
        ManifestsCommand::List { hub } => {
            let reply = c.send(c.get(&["hubs", &hub, "manifests"])).await?;
            return ctx.out.show(reply.body, |ms: &Vec<ManifestRecord>| {
                list(
                    [
                        "id",
                        "version",
                        "status",
                        "submitted by",
                        "submitted",
                        "activated",
                    ],
                    ms.iter().map(|m| {
                        [
                            m.id.to_string(),
                            m.version.clone(),
                            status(m.status).to_owned(),
                            m.submitted_by.clone(),
                            time(&m.created_at),
                            opt_time(m.activated_at.as_ref()),
                        ]
                    }),
                )
            });
        }
        ManifestsCommand::Show { id } => c.send(c.get(&["manifests", &id.to_string()])).await?,
        ManifestsCommand::Submit { file } => {
            let m = read(&file)?;
            c.send(c.post(&["hubs", &m.hub, "manifests"], &m)).await?
        }
        ManifestsCommand::Validate { file } => return validate(ctx.out, &file),
        ManifestsCommand::Activate { id, if_match } => {
            let req = c.post(
                &["manifests", &id.to_string(), "activate"],
                &serde_json::json!({}),
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        ManifestsCommand::Retire { id, if_match } => {
            let req = c.post(
                &["manifests", &id.to_string(), "retire"],
                &serde_json::json!({}),
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
    };
    ctx.out.show(reply.body, manifest_record)
}

fn status(s: ManifestStatus) -> &'static str {
    match s {
        ManifestStatus::Draft => "draft",
        ManifestStatus::Active => "active",
        ManifestStatus::Retired => "retired",
    }
}

fn manifest_record(r: &ManifestRecord) -> comfy_table::Table {
    let m = &r.manifest;
    let names = |items: Vec<&str>| joined(&items);
    let actions: Vec<String> = m
        .actions
        .iter()
        .map(|a| {
            let decision = if a.requires_decision {
                ", needs an approved decision"
            } else {
                ""
            };
            format!(
                "{} (POST {} {}, scope {}{decision})",
                a.name, a.capability, a.path, a.scope
            )
        })
        .collect();
    let capabilities: Vec<String> = m
        .capabilities
        .iter()
        .map(|c| {
            format!(
                "{} every {} s: {}",
                c.name,
                c.poll_seconds,
                c.poll_paths.join(" ")
            )
        })
        .collect();
    record([
        ("id", r.id.to_string()),
        ("hub", format!("{} ({})", r.hub, m.kind)),
        ("version", r.version.clone()),
        ("status", status(r.status).to_owned()),
        ("description", text(&m.description)),
        (
            "submitted",
            format!("{} at {}", r.submitted_by, time(&r.created_at)),
        ),
        (
            "activated",
            match (&r.activated_by, &r.activated_at) {
                (Some(by), Some(at)) => format!("{by} at {}", time(at)),
                _ => "-".to_owned(),
            },
        ),
        ("retired", opt_time(r.retired_at.as_ref())),
        (
            "event types",
            names(m.event_types.iter().map(|t| t.name.as_str()).collect()),
        ),
        (
            "widgets",
            names(m.widget_types.iter().map(|w| w.name.as_str()).collect()),
        ),
        (
            "annotation categories",
            names(
                m.annotation_categories
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
        ),
        (
            "policy scopes",
            names(m.policy_scopes.iter().map(|s| s.name.as_str()).collect()),
        ),
        ("capabilities", joined(&capabilities)),
        ("actions", joined(&actions)),
        ("etag", hub_core::http::etag::etag(r.revision)),
    ])
}
