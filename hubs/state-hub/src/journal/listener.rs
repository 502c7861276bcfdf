//! Follows the journal head committed by other replicas (LISTEN/NOTIFY), so every replica's SSE
//! streams and cached pages learn of every event, whichever replica wrote it.

use super::{Journal, NOTIFY_CHANNEL};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

/// Runs until `stop` turns true, reconnecting with backoff.
pub async fn run(pg: tokio_postgres::Config, journal: Journal, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        match listen(&pg, &journal, &mut stop).await {
            Ok(Stopped::Yes) => return,
            Ok(Stopped::No) => backoff = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "journal listener lost its connection"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

enum Stopped {
    Yes,
    No,
}

async fn listen(
    pg: &tokio_postgres::Config,
    journal: &Journal,
    stop: &mut watch::Receiver<bool>,
) -> Result<Stopped, tokio_postgres::Error> {
    let (client, mut conn) = pg.connect(NoTls).await?;
    // The connection must be polled for queries to complete and notifications to arrive; a task
    // does that and forwards notifications.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "journal listener connection failed");
                    return;
                }
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await?;
        // Catch up on anything committed while nobody listened.
        let row = client
            .query_one("SELECT COALESCE(MAX(seq), 0)::bigint FROM events", &[])
            .await?;
        journal.observe_head(row.get(0));
        loop {
            tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => {
                        if let Ok(seq) = n.payload().parse::<i64>() {
                            journal.observe_head(seq);
                        }
                    }
                    None => return Ok(Stopped::No),
                },
                _ = stop.changed() => return Ok(Stopped::Yes),
            }
        }
    }
    .await;
    driver.abort();
    result
}
