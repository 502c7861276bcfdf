//! `/api/v1/events`: append (single, batch, idempotent), list, get, stream (SSE), chain head.

use crate::journal::recent::CachedPage;
use crate::journal::store::{self, Filter, Order};
use crate::journal::{AppendRequest, Appended, Draft, Idempotency};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use hub_core::api::events::{ChainHead, Event, EventBatchResult, NewEvent, NewEventBatch};
use hub_core::api::Page;
use hub_core::auth::Principal;
use hub_core::http::cursor;
use hub_core::http::problem::{ApiError, FieldError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Header naming a retried write.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Response header set when a stored result is returned for a retried write.
pub const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";

fn idempotency(
    req: &HttpRequest,
    kind: &str,
    body: &impl serde::Serialize,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(v) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1-255 visible ASCII characters".into())
        })?;
    let value = serde_json::to_value(body).map_err(ApiError::internal)?;
    let mut canonical = String::new();
    hub_core::journal::canonical_value(&mut canonical, &value);
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_hash: h.finalize().into(),
    }))
}

/// Checks that every referenced workstream, workplan, task and decision exists.
async fn check_references(
    state: &AppState,
    drafts: &[Draft],
    prefix: impl Fn(usize) -> String,
) -> Result<(), ApiError> {
    let any = drafts.iter().any(|d| {
        d.workstream_id.is_some()
            || d.workplan_id.is_some()
            || d.task_id.is_some()
            || d.decision_id.is_some()
    });
    if !any {
        return Ok(());
    }
    let client = state.pool.get().await?;
    let mut errors = Vec::new();
    for (table, field, pick) in [
        (
            "workstreams",
            "workstream_id",
            (|d: &Draft| d.workstream_id) as fn(&Draft) -> Option<Uuid>,
        ),
        ("workplans", "workplan_id", |d: &Draft| d.workplan_id),
        ("tasks", "task_id", |d: &Draft| d.task_id),
        ("decisions", "decision_id", |d: &Draft| d.decision_id),
    ] {
        let ids: Vec<Uuid> = drafts.iter().filter_map(pick).collect();
        if ids.is_empty() {
            continue;
        }
        let found: Vec<Uuid> = client
            .query(
                &format!("SELECT id FROM {table} WHERE id = ANY($1)"),
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (i, d) in drafts.iter().enumerate() {
            if let Some(id) = pick(d) {
                if !found.contains(&id) {
                    errors.push(FieldError::new(
                        format!("{}{field}", prefix(i)),
                        format!("no such {} {id}", &table[..table.len() - 1]),
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Validates, checks references and appends client events; `path` names an event's position
/// in field errors; `single` shapes the response as one event rather than a batch.
async fn append(
    state: &AppState,
    principal: &Principal,
    idempotency: Option<Idempotency>,
    events: Vec<NewEvent>,
    path: impl Fn(usize) -> String,
    single: bool,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    let drafts: Vec<Draft> = events
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| Draft::from_request(e, &path(i), &mut errors))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    check_references(state, &drafts, &path).await?;
    let author = principal.subject.to_string();
    let mut drafts = drafts;
    for d in &mut drafts {
        d.prepare(&author);
    }
    let outcome = state
        .journal
        .append(AppendRequest {
            author,
            drafts,
            idempotency,
        })
        .await?;
    match outcome {
        Appended::Created(e) => created(e, false, single),
        Appended::Replayed(e) => created(e, true, single),
    }
}

fn created(
    events: Vec<Arc<Event>>,
    replayed: bool,
    single: bool,
) -> Result<HttpResponse, ApiError> {
    let mut res = HttpResponse::Created();
    if replayed {
        res.insert_header((IDEMPOTENCY_REPLAYED, "true"));
    }
    if single {
        let e = events
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("append returned no event")))?;
        res.insert_header((header::LOCATION, format!("/api/v1/events/{}", e.seq)));
        Ok(res.json(&*e))
    } else {
        // The shape of `EventBatchResult`, serialized from the shared events without copying them.
        #[derive(serde::Serialize)]
        struct Batch<'a> {
            events: Vec<&'a Event>,
        }
        Ok(res.json(Batch {
            events: events.iter().map(|e| &**e).collect(),
        }))
    }
}

/// Append one event.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "events",
    request_body = NewEvent,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry key: same key and body return the original event; another body gets 409")),
    responses(
        (status = 201, description = "Appended (or replayed, with `Idempotency-Replayed: true`)", body = Event),
        (status = 400, description = "Malformed body", body = hub_core::http::problem::Problem),
        (status = 409, description = "Idempotency key reused with another body", body = hub_core::http::problem::Problem),
        (status = 422, description = "Invalid fields", body = hub_core::http::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn post_event(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Json<NewEvent>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let idem = idempotency(&req, "event", &body)?;
    append(
        &state,
        &principal,
        idem,
        vec![body],
        |_| String::new(),
        true,
    )
    .await
}

/// Append up to 1000 events, all or nothing.
#[utoipa::path(
    post, path = "/api/v1/events/batch", tag = "events",
    request_body = NewEventBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry key for the whole batch")),
    responses(
        (status = 201, description = "Appended in order", body = EventBatchResult),
        (status = 409, description = "Idempotency key reused with another body", body = hub_core::http::problem::Problem),
        (status = 422, description = "Invalid events (nothing appended)", body = hub_core::http::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn post_batch(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: web::Json<NewEventBatch>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let idem = idempotency(&req, "batch", &body)?;
    if body.events.is_empty() || body.events.len() > crate::journal::draft::MAX_BATCH {
        return Err(ApiError::field(
            "events",
            format!("must hold 1 to {} events", crate::journal::draft::MAX_BATCH),
        ));
    }
    append(
        &state,
        &principal,
        idem,
        body.events,
        |i| format!("events[{i}]."),
        false,
    )
    .await
}

/// Query of the event listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Cursor from a previous page's `next`.
    pub after: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
    /// `desc` (newest first, default) or `asc`.
    pub order: Option<Order>,
    /// Exact event type.
    pub event_type: Option<String>,
    /// Events whose type starts with `<noun>.`.
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
    /// Created at or after (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before (RFC 3339).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// List events, keyset-paginated.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of events", body = Page<Event>),
        (status = 400, description = "Bad cursor or filter", body = hub_core::http::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = crate::respond::limit(q.limit)?;
    let after = q
        .after
        .as_deref()
        .map(|c| cursor::decode_seq(store::CURSOR_KIND, c))
        .transpose()?;
    let filter = Filter {
        event_type: q.event_type,
        noun: q.noun,
        author: q.author,
        workstream_id: q.workstream_id,
        workplan_id: q.workplan_id,
        task_id: q.task_id,
        decision_id: q.decision_id,
        since: q.since,
        until: q.until,
    };
    let order = q.order.unwrap_or_default();
    if order == Order::Desc && filter.is_empty() {
        let head = *state.journal.head().borrow();
        if let Some(page) = state.journal.recent().page_desc(after, limit, head) {
            return Ok(cached_page(page));
        }
    }
    let client = state.pool.get().await?;
    let (items, next) = store::page(&client, &filter, after, limit, order).await?;
    Ok(HttpResponse::Ok().json(Page { items, next }))
}

/// Writes a `Page<Event>` from events already serialized, byte for byte what serde would write.
fn cached_page(page: CachedPage) -> HttpResponse {
    let size: usize = page.items.iter().map(Bytes::len).sum();
    let mut body = Vec::with_capacity(size + page.items.len() + 96);
    body.extend_from_slice(b"{\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"],\"next\":");
    match page.next {
        Some(seq) => {
            body.push(b'"');
            body.extend_from_slice(cursor::encode(store::CURSOR_KIND, &seq.to_string()).as_bytes());
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// One event by sequence number or id.
#[utoipa::path(
    get, path = "/api/v1/events/{key}", tag = "events",
    params(("key" = String, Path, description = "Sequence number or UUID")),
    responses((status = 200, body = Event), (status = 404, body = hub_core::http::problem::Problem)),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    match store::get(&client, &key).await? {
        Some(e) => Ok(HttpResponse::Ok().json(e)),
        None => Err(ApiError::NotFound(format!("no event {key}"))),
    }
}

/// The newest link of the hash chain.
#[utoipa::path(
    get, path = "/api/v1/audit/head", tag = "audit",
    responses((status = 200, body = ChainHead)),
    security(("bearer" = []))
)]
pub async fn head(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(store::head(&client).await?))
}

/// Query of the live stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this sequence number (the `Last-Event-ID` header wins). Default: only new events.
    pub after: Option<i64>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events of this noun.
    pub noun: Option<String>,
}

/// One event of the live stream, as a Server-Sent Events client reads it. An OpenAPI 3.1
/// `text/event-stream` schema describes each event (3.2 calls it `itemSchema`), not the stream.
#[derive(utoipa::ToSchema)]
pub struct StreamEvent {
    /// The event's sequence number: what `Last-Event-ID` resumes after.
    pub id: Option<String>,
    /// Always `progress`.
    pub event: Option<String>,
    /// The [`Event`] as JSON.
    pub data: String,
    /// Reconnection delay in milliseconds (the stream's first frame).
    pub retry: Option<u64>,
}

const STREAM_CHUNK: i64 = 500;
const KEEPALIVE: Duration = Duration::from_secs(15);

struct StreamState {
    state: web::Data<AppState>,
    last: i64,
    head: tokio::sync::watch::Receiver<i64>,
    stopping: tokio::sync::watch::Receiver<bool>,
    event_type: Option<String>,
    noun: Option<String>,
    buffer: std::collections::VecDeque<Bytes>,
    done: bool,
}

fn frame(e: &Event) -> Bytes {
    let data = serde_json::to_string(e).unwrap_or_default();
    Bytes::from(format!("id: {}\nevent: progress\ndata: {data}\n\n", e.seq))
}

impl StreamState {
    fn wanted(&self, e: &Event) -> bool {
        self.event_type.as_ref().is_none_or(|t| &e.event_type == t)
            && self
                .noun
                .as_ref()
                .is_none_or(|n| e.event_type.split_once('.').is_some_and(|(x, _)| x == n))
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes, ApiError>> {
        loop {
            if let Some(b) = self.buffer.pop_front() {
                return Some(Ok(b));
            }
            if self.done || *self.stopping.borrow() {
                return None;
            }
            if *self.head.borrow_and_update() > self.last {
                let events = match self.state.pool.get().await {
                    Ok(client) => store::since(&client, self.last, STREAM_CHUNK).await,
                    Err(e) => Err(e.into()),
                };
                match events {
                    Ok(events) => {
                        for e in &events {
                            self.last = e.seq;
                            if self.wanted(e) {
                                self.buffer.push_back(frame(e));
                            }
                        }
                        if events.is_empty() {
                            // The head moved on another replica before its commit was visible here.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream read failed; closing the stream so the client resumes");
                        self.done = true;
                        return None;
                    }
                }
            }
            tokio::select! {
                _ = self.head.changed() => {}
                _ = self.stopping.changed() => {}
                _ = tokio::time::sleep(KEEPALIVE) => return Some(Ok(Bytes::from_static(b": keepalive\n\n"))),
            }
        }
    }
}

/// Live events as Server-Sent Events; reconnect with `Last-Event-ID` to resume without gaps.
#[utoipa::path(
    get, path = "/api/v1/events/stream", tag = "events",
    params(StreamQuery, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this sequence number")),
    responses(
        (status = 200, description = "text/event-stream of `progress` events (id = seq, data = Event JSON)", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, description = "`Last-Event-ID` or `after` is not a sequence number", body = hub_core::http::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let header_id = match req.headers().get("Last-Event-ID") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID must be an event sequence number".into())
                })?,
        ),
        None => None,
    };
    let mut head = state.journal.head();
    let current = *head.borrow_and_update();
    let current = if current == 0 {
        let client = state.pool.get().await?;
        store::head(&client).await?.seq
    } else {
        current
    };
    state.journal.observe_head(current);
    let last = header_id.or(q.after).unwrap_or(current);
    let s = StreamState {
        stopping: state.stopping.clone(),
        state: state.clone(),
        last,
        head,
        event_type: q.event_type,
        noun: q.noun,
        buffer: std::collections::VecDeque::from([Bytes::from_static(b"retry: 2000\n\n")]),
        done: false,
    };
    let body = futures_util::stream::unfold(s, |mut s| async move {
        let item = s.next_chunk().await?;
        Some((item, s))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
