//! `[identity]`: the OIDC provider, the LDAP directory, role mapping, sessions, break-glass.

use super::directory::LdapConfig;
use super::oidc::OidcConfig;
use super::roles::RoleMapping;
use super::sessions::SessionConfig;
use crate::auth::Scope;
use crate::config::Problems;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// `[identity.break_glass]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassConfig {
    /// Directory group whose members may log in by LDAP bind while the OIDC provider is down.
    /// Unset: break-glass login is off.
    #[serde(default)]
    pub group: Option<String>,
}

fn default_sync_minutes() -> u32 {
    5
}

/// The whole `[identity]` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The SSO provider (Authelia). Without it nobody can log in to the web UI; API tokens work.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// The directory (LLDAP): pickers, group sync, break-glass.
    #[serde(default)]
    pub ldap: Option<LdapConfig>,
    /// Groups → roles.
    #[serde(default)]
    pub roles: RoleMapping,
    /// Policy scopes → the groups whose members hold them, e.g.
    /// `"ops-hub:freeze.request" = ["hub_admins"]`. Actions a manifest guards with a scope are
    /// open to people only through this table (and to API tokens that carry the scope).
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<String>>,
    /// Session time-outs and cookie.
    #[serde(default)]
    pub sessions: SessionConfig,
    /// Break-glass login.
    #[serde(default)]
    pub break_glass: BreakGlassConfig,
    /// Minutes between directory group syncs (roles and sessions of people removed from a
    /// group are revoked at the next sync).
    #[serde(default = "default_sync_minutes")]
    pub group_sync_minutes: u32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            oidc: None,
            ldap: None,
            roles: RoleMapping::default(),
            scopes: BTreeMap::new(),
            sessions: SessionConfig::default(),
            break_glass: BreakGlassConfig::default(),
            group_sync_minutes: default_sync_minutes(),
        }
    }
}

impl IdentityConfig {
    /// One line per problem, including contradictions between the parts.
    pub fn validate(&self, dev_mode: bool, p: &mut Problems) {
        if let Some(o) = &self.oidc {
            o.validate(dev_mode, p);
        }
        if let Some(l) = &self.ldap {
            l.validate(p);
        }
        self.roles.validate(p);
        for (scope, groups) in &self.scopes {
            if let Err(e) = Scope::parse(scope) {
                p.push(format!("identity.scopes: {e}"));
            }
            if groups.iter().any(|g| g.trim().is_empty()) {
                p.push(format!("identity.scopes.\"{scope}\": empty group name"));
            }
        }
        self.sessions.validate(p);
        if let Some(g) = &self.break_glass.group {
            if g.trim().is_empty() {
                p.push("identity.break_glass.group: empty; remove the key to turn break-glass off");
            }
            if self.ldap.is_none() {
                p.push(
                    "identity.break_glass.group: break-glass logins bind to LDAP; configure [identity.ldap]",
                );
            }
            if self.oidc.is_none() {
                p.push("identity.break_glass.group: break-glass is a fallback for [identity.oidc], which is not configured");
            }
        }
        if !(1..=1440).contains(&self.group_sync_minutes) {
            p.push("identity.group_sync_minutes: must be between 1 and 1440");
        }
    }
}

impl IdentityConfig {
    /// The scopes `groups` grant through `[identity.scopes]`.
    pub fn scopes_for<S: AsRef<str>>(&self, groups: &[S]) -> BTreeSet<Scope> {
        self.scopes
            .iter()
            .filter(|(_, granted_to)| {
                groups
                    .iter()
                    .any(|g| granted_to.iter().any(|m| m == g.as_ref()))
            })
            .filter_map(|(scope, _)| Scope::parse(scope).ok())
            .collect()
    }
}
