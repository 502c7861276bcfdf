use super::*;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

/// The plaintext of the `cli_*.age` fixtures, made by the age CLI.
const FIXTURE_PLAINTEXT: &str = "fixture capability token 7f3e";
/// The recipient of `age_identity.txt` and the key id it must always get.
const FIXTURE_RECIPIENT: &str = "age10vf66qtftk8q707v6j9tywh6fnfhsp46sgw6ge3a9etllv5vyczss4jcyw";
const FIXTURE_KEY_ID: &str = "d0da464b63b840fd";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sealed")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn fixture_text(name: &str) -> SecretString {
    SecretString::from(std::fs::read_to_string(fixture(name)).unwrap())
}

fn keyring(names: &[&str]) -> Keyring {
    let paths: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    Keyring::load(&paths).unwrap()
}

fn fresh() -> Keyring {
    Keyring::from_identities_text(&generate_identity().file_text).unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// The secret key lines of a fixture, to prove they appear nowhere they should not.
fn secret_lines(name: &str) -> Vec<String> {
    fixture_text(name)
        .expose_secret()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("-----") && !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn key_ids_are_short_stable_and_derived_from_the_recipient() {
    assert_eq!(
        KeyId::of_recipient(FIXTURE_RECIPIENT).as_str(),
        FIXTURE_KEY_ID
    );
    let ring = keyring(&["age_identity.txt"]);
    assert_eq!(ring.recipient(), FIXTURE_RECIPIENT);
    assert_eq!(ring.current_key_id().as_str(), FIXTURE_KEY_ID);
    // Loading again, or from text, names the same key.
    assert_eq!(
        Keyring::from_identities_text(&fixture_text("age_identity.txt"))
            .unwrap()
            .current_key_id(),
        ring.current_key_id()
    );

    let (a, b) = (fresh(), fresh());
    assert_ne!(a.current_key_id(), b.current_key_id());
    assert_ne!(a.current_key_id(), ring.current_key_id());
    assert_eq!(a.current_key_id().as_str().len(), 16);

    // The key id of an ssh key does not depend on the key's comment.
    let with_comment = std::fs::read_to_string(fixture("ssh_ed25519.pub")).unwrap();
    let without: String = with_comment
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        Recipient::parse(&with_comment).unwrap().key_id(),
        Recipient::parse(&without).unwrap().key_id()
    );
    assert_eq!(
        keyring(&["ssh_ed25519"]).current_key_id(),
        *Recipient::parse(&with_comment).unwrap().key_id()
    );
}

#[test]
fn key_ids_parse_strictly_and_serialize_as_text() {
    assert!(KeyId::parse(FIXTURE_KEY_ID).is_ok());
    assert!(KeyId::parse("unknown").unwrap().is_unknown());
    for bad in [
        "",
        "D0DA464B63B840FD",
        "d0da464b63b840f",
        "d0da464b63b840fd0",
        "../etc",
    ] {
        assert!(
            matches!(KeyId::parse(bad), Err(SealError::Format(_))),
            "{bad}"
        );
    }
    let id = KeyId::parse(FIXTURE_KEY_ID).unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        format!("\"{FIXTURE_KEY_ID}\"")
    );
    assert!(serde_json::from_str::<KeyId>("\"nope\"").is_err());
}

#[test]
fn debug_and_errors_never_show_key_material_or_plaintext() {
    let generated = generate_identity();
    let shown = format!("{generated:?}");
    assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
    assert!(shown.contains(generated.recipient.as_str()), "{shown}");

    let ring = Keyring::load(&[fixture("age_identity.txt"), fixture("ssh_ed25519")]).unwrap();
    let shown = format!("{ring:?}");
    assert!(shown.contains(FIXTURE_KEY_ID), "{shown}");
    for line in secret_lines("age_identity.txt")
        .iter()
        .chain(&secret_lines("ssh_ed25519"))
    {
        assert!(!shown.contains(line.as_str()), "{shown}");
    }

    let plaintext = "capability token 1f0c-do-not-print";
    let sealed = ring.seal(&secret(plaintext)).unwrap();
    let shown = format!("{sealed:?}");
    assert!(!shown.contains(plaintext), "{shown}");
    assert!(!shown.contains(&sealed.armored), "{shown}");
    assert!(shown.contains(FIXTURE_KEY_ID), "{shown}");
    let opened = ring.open(&sealed).unwrap();
    assert!(!format!("{opened:?}").contains(plaintext));

    let err = fresh().open(&sealed).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(plaintext), "{text}");

    // A key pasted on the wrong line of an identity file is named by line, never quoted.
    let leaked = "token-pasted-into-the-identity-file-9c2e";
    let text = format!("# hub key\n{leaked}\n");
    let err = Keyring::from_identities_text(&secret(&text)).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, SealError::BadIdentity(_)), "{text}");
    assert!(text.contains("line 2"), "{text}");
    assert!(!text.contains(leaked), "{text}");

    // A damaged secret key line is not echoed either.
    let damaged = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let err = Keyring::from_identities_text(&secret(damaged)).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("QQQQQQQQ"), "{text}");
}

