//! The newest events, in memory, for the hottest read: the first pages of the journal.
//!
//! Events are immutable once committed, so a cached copy never goes stale; the only risk is a
//! gap (events another replica committed that this process has not seen). A page is served from
//! memory only when the cache holds every sequence number it covers and, for the newest page,
//! when the cache ends at the newest head this process knows of. Anything else reads PostgreSQL.

use bytes::Bytes;
use hub_core::api::events::Event;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, RwLock};

struct Entry {
    event: Arc<Event>,
    json: OnceLock<Bytes>,
}

impl Entry {
    fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.event).unwrap_or_default()))
            .clone()
    }
}

/// A bounded, gapless run of the newest committed events.
pub struct Recent {
    capacity: usize,
    entries: RwLock<VecDeque<Entry>>,
}

/// A page assembled from memory.
pub struct CachedPage {
    /// Events' JSON, newest first.
    pub items: Vec<Bytes>,
    /// Sequence number of the last item when older events exist.
    pub next: Option<i64>,
}

impl Recent {
    /// Keeps at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: RwLock::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Adds events this process just committed, in order. A gap since the last cached event
    /// (another replica wrote in between) restarts the cache from these events.
    pub fn extend(&self, events: Vec<Arc<Event>>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        for event in events {
            let contiguous = entries
                .back()
                .is_none_or(|last| last.event.seq + 1 == event.seq);
            if !contiguous {
                entries.clear();
            }
            if entries.len() == self.capacity {
                entries.pop_front();
            }
            entries.push_back(Entry {
                event,
                json: OnceLock::new(),
            });
        }
    }

    /// The newest-first page below `before` (exclusive; `None` for the newest page, which also
    /// needs the cache to end at `head`), if memory holds all of it.
    pub fn page_desc(&self, before: Option<i64>, limit: i64, head: i64) -> Option<CachedPage> {
        let entries = self.entries.read().ok()?;
        let first = entries.front()?.event.seq;
        let last = entries.back()?.event.seq;
        let top = match before {
            None if last == head => last,
            None => return None,
            Some(b) => (b - 1).min(last),
        };
        if top < 1 {
            return Some(CachedPage {
                items: Vec::new(),
                next: None,
            });
        }
        let bottom = (top - limit + 1).max(1);
        if bottom < first || top > last {
            return None;
        }
        let index = |seq: i64| usize::try_from(seq - first).ok();
        let (lo, hi) = (index(bottom)?, index(top)?);
        let items = (lo..=hi)
            .rev()
            .filter_map(|i| entries.get(i))
            .map(Entry::json)
            .collect();
        Some(CachedPage {
            items,
            next: (bottom > 1).then_some(bottom),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64) -> Arc<Event> {
        Arc::new(Event {
            seq,
            id: uuid::Uuid::now_v7(),
            created_at: chrono::Utc::now(),
            event_type: "a.b".into(),
            summary: format!("e{seq}"),
            author: "x".into(),
            workstream_id: None,
            workplan_id: None,
            task_id: None,
            decision_id: None,
            detail: serde_json::json!({}),
            prev_hash: String::new(),
            hash: String::new(),
        })
    }

    fn seqs(p: &CachedPage) -> Vec<i64> {
        p.items
            .iter()
            .map(|b| serde_json::from_slice::<Event>(b).unwrap().seq)
            .collect()
    }

    #[test]
    fn serves_only_what_it_holds_without_gaps() {
        let r = Recent::new(5);
        r.extend((1..=8).map(ev).collect());
        let p = r.page_desc(None, 3, 8).unwrap();
        assert_eq!(seqs(&p), vec![8, 7, 6]);
        assert_eq!(p.next, Some(6));
        assert!(r.page_desc(None, 3, 9).is_none(), "another replica wrote 9");
        assert!(
            r.page_desc(Some(6), 3, 8).is_none(),
            "3 is no longer cached"
        );
        let p = r.page_desc(Some(6), 2, 8).unwrap();
        assert_eq!(seqs(&p), vec![5, 4]);
        r.extend(vec![ev(10)]);
        assert!(
            r.page_desc(None, 5, 10).is_none(),
            "the gap restarted the cache: 6..9 are unknown"
        );
        assert_eq!(seqs(&r.page_desc(None, 1, 10).unwrap()), vec![10]);
        let small = Recent::new(10);
        small.extend((1..=3).map(ev).collect());
        let p = small.page_desc(None, 50, 3).unwrap();
        assert_eq!(seqs(&p), vec![3, 2, 1]);
        assert_eq!(p.next, None);
    }
}
