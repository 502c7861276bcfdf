//! The publisher's own PostgreSQL connection: the replica lock, the cursor row and the journal
//! reads.
//!
//! The connection is dedicated (never from the request pool) because it holds a session-level
//! advisory lock: while it lives this replica is the only publisher of the stream; when it drops
//! (crash, network), PostgreSQL releases the lock and another replica takes over.

use crate::journal::store::{event_from_row, EVENT_COLUMNS};
use hub_core::api::events::Event;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

/// The advisory lock key of the publisher of `stream`: one publisher per stream, whichever
/// replica it runs on. Derived from the name so it cannot collide with the journal's keys.
pub fn lock_key(stream: &str) -> i64 {
    let digest = Sha256::digest(format!("hubplane journal fan-out\0{stream}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The dedicated connection and its statements.
pub struct CursorDb {
    client: Client,
    stream: String,
    since: Statement,
    store: Statement,
}

impl CursorDb {
    /// Connects; the connection is driven by its own task, which ends when the client drops.
    pub async fn connect(
        pg: &tokio_postgres::Config,
        stream: &str,
    ) -> Result<CursorDb, tokio_postgres::Error> {
        let (client, conn) = pg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "journal fan-out: database connection lost");
            }
        });
        let since = client
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .await?;
        let store = client
            .prepare(
                "UPDATE fanout_cursor SET seq = $2, updated_at = now() WHERE stream = $1 AND seq < $2",
            )
            .await?;
        Ok(CursorDb {
            client,
            stream: stream.to_owned(),
            since,
            store,
        })
    }

    /// Whether the connection is gone (and with it any lock it held).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Takes the publisher lock if no other replica holds it.
    pub async fn try_lock(&self) -> Result<bool, tokio_postgres::Error> {
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1)",
                &[&lock_key(&self.stream)],
            )
            .await?;
        row.try_get(0)
    }

    /// The stored cursor, creating the row at 0 (publish the whole journal) the first time.
    pub async fn load(&self) -> Result<i64, tokio_postgres::Error> {
        self.client
            .execute(
                "INSERT INTO fanout_cursor (stream, seq) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                &[&self.stream],
            )
            .await?;
        self.current().await
    }

    /// The stored cursor without creating it (0 when absent).
    pub async fn current(&self) -> Result<i64, tokio_postgres::Error> {
        let row = self
            .client
            .query_opt(
                "SELECT seq FROM fanout_cursor WHERE stream = $1",
                &[&self.stream],
            )
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }

    /// The newest committed journal seq.
    pub async fn head(&self) -> Result<i64, tokio_postgres::Error> {
        self.client
            .query_one("SELECT COALESCE(MAX(seq), 0)::bigint FROM events", &[])
            .await?
            .try_get(0)
    }

    /// Moves the cursor forward (never back: a replica that lost its lock cannot undo another's
    /// progress).
    pub async fn store(&self, seq: i64) -> Result<(), tokio_postgres::Error> {
        self.client
            .execute(&self.store, &[&self.stream, &seq])
            .await
            .map(|_| ())
    }

    /// Up to `limit` events after `after`, oldest first.
    pub async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>, tokio_postgres::Error> {
        let rows = self.client.query(&self.since, &[&after, &limit]).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The id of the event at `seq`, if it exists.
    pub async fn id_at(&self, seq: i64) -> Result<Option<Uuid>, tokio_postgres::Error> {
        let row = self
            .client
            .query_opt("SELECT id FROM events WHERE seq = $1", &[&seq])
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    /// The seq of the event with `id`, if it is one of the journal's.
    pub async fn seq_of(&self, id: Uuid) -> Result<Option<i64>, tokio_postgres::Error> {
        let row = self
            .client
            .query_opt("SELECT seq FROM events WHERE id = $1", &[&id])
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_has_its_own_lock_apart_from_the_journals() {
        assert_ne!(lock_key("STATEHUB"), lock_key("OTHER"));
        assert_eq!(lock_key("STATEHUB"), lock_key("STATEHUB"));
        assert_ne!(lock_key("STATEHUB"), crate::journal::WRITER_LOCK);
        assert_ne!(lock_key("STATEHUB"), crate::journal::MIGRATION_LOCK);
    }
}
