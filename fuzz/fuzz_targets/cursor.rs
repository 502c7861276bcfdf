//! Pagination cursors: `decode(encode(x)) == x` for every kind and key a listing can use, a
//! cursor never decodes for another listing, and arbitrary text never panics the decoder.
//!
//! Input: `KIND\nOTHER_KIND\nKEY\nRAW`, where RAW (the rest, newlines included) is also handed
//! to the decoders as a cursor someone pasted. Missing lines are empty.
#![no_main]

use hub_core::http::cursor::{decode, decode_seq, decode_uuid, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let kind = parts.next().unwrap_or("");
    let other_kind = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("");
    let raw = parts.next().unwrap_or("");

    // Arbitrary text is refused or decoded, never a panic; whatever decodes re-encodes to an
    // equivalent cursor.
    for (k, cursor) in [(kind, raw), (kind, key), (other_kind, raw)] {
        if let Ok(decoded) = decode(k, cursor) {
            assert!(!decoded.is_empty());
            assert_eq!(
                decode(k, &encode(k, &decoded)).ok().as_deref(),
                Some(decoded.as_str())
            );
        }
        if let Ok(n) = decode_seq(k, cursor) {
            assert!(n >= 0, "a negative sequence {n} decoded");
        }
        let _ = decode_uuid(k, cursor);
    }

    // Listing kinds are constants without `|`; keys are anything non-empty.
    if kind.contains('|') {
        return;
    }
    let cursor = encode(kind, key);
    assert!(
        cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a cursor must be URL-safe as it stands: {cursor:?}"
    );
    match decode(kind, &cursor) {
        Ok(k) => assert_eq!(k, key, "round trip changed the key"),
        Err(_) => assert!(key.is_empty(), "a cursor of a non-empty key was refused"),
    }
    if other_kind != kind {
        assert!(
            decode(other_kind, &cursor).is_err(),
            "a {kind:?} cursor decoded as {other_kind:?}"
        );
    }
    if let Ok(n) = key.parse::<i64>() {
        let c = encode(kind, &n.to_string());
        match decode_seq(kind, &c) {
            Ok(m) => assert_eq!(m, n),
            Err(_) => assert!(n < 0, "sequence {n} refused"),
        }
    }
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(data.iter().rev()) {
        *b = *d;
    }
    let id = uuid::Uuid::from_bytes(bytes);
    assert_eq!(
        decode_uuid(kind, &encode(kind, &id.to_string())).ok(),
        Some(id)
    );
    assert_eq!(
        decode_uuid(
            kind,
            &encode(kind, &id.hyphenated().to_string().to_uppercase())
        )
        .ok(),
        Some(id)
    );
});
