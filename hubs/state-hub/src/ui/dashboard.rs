//! `/`: what needs attention now: open escalations, blocked tasks, the latest events live.

use crate::journal::store::{self as journal_store, Filter, Order};
use crate::state::AppState;
use actix_web::web;
use hub_core::auth::Principal;
use hub_core::web::{PageResult, Pages};

/// The dashboard.
pub async fn dashboard(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
) -> PageResult {
    let client = state.pool.get().await?;
    let escalated = client
        .query(
            "SELECT id, title, proposed_by, escalated_at FROM decisions
              WHERE status = 'escalated' ORDER BY escalated_at DESC LIMIT 50",
            &[],
        )
        .await?;
    let escalated: Vec<_> = escalated
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.get::<_, uuid::Uuid>(0),
                "title": r.get::<_, String>(1),
                "proposed_by": r.get::<_, String>(2),
                "escalated_at": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(3),
            })
        })
        .collect();
    let (recent, _) =
        journal_store::page(&client, &Filter::default(), None, 20, Order::Desc).await?;
    let mut ctx = pages.context(Some(&principal));
    ctx.insert("escalated", &escalated);
    ctx.insert("recent", &recent);
    Ok(pages.render("dashboard.html", &ctx)?)
}
