//! `hubctl secret` as an operator uses it: make the hub's key, seal credentials, check them, and
//! rotate the key, with files that the age CLI reads and writes too. Drives the built `hubctl`
//! binary; no hub is involved.
//!
//! Needs `age` and `age-keygen` on PATH (Debian package `age`, 1.1.x). Without them these tests
//! fail rather than skip: "hubctl or the age CLI, interchangeably" is what operators are told.

// clippy.toml allows these in tests, but clippy only recognises `#[test]` functions as tests, not
// the fixture helpers of an integration-test crate; failing loudly is what a fixture is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const HUBCTL: &str = env!("CARGO_BIN_EXE_hubctl");

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

/// A scratch directory under the workspace's `.tmp`, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.tmp/hubctl-secret")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The path as a command-line argument.
    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "command failed:\n{}", self.stderr);
        self
    }

    /// Asserts the exit code and returns stderr.
    fn fails_with(self, code: i32) -> String {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self:#?}");
        self.stderr
    }

    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }
}

fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(program);
    // Only the arguments configure hubctl here.
    for var in [
        "HUBCTL_TOKEN",
        "HUBCTL_TOKEN_FILE",
        "HUBCTL_URL",
        "CREDENTIALS_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
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
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn hubctl(args: &[&str], stdin: &[u8]) -> Run {
    run(Path::new(HUBCTL), args, stdin)
}

fn age(args: &[&str], stdin: &[u8]) -> Run {
    run(&age_tool("age"), args, stdin)
}

/// `hubctl secret keygen --out <dir>/<name>`; returns the recipient it prints.
fn keygen(scratch: &Scratch, name: &str) -> String {
    let run = hubctl(&["secret", "keygen", "--out", &scratch.arg(name)], b"").success();
    run.text().trim().to_owned()
}

/// The key id hub_core derives from a recipient, to check what hubctl reports.
fn key_id(recipient: &str) -> String {
    hub_core::sealed::KeyId::of_recipient(recipient).to_string()
}

#[test]
fn keygen_makes_a_private_identity_that_age_understands() {
    let scratch = Scratch::new();
    let recipient = keygen(&scratch, "hub.key");
    assert!(recipient.starts_with("age1"), "{recipient}");
    let identity = scratch.path("hub.key");
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");

    let listed = run(
        &age_tool("age-keygen"),
        &["-y", &scratch.arg("hub.key")],
        b"",
    )
    .success();
    assert_eq!(listed.text().trim(), recipient);
    let shown = hubctl(
        &["secret", "recipient", "--identity", &scratch.arg("hub.key")],
        b"",
    )
    .success();
    assert_eq!(shown.text().trim(), recipient);

    // An existing key is never overwritten.
    let before = std::fs::read(&identity).unwrap();
    let err = hubctl(&["secret", "keygen", "--out", &scratch.arg("hub.key")], b"").fails_with(1);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&identity).unwrap(), before);

    // Without --out the identity goes to stdout and the public key to stderr, as age-keygen does.
    let to_stdout = hubctl(&["secret", "keygen"], b"").success();
    let text = to_stdout.text();
    assert!(text.contains("\nAGE-SECRET-KEY-1"), "{text}");
    assert!(
        to_stdout.stderr.starts_with("Public key: age1"),
        "{}",
        to_stdout.stderr
    );
    assert!(!to_stdout.stderr.contains("AGE-SECRET-KEY"));
}

