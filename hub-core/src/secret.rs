//! Secrets read from files: `*_file` config keys or systemd credentials.
//!
//! A secret never lives in the TOML file itself; it is a path, or a credential name looked up in
//! `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`, which is how agenix secrets reach a unit).

use secrecy::SecretString;
use std::path::{Path, PathBuf};

/// Where a secret was found, for error messages that never include the value.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// An explicit `*_file` path.
    File(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "file {}", p.display()),
            SecretSource::Credential(p) => write!(f, "credential {}", p.display()),
        }
    }
}

/// Failure to read a secret; the message names the source, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret from {source_name}: {error}")]
    Unreadable {
        source_name: SecretSource,
        error: std::io::Error,
    },
    #[error("secret in {0} is empty")]
    Empty(SecretSource),
    #[error("secret in {source_name} is too short ({len} characters, at least {min} required)")]
    TooShort {
        source_name: SecretSource,
        len: usize,
        min: usize,
    },
}

/// Resolves where a secret lives: the explicit file wins, else the systemd credential if present.
pub fn locate(explicit: Option<&Path>, credential_name: &str) -> Option<SecretSource> {
    if let Some(p) = explicit {
        return Some(SecretSource::File(p.to_path_buf()));
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = Path::new(&dir).join(credential_name);
    path.exists().then_some(SecretSource::Credential(path))
}

/// Reads a secret, trimming one trailing newline-ish whitespace run, and enforces a minimum length.
pub fn read(source: &SecretSource, min_len: usize) -> Result<SecretString, SecretError> {
    let path = match source {
        SecretSource::File(p) | SecretSource::Credential(p) => p,
    };
    let raw = std::fs::read_to_string(path).map_err(|error| SecretError::Unreadable {
        source_name: source.clone(),
        error,
    })?;
    let value = raw.trim();
    if value.is_empty() {
        return Err(SecretError::Empty(source.clone()));
    }
    let len = value.chars().count();
    if len < min_len {
        return Err(SecretError::TooShort {
            source_name: source.clone(),
            len,
            min: min_len,
        });
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn reads_and_trims_and_never_prints_the_value() {
        let dir = std::env::temp_dir().join(format!("hub-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        std::fs::write(&path, "correct-horse-battery-staple-0123456789\n").unwrap();
        let src = SecretSource::File(path.clone());
        let s = read(&src, 32).unwrap();
        assert_eq!(s.expose_secret(), "correct-horse-battery-staple-0123456789");
        assert!(!format!("{s:?}").contains("horse"));

        std::fs::write(&path, "short").unwrap();
        let err = read(&src, 32).unwrap_err().to_string();
        assert!(err.contains("too short"), "{err}");
        assert!(!err.contains("short\""), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_names_the_path() {
        let src = SecretSource::File(PathBuf::from("/nonexistent/hub/secret"));
        let err = read(&src, 1).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/hub/secret"), "{err}");
    }
}
