//! The accept loop, the HTTP side of the one port, and a handle to run a server in the
//! background.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::cluster::Cluster;
use crate::config::ServerConfig;
use crate::http::{self, HeadError, Route};
use crate::ice::Reached;
use crate::metrics::Metrics;
use crate::session;
use crate::shared::Shared;

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sockets get to finish their close handshakes when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub use crate::shared::ServerError;

/// A snapshot of a running server, for the app's settings and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerState {
    /// Open TCP connections (WebSocket or plain HTTP).
    pub connections: u64,
    pub rooms: usize,
    /// Members of rooms, counting those in their resume grace period.
    pub peers: usize,
    pub frames_relayed: u64,
}

/// Serves signaling on `listener` (and the relay, if the config has one) until `shutdown`
/// fires, then sends every client a close frame (1001) and returns once they are closed
/// (or after a short grace). Fails when the relay cannot start, when the cluster's NATS
/// server cannot be reached at start, and when the cluster stopped this server (it found
/// it dead and moved its rooms).
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let shared = Arc::new(Shared::start(config, shutdown).await?);
    serve(listener, shared.clone()).await;
    match shared.fenced.get() {
        Some(why) => Err(ServerError::Fenced(why.clone())),
        None => Ok(()),
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let tracker = TaskTracker::new();
    tracker.spawn(sweep_grace_periods(shared.clone()));
    if let Some(cluster) = &shared.cluster {
        tracker.spawn(Cluster::run(shared.clone()));
        // A server new to the cluster learns its rooms before it takes a join.
        cluster.sync().await;
    }
    if let (Some(announce), Ok(addr)) = (shared.config.announce.clone(), listener.local_addr()) {
        let tls = shared.config.tls.is_some();
        tracker.spawn(crate::lan::announce(announce, addr, tls, shared.clone()));
    }
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Signaling frames are small and latency matters more than packing.
                let _ = tcp.set_nodelay(true);
                tracker.spawn(handle_connection(tcp, peer, shared.clone()));
            }
            Err(e) => {
                // Out of file descriptors, typically: wait for some to free up.
                warn!("accept failed: {e}");
                sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    if timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!("some sockets did not close in time");
    }
    if let Some(relay) = &shared.relay {
        relay.stop().await;
    }
    info!("signaling server stopped");
}

/// Counts an open connection for as long as it lives.
struct OpenConnection<'a>(&'a Metrics);

impl<'a> OpenConnection<'a> {
    /// Counts the connection; tells whether it is over the limit.
    fn count(metrics: &'a Metrics, limit: usize) -> (Self, bool) {
        metrics.connections_total.fetch_add(1, Relaxed);
        let before = metrics.connections_open.fetch_add(1, Relaxed);
        (Self(metrics), before >= limit as u64)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

async fn handle_connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let (_open, over_limit) = OpenConnection::count(&shared.metrics, shared.config.max_connections);
    debug!(%peer, "connection");
    // The address the client reached: the relay it is handed is the one on that address.
    let reached = tcp.local_addr().ok().map(|a| Reached {
        ip: a.ip(),
        name: None,
    });
    match shared.config.tls.clone() {
        None => serve_connection(tcp, reached, over_limit, &shared).await,
        // Boxed: a TLS connection's state is large, and plain connections should not
        // carry room for it.
        Some(tls) => Box::pin(serve_tls(tcp, peer, reached, tls, over_limit, &shared)).await,
    }
}

async fn serve_tls(
    tcp: TcpStream,
    peer: SocketAddr,
    reached: Option<Reached>,
    tls: crate::tls::TlsConfig,
    over_limit: bool,
    shared: &Arc<Shared>,
) {
    let acceptor = TlsAcceptor::from(tls.server);
    match timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let name = stream.get_ref().1.server_name().map(str::to_owned);
            let reached = reached.map(|reached| Reached { name, ..reached });
            serve_connection(stream, reached, over_limit, shared).await
        }
        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
}

