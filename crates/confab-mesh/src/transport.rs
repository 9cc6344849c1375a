//! How peer connections are built: ICE servers, the addresses candidates are gathered on,
//! timers tuned to connect fast and stay quiet once connected, and UDP socket buffers large
//! enough for SCTP's window.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfiguration, RTCConfigurationBuilder, RTCIceServer, SettingEngineBuilder,
};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

use rtc::peer_connection::configuration::RTCIceTransportPolicy;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;

use confab_proto::IceServerInfo;

use crate::MeshError;
use crate::identity::Identity;
use crate::turn_tunnel::TurnTunnels;

/// Binding checks while connecting: one every 10 ms instead of 200 ms, for up to a second
/// per candidate pair. Only while checking; a connected pair falls back to keepalives.
const CHECK_INTERVAL: Duration = Duration::from_millis(10);
const MAX_CHECKS: u16 = 100;
/// Once connected: a consent check every 2 s from each side (each can draw a triggered
/// check back, so a pair stays near one STUN request a second).
const KEEPALIVE: Duration = Duration::from_secs(2);
/// Anything received counts (checks, DTLS, SCTP, RTP). After 5 s of silence a peer is
/// "disconnected", and after 12 s "failed": a killed peer is cleaned up well within the
/// 15 s the API promises. A live peer is never that silent even through 20 % random loss:
/// in each 2 s period something arrives unless its check and our check's answer are both
/// lost (7 %), so six such periods in a row come about once in seven million windows.
/// A peer the server says has left is closed at "disconnected".
const DISCONNECTED_AFTER: Duration = Duration::from_secs(5);
pub(crate) const FAILED_AFTER: Duration = Duration::from_secs(7);
/// A pair found through a peer-reflexive candidate (a check that arrived before the
/// candidate itself was signalled) is as direct as a host pair. The library waits a
/// second before nominating one, in case something better turns up; with trickle ICE
/// that wait stalled about one set-up in ten by a full second.
const PRFLX_WAIT: Duration = Duration::ZERO;
/// A relayed pair may be nominated this long after ICE starts, if no direct pair has
/// succeeded by then (the library waits 2 s). A direct path that works answers its checks
/// within a few round trips, sent every 10 ms; the wait made every relayed connection
/// take over 2 s to come up.
const RELAY_WAIT: Duration = Duration::from_millis(500);
/// The kernel's default UDP receive buffer (~208 KiB) is smaller than SCTP's window, so
/// bursts are dropped and throughput collapses. The kernel charges each ~1.2 KB datagram
/// about 2.3 KB against it: 4 MiB (which the kernel doubles) holds ~3,600 datagrams,
/// ~4 MiB of SCTP data, so four `RECEIVE_WINDOW`s.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// SCTP's receive window (a_rwnd), the library's default, named because larger ones
/// measured worse (`mesh-bench --relay`, docs/mesh.md). Loopback transfers, direct or
/// relayed, are held by the CPU, not by it: with 2 MiB the sender kept 2 MB in flight, a
/// relayed round trip grew to 27-50 ms of queue, and TURN over TCP fell below half of
/// direct in 6 runs of 12 (2 of 16 at 1 MiB). 4 MiB is as much as `SOCKET_BUFFER` holds:
/// a window arriving while its reader was off the CPU overflowed it, and SCTP, its receive
/// window full of what came after the holes, took seconds to fill them (files at 1.5-6.6
/// MB/s).
const RECEIVE_WINDOW: u32 = 1024 * 1024;
/// The largest data channel message, as Chromium advertises it: a chat may carry 64 KiB
/// of text plus its JSON envelope, over the 64 KiB default.
const MAX_MESSAGE: u32 = 256 * 1024;
/// Per data channel, as Chromium: senders wait for room beyond this (back-pressure).
const SEND_BUFFER_LIMIT: usize = 16 * 1024 * 1024;

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl IceServer {
    /// Parses `stun:HOST:PORT` or `turn:USER:PASS@HOST:PORT` (also `turns:`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (scheme, rest) = spec.split_once(':').ok_or_else(|| {
            format!("`{spec}`: expected stun:HOST:PORT or turn:USER:PASS@HOST:PORT")
        })?;
        match scheme {
            "stun" | "stuns" => Ok(Self {
                url: spec.to_owned(),
                username: None,
                credential: None,
            }),
            "turn" | "turns" => {
                let (credentials, host) = rest
                    .rsplit_once('@')
                    .ok_or_else(|| format!("`{spec}`: a TURN server needs USER:PASS@"))?;
                let (user, pass) = credentials
                    .split_once(':')
                    .ok_or_else(|| format!("`{spec}`: a TURN server needs USER:PASS@"))?;
                Ok(Self {
                    url: format!("{scheme}:{host}"),
                    username: Some(user.to_owned()),
                    credential: Some(pass.to_owned()),
                })
            }
            _ => Err(format!("`{spec}`: unknown scheme `{scheme}`")),
        }
    }
}

