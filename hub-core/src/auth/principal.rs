//! The authenticated caller.

use super::permission::{Access, Permission, Role, Scope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Whether a principal is a person or a machine; only people approve escalated decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person (directory user).
    Human,
    /// A hub or automation.
    Service,
}

impl PrincipalKind {
    /// Parses `human` / `service`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(Self::Human),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Service => "service",
        }
    }
}

/// A principal's name: a directory user name or a hub identity such as `hub:dev-hub`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

impl Subject {
    /// 1–128 characters of lowercase letters, digits and `. _ - @ :`, starting alphanumeric.
    pub fn parse(s: &str) -> Result<Subject, String> {
        let valid = !s.is_empty()
            && s.len() <= 128
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'-' | b'@' | b':')
            });
        if valid {
            Ok(Subject(s.to_owned()))
        } else {
            Err(format!(
                "subject `{}` must be 1-128 lowercase letters, digits or . _ - @ :",
                s.chars().take(64).collect::<String>()
            ))
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Subject {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Subject::parse(&s)
    }
}
impl From<Subject> for String {
    fn from(s: Subject) -> String {
        s.0
    }
}
impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An authenticated caller with its roles and scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who.
    pub subject: Subject,
    /// Person or machine.
    pub kind: PrincipalKind,
    /// Granted roles.
    pub roles: BTreeSet<Role>,
    /// Manifest scopes.
    pub scopes: BTreeSet<Scope>,
    /// The API token used, when token-authenticated.
    pub token_id: Option<uuid::Uuid>,
    /// The browser session used, when cookie-authenticated; such requests need a CSRF token to
    /// change anything.
    pub session: Option<crate::identity::sessions::SessionRef>,
}

impl Principal {
    /// Whether any role grants `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.roles.iter().any(|r| r.grants(p))
    }
    /// Whether this principal satisfies `access`.
    pub fn allows(&self, access: Access) -> bool {
        match access {
            Access::Public | Access::Authenticated => true,
            Access::Permission(p) => self.has(p),
        }
    }
    /// Whether this principal is a person.
    pub fn is_human(&self) -> bool {
        self.kind == PrincipalKind::Human
    }
}

impl actix_web::FromRequest for Principal {
    type Error = crate::http::problem::ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        std::future::ready(req.extensions().get::<Principal>().cloned().ok_or_else(|| {
            crate::http::problem::ApiError::internal(anyhow::anyhow!(
                "route {} reached a handler without authorization; mount it through the route table",
                req.path()
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(Subject::parse("alice").is_ok());
        assert!(Subject::parse("hub:dev-hub").is_ok());
        assert!(Subject::parse("Alice").is_err());
        assert!(Subject::parse("").is_err());
        assert!(Subject::parse("-x").is_err());
    }
}
