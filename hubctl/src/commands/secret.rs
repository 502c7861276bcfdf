//! `hubctl secret`: credentials age-encrypted to a hub's identity, handled offline.
//!
//! Files written here are plain age files, interchangeable with the age CLI: `encrypt` equals
//! `age -r … -a`, `decrypt` equals `age -d -i …`, `keygen` writes what `age-keygen` writes. A
//! secret is read from a file or stdin, never from the command line, where it would end up in
//! shell history and `ps` output.

use crate::output::{self, note, Output};
use anyhow::{bail, Context};
use clap::{ArgGroup, Subcommand};
use hub_core::api::capabilities::{RotationReport, SecretsRecipient};
use hub_core::sealed::{self, Keyring, Recipient, Sealed};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `hubctl secret …`.
#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Make a new X25519 identity (a hub's key) in age-keygen's format; prints its recipient.
    Keygen {
        /// Write the identity to this new file (mode 0600, never overwritten) instead of stdout.
        /// (`--output` is the global output format.)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Encrypt a secret to recipients, as `age -r … -a`: the ASCII-armored age file goes to stdout.
    #[command(group(
        ArgGroup::new("recipients")
            .required(true)
            .multiple(true)
            .args(["recipient", "recipient_file"])
    ))]
    Encrypt {
        /// Recipient: `age1…` or `ssh-ed25519 AAAA…` (repeat for several).
        #[arg(long, short = 'r', value_name = "RECIPIENT")]
        recipient: Vec<String>,
        /// File of recipients, one per line, as `age -R` reads it (repeat for several).
        #[arg(long, short = 'R', value_name = "FILE")]
        recipient_file: Vec<PathBuf>,
        /// Read the secret from this file, or `-` for stdin.
        #[arg(long, value_name = "FILE|-", default_value = "-")]
        input: PathBuf,
    },
    /// Decrypt a sealed value or age file to stdout, to check it (as `age -d -i …`).
    Decrypt {
        /// Identity file: age-keygen output or an unencrypted OpenSSH ed25519 key (repeatable).
        #[arg(long, short = 'i', value_name = "FILE", required = true)]
        identity: Vec<PathBuf>,
        /// Read the sealed value from this file, or `-` for stdin.
        #[arg(long, value_name = "FILE|-", default_value = "-")]
        input: PathBuf,
    },
    /// Re-encrypt sealed files in place to the first identity: `--identity NEW --identity OLD`;
    /// or, with `--hub`, have the state hub re-seal the credentials it stores to its current identity.
    Rotate {
        /// Re-seal the state hub's stored capability credentials (after putting its new identity
        /// first in `[secrets] age_identity_files` and restarting it) instead of local files.
        #[arg(long, conflicts_with_all = ["identity", "files"])]
        hub: bool,
        /// Identity files, the new one first; the others only need to open the files.
        #[arg(
            long,
            short = 'i',
            value_name = "FILE",
            required_unless_present = "hub"
        )]
        identity: Vec<PathBuf>,
        /// Sealed files (age files or the hub's stored form); each keeps its form, mode and owner.
        #[arg(value_name = "FILES", required_unless_present = "hub")]
        files: Vec<PathBuf>,
    },
    /// Print the recipient (public key) of each identity in an identity file; or, with `--hub`,
    /// the state hub's current recipient, to seal credentials for it.
    Recipient {
        /// Ask the state hub for its recipient instead of reading an identity file.
        #[arg(long, conflicts_with = "identity")]
        hub: bool,
        /// Identity file.
        #[arg(
            long,
            short = 'i',
            value_name = "FILE",
            required_unless_present = "hub"
        )]
        identity: Option<PathBuf>,
    },
}

impl SecretCommand {
    /// Whether the command talks to the state hub (and so needs its URL and a token).
    pub fn uses_hub(&self) -> bool {
        matches!(
            self,
            SecretCommand::Rotate { hub: true, .. } | SecretCommand::Recipient { hub: true, .. }
        )
    }
}