#[test]
fn sealed_values_round_trip_through_open_the_stored_text_and_serde() {
    let ring = fresh();
    let plaintext = "bearer 0123456789abcdef\nwith a second line";
    let sealed = ring.seal(&secret(plaintext)).unwrap();
    assert_eq!(sealed.key_id, ring.current_key_id());
    assert!(sealed
        .armored
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
    assert_eq!(ring.open(&sealed).unwrap().expose_secret(), plaintext);

    // Two seals of the same value differ (fresh file key) but open alike.
    let again = ring.seal(&secret(plaintext)).unwrap();
    assert_ne!(again.armored, sealed.armored);
    assert_eq!(ring.open(&again).unwrap().expose_secret(), plaintext);

    let text = sealed.to_stored_text();
    assert!(
        text.starts_with(&format!("key-id: {}\n", sealed.key_id)),
        "{text}"
    );
    let (parsed, form) = Sealed::parse_with_form(&text).unwrap();
    assert_eq!(form, Form::Stored);
    assert_eq!(parsed, sealed);

    let json = serde_json::to_string(&sealed).unwrap();
    let back: Sealed = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sealed);
    let damaged = json.replace("-----BEGIN AGE", "-----BEGIN EGA");
    assert!(serde_json::from_str::<Sealed>(&damaged).is_err());

    assert!(matches!(
        ring.seal(&secret("")),
        Err(SealError::Encrypt(why)) if why.contains("empty")
    ));
}

#[test]
fn a_value_sealed_to_another_key_fails_naming_its_key_id() {
    let theirs = fresh();
    let ours = fresh();
    let sealed = theirs.seal(&secret("for someone else")).unwrap();
    match ours.open(&sealed) {
        Err(SealError::Decrypt { key_id, reason }) => {
            assert_eq!(key_id, theirs.current_key_id().as_str());
            assert!(reason.contains(ours.current_key_id().as_str()), "{reason}");
            let message = ours.open(&sealed).unwrap_err().to_string();
            assert!(message.contains(&key_id), "{message}");
        }
        other => panic!("expected a Decrypt error, got {other:?}"),
    }

    // A bare age file fails the same way, as key id `unknown`.
    let bare = Sealed::parse(&sealed.armored).unwrap();
    assert!(matches!(
        ours.open(&bare),
        Err(SealError::Decrypt { key_id, .. }) if key_id == "unknown"
    ));
}

