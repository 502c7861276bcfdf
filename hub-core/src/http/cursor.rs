//! Opaque keyset-pagination cursors. A cursor names its listing, so one listing's cursor handed
//! to another is refused instead of silently paging the wrong table.

use super::problem::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Encodes a cursor for listing `kind` positioned after `key`.
pub fn encode(kind: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1|{kind}|{key}"))
}

/// Decodes a cursor, requiring it to belong to listing `kind`.
pub fn decode(kind: &str, cursor: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "invalid cursor `{}`: pass the `next` value of a previous {kind} page unchanged",
            cursor.chars().take(80).collect::<String>()
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(k), Some(key)) if k == kind && !key.is_empty() => Ok(key.to_owned()),
        _ => Err(bad()),
    }
}

/// Decodes a cursor whose key is a sequence number.
pub fn decode_seq(kind: &str, cursor: &str) -> Result<i64, ApiError> {
    let key = decode(kind, cursor)?;
    key.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid cursor for {kind}")))
}

/// Decodes a cursor whose key is a UUID.
pub fn decode_uuid(kind: &str, cursor: &str) -> Result<uuid::Uuid, ApiError> {
    let key = decode(kind, cursor)?;
    uuid::Uuid::parse_str(&key)
        .map_err(|_| ApiError::BadRequest(format!("invalid cursor for {kind}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let c = encode("events", "42");
        assert_eq!(decode_seq("events", &c).unwrap(), 42);
        assert!(decode_seq("decisions", &c).is_err());
        assert!(decode("events", "!!!").is_err());
        assert!(decode("events", &URL_SAFE_NO_PAD.encode("v2|events|1")).is_err());
        assert!(decode_seq("events", &encode("events", "-5")).is_err());
        assert!(decode_uuid("events", &encode("events", "nope")).is_err());
    }
}
