//! The domain hub's [`Ledger`]: an identity change (a login, a session revoke, a role change)
//! runs in a local transaction that also writes its audit events to the outbox, so the change
//! and its events are stored together or not at all. A change that asks for review (a
//! break-glass login) becomes a `review` row: the relay opens an escalated decision in the state
//! hub for it before delivering the event.

use crate::outbox::{Outbox, ReviewRequest};
use deadpool_postgres::Pool;
use futures_util::future::BoxFuture;
use hub_core::http::problem::ApiError;
use hub_core::identity::ledger::{ErasedChange, Ledger};
use std::any::Any;

/// Identity changes through the outbox.
pub struct OutboxLedger {
    pool: Pool,
    outbox: Outbox,
}

impl OutboxLedger {
    /// A ledger over the hub's database and outbox.
    pub fn new(pool: Pool, outbox: Outbox) -> Self {
        Self { pool, outbox }
    }
}

impl Ledger for OutboxLedger {
    fn run(
        &self,
        actor: String,
        change: ErasedChange,
    ) -> BoxFuture<'static, Result<Box<dyn Any + Send>, ApiError>> {
        let (pool, outbox) = (self.pool.clone(), self.outbox.clone());
        Box::pin(async move {
            // The change needs a plain `Client` inside an open transaction, so the transaction is
            // driven by hand; a task of its own finishes it even if the request is dropped, so a
            // pooled connection never goes back with a transaction open.
            let task = tokio::spawn(async move {
                let conn = pool.get().await?;
                conn.batch_execute("BEGIN").await?;
                let result = async {
                    let (value, events) = change(&conn).await?;
                    for e in events {
                        let event = outbox.event(e.event_type, e.summary, &actor, e.detail)?;
                        let review = e.review.map(|r| ReviewRequest {
                            title: r.title,
                            context: r.context,
                            actor: actor.clone(),
                        });
                        outbox.enqueue(&**conn, &event, review.as_ref()).await?;
                    }
                    Ok::<_, ApiError>(value)
                }
                .await;
                match result {
                    Ok(value) => {
                        conn.batch_execute("COMMIT").await?;
                        outbox.wake();
                        Ok(value)
                    }
                    Err(e) => {
                        if conn.batch_execute("ROLLBACK").await.is_err() {
                            // A connection that cannot roll back must not serve anyone else.
                            drop(deadpool_postgres::Object::take(conn));
                        }
                        Err(e)
                    }
                }
            });
            task.await.map_err(|e| {
                ApiError::internal(anyhow::anyhow!("identity change task failed: {e}"))
            })?
        })
    }
}
