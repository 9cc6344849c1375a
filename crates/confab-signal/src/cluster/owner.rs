//! The rooms this server owns: answering other servers' requests for them, telling
//! the cluster how they change, and taking rooms over from a server that is gone.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use async_nats::Message;
use bytes::Bytes;
use tracing::{debug, info, warn};

use super::{
    Ack, ClaimMessage, Cluster, Envelope, Incoming, Kind, Owner, RemoteSocket, Reply, Request,
    reattach, redo, wire,
};
use crate::endpoint::Endpoint;
use crate::registry::{Conn, ConnId, MemberKey, Registry, RoomSnapshot};
use crate::shared::Shared;

/// What the owner of a room remembers of a socket on another server.
#[derive(Debug)]
pub(super) struct RemoteMember {
    pub(super) key: MemberKey,
    pub(super) token: String,
    /// The number of its last relay done.
    pub(super) relays: u64,
}

impl Cluster {
    /// A member resumed on one of this server's own sockets: a socket of another server
    /// no longer holds its id.
    pub(crate) fn forget_remote_member(&self, key: &MemberKey) {
        self.members().retain(|_, m| m.key != *key);
    }

    /// Takes over a room from a server that is gone: members whose sockets are on a
    /// server alive (this one included) stay attached, the others wait for a resume.
    pub(crate) fn restore(
        &self,
        shared: &Shared,
        registry: &mut Registry<Endpoint>,
        snapshot: RoomSnapshot,
        now: Instant,
    ) {
        let sockets = self.sockets();
        let ring = self.ring();
        registry.restore(snapshot, now, shared.next_conn_id(), |socket| {
            if socket.node == *self.me {
                let held = sockets.get(&socket.conn)?;
                Some(Endpoint::Local(held.handle.clone()))
            } else if ring.is_alive(&socket.node) {
                Some(self.remote(&socket.node, socket.conn))
            } else {
                None
            }
        });
        shared.sweeper.notify_one();
    }

    /// The registry's changed rooms, told to the other servers.
    pub(crate) fn publish_changes(&self, registry: &mut Registry<Endpoint>) {
        for room in registry.take_changed() {
            let claim = ClaimMessage {
                snapshot: registry.snapshot(&room, &self.me),
                room,
                owner: self.me.to_string(),
            };
            self.outlet.publish(wire::CLAIMS.to_owned(), &claim);
        }
    }

    /// An endpoint for a socket of `node`, as the owner's registry keeps it.
    pub(super) fn remote(&self, node: &str, conn: ConnId) -> Endpoint {
        Endpoint::Remote(self.remote_socket(node, conn))
    }

    fn remote_socket(&self, node: &str, conn: ConnId) -> RemoteSocket {
        RemoteSocket {
            node: node.into(),
            conn,
            outlet: self.outlet.clone(),
        }
    }

    /// A server is gone: its sockets in rooms here start their grace periods, the rooms it
    /// owned that this server wins are taken over, and this server's sockets in rooms it
    /// owned are attached again wherever those rooms went.
    pub(super) fn on_death(&self, shared: &Arc<Shared>, node: &str) {
        let now = Instant::now();
        self.outlet.outgoing().forget(node);
        self.incoming().forget(node);
        self.relays_in().forget(node);
        self.members().retain(|(of, _), _| of != node);
        {
            let mut registry = shared.lock();
            let detached = registry.detach_where(|e| e.node() == Some(node), now);
            let orphans = self.ring().orphans();
            let adopted = orphans.len();
            for snapshot in orphans {
                self.restore(shared, &mut registry, snapshot, now);
            }
            self.publish_changes(&mut registry);
            if detached + adopted > 0 {
                info!(%node, detached, adopted, "took over from a server that is gone");
                shared.sweeper.notify_one();
            }
        }
        // What the dead owner had not acknowledged: a socket still open waits for its
        // room to be found, holding its own in order before anything it sends meanwhile;
        // what sockets that have closed since sent (their leave or detach last) goes as
        // requests.
        let (moved, undone): (Vec<ConnId>, _) = {
            // Taken with the sockets locked, as a socket sends under that lock: nothing
            // goes to the dead owner's stream after it was taken.
            let mut sockets = self.sockets();
            let mut undone = by_socket(&self.outlet.relays().forget(node));
            let moved = sockets
                .iter_mut()
                .filter(|(_, s)| s.member.as_ref().is_some_and(|m| m.owner == node))
                .map(|(conn, socket)| {
                    let mut parked = undone.remove(conn).unwrap_or_default();
                    parked.extend(socket.parked.take().unwrap_or_default());
                    socket.parked = Some(parked);
                    *conn
                })
                .collect();
            (moved, undone)
        };
        for conn in moved {
            tokio::spawn(reattach(shared.clone(), conn));
        }
        for (_, requests) in undone {
            tokio::spawn(redo(shared.clone(), requests));
        }
    }