#[test]
fn a_damaged_value_is_refused_without_its_content() {
    let ring = fresh();
    let sealed = ring.seal(&secret("payload to damage")).unwrap();
    let mut binary = sealed.to_binary().unwrap();
    if let Some(last) = binary.last_mut() {
        *last ^= 0x01;
    }
    let damaged = Sealed::parse(&binary).unwrap();
    let err = ring.open(&damaged).unwrap_err();
    assert!(matches!(err, SealError::Decrypt { .. }), "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn reseal_moves_old_values_to_the_current_identity_and_leaves_current_ones() {
    let old = Keyring::load(&[fixture("age_identity_old.txt")]).unwrap();
    let rotated =
        Keyring::load(&[fixture("age_identity.txt"), fixture("age_identity_old.txt")]).unwrap();
    assert_eq!(rotated.current_key_id().as_str(), FIXTURE_KEY_ID);
    assert_eq!(rotated.recipients().count(), 2);

    let before = old.seal(&secret("rotate me")).unwrap();
    assert_eq!(before.key_id, old.current_key_id());
    // During the rotation both keys open it.
    assert_eq!(rotated.open(&before).unwrap().expose_secret(), "rotate me");

    let after = rotated
        .reseal(&before)
        .unwrap()
        .expect("sealed to the old key");
    assert_eq!(after.key_id, rotated.current_key_id());
    let new_only = keyring(&["age_identity.txt"]);
    assert_eq!(new_only.open(&after).unwrap().expose_secret(), "rotate me");
    assert!(matches!(old.open(&after), Err(SealError::Decrypt { .. })));

    assert!(rotated.reseal(&after).unwrap().is_none());
    // A bare file sealed to the current key is current too.
    let bare = Sealed::parse(&after.armored).unwrap();
    assert!(rotated.reseal(&bare).unwrap().is_none());
    // A bare file sealed to the old key is not.
    let bare_old = Sealed::parse(&before.armored).unwrap();
    assert!(rotated.reseal(&bare_old).unwrap().is_some());
    // A value labelled with the old key but sealed to the current one gets a true label.
    let mislabelled = Sealed {
        key_id: old.current_key_id(),
        armored: after.armored.clone(),
    };
    let fixed = rotated.reseal(&mislabelled).unwrap().expect("wrong label");
    assert_eq!(fixed.key_id, rotated.current_key_id());
}

#[test]
fn files_made_by_the_age_cli_parse_and_open() {
    let ring = keyring(&["age_identity.txt"]);

    let armored = fixture_bytes("cli_armored.age");
    let (sealed, form) = Sealed::parse_with_form(&armored).unwrap();
    assert_eq!(form, Form::Armored);
    assert!(sealed.key_id.is_unknown());
    assert_eq!(
        ring.open(&sealed).unwrap().expose_secret(),
        FIXTURE_PLAINTEXT
    );
    assert_eq!(sealed.render(Form::Armored).unwrap(), armored);

    let binary = fixture_bytes("cli_binary.age");
    let (sealed, form) = Sealed::parse_with_form(&binary).unwrap();
    assert_eq!(form, Form::Binary);
    assert!(sealed.key_id.is_unknown());
    assert_eq!(
        ring.open(&sealed).unwrap().expose_secret(),
        FIXTURE_PLAINTEXT
    );
    assert_eq!(sealed.render(Form::Binary).unwrap(), binary);

    // Whitespace around the armor (a pasted value) is tolerated.
    let padded = format!("\n  {}\n\n", String::from_utf8(armored).unwrap());
    assert!(ring.open(&Sealed::parse(&padded).unwrap()).is_ok());

    let ssh = keyring(&["ssh_ed25519"]);
    let sealed = Sealed::parse(fixture_bytes("cli_ssh_armored.age")).unwrap();
    assert_eq!(
        ssh.open(&sealed).unwrap().expose_secret(),
        FIXTURE_PLAINTEXT
    );
}

#[test]
fn input_that_is_not_an_age_file_is_a_format_error() {
    let armored = String::from_utf8(fixture_bytes("cli_armored.age")).unwrap();
    let broken_armor = armored.replacen("YWdl", "YWdm", 1);
    let truncated = &fixture_bytes("cli_binary.age")[..30];
    let stored_without_armor = format!("key-id: {FIXTURE_KEY_ID}\nhello\n");
    let stored_with_bad_id = format!("key-id: NOT-AN-ID\n{armored}");
    let inputs: [&[u8]; 7] = [
        b"",
        b"plain text token",
        &[0xff, 0xfe, 0x00],
        broken_armor.as_bytes(),
        truncated,
        stored_without_armor.as_bytes(),
        stored_with_bad_id.as_bytes(),
    ];
    for input in inputs {
        match Sealed::parse(input) {
            Err(SealError::Format(why)) => assert!(!why.contains("token"), "{why}"),
            other => panic!("{:?} parsed as {other:?}", String::from_utf8_lossy(input)),
        }
    }
}

#[test]
fn identity_files_without_an_identity_are_refused() {
    assert!(matches!(Keyring::load(&[]), Err(SealError::NoIdentity)));
    assert!(matches!(
        Keyring::from_identities_text(&secret("")),
        Err(SealError::NoIdentity)
    ));
    assert!(matches!(
        Keyring::from_identities_text(&secret("# created: today\n\n# nothing else\n")),
        Err(SealError::NoIdentity)
    ));
    let dir = std::env::temp_dir().join(format!("hub-sealed-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        Keyring::load(&[empty]),
        Err(SealError::NoIdentity)
    ));
    let missing = dir.join("missing.txt");
    match Keyring::load(std::slice::from_ref(&missing)) {
        Err(e @ SealError::Io { .. }) => {
            assert!(
                e.to_string().contains(&missing.display().to_string()),
                "{e}"
            )
        }
        other => panic!("expected Io, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
    assert!(matches!(
        Keyring::load_configured(&[fixture("age_identity.txt")]),
        Ok(ring) if ring.current_key_id().as_str() == FIXTURE_KEY_ID
    ));
}

#[test]
fn unusable_identities_are_refused_with_the_reason() {
    let cases = [
        ("ssh_rsa", "ssh-rsa"),
        ("ssh_ed25519_encrypted", "passphrase-protected"),
    ];
    for (name, why) in cases {
        match Keyring::load(&[fixture(name)]) {
            Err(SealError::BadIdentity(text)) => {
                assert!(text.contains(why), "{name}: {text}");
                assert!(text.contains(name), "{name}: {text}");
            }
            other => panic!("{name}: expected BadIdentity, got {other:?}"),
        }
    }
    let plugin = secret("AGE-PLUGIN-YUBIKEY-1QQQQQQ\n");
    assert!(matches!(
        Keyring::from_identities_text(&plugin),
        Err(SealError::BadIdentity(text)) if text.contains("plugin")
    ));
    let unterminated = secret("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n");
    assert!(matches!(
        Keyring::from_identities_text(&unterminated),
        Err(SealError::BadIdentity(text)) if text.contains("END")
    ));
}

#[test]
fn an_ssh_ed25519_identity_seals_and_opens() {
    let ring = keyring(&["ssh_ed25519"]);
    let public = std::fs::read_to_string(fixture("ssh_ed25519.pub")).unwrap();
    assert!(
        public.starts_with(&ring.recipient()),
        "{}",
        ring.recipient()
    );
    assert!(ring.recipient().starts_with("ssh-ed25519 AAAA"));

    let sealed = ring.seal(&secret("ssh sealed")).unwrap();
    assert_eq!(ring.open(&sealed).unwrap().expose_secret(), "ssh sealed");
    // Sealing to its public key from elsewhere opens the same way.
    let recipient = Recipient::parse(&public).unwrap();
    let sealed = seal_to(&[recipient], &secret("from the .pub file")).unwrap();
    assert_eq!(sealed.key_id, ring.current_key_id());
    assert_eq!(
        ring.open(&sealed).unwrap().expose_secret(),
        "from the .pub file"
    );
}

#[test]
fn one_file_may_hold_several_identities_and_the_first_is_current() {
    let text = format!(
        "{}\n{}",
        fixture_text("age_identity.txt").expose_secret(),
        fixture_text("age_identity_old.txt").expose_secret()
    );
    let ring = Keyring::from_identities_text(&secret(&text)).unwrap();
    assert_eq!(ring.current_key_id().as_str(), FIXTURE_KEY_ID);
    assert_eq!(ring.recipients().count(), 2);
    let old = keyring(&["age_identity_old.txt"]);
    let sealed = old.seal(&secret("still opens")).unwrap();
    assert_eq!(ring.open(&sealed).unwrap().expose_secret(), "still opens");

    // Listing a key twice keeps one copy, in its first place.
    let twice = Keyring::load(&[
        fixture("age_identity_old.txt"),
        fixture("age_identity.txt"),
        fixture("age_identity_old.txt"),
    ])
    .unwrap();
    assert_eq!(twice.recipients().count(), 2);
    assert_eq!(twice.current_key_id(), old.current_key_id());
}

#[test]
fn recipients_parse_like_the_age_cli_reads_them() {
    let ssh = std::fs::read_to_string(fixture("ssh_ed25519.pub")).unwrap();
    let file = format!("# the hub\n{FIXTURE_RECIPIENT}\n\n# an operator's key\n{ssh}");
    let list = Recipient::parse_list(&file, "recipients.txt").unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].as_str(), FIXTURE_RECIPIENT);

    let sealed = seal_to(&list, &secret("to both")).unwrap();
    assert_eq!(sealed.key_id.as_str(), FIXTURE_KEY_ID);
    for ring in [keyring(&["age_identity.txt"]), keyring(&["ssh_ed25519"])] {
        assert_eq!(ring.open(&sealed).unwrap().expose_secret(), "to both");
    }

    for bad in ["age1notarecipient", "ssh-rsa AAAAB3NzaC1yc2E", "hello", ""] {
        assert!(
            matches!(Recipient::parse(bad), Err(SealError::BadRecipient(_))),
            "{bad}"
        );
    }
    match Recipient::parse_list("# only\n\nage1nope\n", "r.txt") {
        Err(SealError::BadRecipient(why)) => assert!(why.contains("r.txt, line 3"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Recipient::parse_list("# nothing\n", "r.txt"),
        Err(SealError::BadRecipient(_))
    ));
    assert!(matches!(
        seal_to(&[], &secret("x")),
        Err(SealError::Encrypt(_))
    ));
}

#[test]
fn generated_identities_look_like_age_keygen_output() {
    let generated = generate_identity();
    let text = generated.file_text.expose_secret();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", lines.len());
    assert!(lines[0].starts_with("# created: "));
    assert_eq!(
        lines[1],
        format!("# public key: {}", generated.recipient.as_str())
    );
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    let ring = Keyring::from_identities_text(&generated.file_text).unwrap();
    assert_eq!(ring.recipient(), generated.recipient.as_str());
}

#[test]
fn a_keyring_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Keyring>();
    shared::<Sealed>();
}
