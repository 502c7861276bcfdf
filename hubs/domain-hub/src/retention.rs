//! A domain hub's purge targets: hub-core's (ended sessions, abandoned login flows), old
//! observations and delivered outbox rows. Pending and rejected outbox rows are never purged:
//! the first are still to be delivered, the second wait for an operator.

use hub_core::retention::{self, PurgeTarget, RetentionConfig};

/// Observations older than the window, except the newest of each (capability, path): a widget
/// whose capability has been unreachable for months still shows what it last knew, and how old
/// that is.
const OBSERVATIONS_SQL: &str = "DELETE FROM observations WHERE id IN (
    SELECT o.id FROM observations o
     WHERE o.fetched_at < now() - make_interval(secs => $1::float8)
       AND EXISTS (SELECT 1 FROM observations n
                    WHERE n.capability = o.capability AND n.path = o.path
                      AND (n.fetched_at, n.id) > (o.fetched_at, o.id))
     ORDER BY o.fetched_at
     LIMIT $2 FOR UPDATE OF o SKIP LOCKED)";

/// Outbox rows the state hub acknowledged longer ago than the window.
const OUTBOX_SQL: &str = "DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox
     WHERE delivered_at < now() - make_interval(secs => $1::float8)
     ORDER BY delivered_at
     LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Every table a domain hub's purge job works on.
pub fn targets(cfg: &RetentionConfig) -> Vec<PurgeTarget> {
    let mut targets = retention::core_targets(cfg);
    targets.push(PurgeTarget {
        table: "observations",
        keep: cfg.observations(),
        sql: OBSERVATIONS_SQL,
    });
    targets.push(PurgeTarget {
        table: "outbox",
        keep: cfg.outbox_delivered(),
        sql: OUTBOX_SQL,
    });
    targets
}
