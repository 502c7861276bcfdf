//! Follows the journal head committed by other replicas (LISTEN/NOTIFY), so every replica's SSE
//! streams wake up for every event, whichever replica wrote it.

use super::{Journal, NOTIFY_CHANNEL};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// Runs until `stop` turns true, reconnecting with backoff.
pub async fn run(pg: tokio_postgres::Config, journal: Journal, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        match pg.connect(NoTls).await {
            Ok((client, mut conn)) => {
                backoff = Duration::from_millis(200);
                let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                let listen_sql = format!("LISTEN {NOTIFY_CHANNEL}");
                let listen = client.batch_execute(&listen_sql);
                // The connection must be polled for LISTEN to complete.
                let mut listen = std::pin::pin!(listen);
                let listening = loop {
                    tokio::select! {
                        r = &mut listen => break r.is_ok(),
                        m = messages.next() => if m.is_none() { break false },
                    }
                };
                if listening {
                    // Catch up on anything committed while we were not listening.
                    if let Ok(row) = client
                        .query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[])
                        .await
                    {
                        journal.observe_head(row.get(0));
                    }
                    loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(Ok(AsyncMessage::Notification(n))) => {
                                    if let Ok(seq) = n.payload().parse::<i64>() {
                                        journal.observe_head(seq);
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "journal listener connection failed");
                                    break;
                                }
                                None => break,
                            },
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "journal listener cannot connect"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
