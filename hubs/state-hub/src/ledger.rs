//! The state hub's [`Ledger`]: identity changes run in the journal writer's transaction, so a
//! login, a revoke or a role change and its event are stored together or not at all. A change
//! that asks for review (a break-glass login) also opens an escalated decision, proposed in the
//! name of the person who logged in, so someone else must resolve it.

use crate::decisions::rules::Proposal;
use crate::decisions::service::proposed_event;
use crate::decisions::store;
use crate::journal::{Draft, Journal};
use futures_util::future::BoxFuture;
use hub_core::http::problem::ApiError;
use hub_core::identity::ledger::{ErasedChange, Ledger};
use serde_json::json;
use std::any::Any;

/// Identity changes through the journal writer.
pub struct JournalLedger {
    journal: Journal,
}

impl JournalLedger {
    /// A ledger over the hub's journal.
    pub fn new(journal: Journal) -> Self {
        Self { journal }
    }
}

impl Ledger for JournalLedger {
    fn run(
        &self,
        actor: String,
        change: ErasedChange,
    ) -> BoxFuture<'static, Result<Box<dyn Any + Send>, ApiError>> {
        let journal = self.journal.clone();
        Box::pin(async move {
            journal
                .transact(move |ctx| {
                    Box::pin(async move {
                        let (value, events) = change(ctx.client()).await?;
                        let mut drafts = Vec::with_capacity(events.len());
                        for e in events {
                            let mut draft = Draft::system(e.event_type, e.summary, e.detail)?;
                            if let Some(review) = e.review {
                                let now = ctx.now();
                                let proposal = Proposal {
                                    title: review.title,
                                    context: review.context,
                                    options: vec![
                                        "legitimate: keep the session".to_owned(),
                                        "not legitimate: revoke and rotate the password".to_owned(),
                                    ],
                                    outcome: None,
                                    task_ids: Vec::new(),
                                };
                                let d = store::insert(ctx.client(), &proposal, &actor, now, None)
                                    .await?;
                                let reason = "break-glass login: another person must review it";
                                store::escalate(ctx.client(), d.id, &actor, reason, now).await?;
                                draft = draft.decision(d.id);
                                drafts.push(draft);
                                drafts.push(proposed_event(&d)?);
                                drafts.push(
                                    Draft::system(
                                        "decision.escalated",
                                        format!("Escalated decision: {}", d.title),
                                        json!({"reason": reason}),
                                    )?
                                    .decision(d.id),
                                );
                            } else {
                                drafts.push(draft);
                            }
                        }
                        ctx.append(&actor, drafts).await?;
                        Ok(value)
                    })
                })
                .await
        })
    }
}
