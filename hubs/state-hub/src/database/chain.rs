//! Walking the `events` table through hub-core's [`Verifier`]: what `hubctl audit verify` does
//! over the API, done over a database connection (inside an import's transaction, or offline
//! after a restore).

use crate::journal::store::{event_from_row, EVENT_COLUMNS};
use hub_core::journal::{BrokenLink, Verifier};
use tokio_postgres::GenericClient;

/// Events read per query.
const PAGE: i64 = 1000;

/// A verified journal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainState {
    /// Events checked (all of them).
    pub events: u64,
    /// Sequence number of the newest.
    pub head_seq: i64,
    /// Its hash (hex; 64 zeros for an empty journal).
    pub head_hash: String,
}

/// Checks every event in order; the outer error is the database's, the inner the first broken
/// link.
pub async fn verify(
    client: &impl GenericClient,
) -> Result<Result<ChainState, BrokenLink>, tokio_postgres::Error> {
    let stmt = client
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .await?;
    let mut verifier = Verifier::new();
    let mut after = 0i64;
    loop {
        let rows = client.query(&stmt, &[&after, &PAGE]).await?;
        for row in &rows {
            let e = event_from_row(row)?;
            if let Err(broken) = verifier.push(&e) {
                return Ok(Err(broken));
            }
            after = e.seq;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(Ok(ChainState {
        events: verifier.checked(),
        head_seq: after,
        head_hash: verifier.head(),
    }))
}
