//! Widgets: each widget type of the manifest shown from the newest observation of its path, with
//! a line that says how fresh the data is: fresh, stale, unreachable since …, or no data yet.

use crate::observations::{self, Observation};
use crate::polling::store::{self as poll_store, PollState};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use hub_core::api::manifest::{Manifest, WidgetRender, WidgetTypeDecl};
use hub_core::http::problem::ApiError;
use serde::Serialize;
use serde_json::Value;

/// How current a widget's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FreshnessState {
    /// Polled successfully within `stale_after_seconds`.
    Fresh,
    /// The last successful poll is older than that.
    Stale,
    /// The poller cannot reach the capability right now.
    Unreachable,
    /// Nothing was ever observed.
    NoData,
}

/// A widget's freshness and the line that says it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Freshness {
    /// The state.
    pub state: FreshnessState,
    /// For people: "fresh (12 s ago)", "stale (last data 5 min ago)", "unreachable since
    /// 12:03:10 UTC — showing data from 12:02:40", "no data yet".
    pub text: String,
    /// The last successful poll.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Since when the capability is unreachable.
    pub unreachable_since: Option<DateTime<Utc>>,
    /// The last poll's error.
    pub last_error: Option<String>,
}

/// Judges freshness from the last successful poll and the current outage, at `now`.
pub fn freshness(
    now: DateTime<Utc>,
    last_success_at: Option<DateTime<Utc>>,
    unreachable_since: Option<DateTime<Utc>>,
    stale_after_seconds: u32,
) -> (FreshnessState, String) {
    match (unreachable_since, last_success_at) {
        (Some(since), Some(last)) => (
            FreshnessState::Unreachable,
            format!(
                "unreachable since {} — showing data from {}",
                clock(since),
                clock(last)
            ),
        ),
        (Some(since), None) => (
            FreshnessState::Unreachable,
            format!("unreachable since {} — no data yet", clock(since)),
        ),
        (None, None) => (FreshnessState::NoData, "no data yet".to_owned()),
        (None, Some(last)) => {
            let age = (now - last).num_seconds().max(0);
            if age > i64::from(stale_after_seconds) {
                (
                    FreshnessState::Stale,
                    format!("stale (last data {} ago)", human_age(age)),
                )
            } else {
                (
                    FreshnessState::Fresh,
                    format!("fresh ({} ago)", human_age(age)),
                )
            }
        }
    }
}

