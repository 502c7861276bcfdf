//! Reading the journal: pages with filters, single events, the chain head.

use deadpool_postgres::GenericClient;
use hub_core::api::events::{ChainHead, Event};
use hub_core::http::cursor;
use hub_core::http::problem::ApiError;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

/// Columns of [`event_from_row`], in order.
pub const EVENT_COLUMNS: &str = "seq, id, created_at, event_type, summary, author, workstream_id, \
workplan_id, task_id, decision_id, detail, prev_hash, hash";

/// Cursor kind of event listings.
pub const CURSOR_KIND: &str = "events";

/// Maps a row selected with [`EVENT_COLUMNS`].
pub fn event_from_row(row: &Row) -> Result<Event, tokio_postgres::Error> {
    let prev: Vec<u8> = row.try_get(11)?;
    let hash: Vec<u8> = row.try_get(12)?;
    Ok(Event {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        created_at: row.try_get(2)?,
        event_type: row.try_get(3)?,
        summary: row.try_get(4)?,
        author: row.try_get(5)?,
        workstream_id: row.try_get(6)?,
        workplan_id: row.try_get(7)?,
        task_id: row.try_get(8)?,
        decision_id: row.try_get(9)?,
        detail: row.try_get(10)?,
        prev_hash: hub_core::journal::to_hex(&prev),
        hash: hub_core::journal::to_hex(&hash),
    })
}

/// Listing direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest first (default).
    #[default]
    Desc,
    /// Oldest first, for audits and replays.
    Asc,
}

/// Filters of an event listing.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Exact type.
    pub event_type: Option<String>,
    /// Type prefix: events whose noun is this.
    pub noun: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Linked workstream.
    pub workstream_id: Option<Uuid>,
    /// Linked workplan.
    pub workplan_id: Option<Uuid>,
    /// Linked task.
    pub task_id: Option<Uuid>,
    /// Linked decision.
    pub decision_id: Option<Uuid>,
    /// Created at or after.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Filter {
    /// True when nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.event_type.is_none()
            && self.noun.is_none()
            && self.author.is_none()
            && self.workstream_id.is_none()
            && self.workplan_id.is_none()
            && self.task_id.is_none()
            && self.decision_id.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// One page of events plus the cursor of the next.
pub async fn page(
    client: &impl GenericClient,
    filter: &Filter,
    after: Option<i64>,
    limit: i64,
    order: Order,
) -> Result<(Vec<Event>, Option<String>), ApiError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut bind = |clause: &str, v: Box<dyn ToSql + Sync + Send>, clauses: &mut Vec<String>| {
        params.push(v);
        clauses.push(clause.replace('?', &format!("${}", params.len())));
    };
    if let Some(v) = &filter.event_type {
        bind("event_type = ?", Box::new(v.clone()), &mut clauses);
    }
    if let Some(v) = &filter.noun {
        bind(
            "event_type LIKE ?",
            Box::new(format!("{v}.%")),
            &mut clauses,
        );
    }
    if let Some(v) = &filter.author {
        bind("author = ?", Box::new(v.clone()), &mut clauses);
    }
    if let Some(v) = filter.workstream_id {
        bind("workstream_id = ?", Box::new(v), &mut clauses);
    }
    if let Some(v) = filter.workplan_id {
        bind("workplan_id = ?", Box::new(v), &mut clauses);
    }
    if let Some(v) = filter.task_id {
        bind("task_id = ?", Box::new(v), &mut clauses);
    }
    if let Some(v) = filter.decision_id {
        bind("decision_id = ?", Box::new(v), &mut clauses);
    }
    if let Some(v) = filter.since {
        bind("created_at >= ?", Box::new(v), &mut clauses);
    }
    if let Some(v) = filter.until {
        bind("created_at < ?", Box::new(v), &mut clauses);
    }
    if let Some(after) = after {
        let op = if order == Order::Desc {
            "seq < ?"
        } else {
            "seq > ?"
        };
        bind(op, Box::new(after), &mut clauses);
    }
    let dir = if order == Order::Desc { "DESC" } else { "ASC" };
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    params.push(Box::new(limit + 1));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events {where_sql} ORDER BY seq {dir} LIMIT ${}",
        params.len()
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &refs).await?;
    let mut items = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|e| cursor::encode(CURSOR_KIND, &e.seq.to_string()))
    } else {
        None
    };
    Ok((items, next))
}

/// Events with `seq > after`, oldest first, for streaming.
pub async fn since(
    client: &impl GenericClient,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, ApiError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
        ))
        .await?;
    let rows = client.query(&stmt, &[&after, &limit]).await?;
    Ok(rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

/// One event by sequence number or id.
pub async fn get(client: &impl GenericClient, key: &str) -> Result<Option<Event>, ApiError> {
    let row = if let Ok(seq) = key.parse::<i64>() {
        client
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1"),
                &[&seq],
            )
            .await?
    } else if let Ok(id) = Uuid::parse_str(key) {
        client
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"),
                &[&id],
            )
            .await?
    } else {
        return Ok(None);
    };
    Ok(row.as_ref().map(event_from_row).transpose()?)
}

/// The newest link of the chain.
pub async fn head(client: &impl GenericClient) -> Result<ChainHead, ApiError> {
    let row = client
        .query_opt(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(match row {
        Some(r) => ChainHead {
            seq: r.try_get(0)?,
            hash: hub_core::journal::to_hex(&r.try_get::<_, Vec<u8>>(1)?),
        },
        None => ChainHead {
            seq: 0,
            hash: hub_core::journal::to_hex(&hub_core::journal::GENESIS),
        },
    })
}
