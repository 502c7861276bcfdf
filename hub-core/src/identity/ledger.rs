//! How identity changes reach a hub's record. hub-core knows no journal: each hub implements
//! [`Ledger`] so that a login, a session revoke or a role change is stored together with its
//! audit event in one transaction (the state hub through its journal writer, a domain hub
//! through its outbox).

use crate::http::problem::ApiError;
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

/// An audit event an identity change produces.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `<noun>.<verb>`, e.g. `session.login`.
    pub event_type: &'static str,
    /// One line for people.
    pub summary: String,
    /// Structured detail; never a secret.
    pub detail: Value,
    /// When set, the change also needs a person's review: the state hub opens an escalated
    /// decision with this title and context (break-glass logins).
    pub review: Option<Review>,
}

/// A human review an event asks for.
#[derive(Debug, Clone)]
pub struct Review {
    /// Decision title.
    pub title: String,
    /// Decision context.
    pub context: String,
}

impl AuditEvent {
    /// An event without a review.
    pub fn new(event_type: &'static str, summary: impl Into<String>, detail: Value) -> Self {
        Self {
            event_type,
            summary: summary.into(),
            detail,
            review: None,
        }
    }
}

/// A change run inside the ledger's transaction: it gets the connection, returns its value and
/// the events to record with it.
pub type Change<T> = Box<
    dyn for<'a> FnOnce(
            &'a tokio_postgres::Client,
        ) -> BoxFuture<'a, Result<(T, Vec<AuditEvent>), ApiError>>
        + Send,
>;

/// A type-erased change for [`Ledger::run`].
pub type ErasedChange = Change<Box<dyn std::any::Any + Send>>;

/// Where a hub records identity changes.
pub trait Ledger: Send + Sync + 'static {
    /// Runs `change` in one transaction with the events it returns, authored by `actor`.
    /// Either both are stored or neither is.
    fn run(
        &self,
        actor: String,
        change: ErasedChange,
    ) -> BoxFuture<'static, Result<Box<dyn std::any::Any + Send>, ApiError>>;
}

/// The ledger a hub registers.
pub type DynLedger = Arc<dyn Ledger>;

/// Runs a typed change through a ledger.
pub async fn record<T, F>(ledger: &dyn Ledger, actor: &str, change: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'a> FnOnce(
            &'a tokio_postgres::Client,
        ) -> BoxFuture<'a, Result<(T, Vec<AuditEvent>), ApiError>>
        + Send
        + 'static,
{
    let erased: ErasedChange = Box::new(move |client| {
        Box::pin(async move {
            let (value, events) = change(client).await?;
            Ok((Box::new(value) as Box<dyn std::any::Any + Send>, events))
        })
    });
    let out = ledger.run(actor.to_owned(), erased).await?;
    out.downcast::<T>().map(|b| *b).map_err(|_| {
        ApiError::internal(anyhow::anyhow!("ledger returned a value of the wrong type"))
    })
}
