#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The directory client against the LDAP stand-in: Debian's slapd serving LLDAP's layout and the
//! fixture in tests/standins/directory.json. Every test starts its own slapd on free ports in a
//! temporary directory, and the guard stops it when the test ends, passed or failed.

use hub_core::config::Problems;
use hub_core::identity::directory::{Directory, DirectoryError, LdapConfig};
use ldap3::{LdapConnAsync, Mod};
use secrecy::SecretString;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN_DN: &str = "uid=admin,ou=people,dc=example,dc=com";
const HOW_TO_INSTALL: &str =
    "install the stand-ins with `source scripts/lib/standins.sh && ensure_standins`";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fixture's password of `uid`, so the tests follow the fixture instead of copying it.
fn password(uid: &str) -> String {
    let text = std::fs::read_to_string(repo().join("tests/standins/directory.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    fixture["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["uid"] == uid)
        .and_then(|u| u["password"].as_str())
        .unwrap_or_else(|| panic!("no user {uid} in the fixture"))
        .to_owned()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Tls {
    port: u16,
    ca: PathBuf,
}

/// One slapd stand-in, stopped and removed on drop.
struct Slapd {
    dir: PathBuf,
    port: u16,
    tls: Option<Tls>,
}

impl Slapd {
    fn start() -> Self {
        Self::launch(false)
    }

    /// Also serves ldaps:// (and StartTLS on the plain port) with a throwaway CA's certificate.
    fn start_with_tls() -> Self {
        Self::launch(true)
    }

    fn launch(with_tls: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("hub-directory-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut slapd = Slapd {
            dir,
            port: free_port(),
            tls: None,
        };
        if with_tls {
            let ca_dir = slapd.dir.join("ca");
            let out = Command::new("bash")
                .arg("-c")
                .arg(r#"source "$1/scripts/lib/standins.sh" && make_test_ca "$2""#)
                .arg("make_test_ca")
                .arg(repo())
                .arg(&ca_dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "make_test_ca failed ({HOW_TO_INSTALL}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            slapd.tls = Some(Tls {
                port: free_port(),
                ca: ca_dir.join("ca.pem"),
            });
        }
        slapd.run_start();
        slapd
    }

    fn run_start(&self) {
        let mut cmd = Command::new(repo().join("tests/standins/ldap/start.sh"));
        cmd.arg("--dir")
            .arg(self.dir.join("ldap"))
            .arg("--port")
            .arg(self.port.to_string());
        if let Some(tls) = &self.tls {
            let ca_dir = self.dir.join("ca");
            cmd.arg("--tls-port")
                .arg(tls.port.to_string())
                .arg("--cert")
                .arg(ca_dir.join("server.pem"))
                .arg("--key")
                .arg(ca_dir.join("server-key.pem"));
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("cannot run tests/standins/ldap/start.sh ({e}); {HOW_TO_INSTALL}")
        });
        assert!(
            out.status.success(),
            "the LDAP stand-in did not start; {HOW_TO_INSTALL}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = Command::new(repo().join("tests/standins/ldap/stop.sh"))
            .arg("--dir")
            .arg(self.dir.join("ldap"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn config(&self) -> LdapConfig {
        LdapConfig::for_url(url::Url::parse(&self.url()).unwrap())
    }

    fn directory(&self) -> Directory {
        Directory::new(&self.config(), secret(&password("admin"))).unwrap()
    }

    /// How many binds slapd has logged so far.
    fn binds(&self) -> usize {
        std::fs::read_to_string(self.dir.join("ldap/slapd.log"))
            .unwrap()
            .lines()
            .filter(|l| l.contains(" BIND dn=") && l.contains(" method="))
            .count()
    }

    /// A connection bound as the fixture's admin, to change the directory behind the client.
    async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url()).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ADMIN_DN, &password("admin"))
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/standins/ldap/stop.sh"))
            .arg("--dir")
            .arg(self.dir.join("ldap"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set(values: &[&str]) -> HashSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn uids(users: &[hub_core::identity::directory::DirectoryUser]) -> Vec<&str> {
    users.iter().map(|u| u.uid.as_str()).collect()
}

#[tokio::test]
async fn find_user_returns_profile_uuid_and_groups() {
    let slapd = Slapd::start();
    let dir = slapd.directory();

    let alice = dir.find_user("alice").await.unwrap().expect("alice exists");
    assert_eq!(alice.uid, "alice");
    assert_eq!(alice.dn, "uid=alice,ou=people,dc=example,dc=com");
    assert_eq!(alice.display_name.as_deref(), Some("Alice Adams"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(
        alice.entry_uuid.as_deref(),
        Some("021b6a6e-09e4-4ded-a9eb-001ca4849181")
    );
    assert_eq!(alice.groups, ["hub_admins"]);

    let admin = dir.find_user("admin").await.unwrap().unwrap();
    assert_eq!(admin.groups, ["hub_admins", "lldap_admin"]);

    // dave is in no group, so his entry has no memberOf and the member search answers.
    let dave = dir.find_user("dave").await.unwrap().unwrap();
    assert!(dave.groups.is_empty(), "{dave:?}");

    assert_eq!(dir.find_user("nobody").await.unwrap(), None);
    assert_eq!(dir.find_user("*").await.unwrap(), None);
    dir.ping().await.unwrap();
}

#[tokio::test]
async fn search_users_matches_prefixes_and_treats_filter_syntax_as_text() {
    let slapd = Slapd::start();
    let dir = slapd.directory();

    assert_eq!(
        uids(&dir.search_users("a", 10).await.unwrap()),
        ["admin", "alice"]
    );
    assert_eq!(uids(&dir.search_users("BOB", 10).await.unwrap()), ["bob"]);
    assert_eq!(
        uids(&dir.search_users("carol c", 10).await.unwrap()),
        ["carol"]
    );
    assert_eq!(
        uids(&dir.search_users("Erin@Ex", 10).await.unwrap()),
        ["erin"]
    );
    assert_eq!(
        uids(&dir.search_users("", 3).await.unwrap()),
        ["admin", "alice", "bob"]
    );
    assert_eq!(dir.search_users("", 100).await.unwrap().len(), 6);
    assert!(dir.search_users("a", 0).await.unwrap().is_empty());
    let erin = &dir.search_users("erin", 1).await.unwrap()[0];
    assert_eq!(erin.groups, ["hub_breakglass", "hub_members"]);

    // Nothing starts with these characters yet: as filter syntax they would match everyone.
    for prefix in ["*", "(", ")", "\\", "a*", "*)(uid=*", "a)(|(uid=*"] {
        let found = dir.search_users(prefix, 10).await.unwrap();
        assert!(found.is_empty(), "{prefix:?} found {:?}", uids(&found));
    }

    let mut admin = slapd.admin().await;
    for (uid, cn) in [("*star", "Star Struck"), ("pat", "(Pat) \\ Paren")] {
        admin
            .add(
                &format!("uid={uid},ou=people,dc=example,dc=com"),
                vec![
                    ("objectClass".to_owned(), set(&["inetOrgPerson"])),
                    ("uid".to_owned(), set(&[uid])),
                    ("cn".to_owned(), set(&[cn])),
                    ("sn".to_owned(), set(&["Test"])),
                ],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
    }
    assert_eq!(uids(&dir.search_users("*", 10).await.unwrap()), ["*star"]);
    assert_eq!(uids(&dir.search_users("(", 10).await.unwrap()), ["pat"]);
    assert_eq!(
        uids(&dir.search_users("(pat) \\", 10).await.unwrap()),
        ["pat"]
    );
    assert!(dir.search_users(")", 10).await.unwrap().is_empty());
    assert!(dir.search_users("\\", 10).await.unwrap().is_empty());
    let star = dir.find_user("*star").await.unwrap().unwrap();
    assert!(star.groups.is_empty());
}

#[tokio::test]
async fn list_groups_names_every_group_with_its_members() {
    let slapd = Slapd::start();
    let groups = slapd.directory().list_groups().await.unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hub_admins",
            "hub_breakglass",
            "hub_members",
            "hub_viewers",
            "lldap_admin",
            "lldap_password_manager",
            "lldap_strict_readonly",
        ]
    );
    let members = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .members
            .clone()
    };
    assert_eq!(members("hub_admins"), ["admin", "alice"]);
    assert_eq!(members("hub_members"), ["bob", "erin"]);
    assert_eq!(members("lldap_admin"), ["admin"]);
    assert!(members("lldap_password_manager").is_empty());
    let admins = groups.iter().find(|g| g.name == "hub_admins").unwrap();
    assert_eq!(admins.dn, "cn=hub_admins,ou=groups,dc=example,dc=com");
}

#[tokio::test]
async fn groups_of_follows_membership_changes() {
    let slapd = Slapd::start();
    let dir = slapd.directory();
    assert_eq!(dir.groups_of("bob").await.unwrap(), ["hub_members"]);

    let bob = "uid=bob,ou=people,dc=example,dc=com";
    let mut admin = slapd.admin().await;
    admin
        .modify(
            "cn=hub_breakglass,ou=groups,dc=example,dc=com",
            vec![Mod::Add("member", HashSet::from([bob]))],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    admin
        .modify(
            "cn=hub_members,ou=groups,dc=example,dc=com",
            vec![Mod::Delete("member", HashSet::from([bob]))],
        )
        .await
        .unwrap()
        .success()
        .unwrap();

    assert_eq!(dir.groups_of("bob").await.unwrap(), ["hub_breakglass"]);
    let groups = dir.list_groups().await.unwrap();
    let members_of = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .members
            .clone()
    };
    assert_eq!(members_of("hub_members"), ["erin"]);
    assert_eq!(members_of("hub_breakglass"), ["bob", "erin"]);
    assert!(dir.groups_of("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn break_glass_binds_as_the_user_and_refuses_unusable_input_without_a_bind() {
    let slapd = Slapd::start();
    let dir = slapd.directory();

    let erin = dir
        .verify_password("erin", &secret(&password("erin")))
        .await
        .unwrap()
        .expect("right password");
    assert_eq!(erin.uid, "erin");
    assert_eq!(erin.groups, ["hub_breakglass", "hub_members"]);
    assert_eq!(
        dir.verify_password("erin", &secret("not-erins-password"))
            .await
            .unwrap(),
        None
    );
    // Another user's right password is not erin's.
    assert_eq!(
        dir.verify_password("erin", &secret(&password("bob")))
            .await
            .unwrap(),
        None
    );

    // The service connection is open and bound now; from here on, a refused attempt must not
    // reach slapd as a bind at all.
    dir.find_user("erin").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let binds_before = slapd.binds();
    let right = secret(&password("admin"));
    assert_eq!(
        dir.verify_password("erin", &secret("")).await.unwrap(),
        None
    );
    assert_eq!(dir.verify_password("zoe", &right).await.unwrap(), None);
    for uid in [
        "admin,ou=people",
        "*",
        "admin)(uid=*",
        "Admin",
        "",
        "uid=admin",
    ] {
        assert_eq!(
            dir.verify_password(uid, &right).await.unwrap(),
            None,
            "{uid:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        slapd.binds(),
        binds_before,
        "a refused attempt reached slapd as a bind"
    );

    // And the admin's own password works for the admin, through the same path.
    assert!(dir
        .verify_password("admin", &right)
        .await
        .unwrap()
        .is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slapd.binds(), binds_before + 1);
}

#[tokio::test]
async fn ldaps_works_with_the_test_ca_and_fails_clearly_without_it() {
    let slapd = Slapd::start_with_tls();
    let tls = slapd.tls.as_ref().unwrap();
    let url = url::Url::parse(&format!("ldaps://127.0.0.1:{}", tls.port)).unwrap();

    let mut cfg = LdapConfig::for_url(url.clone());
    cfg.ca_file = Some(tls.ca.clone());
    let dir = Directory::new(&cfg, secret(&password("admin"))).unwrap();
    dir.ping().await.unwrap();
    assert_eq!(
        dir.find_user("alice")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Alice Adams")
    );
    assert!(dir
        .verify_password("alice", &secret(&password("alice")))
        .await
        .unwrap()
        .is_some());

    let untrusting = Directory::new(&LdapConfig::for_url(url), secret(&password("admin"))).unwrap();
    let err = untrusting.ping().await.unwrap_err();
    assert!(matches!(err, DirectoryError::Tls(_)), "{err:?}");
    assert!(!err.is_unavailable());
    let message = err.to_string();
    assert!(message.contains("not signed by a trusted CA"), "{message}");
    assert!(message.contains("ca_file"), "{message}");
}

#[tokio::test]
async fn starttls_upgrades_the_plain_port() {
    let slapd = Slapd::start_with_tls();
    let tls = slapd.tls.as_ref().unwrap();

    let mut cfg = slapd.config();
    cfg.starttls = true;
    cfg.ca_file = Some(tls.ca.clone());
    let dir = Directory::new(&cfg, secret(&password("admin"))).unwrap();
    dir.ping().await.unwrap();
    assert!(dir
        .verify_password("bob", &secret(&password("bob")))
        .await
        .unwrap()
        .is_some());

    cfg.ca_file = None;
    let untrusting = Directory::new(&cfg, secret(&password("admin"))).unwrap();
    let err = untrusting.find_user("bob").await.unwrap_err();
    assert!(matches!(err, DirectoryError::Tls(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_directory_is_unreachable_quickly_and_works_again_after_restart() {
    let slapd = Slapd::start();
    let mut cfg = slapd.config();
    cfg.timeout_seconds = 3;
    let dir = Directory::new(&cfg, secret(&password("admin"))).unwrap();
    assert!(dir.find_user("alice").await.unwrap().is_some());

    slapd.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let err = dir.find_user("alice").await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, DirectoryError::Unreachable(_)), "{err:?}");
        assert!(err.is_unavailable());
        assert!(err.to_string().contains(&slapd.port.to_string()), "{err}");
    }
    assert!(dir.ping().await.unwrap_err().is_unavailable());

    slapd.run_start();
    assert!(dir.find_user("alice").await.unwrap().is_some());
    dir.ping().await.unwrap();

    // A restart between two calls, which the client never saw fail, costs nothing either.
    slapd.stop();
    slapd.run_start();
    assert!(dir.find_user("bob").await.unwrap().is_some());
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_limit() {
    // Accepts TCP connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = LdapConfig::for_url(
        url::Url::parse(&format!(
            "ldap://127.0.0.1:{}",
            silent.local_addr().unwrap().port()
        ))
        .unwrap(),
    );
    cfg.timeout_seconds = 1;
    let dir = Directory::new(&cfg, secret("service-password")).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let err = dir.find_user("alice").await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, DirectoryError::Timeout), "{err:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(err.is_unavailable());
    }
}

#[tokio::test]
async fn a_wrong_service_password_is_a_refused_service_bind() {
    let slapd = Slapd::start();
    let wrong = "wrong-service-password";
    let dir = Directory::new(&slapd.config(), secret(wrong)).unwrap();
    for err in [
        dir.ping().await.unwrap_err(),
        dir.find_user("alice").await.unwrap_err(),
        dir.list_groups().await.unwrap_err(),
    ] {
        assert!(matches!(err, DirectoryError::ServiceBindRefused), "{err:?}");
        assert!(!err.is_unavailable());
        assert!(!err.to_string().contains(wrong));
        assert!(!format!("{err:?}").contains(wrong));
    }
    // Even a user's right password cannot get past a service account that cannot look them up.
    let err = dir
        .verify_password("alice", &secret(&password("alice")))
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::ServiceBindRefused), "{err:?}");
}

#[test]
fn config_refuses_plain_ldap_to_a_remote_host() {
    let password_file = std::env::temp_dir().join(format!("hub-ldap-pw-{}", uuid::Uuid::new_v4()));
    std::fs::write(&password_file, "service-password\n").unwrap();
    let cfg: LdapConfig = toml::from_str(&format!(
        "url = \"ldap://ldap.example.org:3890\"\nbind_password_file = \"{}\"\n",
        password_file.display()
    ))
    .unwrap();
    let mut problems = Problems::default();
    cfg.validate(&mut problems);
    let text = problems.into_result().unwrap_err().to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("config: identity.ldap.url: plain ldap:// to `ldap.example.org`"),
        "{text}"
    );
    assert!(
        text.contains("ldaps://") && text.contains("starttls"),
        "{text}"
    );
    assert!(Directory::new(&cfg, secret("service-password")).is_err());

    let cfg: LdapConfig = toml::from_str(&format!(
        "url = \"ldap://127.0.0.1:3890\"\nbind_password_file = \"{}\"\n",
        password_file.display()
    ))
    .unwrap();
    let mut problems = Problems::default();
    cfg.validate(&mut problems);
    assert!(problems.is_empty(), "{:?}", problems.lines());
    std::fs::remove_file(password_file).unwrap();
}
