//! The identity stand-ins for Rust tests: Debian's slapd with LLDAP's layout and the Authelia-like
//! OIDC provider (tests/standins/), started under one temporary directory and stopped on drop.
//! Included with `#[path]` by the test crates that need it, so every crate drives the same
//! scripts the shell suites and the demo use.
//!
//! When the stand-ins cannot start, the test fails with the install hint rather than skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to run when the stand-ins are missing.
pub const INSTALL_HINT: &str = "install what the stand-ins need with \
    `source scripts/lib/standins.sh && ensure_standins` (slapd, ldap-utils, openssl, curl, jq, \
    Node.js >= 20 and the OIDC stand-in's npm packages)";

/// The repository root.
pub fn repo() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("tests/standins").is_dir() {
        assert!(
            dir.pop(),
            "tests/standins not found above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `script` with scripts/lib/standins.sh sourced; `$1`… are `args`.
pub fn standins_sh(script: &str, args: &[&str]) -> Result<String, String> {
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

/// A user of tests/standins/directory.json.
pub struct FixtureUser {
    pub uid: String,
    pub password: String,
    pub uuid: String,
}

/// One user of the fixture.
pub fn fixture_user(uid: &str) -> FixtureUser {
    let text = std::fs::read_to_string(repo().join("tests/standins/directory.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let u = fixture["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["uid"] == uid)
        .unwrap_or_else(|| panic!("no fixture user {uid}"));
    FixtureUser {
        uid: uid.to_owned(),
        password: u["password"].as_str().unwrap().to_owned(),
        uuid: u["uuid"].as_str().unwrap().to_owned(),
    }
}

/// An OIDC client the provider knows.
pub struct Client {
    pub id: String,
    pub secret: String,
    pub redirect: String,
}

/// The LDAP and OIDC stand-ins.
pub struct Standins {
    pub dir: PathBuf,
    pub oidc_port: u16,
    pub ldap_port: u16,
}

impl Standins {
    /// Starts LDAP (plain, loopback) and the provider (HTTPS with a throwaway CA) for `clients`.
    pub fn start(clients: &[Client]) -> Self {
        let dir = std::env::temp_dir().join(format!("hub-standins-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let list: Vec<_> = clients
            .iter()
            .map(|c| {
                serde_json::json!({"client_id": c.id, "client_secret": c.secret, "redirect_uris": [c.redirect]})
            })
            .collect();
        std::fs::write(
            dir.join("clients.json"),
            serde_json::Value::from(list).to_string(),
        )
        .unwrap();
        std::fs::write(dir.join("ldap-admin.pw"), fixture_user("admin").password).unwrap();
        let s = Self {
            dir,
            oidc_port: free_port(),
            ldap_port: free_port(),
        };
        let d = s.dir.to_str().unwrap();
        if let Err(why) = standins_sh(
            "make_test_ca \"$1/tls\"\nstart_ldap_standin \"$1/ldap\" \"$2\"",
            &[d, &s.ldap_port.to_string()],
        ) {
            panic!("the LDAP stand-in could not start; {INSTALL_HINT}.\n{why}");
        }
        s.start_oidc();
        s
    }

    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.oidc_port)
    }
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }
    /// The LDAP service account's password file (LLDAP's admin).
    pub fn ldap_password_file(&self) -> PathBuf {
        self.dir.join("ldap-admin.pw")
    }

    pub fn start_oidc(&self) {
        let d = self.dir.to_str().unwrap();
        let result = standins_sh(
            "start_oidc_standin \"$1/oidc\" \"$2\" \"$3\" \"$1/clients.json\" \"$4\" \
             --cert \"$1/tls/server.pem\" --key \"$1/tls/server-key.pem\"",
            &[
                d,
                &self.oidc_port.to_string(),
                &self.issuer(),
                &self.ldap_url(),
            ],
        );
        if let Err(why) = result {
            panic!("the OIDC stand-in could not start; {INSTALL_HINT}.\n{why}");
        }
    }

    pub fn stop_oidc(&self) {
        standins_sh("stop_standin \"$1/oidc\"", &[self.dir.to_str().unwrap()]).unwrap();
    }

    pub fn stop_ldap(&self) {
        standins_sh("stop_standin \"$1/ldap\"", &[self.dir.to_str().unwrap()]).unwrap();
    }

    pub fn start_ldap(&self) {
        let d = self.dir.to_str().unwrap();
        standins_sh(
            "start_ldap_standin \"$1/ldap\" \"$2\"",
            &[d, &self.ldap_port.to_string()],
        )
        .unwrap();
    }

    /// A cookie-keeping client for the provider that trusts the test CA and stops at redirects.
    pub fn provider_browser(&self) -> reqwest::Client {
        let ca = std::fs::read(self.ca_file()).unwrap();
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// What a person does at the provider: open `authorize_url`, sign in on its form, and follow
    /// redirects until one leaves for `until` (the relying party's redirect URI), returned.
    pub async fn sign_in(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        username: &str,
        password: &str,
        until: &str,
    ) -> url::Url {
        let mut url = url::Url::parse(authorize_url).unwrap();
        let mut response = browser.get(url.clone()).send().await.unwrap();
        let mut signed_in = false;
        for _ in 0..16 {
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers()["location"].to_str().unwrap();
                url = url.join(location).unwrap();
                if url.as_str().starts_with(until) {
                    return url;
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
        panic!("no redirect to {until} after 16 steps (last at {url})");
    }

    /// Makes a change in the directory as LLDAP's admin, with `ldapmodify` and an LDIF.
    pub fn ldap_modify(&self, ldif: &str) {
        let ldif_file = self
            .dir
            .join(format!("change-{}.ldif", uuid::Uuid::new_v4()));
        std::fs::write(&ldif_file, ldif).unwrap();
        let out = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                "uid=admin,ou=people,dc=example,dc=com",
                "-y",
                self.ldap_password_file().to_str().unwrap(),
                "-f",
                ldif_file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Standins {
    fn drop(&mut self) {
        let d = self.dir.to_str().unwrap_or_default().to_owned();
        let _ = standins_sh("stop_standin \"$1/oidc\"\nstop_standin \"$1/ldap\"", &[&d]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster stand-in (tests/standins/cluster): three capability interfaces (`deployments`,
/// `nodes`, `costs`) on `https://127.0.0.1:PORT/<capability>` with a throwaway CA, a bearer
/// token and a control API. Stopped on drop.
pub struct ClusterStandin {
    pub dir: PathBuf,
    pub port: u16,
    /// The capability credential the stand-in wants as `Authorization: Bearer`.
    pub token: String,
}

impl ClusterStandin {
    /// Makes a CA and a token and starts the stand-in on a free port.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hub-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = format!("cluster-token-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(dir.join("cluster.token"), &token).unwrap();
        let c = Self {
            dir,
            port: free_port(),
            token,
        };
        if let Err(why) = standins_sh("make_test_ca \"$1/tls\"", &[c.dir.to_str().unwrap()]) {
            panic!("cannot make the test CA (needs openssl): {why}");
        }
        c.start_again();
        c
    }

    /// Starts it (again, after [`stop`](Self::stop)) on the same port; control state is reset.
    pub fn start_again(&self) {
        let d = self.dir.to_str().unwrap();
        let result = standins_sh(
            "start_cluster_standin \"$1/run\" \"$2\" --cert \"$1/tls/server.pem\" \
             --key \"$1/tls/server-key.pem\" --token-file \"$1/cluster.token\"",
            &[d, &self.port.to_string()],
        );
        if let Err(why) = result {
            panic!("the cluster stand-in could not start (needs python3 and openssl): {why}");
        }
    }

    /// Stops it; the port answers nothing until [`start_again`](Self::start_again).
    pub fn stop(&self) {
        standins_sh(
            "stop_cluster_standin \"$1/run\"",
            &[self.dir.to_str().unwrap()],
        )
        .unwrap();
    }

    /// `https://127.0.0.1:PORT/<capability>`.
    pub fn base_url(&self, capability: &str) -> String {
        format!("https://127.0.0.1:{}/{capability}", self.port)
    }

    /// The CA that signed the stand-in's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// A client trusting the stand-in's CA.
    pub fn http(&self) -> reqwest::Client {
        let ca = std::fs::read(self.ca_file()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// GETs a capability path with the capability token; returns the body.
    pub async fn get(&self, path: &str) -> Vec<u8> {
        let res = self
            .http()
            .get(format!("https://127.0.0.1:{}{path}", self.port))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.bytes().await.unwrap().to_vec()
    }

    /// POSTs to the control API (`/_control/...`) with the current control token.
    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let control = std::fs::read_to_string(self.dir.join("run/control.token")).unwrap();
        let res = self
            .http()
            .post(format!("https://127.0.0.1:{}{path}", self.port))
            .bearer_auth(control.trim())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "control {path}");
        res.json().await.unwrap()
    }
}

impl Drop for ClusterStandin {
    fn drop(&mut self) {
        let d = self.dir.to_str().unwrap_or_default().to_owned();
        let _ = standins_sh("stop_cluster_standin \"$1/run\"", &[&d]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
