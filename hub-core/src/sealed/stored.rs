//! The stored form of a sealed value, and reading the age files operators bring.

use super::{KeyId, SealError};
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The first line of the stored text form; the ASCII-armored age file follows it.
const KEY_ID_PREFIX: &str = "key-id: ";
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const BINARY_MAGIC: &[u8] = b"age-encryption.org/";

/// A sealed value as a hub stores it: the key id of the identity it was sealed to and the
/// ASCII-armored age file. As text (a TEXT column, a file) it is [`Sealed::to_stored_text`]:
/// a `key-id: …` line followed by the armor; with serde it is `{"key_id", "armored"}`.
///
/// The ciphertext is not secret, but `Debug` shows only its size to keep logs readable.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredFields")]
pub struct Sealed {
    /// The identity the value was sealed to; [`KeyId::unknown`] for a bare age file.
    pub key_id: KeyId,
    /// The age file, ASCII-armored.
    pub armored: String,
}

/// How a sealed value was written down; a rewritten file keeps the form it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The hub's own text form: `key-id: …` then the armor.
    Stored,
    /// A bare ASCII-armored age file (`age -a`, `hubctl secret encrypt`).
    Armored,
    /// A binary age file (`age` without `-a`).
    Binary,
}

#[derive(Deserialize)]
struct StoredFields {
    key_id: KeyId,
    armored: String,
}

impl TryFrom<StoredFields> for Sealed {
    type Error = SealError;
    fn try_from(fields: StoredFields) -> Result<Self, Self::Error> {
        // Deserialized rows get the same checks as parsed text, so a damaged row fails here
        // rather than deep inside a decryption.
        let (armored, _) = normalize_armor(&fields.armored)?;
        Ok(Sealed {
            key_id: fields.key_id,
            armored,
        })
    }
}

impl Sealed {
    /// Parses the stored text form, a bare ASCII-armored age file or a binary age file; the
    /// key id of a bare file is [`KeyId::unknown`], so opening it tries every identity.
    pub fn parse(input: impl AsRef<[u8]>) -> Result<Sealed, SealError> {
        Sealed::parse_with_form(input).map(|(sealed, _)| sealed)
    }

    /// [`Sealed::parse`], also telling which form the input had.
    pub fn parse_with_form(input: impl AsRef<[u8]>) -> Result<(Sealed, Form), SealError> {
        let input = input.as_ref();
        if input.starts_with(BINARY_MAGIC) {
            check_header(input)?;
            let sealed = Sealed {
                key_id: KeyId::unknown(),
                armored: armor(input)?,
            };
            return Ok((sealed, Form::Binary));
        }
        let text = std::str::from_utf8(input)
            .map_err(|_| SealError::Format("neither text nor a binary age file".to_owned()))?;
        let text = text.trim_start();
        if let Some(rest) = text.strip_prefix(KEY_ID_PREFIX) {
            let (id, armor) = rest.split_once('\n').unwrap_or((rest, ""));
            let key_id = KeyId::parse(id.trim())?;
            if !armor.trim_start().starts_with(ARMOR_BEGIN) {
                return Err(SealError::Format(
                    "the key-id line is not followed by an ASCII-armored age file".to_owned(),
                ));
            }
            let (armored, _) = normalize_armor(armor)?;
            return Ok((Sealed { key_id, armored }, Form::Stored));
        }
        if text.starts_with(ARMOR_BEGIN) {
            let (armored, _) = normalize_armor(text)?;
            let sealed = Sealed {
                key_id: KeyId::unknown(),
                armored,
            };
            return Ok((sealed, Form::Armored));
        }
        Err(SealError::Format(format!(
            "expected `{KEY_ID_PREFIX}…` followed by an age file, `{ARMOR_BEGIN}`, or a \
             binary age file"
        )))
    }

    /// The stored text form: a `key-id: …` line followed by the armor.
    pub fn to_stored_text(&self) -> String {
        format!("{KEY_ID_PREFIX}{}\n{}", self.key_id, self.armored)
    }

    /// The age file without its armor, as `age` writes it without `-a`.
    pub fn to_binary(&self) -> Result<Vec<u8>, SealError> {
        normalize_armor(&self.armored).map(|(_, binary)| binary)
    }

    /// The value written in `form`, so a rewritten file stays readable by whoever made it.
    pub fn render(&self, form: Form) -> Result<Vec<u8>, SealError> {
        match form {
            Form::Stored => Ok(self.to_stored_text().into_bytes()),
            Form::Armored => Ok(self.armored.clone().into_bytes()),
            Form::Binary => self.to_binary(),
        }
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field(
                "armored",
                &format_args!("<{} bytes of age armor>", self.armored.len()),
            )
            .finish()
    }
}

/// Decodes armor (checking it is an age file) and re-encodes it in the canonical layout, so
/// stored values compare equal however they were wrapped. Returns (armor, binary).
fn normalize_armor(text: &str) -> Result<(String, Vec<u8>), SealError> {
    let text = text.trim();
    if !text.starts_with(ARMOR_BEGIN) {
        return Err(SealError::Format(format!(
            "the armor does not start with `{ARMOR_BEGIN}`"
        )));
    }
    let mut binary = Vec::new();
    ArmoredReader::new(text.as_bytes())
        .read_to_end(&mut binary)
        .map_err(|e| SealError::Format(format!("the age armor is damaged: {e}")))?;
    check_header(&binary)?;
    Ok((armor(&binary)?, binary))
}

/// Fails unless `binary` starts with a well-formed age header (no key needed to check that).
fn check_header(binary: &[u8]) -> Result<(), SealError> {
    if !binary.starts_with(BINARY_MAGIC) {
        return Err(SealError::Format("not an age file".to_owned()));
    }
    age::Decryptor::new_buffered(binary)
        .map(drop)
        .map_err(|e| SealError::Format(format!("not a valid age file: {e}")))
}

fn armor(binary: &[u8]) -> Result<String, SealError> {
    let io = |e: std::io::Error| SealError::Format(format!("cannot armor the age file: {e}"));
    let mut out = Vec::new();
    let mut writer = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io)?;
    writer.write_all(binary).map_err(io)?;
    writer.finish().map_err(io)?;
    String::from_utf8(out).map_err(|_| SealError::Format("the age armor is not text".to_owned()))
}
