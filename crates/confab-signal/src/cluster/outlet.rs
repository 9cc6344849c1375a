//! Messages to the other servers, published in order by one task; and a socket of
//! another server as the owner of its room delivers to it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::Client;
use bytes::{BufMut, Bytes, BytesMut};
use confab_proto::ServerFrame;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{ClusterMetrics, Kind, Outgoing, Request, SocketItem, ToSocket, wire};
use crate::registry::{ConnId, Refusal};

/// A socket of another server, as the owner of its room delivers to it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSocket {
    pub(crate) node: Arc<str>,
    pub(crate) conn: ConnId,
    pub(super) outlet: Outlet,
}

impl RemoteSocket {
    pub(crate) fn deliver(&self, frame: &ServerFrame) {
        self.send(SocketItem::Frame {
            json: frame.to_json(),
            welcome: matches!(frame, ServerFrame::Welcome { .. }),
        });
    }

    pub(crate) fn replaced(&self) {
        self.send(SocketItem::Replaced);
    }

    pub(super) fn refused(&self, refusal: Refusal) {
        self.send(SocketItem::Refused { refusal });
    }

    pub(super) fn lost(&self) {
        self.send(SocketItem::Lost);
    }

    fn send(&self, what: SocketItem) {
        let message = ToSocket {
            conn: self.conn,
            what,
        };
        self.outlet.to_socket(&self.node, message);
    }
}

/// A stream's messages waiting together for one subject go as one NATS message, a line
/// each, up to this many bytes: under load the bus and the receiver handle a batch for
/// the price of one message, and a lone message waits for nothing.
const BATCH_BYTES: usize = 64 * 1024;

/// One message waiting in the outbox.
#[derive(Debug)]
pub(super) struct Outbound {
    subject: String,
    payload: Bytes,
    /// A line of a stream (see `stream`), which may share a NATS message with the lines
    /// after it on the same subject.
    line: bool,
}

/// Messages for other servers, published in order by one task.
#[derive(Debug, Clone)]
pub(super) struct Outlet {
    pub(super) me: Arc<str>,
    pub(super) queue: mpsc::Sender<Outbound>,
    /// Numbered messages to other servers' sockets, kept for a resend.
    pub(super) outgoing: Arc<Mutex<Outgoing>>,
    /// Numbered relays (leaves, detaches) to the owners of this server's sockets' rooms,
    /// kept until the owner says it did them.
    pub(super) relays: Arc<Mutex<Outgoing>>,
    pub(super) metrics: Arc<ClusterMetrics>,
}

impl Outlet {
    pub(super) fn publish(&self, subject: String, message: &impl Serialize) {
        match serde_json::to_vec(message) {
            Ok(payload) => self.enqueue(subject, payload.into(), false),
            Err(e) => warn!("cluster message not encoded: {e}"),
        }
    }

    /// A numbered message for a socket of `node`. One that does not fit the queue is
    /// still kept: the receiver asks for it when it sees the gap.
    pub(super) fn to_socket(&self, node: &str, message: ToSocket) {
        // Numbered and queued under one lock, so numbers go out in order.
        let mut outgoing = self.outgoing();
        if let Some(payload) = outgoing.stamp(&self.me, node, message) {
            self.enqueue(wire::sockets(node), payload, true);
        }
    }

    /// A socket's relay (leave, detach) for `owner`, numbered. One that does not fit the
    /// queue is still kept: the owner asks for it when it sees the gap.
    pub(super) fn to_owner(&self, owner: &str, request: &Request) {
        let mut relays = self.relays();
        if let Some(payload) = relays.stamp(&self.me, owner, request) {
            self.enqueue(wire::relays(owner), payload, true);
        }
    }

    /// Sends again what `node` asked for.
    pub(super) fn resend(&self, node: &str, from: u64, stream: Kind) {
        let (kept, subject) = match stream {
            Kind::Sockets => (self.outgoing(), wire::sockets(node)),
            Kind::Relays => (self.relays(), wire::relays(node)),
        };
        for payload in kept.resend(node, from) {
            self.enqueue(subject.clone(), payload, true);
        }
    }

    pub(super) fn outgoing(&self) -> MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn relays(&self) -> MutexGuard<'_, Outgoing> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, subject: String, payload: Bytes, line: bool) {
        let message = Outbound {
            subject,
            payload,
            line,
        };
        if self.queue.try_send(message).is_err() {
            self.metrics.dropped.fetch_add(1, Relaxed);
            debug!("cluster outbox full: a message to another server was dropped");
        }
    }
}

/// Publishes what the registry and the heartbeat queue for other servers, in order.
/// Lines of a stream queued one after the other for the same subject go together.
pub(super) async fn publish_outbox(client: Client, mut outbox: mpsc::Receiver<Outbound>) {
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(message) => message,
            None => match outbox.recv().await {
                Some(message) => message,
                None => return,
            },
        };
        let Outbound {
            subject,
            mut payload,
            line,
        } = first;
        if line {
            let mut batch: Option<BytesMut> = None;
            let mut len = payload.len();
            while let Ok(more) = outbox.try_recv() {
                if !more.line
                    || more.subject != subject
                    || len + 1 + more.payload.len() > BATCH_BYTES
                {
                    next = Some(more);
                    break;
                }
                let joined = batch.get_or_insert_with(|| BytesMut::from(&payload[..]));
                joined.put_u8(b'\n');
                joined.put_slice(&more.payload);
                len = joined.len();
            }
            if let Some(joined) = batch {
                payload = joined.freeze();
            }
        }
        if let Err(e) = client.publish(subject, payload).await {
            debug!("cluster message not published: {e}");
        }
    }
}
