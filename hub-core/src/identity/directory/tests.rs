use super::*;
use crate::config::Problems;
use std::collections::HashMap;
use std::path::PathBuf;

const SERVICE_PASSWORD: &str = "service-password-never-printed";

fn temp_file(content: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hub-ldap-{}", uuid::Uuid::new_v4()));
    std::fs::write(&p, content).unwrap();
    p
}

fn config(url: &str) -> LdapConfig {
    let mut cfg = LdapConfig::for_url(url::Url::parse(url).unwrap());
    cfg.bind_password_file = Some(temp_file(SERVICE_PASSWORD));
    cfg
}

fn problems(cfg: &LdapConfig) -> Vec<String> {
    let mut p = Problems::default();
    cfg.validate(&mut p);
    p.lines().to_vec()
}

fn directory(url: &str) -> Directory {
    Directory::new(&config(url), SecretString::from(SERVICE_PASSWORD)).unwrap()
}

fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> SearchEntry {
    SearchEntry {
        dn: dn.to_owned(),
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect(),
        bin_attrs: HashMap::new(),
    }
}

#[test]
fn config_has_lldap_defaults_and_refuses_unknown_keys() {
    let cfg: LdapConfig = toml::from_str("url = \"ldap://127.0.0.1:3890\"").unwrap();
    assert_eq!(cfg.base_dn, "dc=example,dc=com");
    assert_eq!(cfg.bind_dn(), "uid=admin,ou=people,dc=example,dc=com");
    assert_eq!(cfg.users_base(), "ou=people,dc=example,dc=com");
    assert_eq!(cfg.groups_base(), "ou=groups,dc=example,dc=com");
    assert_eq!(cfg.timeout(), Duration::from_secs(5));
    assert!(!cfg.starttls);

    let err = toml::from_str::<LdapConfig>("url = \"ldap://127.0.0.1\"\nbind_password = \"x\"")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bind_password"), "{err}");

    let err = toml::from_str::<LdapConfig>("url = \"not a url\"")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a URL"), "{err}");
}

#[test]
fn plain_ldap_to_a_remote_host_is_refused_with_one_clear_line() {
    let lines = problems(&config("ldap://ldap.example.org:3890"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("identity.ldap.url: plain ldap://"),
        "{lines:?}"
    );
    assert!(lines[0].contains("ldap.example.org"), "{lines:?}");
    assert!(lines[0].contains("starttls"), "{lines:?}");

    for ok in [
        "ldap://127.0.0.1:3890",
        "ldap://127.9.9.9:3890",
        "ldap://[::1]:3890",
        "ldap://localhost:3890",
        "ldap://LOCALHOST",
        "ldaps://ldap.example.org:6360",
    ] {
        assert!(
            problems(&config(ok)).is_empty(),
            "{ok}: {:?}",
            problems(&config(ok))
        );
    }
    let mut starttls = config("ldap://ldap.example.org:3890");
    starttls.starttls = true;
    assert!(problems(&starttls).is_empty());
    for refused in [
        "ldap://10.0.0.1",
        "ldap://[::ffff:127.0.0.1]",
        "ldap://localhost.example.org",
    ] {
        assert_eq!(problems(&config(refused)).len(), 1, "{refused}");
    }
}

#[test]
fn validation_lists_every_problem_one_per_line() {
    let mut cfg = config("http://user:hunter2@ldap.example.org");
    cfg.starttls = false;
    cfg.base_dn = "dc=example,,dc=com".to_owned();
    cfg.bind_dn = Some("admin".to_owned());
    cfg.users_ou = String::new();
    cfg.bind_password_file = Some(PathBuf::from("/nonexistent/ldap-bind-password"));
    cfg.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    cfg.timeout_seconds = 0;
    let lines = problems(&cfg);
    let text = lines.join("\n");
    for needle in [
        "identity.ldap.url: scheme `http` is not ldap or ldaps",
        "identity.ldap.url: must not carry credentials",
        "identity.ldap.base_dn:",
        "identity.ldap.users_ou:",
        "identity.ldap.bind_dn: `admin` is not a DN",
        "identity.ldap.bind_password_file: cannot read secret from file /nonexistent/ldap-bind-password",
        "identity.ldap.ca_file: cannot read /nonexistent/ca.pem",
        "identity.ldap.timeout_seconds: must be between 1 and",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(lines.len(), 8, "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let mut both = config("ldaps://ldap.example.org");
    both.starttls = true;
    assert_eq!(
        problems(&both),
        ["identity.ldap.starttls: cannot be combined with ldaps://, which is TLS already"]
    );
}

#[test]
fn missing_or_empty_password_and_useless_ca_file_are_reported() {
    let mut cfg = config("ldap://127.0.0.1:3890");
    cfg.bind_password_file = Some(temp_file("\n"));
    let lines = problems(&cfg);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("empty"), "{lines:?}");

    let mut cfg = config("ldaps://ldap.example.org");
    cfg.ca_file = Some(temp_file("not a certificate\n"));
    let lines = problems(&cfg);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("holds no PEM certificate"), "{lines:?}");

    let mut cfg = config("ldap://127.0.0.1:3890");
    cfg.bind_password_file = None;
    // Only when no systemd credential directory is set, which is the case under `cargo test`.
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
        let lines = problems(&cfg);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(BIND_PASSWORD_CREDENTIAL), "{lines:?}");
        assert!(cfg.bind_password().is_err());
    }
}

