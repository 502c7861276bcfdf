//! Annotations: notes people attach to a widget or an item, in one of the manifest's categories.
//! Each is journaled (`annotation.added`) through the outbox in the same transaction.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use hub_core::api::manifest::Manifest;
use hub_core::auth::Principal;
use hub_core::http::problem::{ApiError, FieldError, Problem};
use hub_core::text;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A stored annotation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Annotation {
    /// Id.
    pub id: Uuid,
    /// One of the manifest's annotation categories.
    pub category: String,
    /// The widget or item it is about, e.g. `deployments` or `deployments/shop/web`.
    pub target: String,
    /// The note.
    pub text: String,
    /// Who wrote it.
    pub author: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/annotations`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAnnotation {
    /// A category of the manifest.
    pub category: String,
    /// Widget or item key, 1–200 characters on one line.
    pub target: String,
    /// The note, 1–5000 characters.
    pub text: String,
}

/// A new annotation whose fields were checked against the manifest.
struct Valid {
    category: String,
    target: String,
    text: String,
}

fn validate(manifest: &Manifest, new: &NewAnnotation) -> Result<Valid, ApiError> {
    let mut errors = Vec::new();
    if !manifest
        .annotation_categories
        .iter()
        .any(|c| c.name == new.category)
    {
        let known: Vec<&str> = manifest
            .annotation_categories
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        errors.push(FieldError::new(
            "category",
            format!(
                "`{}` is not one of this hub's categories ({})",
                new.category.chars().take(64).collect::<String>(),
                known.join(", ")
            ),
        ));
    }
    let target = text::single_line("target", &new.target, 1, 200)
        .map_err(|m| errors.push(FieldError::new("target", m)))
        .ok();
    let body = text::multi_line("text", &new.text, 1, 5000)
        .map_err(|m| errors.push(FieldError::new("text", m)))
        .ok();
    match (target, body) {
        (Some(target), Some(text)) if errors.is_empty() => Ok(Valid {
            category: new.category.clone(),
            target,
            text,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Stores an annotation by `author` and journals it, in one transaction.
pub async fn add(
    state: &AppState,
    author: &str,
    new: &NewAnnotation,
) -> Result<Annotation, ApiError> {
    let v = validate(&state.manifest, new)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "INSERT INTO annotations (id, category, target, text, author) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, category, target, text, author, created_at",
            &[&Uuid::now_v7(), &v.category, &v.target, &v.text, &author],
        )
        .await?;
    let a = from_row(&row);
    let event = state.outbox.event(
        "annotation.added",
        format!(
            "{author} annotated {} on {} ({})",
            a.target,
            state.outbox.hub(),
            a.category
        ),
        author,
        json!({"annotation_id": a.id, "category": a.category, "target": a.target, "text": a.text}),
    )?;
    state.outbox.enqueue(&*tx, &event, None).await?;
    tx.commit().await?;
    state.outbox.wake();
    Ok(a)
}

fn from_row(r: &tokio_postgres::Row) -> Annotation {
    Annotation {
        id: r.get(0),
        category: r.get(1),
        target: r.get(2),
        text: r.get(3),
        author: r.get(4),
        created_at: r.get(5),
    }
}

/// `?target=&category=&limit=`.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this target.
    #[serde(default)]
    pub target: Option<String>,
    /// Only this category.
    #[serde(default)]
    pub category: Option<String>,
    /// 1–500, default 100.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Annotations, newest first.
pub async fn list_filtered(
    client: &impl GenericClient,
    q: &ListQuery,
) -> Result<Vec<Annotation>, ApiError> {
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "limit must be between 1 and 500".into(),
            ))
        }
    };
    let target = q.target.as_deref().filter(|t| !t.is_empty());
    let category = q.category.as_deref().filter(|c| !c.is_empty());
    let rows = client
        .query(
            "SELECT id, category, target, text, author, created_at FROM annotations
              WHERE ($1::text IS NULL OR target = $1) AND ($2::text IS NULL OR category = $2)
              ORDER BY created_at DESC, id DESC LIMIT $3",
            &[&target, &category, &limit],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Annotations.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnnotationList {
    /// Newest first.
    pub items: Vec<Annotation>,
}

/// `GET /api/v1/annotations`.
#[utoipa::path(
    get, path = "/api/v1/annotations", tag = "annotations", params(ListQuery),
    responses((status = 200, body = AnnotationList), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let items = list_filtered(&**client, &q).await?;
    Ok(HttpResponse::Ok().json(AnnotationList { items }))
}

/// `POST /api/v1/annotations`.
#[utoipa::path(
    post, path = "/api/v1/annotations", tag = "annotations", request_body = NewAnnotation,
    responses((status = 201, body = Annotation), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewAnnotation>,
) -> Result<HttpResponse, ApiError> {
    let a = add(&state, principal.subject.as_str(), &body).await?;
    Ok(HttpResponse::Created().json(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(json!({
            "hub": "ops-hub", "kind": "ops", "version": "1.0.0",
            "annotation_categories": [{"name": "incident"}, {"name": "note"}]
        }))
        .unwrap()
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = validate(
            &manifest(),
            &NewAnnotation {
                category: "gossip".into(),
                target: "a\nb".into(),
                text: String::new(),
            },
        )
        .err()
        .unwrap();
        let ApiError::Validation(fields) = err else {
            panic!("not a validation error");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["category", "target", "text"]);
        assert!(fields[0].message.contains("incident, note"));
    }
}
