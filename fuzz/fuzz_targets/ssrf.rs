//! The SSRF guard and the URL check.
//!
//! - `classify`, `check` and `request_url` never panic;
//! - every IPv6 form that delivers to an IPv4 address (IPv4-mapped, IPv4-translated, NAT64
//!   well-known prefix, 6to4 with any subnet/interface bits) takes that address's class, so a
//!   blocked IPv4 address is blocked in all its spellings;
//! - `check` lets a blocked address through only when an allowlist entry contains it (or the
//!   IPv4 address it carries), and the metadata address only for an entry naming exactly it;
//! - a URL `request_url` accepts is https, on the registration's origin, without user info or
//!   fragment, and under the base path.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hub_core::capability::fuzzing::{check_base, request_url};
use hub_core::capability::ssrf::{check, classify};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Arbitrary, Debug)]
enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
    /// An IPv4 address spelled as IPv6: 0 mapped, 1 translated, 2 NAT64, 3 6to4.
    Embedded {
        v4: [u8; 4],
        form: u8,
        rest: [u8; 10],
    },
}

#[derive(Arbitrary, Debug)]
struct Entry {
    addr: Addr,
    prefix: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    addr: Addr,
    allow: Vec<Entry>,
    base: String,
    path: String,
}

/// The input in its text form (the seed corpus's): `ADDRESS\nALLOW,LIST\nBASE_URL\nPATH`.
/// Anything whose first line is not an address is read as an [`Input`] by `arbitrary`.
fn parse(data: &[u8]) -> Option<(IpAddr, Vec<IpNet>, String, String)> {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut lines = text.splitn(4, '\n');
        if let Some(addr) = lines.next().and_then(|l| l.trim().parse::<IpAddr>().ok()) {
            let allow = lines
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|n| n.trim().parse::<IpNet>().ok())
                .collect();
            let base = lines.next().unwrap_or("").to_owned();
            let path = lines.next().unwrap_or("").to_owned();
            return Some((addr, allow, base, path));
        }
    }
    let input = Input::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    let allow = input
        .allow
        .iter()
        .filter_map(|e| {
            let a = ip(&e.addr);
            let max = if a.is_ipv4() { 32 } else { 128 };
            IpNet::new(a, e.prefix % (max + 1)).ok()
        })
        .collect();
    Some((ip(&input.addr), allow, input.base, input.path))
}

fn embed(v4: Ipv4Addr, form: u8, rest: [u8; 10]) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    let hi = u16::from_be_bytes([a, b]);
    let lo = u16::from_be_bytes([c, d]);
    let r = |i: usize| u16::from_be_bytes([rest[i], rest[i + 1]]);
    match form % 4 {
        0 => Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, hi, lo),
        1 => Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
        2 => Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
        _ => Ipv6Addr::new(0x2002, hi, lo, r(0), r(2), r(4), r(6), r(8)),
    }
}

fn ip(addr: &Addr) -> IpAddr {
    match addr {
        Addr::V4(o) => IpAddr::V4(Ipv4Addr::from(*o)),
        Addr::V6(o) => IpAddr::V6(Ipv6Addr::from(*o)),
        Addr::Embedded { v4, form, rest } => IpAddr::V6(embed(Ipv4Addr::from(*v4), *form, *rest)),
    }
}

/// The IPv4 address an IPv6 address delivers to, computed independently of hub-core.
fn carried_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((addr, allow, base_text, path)) = parse(data) else {
        return;
    };
    let class = classify(addr);

    // Every IPv6 spelling of an IPv4 address has that address's class.
    if let IpAddr::V6(v6) = addr {
        if let Some(v4) = carried_v4(v6) {
            assert_eq!(class, classify(IpAddr::V4(v4)), "{v6} carries {v4}");
        }
    }
    if let IpAddr::V4(v4) = addr {
        let v4_class = classify(addr);
        for form in 0..4u8 {
            for rest in [[0u8; 10], [0xff; 10]] {
                let v6 = embed(v4, form, rest);
                assert_eq!(classify(IpAddr::V6(v6)), v4_class, "{v6} carries {v4}");
                if v4_class.is_some() {
                    assert!(
                        check(IpAddr::V6(v6), &[]).is_err(),
                        "{v6} ({v4}) let through"
                    );
                }
            }
        }
    }

    // Without an allowlist, check is exactly the classifier.
    assert_eq!(check(addr, &[]), class.map_or(Ok(()), Err));

    let verdict = check(addr, &allow);
    match class {
        None => assert_eq!(verdict, Ok(()), "a public address was refused"),
        Some(class) => {
            let carried = match addr {
                IpAddr::V6(v6) => carried_v4(v6).map(IpAddr::V4),
                IpAddr::V4(_) => None,
            };
            let forms: Vec<IpAddr> = [Some(addr), carried].into_iter().flatten().collect();
            let exact = allow
                .iter()
                .any(|n| n.prefix_len() == n.max_prefix_len() && forms.contains(&n.addr()));
            let contained = allow.iter().any(|n| forms.iter().any(|f| n.contains(f)));
            let expected = if class == "metadata" {
                exact
            } else {
                contained
            };
            assert_eq!(
                verdict.is_ok(),
                expected,
                "{addr} ({class}) with allowlist {allow:?}"
            );
            if verdict.is_err() {
                assert_eq!(verdict, Err(class));
            }
        }
    }

    // The URL check.
    let Ok(base) = url::Url::parse(&base_text) else {
        return;
    };
    let base_ok = check_base(&base).is_ok();
    if let Ok(url) = request_url(&base, &path) {
        assert!(
            base_ok,
            "request_url accepted a base check_base refuses: {base}"
        );
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host(), base.host(), "{base} + {:?} left the host", path);
        assert_eq!(url.port_or_known_default(), base.port_or_known_default());
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(url.fragment().is_none());
        let base_path = base.path().trim_end_matches('/');
        assert!(
            url.path() == base_path
                || url
                    .path()
                    .strip_prefix(base_path)
                    .is_some_and(|rest| rest.starts_with('/')),
            "{base} + {:?} gave {url}, outside the base path",
            path
        );
        // What is sent is what was checked: re-parsing the URL changes nothing.
        assert_eq!(url::Url::parse(url.as_str()).ok().as_ref(), Some(&url));
    }
});
