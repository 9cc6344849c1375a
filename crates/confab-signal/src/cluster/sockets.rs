//! This server's sockets in rooms owned elsewhere: asking the owner, delivering what it
//! sends (in order, asking again for what was lost), and attaching the sockets again
//! when a room moves.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use async_nats::Message;
use bytes::Bytes;
use confab_proto::ServerFrame;
use tracing::{debug, warn};

use super::{Cluster, Envelope, Incoming, Reply, Request, Resend, SocketItem, wire};
use crate::endpoint::Endpoint;
use crate::ice::Reached;
use crate::registry::{ConnId, MemberKey};
use crate::session::ConnHandle;
use crate::shared::Shared;

/// A socket of this server in a room that another server owns (or owned).
#[derive(Debug)]
pub(super) struct HeldSocket {
    pub(super) handle: ConnHandle,
    pub(super) reached: Option<Reached>,
    pub(super) member: Option<Membership>,
}

#[derive(Debug, Clone)]
pub(super) struct Membership {
    pub(super) key: MemberKey,
    pub(super) token: String,
    pub(super) owner: String,
}

impl Cluster {
    /// Asks `owner` once. Errors (no such server, a timeout, the bus down) are for the
    /// caller to retry once the ring has caught up.
    pub(crate) async fn ask(&self, owner: &str, request: &Request) -> Option<Reply> {
        let payload = serde_json::to_vec(request).ok()?;
        match self
            .client
            .request(wire::requests(owner), Bytes::from(payload))
            .await
        {
            Ok(message) => match serde_json::from_slice(&message.payload) {
                Ok(reply) => Some(reply),
                Err(e) => {
                    warn!(owner, "unreadable reply from another server: {e}");
                    None
                }
            },
            Err(e) => {
                debug!(owner, "request not answered: {e}");
                None
            }
        }
    }

    /// A socket about to join a room another server owns: frames for it come here.
    pub(crate) fn hold(&self, handle: &ConnHandle, reached: Option<&Reached>) {
        self.sockets().insert(
            handle.conn_id(),
            HeldSocket {
                handle: handle.clone(),
                reached: reached.cloned(),
                member: None,
            },
        );
    }

    /// The socket joined (or was attached again) at `owner`.
    pub(crate) fn joined(&self, conn: ConnId, key: MemberKey, token: String, owner: String) {
        if let Some(socket) = self.sockets().get_mut(&conn) {
            socket.member = Some(Membership { key, token, owner });
        }
    }

    /// The socket is gone: nothing more is delivered to it.
    pub(crate) fn release(&self, conn: ConnId) {
        self.sockets().remove(&conn);
    }

    pub(super) fn sockets(&self) -> MutexGuard<'_, HashMap<ConnId, HeldSocket>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frames (or kicks) from the owner of a room, for this server's sockets, delivered
    /// in the order they were sent.
    pub(super) fn on_socket_message(&self, shared: &Shared, message: &Message) {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(&message.payload) else {
            warn!("unreadable message for a socket from another server");
            return;
        };
        let sender = envelope.from.clone();
        let (ready, ask) = self.incoming().accept(envelope, Instant::now());
        self.ask_again(&sender, ask);
        let sockets = self.sockets();
        for to in ready {
            let Some(socket) = sockets.get(&to.conn) else {
                continue;
            };
            match to.what {
                SocketItem::Frame {
                    json,
                    welcome: false,
                } => {
                    socket.handle.deliver_json(json);
                }
                SocketItem::Frame {
                    json,
                    welcome: true,
                } => match ServerFrame::parse(&json) {
                    Ok(frame) => {
                        socket
                            .handle
                            .deliver(&shared.with_ice_servers(socket.reached.as_ref(), &frame));
                    }
                    Err(e) => warn!("unreadable welcome from another server: {e}"),
                },
                SocketItem::Replaced => socket.handle.replaced(),
            }
        }
    }

    /// Asks `sender` for what was lost on the way, from number `from` on.
    pub(super) fn ask_again(&self, sender: &str, from: Option<u64>) {
        if let Some(from) = from {
            debug!(
                sender,
                from, "messages from another server were lost: asked again"
            );
            let ask = Resend {
                node: self.me.to_string(),
                from,
            };
            self.outlet.publish(wire::resends(sender), &ask);
        }
    }

    pub(super) fn incoming(&self) -> MutexGuard<'_, Incoming> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Attaches a socket of this server again after its room's owner died, wherever the room
/// went. A member that did not survive the move (its grace ran out) has its socket
/// dropped, so that the client joins anew.
pub(super) async fn reattach(shared: Arc<Shared>, conn: ConnId) {
    let Some(cluster) = shared.cluster.as_ref() else {
        return;
    };
    let held = {
        let sockets = cluster.sockets();
        sockets
            .get(&conn)
            .and_then(|s| s.member.clone().map(|m| (s.handle.clone(), m)))
    };
    let Some((handle, member)) = held else {
        return;
    };
    let attached = shared
        .route(
            &member.key.room,
            (),
            |registry, ()| {
                registry
                    .reattach(&member.key, &member.token, Endpoint::Local(handle.clone()))
                    .map(|kept| {
                        for frame in &kept {
                            handle.deliver(frame);
                        }
                    })
            },
            |()| Request::Reattach {
                key: member.key.clone(),
                token: member.token.clone(),
                node: cluster.me.to_string(),
                conn,
            },
            |reply| match reply {
                Reply::Done => Some(Ok(())),
                Reply::Refused { refusal } => Some(Err(refusal)),
                _ => None,
            },
        )
        .await;
    match attached {
        Ok(((), owner)) => {
            debug!(conn, room = %member.key.room, "attached again after its room moved");
            let owner = owner.unwrap_or_else(|| cluster.me.to_string());
            cluster.joined(conn, member.key, member.token, owner);
        }
        Err(e) => {
            debug!(conn, "not attached again after its room moved: {e:?}");
            handle.lost();
        }
    }
}
