//! The capability registry's operations, shared by the REST handlers and the web pages: each
//! validates its input, applies the rules to the locked row and writes its journal event in the
//! same transaction. Credentials are sealed before the transaction and opened only to hand them
//! to a hub; no event, error or log line carries one.

use super::rules::{self, CredentialInput, TransitionSubject};
use super::store;
use crate::journal::Draft;
use crate::state::AppState;
use hub_core::api::capabilities::{
    CallableCapability, CallableList, Capability, CapabilityTransition, NewCapability, Probe,
    RotationReport, SecretsRecipient,
};
use hub_core::auth::{Permission, Principal, PrincipalKind};
use hub_core::http::etag;
use hub_core::http::problem::ApiError;
use hub_core::sealed::{Keyring, Sealed};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// Requests a registration: status `requested`, event `capability.requested`.
pub async fn request(
    state: &AppState,
    actor: &Principal,
    input: &NewCapability,
) -> Result<Capability, ApiError> {
    let valid = rules::validate_request(input)?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let now = ctx.now();
                let c = store::insert(ctx.client(), &valid, &actor, now).await?;
                let summary = format!("Requested capability {} from {}", c.name, c.owning_service);
                let detail = json!({
                    "capability": c.name, "owning_service": c.owning_service, "base_url": c.base_url,
                    "version": c.version, "contract_sha256": c.contract_sha256,
                });
                ctx.append(&actor, vec![Draft::system("capability.requested", summary, detail)?])
                    .await?;
                Ok(c)
            })
        })
        .await
}

/// Moves a registration along its lifecycle; `if_match` is the entity tag the caller saw.
pub async fn transition(
    state: &AppState,
    actor: &Principal,
    name: &str,
    if_match: Option<String>,
    input: &CapabilityTransition,
) -> Result<Capability, ApiError> {
    let note = match input.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(crate::respond::reason("note", n)?),
    };
    let to = input.to;
    let principal = actor.clone();
    let name = name.to_owned();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let c = store::require(ctx.client(), &name, true).await?;
                etag::check(if_match.as_deref(), c.revision)?;
                let subject = TransitionSubject {
                    name: &c.name,
                    status: c.status,
                    requested_by: &c.requested_by,
                    has_credential: c.credential_key_id.is_some(),
                };
                rules::check_transition(&subject, to, &principal)?;
                let actor = principal.subject.to_string();
                let now = ctx.now();
                store::set_status(ctx.client(), c.id, to, &actor, now).await?;
                let status = rules::status_str(to);
                let summary = format!("Capability {} is now {status}", c.name);
                let detail = json!({
                    "capability": c.name, "from": rules::status_str(c.status), "to": status,
                    "note": note, "requested_by": c.requested_by,
                });
                let event = format!("capability.{status}");
                ctx.append(&actor, vec![Draft::system(&event, summary, detail)?])
                    .await?;
                store::require(ctx.client(), &name, false).await
            })
        })
        .await
}

/// Seals a credential to the hub's current identity and stores it; an age file must open with
/// the hub's keyring first. Event `capability.credential_set` names the key id only.
pub async fn set_credential(
    state: &AppState,
    actor: &Principal,
    name: &str,
    if_match: Option<String>,
    credential: &SecretString,
) -> Result<Capability, ApiError> {
    let keyring = state.capabilities.keyring()?;
    let (sealed, form) = seal_input(&keyring, credential)?;
    let actor = actor.subject.to_string();
    let name = name.to_owned();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let c = store::require(ctx.client(), &name, true).await?;
                etag::check(if_match.as_deref(), c.revision)?;
                rules::can_set_credential(&c.name, c.status)?;
                let now = ctx.now();
                store::set_credential(ctx.client(), c.id, &sealed, &actor, now).await?;
                let summary = format!("Credential set for capability {}", c.name);
                let detail = json!({
                    "capability": c.name, "key_id": sealed.key_id.as_str(),
                    "replaced": c.credential_key_id.is_some(), "submitted_as": form,
                });
                ctx.append(
                    &actor,
                    vec![Draft::system("capability.credential_set", summary, detail)?],
                )
                .await?;
                store::require(ctx.client(), &name, false).await
            })
        })
        .await
}

/// The credential sealed to the current identity, and how it arrived (`plaintext` or `age`).
fn seal_input(
    keyring: &Keyring,
    credential: &SecretString,
) -> Result<(Sealed, &'static str), ApiError> {
    let (plain, form) = match rules::classify_credential(credential)? {
        CredentialInput::Plain(p) => (p, "plaintext"),
        CredentialInput::Sealed(sealed) => {
            let opened = keyring.open(&sealed).map_err(|_| {
                ApiError::field(
                    "credential",
                    format!(
                        "this age file does not open with the state hub's identity (key {}); \
                         encrypt it to the recipient from `hubctl secret recipient --hub`",
                        keyring.current_key_id()
                    ),
                )
            })?;
            (rules::check_plaintext(&opened)?, "age")
        }
    };
    let sealed = keyring
        .seal(&plain)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("sealing a capability credential: {e}")))?;
    Ok((sealed, form))
}

