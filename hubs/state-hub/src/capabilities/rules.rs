//! The capability registry's rules, as pure functions: what a valid registration is, which
//! lifecycle step who may take, what a credential looks like, and what a probe found.

use hub_core::api::capabilities::{CapabilityStatus, NewCapability, ProbeHealth};
use hub_core::auth::{Permission, Principal};
use hub_core::http::problem::{ApiError, FieldError};
use hub_core::sealed::Sealed;
use hub_core::text;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Largest contract document, as stored (canonical JSON bytes).
pub const MAX_CONTRACT_BYTES: usize = 1024 * 1024;
/// Longest credential accepted in clear text.
pub const MAX_CREDENTIAL_LEN: usize = 4096;
/// Longest path (health, contract).
const MAX_PATH_LEN: usize = 200;
/// Names that would collide with the API's own paths under `/api/v1/capabilities/`.
const RESERVED_NAMES: &[&str] = &["callable"];

/// A registration request that passed every check.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    /// Unique name.
    pub name: String,
    /// Providing service.
    pub owning_service: String,
    /// Normalized `https://` base URL.
    pub base_url: String,
    /// Absolute health path.
    pub health_path: String,
    /// Absolute contract path.
    pub contract_path: String,
    /// Canonical JSON text of the contract (what is stored and served back).
    pub contract: String,
    /// sha256 (hex) of `contract`'s bytes.
    pub contract_sha256: String,
    /// Interface version.
    pub version: String,
}

/// The status as stored and shown.
pub fn status_str(s: CapabilityStatus) -> &'static str {
    match s {
        CapabilityStatus::Requested => "requested",
        CapabilityStatus::Accepted => "accepted",
        CapabilityStatus::InProgress => "in_progress",
        CapabilityStatus::ReadyForReview => "ready_for_review",
        CapabilityStatus::Completed => "completed",
        CapabilityStatus::Rejected => "rejected",
        CapabilityStatus::Withdrawn => "withdrawn",
    }
}

/// Parses a stored status.
pub fn parse_status(s: &str) -> Option<CapabilityStatus> {
    ALL_STATUSES.into_iter().find(|x| status_str(*x) == s)
}

/// Every status, in lifecycle order.
pub const ALL_STATUSES: [CapabilityStatus; 7] = [
    CapabilityStatus::Requested,
    CapabilityStatus::Accepted,
    CapabilityStatus::InProgress,
    CapabilityStatus::ReadyForReview,
    CapabilityStatus::Completed,
    CapabilityStatus::Rejected,
    CapabilityStatus::Withdrawn,
];

/// The health as stored and shown.
pub fn health_str(h: ProbeHealth) -> &'static str {
    match h {
        ProbeHealth::Healthy => "healthy",
        ProbeHealth::Drifted => "drifted",
        ProbeHealth::Unhealthy => "unhealthy",
        ProbeHealth::Unknown => "unknown",
    }
}

/// Parses a stored health.
pub fn parse_health(s: &str) -> Option<ProbeHealth> {
    [
        ProbeHealth::Healthy,
        ProbeHealth::Drifted,
        ProbeHealth::Unhealthy,
        ProbeHealth::Unknown,
    ]
    .into_iter()
    .find(|h| health_str(*h) == s)
}

/// Lowercase hex of sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    hub_core::journal::to_hex(bytes)
}

/// The canonical text of a contract: compact JSON with object keys sorted, so the hash names
/// the document, not its formatting.
pub fn canonical_contract(v: &serde_json::Value) -> String {
    let mut out = String::new();
    hub_core::journal::canonical_value(&mut out, v);
    out
}

/// The sha256 of a live contract as fetched: its canonical form when it is JSON (formatting and
/// key order do not count as drift), else its raw bytes (which then never match).
pub fn live_contract_sha256(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => sha256_hex(canonical_contract(&v).as_bytes()),
        Err(_) => sha256_hex(body),
    }
}

/// A capability name: 1–63 lowercase letters, digits and `-`, starting with a letter and not
/// ending with `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        let shown: String = name.chars().take(64).collect();
        return Err(format!(
            "name `{}` must be 1-63 lowercase letters, digits or `-`, start with a letter and not end with `-` (e.g. `deployments`)",
            shown.escape_debug()
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("name `{name}` is reserved by the API"));
    }
    Ok(())
}

