//! Recipients (the public half of an identity), sealing to them, and new identities.

use super::{KeyId, SealError, Sealed};
use age::armor::{ArmoredWriter, Format};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;

/// A public key values can be sealed to: an age X25519 recipient (`age1…`) or an OpenSSH
/// ed25519 public key (`ssh-ed25519 AAAA… [comment]`).
#[derive(Clone)]
pub struct Recipient {
    /// The canonical text (an ssh key without its comment), which the key id is derived from.
    text: String,
    key_id: KeyId,
    kind: RecipientKind,
}

#[derive(Clone)]
enum RecipientKind {
    X25519(age::x25519::Recipient),
    SshEd25519(age::ssh::Recipient),
}

impl Recipient {
    /// Parses one recipient: `age1…` or `ssh-ed25519 AAAA… [comment]`.
    pub fn parse(text: &str) -> Result<Recipient, SealError> {
        let text = text.trim();
        if text.starts_with("age1") {
            return text
                .parse::<age::x25519::Recipient>()
                .map(Recipient::from_x25519)
                .map_err(|why| SealError::BadRecipient(format!("`{}`: {why}", shown(text))));
        }
        if text.starts_with("ssh-ed25519 ") {
            return match text.parse::<age::ssh::Recipient>() {
                Ok(r @ age::ssh::Recipient::SshEd25519(..)) => Ok(Recipient::from_ssh(r)),
                _ => Err(SealError::BadRecipient(format!(
                    "`{}` is not a valid ssh-ed25519 public key",
                    shown(text)
                ))),
            };
        }
        if text.starts_with("ssh-") || text.starts_with("ecdsa-") {
            return Err(SealError::BadRecipient(format!(
                "`{}`: only ssh-ed25519 keys are supported among SSH keys",
                shown(text)
            )));
        }
        Err(SealError::BadRecipient(format!(
            "`{}` is neither an age recipient (age1…) nor an ssh-ed25519 public key",
            shown(text)
        )))
    }

    /// Parses a recipients file as the age CLI reads one (`-R`): one recipient per line, `#`
    /// comments and blank lines ignored. `source` names the file in errors.
    pub fn parse_list(text: &str, source: &str) -> Result<Vec<Recipient>, SealError> {
        let mut recipients = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let recipient = Recipient::parse(line).map_err(|e| match e {
                SealError::BadRecipient(why) => {
                    SealError::BadRecipient(format!("{source}, line {}: {why}", index + 1))
                }
                other => other,
            })?;
            recipients.push(recipient);
        }
        if recipients.is_empty() {
            return Err(SealError::BadRecipient(format!(
                "{source} holds no recipient"
            )));
        }
        Ok(recipients)
    }

    /// The key id of the identity behind this recipient.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The recipient as text, as `age -r` takes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(super) fn from_x25519(recipient: age::x25519::Recipient) -> Recipient {
        Recipient::new(recipient.to_string(), RecipientKind::X25519(recipient))
    }

    pub(super) fn from_ssh(recipient: age::ssh::Recipient) -> Recipient {
        Recipient::new(recipient.to_string(), RecipientKind::SshEd25519(recipient))
    }

    fn new(text: String, kind: RecipientKind) -> Recipient {
        Recipient {
            key_id: KeyId::of_recipient(&text),
            text,
            kind,
        }
    }

    fn as_age(&self) -> &dyn age::Recipient {
        match &self.kind {
            RecipientKind::X25519(r) => r,
            RecipientKind::SshEd25519(r) => r,
        }
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({}, key id {})", self.text, self.key_id)
    }
}

/// Public keys are not secret, but a mistyped argument might be: quote only its start.
fn shown(text: &str) -> String {
    const SHOWN: usize = 24;
    let mut start: String = text.chars().take(SHOWN).collect();
    if text.chars().nth(SHOWN).is_some() {
        start.push('…');
    }
    start
}

/// Seals `plaintext` to every recipient in `recipients` as an ASCII-armored age file. The
/// value's key id is the first recipient's: that is the identity the hub will try first.
pub fn seal_to(recipients: &[Recipient], plaintext: &SecretString) -> Result<Sealed, SealError> {
    let first = recipients
        .first()
        .ok_or_else(|| SealError::Encrypt("no recipient given".to_owned()))?;
    let bytes = plaintext.expose_secret().as_bytes();
    if bytes.is_empty() {
        return Err(SealError::Encrypt(
            "the secret is empty; there is nothing to seal".to_owned(),
        ));
    }
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(Recipient::as_age))
        .map_err(|e| SealError::Encrypt(e.to_string()))?;
    let io = |e: std::io::Error| SealError::Encrypt(e.to_string());
    let mut armored = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut armored, Format::AsciiArmor).map_err(io)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io)?;
    writer.write_all(bytes).map_err(io)?;
    writer
        .finish()
        .and_then(ArmoredWriter::finish)
        .map_err(io)?;
    let armored = String::from_utf8(armored)
        .map_err(|_| SealError::Encrypt("the age armor is not text".to_owned()))?;
    Ok(Sealed {
        key_id: first.key_id().clone(),
        armored,
    })
}

/// A freshly generated X25519 identity, as `age-keygen` writes it.
pub struct GeneratedIdentity {
    /// The identity file: `# created`, `# public key` and the `AGE-SECRET-KEY-1…` line.
    pub file_text: SecretString,
    /// Its public recipient.
    pub recipient: Recipient,
}

impl std::fmt::Debug for GeneratedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedIdentity")
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

/// Generates a new X25519 identity in `age-keygen`'s file format.
pub fn generate_identity() -> GeneratedIdentity {
    let identity = age::x25519::Identity::generate();
    let recipient = Recipient::from_x25519(identity.to_public());
    let created = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let secret_key = identity.to_string();
    let file_text = SecretString::from(format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        secret_key.expose_secret()
    ));
    GeneratedIdentity {
        file_text,
        recipient,
    }
}