#[test]
fn new_refuses_what_validation_refuses_and_never_prints_the_password() {
    let err = Directory::new(
        &config("ldap://ldap.example.org"),
        SecretString::from(SERVICE_PASSWORD),
    )
    .unwrap_err();
    assert!(matches!(err, DirectoryError::Config(_)), "{err}");
    assert!(err.to_string().contains("plain ldap://"), "{err}");

    let err = Directory::new(
        &config("ldap://127.0.0.1"),
        SecretString::from(String::new()),
    )
    .unwrap_err();
    assert!(matches!(err, DirectoryError::Config(_)), "{err}");

    let mut with_ca = config("ldaps://ldap.example.org");
    with_ca.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = Directory::new(&with_ca, SecretString::from(SERVICE_PASSWORD)).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");

    let dir = directory("ldap://127.0.0.1:3890");
    let debug = format!("{dir:?}");
    assert!(debug.contains("uid=admin,ou=people"), "{debug}");
    assert!(!debug.contains(SERVICE_PASSWORD), "{debug}");

    let mut cfg = config("ldaps://ldap.example.org");
    cfg.url = url::Url::parse("ldaps://svc:hunter2@ldap.example.org").unwrap();
    assert!(!format!("{cfg:?}").contains("hunter2"));
}

#[test]
fn directory_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Directory>();
    assert_send_sync::<DirectoryError>();
}

