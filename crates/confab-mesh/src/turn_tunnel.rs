//! TURN over TCP and TLS, for networks that let no UDP out. webrtc-rs 0.21 reaches TURN
//! servers over UDP only: its `turn_relayer.rs` skips `turn:…?transport=tcp` and `turns:`
//! URLs with a log line (docs/networks.md has the evidence and the change upstream would
//! need). Each such server gets a tunnel instead: a UDP socket on loopback that the library
//! is given as a TURN server over UDP. Every socket that sends to it (one TURN client per
//! local address of each connection) gets a TCP or TLS connection of its own to the real
//! server, so the server sees one client per connection as RFC 8656 has it. Messages cross
//! unchanged, framed as a stream needs them (`confab_relay::framing`); what they say stays
//! the library's business.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_relay::framing::{FramingError, read_message, write_message};
use rtc::ice::url::{ProtoType, SchemeType, Url};
use rtc::stun::message::{CLASS_SUCCESS_RESPONSE, Getter as _, METHOD_ALLOCATE, Message};
use rtc::turn::proto::relayaddr::RelayedAddress;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::transport::{IceServer, enlarge_buffers};

/// How long connecting to the server (TCP and TLS) may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// A client silent this long has gone (its connection closed): its allocation has expired
/// on the server by then too, as nothing refreshed it.
const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// Messages waiting for one client's stream; more are dropped, as a full UDP socket would.
const QUEUE: usize = 1024;
/// Read and write buffers of each stream: a relayed data channel moves tens of thousands
/// of ~1.2 KB messages a second, and unbuffered each took two reads (header, body) and up
/// to two writes (message, padding).
const STREAM_BUFFER: usize = 64 * 1024;

/// How a tunnel reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Tcp,
    Tls,
}

impl StreamKind {
    /// As `stats` names it (`transport`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            StreamKind::Tcp => "tcp",
            StreamKind::Tls => "tls",
        }
    }

    /// The stream a `turn:…?transport=tcp` or `turns:` URL asks for; none for TURN over
    /// UDP, STUN, or anything else.
    fn of(url: &Url) -> Option<Self> {
        match (url.scheme, url.proto) {
            (SchemeType::Turn, ProtoType::Tcp) => Some(StreamKind::Tcp),
            (SchemeType::Turns, ProtoType::Tcp) => Some(StreamKind::Tls),
            _ => None,
        }
    }
}

/// Where the tunnel's streams go.
#[derive(Clone)]
struct Server {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// The relayed addresses the server allocated through a tunnel: a connection's relay
/// candidate does not say which TURN server it came from, so `stats` finds its
/// transport here.
type Relayed = Arc<Mutex<HashSet<SocketAddr>>>;

/// One TURN server over TCP or TLS, reachable on loopback as one over UDP.
pub(crate) struct TurnTunnel {
    local: SocketAddr,
    kind: StreamKind,
    relayed: Relayed,
    task: JoinHandle<()>,
}

impl Drop for TurnTunnel {
    fn drop(&mut self) {
        // The streams' tasks end with the socket they answer on.
        self.task.abort();
    }
}

impl TurnTunnel {
    /// A tunnel for `server` when it is TURN over TCP or TLS; `Ok(None)` for any other.
    fn open(server: &IceServer) -> Result<Option<Self>, String> {
        let url = Url::parse_url(&server.url).map_err(|e| format!("{}: {e}", server.url))?;
        let Some(kind) = StreamKind::of(&url) else {
            return Ok(None);
        };
        let tls = match kind {
            StreamKind::Tcp => None,
            StreamKind::Tls => {
                let config = confab_signal::tls::client_config(&[]).map_err(|e| e.to_string())?;
                let name = ServerName::try_from(url.host.clone())
                    .map_err(|e| format!("{}: {e}", url.host))?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
        };
        let socket = bind_loopback().map_err(|e| format!("no loopback socket: {e}"))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let target = Server {
            host: url.host,
            port: url.port,
            tls,
        };
        let relayed = Relayed::default();
        let task = tokio::spawn(forward(Arc::new(socket), target, relayed.clone()));
        Ok(Some(Self {
            local,
            kind,
            relayed,
            task,
        }))
    }

    /// The URL the library is given in place of the server's.
    fn local_url(&self) -> String {
        format!("turn:{}?transport=udp", self.local)
    }
}

fn bind_loopback() -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_nonblocking(true)?;
    // A relayed data channel sends in bursts of a congestion window, as on any of the
    // peers' sockets.
    enlarge_buffers(&socket);
    UdpSocket::from_std(socket)
}

/// Takes each datagram on the loopback socket to its sender's stream, opening one for a
/// sender not seen before (or whose stream ended).
async fn forward(socket: Arc<UdpSocket>, server: Server, relayed: Relayed) {
    let mut streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; confab_relay::framing::MAX_MESSAGE];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // An ICMP error passed up for an earlier send; the socket is fine.
                tracing::debug!("TURN tunnel: {e}");
                continue;
            }
        };
        let queue = match streams.get(&from) {
            Some(queue) if !queue.is_closed() => queue.clone(),
            _ => {
                streams.retain(|_, queue| !queue.is_closed());
                let (queue, queued) = mpsc::channel(QUEUE);
                let stream = Stream {
                    socket: socket.clone(),
                    client: from,
                    relayed: relayed.clone(),
                };
                tokio::spawn(carry(stream, server.clone(), queued));
                streams.insert(from, queue.clone());
                queue
            }
        };
        let _ = queue.try_send(buf[..len].to_vec());
    }
}