impl IceServer {
    /// Why this peer cannot use the server, if it cannot. TURN over TCP and TLS goes
    /// through a tunnel (turn_tunnel.rs); STUN over TLS and TURN over DTLS are not
    /// something WebRTC stacks use.
    pub fn unsupported(&self) -> Option<&'static str> {
        let url = self.url.to_ascii_lowercase();
        if url.starts_with("stuns:") {
            Some("STUN over TLS is not supported; use stun: or a turns: relay")
        } else if url.starts_with("turns:") && url.contains("transport=udp") {
            Some("TURN over DTLS is not supported; use turns: over TCP, or turn:")
        } else {
            None
        }
    }
}

/// Whether to resolve other peers' `.local` host candidates with multicast DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mdns {
    /// Never send multicast DNS.
    Off,
    /// Resolve browsers' `.local` names; never publish our own.
    QueryOnly,
}

/// Network settings for every peer connection of a mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    pub ice_servers: Vec<IceServer>,
    /// UDP addresses to bind; `0.0.0.0:0` means every usable interface.
    pub udp_addrs: Vec<SocketAddr>,
    pub mdns: Mdns,
    /// Offer and accept relayed candidates only: the other peers never learn this
    /// machine's addresses, and every byte goes through a TURN server.
    pub relay_only: bool,
}

impl TransportConfig {
    /// Every usable interface, as a browser gathers: a real user needs the LAN address.
    pub fn all_interfaces() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_addrs: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            mdns: Mdns::QueryOnly,
            relay_only: false,
        }
    }

    /// Loopback only and no multicast: traffic that never leaves this machine.
    pub fn loopback() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            mdns: Mdns::Off,
            relay_only: false,
        }
    }

    /// These settings with the servers a signaling server offered in its `welcome` added
    /// after the user's own (each URL once).
    pub fn with_offered(&self, offered: &[IceServerInfo]) -> Self {
        let mut merged = self.clone();
        for server in offered {
            for url in &server.urls {
                if merged.ice_servers.iter().any(|s| s.url == *url) {
                    continue;
                }
                merged.ice_servers.push(IceServer {
                    url: url.clone(),
                    username: server.username.clone(),
                    credential: server.credential.clone(),
                });
            }
        }
        merged
    }

    /// The servers this peer cannot use, each with the reason; connections are built
    /// without them.
    pub fn unsupported(&self) -> impl Iterator<Item = (&IceServer, &'static str)> {
        self.ice_servers
            .iter()
            .filter_map(|server| server.unsupported().map(|why| (server, why)))
    }

    /// The library's configuration; TURN servers over TCP and TLS are given as the
    /// loopback URLs of their `tunnels`.
    pub(crate) fn rtc_configuration(
        &self,
        identity: &Identity,
        tunnels: &TurnTunnels,
    ) -> RTCConfiguration {
        let ice_servers = self
            .ice_servers
            .iter()
            .filter(|server| server.unsupported().is_none())
            .map(|server| tunnels.reached_through(server))
            .map(|server| RTCIceServer {
                urls: vec![server.url],
                username: server.username.unwrap_or_default(),
                credential: server.credential.unwrap_or_default(),
            })
            .collect();
        let policy = if self.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        };
        RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .with_ice_transport_policy(policy)
            .with_certificates(vec![identity.certificate.clone()])
            .build()
    }
}

