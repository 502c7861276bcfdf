//! The hub's identities: the current one seals, every one of them opens.

use super::{seal_to, KeyId, Recipient, SealError, Sealed, CREDENTIAL_NAME};
use crate::secret::{self, SecretSource};
use age::ssh::{Identity as SshIdentity, Recipient as SshRecipient};
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{ExposeSecret, SecretString};
use std::io::Read;
use std::path::PathBuf;

/// The hub's age identities, in order: the first is current (new seals go to it), the others
/// are older keys kept only to open what was sealed to them until it is re-sealed.
///
/// `Debug` prints key ids only.
pub struct Keyring {
    current: Entry,
    /// No two entries of the keyring share a key id.
    older: Vec<Entry>,
}

struct Entry {
    recipient: Recipient,
    identity: Box<dyn age::Identity + Send + Sync>,
}

impl Keyring {
    /// Reads identity files in order; each may hold several identities (`AGE-SECRET-KEY-1…`
    /// lines, `#` comments) or one unencrypted OpenSSH ed25519 private key.
    pub fn load(paths: &[PathBuf]) -> Result<Self, SealError> {
        let mut entries = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path)
                .map(SecretString::from)
                .map_err(|source| SealError::Io {
                    path: path.clone(),
                    source,
                })?;
            entries.extend(parse_identities(
                text.expose_secret(),
                &path.display().to_string(),
            )?);
        }
        Keyring::from_entries(entries)
    }

    /// Reads the configured identity files, or when none is configured the `age-identity`
    /// systemd credential (`LoadCredential=`, agenix).
    pub fn load_configured(files: &[PathBuf]) -> Result<Self, SealError> {
        if !files.is_empty() {
            return Keyring::load(files);
        }
        match secret::locate(None, CREDENTIAL_NAME) {
            Some(SecretSource::Credential(path) | SecretSource::File(path)) => {
                Keyring::load(&[path])
            }
            None => Err(SealError::NoIdentity),
        }
    }

    /// Parses identities from text in the identity file format.
    pub fn from_identities_text(text: &SecretString) -> Result<Self, SealError> {
        Keyring::from_entries(parse_identities(text.expose_secret(), "the identity text")?)
    }

    fn from_entries(entries: Vec<Entry>) -> Result<Self, SealError> {
        // The same key listed twice (old file still holding the new key) would only slow
        // opening down; the first occurrence keeps its place.
        let mut unique: Vec<Entry> = Vec::with_capacity(entries.len());
        for entry in entries {
            if !unique.iter().any(|u| u.key_id() == entry.key_id()) {
                unique.push(entry);
            }
        }
        let mut unique = unique.into_iter();
        let current = unique.next().ok_or(SealError::NoIdentity)?;
        Ok(Keyring {
            current,
            older: unique.collect(),
        })
    }

    /// Every identity, current first.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        std::iter::once(&self.current).chain(&self.older)
    }

    /// The key id of the current identity.
    pub fn current_key_id(&self) -> KeyId {
        self.current.key_id().clone()
    }

    /// The current identity's public recipient (`age1…` or `ssh-ed25519 …`), for
    /// `hubctl secret encrypt -r` and `age -r`.
    pub fn recipient(&self) -> String {
        self.current.recipient.as_str().to_owned()
    }

    /// The current identity's recipient.
    pub fn current_recipient(&self) -> &Recipient {
        &self.current.recipient
    }

    /// Every identity's recipient, current first.
    pub fn recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.entries().map(|e| &e.recipient)
    }

    /// Seals `plaintext` to the current identity.
    pub fn seal(&self, plaintext: &SecretString) -> Result<Sealed, SealError> {
        seal_to(std::slice::from_ref(&self.current.recipient), plaintext)
    }

    /// Opens a sealed value: the identity named by its key id first, then every other one.
    pub fn open(&self, sealed: &Sealed) -> Result<SecretString, SealError> {
        let hinted = self.entries().filter(|e| *e.key_id() == sealed.key_id);
        let others = self.entries().filter(|e| *e.key_id() != sealed.key_id);
        self.open_with(sealed, hinted.chain(others))
            .map(|(plaintext, _)| plaintext)
    }

    /// Re-encrypts to the current identity when sealed to an older one; None when already
    /// current. This is the one rotation step for every stored value, files and rows alike.
    ///
    /// A value the current identity opens stays as it is (with any other recipients it has),
    /// unless it is labelled with an older key id, which would mislead the next look.
    pub fn reseal(&self, sealed: &Sealed) -> Result<Option<Sealed>, SealError> {
        let current = self.current.key_id();
        let (plaintext, opened_by) = self.open_with(sealed, self.entries())?;
        let labelled_current = sealed.key_id == *current || sealed.key_id.is_unknown();
        if opened_by == *current && labelled_current {
            return Ok(None);
        }
        self.seal(&plaintext).map(Some)
    }

    /// Tries `candidates` one at a time (so the one that fits is known) and returns the
    /// plaintext with the key id of the identity that opened it.
    fn open_with<'a>(
        &self,
        sealed: &Sealed,
        candidates: impl Iterator<Item = &'a Entry>,
    ) -> Result<(SecretString, KeyId), SealError> {
        let fail = |reason: String| SealError::Decrypt {
            key_id: sealed.key_id.to_string(),
            reason,
        };
        let binary = sealed.to_binary()?;
        let mut refused = None;
        for entry in candidates {
            let decryptor = age::Decryptor::new_buffered(&binary[..])
                .map_err(|e| fail(format!("not a valid age file: {e}")))?;
            let identity: &dyn age::Identity = entry.identity.as_ref();
            match decryptor.decrypt(std::iter::once(identity)) {
                Ok(mut reader) => {
                    // Sized up front so the plaintext is never copied by a growing buffer.
                    let mut plaintext = Zeroizing::new(Vec::with_capacity(binary.len()));
                    reader.read_to_end(&mut plaintext).map_err(|e| {
                        fail(format!(
                            "key {} fits but the payload is damaged: {e}",
                            entry.key_id()
                        ))
                    })?;
                    let text = text_secret(std::mem::take(&mut *plaintext))
                        .ok_or_else(|| fail("the sealed value is not UTF-8 text".to_owned()))?;
                    return Ok((text, entry.key_id().clone()));
                }
                Err(age::DecryptError::NoMatchingKeys) => {}
                Err(e) => refused = Some(format!("key {}: {e}", entry.key_id())),
            }
        }
        Err(fail(refused.unwrap_or_else(|| {
            let ids: Vec<&str> = self.entries().map(|e| e.key_id().as_str()).collect();
            format!(
                "none of this keyring's identities ({}) fits; it was sealed to another key",
                ids.join(", ")
            )
        })))
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", self.current.key_id())
            .field(
                "older",
                &self.older.iter().map(Entry::key_id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Entry {
    fn key_id(&self) -> &KeyId {
        self.recipient.key_id()
    }
}

/// Moves decrypted bytes into a secret string, wiping them when they are not text.
fn text_secret(bytes: Vec<u8>) -> Option<SecretString> {
    match String::from_utf8(bytes) {
        Ok(text) => Some(SecretString::from(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            None
        }
    }
}

/// Parses an identity file's text. Errors name `source` and a line number, never the line.
fn parse_identities(text: &str, source: &str) -> Result<Vec<Entry>, SealError> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = line.trim();
        let at = || format!("{source}, line {}", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-SECRET-KEY-1") {
            let identity = line.parse::<age::x25519::Identity>().map_err(|why| {
                SealError::BadIdentity(format!("{}: not a valid age identity ({why})", at()))
            })?;
            entries.push(Entry {
                recipient: Recipient::from_x25519(identity.to_public()),
                identity: Box::new(identity),
            });
        } else if line.starts_with("AGE-PLUGIN-") {
            return Err(SealError::BadIdentity(format!(
                "{}: plugin identities are not supported",
                at()
            )));
        } else if line.starts_with("-----BEGIN ") {
            let mut block = Zeroizing::new(format!("{line}\n"));
            let mut closed = false;
            for (_, line) in lines.by_ref() {
                let line = line.trim();
                block.push_str(line);
                block.push('\n');
                if line.starts_with("-----END ") {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(SealError::BadIdentity(format!(
                    "{}: the private key has no -----END line",
                    at()
                )));
            }
            entries.push(ssh_entry(&block, &at())?);
        } else {
            return Err(SealError::BadIdentity(format!(
                "{}: neither an age identity (AGE-SECRET-KEY-1…) nor an OpenSSH private key",
                at()
            )));
        }
    }
    Ok(entries)
}

fn ssh_entry(block: &str, at: &str) -> Result<Entry, SealError> {
    let bad = |why: &str| SealError::BadIdentity(format!("{at}: {why}"));
    let identity = SshIdentity::from_buffer(block.as_bytes(), None)
        .map_err(|e| bad(&format!("not a readable OpenSSH private key ({e})")))?;
    match &identity {
        SshIdentity::Unencrypted(_) => {}
        SshIdentity::Encrypted(_) => {
            return Err(bad(
                "the OpenSSH key is passphrase-protected; the hub needs an unencrypted key \
                 (kept in a 0600 file or a systemd credential)",
            ))
        }
        SshIdentity::Unsupported(_) => {
            return Err(bad(
                "unsupported OpenSSH key (only unencrypted ssh-ed25519 keys are)",
            ))
        }
    }
    // The public half tells the key type; age would take ssh-rsa too, the hub does not.
    let recipient = match SshRecipient::try_from(identity.clone()) {
        Ok(r @ SshRecipient::SshEd25519(..)) => r,
        Ok(SshRecipient::SshRsa(..)) => {
            return Err(bad(
                "ssh-rsa keys are not supported; use an ssh-ed25519 key or an age identity",
            ))
        }
        Err(_) => return Err(bad("cannot derive the public key of this OpenSSH key")),
    };
    Ok(Entry {
        recipient: Recipient::from_ssh(recipient),
        identity: Box::new(identity),
    })
}