/// Runs a `secret` subcommand that talks to the state hub (`--hub`).
pub async fn run_hub(ctx: &crate::commands::Ctx, cmd: SecretCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    match cmd {
        SecretCommand::Recipient { .. } => {
            let reply = c.send(c.get(&["secrets", "recipient"])).await?;
            if ctx.out.is_json() {
                return output::print_json(&reply.body);
            }
            let shown: SecretsRecipient = serde_json::from_value(reply.body)
                .context("the hub's recipient does not have the expected shape")?;
            note(&format!("key id {}", shown.key_id));
            output::print_line(&shown.recipient)
        }
        SecretCommand::Rotate { .. } => {
            let reply = c.send(c.post(&["secrets", "rotate"], &json!({}))).await?;
            let report: RotationReport = serde_json::from_value(reply.body.clone())
                .context("the hub's rotation report does not have the expected shape")?;
            if ctx.out.is_json() {
                output::print_json(&reply.body)?;
            } else {
                output::print_line(&format!(
                    "re-sealed to key {}: {}, already current: {}",
                    report.key_id, report.resealed, report.already_current
                ))?;
                for name in &report.failed {
                    output::print_line(&format!("failed: capability {name}"))?;
                }
            }
            if !report.failed.is_empty() {
                bail!(
                    "{} stored credential(s) open with none of the hub's identities: {}",
                    report.failed.len(),
                    report.failed.join(", ")
                );
            }
            Ok(())
        }
        other => run(ctx.out, other),
    }
}

/// Runs a `secret` subcommand; no hub involved.
pub fn run(out: Output, cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Keygen { out: file } => keygen(out, file.as_deref()),
        SecretCommand::Encrypt {
            recipient,
            recipient_file,
            input,
        } => encrypt(out, &recipient, &recipient_file, &input),
        SecretCommand::Decrypt { identity, input } => decrypt(&identity, &input),
        SecretCommand::Rotate {
            hub: false,
            identity,
            files,
        } => rotate(out, &identity, &files),
        SecretCommand::Recipient {
            hub: false,
            identity: Some(identity),
        } => recipient(out, &identity),
        SecretCommand::Rotate { hub: true, .. } | SecretCommand::Recipient { .. } => {
            bail!("--hub needs the state hub: this command was not sent to it")
        }
    }
}

fn keygen(out: Output, file: Option<&Path>) -> anyhow::Result<()> {
    let generated = sealed::generate_identity();
    let recipient = &generated.recipient;
    let Some(path) = file else {
        if out.is_json() {
            note("warning: the JSON below holds the new secret key");
            return output::print_json(&json!({
                "identity": generated.file_text.expose_secret(),
                "recipient": recipient.as_str(),
                "key_id": recipient.key_id(),
            }));
        }
        note(&format!("Public key: {recipient}"));
        return write_stdout(generated.file_text.expose_secret().as_bytes());
    };
    // create_new: an existing key is somebody's only way into their secrets.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} already exists; an existing key is never overwritten",
                path.display()
            ),
            _ => anyhow::anyhow!("cannot create {}: {e}", path.display()),
        })?;
    if let Err(e) = file
        .write_all(generated.file_text.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A half-written key file would look like a key; leave nothing behind.
        let _ = std::fs::remove_file(path);
        bail!("cannot write {}: {e}", path.display());
    }
    if out.is_json() {
        return output::print_json(&json!({
            "file": path,
            "recipient": recipient.as_str(),
            "key_id": recipient.key_id(),
        }));
    }
    output::print_line(recipient.as_str())
}

fn encrypt(
    out: Output,
    recipients: &[String],
    recipient_files: &[PathBuf],
    input: &Path,
) -> anyhow::Result<()> {
    let mut all = recipients
        .iter()
        .map(|r| Recipient::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    for file in recipient_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read recipients from {}", file.display()))?;
        all.extend(Recipient::parse_list(&text, &file.display().to_string())?);
    }
    if is_stdin(input) && std::io::stdin().is_terminal() {
        note("Reading the secret from the terminal; finish with Ctrl-D.");
    }
    let mut bytes = read_input(input)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("refusing to encrypt empty input: give the secret on stdin or with --input FILE");
    }
    let plaintext = match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => SecretString::from(text),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            bail!("the secret is not UTF-8 text");
        }
    };
    let sealed = sealed::seal_to(&all, &plaintext)?;
    if out.is_json() {
        return output::print_json(&serde_json::to_value(&sealed)?);
    }
    write_stdout(sealed.armored.as_bytes())
}