/// Builds one peer connection with these settings (benchmarks use it for raw channels).
/// It has no tunnels, so the library skips TURN servers over TCP or TLS.
pub async fn build_peer_connection(
    config: &TransportConfig,
    identity: &Identity,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, MeshError> {
    build_peer_connection_through(config, &TurnTunnels::default(), identity, handler).await
}

/// Builds one of a mesh's peer connections, its TCP and TLS TURN servers reached through
/// `tunnels`.
pub(crate) async fn build_peer_connection_through(
    config: &TransportConfig,
    tunnels: &TurnTunnels,
    identity: &Identity,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, MeshError> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().map_err(MeshError::WebRtc)?;
    media
        .register_codec(
            crate::voice::red_codec(),
            rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio,
        )
        .map_err(MeshError::WebRtc)?;
    let mdns = match config.mdns {
        Mdns::Off => rtc::ice::mdns::MulticastDnsMode::Disabled,
        Mdns::QueryOnly => rtc::ice::mdns::MulticastDnsMode::QueryOnly,
    };
    let settings = SettingEngineBuilder::new()
        .with_ice_timeouts(
            Some(DISCONNECTED_AFTER),
            Some(FAILED_AFTER),
            Some(KEEPALIVE),
        )
        .with_ice_connection_attempts(Some(CHECK_INTERVAL), Some(MAX_CHECKS))
        .with_prflx_acceptance_min_wait(Some(PRFLX_WAIT))
        .with_relay_acceptance_min_wait(Some(RELAY_WAIT))
        // An ICE restart (peer.rs) binds new sockets and gathers anew, so a path lost to a
        // network change is found again on the interfaces there are now.
        .with_discard_local_candidates_during_ice_restart(true)
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(MAX_MESSAGE))
        .with_sctp_max_receive_buffer_size(RECEIVE_WINDOW)
        .with_multicast_dns_mode(mdns)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config.rtc_configuration(identity, tunnels))
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_runtime(Arc::new(BufferedRuntime(TokioRuntime)))
        .with_handler(handler)
        .with_udp_addrs(config.udp_addrs.clone())
        .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
        .build()
        .await
        .map_err(MeshError::WebRtc)?;
    Ok(Arc::new(pc))
}

/// Asks for `SOCKET_BUFFER`-sized buffers on `socket`: best effort, as the kernel caps
/// them at net.core.{r,w}mem_max.
pub(crate) fn enlarge_buffers(socket: &std::net::UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
}

/// The tokio runtime, but every UDP socket handed to the library gets large buffers.
#[derive(Debug)]
struct BufferedRuntime(TokioRuntime);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for BufferedRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: BoxFuture<'static, ()>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
        enlarge_buffers(&socket);
        self.0.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> std::io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> BoxFuture<'a, std::io::Result<Arc<dyn AsyncTcpStream>>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> std::time::Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> BoxFuture<'static, ()> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (large UDP buffers)"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ice_server_specs() {
        assert_eq!(
            IceServer::parse("stun:stun.example.org:3478").unwrap(),
            IceServer {
                url: "stun:stun.example.org:3478".into(),
                username: None,
                credential: None
            }
        );
        assert_eq!(
            IceServer::parse("turn:ann:s3cr:et@turn.example.org:3478").unwrap(),
            IceServer {
                url: "turn:turn.example.org:3478".into(),
                username: Some("ann".into()),
                credential: Some("s3cr:et".into())
            }
        );
        assert!(IceServer::parse("turn:turn.example.org:3478").is_err());
        assert!(IceServer::parse("http://x").is_err());
        assert!(IceServer::parse("nonsense").is_err());
    }

    #[test]
    fn offered_servers_follow_the_users_own_and_unusable_ones_are_named() {
        let mut config = TransportConfig::loopback();
        config.ice_servers = vec![IceServer::parse("stun:198.51.100.9:3478").unwrap()];
        let offered = [
            IceServerInfo {
                urls: vec!["stun:198.51.100.9:3478".into()],
                username: None,
                credential: None,
            },
            IceServerInfo {
                urls: vec![
                    "turn:198.51.100.1:3478".into(),
                    "turn:198.51.100.1:3478?transport=tcp".into(),
                    "turns:198.51.100.1:443".into(),
                ],
                username: Some("99:p1".into()),
                credential: Some("c".into()),
            },
        ];
        let merged = config.with_offered(&offered);
        let urls: Vec<&str> = merged.ice_servers.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "stun:198.51.100.9:3478",
                "turn:198.51.100.1:3478",
                "turn:198.51.100.1:3478?transport=tcp",
                "turns:198.51.100.1:443"
            ]
        );
        assert_eq!(merged.ice_servers[1].username.as_deref(), Some("99:p1"));
        assert_eq!(merged.unsupported().count(), 0, "TCP and TLS are tunnelled");
        let dtls = IceServer::parse("turns:a:b@198.51.100.1:443?transport=udp").unwrap();
        assert!(dtls.unsupported().is_some());
        assert_eq!(merged.with_offered(&offered), merged);
    }
}