/// The hub's current age recipient.
pub fn recipient(state: &AppState) -> Result<SecretsRecipient, ApiError> {
    let keyring = state.capabilities.keyring()?;
    Ok(SecretsRecipient {
        recipient: keyring.recipient(),
        key_id: keyring.current_key_id().to_string(),
    })
}

/// Re-seals every stored credential to the current identity (after a new identity was put
/// first in `[secrets] age_identity_files`); event `secrets.rotated` with the counts.
pub async fn rotate(state: &AppState, actor: &Principal) -> Result<RotationReport, ApiError> {
    let keyring = state.capabilities.keyring()?;
    let actor = actor.subject.to_string();
    state
        .journal
        .transact(move |ctx| {
            Box::pin(async move {
                let mut report = RotationReport {
                    key_id: keyring.current_key_id().to_string(),
                    resealed: 0,
                    already_current: 0,
                    failed: Vec::new(),
                };
                for (id, name, sealed) in store::sealed_credentials(ctx.client()).await? {
                    match keyring.reseal(&sealed) {
                        Ok(Some(fresh)) => {
                            store::reseal(ctx.client(), id, &fresh).await?;
                            report.resealed += 1;
                        }
                        Ok(None) => report.already_current += 1,
                        Err(e) => {
                            tracing::error!(capability = %name, key_id = %sealed.key_id, error = %e, "a stored credential cannot be re-sealed");
                            report.failed.push(name);
                        }
                    }
                }
                let summary = format!(
                    "Re-sealed {} capability credential(s) to key {}",
                    report.resealed, report.key_id
                );
                let detail = json!({
                    "key_id": report.key_id, "resealed": report.resealed,
                    "already_current": report.already_current, "failed": report.failed,
                });
                ctx.append(&actor, vec![Draft::system("secrets.rotated", summary, detail)?])
                    .await?;
                Ok(report)
            })
        })
        .await
}

/// The hub name of a hub's service principal (`hub:<name>`).
fn hub_of(actor: &Principal) -> Option<&str> {
    match actor.kind {
        PrincipalKind::Service => actor.subject.as_str().strip_prefix("hub:"),
        PrincipalKind::Human => None,
    }
}

/// What a principal may call: for a hub, the completed registrations its active manifest uses,
/// with their credentials; for an admin, every completed registration without credentials.
pub async fn callable(state: &AppState, actor: &Principal) -> Result<CallableList, ApiError> {
    let client = state.pool.get().await?;
    if let Some(hub) = hub_of(actor) {
        let manifest = crate::registry::store::active_manifest(&**client, hub).await?;
        let Some(manifest) = manifest else {
            return Ok(CallableList { items: Vec::new() });
        };
        let names: Vec<String> = manifest
            .capabilities
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let rows = store::completed(&**client, Some(&names)).await?;
        let keyring = match rows.iter().any(|r| r.sealed.is_some()) {
            true => Some(state.capabilities.keyring()?),
            false => None,
        };
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let credential = match (&row.sealed, &keyring) {
                (Some(sealed), Some(keyring)) => {
                    let plain = open_credential(keyring, &row.capability.name, sealed)?;
                    tracing::info!(hub, capability = %row.capability.name, key_id = %sealed.key_id, "capability credential handed out");
                    Some(plain.expose_secret().to_owned())
                }
                _ => None,
            };
            items.push(callable_of(row.capability, credential));
        }
        return Ok(CallableList { items });
    }
    if actor.has(Permission::RegistryAdmin) {
        let rows = store::completed(&**client, None).await?;
        let items = rows
            .into_iter()
            .map(|r| callable_of(r.capability, None))
            .collect();
        return Ok(CallableList { items });
    }
    Err(ApiError::Forbidden(
        "the callable list is for hub service principals (hub:<name>), with credentials, and \
         for admins, without"
            .to_owned(),
    ))
}

/// Opens a stored credential; failing that is the operator's to fix (a missing identity).
pub(crate) fn open_credential(
    keyring: &Keyring,
    name: &str,
    sealed: &Sealed,
) -> Result<SecretString, ApiError> {
    keyring.open(sealed).map_err(|e| {
        ApiError::internal(anyhow::anyhow!(
            "the credential of capability {name} cannot be opened: {e}"
        ))
    })
}

fn callable_of(c: Capability, credential: Option<String>) -> CallableCapability {
    CallableCapability {
        name: c.name,
        base_url: c.base_url,
        health_path: c.health_path,
        credential,
        contract_sha256: c.contract_sha256,
    }
}

/// The probe history of a registration, newest first.
pub async fn probes(state: &AppState, name: &str, limit: i64) -> Result<Vec<Probe>, ApiError> {
    let client = state.pool.get().await?;
    let c = store::require(&**client, name, false).await?;
    store::probes(&**client, c.id, limit).await
}
