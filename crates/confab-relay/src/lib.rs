//! The STUN and TURN relay (RFC 8489, RFC 8656) built into `confab server` and the server
//! the app hosts, so that two peers behind NATs that cannot be punched, or on networks
//! that block direct UDP, still talk with nothing to set up beyond the server's address.
//!
//! The protocol is the webrtc-rs `turn` crate's; this crate decides where it listens, who
//! may allocate (short-lived REST credentials made from a secret that exists only in this
//! process), what it relays to (never the host's own or private
//! networks unless allowed), how much (allocations in total and per peer, bandwidth per
//! peer), and counts it all ([`RelayMetrics`]).
//!
//! - [`Relay`]: a running relay, with the addresses (UDP, TCP, TLS) a client that reached
//!   the server at a given IP should use.
//! - [`rest_credential`]: the password of a REST username, for `welcome.ice_servers`.
//! - [`framing`]: TURN messages on a TCP or TLS stream, for the relay and its clients.

mod credentials;
mod farewell;
pub mod framing;
mod metrics;
mod peer_bandwidth;
mod policy;
mod sockets;
mod streams;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt as _;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tracing::{info, warn};
use turn::allocation::AllocationInfo;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};

use credentials::RestAuth;
pub use credentials::rest_credential;
pub use metrics::{Refusal, RelayMetrics};
use peer_bandwidth::PeerBandwidth;
use sockets::{Allocator, Listener, with_large_buffers};
use streams::StreamListener;

/// The realm the relay names in its challenges.
const REALM: &str = "confab";

/// Where and how the relay serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// UDP address of the STUN and TURN listener. An unspecified IP listens on each
    /// address of each interface at start, so that every allocation is relayed from the
    /// address its client reached.
    pub listen: SocketAddr,
    /// When `listen`'s port is taken (another server on this host), listen on any free
    /// port instead of failing: the port is handed out with the credentials anyway.
    pub any_port_if_taken: bool,
    /// The host's public address when it sits behind a 1:1 NAT (as cloud VMs do): handed
    /// to clients and put in relayed addresses instead of the local one.
    pub external_ip: Option<IpAddr>,
    /// Ports for relayed sockets; any free port when `None`.
    pub relay_ports: Option<RangeInclusive<u16>>,
    /// Relay to loopback, private and link-local addresses too (a relay for a LAN, tests).
    pub allow_private: bool,
    /// Most allocations at once, in all.
    pub max_allocations: u64,
    /// Most allocations one peer id holds at once.
    pub max_allocations_per_peer: usize,
    /// Bytes per second each peer id may relay through all its allocations, both
    /// directions together; 0 is none.
    pub bytes_per_second: u64,
    /// Also listen for TURN over TCP on `listen`'s port, for networks that let no UDP out
    /// (with port 0, on the UDP port the system chose, or any TCP port if that one is taken).
    pub tcp: bool,
    /// Also listen for TURN over TLS (`turns:`), for networks that let only TLS out.
    pub tls: Option<RelayTls>,
}

/// TURN over TLS: the port and the server's certificate (the signaling server's own).
#[derive(Clone)]
pub struct RelayTls {
    /// On each listening IP; port 443 passes the strictest firewalls when it is free.
    pub port: u16,
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for RelayTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTls")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Where a client reaches the relay, by transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub udp: SocketAddr,
    /// A second UDP port (the next one when free), answering STUN as the first does: a
    /// client that asks both from one socket learns whether its NAT keeps one mapping for
    /// every destination (RFC 5780's alternate port).
    pub udp_alternate: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            any_port_if_taken: false,
            external_ip: None,
            relay_ports: None,
            allow_private: false,
            max_allocations: 1000,
            // A full mesh of 16 with a spare: one allocation per other peer's connection.
            max_allocations_per_peer: 16,
            bytes_per_second: 50_000_000,
            tcp: true,
            tls: None,
        }
    }
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("cannot listen for TURN on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot list the interfaces' addresses: {0}")]
    Interfaces(std::io::Error),
    #[error("no interface address to listen for TURN on")]
    NoAddress,
    #[error("the TURN server did not start: {0}")]
    Turn(String),
}

