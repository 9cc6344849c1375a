//! Which peer addresses the relay sends to and hears from. A relay on a public host must not
//! become a way into that host or its network: loopback, link-local, private and other
//! non-routable addresses are refused unless the operator allows them (a relay for a LAN,
//! or tests on loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether the relay may exchange datagrams with `ip`.
pub(crate) fn may_relay_to(ip: IpAddr, allow_private: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if never_relayed(ip) {
        return false;
    }
    allow_private || !private(ip)
}

/// Addresses no datagram of a peer's is ever sent to.
fn never_relayed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// Addresses that reach the relay's own host or a network behind it.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || shared_v4(v4)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local() || v4_in_v6(v6)
        }
    }
}

/// 100.64.0.0/10, the carrier-grade NAT space (RFC 6598), and 0.0.0.0/8 ("this network").
fn shared_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    (a == 100 && (64..128).contains(&b)) || a == 0
}

/// IPv4-compatible and NAT64 forms, which some stacks route to an IPv4 address.
fn v4_in_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn public_addresses_are_relayed_and_private_ones_only_when_allowed() {
        for public in [
            "198.51.100.7",
            "8.8.8.8",
            "2001:db8::1",
            "::ffff:203.0.113.9",
        ] {
            assert!(may_relay_to(ip(public), false), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.1.2.3",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!may_relay_to(ip(private), false), "{private}");
            assert!(may_relay_to(ip(private), true), "{private} when allowed");
        }
        for never in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            assert!(!may_relay_to(ip(never), true), "{never}");
        }
    }
}
