//! The decision lifecycle, as pure functions.

use hub_core::api::decisions::{Decision, DecisionStatus, NewDecision, OutcomeInput};
use hub_core::auth::Principal;
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::text;

/// A validated proposal.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// Title.
    pub title: String,
    /// Context.
    pub context: String,
    /// Options.
    pub options: Vec<String>,
    /// Outcome when recorded as already made.
    pub outcome: Option<ValidOutcome>,
    /// Linked tasks.
    pub task_ids: Vec<uuid::Uuid>,
}

/// A validated outcome.
#[derive(Debug, Clone)]
pub struct ValidOutcome {
    /// Choice.
    pub choice: String,
    /// Rationale.
    pub rationale: String,
}

fn outcome(
    o: &OutcomeInput,
    options: &[String],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<ValidOutcome> {
    let choice = text::single_line("choice", &o.choice, 1, 200)
        .map_err(|m| errors.push(FieldError::new(format!("{prefix}choice"), m)))
        .ok();
    let rationale = text::multi_line("rationale", &o.rationale, 1, 20_000)
        .map_err(|m| errors.push(FieldError::new(format!("{prefix}rationale"), m)))
        .ok();
    let choice = choice?;
    if !options.is_empty() && !options.contains(&choice) {
        errors.push(FieldError::new(
            format!("{prefix}choice"),
            format!("must be one of the options: {}", options.join(", ")),
        ));
        return None;
    }
    Some(ValidOutcome {
        choice,
        rationale: rationale?,
    })
}

/// Validates an outcome against a decision's options.
pub fn validate_outcome(o: &OutcomeInput, options: &[String]) -> Result<ValidOutcome, ApiError> {
    let mut errors = Vec::new();
    match outcome(o, options, "", &mut errors) {
        Some(v) if errors.is_empty() => Ok(v),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Validates a proposal; `prefix` names its place in a larger body (e.g. `replacement.`).
pub fn validate_proposal(d: &NewDecision, prefix: &str) -> Result<Proposal, ApiError> {
    let mut errors = Vec::new();
    let mut field = |name: &str, r: Result<String, String>| {
        r.map_err(|m| errors.push(FieldError::new(format!("{prefix}{name}"), m)))
            .ok()
    };
    let title = field("title", text::single_line("title", &d.title, 1, 200));
    let context = field(
        "context",
        text::multi_line("context", &d.context, 0, 20_000),
    );
    let mut options = Vec::new();
    if d.options.len() > 20 {
        errors.push(FieldError::new(
            format!("{prefix}options"),
            "at most 20 options",
        ));
    }
    for (i, o) in d.options.iter().enumerate() {
        match text::single_line(&format!("options[{i}]"), o, 1, 200) {
            Ok(v) if options.contains(&v) => errors.push(FieldError::new(
                format!("{prefix}options[{i}]"),
                format!("duplicate option `{v}`"),
            )),
            Ok(v) => options.push(v),
            Err(m) => errors.push(FieldError::new(format!("{prefix}options[{i}]"), m)),
        }
    }
    let outcome = d
        .outcome
        .as_ref()
        .and_then(|o| outcome(o, &options, &format!("{prefix}outcome."), &mut errors));
    if d.task_ids.len() > 100 {
        errors.push(FieldError::new(
            format!("{prefix}task_ids"),
            "at most 100 tasks",
        ));
    }
    let mut task_ids = d.task_ids.clone();
    task_ids.sort();
    task_ids.dedup();
    match (title, context) {
        (Some(title), Some(context)) if errors.is_empty() => Ok(Proposal {
            title,
            context,
            options,
            outcome,
            task_ids,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Only open decisions can be escalated.
pub fn can_escalate(d: &Decision) -> Result<(), ApiError> {
    match d.status {
        DecisionStatus::Open => Ok(()),
        s => Err(ApiError::InvalidTransition(format!(
            "decision {} is {}; only open decisions can be escalated",
            d.id,
            s.as_str()
        ))),
    }
}

/// The two-person rule: an escalated decision changes only by the hand of a person who is not
/// its proposer.
fn approver(d: &Decision, actor: &Principal) -> Result<(), ApiError> {
    if !actor.is_human() {
        Err(ApiError::Forbidden(format!(
            "decision {} is escalated and needs a human approval; {} is a service principal",
            d.id, actor.subject
        )))
    } else if actor.subject.as_str() == d.proposed_by {
        Err(ApiError::Forbidden(format!(
            "decision {} was proposed by {}; an escalated decision must be approved by someone else",
            d.id, d.proposed_by
        )))
    } else {
        Ok(())
    }
}

/// Open decisions can be resolved by any writer; escalated ones only by a person who is not
/// the proposer (the two-person rule). Resolved and superseded ones never again.
pub fn can_resolve(d: &Decision, actor: &Principal) -> Result<(), ApiError> {
    match d.status {
        DecisionStatus::Open => Ok(()),
        DecisionStatus::Escalated => approver(d, actor),
        DecisionStatus::Resolved => Err(ApiError::InvalidTransition(format!(
            "decision {} is already resolved and its outcome is immutable; supersede it with a new decision",
            d.id
        ))),
        DecisionStatus::Superseded => Err(ApiError::InvalidTransition(format!(
            "decision {} was superseded by {}; resolve the newer decision",
            d.id,
            d.superseded_by.map(|u| u.to_string()).unwrap_or_default()
        ))),
    }
}

/// Anything but an already superseded decision can be superseded; an escalated one only by an
/// approver, or superseding would side-step the two-person rule.
pub fn can_supersede(d: &Decision, actor: &Principal) -> Result<(), ApiError> {
    match d.status {
        DecisionStatus::Superseded => Err(ApiError::InvalidTransition(format!(
            "decision {} was already superseded by {}",
            d.id,
            d.superseded_by.map(|u| u.to_string()).unwrap_or_default()
        ))),
        DecisionStatus::Escalated => approver(d, actor),
        _ => Ok(()),
    }
}

/// Tasks can be linked to decisions that are still live.
pub fn can_link(d: &Decision) -> Result<(), ApiError> {
    match d.status {
        DecisionStatus::Superseded => Err(ApiError::InvalidTransition(format!(
            "decision {} is superseded; link the task to the newer decision",
            d.id
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::api::decisions::DecisionType;
    use hub_core::auth::{PrincipalKind, Role, Subject};
    use std::collections::BTreeSet;

    fn decision(status: DecisionStatus) -> Decision {
        Decision {
            id: uuid::Uuid::now_v7(),
            title: "t".into(),
            context: String::new(),
            options: vec!["a".into(), "b".into()],
            decision_type: DecisionType::Pending,
            status,
            proposed_by: "alice".into(),
            created_at: chrono::Utc::now(),
            escalated_by: None,
            escalated_at: None,
            escalation_reason: None,
            outcome: None,
            superseded_by: None,
            supersedes: None,
            task_ids: vec![],
            version: 1,
        }
    }

    fn who(name: &str, kind: PrincipalKind) -> Principal {
        Principal {
            subject: Subject::parse(name).unwrap(),
            kind,
            roles: BTreeSet::from([Role::Member]),
            scopes: BTreeSet::new(),
            token_id: None,
            session: None,
        }
    }

    #[test]
    fn two_person_rule_on_escalated_decisions() {
        let d = decision(DecisionStatus::Escalated);
        assert!(matches!(
            can_resolve(&d, &who("alice", PrincipalKind::Human)),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            can_resolve(&d, &who("hub:ops", PrincipalKind::Service)),
            Err(ApiError::Forbidden(_))
        ));
        assert!(can_resolve(&d, &who("bob", PrincipalKind::Human)).is_ok());
        assert!(can_resolve(
            &decision(DecisionStatus::Open),
            &who("alice", PrincipalKind::Human)
        )
        .is_ok());
    }

    #[test]
    fn superseding_an_escalated_decision_needs_an_approver() {
        let d = decision(DecisionStatus::Escalated);
        assert!(matches!(
            can_supersede(&d, &who("alice", PrincipalKind::Human)),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            can_supersede(&d, &who("hub:ops", PrincipalKind::Service)),
            Err(ApiError::Forbidden(_))
        ));
        assert!(can_supersede(&d, &who("bob", PrincipalKind::Human)).is_ok());
        assert!(can_supersede(
            &decision(DecisionStatus::Open),
            &who("alice", PrincipalKind::Human)
        )
        .is_ok());
    }

    #[test]
    fn terminal_states_refuse() {
        let bob = who("bob", PrincipalKind::Human);
        assert!(matches!(
            can_resolve(&decision(DecisionStatus::Resolved), &bob),
            Err(ApiError::InvalidTransition(_))
        ));
        assert!(matches!(
            can_resolve(&decision(DecisionStatus::Superseded), &bob),
            Err(ApiError::InvalidTransition(_))
        ));
        assert!(can_escalate(&decision(DecisionStatus::Escalated)).is_err());
        assert!(can_supersede(&decision(DecisionStatus::Superseded), &bob).is_err());
        assert!(can_supersede(&decision(DecisionStatus::Resolved), &bob).is_ok());
    }

    #[test]
    fn proposal_validation_reports_every_field() {
        let d = NewDecision {
            title: " ".into(),
            context: "ok".into(),
            options: vec!["a".into(), "a".into(), "".into()],
            outcome: Some(OutcomeInput {
                choice: "c".into(),
                rationale: "r".into(),
            }),
            task_ids: vec![],
        };
        let Err(ApiError::Validation(errs)) = validate_proposal(&d, "") else {
            panic!()
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"title"));
        assert!(fields.contains(&"options[1]"));
        assert!(fields.contains(&"options[2]"));
        assert!(fields.contains(&"outcome.choice"), "{fields:?}");
    }
}
