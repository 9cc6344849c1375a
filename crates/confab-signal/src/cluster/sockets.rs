//! This server's sockets in rooms owned elsewhere: asking the owner, sending it their
//! relays in order, delivering what it sends (in order, asking again for what was lost),
//! and attaching the sockets again when a room moves.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use confab_proto::ServerFrame;
use tokio::time::sleep;
use tracing::{debug, warn};

use super::{
    Cluster, Envelope, Incoming, Kind, Owner, Reply, Request, Resend, SocketItem, ToSocket, wire,
};
use crate::endpoint::Endpoint;
use crate::ice::Reached;
use crate::registry::{ConnId, MemberKey};
use crate::rooms::{ASK_AGAIN_AFTER, OWNER_PATIENCE};
use crate::session::ConnHandle;
use crate::shared::Shared;

/// A socket of this server in a room that another server owns (or owned).
#[derive(Debug)]
pub(super) struct HeldSocket {
    pub(super) handle: ConnHandle,
    pub(super) reached: Option<Reached>,
    pub(super) member: Option<Membership>,
    /// While its room moves: what the socket sent that its new owner must do, in order
    /// (what the old one had not done, then what came since).
    pub(super) parked: Option<Vec<Request>>,
    /// The socket closed while its room moved: it goes once what it parked is done.
    pub(super) closed: bool,
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
                parked: None,
                closed: false,
            },
        );
    }

    /// The socket joined (or was attached again) at `owner`.
    pub(crate) fn joined(&self, conn: ConnId, key: MemberKey, token: String, owner: String) {
        if let Some(socket) = self.sockets().get_mut(&conn) {
            socket.member = Some(Membership { key, token, owner });
        }
    }

    /// The socket is gone: nothing more is delivered to it. One whose room is moving
    /// stays until what it sent is done at the new owner (its detach or leave last).
    pub(crate) fn release(&self, conn: ConnId) {
        let mut sockets = self.sockets();
        match sockets.get_mut(&conn) {
            Some(socket) if socket.parked.is_some() => socket.closed = true,
            _ => {
                sockets.remove(&conn);
            }
        }
    }

    /// Sends a relay, leave or detach of a socket joined to a room owned elsewhere to the
    /// owner, without waiting: numbered in this server's stream to that owner, so that it
    /// is done in order, once. While the room moves it waits here, in order, until the
    /// socket is attached again. `request` makes it from `payload`; a socket not in a room
    /// owned elsewhere gets `payload` back.
    pub(crate) fn forward<P>(
        &self,
        conn: ConnId,
        payload: P,
        request: impl FnOnce(P, String) -> Request,
    ) -> Result<(), P> {
        let mut sockets = self.sockets();
        let Some(socket) = sockets.get_mut(&conn) else {
            return Err(payload);
        };
        let Some(member) = &socket.member else {
            return Err(payload);
        };
        if let Some(parked) = &mut socket.parked {
            parked.push(request(payload, self.me.to_string()));
            return Ok(());
        }
        if member.owner == *self.me {
            return Err(payload);
        }
        let request = request(payload, self.me.to_string());
        self.outlet.to_owner(&member.owner, &request);
        Ok(())
    }

    /// The socket was attached again after its room moved: what it parked goes to the
    /// new owner, in order, and later ones straight after.
    fn unpark(&self, shared: &Shared, conn: ConnId) {
        loop {
            let parked = {
                let mut sockets = self.sockets();
                let Some(socket) = sockets.get_mut(&conn) else {
                    return;
                };
                let Some(owner) = socket.member.as_ref().map(|m| m.owner.clone()) else {
                    return;
                };
                let parked = socket.parked.take().unwrap_or_default();
                // Sent under the lock, so that a death of the new owner (which parks the
                // socket again, under this lock) finds all of them in its stream.
                if owner != *self.me || parked.is_empty() {
                    for request in &parked {
                        self.outlet.to_owner(&owner, request);
                    }
                    if socket.closed {
                        sockets.remove(&conn);
                    }
                    return;
                }
                // Still parked while these are done here, outside the lock (the registry's
                // lock is taken before this one): what comes meanwhile waits behind them.
                socket.parked = Some(Vec::new());
                parked
            };
            for request in parked {
                self.serve_own(shared, conn, request);
            }
        }
    }

    /// Does a parked request of this server's own socket in a room now owned here.
    fn serve_own(&self, shared: &Shared, conn: ConnId, request: Request) {
        let refusal = match self.serve(shared, request) {
            Reply::Refused { refusal } => refusal,
            _ => return,
        };
        if let Some(socket) = self.sockets().get(&conn) {
            shared.metrics.count_error(refusal.code);
            socket
                .handle
                .deliver(&ServerFrame::error(refusal.code, refusal.message));
        }
    }
    pub(super) fn sockets(&self) -> MutexGuard<'_, HashMap<ConnId, HeldSocket>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frames (or kicks) from the owner of a room, for this server's sockets, delivered
    /// in the order they were sent.
    pub(super) fn on_socket_message(&self, shared: &Shared, line: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope<ToSocket>>(line) else {
            warn!("unreadable message for a socket from another server");
            return;
        };
        let sender = envelope.from.clone();
        let (ready, ask) = self.incoming().accept(envelope, Instant::now());
        self.ask_again(&sender, ask, Kind::Sockets);
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
                SocketItem::Refused { refusal } => {
                    shared.metrics.count_error(refusal.code);
                    socket
                        .handle
                        .deliver(&ServerFrame::error(refusal.code, refusal.message));
                }
                SocketItem::Lost => socket.handle.lost(),
            }
        }
    }

    /// Asks `sender` for what was lost on the way in one of its streams, from number
    /// `from` on.
    pub(super) fn ask_again(&self, sender: &str, from: Option<u64>, stream: Kind) {
        if let Some(from) = from {
            debug!(
                sender,
                from,
                ?stream,
                "messages from another server were lost: asked again"
            );
            let ask = Resend {
                node: self.me.to_string(),
                from,
                stream,
            };
            self.outlet.publish(wire::resends(sender), &ask);
        }
    }

    pub(super) fn incoming(&self) -> MutexGuard<'_, Incoming<ToSocket>> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Attaches a socket of this server again after its room's owner died, wherever the room
