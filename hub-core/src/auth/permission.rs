//! Permissions, the roles that grant them, and manifest-declared scopes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A capability a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read the journal.
    EventsRead,
    /// Append to the journal.
    EventsWrite,
    /// Read decisions.
    DecisionsRead,
    /// Propose, escalate, resolve, supersede decisions.
    DecisionsWrite,
    /// Read workstreams, workplans, tasks.
    PlansRead,
    /// Change workstreams, workplans, tasks.
    PlansWrite,
    /// Read the audit chain head.
    AuditRead,
    /// Create, list and revoke API tokens.
    TokensManage,
    /// Look up directory users and groups (assignee and approver pickers).
    DirectoryRead,
    /// See everyone's sessions and users, revoke sessions, view the role mapping.
    SessionsManage,
    /// Read the hub and capability registries.
    RegistryRead,
    /// Register hubs, send heartbeats, submit manifests, request capabilities.
    RegistryWrite,
    /// Activate manifests, approve capabilities, set their credentials, rotate keys.
    RegistryAdmin,
}

impl Permission {
    /// Every permission, for exhaustive tests and docs.
    pub const ALL: [Permission; 13] = [
        Permission::EventsRead,
        Permission::EventsWrite,
        Permission::DecisionsRead,
        Permission::DecisionsWrite,
        Permission::PlansRead,
        Permission::PlansWrite,
        Permission::AuditRead,
        Permission::TokensManage,
        Permission::DirectoryRead,
        Permission::SessionsManage,
        Permission::RegistryRead,
        Permission::RegistryWrite,
        Permission::RegistryAdmin,
    ];

    /// The dotted name used in docs and errors, e.g. `events.write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::EventsRead => "events.read",
            Permission::EventsWrite => "events.write",
            Permission::DecisionsRead => "decisions.read",
            Permission::DecisionsWrite => "decisions.write",
            Permission::PlansRead => "plans.read",
            Permission::PlansWrite => "plans.write",
            Permission::AuditRead => "audit.read",
            Permission::TokensManage => "tokens.manage",
            Permission::DirectoryRead => "directory.read",
            Permission::SessionsManage => "sessions.manage",
            Permission::RegistryRead => "registry.read",
            Permission::RegistryWrite => "registry.write",
            Permission::RegistryAdmin => "registry.admin",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, unauthenticated: health and metrics only.
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// A principal holding this permission.
    Permission(Permission),
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Authenticated => f.write_str("authenticated"),
            Access::Permission(p) => write!(f, "{p}"),
        }
    }
}

/// The built-in roles.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including tokens.
    Admin,
    /// Reads and writes the hub's domain.
    Member,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role grants `p`.
    pub fn grants(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Member => !matches!(p, TokensManage | SessionsManage | RegistryAdmin),
            Role::Viewer => matches!(
                p,
                EventsRead | DecisionsRead | PlansRead | AuditRead | DirectoryRead | RegistryRead
            ),
        }
    }
}

/// A policy scope declared by a hub manifest, `<hub>:<action>` such as `ops-hub:freeze.request`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    /// Validates `<hub>:<action>`: lowercase, digits, `-`, `_`, `.`.
    pub fn parse(s: &str) -> Result<Scope, String> {
        let ok_part = |p: &str, dots: bool| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'-'
                        || b == b'_'
                        || (dots && b == b'.')
                })
        };
        match s.split_once(':') {
            Some((hub, action)) if ok_part(hub, false) && ok_part(action, true) => {
                Ok(Scope(s.to_owned()))
            }
            _ => Err(format!(
                "scope `{s}` must look like `<hub>:<action>`, e.g. `ops-hub:freeze.request`"
            )),
        }
    }
    /// The scope string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Scope::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_grants() {
        assert!(Role::Admin.grants(Permission::TokensManage));
        assert!(!Role::Member.grants(Permission::TokensManage));
        assert!(Role::Member.grants(Permission::DecisionsWrite));
        assert!(!Role::Viewer.grants(Permission::EventsWrite));
        assert!(Role::Viewer.grants(Permission::EventsRead));
    }

    #[test]
    fn scopes_parse() {
        assert!(Scope::parse("ops-hub:freeze.request").is_ok());
        assert!(Scope::parse("ops-hub").is_err());
        assert!(Scope::parse("Ops:x").is_err());
        assert!(Scope::parse(":x").is_err());
    }
}
