//! `/annotations`: the annotations, filtered by target or category, and the form to add one.

use crate::annotations::{self, ListQuery, NewAnnotation};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::web;
use hub_core::auth::Principal;
use hub_core::web::{encode_component, PageResult, Pages};
use serde::{Deserialize, Serialize};

/// The add form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct AddForm {
    #[serde(default)]
    category: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    text: String,
}

/// `GET /annotations`.
pub async fn list(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    q: web::Query<ListQuery>,
) -> PageResult {
    render(&pages, &state, &principal, &q, None, None).await
}

async fn render(
    pages: &Pages,
    state: &AppState,
    principal: &Principal,
    q: &ListQuery,
    input: Option<&AddForm>,
    refused: Option<(StatusCode, String)>,
) -> PageResult {
    let client = state.pool.get().await?;
    let items = annotations::list_filtered(&**client, q).await?;
    let mut ctx = super::context(pages, principal);
    ctx.insert("annotations", &items);
    ctx.insert("categories", &state.manifest.annotation_categories);
    ctx.insert("widgets", &state.manifest.widget_types);
    ctx.insert(
        "filter",
        &serde_json::json!({
            "target": q.target.clone().unwrap_or_default(),
            "category": q.category.clone().unwrap_or_default(),
        }),
    );
    ctx.insert(
        "input",
        &input.map_or_else(
            || AddForm {
                target: q.target.clone().unwrap_or_default(),
                category: q.category.clone().unwrap_or_default(),
                ..AddForm::default()
            },
            |f| AddForm {
                category: f.category.clone(),
                target: f.target.clone(),
                text: f.text.clone(),
            },
        ),
    );
    let status = match refused {
        Some((status, message)) => {
            ctx.insert("refusal", &message);
            status
        }
        None => StatusCode::OK,
    };
    Ok(pages.render_status(status, "annotations.html", &ctx)?)
}

/// `POST /annotations`.
pub async fn add(
    pages: web::Data<Pages>,
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Form<AddForm>,
) -> PageResult {
    let new = NewAnnotation {
        category: form.category.clone(),
        target: form.target.clone(),
        text: form.text.clone(),
    };
    match annotations::add(&state, principal.subject.as_str(), &new).await {
        Ok(a) => Ok(super::see_other(&format!(
            "/annotations?target={}",
            encode_component(&a.target)
        ))),
        Err(e) => {
            let refused = super::refusal(e)?;
            render(
                &pages,
                &state,
                &principal,
                &ListQuery::default(),
                Some(&form),
                Some(refused),
            )
            .await
        }
    }
}
