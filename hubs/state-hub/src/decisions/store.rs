//! SQL of the `decisions` and `decision_tasks` tables.

use super::rules::{Proposal, ValidOutcome};
use hub_core::api::decisions::{Decision, DecisionStatus, DecisionType, Outcome};
use hub_core::http::problem::ApiError;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

const COLUMNS: &str = "d.id, d.title, d.context, d.options, d.decision_type, d.status, d.proposed_by, \
d.created_at, d.escalated_by, d.escalated_at, d.escalation_reason, d.outcome_choice, d.outcome_rationale, \
d.decided_by, d.decided_at, d.superseded_by, d.supersedes, d.version, \
COALESCE((SELECT array_agg(dt.task_id ORDER BY dt.task_id) FROM decision_tasks dt WHERE dt.decision_id = d.id), '{}') AS task_ids";

/// Cursor kind of decision listings.
pub const CURSOR_KIND: &str = "decisions";

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("corrupt decisions row: {what}"))
}

fn from_row(r: &Row) -> Result<Decision, ApiError> {
    let status: String = r.try_get("status")?;
    let dtype: String = r.try_get("decision_type")?;
    let choice: Option<String> = r.try_get("outcome_choice")?;
    let outcome = match choice {
        Some(choice) => Some(Outcome {
            choice,
            rationale: r
                .try_get::<_, Option<String>>("outcome_rationale")?
                .unwrap_or_default(),
            decided_by: r
                .try_get::<_, Option<String>>("decided_by")?
                .ok_or_else(|| corrupt("decided_by"))?,
            decided_at: r
                .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>("decided_at")?
                .ok_or_else(|| corrupt("decided_at"))?,
        }),
        None => None,
    };
    Ok(Decision {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        context: r.try_get("context")?,
        options: r.try_get("options")?,
        decision_type: match dtype.as_str() {
            "made" => DecisionType::Made,
            "pending" => DecisionType::Pending,
            _ => return Err(corrupt("decision_type")),
        },
        status: DecisionStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        proposed_by: r.try_get("proposed_by")?,
        created_at: r.try_get("created_at")?,
        escalated_by: r.try_get("escalated_by")?,
        escalated_at: r.try_get("escalated_at")?,
        escalation_reason: r.try_get("escalation_reason")?,
        outcome,
        superseded_by: r.try_get("superseded_by")?,
        supersedes: r.try_get("supersedes")?,
        task_ids: r.try_get("task_ids")?,
        version: r.try_get("version")?,
    })
}

/// One decision; `for_update` locks the row for a change.
pub async fn get(
    client: &impl GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Decision>, ApiError> {
    let lock = if for_update { " FOR UPDATE OF d" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM decisions d WHERE d.id = $1{lock}"),
            &[&id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// One decision or 404.
pub async fn require(
    client: &impl GenericClient,
    id: Uuid,
    for_update: bool,
) -> Result<Decision, ApiError> {
    get(client, id, for_update)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no decision {id}")))
}

/// Inserts a proposal (resolved at once when it carries an outcome) and links its tasks.
pub async fn insert(
    client: &impl GenericClient,
    p: &Proposal,
    proposer: &str,
    now: chrono::DateTime<chrono::Utc>,
    supersedes: Option<Uuid>,
) -> Result<Decision, ApiError> {
    let id = Uuid::now_v7();
    let (dtype, status, choice, rationale, decided_by, decided_at) = match &p.outcome {
        Some(o) => (
            "made",
            "resolved",
            Some(&o.choice),
            Some(&o.rationale),
            Some(proposer),
            Some(now),
        ),
        None => ("pending", "open", None, None, None, None),
    };
    client
        .execute(
            "INSERT INTO decisions (id, title, context, options, decision_type, status, proposed_by, created_at, \
             outcome_choice, outcome_rationale, decided_by, decided_at, supersedes) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            &[&id, &p.title, &p.context, &p.options, &dtype, &status, &proposer, &now, &choice, &rationale, &decided_by, &decided_at, &supersedes],
        )
        .await?;
    link_tasks(client, id, &p.task_ids, proposer).await?;
    require(client, id, false).await
}

/// Links tasks; unknown task ids are a validation error.
pub async fn link_tasks(
    client: &impl GenericClient,
    id: Uuid,
    tasks: &[Uuid],
    by: &str,
) -> Result<(), ApiError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let found: Vec<Uuid> = client
        .query("SELECT id FROM tasks WHERE id = ANY($1)", &[&tasks])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<String> = tasks
        .iter()
        .filter(|t| !found.contains(t))
        .map(|t| t.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::field(
            "task_ids",
            format!("no such task: {}", missing.join(", ")),
        ));
    }
    client
        .execute(
            "INSERT INTO decision_tasks (decision_id, task_id, linked_by) SELECT $1, t, $3 FROM unnest($2::uuid[]) t \
             ON CONFLICT DO NOTHING",
            &[&id, &tasks, &by],
        )
        .await?;
    Ok(())
}

/// Marks a decision escalated.
pub async fn escalate(
    client: &impl GenericClient,
    id: Uuid,
    by: &str,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE decisions SET status = 'escalated', escalated_by = $2, escalated_at = $3, escalation_reason = $4, \
             version = version + 1 WHERE id = $1",
            &[&id, &by, &now, &reason],
        )
        .await?;
    Ok(())
}

/// Records the outcome.
pub async fn resolve(
    client: &impl GenericClient,
    id: Uuid,
    o: &ValidOutcome,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE decisions SET status = 'resolved', decision_type = 'made', outcome_choice = $2, \
             outcome_rationale = $3, decided_by = $4, decided_at = $5, version = version + 1 WHERE id = $1",
            &[&id, &o.choice, &o.rationale, &by, &now],
        )
        .await?;
    Ok(())
}

/// Marks `old` superseded by `new`.
pub async fn supersede(client: &impl GenericClient, old: Uuid, new: Uuid) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE decisions SET status = 'superseded', superseded_by = $2, version = version + 1 WHERE id = $1",
            &[&old, &new],
        )
        .await?;
    Ok(())
}

/// Bumps the version after a link change.
pub async fn touch(client: &impl GenericClient, id: Uuid) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE decisions SET version = version + 1 WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}

/// A page of decisions, newest first.
pub async fn page(
    client: &impl GenericClient,
    status: Option<DecisionStatus>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<Decision>, Option<Uuid>), ApiError> {
    let status = status.map(|s| s.as_str());
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM decisions d WHERE ($1::text IS NULL OR d.status = $1) \
                 AND ($2::uuid IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3"
            ),
            &[&status, &after, &(limit + 1)],
        )
        .await?;
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|d| d.id)
    } else {
        None
    };
    Ok((items, next))
}

/// How many decisions are in each status (statuses without any are absent).
pub async fn status_counts(
    client: &impl GenericClient,
) -> Result<std::collections::BTreeMap<String, i64>, ApiError> {
    let rows = client
        .query(
            "SELECT status, count(*) FROM decisions GROUP BY status",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The titles of the decisions `ids` names (unknown ids are left out).
pub async fn titles(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<std::collections::BTreeMap<Uuid, String>, ApiError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = client
        .query(
            "SELECT id, title FROM decisions WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
