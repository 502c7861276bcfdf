#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OIDC relying party against the real stand-ins: the Authelia-like oidc-provider server over
//! HTTPS (a throwaway CA, trusted through `ca_file`) backed by the slapd LDAP stand-in. A user
//! logs in through the provider's own login form, driven without a browser by a cookie-keeping
//! HTTP client that stops at every redirect.
//!
//! The stand-ins must be installed (`source scripts/lib/standins.sh && ensure_standins`); when
//! they cannot start, this test fails and says so instead of skipping.

#[path = "../../tests/support/standins.rs"]
mod support;

use hub_core::identity::oidc::{OidcClient, OidcConfig, OidcError, OidcIdentity, PendingLogin};
use secrecy::SecretString;
use std::path::PathBuf;
use support::fixture_user;

const CLIENT_ID: &str = "state-hub";
const CLIENT_SECRET: &str = "standin-client-secret-0123456789abcdef";
const REDIRECT: &str = "https://hub.example.com/auth/callback";

/// The shared stand-ins, with the relying party under test as their one client.
struct Standins(support::Standins);

impl std::ops::Deref for Standins {
    type Target = support::Standins;
    fn deref(&self) -> &support::Standins {
        &self.0
    }
}

impl Standins {
    fn start() -> Self {
        Standins(support::Standins::start(&[support::Client {
            id: CLIENT_ID.into(),
            secret: CLIENT_SECRET.into(),
            redirect: REDIRECT.into(),
        }]))
    }

    /// Stops the provider and starts it again on the same port: same issuer, a new signing key.
    fn restart_oidc(&self) {
        self.stop_oidc();
        self.start_oidc();
    }

    /// How many times the provider served its JWKS, from its request log. The log is written
    /// asynchronously, so a count below `expected` is given a moment to catch up.
    async fn jwks_fetches(&self, expected: usize) -> usize {
        let count = || {
            std::fs::read_to_string(self.dir.join("oidc/oidc.log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(" GET /jwks.json 200 "))
                .count()
        };
        for _ in 0..40 {
            if count() >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        count()
    }

    fn fixture_uuid(uid: &str) -> String {
        fixture_user(uid).uuid
    }

    fn client(&self, ca_file: Option<PathBuf>) -> OidcClient {
        let mut cfg: OidcConfig = toml::from_str(&format!(
            "issuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nredirect_url = \"{REDIRECT}\"\ntimeout_seconds = 5\n",
            self.issuer()
        ))
        .unwrap();
        cfg.ca_file = ca_file;
        OidcClient::new(&cfg, SecretString::from(CLIENT_SECRET)).unwrap()
    }

    /// What a user does in a browser between `begin()` and the callback.
    async fn sign_in(
        &self,
        client: &OidcClient,
        username: &str,
        password: &str,
    ) -> (PendingLogin, String, String) {
        let authorization = client.begin().await.unwrap();
        let browser = self.provider_browser();
        let url = self
            .0
            .sign_in(
                &browser,
                authorization.url.as_str(),
                username,
                password,
                REDIRECT,
            )
            .await;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in the callback URL {url}"))
        };
        (authorization.pending, param("state"), param("code"))
    }

    async fn login(
        &self,
        client: &OidcClient,
        username: &str,
        password: &str,
    ) -> Result<OidcIdentity, OidcError> {
        let (pending, state, code) = self.sign_in(client, username, password).await;
        client.complete(&pending, &state, &code).await
    }
}

#[tokio::test]
async fn a_directory_user_logs_in_through_the_standin_provider() {
    let standins = Standins::start();
    let client = standins.client(Some(standins.ca_file()));
    assert!(client.provider_reachable().await);
    // Like Authelia 4.39, the stand-in advertises no end-session endpoint.
    assert_eq!(client.end_session_url().await, None);

    // Alice signs in on the provider's form; her profile comes from LDAP through userinfo.
    let (pending, state, code) = standins.sign_in(&client, "alice", "alice-standin-pw").await;
    let alice = client.complete(&pending, &state, &code).await.unwrap();
    assert_eq!(alice.issuer, standins.issuer());
    assert_eq!(alice.subject, Standins::fixture_uuid("alice"));
    assert_eq!(alice.username.as_deref(), Some("alice"));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Adams"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.groups, ["hub_admins"]);

    // The code was spent: the provider refuses it the second time.
    match client.complete(&pending, &state, &code).await {
        Err(OidcError::CodeRejected(why)) => assert_eq!(why, "invalid_grant"),
        other => panic!("a replayed code must be refused with CodeRejected, got {other:?}"),
    }

    // Erin is in two groups.
    let erin = standins
        .login(&client, "erin", "erin-standin-pw")
        .await
        .unwrap();
    assert_eq!(erin.subject, Standins::fixture_uuid("erin"));
    assert_eq!(erin.groups, ["hub_breakglass", "hub_members"]);
    assert_eq!(
        standins.jwks_fetches(1).await,
        1,
        "discovery and JWKS are cached"
    );

    // A restarted provider signs with a new key; the same client refetches the JWKS once.
    standins.restart_oidc();
    let again = standins
        .login(&client, "alice", "alice-standin-pw")
        .await
        .unwrap();
    assert_eq!(again.subject, alice.subject);
    assert_eq!(standins.jwks_fetches(2).await, 2);
}

#[tokio::test]
async fn a_provider_certificate_outside_the_trusted_roots_is_unreachable() {
    let standins = Standins::start();
    // Without `ca_file` the throwaway CA is not trusted, and nothing is sent to the provider.
    let client = standins.client(None);
    let err = client.begin().await.unwrap_err();
    assert!(matches!(err, OidcError::ProviderUnreachable(_)), "{err:?}");
    assert!(!client.provider_reachable().await);
}