/// A running relay. Dropping it without [`Relay::stop`] leaves its tasks to end with the
/// runtime.
pub struct Relay {
    server: Server,
    /// The UDP listeners' local addresses.
    listeners: Vec<SocketAddr>,
    alternate_listeners: Vec<SocketAddr>,
    tcp_listeners: Vec<SocketAddr>,
    tls_listeners: Vec<SocketAddr>,
    external_ip: Option<IpAddr>,
    secret: String,
    metrics: Arc<RelayMetrics>,
}

impl std::fmt::Debug for Relay {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("listeners", &self.listeners)
            .field("alternate_listeners", &self.alternate_listeners)
            .field("tcp_listeners", &self.tcp_listeners)
            .field("tls_listeners", &self.tls_listeners)
            .field("external_ip", &self.external_ip)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds the listeners and starts serving, with a fresh random secret.
    pub async fn start(config: RelayConfig) -> Result<Self, RelayError> {
        let metrics = Arc::new(RelayMetrics::default());
        let secret: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let auth = Arc::new(RestAuth::new(
            secret.clone(),
            config.max_allocations_per_peer,
            metrics.clone(),
        ));
        let bandwidth = Arc::new(PeerBandwidth::new(config.bytes_per_second, metrics.clone()));
        let mut conn_configs = Vec::new();
        let (mut listeners, mut alternate_listeners) = (Vec::new(), Vec::new());
        let (mut tcp_listeners, mut tls_listeners) = (Vec::new(), Vec::new());
        let allocator = |ip: IpAddr| Allocator {
            bind_ip: ip,
            advertised_ip: config.external_ip.unwrap_or(ip),
            ports: config.relay_ports.clone(),
            allow_private: config.allow_private,
            max_allocations: config.max_allocations,
            metrics: metrics.clone(),
        };
        // Each stream client holds a connection whether or not it allocates.
        let max_stream_clients = usize::try_from(config.max_allocations).unwrap_or(usize::MAX);
        for ip in listen_ips(config.listen.ip())? {
            let addr = SocketAddr::new(ip, config.listen.port());
            let socket = bind_or_any_port(addr, config.any_port_if_taken, UdpSocket::bind).await?;
            let socket = with_large_buffers(socket);
            let local = socket
                .local_addr()
                .map_err(|source| RelayError::Bind { addr, source })?;
            listeners.push(local);
            conn_configs.push(ConnConfig {
                conn: Arc::new(Listener {
                    socket,
                    bandwidth: bandwidth.clone(),
                }),
                relay_addr_generator: Box::new(allocator(ip)),
            });
            // Best effort: without it the mapping test says it cannot tell.
            let next = SocketAddr::new(ip, local.port().wrapping_add(1).max(1));
            let alternate = match UdpSocket::bind(next).await {
                Ok(socket) => Ok(socket),
                Err(_) => UdpSocket::bind((ip, 0)).await,
            };
            if let Ok(alternate) = alternate
                && let Ok(local) = alternate.local_addr()
            {
                alternate_listeners.push(local);
                conn_configs.push(ConnConfig {
                    conn: Arc::new(Listener {
                        socket: with_large_buffers(alternate),
                        bandwidth: bandwidth.clone(),
                    }),
                    relay_addr_generator: Box::new(allocator(ip)),
                });
            }
            // A relay asked to listen on any port took the UDP one the system chose; that
            // number may be another program's on TCP, and any other TCP port serves as well.
            let any_tcp_port = config.any_port_if_taken || config.listen.port() == 0;
            let streams = [
                config
                    .tcp
                    .then_some((local.port(), any_tcp_port, None, &mut tcp_listeners)),
                config.tls.as_ref().map(|tls| {
                    let acceptor = TlsAcceptor::from(tls.config.clone());
                    (
                        tls.port,
                        config.any_port_if_taken,
                        Some(acceptor),
                        &mut tls_listeners,
                    )
                }),
            ];
            for (port, any_port, tls, bound) in streams.into_iter().flatten() {
                let addr = SocketAddr::new(ip, port);
                let listener = bind_or_any_port(addr, any_port, TcpListener::bind).await?;
                let listener = StreamListener::start(
                    listener,
                    tls,
                    max_stream_clients,
                    metrics.clone(),
                    secret.as_str().into(),
                    bandwidth.clone(),
                )
                .map_err(|source| RelayError::Bind { addr, source })?;
                bound.push(
                    webrtc_util::Conn::local_addr(&listener)
                        .map_err(|e| RelayError::Turn(e.to_string()))?,
                );
                conn_configs.push(ConnConfig {
                    conn: Arc::new(listener),
                    relay_addr_generator: Box::new(allocator(ip)),
                });
            }
        }
        let (closed_tx, closed_rx) = mpsc::channel(64);
        tokio::spawn(release_quotas(closed_rx, auth.clone(), bandwidth));
        let server = Server::new(ServerConfig {
            conn_configs,
            realm: REALM.to_owned(),
            auth_handler: auth,
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: Some(closed_tx),
        })
        .await
        .map_err(|e| RelayError::Turn(e.to_string()))?;
        info!(
            udp = ?listeners,
            stun_alternate = ?alternate_listeners,
            tcp = ?tcp_listeners,
            tls = ?tls_listeners,
            external_ip = ?config.external_ip,
            "TURN relay listening"
        );
        Ok(Self {
            server,
            listeners,
            alternate_listeners,
            tcp_listeners,
            tls_listeners,
            external_ip: config.external_ip,
            secret,
            metrics,
        })
    }

