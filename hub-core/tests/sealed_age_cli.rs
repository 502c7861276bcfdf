//! `hub_core::sealed` and the age CLI read each other's files, so operators may use either.
//!
//! Needs `age` and `age-keygen` on PATH (Debian package `age`, 1.1.x). Without them these tests
//! fail rather than skip: interoperability is a promise the runbooks make.

// clippy.toml allows these in tests, but clippy only recognises `#[test]` functions as tests, not
// the fixture helpers of an integration-test crate; failing loudly is what a fixture is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hub_core::sealed::{generate_identity, Form, Keyring, Sealed};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The absolute path of an age CLI tool, or a failure saying how to get it.
fn age_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: install the Debian package `age` \
                 (`apt-get install age`, age 1.1.x); the age CLI interop tests do not skip"
            )
        })
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sealed")
        .join(name)
}

/// A scratch directory removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("hub-sealed-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program args…` with `stdin` and returns its output, whatever the exit status.
fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    // A command that fails before reading (a usage error) closes the pipe: not our failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// Like [`run`], but the command must succeed.
fn ok(program: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = run(program, args, stdin);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A new identity made by `age-keygen`, and the keyring reading it.
fn age_keygen(scratch: &Scratch, name: &str) -> (PathBuf, Keyring) {
    let path = scratch.path(name);
    ok(
        &age_tool("age-keygen"),
        &["-o", path.to_str().unwrap()],
        b"",
    );
    let keyring = Keyring::load(std::slice::from_ref(&path)).unwrap();
    (path, keyring)
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

#[test]
fn files_encrypted_by_age_open_with_the_keyring() {
    let scratch = Scratch::new();
    let (identity, keyring) = age_keygen(&scratch, "hub.key");
    let recipient = keyring.recipient();
    // age-keygen and the keyring agree on the public key.
    let listed = ok(
        &age_tool("age-keygen"),
        &["-y", identity.to_str().unwrap()],
        b"",
    );
    assert_eq!(String::from_utf8(listed).unwrap().trim(), recipient);

    let token = "cap-token from the age CLI 41b7";
    let armored = ok(
        &age_tool("age"),
        &["-r", &recipient, "-a"],
        token.as_bytes(),
    );
    let (sealed, form) = Sealed::parse_with_form(&armored).unwrap();
    assert_eq!(form, Form::Armored);
    assert!(sealed.key_id.is_unknown());
    assert_eq!(keyring.open(&sealed).unwrap().expose_secret(), token);

    let binary = ok(&age_tool("age"), &["-r", &recipient], token.as_bytes());
    let (sealed, form) = Sealed::parse_with_form(&binary).unwrap();
    assert_eq!(form, Form::Binary);
    assert_eq!(keyring.open(&sealed).unwrap().expose_secret(), token);
}

#[test]
fn values_sealed_by_the_keyring_decrypt_with_age() {
    let scratch = Scratch::new();
    let (identity, keyring) = age_keygen(&scratch, "hub.key");
    let token = "cap-token sealed by the hub 93d0";
    let sealed = keyring.seal(&secret(token)).unwrap();
    assert_eq!(sealed.key_id, keyring.current_key_id());

    for (name, form) in [("armored.age", Form::Armored), ("binary.age", Form::Binary)] {
        let file = scratch.path(name);
        std::fs::write(&file, sealed.render(form).unwrap()).unwrap();
        let plaintext = ok(
            &age_tool("age"),
            &[
                "-d",
                "-i",
                identity.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(String::from_utf8(plaintext).unwrap(), token, "{name}");
    }

    // The stored form is the hub's own; its armor alone is what age reads.
    let stored = sealed.to_stored_text();
    let refused = run(
        &age_tool("age"),
        &["-d", "-i", identity.to_str().unwrap()],
        stored.as_bytes(),
    );
    assert!(!refused.status.success());
}

#[test]
fn an_ssh_ed25519_key_works_on_both_sides() {
    let keyring = Keyring::load(&[fixture("ssh_ed25519")]).unwrap();
    let public = fixture("ssh_ed25519.pub");

    let token = "cap-token to an ssh key 5e21";
    let armored = ok(
        &age_tool("age"),
        &["-R", public.to_str().unwrap(), "-a"],
        token.as_bytes(),
    );
    let sealed = Sealed::parse(&armored).unwrap();
    assert_eq!(keyring.open(&sealed).unwrap().expose_secret(), token);

    let sealed = keyring.seal(&secret(token)).unwrap();
    let plaintext = ok(
        &age_tool("age"),
        &["-d", "-i", fixture("ssh_ed25519").to_str().unwrap()],
        sealed.armored.as_bytes(),
    );
    assert_eq!(String::from_utf8(plaintext).unwrap(), token);
}

#[test]
fn identities_generated_by_the_hub_work_with_age() {
    let scratch = Scratch::new();
    let generated = generate_identity();
    let identity = scratch.path("generated.key");
    std::fs::write(&identity, generated.file_text.expose_secret()).unwrap();
    let listed = ok(
        &age_tool("age-keygen"),
        &["-y", identity.to_str().unwrap()],
        b"",
    );
    assert_eq!(
        String::from_utf8(listed).unwrap().trim(),
        generated.recipient.as_str()
    );

    let keyring = Keyring::from_identities_text(&generated.file_text).unwrap();
    let armored = ok(
        &age_tool("age"),
        &["-r", generated.recipient.as_str(), "-a"],
        b"round trip",
    );
    let sealed = Sealed::parse(&armored).unwrap();
    assert_eq!(keyring.open(&sealed).unwrap().expose_secret(), "round trip");
    let sealed = keyring.seal(&secret("and back")).unwrap();
    let plaintext = ok(
        &age_tool("age"),
        &["-d", "-i", identity.to_str().unwrap()],
        sealed.armored.as_bytes(),
    );
    assert_eq!(plaintext, b"and back");
}
