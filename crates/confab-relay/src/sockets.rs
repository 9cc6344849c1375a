//! The relay's UDP sockets as the turn crate sees them: the listener clients reach, which
//! charges what they relay to their peer's bandwidth (`peer_bandwidth.rs`), and one relayed
//! socket per allocation that applies the peer address policy and the counters to every
//! datagram.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use turn::Error as TurnError;
use turn::relay::RelayAddressGenerator;

type Result<T> = std::result::Result<T, TurnError>;
use webrtc_util::Conn;

use crate::metrics::{Refusal, RelayMetrics};
use crate::peer_bandwidth::PeerBandwidth;
use crate::policy::may_relay_to;

/// Random ports tried in a configured range before the allocation fails.
const PORT_TRIES: usize = 20;
/// Receive and send buffers asked for on every relay socket (the kernel caps them at
/// `net.core.rmem_max` and `wmem_max`). A data channel sends in bursts of a congestion
/// window; with the default 208 KiB the relay dropped the ends of bursts it read a moment
/// too late, and each drop cost the transfer a retransmission.
const SOCKET_BUFFER: usize = 4 << 20;

/// `socket` with buffers as large as the system allows (see [`SOCKET_BUFFER`]).
pub(crate) fn with_large_buffers(socket: UdpSocket) -> UdpSocket {
    let sock = socket2::SockRef::from(&socket);
    // Best effort: a smaller buffer still works, only with more drops under bursts.
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    socket
}

/// What a relay socket answers to the `Conn` methods the turn crate never calls on it.
pub(crate) fn unsupported(what: &str) -> webrtc_util::Error {
    webrtc_util::Error::Other(format!("{what} is not used on a relay socket"))
}

/// A listener socket. The turn crate ends its read loop on the first receive error; one
/// transient error (an ICMP report some kernels pass up) must not stop the relay.
pub(crate) struct Listener {
    pub(crate) socket: UdpSocket,
    pub(crate) bandwidth: Arc<PeerBandwidth>,
}

#[async_trait]
impl Conn for Listener {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(unsupported("connect"))
    }
    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(unsupported("recv"))
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            match self.socket.recv_from(buf).await {
                Ok((len, from)) => {
                    if self.bandwidth.admit_from(from, &buf[..len]) {
                        return Ok((len, from));
                    }
                }
                Err(e) => {
                    tracing::debug!("TURN listener: {e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(unsupported("send"))
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        // Over the peer's rate: dropped, as a full link would drop it.
        if !self.bandwidth.admit_to(target, buf) {
            return Ok(buf.len());
        }
        Ok(self.socket.send_to(buf, target).await?)
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// One allocation's relayed socket.
struct Relayed {
    socket: UdpSocket,
    allow_private: bool,
    metrics: Arc<RelayMetrics>,
}

impl Relayed {
    /// Whether a datagram to or from `peer` may pass; counts a refusal.
    fn admits(&self, peer: SocketAddr) -> bool {
        let allowed = may_relay_to(peer.ip(), self.allow_private);
        if !allowed {
            self.metrics.refuse(Refusal::PeerAddress);
        }
        allowed
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        self.metrics.allocations_open.fetch_sub(1, Relaxed);
    }
}

#[async_trait]
impl Conn for Relayed {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(unsupported("connect"))
    }
    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(unsupported("recv"))
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = match self.socket.recv_from(buf).await {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!("relayed socket: {e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            if self.admits(from) {
                self.metrics.bytes_from_peers.fetch_add(len as u64, Relaxed);
                return Ok((len, from));
            }
        }
    }
    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(unsupported("send"))
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        // A refused datagram is dropped as a network would drop it: the client's
        // permission stands, nothing reaches the address.
        if !self.admits(target) {
            return Ok(buf.len());
        }
        let sent = self.socket.send_to(buf, target).await?;
        self.metrics.bytes_to_peers.fetch_add(sent as u64, Relaxed);
        Ok(sent)
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Opens the relayed socket of each allocation on one listener's address.
pub(crate) struct Allocator {
    /// Where relayed sockets are bound.
    pub(crate) bind_ip: IpAddr,
    /// The address put in XOR-RELAYED-ADDRESS: `bind_ip`, or the host's public address
    /// behind a 1:1 NAT.
    pub(crate) advertised_ip: IpAddr,
    pub(crate) ports: Option<RangeInclusive<u16>>,
    pub(crate) allow_private: bool,
    pub(crate) max_allocations: u64,
    pub(crate) metrics: Arc<RelayMetrics>,
}

impl Allocator {
    async fn bind(&self) -> std::io::Result<UdpSocket> {
        let Some(ports) = &self.ports else {
            return UdpSocket::bind((self.bind_ip, 0)).await;
        };
        let mut last = None;
        for _ in 0..PORT_TRIES {
            let port = rand::random_range(ports.clone());
            match UdpSocket::bind((self.bind_ip, port)).await {
                Ok(socket) => return Ok(socket),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("empty relay port range")))
    }
}

#[async_trait]
impl RelayAddressGenerator for Allocator {
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        _requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr)> {
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(turn::Error::Other(
                "this listener relays the other address family".into(),
            ));
        }
        let open = self.metrics.allocations_open.fetch_add(1, Relaxed);
        // From here on the count is released by `Relayed`'s drop, or below.
        if open >= self.max_allocations {
            self.metrics.allocations_open.fetch_sub(1, Relaxed);
            self.metrics.refuse(Refusal::Capacity);
            return Err(turn::Error::Other("the relay is full".into()));
        }
        let socket = match self.bind().await {
            Ok(socket) => with_large_buffers(socket),
            Err(e) => {
                self.metrics.allocations_open.fetch_sub(1, Relaxed);
                return Err(turn::Error::Other(format!("no relay socket: {e}")));
            }
        };
        let relayed = Relayed {
            socket,
            allow_private: self.allow_private,
            metrics: self.metrics.clone(),
        };
        let mut relayed_addr = relayed
            .socket
            .local_addr()
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        relayed_addr.set_ip(self.advertised_ip);
        self.metrics.allocations_total.fetch_add(1, Relaxed);
        Ok((Arc::new(relayed), relayed_addr))
    }
}