/// A base URL a capability client may call: `https://`, a host, no user info, query or fragment.
/// Returns its normalized text.
pub fn check_base_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > 500 {
        return Err("base_url must have at most 500 characters".to_owned());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("base_url is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "base_url must be https:// (capabilities are only called over TLS), not {}://",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("base_url must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Said without echoing the URL: its user info may be a password.
        return Err(
            "base_url must not carry user info; the credential is set separately and stored sealed"
                .to_owned(),
        );
    }
    if url.query().is_some() {
        return Err("base_url must not have a query".to_owned());
    }
    if url.fragment().is_some() {
        return Err("base_url must not have a fragment".to_owned());
    }
    Ok(url.to_string())
}

/// An absolute path under the base URL: `/…`, no `//` start, no query, fragment, backslash,
/// encoded slash, `.`/`..` segment, white space or control character.
pub fn check_path(field: &str, path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "{field} must have at most {MAX_PATH_LEN} characters"
        ));
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(format!(
            "{field} must be an absolute path starting with a single `/`, e.g. `/healthz`"
        ));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(format!(
            "{field} must be ASCII without white space or control characters"
        ));
    }
    let lowered = path.to_ascii_lowercase();
    if path.contains(['?', '#', '\\']) || lowered.contains("%2f") || lowered.contains("%5c") {
        return Err(format!(
            "{field} must not have a query, a fragment, a backslash or an encoded slash"
        ));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{field} must not have `.` or `..` segments"));
    }
    Ok(path.to_owned())
}

/// Validates a registration request, reporting every bad field at once.
pub fn validate_request(input: &NewCapability) -> Result<ValidRequest, ApiError> {
    let mut errors = Vec::new();
    let mut field = |name: &str, r: Result<String, String>| {
        r.map_err(|m| errors.push(FieldError::new(name, m))).ok()
    };
    let name = field("name", check_name(&input.name).map(|()| input.name.clone()));
    let owning_service = field(
        "owning_service",
        text::single_line("owning_service", &input.owning_service, 1, 100),
    );
    let base_url = field("base_url", check_base_url(&input.base_url));
    let health_path = field("health_path", check_path("health_path", &input.health_path));
    let contract_path = field(
        "contract_path",
        check_path("contract_path", &input.contract_path),
    );
    let version = field(
        "version",
        text::single_line("version", &input.version, 1, 64).and_then(|v| {
            if v.contains(char::is_whitespace) {
                Err("version must not contain white space".to_owned())
            } else {
                Ok(v)
            }
        }),
    );
    let contract = field("contract", check_contract(&input.contract));
    match (
        name,
        owning_service,
        base_url,
        health_path,
        contract_path,
        version,
        contract,
    ) {
        (
            Some(name),
            Some(owning_service),
            Some(base_url),
            Some(health_path),
            Some(contract_path),
            Some(version),
            Some(contract),
        ) if errors.is_empty() => {
            let contract_sha256 = sha256_hex(contract.as_bytes());
            Ok(ValidRequest {
                name,
                owning_service,
                base_url,
                health_path,
                contract_path,
                contract,
                contract_sha256,
                version,
            })
        }
        _ => Err(ApiError::Validation(errors)),
    }
}

/// A contract: a JSON object (OpenAPI or JSON Schema document) PostgreSQL can store, at most
/// [`MAX_CONTRACT_BYTES`] in canonical form. Returns that form.
pub fn check_contract(v: &serde_json::Value) -> Result<String, String> {
    if !v.is_object() {
        return Err(
            "contract must be a JSON object (an OpenAPI or JSON Schema document)".to_owned(),
        );
    }
    text::json_storable("contract", v)?;
    let canonical = canonical_contract(v);
    if canonical.len() > MAX_CONTRACT_BYTES {
        return Err(format!(
            "contract must be at most {MAX_CONTRACT_BYTES} bytes as compact JSON (has {})",
            canonical.len()
        ));
    }
    if canonical.contains('\0') {
        return Err("contract contains a NUL character".to_owned());
    }
    Ok(canonical)
}

