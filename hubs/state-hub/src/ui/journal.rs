//! `/journal`: the progress events, newest first, with the API listing's filters and keyset
//! paging; each event with its links and its detail.

use super::form::{self, Feedback};
use crate::journal::store::{self as journal_store, Filter, Order};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::web;
use hub_core::api::events::Event;
use hub_core::auth::Principal;
use hub_core::http::cursor;
use hub_core::http::problem::FieldError;
use hub_core::web::{encode_component, PageResult, Pages};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Events per page.
const PAGE_SIZE: i64 = 50;

/// The filter form (a GET form, so a filtered journal is a link to share).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct JournalQuery {
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    workstream_id: String,
    #[serde(default)]
    workplan_id: String,
    #[serde(default)]
    task_id: String,
    #[serde(default)]
    decision_id: String,
    /// Cursor of the page after the one shown.
    #[serde(default, skip_serializing)]
    after: String,
}

/// An event as the page shows it: its detail already pretty-printed (tera escapes it).
#[derive(Serialize)]
struct EventView<'a> {
    #[serde(flatten)]
    event: &'a Event,
    detail_pretty: String,
}

/// The filter, or each field that does not parse.
fn filter(q: &JournalQuery) -> Result<Filter, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut id = |field: &str, raw: &str| match form::optional(raw) {
        None => None,
        Some(v) => Uuid::parse_str(&v)
            .map_err(|_| errors.push(FieldError::new(field, "must be an id (a UUID)")))
            .ok(),
    };
    let f = Filter {
        event_type: form::optional(&q.event_type),
        author: form::optional(&q.author),
        workstream_id: id("workstream_id", &q.workstream_id),
        workplan_id: id("workplan_id", &q.workplan_id),
        task_id: id("task_id", &q.task_id),
        decision_id: id("decision_id", &q.decision_id),
        ..Default::default()
    };
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(errors)
    }
}

/// `GET /journal`.
pub async fn journal(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<JournalQuery>,
) -> PageResult {
    let mut ctx = super::context(&pages, &principal);
    let after = form::optional(&q.after)
        .map(|c| cursor::decode_seq(journal_store::CURSOR_KIND, &c))
        .transpose()?;
    let filter = match filter(&q) {
        Ok(f) => f,
        Err(errors) => {
            let feedback = Feedback::fields("filter", &*q, &errors)
                .with_status(StatusCode::BAD_REQUEST)
                .with_message("These filters cannot be applied: correct the marked fields.");
            feedback.apply(&mut ctx);
            ctx.insert("events", &Vec::<()>::new());
            return Ok(pages.render_status(feedback.status, "journal.html", &ctx)?);
        }
    };
    let client = state.pool.get().await?;
    let (events, next) =
        journal_store::page(&client, &filter, after, PAGE_SIZE, Order::Desc).await?;
    let views: Vec<EventView> = events
        .iter()
        .map(|event| EventView {
            event,
            detail_pretty: serde_json::to_string_pretty(&event.detail).unwrap_or_default(),
        })
        .collect();
    let older = next.map(|cursor| {
        let mut query = url_query(&q);
        query.push_str("&after=");
        query.push_str(&encode_component(&cursor));
        format!("/journal?{query}")
    });
    // The form shows the filters in force.
    ctx.insert("input", &serde_json::json!({ "filter": &*q }));
    ctx.insert("events", &views);
    ctx.insert("older", &older);
    ctx.insert("filtered", &!filter.is_empty());
    Ok(pages.render("journal.html", &ctx)?)
}

/// The filters as a query string, for the "older" link.
fn url_query(q: &JournalQuery) -> String {
    [
        ("event_type", &q.event_type),
        ("author", &q.author),
        ("workstream_id", &q.workstream_id),
        ("workplan_id", &q.workplan_id),
        ("task_id", &q.task_id),
        ("decision_id", &q.decision_id),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode_component(v.trim())))
    .collect::<Vec<_>>()
    .join("&")
}