/// The loopback side of one client's stream.
struct Stream {
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    relayed: Relayed,
}

impl Stream {
    /// Passes a message from the server to the client, noting a relayed address it
    /// allocated.
    async fn deliver(&self, message: &[u8]) -> std::io::Result<()> {
        if let Some(addr) = allocated(message) {
            lock(&self.relayed).insert(addr);
        }
        self.socket.send_to(message, self.client).await.map(|_| ())
    }
}

/// The relayed address of an Allocate success response.
fn allocated(message: &[u8]) -> Option<SocketAddr> {
    // ChannelData (the bulk of what comes) starts with 0b01.
    if message.first()? >> 6 != 0 {
        return None;
    }
    let mut stun = Message::new();
    stun.unmarshal_binary(message).ok()?;
    if stun.typ.method != METHOD_ALLOCATE || stun.typ.class != CLASS_SUCCESS_RESPONSE {
        return None;
    }
    let mut relayed = RelayedAddress::default();
    relayed.get_from(&stun).ok()?;
    Some(SocketAddr::new(relayed.ip, relayed.port))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One client's stream to the server, both ways, until either side ends or it idles. A
/// server that cannot be reached ends it at once; the client's next datagram (its TURN
/// client retransmits) tries again.
async fn carry(stream: Stream, server: Server, queued: mpsc::Receiver<Vec<u8>>) {
    let target = format!("{}:{}", server.host, server.port);
    let connected = timeout(CONNECT_WITHIN, TcpStream::connect(&target)).await;
    let tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return tracing::warn!("TURN over TCP: cannot reach {target}: {e}"),
        Err(_) => return tracing::warn!("TURN over TCP: {target} did not answer"),
    };
    let _ = tcp.set_nodelay(true);
    let ended = match server.tls {
        None => pump(tcp, &stream, queued).await,
        Some((connector, name)) => {
            match timeout(CONNECT_WITHIN, connector.connect(name, tcp)).await {
                Ok(Ok(tls)) => pump(tls, &stream, queued).await,
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
            }
        }
    };
    if let Err(e) = ended {
        tracing::warn!("TURN over a stream to {target}: {e}");
    }
}