/// went, then has the new owner do what the socket parked meanwhile. A member that did
/// not survive the move (its grace ran out) has its socket dropped, so that the client
/// joins anew.
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
            cluster.unpark(&shared, conn);
        }
        Err(e) => {
            debug!(conn, "not attached again after its room moved: {e:?}");
            // Its member is gone: what it parked has no one to be done for, and what it
            // sends from now on goes the slow way, as requests.
            let mut sockets = cluster.sockets();
            if let Some(socket) = sockets.get_mut(&conn) {
                socket.parked = None;
                socket.member = None;
                if socket.closed {
                    sockets.remove(&conn);
                }
            }
            handle.lost();
        }
    }
}

/// Has the relays, leaves and detaches of a socket that has closed done by its room's
/// owner, in order, as requests: the owner they were sent to died before doing them.
pub(super) async fn redo(shared: Arc<Shared>, requests: Vec<Request>) {
    let Some(cluster) = shared.cluster.as_ref() else {
        return;
    };
    for request in requests {
        let deadline = Instant::now() + OWNER_PATIENCE;
        loop {
            let owner = shared.resolve(&mut shared.lock(), request.room());
            match owner {
                Owner::Here(_) => {
                    cluster.serve(&shared, request);
                    break;
                }
                Owner::There(owner) => {
                    if let Some(reply) = cluster.ask(&owner, &request).await
                        && !matches!(reply, Reply::NotOwner { .. })
                    {
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                debug!("a closed socket's request found no owner for its room");
                break;
            }
            sleep(ASK_AGAIN_AFTER).await;
        }
    }
}