fn decrypt(identities: &[PathBuf], input: &Path) -> anyhow::Result<()> {
    let keyring = Keyring::load(identities)?;
    let sealed = Sealed::parse(read_input(input)?.as_slice())
        .with_context(|| format!("cannot decrypt {}", describe(input)))?;
    let plaintext = keyring.open(&sealed)?;
    if std::io::stdout().is_terminal() {
        note("warning: the secret is printed to this terminal");
    }
    write_stdout(plaintext.expose_secret().as_bytes())
}

fn recipient(out: Output, identity: &Path) -> anyhow::Result<()> {
    let keyring = Keyring::load(&[identity.to_path_buf()])?;
    if out.is_json() {
        let list: Vec<_> = keyring
            .recipients()
            .map(|r| json!({ "recipient": r.as_str(), "key_id": r.key_id() }))
            .collect();
        return output::print_json(&json!(list));
    }
    for r in keyring.recipients() {
        output::print_line(r.as_str())?;
    }
    Ok(())
}

/// What happened to one file in `rotate`.
enum Outcome {
    Resealed,
    Current,
    Failed(String),
}

fn rotate(out: Output, identities: &[PathBuf], files: &[PathBuf]) -> anyhow::Result<()> {
    let keyring = Keyring::load(identities)?;
    let key_id = keyring.current_key_id();
    let outcomes: Vec<(&PathBuf, Outcome)> = files
        .iter()
        .map(|file| {
            let outcome = match reseal_file(&keyring, file) {
                Ok(true) => Outcome::Resealed,
                Ok(false) => Outcome::Current,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            };
            (file, outcome)
        })
        .collect();
    let failed = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    if out.is_json() {
        let list = |want: fn(&Outcome) -> bool| -> Vec<&PathBuf> {
            outcomes
                .iter()
                .filter(|(_, o)| want(o))
                .map(|(f, _)| *f)
                .collect()
        };
        let failures: Vec<_> = outcomes
            .iter()
            .filter_map(|(f, o)| match o {
                Outcome::Failed(why) => Some(json!({ "file": f, "error": why })),
                _ => None,
            })
            .collect();
        output::print_json(&json!({
            "key_id": key_id,
            "resealed": list(|o| matches!(o, Outcome::Resealed)),
            "already_current": list(|o| matches!(o, Outcome::Current)),
            "failed": failures,
        }))?;
    } else {
        for (file, outcome) in &outcomes {
            let line = match outcome {
                Outcome::Resealed => format!("re-sealed to key {key_id}: {}", file.display()),
                Outcome::Current => format!("already current (key {key_id}): {}", file.display()),
                Outcome::Failed(why) => format!("failed: {}: {why}", file.display()),
            };
            output::print_line(&line)?;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files could not be re-sealed", files.len());
    }
    Ok(())
}

/// Re-seals one file in place; true when it was rewritten, false when already current.
fn reseal_file(keyring: &Keyring, file: &Path) -> anyhow::Result<bool> {
    // Through a symlink (e.g. a secrets folder of links) the file it points to is replaced.
    let path =
        std::fs::canonicalize(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (sealed, form) = Sealed::parse_with_form(&bytes)?;
    match keyring.reseal(&sealed)? {
        None => Ok(false),
        Some(resealed) => {
            replace_file(&path, &resealed.render(form)?)?;
            Ok(true)
        }
    }
}

/// Replaces `path` atomically: a temporary file beside it, with its mode and owner, renamed
/// over it, so a crash leaves either the old or the new value, never half of one.
fn replace_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} is not a file", path.display());
    };
    let temp = dir.join(format!(
        ".{}.hubctl-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let write = || -> std::io::Result<()> {
        // Created 0600 so the content is never readable by more than the final file allows.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(content)?;
        let created = file.metadata()?;
        if (created.uid(), created.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
        }
        file.set_permissions(meta.permissions())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        anyhow::anyhow!("cannot replace {}: {e}", path.display())
    })
}

fn is_stdin(input: &Path) -> bool {
    input == Path::new("-")
}

fn describe(input: &Path) -> String {
    if is_stdin(input) {
        "stdin".to_owned()
    } else {
        input.display().to_string()
    }
}

/// Reads a whole input into a buffer that is wiped when dropped.
fn read_input(input: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    let read = if is_stdin(input) {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        File::open(input).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.with_context(|| format!("cannot read {}", describe(input)))?;
    Ok(bytes)
}

/// Writes bytes as they are (no newline added: a secret or age file is passed on exactly).
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}
