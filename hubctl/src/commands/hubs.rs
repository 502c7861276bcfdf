//! `hubctl hubs`: the registered hubs with their judged health, and the hub kinds.

use super::Ctx;
use crate::cli::{HubsCommand, KindsCommand};
use crate::output::{list, opt, opt_time, record, text, time};
use hub_core::api::registry::{Hub, HubHealth, HubKind, NewHubKind};

/// Runs a `hubs` subcommand.
pub async fn run(ctx: &Ctx, cmd: HubsCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match cmd {
        HubsCommand::List => {
            let reply = c.send(c.get(&["hubs"])).await?;
            ctx.out.show(reply.body, |hubs: &Vec<Hub>| {
                list(
                    [
                        "name",
                        "kind",
                        "health",
                        "last seen",
                        "heartbeat",
                        "manifest",
                        "base url",
                    ],
                    hubs.iter().map(|h| {
                        [
                            h.name.clone(),
                            h.kind.clone(),
                            health(h.health).to_owned(),
                            opt_time(h.last_seen.as_ref()),
                            format!("{} s", h.heartbeat_seconds),
                            opt(h.active_manifest.as_ref()),
                            h.base_url.clone(),
                        ]
                    }),
                )
            })
        }
        HubsCommand::Show { name } => {
            let reply = c.send(c.get(&["hubs", &name])).await?;
            ctx.out.show(reply.body, hub_record)
        }
        HubsCommand::Kinds(KindsCommand::List) => {
            let reply = c.send(c.get(&["hub-kinds"])).await?;
            ctx.out.show(reply.body, |kinds: &Vec<HubKind>| {
                list(
                    ["name", "description", "added"],
                    kinds
                        .iter()
                        .map(|k| [k.name.clone(), text(&k.description), time(&k.created_at)]),
                )
            })
        }
        HubsCommand::Kinds(KindsCommand::Add { name, description }) => {
            let body = NewHubKind { name, description };
            let reply = c.send(c.post(&["hub-kinds"], &body)).await?;
            ctx.out.show(reply.body, |k: &HubKind| {
                record([
                    ("name", k.name.clone()),
                    ("description", text(&k.description)),
                    ("added", time(&k.created_at)),
                ])
            })
        }
    }
}

/// The name of a health judgement.
pub fn health(h: HubHealth) -> &'static str {
    match h {
        HubHealth::Passing => "passing",
        HubHealth::Warning => "warning",
        HubHealth::Critical => "critical",
        HubHealth::Unknown => "unknown",
    }
}

fn hub_record(h: &Hub) -> comfy_table::Table {
    record([
        ("name", h.name.clone()),
        ("kind", h.kind.clone()),
        ("base url", h.base_url.clone()),
        ("health", health(h.health).to_owned()),
        ("detail", opt(h.detail.as_ref())),
        ("last seen", opt_time(h.last_seen.as_ref())),
        ("heartbeat", format!("every {} s", h.heartbeat_seconds)),
        ("active manifest", opt(h.active_manifest.as_ref())),
        ("registered", time(&h.registered_at)),
    ])
}
