//! Acknowledged-write accounting: what clients were told against what the journal holds.

use super::load::{key, Answer, Outcome};
use std::collections::HashMap;

/// What the journal holds for one run.
pub struct Journal {
    /// Events of the run in the journal.
    pub stored: usize,
    /// Events of the run in the journal that no client saw acknowledged.
    pub unacked_stored: usize,
    /// Every event in the journal (the hub's own included).
    pub total_events: i64,
}

/// Checks, on the database at `url`, that every acknowledged event of run `tag` is stored exactly
/// once with the sequence number its client was told, that no event of the run is stored twice
/// (acknowledged or not), that each stored event has exactly one idempotency record pointing at
/// it, and that the journal's sequence is gapless.
pub async fn journal(url: &str, tag: &str, outcome: &Outcome) -> Journal {
    let db = super::hub::connect(url).await;
    let prefix = format!("fault-{tag}-%");
    let mut by_summary: HashMap<String, Vec<i64>> = HashMap::new();
    for row in db
        .query(
            "SELECT summary, seq FROM events WHERE summary LIKE $1 ORDER BY seq",
            &[&prefix],
        )
        .await
        .unwrap()
    {
        by_summary.entry(row.get(0)).or_default().push(row.get(1));
    }
    let duplicated: Vec<_> = by_summary.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "events stored more than once: {duplicated:?}"
    );

    let acked = outcome.acked();
    for (i, seq) in &acked {
        let stored = by_summary.get(&key(tag, *i));
        assert_eq!(
            stored,
            Some(&vec![*seq]),
            "acknowledged event {i} (seq {seq}) must be stored exactly once, at that seq"
        );
    }
    // Every acknowledgement an event got (first answers and replays alike) names the same seq.
    for (i, answers) in outcome.attempts.iter().enumerate() {
        let seqs: Vec<i64> = answers
            .iter()
            .filter_map(|a| match a {
                Answer::Acked { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] == w[1]),
            "event {i} acknowledged with different seqs: {seqs:?}"
        );
    }

    let mut keys: HashMap<String, Vec<i64>> = HashMap::new();
    for row in db
        .query(
            "SELECT key, event_seqs FROM idempotency_keys WHERE key LIKE $1",
            &[&prefix],
        )
        .await
        .unwrap()
    {
        let previous = keys.insert(row.get(0), row.get(1));
        assert!(previous.is_none(), "one idempotency record per key");
    }
    for (summary, seqs) in &by_summary {
        assert_eq!(
            keys.get(summary),
            Some(seqs),
            "the idempotency record of {summary} points at its one event"
        );
    }
    assert_eq!(
        keys.len(),
        by_summary.len(),
        "no idempotency record without its event"
    );

    let row = db
        .query_one(
            "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM events",
            &[],
        )
        .await
        .unwrap();
    let (count, min, max): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (min, max),
        (1, count),
        "the journal's sequence is gapless (1..={count})"
    );

    Journal {
        stored: by_summary.len(),
        unacked_stored: by_summary.len() - acked.len(),
        total_events: count,
    }
}
