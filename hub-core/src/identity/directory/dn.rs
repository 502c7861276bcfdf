//! Distinguished names (RFC 4514) as far as the directory client needs them: checking configured
//! DNs, reading the `uid` out of a group's `member` values and the `cn` out of a user's `memberOf`.
//!
//! Multi-valued RDNs (`a=1+b=2`) and `#`-prefixed BER values are refused: LLDAP never produces
//! them, and a DN this parser misreads must not be mistaken for a user or a group.

/// One component of a DN: the attribute type, lowercased, and the unescaped value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rdn {
    pub(crate) attr: String,
    pub(crate) value: String,
}

/// A parsed DN, most specific component first, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dn(pub(crate) Vec<Rdn>);

impl Dn {
    /// Parses a DN; the error says what is wrong without repeating the whole input.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("is empty".to_owned());
        }
        let mut rdns = Vec::new();
        let mut rest = text;
        loop {
            let (rdn, tail) = parse_rdn(rest)?;
            rdns.push(rdn);
            match tail {
                Some(t) => rest = t,
                None => break,
            }
        }
        Ok(Dn(rdns))
    }

    /// True when `self` is exactly one RDN of type `attr` directly below `parent`, comparing
    /// attribute types and values case-insensitively (LLDAP's and slapd's matching rules for
    /// uid, cn, ou and dc all ignore case).
    pub(crate) fn child_value_of<'a>(&'a self, attr: &str, parent: &Dn) -> Option<&'a str> {
        let (first, rest) = self.0.split_first()?;
        if first.attr != attr || rest.len() != parent.0.len() {
            return None;
        }
        let same = rest
            .iter()
            .zip(&parent.0)
            .all(|(a, b)| a.attr == b.attr && a.value.to_lowercase() == b.value.to_lowercase());
        same.then_some(first.value.as_str())
    }
}

/// Parses one `attr=value` and returns the remainder after its separating comma, if any.
fn parse_rdn(input: &str) -> Result<(Rdn, Option<&str>), String> {
    let eq = input
        .find('=')
        .ok_or_else(|| format!("component `{}` has no `=`", input.trim()))?;
    let attr = input[..eq].trim();
    if !is_attribute_type(attr) {
        return Err(format!("`{attr}` is not an attribute type"));
    }
    let mut value = Vec::new();
    let mut chars = input[eq + 1..].char_indices();
    let value_start = eq + 1;
    let mut tail = None;
    // Unescaped spaces at either end are padding, not data (RFC 4514 §3); `\ ` is data.
    let mut leading = true;
    let mut trailing_spaces = 0;
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' if leading => continue,
            '#' if leading => return Err(format!("`{attr}` has a BER-encoded value")),
            ',' => {
                tail = Some(&input[value_start + i + 1..]);
                break;
            }
            '+' => return Err(format!("`{attr}` is a multi-valued RDN")),
            '"' | ';' | '<' | '>' | '\0' => {
                return Err(format!("`{attr}` has an unescaped `{c}` in its value"))
            }
            '\\' => {
                leading = false;
                trailing_spaces = 0;
                let (_, next) = chars
                    .next()
                    .ok_or_else(|| format!("`{attr}` ends with a lone backslash"))?;
                if next.is_ascii_hexdigit() {
                    let (_, low) = chars
                        .next()
                        .filter(|(_, c)| c.is_ascii_hexdigit())
                        .ok_or_else(|| format!("`{attr}` has a broken hex escape"))?;
                    value.push(hex_value(next) * 16 + hex_value(low));
                } else if "\"+,;<>\\ #=".contains(next) {
                    push_char(&mut value, next);
                } else {
                    return Err(format!("`{attr}` escapes `{next}`, which needs no escape"));
                }
            }
            c => {
                leading = false;
                trailing_spaces = if c == ' ' { trailing_spaces + 1 } else { 0 };
                push_char(&mut value, c);
            }
        }
    }
    value.truncate(value.len().saturating_sub(trailing_spaces));
    let value =
        String::from_utf8(value).map_err(|_| format!("`{attr}` has a value that is not UTF-8"))?;
    if value.is_empty() {
        return Err(format!("`{attr}` has an empty value"));
    }
    if tail.is_some_and(|t| t.trim().is_empty()) {
        return Err("ends with a separator".to_owned());
    }
    Ok((
        Rdn {
            attr: attr.to_ascii_lowercase(),
            value,
        },
        tail,
    ))
}

fn push_char(value: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn hex_value(c: char) -> u8 {
    c.to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
        .unwrap_or(0)
}

/// A descriptor (`uid`, `entryUUID`) or a numeric OID (`0.9.2342.19200300.100.1.1`).
fn is_attribute_type(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => s
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit())),
        _ => false,
    }
}

/// A user name break-glass login accepts: 1–64 of lowercase letters, digits, `.`, `_`, `-`.
/// Nothing that could change a DN's or a filter's meaning gets through.
pub(crate) fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdn(attr: &str, value: &str) -> Rdn {
        Rdn {
            attr: attr.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn parses_lldap_dns_and_unescapes_values() {
        let dn = Dn::parse("uid=alice,ou=people,dc=example,dc=com").unwrap();
        assert_eq!(dn.0.len(), 4);
        assert_eq!(dn.0.first(), Some(&rdn("uid", "alice")));

        let dn = Dn::parse(r"CN=Smith\, John , OU=People,dc=x").unwrap();
        assert_eq!(dn.0.first(), Some(&rdn("cn", "Smith, John")));
        assert_eq!(dn.0[1], rdn("ou", "People"));

        let dn = Dn::parse(r"cn=a\2Cb\5c,dc=x").unwrap();
        assert_eq!(dn.0.first(), Some(&rdn("cn", r"a,b\")));

        let dn = Dn::parse(r"cn=trail\ ,dc=x").unwrap();
        assert_eq!(dn.0.first(), Some(&rdn("cn", "trail ")));

        let dn = Dn::parse("0.9.2342.19200300.100.1.1=bob,dc=x").unwrap();
        assert_eq!(dn.0.first(), Some(&rdn("0.9.2342.19200300.100.1.1", "bob")));
    }

    #[test]
    fn refuses_malformed_dns() {
        for bad in [
            "",
            "   ",
            "dc=example,",
            "dc=example,,dc=com",
            "example.com",
            "dc=",
            "uid=a+cn=b,dc=x",
            "cn=#04024869,dc=x",
            "cn=a\\",
            "cn=a\\zz,dc=x",
            "1cn=a",
            "cn=a;dc=x",
            "c n=a",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn child_values_match_their_parent_ignoring_case() {
        let people = Dn::parse("ou=people,dc=example,dc=com").unwrap();
        let member = Dn::parse("uid=alice,OU=People,DC=Example,dc=com").unwrap();
        assert_eq!(member.child_value_of("uid", &people), Some("alice"));
        assert_eq!(member.child_value_of("cn", &people), None);

        let elsewhere = Dn::parse("uid=alice,ou=robots,dc=example,dc=com").unwrap();
        assert_eq!(elsewhere.child_value_of("uid", &people), None);
        let deeper = Dn::parse("uid=alice,ou=x,ou=people,dc=example,dc=com").unwrap();
        assert_eq!(deeper.child_value_of("uid", &people), None);
    }

    #[test]
    fn user_names_are_checked_strictly() {
        for good in ["alice", "bob.smith", "ci_bot-2", "a"] {
            assert!(is_valid_uid(good), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "admin,ou=people",
            "*",
            "a)(uid=*",
            "a b",
            "ä",
            "alice\0",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_uid(bad), "{bad:?}");
        }
    }
}
