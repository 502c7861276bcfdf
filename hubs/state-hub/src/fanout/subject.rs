//! Subjects and stream names: `<prefix>.<noun>.<verb>`, never a wildcard, never a stray token.

/// A name or subject the fan-out cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Too long.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// A character outside the allowed set.
    #[error("`{0}` may only hold letters, digits, `_` and `-`{1}")]
    Invalid(String, &'static str),
}

/// Stream names: what the NATS CLI and the server accept everywhere (no `.`, wildcards, spaces or
/// path separators).
pub fn check_stream_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 255 {
        return Err(NameError::TooLong(255));
    }
    if !name.bytes().all(plain) {
        return Err(NameError::Invalid(name.to_owned(), ""));
    }
    Ok(())
}

/// A subject prefix: one or more plain tokens joined by `.`, e.g. `org.statehub`.
pub fn check_prefix(prefix: &str) -> Result<(), NameError> {
    if prefix.is_empty() {
        return Err(NameError::Empty);
    }
    if prefix.len() > 200 {
        return Err(NameError::TooLong(200));
    }
    if prefix
        .split('.')
        .any(|t| t.is_empty() || !t.bytes().all(plain))
    {
        return Err(NameError::Invalid(
            prefix.to_owned(),
            " in each `.`-separated token (no wildcards, no empty tokens)",
        ));
    }
    Ok(())
}

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `%HH` for every byte outside the plain set, so a token never holds `.`, `*`, `>` or space.
/// `%` itself is escaped, so two different tokens never map to one subject token.
fn escape_token(token: &str) -> String {
    if token.is_empty() {
        // PostgreSQL text never holds NUL, so no real token escapes to this.
        return "%00".to_owned();
    }
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The subject of an event: `<prefix>.<noun>.<verb>`. The journal's check constraint already
/// keeps event types to `[a-z][a-z0-9_]*` on both sides of one dot; anything else is escaped
/// rather than trusted, so the subject has exactly two tokens after the prefix.
pub fn for_event(prefix: &str, event_type: &str) -> String {
    let (noun, verb) = event_type.split_once('.').unwrap_or((event_type, ""));
    format!("{prefix}.{}.{}", escape_token(noun), escape_token(verb))
}

/// The filter that captures every event subject under `prefix`.
pub fn stream_filter(prefix: &str) -> String {
    format!("{prefix}.>")
}

/// Whether a stream subject filter (`a.*.c`, `a.>`, `>`) captures every subject `<prefix>.>` does.
pub fn covers(filter: &str, prefix: &str) -> bool {
    let mut want = prefix.split('.').chain(std::iter::once(">"));
    for token in filter.split('.') {
        let Some(w) = want.next() else {
            return false;
        };
        match token {
            ">" => return true,
            "*" if w != ">" => {}
            t if t == w && w != ">" => {}
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_map_to_two_plain_tokens() {
        assert_eq!(
            for_event("org.statehub", "decision.resolved"),
            "org.statehub.decision.resolved"
        );
        assert_eq!(for_event("p", "a.b.c"), "p.a.b%2Ec");
        assert_eq!(for_event("p", "a*.>"), "p.a%2A.%3E");
        assert_eq!(for_event("p", "no_dot"), "p.no_dot.%00");
        assert_eq!(for_event("p", "a b.%"), "p.a%20b.%25");
        for t in ["a.b.c", "a*.>", "x y.z", "..", "%2E.x"] {
            let s = for_event("p", t);
            assert_eq!(s.split('.').count(), 3, "{t} -> {s}");
            assert!(!s.contains(['*', '>', ' ']), "{t} -> {s}");
        }
    }

    #[test]
    fn names_refuse_wildcards_and_separators() {
        assert!(check_stream_name("STATEHUB").is_ok());
        assert!(check_stream_name("STATE.HUB").is_err());
        assert!(check_stream_name("").is_err());
        assert!(check_prefix("org.statehub").is_ok());
        for bad in ["org.*", "org.>", "org..x", ".org", "org.", "a b"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_cover_the_prefix_only_when_they_capture_all_of_it() {
        assert!(covers("org.statehub.>", "org.statehub"));
        assert!(covers("org.>", "org.statehub"));
        assert!(covers(">", "org.statehub"));
        assert!(covers("org.*.>", "org.statehub"));
        assert!(!covers("org.statehub.*.*", "org.statehub"));
        assert!(!covers("org.statehub", "org.statehub"));
        assert!(!covers("org.other.>", "org.statehub"));
        assert!(!covers("org.statehub.decision.>", "org.statehub"));
    }
}