/// Answers plain HTTP, or upgrades and serves the WebSocket for as long as it lives.
async fn serve_connection<S>(
    stream: S,
    reached: Option<Reached>,
    over_limit: bool,
    shared: &Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The HTTP exchange runs boxed and is freed once it is over: an idle WebSocket then
    // holds only its session's state, a few KiB at most.
    let Some((stream, rest)) = Box::pin(answer_http(stream, over_limit, shared)).await else {
        return;
    };
    let ws =
        WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(shared.ws_config))
            .await;
    session::run(ws, reached, shared.clone()).await;
}

/// Reads one request and answers it. Returns the stream, and any bytes the client sent
/// after its head, when it was a WebSocket upgrade that was accepted.
async fn answer_http<S>(mut stream: S, over_limit: bool, shared: &Shared) -> Option<(S, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = match timeout(shared.config.join_timeout, http::read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::TooLarge)) => {
            let _ = http::respond(&mut stream, 431, "text/plain", "request head too large").await;
            return None;
        }
        Ok(Err(HeadError::Malformed(e))) => {
            let _ = http::respond(&mut stream, 400, "text/plain", &format!("{e}")).await;
            return None;
        }
        Ok(Err(e)) => {
            debug!("no request: {e}");
            return None;
        }
        Err(_) => return None,
    };
    let response = match head.route {
        Route::Health => http::respond(&mut stream, 200, "text/plain", "ok").await,
        Route::Metrics => {
            let (rooms, peers) = shared.lock().counts();
            let mut body = shared.metrics.render(rooms, peers);
            if let Some(cluster) = &shared.cluster {
                cluster.render_metrics(&mut body, rooms);
            }
            if let Some(relay) = &shared.relay {
                relay.metrics().render(&mut body);
            }
            http::respond(&mut stream, 200, "text/plain; version=0.0.4", &body).await
        }
        Route::Static { content_type, body } => {
            http::respond(&mut stream, 200, content_type, body).await
        }
        Route::Refuse { status, reason } => {
            http::respond(&mut stream, status, "text/plain", reason).await
        }
        Route::Upgrade { .. } if over_limit => {
            http::respond(&mut stream, 503, "text/plain", "too many connections").await
        }
        Route::Upgrade { key } => {
            return match http::switch_protocols(&mut stream, &key).await {
                Ok(()) => Some((stream, head.rest)),
                Err(e) => {
                    debug!("upgrade not sent: {e}");
                    None
                }
            };
        }
    };
    if let Err(e) = response {
        debug!("response not sent: {e}");
    }
    None
}

/// Ends grace periods as they fall due, telling the rooms.
async fn sweep_grace_periods(shared: Arc<Shared>) {
    loop {
        let next = shared.lock().next_expiry();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = shared.sweeper.notified() => {}
            () = due => {}
        }
        let mut registry = shared.lock();
        for delivery in registry.sweep(Instant::now()) {
            delivery.to.deliver(&delivery.frame);
        }
        shared.settle(&mut registry);
    }
}

/// A server running on a background task: what the desktop app's "host a server"
/// toggle holds, and what tests start on an ephemeral port.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(addr: SocketAddr, config: ServerConfig) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let shared = Arc::new(Shared::start(config, CancellationToken::new()).await?);
        let task = tokio::spawn(serve(listener, shared.clone()));
        info!(%addr, "signaling server listening");
        Ok(Self { addr, shared, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The built-in relay's listening addresses; empty when it runs none.
    pub fn relay_listeners(&self) -> &[SocketAddr] {
        self.shared.relay.as_ref().map_or(&[], |r| r.listeners())
    }

    /// Connections, rooms, peers and relayed frames right now.
    pub fn state(&self) -> ServerState {
        let (rooms, peers) = self.shared.lock().counts();
        let metrics = &self.shared.metrics;
        ServerState {
            connections: metrics.connections_open.load(Relaxed),
            rooms,
            peers,
            frames_relayed: metrics.frames_relayed.load(Relaxed),
        }
    }

    /// Closes every socket with a close frame and stops listening.
    pub async fn stop(self) {
        self.shared.shutdown.cancel();
        let _ = self.task.await;
    }
}