/// Where each status may go next.
pub fn next_statuses(from: CapabilityStatus) -> &'static [CapabilityStatus] {
    use CapabilityStatus::*;
    match from {
        Requested => &[Accepted, Rejected, Withdrawn],
        Accepted => &[InProgress, Rejected, Withdrawn],
        InProgress => &[ReadyForReview, Rejected, Withdrawn],
        // Back to in_progress: the reviewer found something to fix.
        ReadyForReview => &[Completed, InProgress, Rejected, Withdrawn],
        // A completed registration is decommissioned by withdrawing it.
        Completed => &[Withdrawn],
        Rejected | Withdrawn => &[],
    }
}

/// What a registration needs to know to decide a transition.
#[derive(Debug, Clone)]
pub struct TransitionSubject<'a> {
    /// Its name, for messages.
    pub name: &'a str,
    /// Current status.
    pub status: CapabilityStatus,
    /// Who requested it.
    pub requested_by: &'a str,
    /// Whether a credential is stored.
    pub has_credential: bool,
}

/// Decides whether `actor` may move the registration to `to`: a legal step (409 naming the
/// allowed ones otherwise), with the permission that step needs (403), and for completion a
/// credential and a human reviewer other than the requester.
pub fn check_transition(
    cap: &TransitionSubject<'_>,
    to: CapabilityStatus,
    actor: &Principal,
) -> Result<(), ApiError> {
    use CapabilityStatus::*;
    let allowed = next_statuses(cap.status);
    if !allowed.contains(&to) {
        let options = if allowed.is_empty() {
            "none: it is final".to_owned()
        } else {
            allowed
                .iter()
                .map(|s| status_str(*s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(ApiError::InvalidTransition(format!(
            "capability {} is {}; it cannot become {}. Allowed next: {options}",
            cap.name,
            status_str(cap.status),
            status_str(to)
        )));
    }
    let admin = actor.has(Permission::RegistryAdmin);
    let need_admin = |what: &str| {
        if admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{what} capability {} needs the registry.admin permission",
                cap.name
            )))
        }
    };
    match to {
        Accepted => need_admin("accepting"),
        Rejected => need_admin("rejecting"),
        InProgress | ReadyForReview | Requested => Ok(()),
        Withdrawn => {
            if admin || actor.subject.as_str() == cap.requested_by {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "capability {} can be withdrawn by its requester, {}, or an admin",
                    cap.name, cap.requested_by
                )))
            }
        }
        Completed => {
            need_admin("completing")?;
            if !actor.is_human() {
                return Err(ApiError::Forbidden(format!(
                    "completing capability {} is a review by a person; {} is a service principal",
                    cap.name, actor.subject
                )));
            }
            if actor.subject.as_str() == cap.requested_by {
                return Err(ApiError::Forbidden(format!(
                    "capability {} was requested by {}; completing it is a review by someone else",
                    cap.name, cap.requested_by
                )));
            }
            if !cap.has_credential {
                return Err(ApiError::InvalidTransition(format!(
                    "capability {} has no credential yet; set it (PUT /api/v1/capabilities/{}/credential) before completing",
                    cap.name, cap.name
                )));
            }
            Ok(())
        }
    }
}

/// Whether a credential may be set in this status: not once the registration is closed.
pub fn can_set_credential(name: &str, status: CapabilityStatus) -> Result<(), ApiError> {
    match status {
        CapabilityStatus::Rejected | CapabilityStatus::Withdrawn => {
            Err(ApiError::InvalidTransition(format!(
                "capability {name} is {}; a closed registration takes no credential",
                status_str(status)
            )))
        }
        _ => Ok(()),
    }
}

/// A credential as it arrived.
pub enum CredentialInput {
    /// The bearer token in clear text (trimmed, checked).
    Plain(SecretString),
    /// An age file an operator sealed to the hub's recipient.
    Sealed(Sealed),
}