    pub(super) fn members(&self) -> MutexGuard<'_, HashMap<(String, ConnId), RemoteMember>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn relays_in(&self) -> MutexGuard<'_, Incoming<Request>> {
        self.relays_in.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A relay (leave, detach) of another server's socket, done in the order sent.
    pub(super) fn on_relay(&self, shared: &Shared, line: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope<Request>>(line) else {
            warn!("unreadable relay from another server");
            return;
        };
        let sender = envelope.from.clone();
        let (ready, ask) = self.relays_in().accept(envelope, Instant::now());
        self.ask_again(&sender, ask, Kind::Relays);
        for request in ready {
            let relay_from = match &request {
                Request::Relay { conn, .. } => Some(*conn),
                _ => None,
            };
            match (self.serve(shared, request), relay_from) {
                (Reply::Refused { refusal }, Some(conn)) => {
                    self.remote_socket(&sender, conn).refused(refusal);
                }
                (Reply::NotOwner { owner }, Some(conn)) => {
                    debug!(%owner, "a relay for a room owned elsewhere: its socket resumes");
                    self.remote_socket(&sender, conn).lost();
                }
                _ => {}
            }
        }
    }

    /// Tells each server whose relays were done since the last time how far they are.
    /// It goes through the outbox behind the frames those relays made: a sender that
    /// hears it knows they are on their way, even if this server dies the next moment.
    pub(super) fn acknowledge(&self) {
        let done = self.relays_in().done();
        for (node, done) in done {
            let ack = Ack {
                node: self.me.to_string(),
                done,
            };
            self.outlet.publish(wire::acks(&node), &ack);
        }
    }

    /// Serves one request for a room this server owns, or says who does.
    pub(super) fn answer(&self, shared: &Shared, message: Message) {
        let Some(reply_to) = message.reply else {
            return;
        };
        let reply = match serde_json::from_slice::<Request>(&message.payload) {
            Ok(request) => self.serve(shared, request),
            Err(e) => {
                warn!("unreadable request from another server: {e}");
                return;
            }
        };
        // The reply goes through the outbox, behind the frames the request made: a
        // sender that got its answer knows they are on their way, even if this server
        // dies the next moment.
        self.outlet.publish(reply_to.to_string(), &reply);
    }

    pub(super) fn serve(&self, shared: &Shared, request: Request) -> Reply {
        let mut registry = shared.lock();
        if let Owner::There(owner) = shared.resolve(&mut registry, request.room()) {
            return Reply::NotOwner { owner };
        }
        let reply = match request {
            Request::Join { join, node, conn } => {
                let mut members = self.members();
                let socket = (node, conn);
                match members.get(&socket) {
                    Some(done) if registry.holds(&done.key, conn) => Ok(Reply::Joined {
                        key: done.key.clone(),
                        token: done.token.clone(),
                    }),
                    _ => {
                        let endpoint = self.remote(&socket.0, conn);
                        let welcome_to = endpoint.clone();
                        shared
                            .join_here(&mut registry, &join, endpoint, |frame| {
                                welcome_to.deliver(frame);
                            })
                            .map(|(key, token)| {
                                // A resume takes the id from whichever socket held it.
                                members.retain(|_, m| m.key != key);
                                let member = RemoteMember {
                                    key: key.clone(),
                                    token: token.clone(),
                                    relays: 0,
                                };
                                members.insert(socket, member);
                                Reply::Joined { key, token }
                            })
                    }
                }
            }
            Request::Reattach {
                key,
                token,
                node,
                conn,
            } => {
                let endpoint = self.remote(&node, conn);
                registry
                    .reattach(&key, &token, endpoint.clone())
                    .map(|kept| {
                        for frame in &kept {
                            endpoint.deliver(frame);
                        }
                        let member = RemoteMember {
                            key,
                            token,
                            relays: 0,
                        };
                        self.members().insert((node, conn), member);
                        Reply::Done
                    })
            }
            Request::Relay {
                from,
                to,
                data,
                node,
                conn,
                seq,
            } => {
                let mut members = self.members();
                match members.get_mut(&(node, conn)) {
                    Some(member) if seq <= member.relays => Ok(Reply::Done),
                    member => Shared::relay_here(&mut registry, &from, &to, data).map(|()| {
                        if let Some(member) = member {
                            member.relays = seq;
                        }
                        Reply::Done
                    }),
                }
            }
            Request::List { key } => Ok(Reply::Peers {
                peers: registry.peers(&key),
            }),
            Request::Leave { key, node, conn } => {
                self.members().remove(&(node, conn));
                Shared::leave_here(&mut registry, &key, conn);
                Ok(Reply::Done)
            }
            Request::Detach { key, node, conn } => {
                self.members().remove(&(node, conn));
                shared.detach_here(&mut registry, &key, conn);
                Ok(Reply::Done)
            }
        };
        self.publish_changes(&mut registry);
        reply.unwrap_or_else(|refusal| Reply::Refused { refusal })
    }
}

/// Kept messages of a stream of relays, read again and grouped by socket, each group in
/// the order sent.
fn by_socket(kept: &[Bytes]) -> HashMap<ConnId, Vec<Request>> {
    let mut out: HashMap<ConnId, Vec<Request>> = HashMap::new();
    for bytes in kept {
        match serde_json::from_slice::<Envelope<Request>>(bytes) {
            Ok(envelope) => {
                if let Some(conn) = envelope.item.conn() {
                    out.entry(conn).or_default().push(envelope.item);
                }
            }
            Err(e) => warn!("a kept relay could not be read again: {e}"),
        }
    }
    out
}