#[tokio::test]
async fn unusable_break_glass_input_is_refused_without_connecting() {
    // A listener that would see any connection attempt; `accept` must find none.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = directory(&format!("ldap://127.0.0.1:{port}"));

    let right_looking = SecretString::from("correct horse".to_owned());
    let empty = SecretString::from(String::new());
    assert_eq!(dir.verify_password("alice", &empty).await.unwrap(), None);
    for uid in ["admin,ou=people", "*", "alice)(uid=*", "Alice", "", "a\\2a"] {
        assert_eq!(
            dir.verify_password(uid, &right_looking).await.unwrap(),
            None,
            "{uid:?}"
        );
    }
    let attempt = listener.accept();
    assert!(
        matches!(&attempt, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection was attempted: {attempt:?}"
    );
}

#[test]
fn prefix_filters_escape_filter_syntax() {
    assert_eq!(user_prefix_filter(""), "(objectClass=person)");
    assert_eq!(
        user_prefix_filter("al"),
        "(&(objectClass=person)(|(uid=al*)(cn=al*)(mail=al*)))"
    );
    let f = user_prefix_filter(r"*()\");
    assert_eq!(
        f,
        r"(&(objectClass=person)(|(uid=\2a\28\29\5c*)(cn=\2a\28\29\5c*)(mail=\2a\28\29\5c*)))"
    );
    assert!(ldap3::parse_filter(&f).is_ok());
}

#[test]
fn entries_become_users_and_groups_of_our_subtrees_only() {
    let dir = directory("ldap://127.0.0.1:3890");
    let found = dir
        .user_from(entry(
            "uid=alice,ou=people,dc=example,dc=com",
            &[
                ("uid", &["alice"]),
                ("cn", &["Alice Liddell"]),
                ("mail", &[""]),
                ("entryUuid", &["0b6a8e4e-0000-4000-8000-000000000001"]),
                (
                    "memberOf",
                    &[
                        "cn=ops,ou=groups,dc=example,dc=com",
                        "CN=Admins,OU=Groups,DC=example,DC=com",
                        "cn=elsewhere,ou=robots,dc=example,dc=com",
                        "not a dn",
                    ],
                ),
            ],
        ))
        .unwrap();
    assert!(found.has_member_of);
    assert_eq!(
        found.user,
        DirectoryUser {
            uid: "alice".to_owned(),
            dn: "uid=alice,ou=people,dc=example,dc=com".to_owned(),
            display_name: Some("Alice Liddell".to_owned()),
            email: None,
            entry_uuid: Some("0b6a8e4e-0000-4000-8000-000000000001".to_owned()),
            groups: vec!["Admins".to_owned(), "ops".to_owned()],
        }
    );
    assert!(found.user.starts_with("ali"));
    assert!(found.user.starts_with("alice l"));
    assert!(!found.user.starts_with("liddell"));

    let bare = dir
        .user_from(entry(
            "uid=bob,ou=people,dc=example,dc=com",
            &[("uid", &["bob"])],
        ))
        .unwrap();
    assert!(!bare.has_member_of);
    assert!(dir
        .user_from(entry("cn=x,ou=people,dc=example,dc=com", &[]))
        .is_none());

    let group = dir
        .group_from(entry(
            "cn=ops,ou=groups,dc=example,dc=com",
            &[
                ("cn", &["ops"]),
                (
                    "member",
                    &[
                        "uid=carol,ou=people,dc=example,dc=com",
                        "uid=alice,ou=people,dc=example,dc=com",
                        "cn=nested,ou=groups,dc=example,dc=com",
                    ],
                ),
                ("uniqueMember", &["uid=alice,ou=people,dc=example,dc=com"]),
            ],
        ))
        .unwrap();
    assert_eq!(group.name, "ops");
    assert_eq!(group.members, ["alice", "carol"]);
}

#[test]
fn transport_failures_are_told_apart() {
    let refused = classify(
        "ldap.example.org:636",
        LdapError::Io {
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        },
    );
    assert!(
        matches!(refused, DirectoryError::Unreachable(_)),
        "{refused}"
    );
    assert!(refused.is_unavailable());
    assert!(refused.to_string().contains("ldap.example.org:636"));

    let lost = classify("h:1", LdapError::EndOfStream);
    assert!(lost.is_unavailable(), "{lost}");

    let untrusted = classify(
        "ldap.example.org:636",
        LdapError::Io {
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ),
        },
    );
    assert!(matches!(untrusted, DirectoryError::Tls(_)), "{untrusted}");
    assert!(untrusted.to_string().contains("ca_file"), "{untrusted}");
    assert!(!untrusted.is_unavailable());

    assert!(!DirectoryError::ServiceBindRefused.is_unavailable());
    assert!(DirectoryError::Timeout.is_unavailable());
    assert!(!DirectoryError::Protocol("x".to_owned()).is_unavailable());
}
