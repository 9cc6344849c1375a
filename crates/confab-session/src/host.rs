//! Hosting a signaling server in-process, for others on the network to join: the
//! Settings toggle starts and stops the server library (`confab_signal::ServerHandle`).
//! On the network it also runs the built-in STUN and TURN relay (on UDP 3478, or any free
//! port when that is taken), so that peers whose direct paths fail still connect.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use confab_relay::RelayConfig;
use confab_signal::lan::Announce;
use confab_signal::{ServerConfig, ServerHandle};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::error::SessionError;
use crate::settings::HostSettings;

/// What the Settings screen shows about the hosted server.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostState {
    pub running: bool,
    pub port: Option<u16>,
    /// `ws://ADDRESS:PORT/ws` for each address others can use; loopback when only this
    /// computer can.
    pub urls: Vec<String>,
    /// The URL this app itself connects to.
    pub local_url: Option<String>,
    /// Open connections (app windows, browsers, headless peers).
    pub connections: u64,
    /// Members of rooms.
    pub peers: usize,
    pub rooms: usize,
}

/// The hosted server, when one runs.
#[derive(Debug, Default)]
pub struct Host {
    server: Mutex<Option<ServerHandle>>,
}

impl Host {
    /// Starts the server as `settings` say, replacing a running one; one for the network
    /// is announced there as `owner`'s server.
    pub async fn start(
        &self,
        settings: &HostSettings,
        owner: &str,
    ) -> Result<HostState, SessionError> {
        let mut server = self.server.lock().await;
        if let Some(old) = server.take() {
            old.stop().await;
        }
        let ip = if settings.lan {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        let handle =
            ServerHandle::start(SocketAddr::new(ip, settings.port), config(settings, owner))
                .await
                .map_err(|e| SessionError::Host(plain_bind_error(&e, settings.port)))?;
        tracing::info!(
            "hosting a signaling server on {}, TURN relay on {:?}",
            handle.local_addr(),
            handle.relay_listeners()
        );
        *server = Some(handle);
        Ok(describe(server.as_ref()))
    }

    /// Stops the server; every client gets a close frame.
    pub async fn stop(&self) -> HostState {
        let mut server = self.server.lock().await;
        if let Some(old) = server.take() {
            old.stop().await;
            tracing::info!("stopped hosting the signaling server");
        }
        describe(None)
    }

    pub async fn state(&self) -> HostState {
        describe(self.server.lock().await.as_ref())
    }
}

/// A server for others on the network comes with the relay and is announced there (so
/// others find it by name); one for this computer only needs neither. The relay may reach
/// private addresses: a hosted server's peers are on the host's own network, behind the
/// same router, so their addresses are private ones.
fn config(settings: &HostSettings, owner: &str) -> ServerConfig {
    let mut config = ServerConfig::default();
    if settings.lan {
        let mut relay = RelayConfig::default();
        relay.any_port_if_taken = true;
        relay.allow_private = true;
        config.relay = Some(relay);
        config.announce = Some(Announce {
            name: format!("{owner}'s server"),
        });
    }
    config
}

/// "Address in use" is what users hit; say it so.
fn plain_bind_error(error: &confab_signal::ServerError, port: u16) -> String {
    let text = error.to_string();
    if text.contains("in use") {
        format!("port {port} is already in use by another program; pick another port")
    } else {
        text
    }
}

fn describe(server: Option<&ServerHandle>) -> HostState {
    let Some(server) = server else {
        return HostState {
            running: false,
            port: None,
            urls: Vec::new(),
            local_url: None,
            connections: 0,
            peers: 0,
            rooms: 0,
        };
    };
    let addr = server.local_addr();
    let state = server.state();
    let port = addr.port();
    let urls = if addr.ip().is_unspecified() {
        lan_addresses()
            .into_iter()
            .map(|ip| ws_url(ip, port))
            .collect()
    } else {
        vec![ws_url(addr.ip(), port)]
    };
    HostState {
        running: true,
        port: Some(port),
        urls,
        local_url: Some(ws_url(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        connections: state.connections,
        peers: state.peers,
        rooms: state.rooms,
    }
}

fn ws_url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ws://{v4}:{port}/ws"),
        IpAddr::V6(v6) => format!("ws://[{v6}]:{port}/ws"),
    }
}

/// Addresses others on the network can reach this computer at: IPv4 first (what people
/// type), then global IPv6; never loopback or link-local ones, which need a scope.
pub fn lan_addresses() -> Vec<IpAddr> {
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces,
        Err(e) => {
            tracing::warn!("cannot list network interfaces: {e}");
            return Vec::new();
        }
    };
    let mut v4: Vec<IpAddr> = Vec::new();
    let mut v6: Vec<IpAddr> = Vec::new();
    for interface in interfaces {
        match interface.ip() {
            IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_link_local() => v4.push(ip.into()),
            IpAddr::V6(ip) if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 => {
                v6.push(ip.into())
            }
            _ => {}
        }
    }
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    v4.extend(v6);
    v4
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_toggle_starts_and_stops_a_reachable_server() {
        let host = Host::default();
        let settings = HostSettings {
            enabled: true,
            port: 0,
            lan: false,
        };
        let state = host.start(&settings, "Ada").await.unwrap();
        assert!(state.running);
        let port = state.port.unwrap();
        assert_eq!(state.urls, vec![format!("ws://127.0.0.1:{port}/ws")]);
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();

        // A second server on the same port is refused in plain words.
        let other = Host::default();
        let taken = HostSettings { port, ..settings };
        let error = other.start(&taken, "Ada").await.unwrap_err();
        assert!(error.to_string().contains("already in use"), "{error}");

        assert!(!host.stop().await.running);
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        );
    }

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(ws_url("::1".parse().unwrap(), 1), "ws://[::1]:1/ws");
        assert_eq!(
            ws_url("10.0.0.2".parse().unwrap(), 8787),
            "ws://10.0.0.2:8787/ws"
        );
        assert!(lan_addresses().iter().all(|ip| !ip.is_loopback()));
    }
}