/// `12:03:10 UTC` today, with the date in front on other days.
fn clock(t: DateTime<Utc>) -> String {
    if t.date_naive() == Utc::now().date_naive() {
        t.format("%H:%M:%S UTC").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// `12 s`, `5 min`, `3 h`, `2 d`: rounded down, as people read an age.
pub fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A widget ready to show.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WidgetView {
    /// Widget name.
    pub name: String,
    /// Heading.
    pub title: String,
    /// Its capability.
    pub capability: String,
    /// Its path.
    pub path: String,
    /// How it renders.
    pub render: WidgetRender,
    /// How fresh.
    pub freshness: Freshness,
    /// When the data shown was first observed.
    pub observed_at: Option<DateTime<Utc>>,
    /// The data: the rows of a table, the object of facts, the whole body for json (any JSON).
    #[schema(value_type = Value)]
    pub data: Value,
    /// Table columns (keys of the rows, in first-seen order).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Table cells or facts as text, for the page.
    #[serde(skip)]
    pub cells: Vec<Vec<String>>,
    /// Pretty JSON, for the page.
    #[serde(skip)]
    pub pretty: String,
}

/// Builds every widget of `manifest` from the states and newest observations.
pub fn views(
    manifest: &Manifest,
    states: &[PollState],
    latest: &[Observation],
    now: DateTime<Utc>,
) -> Vec<WidgetView> {
    manifest
        .widget_types
        .iter()
        .map(|w| {
            let state = states
                .iter()
                .find(|s| s.capability == w.capability && s.path == w.path);
            let obs = latest
                .iter()
                .find(|o| o.capability == w.capability && o.path == w.path);
            view(w, state, obs, now)
        })
        .collect()
}

fn view(
    w: &WidgetTypeDecl,
    state: Option<&PollState>,
    obs: Option<&Observation>,
    now: DateTime<Utc>,
) -> WidgetView {
    // Without an observation there is nothing to show, whatever the state row says.
    let last_success_at = obs.and(state.and_then(|s| s.last_success_at));
    let unreachable_since = state.and_then(|s| s.unreachable_since);
    let (fstate, text) = freshness(
        now,
        last_success_at,
        unreachable_since,
        w.stale_after_seconds,
    );
    let data = obs
        .map(|o| select(&o.body, w.items_pointer.as_deref()))
        .unwrap_or(Value::Null);
    let (columns, cells) = match w.render {
        WidgetRender::Table => table(&data),
        WidgetRender::Facts => (Vec::new(), facts(&data)),
        WidgetRender::Json => (Vec::new(), Vec::new()),
    };
    let pretty = match w.render {
        WidgetRender::Json if !data.is_null() => {
            serde_json::to_string_pretty(&data).unwrap_or_default()
        }
        _ => String::new(),
    };
    WidgetView {
        name: w.name.clone(),
        title: w.title.clone(),
        capability: w.capability.clone(),
        path: w.path.clone(),
        render: w.render,
        freshness: Freshness {
            state: fstate,
            text,
            last_success_at,
            unreachable_since,
            last_error: state.and_then(|s| s.last_error.clone()),
        },
        observed_at: obs.map(|o| o.fetched_at),
        data,
        columns,
        cells,
        pretty,
    }
}

/// The part of a body a widget shows: the value at its JSON pointer, or the whole body.
fn select(body: &Value, pointer: Option<&str>) -> Value {
    match pointer {
        Some(p) if !p.is_empty() => body.pointer(p).cloned().unwrap_or(Value::Null),
        _ => body.clone(),
    }
}

/// A scalar as text; objects and arrays as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Columns (keys in first-seen order) and rows of text from an array of objects.
fn table(rows: &Value) -> (Vec<String>, Vec<Vec<String>>) {
    let Some(items) = rows.as_array() else {
        return (Vec::new(), Vec::new());
    };
    let mut columns: Vec<String> = Vec::new();
    for item in items {
        if let Some(obj) = item.as_object() {
            for k in obj.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let cells = items
        .iter()
        .map(|item| match item.as_object() {
            Some(obj) => columns
                .iter()
                .map(|c| obj.get(c).map(cell).unwrap_or_default())
                .collect(),
            None => vec![cell(item)],
        })
        .collect();
    (columns, cells)
}

/// Key/value pairs of an object's scalar members (nested ones as compact JSON).
fn facts(data: &Value) -> Vec<Vec<String>> {
    data.as_object()
        .map(|obj| obj.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect())
        .unwrap_or_default()
}

/// Loads everything the widgets need.
pub async fn load(state: &AppState) -> Result<Vec<WidgetView>, ApiError> {
    let client = state.pool.get().await?;
    let states = poll_store::all(&**client).await?;
    let latest = observations::latest_all(&**client).await?;
    Ok(views(&state.manifest, &states, &latest, Utc::now()))
}

/// Every widget.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WidgetList {
    /// In the manifest's order.
    pub items: Vec<WidgetView>,
}

/// `GET /api/v1/widgets`: every widget with its freshness and data.
#[utoipa::path(
    get, path = "/api/v1/widgets", tag = "widgets",
    responses((status = 200, body = WidgetList)),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = load(&state).await?;
    Ok(HttpResponse::Ok().json(WidgetList { items }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn freshness_lines_say_what_people_need() {
        let now = Utc::now();
        let (s, t) = freshness(now, Some(now - Duration::seconds(12)), None, 60);
        assert_eq!((s, t.as_str()), (FreshnessState::Fresh, "fresh (12 s ago)"));
        let (s, t) = freshness(now, Some(now - Duration::minutes(5)), None, 60);
        assert_eq!(
            (s, t.as_str()),
            (FreshnessState::Stale, "stale (last data 5 min ago)")
        );
        let since = now - Duration::seconds(30);
        let last = now - Duration::seconds(60);
        let (s, t) = freshness(now, Some(last), Some(since), 60);
        assert_eq!(s, FreshnessState::Unreachable);
        assert_eq!(
            t,
            format!(
                "unreachable since {} — showing data from {}",
                clock(since),
                clock(last)
            )
        );
        assert!(t.starts_with("unreachable since ") && t.contains(" UTC — showing data from "));
        let (s, t) = freshness(now, None, None, 60);
        assert_eq!((s, t.as_str()), (FreshnessState::NoData, "no data yet"));
    }

    #[test]
    fn ages_round_down_to_a_readable_unit() {
        assert_eq!(human_age(0), "0 s");
        assert_eq!(human_age(119), "119 s");
        assert_eq!(human_age(300), "5 min");
        assert_eq!(human_age(3 * 3600), "3 h");
        assert_eq!(human_age(3 * 86_400), "3 d");
    }

    #[test]
    fn tables_take_their_columns_from_the_rows() {
        let rows = serde_json::json!([
            {"name": "web", "replicas": {"desired": 3, "ready": 2}},
            {"name": "api", "frozen": true}
        ]);
        let (columns, cells) = table(&rows);
        assert_eq!(columns, ["name", "replicas", "frozen"]);
        assert_eq!(cells[0], ["web", "{\"desired\":3,\"ready\":2}", ""]);
        assert_eq!(cells[1], ["api", "", "true"]);
    }
}