#[test]
fn hubctl_and_age_encrypt_and_decrypt_interchangeably() {
    let scratch = Scratch::new();
    let identity = scratch.arg("hub.key");
    run(&age_tool("age-keygen"), &["-o", &identity], b"").success();
    let recipient = hubctl(&["secret", "recipient", "--identity", &identity], b"")
        .success()
        .text()
        .trim()
        .to_owned();
    let token = "capability token 3c1d-from-stdin";

    // hubctl encrypts, age decrypts.
    let armored = hubctl(
        &["secret", "encrypt", "--recipient", &recipient],
        token.as_bytes(),
    )
    .success()
    .stdout;
    assert!(armored.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));
    let plain = age(&["-d", "-i", &identity], &armored).success();
    assert_eq!(plain.text(), token);

    // age encrypts (armored and binary), hubctl decrypts, from stdin and from a file.
    let armored = age(&["-r", &recipient, "-a"], token.as_bytes())
        .success()
        .stdout;
    let plain = hubctl(&["secret", "decrypt", "--identity", &identity], &armored).success();
    assert_eq!(plain.text(), token);
    age(
        &["-r", &recipient, "-o", &scratch.arg("token.bin.age")],
        token.as_bytes(),
    )
    .success();
    let plain = hubctl(
        &[
            "secret",
            "decrypt",
            "-i",
            &identity,
            "--input",
            &scratch.arg("token.bin.age"),
        ],
        b"",
    )
    .success();
    assert_eq!(plain.text(), token);

    // A recipients file (as `age -R` reads) with an ssh key beside the hub's; secret from a file.
    let ssh_pub = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub-core/tests/sealed/ssh_ed25519.pub"),
    )
    .unwrap();
    std::fs::write(
        scratch.path("recipients.txt"),
        format!("# the hub\n{recipient}\n# break-glass operator key\n{ssh_pub}"),
    )
    .unwrap();
    std::fs::write(scratch.path("token.txt"), token).unwrap();
    let armored = hubctl(
        &[
            "secret",
            "encrypt",
            "-R",
            &scratch.arg("recipients.txt"),
            "--input",
            &scratch.arg("token.txt"),
        ],
        b"",
    )
    .success()
    .stdout;
    assert_eq!(
        age(&["-d", "-i", &identity], &armored).success().text(),
        token
    );
    let ssh_key =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub-core/tests/sealed/ssh_ed25519");
    let ssh_key = ssh_key.to_str().unwrap();
    assert_eq!(
        age(&["-d", "-i", ssh_key], &armored).success().text(),
        token
    );
    assert_eq!(
        hubctl(&["secret", "decrypt", "-i", ssh_key], &armored)
            .success()
            .text(),
        token
    );

    // The wrong identity fails, naming the key ids involved and nothing of the secret.
    let other = keygen(&scratch, "other.key");
    let err = hubctl(
        &["secret", "decrypt", "-i", &scratch.arg("other.key")],
        &armored,
    )
    .fails_with(1);
    assert!(err.contains("key id unknown"), "{err}");
    assert!(err.contains(&key_id(&other)), "{err}");
    assert!(!err.contains(token), "{err}");
}

#[test]
fn encrypt_refuses_empty_input_and_never_echoes_the_secret() {
    let scratch = Scratch::new();
    let recipient = keygen(&scratch, "hub.key");
    for empty in [&b""[..], b"\n", b"  \n\t\n"] {
        let err = hubctl(&["secret", "encrypt", "-r", &recipient], empty).fails_with(1);
        assert!(err.contains("refusing to encrypt empty input"), "{err}");
    }

    let token = "capability token 8a4f-must-not-be-echoed";
    let run = hubctl(&["secret", "encrypt", "-r", &recipient], token.as_bytes()).success();
    assert!(!String::from_utf8_lossy(&run.stdout).contains(token));
    assert!(!run.stderr.contains(token), "{}", run.stderr);

    // Failures say what is wrong without the secret either.
    let err = hubctl(&["secret", "encrypt", "-r", "age1broken"], token.as_bytes()).fails_with(1);
    assert!(err.contains("bad age recipient"), "{err}");
    assert!(!err.contains(token), "{err}");
    let err = hubctl(
        &["secret", "encrypt", "-r", &recipient],
        &[0xff, 0xfe, 0x01],
    )
    .fails_with(1);
    assert!(err.contains("not UTF-8"), "{err}");

    // Without a recipient it is a usage error.
    hubctl(&["secret", "encrypt"], token.as_bytes()).fails_with(2);
    assert_eq!(scratch.entries(), ["hub.key"]);
}

