//! `/`: every widget of the manifest with its data and how fresh it is.

use crate::state::AppState;
use crate::widgets;
use actix_web::web;
use hub_core::auth::Principal;
use hub_core::web::{PageResult, Pages};
use serde::Serialize;

/// What the template needs of a widget.
#[derive(Serialize)]
struct Card<'a> {
    #[serde(flatten)]
    view: &'a widgets::WidgetView,
    cells: &'a [Vec<String>],
    pretty: &'a str,
}

/// The dashboard.
pub async fn dashboard(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    let views = widgets::load(&state).await?;
    let cards: Vec<Card<'_>> = views
        .iter()
        .map(|v| Card {
            view: v,
            cells: &v.cells,
            pretty: &v.pretty,
        })
        .collect();
    let mut ctx = super::context(&pages, &principal);
    ctx.insert("widgets", &cards);
    ctx.insert("manifest", &*state.manifest);
    Ok(pages.render("dashboard.html", &ctx)?)
}
