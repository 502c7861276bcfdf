//! The outbox: every event the domain hub journals is first a row here, inserted in the same
//! transaction as the change it records, and later relayed to the state hub ([`relay`]) with the
//! row's idempotency key. A state hub outage delays events; it never loses or reorders them.

pub mod relay;
pub mod store;

use chrono::{DateTime, Utc};
use hub_core::api::events::{EventType, NewEvent};
use hub_core::http::problem::ApiError;
use prometheus::{IntCounter, IntGauge, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Taken (transaction-scoped) before a row gets its `seq`: rows are then numbered in the order
/// their transactions commit, so the relay never sends a later event before an earlier one that
/// was still uncommitted when it looked.
pub const ORDER_LOCK: i64 = 0x646f_6d61_696e_0002;

/// A break-glass login's request for review: the relay opens an escalated decision in the state
/// hub with it before delivering the event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReviewRequest {
    /// Decision title.
    pub title: String,
    /// Decision context.
    pub context: String,
    /// The person whose login is reviewed.
    pub actor: String,
}

/// The outbox metrics, registered in the hub's `/metrics`.
#[derive(Clone)]
pub struct OutboxMetrics {
    /// Rows not delivered yet (refreshed by the relay).
    pub pending: IntGauge,
    /// Rows the state hub accepted.
    pub delivered: IntCounter,
    /// Delivery attempts that failed (retried later), and rows the state hub refused for good.
    pub failures: IntCounter,
}

impl OutboxMetrics {
    /// Registers the collectors.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let pending = IntGauge::new("outbox_pending", "Outbox events not yet delivered")?;
        let delivered = IntCounter::new(
            "outbox_delivered_total",
            "Outbox events the state hub accepted",
        )?;
        let failures = IntCounter::new(
            "outbox_failures_total",
            "Failed outbox delivery attempts (retried) and events the state hub refused",
        )?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(delivered.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self {
            pending,
            delivered,
            failures,
        })
    }
}

/// The hub's outbox handle: builds events, writes rows, wakes the relay.
#[derive(Clone)]
pub struct Outbox {
    hub: Arc<str>,
    wake: Arc<Notify>,
    /// Its metrics.
    pub metrics: OutboxMetrics,
}

impl Outbox {
    /// The outbox of hub `hub`.
    pub fn new(hub: &str, metrics: OutboxMetrics) -> Self {
        Self {
            hub: hub.into(),
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// The hub's name.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// An event of this hub: the state hub records the hub's token as its author, so the person
    /// or job that caused it (`actor`) and the hub travel in `detail`.
    pub fn event(
        &self,
        event_type: &str,
        summary: impl Into<String>,
        actor: &str,
        detail: Value,
    ) -> Result<NewEvent, ApiError> {
        let event_type = EventType::parse(event_type)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("event type: {e}")))?;
        let mut detail = match detail {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".to_owned(), other);
                map
            }
        };
        detail
            .entry("hub")
            .or_insert_with(|| json!(self.hub.as_ref()));
        detail.entry("actor").or_insert_with(|| json!(actor));
        let summary: String = summary.into();
        Ok(NewEvent {
            event_type,
            summary: summary.chars().take(500).collect(),
            detail: Some(Value::Object(detail)),
            workstream_id: None,
            workplan_id: None,
            task_id: None,
            decision_id: None,
        })
    }

    /// Writes `event` (and, for a break-glass login, its review) as the next outbox row. Call it
    /// inside the transaction of the change it records, as its last statement: the order lock
    /// it takes is then held only until the commit and never while waiting for another lock.
    /// Call [`wake`](Self::wake) after the commit.
    pub async fn enqueue(
        &self,
        client: &impl GenericClient,
        event: &NewEvent,
        review: Option<&ReviewRequest>,
    ) -> Result<Uuid, ApiError> {
        let id = Uuid::now_v7();
        let key = format!("{}:{id}", self.hub);
        store::insert(client, id, &key, event, review).await?;
        self.metrics.pending.inc();
        Ok(id)
    }

    /// Tells the relay there is something to send.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`wake`](Self::wake) was called since the last time.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// An outbox row as operators and tests see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxRow {
    /// Delivery order.
    pub seq: i64,
    /// Row id.
    pub id: Uuid,
    /// `event` or `review`.
    pub kind: String,
    /// The event as it will be (or was) sent.
    #[schema(value_type = Object)]
    pub event: Value,
    /// The key the state hub deduplicates it by.
    pub idempotency_key: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When the state hub accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the state hub refused it for good.
    pub rejected_at: Option<DateTime<Utc>>,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The decision a review row opened.
    pub decision_id: Option<Uuid>,
}

/// `?pending=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only rows not delivered yet (pending or refused).
    #[serde(default)]
    pub pending: bool,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

/// The backlog and rows of the outbox.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutboxListing {
    /// Counts.
    pub backlog: store::Backlog,
    /// Newest first.
    pub items: Vec<OutboxRow>,
}

/// `GET /api/v1/outbox`: the backlog and the newest rows, for operators.
#[utoipa::path(
    get, path = "/api/v1/outbox", tag = "outbox", params(ListQuery),
    responses((status = 200, body = OutboxListing), (status = 400, body = hub_core::http::problem::Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    state: actix_web::web::Data<crate::state::AppState>,
    q: actix_web::web::Query<ListQuery>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "limit must be between 1 and 500".into(),
            ))
        }
    };
    let client = state.pool.get().await?;
    let backlog = store::backlog(&**client).await?;
    let items = store::list(&**client, q.pending, limit).await?;
    Ok(actix_web::HttpResponse::Ok().json(OutboxListing { backlog, items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_hub_and_actor_and_short_summaries() {
        let registry = Registry::new();
        let outbox = Outbox::new("ops-hub", OutboxMetrics::register(&registry).unwrap());
        let e = outbox
            .event(
                "annotation.added",
                "x".repeat(600),
                "alice",
                json!({"target": "deployments"}),
            )
            .unwrap();
        assert_eq!(e.summary.chars().count(), 500);
        let d = e.detail.unwrap();
        assert_eq!(d["hub"], "ops-hub");
        assert_eq!(d["actor"], "alice");
        assert_eq!(d["target"], "deployments");
        assert!(outbox.event("Bad", "s", "a", Value::Null).is_err());
    }
}
