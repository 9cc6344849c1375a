//! Where a mesh gathers candidates and which ICE servers it uses: one place for the app's
//! rule and the headless peer's.

use std::net::{IpAddr, SocketAddr};

use confab_mesh::{IceServer, Mdns, TransportConfig};

/// The app's transport: every interface, as a desktop on a network needs (its own hosted
/// server is on loopback for it, but others reach it on the LAN), or loopback only when a
/// test asks. ICE servers are Settings' entries; one that does not parse is skipped with a
/// warning (Settings checks them as they are typed; one bad entry must not stop the rest).
pub fn for_app(loopback_only: bool, ice_servers: &[String]) -> TransportConfig {
    let mut transport = if loopback_only {
        TransportConfig::loopback()
    } else {
        TransportConfig::all_interfaces()
    };
    for spec in ice_servers {
        match IceServer::parse(spec) {
            Ok(server) => transport.ice_servers.push(server),
            Err(e) => tracing::warn!("ICE server skipped: {e}"),
        }
    }
    transport
}

/// The headless peer's transport: the addresses given (`--udp`), else loopback only when
/// the server is on loopback (its peers are then on this machine), else every interface.
/// Multicast DNS is off when every address given is loopback.
pub fn for_peer(server: &str, udp: &[IpAddr], ice: Vec<IceServer>) -> TransportConfig {
    let mut transport = if !udp.is_empty() {
        TransportConfig {
            udp_addrs: udp.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
            mdns: Mdns::QueryOnly,
            ..TransportConfig::all_interfaces()
        }
    } else if server_is_loopback(server) {
        TransportConfig::loopback()
    } else {
        TransportConfig::all_interfaces()
    };
    if !udp.is_empty() && udp.iter().all(IpAddr::is_loopback) {
        transport.mdns = Mdns::Off;
    }
    transport.ice_servers = ice;
    transport
}

/// Whether a server URL names this machine.
fn server_is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_servers_are_recognised() {
        assert!(server_is_loopback("ws://127.0.0.1:8787/ws"));
        assert!(server_is_loopback("ws://localhost:8787/ws"));
        assert!(server_is_loopback("wss://[::1]:8787/ws"));
        assert!(!server_is_loopback("ws://10.0.0.1:8787/ws"));
        assert!(!server_is_loopback("wss://example.org/ws"));
    }

    #[test]
    fn the_peer_gathers_where_told_or_where_its_server_is() {
        let local = for_peer("ws://127.0.0.1:8787/ws", &[], vec![]);
        assert_eq!(local, TransportConfig::loopback());
        let remote = for_peer("wss://example.org/ws", &[], vec![]);
        assert_eq!(remote, TransportConfig::all_interfaces());
        let lab_ip: IpAddr = "198.51.100.7".parse().unwrap();
        let lab = for_peer("ws://198.51.100.1:8787/ws", &[lab_ip], vec![]);
        assert_eq!(lab.udp_addrs, vec![SocketAddr::new(lab_ip, 0)]);
        assert_eq!(lab.mdns, Mdns::QueryOnly);
        let pinned = for_peer(
            "wss://example.org/ws",
            &[IpAddr::from([127, 0, 0, 1])],
            vec![],
        );
        assert_eq!(pinned.mdns, Mdns::Off);
    }

    #[test]
    fn the_app_skips_an_ice_server_that_does_not_parse_and_keeps_the_rest() {
        let specs = ["stun:example.org:3478".to_owned(), "gopher:x".to_owned()];
        let transport = for_app(false, &specs);
        assert_eq!(transport.ice_servers.len(), 1);
        assert_eq!(
            transport.udp_addrs,
            TransportConfig::all_interfaces().udp_addrs
        );
        assert_eq!(for_app(true, &[]), TransportConfig::loopback());
    }
}
