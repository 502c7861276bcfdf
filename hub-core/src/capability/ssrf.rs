//! The SSRF guard: the addresses a hub never connects to unless the operator names them.
//!
//! A capability's host comes from a registration someone typed, and its DNS answers come from
//! whoever runs that zone; either could point the hub at itself, the host's private networks or
//! a cloud metadata service. Every address the client is about to connect to is classified here.
//!
//! Classes: `unspecified`, `loopback`, `private`, `cgnat`, `metadata`, `link-local`,
//! `ietf-protocol`, `documentation`, `benchmarking`, `multicast`, `broadcast`, `reserved`,
//! `unique-local`, `site-local`. IPv6 forms that carry an IPv4 address (IPv4-mapped,
//! IPv4-translated, the NAT64 well-known prefix, 6to4) take the class of that IPv4 address.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The link-local address cloud providers serve instance metadata (and credentials) on.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IPv6 instance metadata address.
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// The blocked class of `ip`, or `None` when it is a public unicast address.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// `Ok` when `ip` is public or an entry of `allow` contains it; else the blocked class.
///
/// The metadata address is only let through by an entry naming exactly it (a /32 or /128): an
/// allowlist opening 169.254.0.0/16 for some node-local service must not hand out the host's
/// cloud credentials as a side effect.
pub fn check(ip: IpAddr, allow: &[IpNet]) -> Result<(), &'static str> {
    let Some(class) = classify(ip) else {
        return Ok(());
    };
    // An IPv6 form of an IPv4 address reaches that IPv4 address, so either spelling may be listed.
    let embedded = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    let forms = [Some(ip), embedded];
    let allowed = allow.iter().any(|net| {
        forms.iter().flatten().any(|form| {
            if class == "metadata" {
                net.prefix_len() == net.max_prefix_len() && net.addr() == *form
            } else {
                net.contains(form)
            }
        })
    });
    if allowed {
        Ok(())
    } else {
        Err(class)
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip == Ipv4Addr::BROADCAST {
        return Some("broadcast");
    }
    if ip == METADATA_V4 {
        return Some("metadata");
    }
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (100, 64..=127, _) => "cgnat",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "ietf-protocol",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        // The deprecated 6to4 relay anycast: whoever answers there is not a capability.
        (192, 88, 99) => "reserved",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    if ip == METADATA_V6 {
        return Some("metadata");
    }
    let s = ip.segments();
    let class = match s[0] {
        // IPv4-compatible (deprecated) and everything else in ::/96 besides :: and ::1.
        0 if s[1..6] == [0, 0, 0, 0, 0] => "reserved",
        // Local-use NAT64 (RFC 8215): where it leads is up to the local translator.
        0x64 if s[1] == 0xff9b && s[2] == 1 => "reserved",
        // Discard-only (RFC 6666).
        0x100 if s[1..4] == [0, 0, 0] => "reserved",
        0x2001 if s[1] == 2 && s[2] == 0 => "benchmarking",
        // IETF protocol assignments, Teredo among them.
        0x2001 if s[1] <= 0x01ff => "ietf-protocol",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] <= 0x0fff => "documentation",
        0xfc00..=0xfdff => "unique-local",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        // Outside 2000::/3 nothing is assigned for global unicast.
        0x2000..=0x3fff => return None,
        _ => "reserved",
    };
    Some(class)
}

