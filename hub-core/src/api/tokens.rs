//! API token wire types.

use crate::auth::{PrincipalKind, Role, Scope, Subject};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A token to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Label, e.g. `dev-hub relay`.
    pub name: String,
    /// Principal the token authenticates as.
    #[schema(value_type = String)]
    pub subject: Subject,
    /// Person or machine.
    pub kind: PrincipalKind,
    /// At least one role.
    pub roles: Vec<Role>,
    /// Manifest scopes.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    /// Lifetime in days (1–3650); absent means no expiry.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Id.
    pub id: Uuid,
    /// Label.
    pub name: String,
    /// Recognisable prefix of the secret.
    pub prefix: String,
    /// Principal.
    pub subject: String,
    /// Person or machine.
    pub kind: PrincipalKind,
    /// Roles.
    pub roles: Vec<Role>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creator.
    pub created_by: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Expiry.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Revocation time.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last use (minute precision).
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Usable now.
    pub active: bool,
}

/// A created token: the secret is in this response and nowhere else, ever.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The secret; store it now.
    pub token: String,
    /// Its record.
    pub info: TokenInfo,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"***")
            .field("info", &self.info)
            .finish()
    }
}

/// The caller as the server sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Principal.
    pub subject: String,
    /// Person or machine.
    pub kind: PrincipalKind,
    /// Roles.
    pub roles: Vec<Role>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Effective permissions.
    pub permissions: Vec<String>,
}
