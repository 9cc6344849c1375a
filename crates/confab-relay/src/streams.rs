//! The relay's TCP and TLS listeners, for networks that let no UDP out (RFC 8656 section
//! 3.1: a client may reach its TURN server over TCP or TLS; what it relays stays UDP).
//! The turn crate serves packet connections, so each listener is one to it: a "datagram"
//! is one message of one client's stream, and the client is named by its stream's remote
//! address, which is also its 5-tuple's. When a stream ends, its allocation is deleted
//! on the client's behalf (`farewell.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use webrtc_util::Conn;

use crate::credentials::rest_credential;
use crate::farewell::Signed;
use crate::framing::{FramingError, read_message, write_message};
use crate::metrics::{Refusal, RelayMetrics};
use crate::peer_bandwidth::PeerBandwidth;
use crate::sockets::unsupported;

/// A new connection must finish its TLS handshake and send its first message within this.
const FIRST_MESSAGE_WITHIN: Duration = Duration::from_secs(10);
/// A connection silent this long is closed: an allocation lives 10 minutes unless
/// refreshed, so whatever it carried has expired by then.
const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// Messages waiting to be written to one client. When a client reads too slowly the
/// newest are dropped, as a full UDP socket drops them, and no other client waits.
const OUTBOUND_QUEUE: usize = 1024;
/// Messages read from all clients and not yet taken by the turn crate.
const INBOUND_QUEUE: usize = 1024;
/// Read and write buffers of each client's stream. A relayed data channel sends a message
/// of about 1.2 KB per packet, tens of thousands a second: unbuffered, each took two read
/// calls (header, then body) and up to two writes (message, then padding). A burst now
/// moves in a few calls each way; 16 KiB each keeps a thousand clients near 32 MiB.
const STREAM_BUFFER: usize = 16 * 1024;

type Clients = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// One TCP (or TLS) listener as a packet connection.
pub(crate) struct StreamListener {
    local: SocketAddr,
    bandwidth: Arc<PeerBandwidth>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    clients: Clients,
    accepting: JoinHandle<()>,
}

impl StreamListener {
    /// Starts accepting on `listener`, with TLS when `tls` is given; at most
    /// `max_clients` connections at once (more are closed as they come, counted as a
    /// capacity refusal). `secret` makes the REST passwords a farewell is signed with;
    /// what clients relay is charged to `bandwidth`.
    pub(crate) fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        max_clients: usize,
        metrics: Arc<RelayMetrics>,
        secret: Arc<str>,
        bandwidth: Arc<PeerBandwidth>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (incoming_tx, incoming) = mpsc::channel(INBOUND_QUEUE);
        let clients = Clients::default();
        let accepting = tokio::spawn(accept(
            listener,
            tls,
            Arc::new(Semaphore::new(max_clients)),
            Client {
                incoming: incoming_tx,
                clients: clients.clone(),
                secret,
            },
            metrics,
        ));
        Ok(Self {
            local,
            bandwidth,
            incoming: tokio::sync::Mutex::new(incoming),
            clients,
            accepting,
        })
    }
}

impl Drop for StreamListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// What each connection's task shares with the listener.
#[derive(Clone)]
struct Client {
    incoming: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    clients: Clients,
    secret: Arc<str>,
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    places: Arc<Semaphore>,
    client: Client,
    metrics: Arc<RelayMetrics>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was taken: the
                // listener itself is fine.
                tracing::debug!("TURN stream listener: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            metrics.refuse(Refusal::Capacity);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, from, tls.clone(), client.clone(), place));
    }
}

async fn serve(
    stream: TcpStream,
    from: SocketAddr,
    tls: Option<TlsAcceptor>,
    client: Client,
    _place: OwnedSemaphorePermit,
) {
    let ended = match tls {
        None => carry(stream, from, &client).await,
        Some(acceptor) => match timeout(FIRST_MESSAGE_WITHIN, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => carry(stream, from, &client).await,
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Ok(()),
        },
    };
    if let Err(e) = ended {
        tracing::debug!("TURN client {from} over a stream: {e}");
    }
}

/// Carries one client's messages both ways until its stream ends, fails or idles.
async fn carry<S>(stream: S, from: SocketAddr, client: &Client) -> Result<(), FramingError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(STREAM_BUFFER, reader);
    // Flushed whenever no message waits behind the one written.
    let mut writer = BufWriter::with_capacity(STREAM_BUFFER, writer);
    let (outbound, mut queued) = mpsc::channel::<Vec<u8>>(OUTBOUND_QUEUE);
    lock(&client.clients).insert(from, outbound);
    let writing = async {
        while let Some(message) = queued.recv().await {
            write_message(&mut writer, &message).await?;
            if queued.is_empty() {
                writer.flush().await?;
            }
        }
        Ok(())
    };
    // The credentials of the client's last signed request, for its farewell.
    let mut last_signed = None;
    let reading = async {
        let mut buf = Vec::new();
        let mut within = FIRST_MESSAGE_WITHIN;
        loop {
            match timeout(within, read_message(&mut reader, &mut buf)).await {
                Err(_) | Ok(Ok(false)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(true)) => {}
            }
            within = IDLE_LIMIT;
            if let Some(signed) = Signed::of(&buf) {
                last_signed = Some(signed);
            }
            if client.incoming.send((buf.clone(), from)).await.is_err() {
                return Ok(());
            }
        }
    };
    let ended = tokio::select! {
        ended = writing => ended,
        ended = reading => ended,
    };
    lock(&client.clients).remove(&from);
    if let Some(signed) = last_signed {
        say_goodbye(&signed, from, client).await;
    }
    ended
}

/// Deletes the allocation of a client whose stream ended, if it has one: a Refresh with
/// LIFETIME 0 in its name. One it never had is answered with an error that goes nowhere.
async fn say_goodbye(signed: &Signed, from: SocketAddr, client: &Client) {
    let password = rest_credential(&client.secret, &signed.username);
    match signed.farewell(&password) {
        Ok(farewell) => {
            let _ = client.incoming.send((farewell, from)).await;
        }
        Err(e) => tracing::debug!("no farewell for TURN client {from}: {e}"),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Conn for StreamListener {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(unsupported("connect"))
    }
    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(unsupported("recv"))
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut incoming = self.incoming.lock().await;
        loop {
            let Some((message, from)) = incoming.recv().await else {
                return Err(webrtc_util::Error::Other("the listener stopped".into()));
            };
            if !self.bandwidth.admit_from(from, &message) {
                continue;
            }
            // The turn crate reads into a buffer of one MTU, as UDP would bring: a longer
            // message is dropped as an oversized datagram would be.
            if let Some(into) = buf.get_mut(..message.len()) {
                into.copy_from_slice(&message);
                return Ok((message.len(), from));
            }
            tracing::debug!(
                "TURN client {from}: dropped a {} byte message",
                message.len()
            );
        }
    }
    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(unsupported("send"))
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.bandwidth.admit_to(target, buf) {
            return Ok(buf.len());
        }
        let client = lock(&self.clients).get(&target).cloned();
        // A client gone, or one whose queue is full, loses the message as a UDP client
        // would: the relay's other clients never wait for it.
        if let Some(client) = client {
            let _ = client.try_send(buf.to_vec());
        }
        Ok(buf.len())
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    /// Nothing: the turn crate closes the listener's connection with every allocation
    /// it ends. The listener stops when the last holder drops it, and each client's
    /// stream ends with its queue's sender, held in the listener's map.
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
