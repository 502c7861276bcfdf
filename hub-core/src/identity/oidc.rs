//! The OIDC relying party: discovery, authorization code flow with PKCE, id_token and userinfo.
//!
//! A login is two calls. [`OidcClient::begin`] returns the provider URL to redirect the browser to
//! and a [`PendingLogin`] the caller keeps server-side; [`OidcClient::complete`] takes that pending
//! login back together with the `code` and `state` of the callback and returns the verified
//! [`OidcIdentity`]. Users are keyed on (issuer, `sub`), never on a user name.
//!
//! The provider is Authelia: PKCE S256 and `client_secret_basic` are required, `sub` is an opaque
//! UUID, and since 4.39 the profile claims (`preferred_username`, `name`, `email`, `groups`) are
//! served only by the userinfo endpoint, so they are read from there and the id_token is only a
//! fallback.

mod client;
mod config;

pub use client::{OidcClient, CLOCK_SKEW, FORCED_REFRESH_INTERVAL, MAX_PENDING_AGE};
pub use config::{OidcConfig, CLIENT_SECRET_CREDENTIAL, MIN_CLIENT_SECRET_LEN};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What must survive between the redirect to the provider and the callback; the caller stores it
/// server-side and uses it once.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent to the provider, compared with the one the callback brings back.
    pub state: String,
    /// The `nonce` the id_token must carry.
    pub nonce: String,
    /// The PKCE code verifier whose S256 challenge went to the provider.
    pub pkce_verifier: String,
    /// When the login began; older pending logins are refused.
    pub created_at: DateTime<Utc>,
}

// The three values are what an attacker needs to finish someone else's login, so they never reach
// a log line through `{:?}`.
impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &"***")
            .field("nonce", &"***")
            .field("pkce_verifier", &"***")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Where to send the browser, and what to keep until it comes back.
pub struct Authorization {
    /// The provider's authorization URL with client id, scopes, state, nonce and PKCE challenge.
    pub url: url::Url,
    /// What [`OidcClient::complete`] needs at the callback.
    pub pending: PendingLogin,
}

// The URL's query carries the state and nonce; only the endpoint is worth printing.
impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut endpoint = self.url.clone();
        endpoint.set_query(None);
        f.debug_struct("Authorization")
            .field("url", &endpoint.as_str())
            .field("pending", &self.pending)
            .finish()
    }
}

/// The verified person, from the id_token and userinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The issuer exactly as the id_token names it (half of the user key).
    pub issuer: String,
    /// The `sub` claim: stable and opaque (the other half of the user key).
    pub subject: String,
    /// `preferred_username`, for display and directory look-ups, never as a key.
    pub username: Option<String>,
    /// `name`.
    pub display_name: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// The configured groups claim, in the provider's order, without duplicates.
    pub groups: Vec<String>,
}

/// Why a login could not go on. `Display` is a short reason fit to show a user: it never contains
/// a secret, an authorization code or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// The provider did not answer (connection refused, timeout, 5xx).
    #[error("the identity provider is unreachable ({0})")]
    ProviderUnreachable(String),
    /// The provider answered discovery with something unusable.
    #[error("the identity provider's configuration is unusable: {0}")]
    Discovery(String),
    /// The callback's `state` is not the one this login sent.
    #[error("the login response does not belong to this login attempt")]
    StateMismatch,
    /// The pending login is older than the allowed time.
    #[error("the login took too long; please start again")]
    Expired,
    /// The token endpoint refused the authorization code.
    #[error("the identity provider refused the login ({0})")]
    CodeRejected(String),
    /// The id_token failed verification.
    #[error("the identity provider's id_token was refused: {0}")]
    IdToken(String),
    /// The id_token names a signing key the provider does not publish, even after a refresh.
    #[error("the id_token is signed with a key the identity provider does not publish")]
    UnknownSigningKey,
    /// The userinfo answer was refused.
    #[error("the identity provider's user information was refused: {0}")]
    Userinfo(String),
    /// The relying party itself is misconfigured.
    #[error("OIDC client configuration: {0}")]
    Config(String),
}

impl OidcError {
    /// True when the provider could not be reached, which is what allows a break-glass login.
    pub fn is_provider_down(&self) -> bool {
        matches!(self, OidcError::ProviderUnreachable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_login_debug_hides_what_finishes_a_login() {
        let pending = PendingLogin {
            state: "state-value-123".to_owned(),
            nonce: "nonce-value-456".to_owned(),
            pkce_verifier: "verifier-value-789".to_owned(),
            created_at: Utc::now(),
        };
        let text = format!("{pending:?}");
        assert!(!text.contains("state-value"), "{text}");
        assert!(!text.contains("nonce-value"), "{text}");
        assert!(!text.contains("verifier-value"), "{text}");
        assert!(text.contains("created_at"), "{text}");

        let authorization = Authorization {
            url: url::Url::parse(
                "https://auth.example.com/api/oidc/authorization?state=state-value-123&nonce=nonce-value-456",
            )
            .unwrap(),
            pending,
        };
        let text = format!("{authorization:?}");
        assert!(text.contains("https://auth.example.com/api/oidc/authorization"));
        assert!(!text.contains("state-value"), "{text}");
        assert!(!text.contains("nonce-value"), "{text}");
    }

    #[test]
    fn pending_login_round_trips_through_json_for_server_side_storage() {
        let pending = PendingLogin {
            state: "s".to_owned(),
            nonce: "n".to_owned(),
            pkce_verifier: "v".to_owned(),
            created_at: Utc::now(),
        };
        let json = serde_json::to_string(&pending).unwrap();
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state, "s");
        assert_eq!(back.nonce, "n");
        assert_eq!(back.pkce_verifier, "v");
        assert_eq!(back.created_at, pending.created_at);
    }

    #[test]
    fn only_unreachable_counts_as_provider_down() {
        assert!(OidcError::ProviderUnreachable("timed out".into()).is_provider_down());
        assert!(!OidcError::Discovery("bad".into()).is_provider_down());
        assert!(!OidcError::CodeRejected("invalid_grant".into()).is_provider_down());
        assert!(!OidcError::UnknownSigningKey.is_provider_down());
    }
}
