#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OIDC relying party against the real stand-ins: the Authelia-like oidc-provider server over
//! HTTPS (a throwaway CA, trusted through `ca_file`) backed by the slapd LDAP stand-in. A user
//! logs in through the provider's own login form, driven without a browser by a cookie-keeping
//! HTTP client that stops at every redirect.
//!
//! The stand-ins must be installed (`source scripts/lib/standins.sh && ensure_standins`); when
//! they cannot start, this test fails and says so instead of skipping.

use hub_core::identity::oidc::{OidcClient, OidcConfig, OidcError, OidcIdentity, PendingLogin};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLIENT_ID: &str = "state-hub";
const CLIENT_SECRET: &str = "standin-client-secret-0123456789abcdef";
const REDIRECT: &str = "https://hub.example.com/auth/callback";

const INSTALL_HINT: &str = "install what the stand-ins need with \
    `source scripts/lib/standins.sh && ensure_standins` (slapd, ldap-utils, openssl, curl, jq, \
    Node.js >= 20 and the OIDC stand-in's npm packages)";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `script` with scripts/lib/standins.sh sourced; `$1`… are `args`.
fn standins_sh(script: &str, args: &[&str]) -> Result<String, String> {
    let full = format!("set -euo pipefail\nsource scripts/lib/standins.sh\n{script}");
    let out = Command::new("bash")
        .current_dir(repo())
        .arg("-c")
        .arg(full)
        .arg("standins")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// The LDAP and OIDC stand-ins under one temporary directory, stopped on drop.
struct Standins {
    dir: PathBuf,
    oidc_port: u16,
    ldap_url: String,
}

impl Standins {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hub-oidc-standin-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let clients = serde_json::json!([{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT],
        }]);
        std::fs::write(dir.join("clients.json"), clients.to_string()).unwrap();
        let ldap_port = free_port();
        let standins = Self {
            oidc_port: free_port(),
            ldap_url: format!("ldap://127.0.0.1:{ldap_port}"),
            dir,
        };
        let dir = standins.dir.to_str().unwrap();
        if let Err(why) = standins_sh(
            "make_test_ca \"$1/tls\"\nstart_ldap_standin \"$1/ldap\" \"$2\"",
            &[dir, &ldap_port.to_string()],
        ) {
            panic!("the LDAP stand-in could not start; {INSTALL_HINT}.\n{why}");
        }
        standins.start_oidc();
        standins
    }

    fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.oidc_port)
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    fn start_oidc(&self) {
        let dir = self.dir.to_str().unwrap();
        let result = standins_sh(
            "start_oidc_standin \"$1/oidc\" \"$2\" \"$3\" \"$1/clients.json\" \"$4\" \
             --cert \"$1/tls/server.pem\" --key \"$1/tls/server-key.pem\"",
            &[
                dir,
                &self.oidc_port.to_string(),
                &self.issuer(),
                &self.ldap_url,
            ],
        );
        if let Err(why) = result {
            panic!("the OIDC stand-in could not start; {INSTALL_HINT}.\n{why}");
        }
    }

    /// Stops the provider and starts it again on the same port: same issuer, a new signing key.
    fn restart_oidc(&self) {
        let dir = self.dir.to_str().unwrap();
        standins_sh("stop_standin \"$1/oidc\"", &[dir]).unwrap();
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
        let text = std::fs::read_to_string(repo().join("tests/standins/directory.json")).unwrap();
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        fixture["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["uid"] == uid)
            .map(|u| u["uuid"].as_str().unwrap().to_owned())
            .unwrap()
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

    /// What a user does in a browser between `begin()` and the callback: open the authorization
    /// URL, sign in on the provider's form, and follow redirects until one points at the hub.
    async fn sign_in(
        &self,
        client: &OidcClient,
        username: &str,
        password: &str,
    ) -> (PendingLogin, String, String) {
        let authorization = client.begin().await.unwrap();
        let ca = std::fs::read(self.ca_file()).unwrap();
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();

        let mut url = authorization.url.clone();
        let mut response = browser.get(url.clone()).send().await.unwrap();
        let mut signed_in = false;
        for _ in 0..16 {
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers()["location"].to_str().unwrap();
                url = url.join(location).unwrap();
                if url.as_str().starts_with(REDIRECT) {
                    let param = |name: &str| {
                        url.query_pairs()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_else(|| panic!("no {name} in the callback URL {url}"))
                    };
                    return (authorization.pending, param("state"), param("code"));
                }
                response = browser.get(url.clone()).send().await.unwrap();
                continue;
            }
            let body = response.text().await.unwrap();
            assert!(
                status.is_success() && !signed_in && body.contains("name=\"password\""),
                "unexpected answer {status} at {url}:\n{body}"
            );
            let action = body
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap();
            url = url.join(action).unwrap();
            response = browser
                .post(url.clone())
                .form(&[("username", username), ("password", password)])
                .send()
                .await
                .unwrap();
            signed_in = true;
        }
        panic!("no redirect to {REDIRECT} after 16 steps (last at {url})");
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

impl Drop for Standins {
    fn drop(&mut self) {
        let dir = self.dir.to_str().unwrap_or_default().to_owned();
        let _ = standins_sh(
            "stop_standin \"$1/oidc\"\nstop_standin \"$1/ldap\"",
            &[&dir],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
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
