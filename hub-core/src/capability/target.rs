//! Where a call goes: a registration's base URL plus a path, never anywhere else.

use super::CapabilityError;
use url::{Host, Url};

/// `scheme://host[:port]` of a URL, for errors and logs: never its user info, path or query.
pub(super) fn origin_text(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// True when both URLs name the same scheme, host and port.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Refuses a base URL the client must not call: not https, no host, user info (it would be
/// sent as Basic credentials), a query or a fragment.
pub fn check_base(base: &Url) -> Result<(), CapabilityError> {
    if base.scheme() != "https" {
        return Err(CapabilityError::NotHttps(origin_text(base)));
    }
    if !matches!(
        base.host(),
        Some(Host::Domain(_) | Host::Ipv4(_) | Host::Ipv6(_))
    ) {
        return Err(CapabilityError::InvalidRequest(
            "the registration's base URL has no host".to_owned(),
        ));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(CapabilityError::InvalidRequest(
            "the registration's base URL carries user info; credentials belong in the registration's auth".to_owned(),
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(CapabilityError::InvalidRequest(
            "the registration's base URL has a query or fragment".to_owned(),
        ));
    }
    Ok(())
}

/// The URL for `path` under `base`: the path is appended to the base path (`/api/v1` + `pods`
/// or `/pods` gives `/api/v1/pods`), a query after `?` is kept. Anything that would leave the
/// registration is refused: an absolute URL or `//host` (another host, or plain http), a
/// backslash, an encoded slash or backslash, `..` climbing above the base path, a fragment.
pub fn request_url(base: &Url, path: &str) -> Result<Url, CapabilityError> {
    check_base(base)?;
    // Read as a URL reference first: whatever would take the request to another origin is
    // reported as such, so the caller learns it asked for the wrong host, not for a bad path.
    let resolved = base
        .join(path)
        .map_err(|e| CapabilityError::InvalidRequest(format!("the path is not usable: {e}")))?;
    if resolved.scheme() != "https" {
        return Err(CapabilityError::NotHttps(origin_text(&resolved)));
    }
    if !same_origin(&resolved, base) {
        return Err(CapabilityError::HostNotRegistered(
            resolved.host_str().unwrap_or("").to_owned(),
        ));
    }
    let (raw_path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if path.contains('#') {
        return Err(CapabilityError::InvalidRequest(
            "the path has a fragment, which is never sent".to_owned(),
        ));
    }
    if Url::parse(raw_path).is_ok() || raw_path.starts_with("//") {
        return Err(CapabilityError::InvalidRequest(
            "pass a path under the capability's base URL, not a URL".to_owned(),
        ));
    }
    let lowered = raw_path.to_ascii_lowercase();
    // Servers that decode %2F or %5C before routing would see segments this check never saw.
    if raw_path.contains('\\') || lowered.contains("%2f") || lowered.contains("%5c") {
        return Err(CapabilityError::InvalidRequest(
            "the path has a backslash or an encoded slash".to_owned(),
        ));
    }

    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{}", raw_path.trim_start_matches('/')));
    url.set_query(query);
    // `set_path` resolves `.` and `..` (also as %2e); what is left must still be under the base.
    let under_base = base_path.is_empty()
        || url.path() == base_path
        || url
            .path()
            .strip_prefix(base_path)
            .is_some_and(|rest| rest.starts_with('/'));
    if !under_base {
        return Err(CapabilityError::InvalidRequest(
            "the path climbs above the capability's base path".to_owned(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn joined(b: &str, path: &str) -> String {
        request_url(&base(b), path).unwrap().to_string()
    }

    #[test]
    fn paths_are_appended_to_the_base_path() {
        let b = "https://cluster.example:8443/api/v1";
        assert_eq!(
            joined(b, "pods"),
            "https://cluster.example:8443/api/v1/pods"
        );
        assert_eq!(
            joined(b, "/pods"),
            "https://cluster.example:8443/api/v1/pods"
        );
        assert_eq!(
            joined(&format!("{b}/"), "/pods?ns=a&x=https://y"),
            "https://cluster.example:8443/api/v1/pods?ns=a&x=https://y"
        );
        assert_eq!(joined(b, ""), "https://cluster.example:8443/api/v1/");
        assert_eq!(
            joined(b, "a/./b/../c"),
            "https://cluster.example:8443/api/v1/a/c"
        );
        assert_eq!(
            joined("https://cluster.example", "/healthz"),
            "https://cluster.example/healthz"
        );
        assert_eq!(
            joined(b, "pods/a b"),
            "https://cluster.example:8443/api/v1/pods/a%20b"
        );
    }

    #[test]
    fn a_path_naming_another_host_or_scheme_is_refused() {
        let b = base("https://cluster.example/api/v1/");
        for path in [
            "https://evil.example/x",
            "//evil.example/x",
            "\\\\evil.example/x",
            "/\\evil.example/x",
            "https://cluster.example:444/x",
        ] {
            assert!(
                matches!(
                    request_url(&b, path),
                    Err(CapabilityError::HostNotRegistered(_))
                ),
                "{path}: {:?}",
                request_url(&b, path)
            );
        }
        for path in ["http://cluster.example/api/v1/x", "file:///etc/passwd"] {
            assert!(
                matches!(request_url(&b, path), Err(CapabilityError::NotHttps(_))),
                "{path}: {:?}",
                request_url(&b, path)
            );
        }
    }

    #[test]
    fn a_path_escaping_the_base_path_is_refused() {
        let b = base("https://cluster.example/api/v1/");
        for path in [
            "../v2/secrets",
            "/../../admin",
            "pods/../../../admin",
            "%2e%2e/v2",
            ".%2E/v2",
            "..%2fadmin",
            "pods%5c..",
            "https://cluster.example/api/v1/pods",
            "//cluster.example/api/v1/pods",
            "pods#frag",
        ] {
            assert!(
                matches!(
                    request_url(&b, path),
                    Err(CapabilityError::InvalidRequest(_))
                ),
                "{path}: {:?}",
                request_url(&b, path)
            );
        }
        // Climbing inside the base path is fine.
        assert_eq!(
            joined("https://cluster.example/api/v1/", "pods/../nodes"),
            "https://cluster.example/api/v1/nodes"
        );
        // A sibling that merely starts with the base path's name is outside it.
        assert!(request_url(&base("https://c.example/api/v1"), "../v1x").is_err());
    }

    #[test]
    fn a_base_url_that_must_not_be_called_is_refused() {
        assert!(matches!(
            request_url(&base("http://cluster.example/"), "x"),
            Err(CapabilityError::NotHttps(o)) if o == "http://cluster.example"
        ));
        let err = request_url(&base("https://user:pw@cluster.example/"), "x").unwrap_err();
        assert!(matches!(err, CapabilityError::InvalidRequest(_)));
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(request_url(&base("https://cluster.example/?a=b"), "x").is_err());
    }
}
