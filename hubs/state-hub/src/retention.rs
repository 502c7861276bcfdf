//! The state hub's purge targets: hub-core's (ended sessions, abandoned login flows) and the
//! idempotency records. The journal is not one of them, and never will be: it is append-only
//! and the database refuses deletes on it.

use hub_core::retention::{self, PurgeTarget, RetentionConfig};

/// Idempotency records older than the window: a retry with such a key is a new request.
const IDEMPOTENCY_SQL: &str = "DELETE FROM idempotency_keys WHERE (principal, key) IN (
    SELECT principal, key FROM idempotency_keys
     WHERE created_at < now() - make_interval(secs => $1::float8)
     ORDER BY created_at
     LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Every table the state hub's purge job works on.
pub fn targets(cfg: &RetentionConfig) -> Vec<PurgeTarget> {
    let mut targets = retention::core_targets(cfg);
    targets.push(PurgeTarget {
        table: "idempotency_keys",
        keep: cfg.idempotency(),
        sql: IDEMPOTENCY_SQL,
    });
    targets
}
