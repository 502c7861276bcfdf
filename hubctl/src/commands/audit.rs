//! `hubctl audit verify`: recomputes the journal's hash chain from the API alone.

use super::Ctx;
use crate::cli::AuditCommand;
use anyhow::Context;
use hub_core::api::events::{ChainHead, Event};
use hub_core::api::page::MAX_LIMIT;
use hub_core::api::Page;
use hub_core::journal::Verifier;
use serde_json::json;

/// The journal does not verify; `main` exits with code 3 for it.
#[derive(Debug, thiserror::Error)]
#[error("audit failed: {0}")]
pub struct AuditFailure(pub String);

/// Runs an `audit` subcommand.
pub async fn run(ctx: &Ctx, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify => verify(ctx).await,
    }
}

async fn verify(ctx: &Ctx) -> anyhow::Result<()> {
    let c = &ctx.client;
    // The head is read first: events appended during the walk come after it and are checked too.
    let head: ChainHead = serde_json::from_value(c.send(c.get(&["audit", "head"])).await?.body)
        .context("the hub's chain head does not have the expected shape")?;
    let mut verifier = Verifier::new();
    let mut hash_at_head: Option<String> = None;
    let mut after: Option<String> = None;
    loop {
        let mut req = c
            .get(&["events"])
            .query(&[("order", "asc"), ("limit", &MAX_LIMIT.to_string())]);
        if let Some(a) = &after {
            req = req.query(&[("after", a)]);
        }
        let page: Page<Event> = serde_json::from_value(c.send(req).await?.body)
            .context("the hub's events do not have the expected shape")?;
        for e in &page.items {
            verifier
                .push(e)
                .map_err(|broken| AuditFailure(format!("broken link at {broken}")))?;
            if e.seq == head.seq {
                hash_at_head = Some(e.hash.clone());
            }
        }
        match page.next {
            Some(next) if after.as_ref() != Some(&next) => after = Some(next),
            Some(_) => anyhow::bail!("the hub returned the same page cursor twice; stopping"),
            None => break,
        }
    }
    let checked = verifier.checked();
    head_is_in_chain(&head, hash_at_head.as_deref(), checked)?;
    let summary = json!({
        "ok": true,
        "events_checked": checked,
        "head_seq": checked,
        "head_hash": verifier.head(),
        "hub_head": {"seq": head.seq, "hash": head.hash},
    });
    let message = if checked == 0 {
        "journal verified: it is empty".to_owned()
    } else {
        format!(
            "journal verified: {checked} events checked, head hash {}\nthe hub's head (event {}) is part of the verified chain",
            verifier.head(),
            head.seq
        )
    };
    ctx.out.confirm(&summary, &message)
}

/// The hub's head must be an event of the verified chain, with the same hash.
fn head_is_in_chain(
    head: &ChainHead,
    listed_hash: Option<&str>,
    checked: u64,
) -> Result<(), AuditFailure> {
    match listed_hash {
        _ if head.seq == 0 => Ok(()),
        None => Err(AuditFailure(format!(
            "the hub's head is event {} but the journal listing ended after {checked} events",
            head.seq
        ))),
        Some(h) if h != head.hash => Err(AuditFailure(format!(
            "event {}: the hub's head hash {} differs from the listed event's hash {h}",
            head.seq, head.hash
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_must_be_a_verified_event() {
        let head = |seq, hash: &str| ChainHead {
            seq,
            hash: hash.to_owned(),
        };
        assert!(head_is_in_chain(&head(0, "00"), None, 0).is_ok());
        assert!(head_is_in_chain(&head(2, "ab"), Some("ab"), 2).is_ok());
        let err = head_is_in_chain(&head(9, "ab"), None, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("event 9") && err.contains("after 2 events"),
            "{err}"
        );
        let err = head_is_in_chain(&head(2, "ab"), Some("cd"), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("event 2"), "{err}");
    }
}