/// Tells a sealed credential from a clear one. Anything that starts like an age file but does not
/// parse as one is refused rather than stored as a token. Messages never hold the value.
pub fn classify_credential(input: &SecretString) -> Result<CredentialInput, ApiError> {
    let text = input.expose_secret();
    if let Ok(sealed) = Sealed::parse(text.as_bytes()) {
        return Ok(CredentialInput::Sealed(sealed));
    }
    let start = text.trim_start();
    let looks_sealed = start.starts_with("-----BEGIN AGE")
        || start.starts_with("age-encryption.org/")
        || start.starts_with("key-id: ");
    if looks_sealed {
        return Err(ApiError::field(
            "credential",
            "this looks like an age file but is damaged or incomplete; encrypt it again with `age -r <recipient> -a` or `hubctl secret encrypt`",
        ));
    }
    check_plaintext(input).map(CredentialInput::Plain)
}

/// A bearer credential: 1–4096 visible ASCII characters once surrounding white space (a file's
/// trailing newline) is trimmed. Messages never hold the value.
pub fn check_plaintext(input: &SecretString) -> Result<SecretString, ApiError> {
    let text = input.expose_secret().trim();
    let bad = |m: &str| ApiError::field("credential", m);
    if text.is_empty() {
        return Err(bad("credential must not be empty"));
    }
    if text.len() > MAX_CREDENTIAL_LEN {
        return Err(bad(&format!(
            "credential must have at most {MAX_CREDENTIAL_LEN} characters"
        )));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "credential must be visible ASCII without spaces (the bearer token alone, without `Bearer `)",
        ));
    }
    Ok(SecretString::from(text.to_owned()))
}

/// What one probe observed.
#[derive(Debug, Clone)]
pub enum Observation {
    /// The health path did not answer (connect, TLS, time-out, guard…).
    Unreachable(String),
    /// The health path answered with this non-2xx status.
    BadStatus(u16),
    /// Healthy answer, but the contract could not be fetched.
    ContractFailed(String),
    /// Healthy answer and the live contract's sha256.
    Contract(String),
}

/// The verdict of a probe and its error text.
pub fn judge(obs: &Observation, registered_sha256: &str) -> (ProbeHealth, Option<String>) {
    match obs {
        Observation::Unreachable(e) => (ProbeHealth::Unhealthy, Some(e.clone())),
        Observation::BadStatus(s) => (
            ProbeHealth::Unhealthy,
            Some(format!("the health path answered HTTP {s}")),
        ),
        Observation::ContractFailed(e) => (
            ProbeHealth::Unhealthy,
            Some(format!("the contract could not be fetched: {e}")),
        ),
        Observation::Contract(live) if live == registered_sha256 => (ProbeHealth::Healthy, None),
        Observation::Contract(live) => (
            ProbeHealth::Drifted,
            Some(format!(
                "the live contract's sha256 {live} differs from the registered {registered_sha256}"
            )),
        ),
    }
}