#[test]
fn rotate_moves_sealed_files_from_the_old_identity_to_the_new_one() {
    let scratch = Scratch::new();
    let old_recipient = keygen(&scratch, "old.key");
    let new_recipient = keygen(&scratch, "new.key");
    let (old, new) = (scratch.arg("old.key"), scratch.arg("new.key"));

    // Credentials sealed the ways operators seal them: hubctl (armored), age (binary), and one
    // already sealed to the new key.
    let armored = hubctl(&["secret", "encrypt", "-r", &old_recipient], b"token-a")
        .success()
        .stdout;
    std::fs::write(scratch.path("a.age"), armored).unwrap();
    std::fs::set_permissions(
        scratch.path("a.age"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    age(
        &["-r", &old_recipient, "-o", &scratch.arg("b.age")],
        b"token-b",
    )
    .success();
    let current = hubctl(&["secret", "encrypt", "-r", &new_recipient], b"token-c")
        .success()
        .stdout;
    std::fs::write(scratch.path("c.age"), &current).unwrap();
    let files = [
        scratch.arg("a.age"),
        scratch.arg("b.age"),
        scratch.arg("c.age"),
    ];

    let mut args = vec!["secret", "rotate", "--identity", &new, "--identity", &old];
    args.extend(files.iter().map(String::as_str));
    let report = hubctl(&args, b"").success().text();
    let new_id = key_id(&new_recipient);
    assert!(
        report.contains(&format!("re-sealed to key {new_id}: {}", files[0])),
        "{report}"
    );
    assert!(
        report.contains(&format!("re-sealed to key {new_id}: {}", files[1])),
        "{report}"
    );
    assert!(
        report.contains(&format!("already current (key {new_id}): {}", files[2])),
        "{report}"
    );

    // Only the new identity opens them now, with age as with hubctl; each file kept its form
    // and mode, the untouched one its bytes, and no temporary file is left behind.
    for (file, token) in files.iter().zip(["token-a", "token-b", "token-c"]) {
        assert_eq!(age(&["-d", "-i", &new, file], b"").success().text(), token);
        age(&["-d", "-i", &old, file], b"").fails_with(1);
        hubctl(&["secret", "decrypt", "-i", &old, "--input", file], b"").fails_with(1);
    }
    assert!(std::fs::read(&files[0])
        .unwrap()
        .starts_with(b"-----BEGIN AGE"));
    assert!(std::fs::read(&files[1])
        .unwrap()
        .starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(std::fs::read(&files[2]).unwrap(), current);
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "{mode:o}");
    assert_eq!(
        scratch.entries(),
        ["a.age", "b.age", "c.age", "new.key", "old.key"]
    );

    // A second run finds nothing to do.
    let report = hubctl(&args, b"").success().text();
    assert_eq!(report.matches("already current").count(), 3, "{report}");
    assert!(!report.contains("re-sealed"), "{report}");

    // JSON for scripts.
    let mut json_args = vec!["--output", "json"];
    json_args.extend(&args);
    let report: serde_json::Value =
        serde_json::from_slice(&hubctl(&json_args, b"").success().stdout).unwrap();
    assert_eq!(report["key_id"], new_id.as_str());
    assert_eq!(report["already_current"].as_array().unwrap().len(), 3);
    assert_eq!(report["resealed"].as_array().unwrap().len(), 0);
}

#[test]
fn rotate_reports_files_it_cannot_open_and_still_does_the_rest() {
    let scratch = Scratch::new();
    let old_recipient = keygen(&scratch, "old.key");
    keygen(&scratch, "new.key");
    let stranger = keygen(&scratch, "stranger.key");
    let sealed = |recipient: &str, token: &[u8]| {
        hubctl(&["secret", "encrypt", "-r", recipient], token)
            .success()
            .stdout
    };
    std::fs::write(scratch.path("ours.age"), sealed(&old_recipient, b"ours")).unwrap();
    let theirs = sealed(&stranger, b"theirs");
    std::fs::write(scratch.path("theirs.age"), &theirs).unwrap();
    std::fs::write(scratch.path("notes.txt"), "not a sealed value").unwrap();

    let err_run = hubctl(
        &[
            "secret",
            "rotate",
            "-i",
            &scratch.arg("new.key"),
            "-i",
            &scratch.arg("old.key"),
            &scratch.arg("ours.age"),
            &scratch.arg("theirs.age"),
            &scratch.arg("notes.txt"),
        ],
        b"",
    );
    let report = err_run.text();
    let err = err_run.fails_with(1);
    assert!(err.contains("2 of 3 files could not be re-sealed"), "{err}");
    assert!(report.contains("re-sealed to key"), "{report}");
    assert!(
        report.contains(&format!("failed: {}", scratch.arg("theirs.age"))),
        "{report}"
    );
    assert!(
        report.contains(&format!("failed: {}", scratch.arg("notes.txt"))),
        "{report}"
    );
    assert_eq!(std::fs::read(scratch.path("theirs.age")).unwrap(), theirs);
    let opened = hubctl(
        &[
            "secret",
            "decrypt",
            "-i",
            &scratch.arg("new.key"),
            "--input",
            &scratch.arg("ours.age"),
        ],
        b"",
    )
    .success();
    assert_eq!(opened.text(), "ours");
}
