//! `hubctl workstreams|workplans|tasks`.

use super::Ctx;
use crate::cli::{TasksCommand, WorkplansCommand, WorkstreamsCommand};
use crate::client::with_if_match;
use crate::output::{list, opt, opt_time, record, text, time};
use hub_core::api::plans::{
    AcceptRequest, NewTask, NewWorkplan, NewWorkstream, ReopenRequest, Task, TaskPatch, Workplan,
    Workstream,
};
use hub_core::http::etag::etag;
use reqwest::Method;
use uuid::Uuid;

/// Runs a `workstreams` subcommand.
pub async fn workstreams(ctx: &Ctx, cmd: WorkstreamsCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match cmd {
        WorkstreamsCommand::List => {
            let reply = c.send(c.get(&["workstreams"])).await?;
            ctx.out.show(reply.body, |ws: &Vec<Workstream>| {
                list(
                    ["id", "slug", "title", "created by", "created"],
                    ws.iter().map(|w| {
                        [
                            w.id.to_string(),
                            w.slug.clone(),
                            w.title.clone(),
                            w.created_by.clone(),
                            time(&w.created_at),
                        ]
                    }),
                )
            })
        }
        WorkstreamsCommand::Show { key } => {
            let reply = c.send(c.get(&["workstreams", &key])).await?;
            ctx.out.show(reply.body, workstream_record)
        }
        WorkstreamsCommand::Create {
            slug,
            title,
            description,
        } => {
            let body = NewWorkstream {
                slug,
                title,
                description,
            };
            let reply = c.send(c.post(&["workstreams"], &body)).await?;
            ctx.out.show(reply.body, workstream_record)
        }
    }
}

/// A workstream id, looking a slug up when given one.
async fn workstream_id(ctx: &Ctx, key: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(key) {
        return Ok(id);
    }
    let reply = ctx
        .client
        .send(ctx.client.get(&["workstreams", key]))
        .await?;
    let ws: Workstream = serde_json::from_value(reply.body)?;
    Ok(ws.id)
}