/// The IPv4 address an IPv6 address carries in the forms that deliver to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 well-known prefix
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> Option<&'static str> {
        classify(IpAddr::V4(text.parse().unwrap()))
    }
    fn v6(text: &str) -> Option<&'static str> {
        classify(IpAddr::V6(text.parse().unwrap()))
    }
    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn every_ipv4_class_and_its_edges() {
        let cases: &[(&str, Option<&str>)] = &[
            ("0.0.0.0", Some("unspecified")),
            ("0.255.255.255", Some("unspecified")),
            ("1.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some("private")),
            ("10.255.255.255", Some("private")),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some("cgnat")),
            ("100.127.255.255", Some("cgnat")),
            ("100.128.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.255", Some("loopback")),
            ("128.0.0.0", None),
            ("169.253.255.255", None),
            ("169.254.0.0", Some("link-local")),
            ("169.254.169.253", Some("link-local")),
            ("169.254.169.254", Some("metadata")),
            ("169.254.169.255", Some("link-local")),
            ("169.254.255.255", Some("link-local")),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.0", None),
            ("191.255.255.255", None),
            ("192.0.0.0", Some("ietf-protocol")),
            ("192.0.0.255", Some("ietf-protocol")),
            ("192.0.1.0", None),
            ("192.0.2.0", Some("documentation")),
            ("192.0.2.255", Some("documentation")),
            ("192.0.3.0", None),
            ("192.88.98.255", None),
            ("192.88.99.1", Some("reserved")),
            ("192.88.100.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some("private")),
            ("192.168.255.255", Some("private")),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("198.20.0.0", None),
            ("198.51.99.255", None),
            ("198.51.100.7", Some("documentation")),
            ("198.51.101.0", None),
            ("203.0.112.255", None),
            ("203.0.113.9", Some("documentation")),
            ("203.0.114.0", None),
            ("223.255.255.255", None),
            ("224.0.0.0", Some("multicast")),
            ("239.255.255.255", Some("multicast")),
            ("240.0.0.0", Some("reserved")),
            ("255.255.255.254", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
        ];
        for (addr, class) in cases {
            assert_eq!(v4(addr), *class, "{addr}");
        }
    }

    #[test]
    fn every_ipv6_class_and_its_edges() {
        let cases: &[(&str, Option<&str>)] = &[
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::2", Some("reserved")),
            ("::a00:1", Some("reserved")),
            ("64:ff9b:1::1", Some("reserved")),
            ("100::1", Some("reserved")),
            ("100:0:0:1::1", Some("reserved")),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("reserved")),
            ("2000::", None),
            ("2001::1", Some("ietf-protocol")),
            ("2001:1ff:ffff::1", Some("ietf-protocol")),
            ("2001:200::1", None),
            ("2001:2::1", Some("benchmarking")),
            ("2001:db7:ffff::1", None),
            ("2001:db8::1", Some("documentation")),
            (
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("documentation"),
            ),
            ("2001:db9::", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::1", None),
            ("3ffe:ffff::1", None),
            ("3fff::1", Some("documentation")),
            ("3fff:fff:ffff::1", Some("documentation")),
            ("3fff:1000::1", None),
            ("4000::1", Some("reserved")),
            ("fbff:ffff::1", Some("reserved")),
            ("fc00::", Some("unique-local")),
            ("fc00::1", Some("unique-local")),
            (
                "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("unique-local"),
            ),
            ("fd00:ec2::254", Some("metadata")),
            ("fd00:ec2::253", Some("unique-local")),
            ("fe7f:ffff::1", Some("reserved")),
            ("fe80::", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("febf:ffff::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff00::", Some("multicast")),
            ("ff02::1", Some("multicast")),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("multicast")),
        ];
        for (addr, class) in cases {
            assert_eq!(v6(addr), *class, "{addr}");
        }
    }

    #[test]
    fn ipv6_forms_of_an_ipv4_address_take_its_class() {
        let cases: &[(&str, Option<&str>)] = &[
            // IPv4-mapped
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.1.2.3", Some("private")),
            ("::ffff:169.254.169.254", Some("metadata")),
            ("::ffff:100.64.0.1", Some("cgnat")),
            ("::ffff:0.0.0.0", Some("unspecified")),
            ("::ffff:255.255.255.255", Some("broadcast")),
            ("::ffff:224.0.0.1", Some("multicast")),
            ("::ffff:192.0.2.1", Some("documentation")),
            ("::ffff:8.8.8.8", None),
            // IPv4-translated
            ("::ffff:0:127.0.0.1", Some("loopback")),
            ("::ffff:0:8.8.8.8", None),
            // NAT64 well-known prefix
            ("64:ff9b::7f00:1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("metadata")),
            ("64:ff9b::c0a8:101", Some("private")),
            ("64:ff9b::808:808", None),
            // Just outside the NAT64 /96: neither prefix nor embedding applies.
            ("64:ff9b:0:0:0:1:7f00:1", Some("reserved")),
            // 6to4
            ("2002:7f00:1::1", Some("loopback")),
            ("2002:a9fe:a9fe::", Some("metadata")),
            ("2002:808:808::1", None),
        ];
        for (addr, class) in cases {
            assert_eq!(v6(addr), *class, "{addr}");
        }
    }

    #[test]
    fn the_allowlist_lets_named_addresses_through() {
        let allow = nets(&["127.0.0.1/32", "10.20.0.0/16", "fd12:3456::/32"]);
        let ip = |t: &str| -> IpAddr { t.parse().unwrap() };
        assert_eq!(check(ip("127.0.0.1"), &allow), Ok(()));
        assert_eq!(check(ip("127.0.0.2"), &allow), Err("loopback"));
        assert_eq!(check(ip("::1"), &allow), Err("loopback"));
        assert_eq!(check(ip("10.20.255.255"), &allow), Ok(()));
        assert_eq!(check(ip("10.21.0.0"), &allow), Err("private"));
        assert_eq!(check(ip("fd12:3456::9"), &allow), Ok(()));
        assert_eq!(check(ip("fd12:3457::9"), &allow), Err("unique-local"));
        // IPv6 spellings of an allowed IPv4 address are allowed with it.
        assert_eq!(check(ip("::ffff:127.0.0.1"), &allow), Ok(()));
        assert_eq!(check(ip("64:ff9b::a14:101"), &allow), Ok(()));
        assert_eq!(check(ip("64:ff9b::a15:101"), &allow), Err("private"));
        // Public addresses need no entry.
        assert_eq!(check(ip("8.8.8.8"), &[]), Ok(()));
        assert_eq!(check(ip("2606:4700::1"), &[]), Ok(()));
        assert_eq!(check(ip("10.20.0.1"), &[]), Err("private"));
    }

    #[test]
    fn the_metadata_address_needs_an_entry_naming_exactly_it() {
        let ip = |t: &str| -> IpAddr { t.parse().unwrap() };
        let wide = nets(&["169.254.0.0/16", "fd00::/8"]);
        assert_eq!(check(ip("169.254.1.1"), &wide), Ok(()));
        assert_eq!(check(ip("169.254.169.254"), &wide), Err("metadata"));
        assert_eq!(check(ip("::ffff:169.254.169.254"), &wide), Err("metadata"));
        assert_eq!(check(ip("fd00:ec2::254"), &wide), Err("metadata"));
        let exact = nets(&["169.254.169.254/32", "fd00:ec2::254/128"]);
        assert_eq!(check(ip("169.254.169.254"), &exact), Ok(()));
        assert_eq!(check(ip("::ffff:169.254.169.254"), &exact), Ok(()));
        assert_eq!(check(ip("fd00:ec2::254"), &exact), Ok(()));
        assert_eq!(check(ip("169.254.169.253"), &exact), Err("link-local"));
    }
}
