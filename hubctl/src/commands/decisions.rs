//! `hubctl decisions`: propose, escalate, resolve (the two-person rule is the hub's), supersede.

use super::{page_json, pages, Ctx};
use crate::cli::{DecisionsCommand, Proposal};
use crate::client::with_if_match;
use crate::output::{self, joined, list, note, opt, opt_time, record, text, time};
use anyhow::Context;
use hub_core::api::decisions::{
    Decision, DecisionType, EscalateRequest, LinkTaskRequest, NewDecision, OutcomeInput,
    SupersedeRequest,
};
use serde_json::Value;

/// Runs a `decisions` subcommand.
pub async fn run(ctx: &Ctx, cmd: DecisionsCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let reply = match cmd {
        DecisionsCommand::List {
            status,
            limit,
            after,
            all,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(s) = status {
                query.push(("status", s.as_str().to_owned()));
            }
            if let Some(n) = limit.or(all.then_some(hub_core::api::page::MAX_LIMIT)) {
                query.push(("limit", n.to_string()));
            }
            let (items, next) = pages(ctx, &["decisions"], &query, after, all).await?;
            if ctx.out.is_json() {
                return output::print_json(&page_json(items, next));
            }
            let decisions: Vec<Decision> = serde_json::from_value(Value::Array(items))
                .context("the hub's decisions do not have the expected shape")?;
            output::print_line(&decision_table(&decisions).to_string())?;
            if let Some(next) = next {
                note(&format!("more decisions: --after {next} (or --all)"));
            }
            return Ok(());
        }
        DecisionsCommand::Show { id } => c.send(c.get(&["decisions", &id.to_string()])).await?,
        DecisionsCommand::Propose {
            proposal,
            made: _,
            choice,
            rationale,
        } => {
            let outcome = match (choice, rationale) {
                (Some(choice), Some(rationale)) => Some(OutcomeInput { choice, rationale }),
                _ => None,
            };
            let body = new_decision(proposal, outcome);
            c.send(c.post(&["decisions"], &body)).await?
        }
        DecisionsCommand::Escalate {
            id,
            reason,
            if_match,
        } => {
            let req = c.post(
                &["decisions", &id.to_string(), "escalate"],
                &EscalateRequest { reason },
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        DecisionsCommand::Resolve {
            id,
            choice,
            rationale,
            if_match,
        } => {
            let req = c.post(
                &["decisions", &id.to_string(), "resolve"],
                &OutcomeInput { choice, rationale },
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        DecisionsCommand::Supersede {
            id,
            reason,
            proposal,
            if_match,
        } => {
            let body = SupersedeRequest {
                reason,
                replacement: new_decision(proposal, None),
            };
            let req = c.post(&["decisions", &id.to_string(), "supersede"], &body);
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        DecisionsCommand::Import { file, dry_run } => {
            return super::decision_seeds::import(ctx, &file, dry_run).await
        }
        DecisionsCommand::Link { id, task } => {
            c.send(c.post(
                &["decisions", &id.to_string(), "tasks"],
                &LinkTaskRequest { task_id: task },
            ))
            .await?
        }
    };
    ctx.out.show(reply.body, decision_record)
}

fn new_decision(p: Proposal, outcome: Option<OutcomeInput>) -> NewDecision {
    NewDecision {
        title: p.title,
        context: p.context,
        options: p.options,
        outcome,
        task_ids: p.tasks,
    }
}

fn type_name(t: DecisionType) -> &'static str {
    match t {
        DecisionType::Pending => "pending",
        DecisionType::Made => "made",
    }
}

fn decision_table(ds: &[Decision]) -> comfy_table::Table {
    list(
        ["id", "status", "type", "title", "proposed by", "created"],
        ds.iter().map(|d| {
            [
                d.id.to_string(),
                d.status.as_str().to_owned(),
                type_name(d.decision_type).to_owned(),
                d.title.clone(),
                d.proposed_by.clone(),
                time(&d.created_at),
            ]
        }),
    )
}

fn decision_record(d: &Decision) -> comfy_table::Table {
    let mut rows = vec![
        ("id", d.id.to_string()),
        ("title", d.title.clone()),
        ("status", d.status.as_str().to_owned()),
        ("type", type_name(d.decision_type).to_owned()),
        (
            "proposed by",
            format!("{} at {}", d.proposed_by, time(&d.created_at)),
        ),
        ("context", text(&d.context)),
        ("options", joined(&d.options)),
        ("tasks", joined(&d.task_ids)),
    ];
    if let Some(by) = &d.escalated_by {
        rows.push((
            "escalated by",
            format!("{by} at {}", opt_time(d.escalated_at.as_ref())),
        ));
        rows.push(("escalation reason", opt(d.escalation_reason.as_ref())));
    }
    if let Some(o) = &d.outcome {
        rows.push(("choice", o.choice.clone()));
        rows.push(("rationale", o.rationale.clone()));
        rows.push((
            "decided by",
            format!("{} at {}", o.decided_by, time(&o.decided_at)),
        ));
    }
    if let Some(s) = d.supersedes {
        rows.push(("supersedes", s.to_string()));
    }
    if let Some(s) = d.superseded_by {
        rows.push(("superseded by", s.to_string()));
    }
    rows.push(("etag", hub_core::http::etag::etag(d.version)));
    record(rows)
}
