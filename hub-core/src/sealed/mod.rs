//! Credentials at rest: values age-encrypted to the hub's own age identity.
//!
//! A hub that stores a credential (a capability's token) keeps it as a [`Sealed`] value: the
//! ASCII-armored age file plus the [`KeyId`] of the identity it was sealed to. The hub's
//! [`Keyring`] is read from identity files (`age-keygen` output or an unencrypted OpenSSH
//! ed25519 key); its first identity is current and receives every new seal, the others only open
//! old values, so rotating the key is: put the new identity first, keep the old one behind it,
//! and [`Keyring::reseal`] each stored value while the hub keeps serving.
//!
//! The files are plain age files, so operators can seal with `hubctl secret encrypt` or with the
//! age CLI (`age -r <recipient> -a`), and check either with `hubctl secret decrypt` or `age -d`.
//! [`Keyring::open`] returns exactly the bytes that were sealed: `echo token | age …` seals a
//! trailing newline, so callers that use the value as a token trim it, as `secret::read` does.
//!
//! Nothing here prints key material or plaintext: `Debug` shows key ids, errors name key ids,
//! files and line numbers, never content.

mod keyring;
mod recipient;
mod stored;

pub use keyring::Keyring;
pub use recipient::{generate_identity, seal_to, GeneratedIdentity, Recipient};
pub use stored::{Form, Sealed};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The systemd credential (`$CREDENTIALS_DIRECTORY/age-identity`) that holds the hub's identities
/// when no identity file is configured.
pub const CREDENTIAL_NAME: &str = "age-identity";

/// Why a value could not be sealed or opened; never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// An identity or sealed file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No identity was configured, or the identity files hold none.
    #[error(
        "no age identity found: expected AGE-SECRET-KEY-1… lines (age-keygen, hubctl secret \
         keygen) or an unencrypted OpenSSH ed25519 private key"
    )]
    NoIdentity,
    /// An identity file holds something that is not a usable identity.
    #[error("bad age identity: {0}")]
    BadIdentity(String),
    /// A recipient (public key) could not be parsed.
    #[error("bad age recipient: {0}")]
    BadRecipient(String),
    /// Encryption failed.
    #[error("cannot seal the value: {0}")]
    Encrypt(String),
    /// No identity of the keyring opens the value, or the value is damaged.
    #[error("cannot open the value sealed for key id {key_id}: {reason}")]
    Decrypt {
        /// The key id the value was sealed for (`unknown` for a bare age file).
        key_id: String,
        /// Why, without content.
        reason: String,
    },
    /// The input is neither the stored form nor an age file.
    #[error("not a sealed value: {0}")]
    Format(String),
}

/// A short, stable name for an identity: the first 16 hex digits of sha256 of its recipient.
///
/// Derived from the public recipient only, so it can be logged and stored next to the value.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The key id of values whose identity is not recorded (bare age files).
    const UNKNOWN: &'static str = "unknown";
    /// Hex digits kept from the hash: enough to tell a hub's few keys apart at a glance.
    const LEN: usize = 16;

    /// The key id of the identity behind `recipient` (`age1…` or `ssh-ed25519 AAAA…`).
    pub fn of_recipient(recipient: &str) -> KeyId {
        let digest = hex::encode(Sha256::digest(recipient.as_bytes()));
        KeyId(digest[..Self::LEN].to_owned())
    }

    /// The key id of a value sealed by someone who did not record it (the age CLI).
    pub fn unknown() -> KeyId {
        KeyId(Self::UNKNOWN.to_owned())
    }

    /// True for [`KeyId::unknown`].
    pub fn is_unknown(&self) -> bool {
        self.0 == Self::UNKNOWN
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a stored key id: 16 lowercase hex digits or `unknown`.
    pub fn parse(text: &str) -> Result<KeyId, SealError> {
        let hex_id = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex_id || text == Self::UNKNOWN {
            Ok(KeyId(text.to_owned()))
        } else {
            // Stored key ids are public, but a damaged row may hold anything: show only a little.
            let shown: String = text.chars().take(Self::LEN + 8).collect();
            Err(SealError::Format(format!(
                "`{}` is not a key id (16 lowercase hex digits or `unknown`)",
                shown.escape_debug()
            )))
        }
    }
}

impl TryFrom<String> for KeyId {
    type Error = SealError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        KeyId::parse(&text)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

#[cfg(test)]
mod tests;