async fn pump<S>(
    server: S,
    stream: &Stream,
    mut queued: mpsc::Receiver<Vec<u8>>,
) -> Result<(), FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(server);
    let mut reader = BufReader::with_capacity(STREAM_BUFFER, reader);
    // Flushed whenever no message waits behind the one written.
    let mut writer = BufWriter::with_capacity(STREAM_BUFFER, writer);
    let to_server = async {
        while let Ok(Some(message)) = timeout(IDLE_LIMIT, queued.recv()).await {
            write_message(&mut writer, &message).await?;
            if queued.is_empty() {
                writer.flush().await?;
            }
        }
        Ok(())
    };
    let from_server = async {
        let mut buf = Vec::new();
        while read_message(&mut reader, &mut buf).await? {
            stream.deliver(&buf).await?;
        }
        Ok(())
    };
    tokio::select! {
        ended = to_server => ended,
        ended = from_server => ended,
    }
}

/// The tunnels of a mesh's TURN servers over TCP and TLS, by their URL.
#[derive(Default)]
pub(crate) struct TurnTunnels(HashMap<String, Arc<TurnTunnel>>);

impl std::fmt::Debug for TurnTunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl TurnTunnels {
    /// Tunnels for the TCP and TLS TURN servers among `servers`: those `self` has already
    /// are kept, the others opened. A tunnel that cannot open is left out with its reason.
    pub(crate) fn for_servers(&self, servers: &[IceServer]) -> (Self, Vec<(String, String)>) {
        let mut tunnels = HashMap::new();
        let mut failed = Vec::new();
        for server in servers {
            if let Some(tunnel) = self.0.get(&server.url) {
                tunnels.insert(server.url.clone(), tunnel.clone());
                continue;
            }
            match TurnTunnel::open(server) {
                Ok(Some(tunnel)) => {
                    tunnels.insert(server.url.clone(), Arc::new(tunnel));
                }
                Ok(None) => {}
                Err(e) => failed.push((server.url.clone(), e)),
            }
        }
        (Self(tunnels), failed)
    }

    /// `server` as the library (and the credential check) reaches it: at its tunnel's
    /// loopback URL when it has one, else as it is.
    pub(crate) fn reached_through(&self, server: &IceServer) -> IceServer {
        match self.0.get(&server.url) {
            Some(tunnel) => IceServer {
                url: tunnel.local_url(),
                ..server.clone()
            },
            None => server.clone(),
        }
    }

    /// How `url`'s server is reached, when that is through a tunnel.
    pub(crate) fn kind_of(&self, url: &str) -> Option<StreamKind> {
        self.0.get(url).map(|tunnel| tunnel.kind)
    }

    /// How the relay candidate at `relayed` reaches its server, when the server
    /// allocated it through one of these tunnels.
    pub(crate) fn stream_of(&self, relayed: SocketAddr) -> Option<StreamKind> {
        self.0
            .values()
            .find(|tunnel| lock(&tunnel.relayed).contains(&relayed))
            .map(|tunnel| tunnel.kind)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn server(url: &str) -> IceServer {
        IceServer {
            url: url.into(),
            username: Some("u".into()),
            credential: Some("p".into()),
        }
    }

    #[tokio::test]
    async fn tcp_and_tls_servers_get_a_tunnel_that_outlives_a_new_credential() {
        let servers = [
            server("stun:198.51.100.1:3478"),
            server("turn:198.51.100.1:3478?transport=udp"),
            server("turn:198.51.100.1:3478?transport=tcp"),
            server("turns:relay.example.org:5349?transport=tcp"),
        ];
        let (tunnels, failed) = TurnTunnels::default().for_servers(&servers);
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(tunnels.reached_through(&servers[0]), servers[0]);
        assert_eq!(tunnels.reached_through(&servers[1]), servers[1]);
        let tcp = tunnels.reached_through(&servers[2]);
        let tls = tunnels.reached_through(&servers[3]);
        assert!(tcp.url.starts_with("turn:127.0.0.1:") && tcp.url.ends_with("?transport=udp"));
        assert_eq!(
            tcp.credential, servers[2].credential,
            "the credentials go along"
        );
        assert_ne!(tcp.url, tls.url);

        let (again, _) = tunnels.for_servers(&servers[2..]);
        assert_eq!(again.reached_through(&servers[2]), tcp);
        let (none, _) = again.for_servers(&servers[..2]);
        assert!(none.0.is_empty());
    }
}
