//! One module per resource; each turns parsed arguments into API calls and printed results.

pub mod audit;
pub mod capabilities;
pub mod decision_seeds;
pub mod decisions;
pub mod events;
pub mod hubs;
pub mod manifests;
pub mod plans;
pub mod secret;
pub mod tokens;

use crate::cli::{Cli, Command, CompletionShell, EventsCommand, ManifestsCommand};
use crate::client::{self, Client, ClientOptions};
use crate::output::Output;
use clap::CommandFactory;
use serde_json::Value;
use std::time::Duration;

/// What every API command needs.
pub struct Ctx {
    /// The hub.
    pub client: Client,
    /// How to print.
    pub out: Output,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output::new(cli.output);
    let command = match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Token(cmd) => return tokens::offline(out, cmd),
        Command::Secret(cmd) if !cmd.uses_hub() => return secret::run(out, cmd),
        Command::Manifests(ManifestsCommand::Validate { file }) => {
            return manifests::validate(out, &file)
        }
        // Reads NATS, not the hub: no token needed.
        Command::Events(EventsCommand::Tail {
            from_seq,
            event_type,
            noun,
            nats,
        }) if nats.from_nats.is_some() => {
            return events::tail_nats(
                &out,
                &nats,
                cli.ca_file.as_deref(),
                from_seq,
                event_type,
                noun,
            )
            .await
        }
        other => other,
    };
    let token = client::load_token(cli.token_file.as_deref())?;
    let client = Client::new(ClientOptions {
        base: cli.url,
        token,
        ca_file: cli.ca_file.as_deref(),
        timeout: Duration::from_secs(cli.timeout),
    })?;
    let ctx = Ctx { client, out };
    match command {
        Command::Events(cmd) => events::run(&ctx, cmd).await,
        Command::Decisions(cmd) => decisions::run(&ctx, cmd).await,
        Command::Workstreams(cmd) => plans::workstreams(&ctx, cmd).await,
        Command::Workplans(cmd) => plans::workplans(&ctx, cmd).await,
        Command::Tasks(cmd) => plans::tasks(&ctx, cmd).await,
        Command::Tokens(cmd) => tokens::run(&ctx, cmd).await,
        Command::Whoami => tokens::whoami(&ctx).await,
        Command::Audit(cmd) => audit::run(&ctx, cmd).await,
        Command::Hubs(cmd) => hubs::run(&ctx, cmd).await,
        Command::Manifests(cmd) => manifests::run(&ctx, cmd).await,
        Command::Capabilities(cmd) => capabilities::run(&ctx, cmd).await,
        Command::Secret(cmd) => secret::run_hub(&ctx, cmd).await,
        Command::Completions { .. } | Command::Token(_) => Ok(()),
    }
}

fn completions(shell: CompletionShell) -> anyhow::Result<()> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hubctl", &mut buf);
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&buf)?;
    stdout.flush()?;
    Ok(())
}

/// Fetches a keyset-paginated listing: one page, or with `all` every page from `after` on.
/// Returns the items and the cursor of the page after the last one fetched.
pub async fn pages(
    ctx: &Ctx,
    segments: &[&str],
    query: &[(&str, String)],
    mut after: Option<String>,
    all: bool,
) -> anyhow::Result<(Vec<Value>, Option<String>)> {
    let mut items = Vec::new();
    loop {
        let mut req = ctx.client.get(segments).query(query);
        if let Some(a) = &after {
            req = req.query(&[("after", a)]);
        }
        let reply = ctx.client.send(req).await?;
        let page: hub_core::api::Page<Value> = serde_json::from_value(reply.body)
            .map_err(|e| anyhow::anyhow!("the hub's page does not have the expected shape: {e}"))?;
        items.extend(page.items);
        match page.next {
            Some(next) if all && after.as_ref() == Some(&next) => {
                anyhow::bail!("the hub returned the same page cursor twice; stopping")
            }
            Some(next) if all => after = Some(next),
            next => return Ok((items, next)),
        }
    }
}

/// A listing as the API shapes a page, so `--all` output parses like a single page.
pub fn page_json(items: Vec<Value>, next: Option<String>) -> Value {
    serde_json::json!({ "items": items, "next": next })
}