/// Runs a `workplans` subcommand.
pub async fn workplans(ctx: &Ctx, cmd: WorkplansCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let reply = match cmd {
        WorkplansCommand::List { workstream, status } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(key) = workstream {
                query.push(("workstream_id", workstream_id(ctx, &key).await?.to_string()));
            }
            if let Some(s) = status {
                query.push(("status", s.as_str().to_owned()));
            }
            let reply = c.send(c.get(&["workplans"]).query(&query)).await?;
            return ctx.out.show(reply.body, |wps: &Vec<Workplan>| {
                list(
                    [
                        "id",
                        "status",
                        "title",
                        "workstream",
                        "created by",
                        "created",
                    ],
                    wps.iter().map(|w| {
                        [
                            w.id.to_string(),
                            w.status.as_str().to_owned(),
                            w.title.clone(),
                            w.workstream_id.to_string(),
                            w.created_by.clone(),
                            time(&w.created_at),
                        ]
                    }),
                )
            });
        }
        WorkplansCommand::Show { id } => c.send(c.get(&["workplans", &id.to_string()])).await?,
        WorkplansCommand::Create {
            workstream,
            title,
            description,
        } => {
            let body = NewWorkplan { title, description };
            c.send(c.post(&["workstreams", &workstream, "workplans"], &body))
                .await?
        }
        WorkplansCommand::Finish { id, if_match } => {
            let req = c.request(Method::POST, &["workplans", &id.to_string(), "finish"]);
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        WorkplansCommand::Accept {
            id,
            comment,
            if_match,
        } => {
            let req = c.post(
                &["workplans", &id.to_string(), "accept"],
                &AcceptRequest { comment },
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        WorkplansCommand::Reopen {
            id,
            reason,
            if_match,
        } => {
            let req = c.post(
                &["workplans", &id.to_string(), "reopen"],
                &ReopenRequest { reason },
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
    };
    ctx.out.show(reply.body, workplan_record)
}

/// Runs a `tasks` subcommand.
pub async fn tasks(ctx: &Ctx, cmd: TasksCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let reply = match cmd {
        TasksCommand::List {
            workplan,
            status,
            assignee,
            needs_human,
            blocked,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(w) = workplan {
                query.push(("workplan_id", w.to_string()));
            }
            if let Some(s) = status {
                query.push(("status", s.as_str().to_owned()));
            }
            if let Some(a) = assignee {
                query.push(("assignee", a));
            }
            if needs_human {
                query.push(("needs_human", "true".to_owned()));
            }
            if blocked {
                query.push(("blocked", "true".to_owned()));
            }
            let reply = c.send(c.get(&["tasks"]).query(&query)).await?;
            return ctx.out.show(reply.body, |ts: &Vec<Task>| {
                list(
                    [
                        "id",
                        "status",
                        "title",
                        "assignee",
                        "needs human",
                        "blocked by",
                    ],
                    ts.iter().map(|t| {
                        [
                            t.id.to_string(),
                            t.status.as_str().to_owned(),
                            t.title.clone(),
                            opt(t.assignee.as_ref()),
                            if t.needs_human { "yes" } else { "no" }.to_owned(),
                            t.blocked_by.len().to_string(),
                        ]
                    }),
                )
            });
        }
        TasksCommand::Show { id } => c.send(c.get(&["tasks", &id.to_string()])).await?,
        TasksCommand::Create {
            workplan,
            title,
            description,
            assignee,
            status,
            blocking_reason,
            needs_human,
        } => {
            let body = NewTask {
                title,
                description,
                status,
                assignee,
                needs_human,
                blocking_reason,
            };
            c.send(c.post(&["workplans", &workplan.to_string(), "tasks"], &body))
                .await?
        }
        TasksCommand::Update {
            id,
            title,
            description,
            status,
            assignee,
            unassign,
            needs_human,
            blocking_reason,
            clear_blocking_reason,
            if_match,
        } => {
            let patch = TaskPatch {
                title,
                description,
                status,
                assignee: if unassign {
                    Some(None)
                } else {
                    assignee.map(Some)
                },
                needs_human,
                blocking_reason: if clear_blocking_reason {
                    Some(None)
                } else {
                    blocking_reason.map(Some)
                },
            };
            let req = c
                .request(Method::PATCH, &["tasks", &id.to_string()])
                .json(&patch);
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
    };
    ctx.out.show(reply.body, task_record)
}

fn workstream_record(w: &Workstream) -> comfy_table::Table {
    record([
        ("id", w.id.to_string()),
        ("slug", w.slug.clone()),
        ("title", w.title.clone()),
        ("description", text(&w.description)),
        (
            "created by",
            format!("{} at {}", w.created_by, time(&w.created_at)),
        ),
        ("etag", etag(w.version)),
    ])
}

fn workplan_record(w: &Workplan) -> comfy_table::Table {
    record([
        ("id", w.id.to_string()),
        ("workstream", w.workstream_id.to_string()),
        ("title", w.title.clone()),
        ("description", text(&w.description)),
        ("status", w.status.as_str().to_owned()),
        (
            "created by",
            format!("{} at {}", w.created_by, time(&w.created_at)),
        ),
        (
            "finished by",
            format!(
                "{} at {}",
                opt(w.finished_by.as_ref()),
                opt_time(w.finished_at.as_ref())
            ),
        ),
        (
            "accepted by",
            format!(
                "{} at {}",
                opt(w.accepted_by.as_ref()),
                opt_time(w.accepted_at.as_ref())
            ),
        ),
        ("review comment", opt(w.review_comment.as_ref())),
        ("etag", etag(w.version)),
    ])
}

fn task_record(t: &Task) -> comfy_table::Table {
    record([
        ("id", t.id.to_string()),
        ("workplan", t.workplan_id.to_string()),
        ("title", t.title.clone()),
        ("description", text(&t.description)),
        ("status", t.status.as_str().to_owned()),
        ("assignee", opt(t.assignee.as_ref())),
        ("needs human", t.needs_human.to_string()),
        ("blocking reason", opt(t.blocking_reason.as_ref())),
        ("blocked by", crate::output::joined(&t.blocked_by)),
        (
            "created by",
            format!("{} at {}", t.created_by, time(&t.created_at)),
        ),
        ("updated", time(&t.updated_at)),
        ("etag", etag(t.version)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_sends_null_only_for_cleared_fields() {
        let p = TaskPatch {
            assignee: Some(None),
            status: Some(hub_core::api::plans::TaskStatus::Progress),
            ..Default::default()
        };
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body, json!({"assignee": null, "status": "progress"}));
        assert_eq!(
            serde_json::to_value(TaskPatch::default()).unwrap(),
            json!({})
        );
    }
}
