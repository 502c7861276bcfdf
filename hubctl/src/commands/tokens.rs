//! `hubctl tokens`, `hubctl token generate` and `hubctl whoami`.

use super::Ctx;
use crate::cli::{TokenCommand, TokensCommand};
use crate::output::{self, joined, list, note, opt_time, record, time, Output};
use anyhow::Context;
use hub_core::api::tokens::{CreatedToken, NewTokenRequest, TokenInfo, WhoAmI};
use reqwest::Method;
use secrecy::ExposeSecret;

/// Runs a `tokens` subcommand.
pub async fn run(ctx: &Ctx, cmd: TokensCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match cmd {
        TokensCommand::List { include_revoked } => {
            let mut req = c.get(&["tokens"]);
            if include_revoked {
                req = req.query(&[("include_revoked", "true")]);
            }
            let reply = c.send(req).await?;
            ctx.out.show(reply.body, |ts: &Vec<TokenInfo>| {
                list(
                    [
                        "id",
                        "name",
                        "prefix",
                        "subject",
                        "kind",
                        "roles",
                        "active",
                        "expires",
                        "last used",
                    ],
                    ts.iter().map(|t| {
                        [
                            t.id.to_string(),
                            t.name.clone(),
                            format!("{}…", t.prefix),
                            t.subject.clone(),
                            t.kind.as_str().to_owned(),
                            joined(&t.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
                            if t.active { "yes" } else { "no" }.to_owned(),
                            opt_time(t.expires_at.as_ref()),
                            opt_time(t.last_used_at.as_ref()),
                        ]
                    }),
                )
            })
        }
        TokensCommand::Create {
            name,
            subject,
            kind,
            roles,
            scopes,
            expires_in_days,
        } => {
            let body = NewTokenRequest {
                name,
                subject,
                kind,
                roles,
                scopes,
                expires_in_days,
            };
            let reply = c.send(c.post(&["tokens"], &body)).await?;
            if ctx.out.is_json() {
                note("warning: the JSON below holds the token secret; it is shown once and never again");
                return output::print_json(&reply.body);
            }
            let created: CreatedToken = serde_json::from_value(reply.body)
                .context("the hub's answer does not have the expected shape")?;
            output::print_line(&token_record(&created.info).to_string())?;
            note("Store this token now (e.g. in a file for --token-file): it is shown once and never again.");
            output::print_line(&created.token)
        }
        TokensCommand::Revoke { id } => {
            let reply = c
                .send(c.request(Method::DELETE, &["tokens", &id.to_string()]))
                .await?;
            ctx.out.show(reply.body, token_record)
        }
    }
}

/// `hubctl token generate`: no hub involved.
pub fn offline(out: Output, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Generate => {
            let token = hub_core::auth::tokens::generate();
            if out.is_json() {
                output::print_json(&serde_json::json!({ "token": token.expose_secret() }))
            } else {
                output::print_line(token.expose_secret())
            }
        }
    }
}

/// `hubctl whoami`.
pub async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let reply = ctx.client.send(ctx.client.get(&["whoami"])).await?;
    ctx.out.show(reply.body, |w: &WhoAmI| {
        record([
            ("subject", w.subject.clone()),
            ("kind", w.kind.as_str().to_owned()),
            (
                "roles",
                joined(&w.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
            ),
            ("scopes", joined(&w.scopes)),
            ("permissions", joined(&w.permissions)),
        ])
    })
}

fn token_record(t: &TokenInfo) -> comfy_table::Table {
    record([
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("prefix", format!("{}…", t.prefix)),
        ("subject", t.subject.clone()),
        ("kind", t.kind.as_str().to_owned()),
        (
            "roles",
            joined(&t.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
        ),
        ("scopes", joined(&t.scopes)),
        (
            "created by",
            format!("{} at {}", t.created_by, time(&t.created_at)),
        ),
        ("expires", opt_time(t.expires_at.as_ref())),
        ("revoked", opt_time(t.revoked_at.as_ref())),
        ("active", t.active.to_string()),
    ])
}