    /// The STUN and TURN addresses for a client that reached this host at `reached`: the
    /// external address when one is set, else the listeners on that address, if any.
    pub fn endpoints_for(&self, reached: IpAddr) -> Option<Endpoints> {
        let reached = canonical(reached);
        let on = |listeners: &[SocketAddr]| match self.external_ip {
            Some(external) => listeners
                .first()
                .map(|l| SocketAddr::new(external, l.port())),
            None => listeners.iter().copied().find(|l| l.ip() == reached),
        };
        Some(Endpoints {
            udp: on(&self.listeners)?,
            udp_alternate: on(&self.alternate_listeners),
            tcp: on(&self.tcp_listeners),
            tls: on(&self.tls_listeners),
        })
    }

    /// The addresses it listens on.
    pub fn listeners(&self) -> &[SocketAddr] {
        &self.listeners
    }

    /// The secret REST credentials are made with ([`rest_credential`]).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn metrics(&self) -> &RelayMetrics {
        &self.metrics
    }

    /// Ends every allocation and stops listening.
    pub async fn stop(&self) {
        if let Err(e) = self.server.close().await {
            warn!("TURN relay did not close cleanly: {e}");
        }
    }
}

/// `bind` on `addr`, or on any free port of its IP when `addr`'s is taken and that is
/// allowed (UDP and TCP listeners alike).
async fn bind_or_any_port<T, F, Fut>(
    addr: SocketAddr,
    any_port_if_taken: bool,
    bind: F,
) -> Result<T, RelayError>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    match bind(addr).await {
        Ok(bound) => Ok(bound),
        Err(e) if any_port_if_taken && e.kind() == ErrorKind::AddrInUse => {
            warn!("TURN port {addr} is taken: listening on another port");
            bind(SocketAddr::new(addr.ip(), 0))
                .await
                .map_err(|source| RelayError::Bind { addr, source })
        }
        Err(source) => Err(RelayError::Bind { addr, source }),
    }
}

/// The IPs to listen on for `ip`: itself, or every interface address for an unspecified
/// one (IPv6 link-local ones left out: they need a scope a TURN URL cannot carry).
fn listen_ips(ip: IpAddr) -> Result<Vec<IpAddr>, RelayError> {
    if !ip.is_unspecified() {
        return Ok(vec![ip]);
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map_err(RelayError::Interfaces)?
        .into_iter()
        .map(|interface| interface.ip())
        .filter(|a| a.is_ipv4() == ip.is_ipv4())
        .filter(|a| !matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Err(RelayError::NoAddress);
    }
    Ok(ips)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Frees each ended allocation's place in its peer's quota, and its client's tie to the
/// peer's bandwidth.
async fn release_quotas(
    mut closed: mpsc::Receiver<AllocationInfo>,
    auth: Arc<RestAuth>,
    bandwidth: Arc<PeerBandwidth>,
) {
    while let Some(info) = closed.recv().await {
        auth.release(&info.username, info.five_tuple.src_addr);
        bandwidth.forget(info.five_tuple.src_addr);
    }
}