/// The event a change of health writes; `None` when nothing changed.
pub fn health_event(before: ProbeHealth, after: ProbeHealth) -> Option<&'static str> {
    use ProbeHealth::*;
    if before == after {
        return None;
    }
    match (before, after) {
        (_, Unhealthy) => Some("capability.unhealthy"),
        (_, Drifted) => Some("capability.contract_drift"),
        (Unknown, Healthy) => Some("capability.healthy"),
        (_, Healthy) => Some("capability.recovered"),
        (_, Unknown) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::auth::{PrincipalKind, Role, Subject};
    use serde_json::json;
    use std::collections::BTreeSet;

    fn who(name: &str, kind: PrincipalKind, role: Role) -> Principal {
        Principal {
            subject: Subject::parse(name).unwrap(),
            kind,
            roles: BTreeSet::from([role]),
            scopes: BTreeSet::new(),
            token_id: None,
            session: None,
        }
    }

    fn request() -> NewCapability {
        NewCapability {
            name: "deployments".into(),
            owning_service: "k3s inventory".into(),
            base_url: "https://cluster.example:8443/deployments".into(),
            health_path: "/healthz".into(),
            contract_path: "/contract".into(),
            contract: json!({"openapi": "3.1.0", "info": {"title": "d", "version": "1"}}),
            version: "1.0.0".into(),
        }
    }

    fn subject(status: CapabilityStatus, credential: bool) -> TransitionSubject<'static> {
        TransitionSubject {
            name: "deployments",
            status,
            requested_by: "alice",
            has_credential: credential,
        }
    }

    #[test]
    fn a_good_request_is_normalized_and_hashed_over_its_canonical_bytes() {
        let v = validate_request(&request()).unwrap();
        assert_eq!(v.base_url, "https://cluster.example:8443/deployments");
        assert_eq!(
            v.contract,
            r#"{"info":{"title":"d","version":"1"},"openapi":"3.1.0"}"#
        );
        assert_eq!(v.contract_sha256, sha256_hex(v.contract.as_bytes()));
        // The same document formatted otherwise is the same contract.
        let pretty = serde_json::to_vec_pretty(&request().contract).unwrap();
        assert_eq!(live_contract_sha256(&pretty), v.contract_sha256);
        assert_ne!(live_contract_sha256(b"not json"), v.contract_sha256);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let bad = NewCapability {
            name: "Deploy ments".into(),
            owning_service: "".into(),
            base_url: "http://cluster.example".into(),
            health_path: "healthz".into(),
            contract_path: "/a/../b".into(),
            contract: json!(["not", "an", "object"]),
            version: "1 0".into(),
        };
        let Err(ApiError::Validation(errs)) = validate_request(&bad) else {
            panic!()
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "owning_service",
                "base_url",
                "health_path",
                "contract_path",
                "version",
                "contract"
            ]
        );
    }

    #[test]
    fn base_urls_the_client_must_not_call_are_refused() {
        for bad in [
            "http://c.example/",
            "https://",
            "https://user:pw@c.example/",
            "https://c.example/?a=1",
            "https://c.example/#x",
            "ftp://c.example/",
            "not a url",
        ] {
            let e = check_base_url(bad).unwrap_err();
            assert!(!e.contains("pw"), "{e}");
        }
        assert_eq!(
            check_base_url("https://c.example").unwrap(),
            "https://c.example/"
        );
    }

    #[test]
    fn paths_stay_under_the_base_url() {
        for bad in [
            "",
            "x",
            "//evil.example/",
            "/a b",
            "/a?b",
            "/a#b",
            "/a\\b",
            "/a%2Fb",
            "/../x",
            "/a/./b",
            "/ü",
        ] {
            assert!(check_path("health_path", bad).is_err(), "{bad}");
        }
        assert!(check_path("health_path", &format!("/{}", "a".repeat(300))).is_err());
        assert_eq!(
            check_path("p", "/deployments/healthz").unwrap(),
            "/deployments/healthz"
        );
    }

    #[test]
    fn names_are_slugs_and_callable_is_reserved() {
        for bad in [
            "",
            "Deploy",
            "1abc",
            "a_b",
            "abc-",
            "callable",
            &"a".repeat(64),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for good in ["deployments", "k8s-nodes", "c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn contracts_are_objects_of_bounded_size() {
        assert!(check_contract(&json!("x")).is_err());
        assert!(check_contract(&json!({"a": "nul\u{0000}"})).is_err());
        let big = json!({"blob": "x".repeat(MAX_CONTRACT_BYTES)});
        assert!(check_contract(&big).unwrap_err().contains("at most"));
        let fits = json!({"b": "x".repeat(MAX_CONTRACT_BYTES - 8)});
        assert_eq!(check_contract(&fits).unwrap().len(), MAX_CONTRACT_BYTES);
    }

    #[test]
    fn the_lifecycle_names_the_allowed_steps() {
        let admin = who("root", PrincipalKind::Human, Role::Admin);
        let e = check_transition(
            &subject(CapabilityStatus::Requested, false),
            CapabilityStatus::Completed,
            &admin,
        )
        .unwrap_err();
        let ApiError::InvalidTransition(m) = e else {
            panic!()
        };
        assert!(m.contains("accepted, rejected, withdrawn"), "{m}");
        for s in [CapabilityStatus::Rejected, CapabilityStatus::Withdrawn] {
            assert!(next_statuses(s).is_empty());
            assert!(
                check_transition(&subject(s, true), CapabilityStatus::Accepted, &admin).is_err()
            );
        }
    }

    #[test]
    fn admins_accept_and_complete_writers_build_requesters_withdraw() {
        let member = who("bob", PrincipalKind::Human, Role::Member);
        let requester = who("alice", PrincipalKind::Human, Role::Admin);
        let reviewer = who("carol", PrincipalKind::Human, Role::Admin);
        let service_admin = who("hub:ops-hub", PrincipalKind::Service, Role::Admin);
        let forbidden = |r: Result<(), ApiError>| matches!(r, Err(ApiError::Forbidden(_)));
        let requested = subject(CapabilityStatus::Requested, false);
        assert!(forbidden(check_transition(
            &requested,
            CapabilityStatus::Accepted,
            &member
        )));
        assert!(check_transition(&requested, CapabilityStatus::Accepted, &reviewer).is_ok());
        assert!(forbidden(check_transition(
            &requested,
            CapabilityStatus::Withdrawn,
            &member
        )));
        let alice_member = who("alice", PrincipalKind::Human, Role::Member);
        assert!(check_transition(&requested, CapabilityStatus::Withdrawn, &alice_member).is_ok());
        let accepted = subject(CapabilityStatus::Accepted, false);
        assert!(check_transition(&accepted, CapabilityStatus::InProgress, &member).is_ok());
        let review = subject(CapabilityStatus::ReadyForReview, true);
        assert!(forbidden(check_transition(
            &review,
            CapabilityStatus::Completed,
            &member
        )));
        assert!(forbidden(check_transition(
            &review,
            CapabilityStatus::Completed,
            &requester
        )));
        assert!(forbidden(check_transition(
            &review,
            CapabilityStatus::Completed,
            &service_admin
        )));
        assert!(check_transition(&review, CapabilityStatus::Completed, &reviewer).is_ok());
        let no_credential = subject(CapabilityStatus::ReadyForReview, false);
        assert!(matches!(
            check_transition(&no_credential, CapabilityStatus::Completed, &reviewer),
            Err(ApiError::InvalidTransition(m)) if m.contains("no credential")
        ));
    }

    #[test]
    fn credentials_are_told_apart_without_echoing_them() {
        let plain = classify_credential(&SecretString::from("  tok-123\n".to_owned())).unwrap();
        let CredentialInput::Plain(p) = plain else {
            panic!()
        };
        assert_eq!(p.expose_secret(), "tok-123");
        for bad in [
            "",
            "with space-secret9",
            "line\nbreak-secret9",
            "ünicode-secret9",
        ] {
            let Err(ApiError::Validation(e)) =
                classify_credential(&SecretString::from(bad.to_owned()))
            else {
                panic!("{bad:?} accepted")
            };
            assert!(!e[0].message.contains("secret9"), "{e:?}");
        }
        let damaged = "-----BEGIN AGE ENCRYPTED FILE-----\nnot-base64-secret9\n";
        let Err(ApiError::Validation(e)) =
            classify_credential(&SecretString::from(damaged.to_owned()))
        else {
            panic!()
        };
        assert!(e[0].message.contains("damaged"), "{e:?}");
        let recipient = hub_core::sealed::generate_identity().recipient;
        let sealed =
            hub_core::sealed::seal_to(&[recipient], &SecretString::from("x".to_owned())).unwrap();
        assert!(matches!(
            classify_credential(&SecretString::from(sealed.armored.clone())),
            Ok(CredentialInput::Sealed(_))
        ));
    }

    #[test]
    fn probes_are_judged_and_only_changes_write_events() {
        let sha = "a".repeat(64);
        assert_eq!(
            judge(&Observation::Contract(sha.clone()), &sha).0,
            ProbeHealth::Healthy
        );
        let (h, e) = judge(&Observation::Contract("b".repeat(64)), &sha);
        assert_eq!(h, ProbeHealth::Drifted);
        assert!(e.unwrap().contains(&sha));
        assert_eq!(
            judge(&Observation::BadStatus(503), &sha).0,
            ProbeHealth::Unhealthy
        );
        use ProbeHealth::*;
        assert_eq!(health_event(Healthy, Healthy), None);
        assert_eq!(health_event(Drifted, Drifted), None);
        assert_eq!(health_event(Unknown, Healthy), Some("capability.healthy"));
        assert_eq!(
            health_event(Healthy, Drifted),
            Some("capability.contract_drift")
        );
        assert_eq!(
            health_event(Drifted, Unhealthy),
            Some("capability.unhealthy")
        );
        assert_eq!(
            health_event(Unhealthy, Healthy),
            Some("capability.recovered")
        );
        assert_eq!(health_event(Drifted, Healthy), Some("capability.recovered"));
    }
}
