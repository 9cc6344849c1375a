//! What a session asks of its room, wherever the room lives: in this server's registry,
//! or, in a cluster, in the registry of the server that owns it (asked over NATS, and
//! asked again while ownership moves; relays, leaves and detaches are sent there in
//! order without waiting for an answer).

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use confab_proto::{IceServerInfo, Join, PeerInfo, ServerFrame};
use serde_json::Value;
use tokio::time::sleep;

use crate::cluster::{Owner, Reply, Request};
use crate::endpoint::Endpoint;
use crate::ice::Reached;
use crate::registry::{ConnId, MemberKey, Refusal, Registry, Secrets};
use crate::session::ConnHandle;
use crate::shared::Shared;

/// How long a socket's request waits for its room's owner to answer, across an owner's
/// death and the bus reconnecting, before the socket is dropped (its client resumes).
pub(crate) const OWNER_PATIENCE: Duration = Duration::from_secs(15);
/// The pause before asking again, while the cluster learns where a room went.
pub(crate) const ASK_AGAIN_AFTER: Duration = Duration::from_millis(100);

/// Why a request about a room was not done.
#[derive(Debug)]
pub(crate) enum RoomError {
    /// The room's rules said no: the client gets this error frame.
    Refused(Refusal),
    /// No server of the cluster answered for the room in time.
    Unreachable,
}

impl Shared {
    /// Joins (or resumes) `conn` in a room. The welcome and any kept signals reach the
    /// socket's queue before anything else for it.
    pub(crate) async fn join(
        &self,
        join: &Join,
        conn: &ConnHandle,
        reached: Option<&Reached>,
    ) -> Result<MemberKey, RoomError> {
        // Frames for the socket may come from another server, the welcome first.
        if let Some(cluster) = &self.cluster {
            cluster.hold(conn, reached);
        }
        let joined = self
            .route(
                &join.room,
                (),
                |registry, ()| {
                    self.join_here(registry, join, Endpoint::Local(conn.clone()), |f| {
                        conn.deliver(&self.with_ice_servers(reached, f));
                    })
                },
                |()| Request::Join {
                    join: join.clone(),
                    node: self.node_name(),
                    conn: conn.conn_id(),
                },
                |reply| match reply {
                    Reply::Joined { key, token } => Some(Ok((key, token))),
                    Reply::Refused { refusal } => Some(Err(refusal)),
                    _ => None,
                },
            )
            .await;
        let Some(cluster) = &self.cluster else {
            return joined.map(|((key, _), _)| key);
        };
        match joined {
            Ok(((key, token), Some(owner))) => {
                cluster.joined(conn.conn_id(), key.clone(), token, owner);
                Ok(key)
            }
            Ok(((key, _), None)) => {
                cluster.release(conn.conn_id());
                cluster.forget_remote_member(&key);
                Ok(key)
            }
            Err(e) => {
                cluster.release(conn.conn_id());
                Err(e)
            }
        }
    }

    /// Relays a signal from `from` (on socket `conn`) to the member `to` of its room.
    /// `seq` counts the socket's relays. In a room owned by another server it is sent on
    /// without waiting, and a refusal comes back later as an error frame.
    pub(crate) async fn relay(
        &self,
        from: &MemberKey,
        to: &str,
        data: Value,
        (conn, seq): (ConnId, u64),
    ) -> Result<(), RoomError> {
        let data = match &self.cluster {
            Some(cluster) => {
                let sent = cluster.forward(conn, data, |data, node| Request::Relay {
                    from: from.clone(),
                    to: to.to_owned(),
                    data,
                    node,
                    conn,
                    seq,
                });
                match sent {
                    Ok(()) => {
                        self.metrics.frames_relayed.fetch_add(1, Relaxed);
                        cluster.metrics.forwarded.fetch_add(1, Relaxed);
                        return Ok(());
                    }
                    Err(data) => data,
                }
            }
            None => data,
        };
        let (_, owner) = self
            .route(
                &from.room,
                data,
                |registry, data| Self::relay_here(registry, from, to, data),
                |data| Request::Relay {
                    from: from.clone(),
                    to: to.to_owned(),
                    data: data.clone(),
                    node: self.node_name(),
                    conn,
                    seq,
                },
                |reply| match reply {
                    Reply::Done => Some(Ok(())),
                    Reply::Refused { refusal } => Some(Err(refusal)),
                    _ => None,
                },
            )
            .await?;
        self.metrics.frames_relayed.fetch_add(1, Relaxed);
        if let (Some(cluster), Some(_)) = (&self.cluster, owner) {
            cluster.metrics.forwarded.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Everyone in the member's room but itself.
    pub(crate) async fn peers(&self, key: &MemberKey) -> Result<Vec<PeerInfo>, RoomError> {
        self.route(
            &key.room,
            (),
            |registry, ()| Ok(registry.peers(key)),
            |()| Request::List { key: key.clone() },
            |reply| match reply {
                Reply::Peers { peers } => Some(Ok(peers)),
                _ => None,
            },
        )
        .await
        .map(|(peers, _)| peers)
    }

    /// The member left: the room hears at once (after what the socket sent before).
    pub(crate) async fn leave(&self, key: &MemberKey, conn: ConnId) -> Result<(), RoomError> {
        if self.forward(conn, |node| Request::Leave {
            key: key.clone(),
            node,
            conn,
        }) {
            return Ok(());
        }
        let left = self
            .route(
                &key.room,
                (),
                |registry, ()| {
                    Self::leave_here(registry, key, conn);
                    Ok(())
                },
                |()| Request::Leave {
                    key: key.clone(),
                    node: self.node_name(),
                    conn,
                },
                done,
            )
            .await;
        self.release(conn);
        left.map(|_| ())
    }

    /// The member's socket dropped: its id waits for a resume.
    pub(crate) async fn detach(&self, key: &MemberKey, conn: ConnId) -> Result<(), RoomError> {
        if self.forward(conn, |node| Request::Detach {
            key: key.clone(),
            node,
            conn,
        }) {
            return Ok(());
        }
        let detached = self
            .route(
                &key.room,
                (),
                |registry, ()| {
                    self.detach_here(registry, key, conn);
                    Ok(())
                },
                |()| Request::Detach {
                    key: key.clone(),
                    node: self.node_name(),
                    conn,
                },
                done,
            )
            .await;
        self.release(conn);
        detached.map(|_| ())
    }

    /// This server's name in its cluster; empty when it serves alone.
    fn node_name(&self) -> String {
        self.cluster
            .as_ref()
            .map_or_else(String::new, |c| c.me().to_owned())
    }

    /// Sends a leave or detach to the owner of the socket's room, behind the socket's
    /// relays, and lets the socket go. False when the room is not owned elsewhere.
    fn forward(&self, conn: ConnId, request: impl FnOnce(String) -> Request) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        let sent = cluster.forward(conn, (), |(), node| request(node)).is_ok();
        if sent {
            cluster.release(conn);
        }
        sent
    }

    /// A socket that is gone gets nothing more from other servers.
    pub(crate) fn release(&self, conn: ConnId) {
        if let Some(cluster) = &self.cluster {
            cluster.release(conn);
        }
    }

    /// Does `here` when this server holds (or now takes over) the room; otherwise asks its
    /// owner the `request` made (once) from `payload`, and asks again while the cluster
    /// learns where the room is. `payload` goes to whichever is needed, so a lone server
    /// copies nothing to build a request it never sends. Returns what was done, and the
    /// owner asked (`None` when it was done here).
    pub(crate) async fn route<P, T>(
        &self,
        room: &str,
        payload: P,
        here: impl FnOnce(&mut Registry<Endpoint>, P) -> Result<T, Refusal>,
        request: impl Fn(&P) -> Request,
        answer: impl Fn(Reply) -> Option<Result<T, Refusal>>,
    ) -> Result<(T, Option<String>), RoomError> {
        let deadline = Instant::now() + OWNER_PATIENCE;
        let mut asking = None;
        loop {
            let owner = {
                let mut registry = self.lock();
                match self.resolve(&mut registry, room) {
                    Owner::Here(_) => {
                        let done = here(&mut registry, payload);
                        self.settle(&mut registry);
                        return done.map(|t| (t, None)).map_err(RoomError::Refused);
                    }
                    Owner::There(owner) => owner,
                }
            };
            let Some(cluster) = &self.cluster else {
                return Err(RoomError::Unreachable);
            };
            let asking = asking.get_or_insert_with(|| request(&payload));
            if let Some(reply) = cluster.ask(&owner, asking).await
                && let Some(done) = answer(reply)
            {
                return done.map(|t| (t, Some(owner))).map_err(RoomError::Refused);
            }
            if Instant::now() >= deadline {
                return Err(RoomError::Unreachable);
            }
            sleep(ASK_AGAIN_AFTER).await;
        }
    }

    /// Where `room` lives. A room whose owner died and that this server now wins is
    /// taken over here first.
    pub(crate) fn resolve(&self, registry: &mut Registry<Endpoint>, room: &str) -> Owner {
        let Some(cluster) = &self.cluster else {
            return Owner::Here(None);
        };
        if registry.has_room(room) {
            return Owner::Here(None);
        }
        match cluster.owner_of(room) {
            Owner::Here(Some(snapshot)) => {
                cluster.restore(self, registry, snapshot, Instant::now());
                Owner::Here(None)
            }
            owner => owner,
        }
    }

    /// Tells the other servers of the cluster what changed in the registry.
    pub(crate) fn settle(&self, registry: &mut Registry<Endpoint>) {
        match &self.cluster {
            Some(cluster) => cluster.publish_changes(registry),
            None => {
                registry.take_changed();
            }
        }
    }

    /// Joins `endpoint` in this server's registry: `reply` gets the welcome and any kept
    /// signals, the others hear of it. Returns the member and its token.
    pub(crate) fn join_here(
        &self,
        registry: &mut Registry<Endpoint>,
        join: &Join,
        endpoint: Endpoint,
        mut reply: impl FnMut(&ServerFrame),
    ) -> Result<(MemberKey, String), Refusal> {
        let secrets = Secrets {
            token: random_token(),
            salt: rand::random(),
        };
        let token = secrets.token.clone();
        let joined = registry.join(join, endpoint, secrets)?;
        for frame in &joined.replies {
            reply(frame);
        }
        for delivery in &joined.notify {
            delivery.to.deliver(&delivery.frame);
        }
        if let Some(old) = &joined.replaced {
            old.replaced();
        }
        Ok((joined.key, token))
    }

    pub(crate) fn relay_here(
        registry: &mut Registry<Endpoint>,
        from: &MemberKey,
        to: &str,
        data: Value,
    ) -> Result<(), Refusal> {
        if let Some(delivery) = registry.relay(from, to, data)? {
            delivery.to.deliver(&delivery.frame);
        }
        Ok(())
    }

    pub(crate) fn leave_here(registry: &mut Registry<Endpoint>, key: &MemberKey, conn: ConnId) {
        for delivery in registry.leave(key, conn) {
            delivery.to.deliver(&delivery.frame);
        }
    }

    pub(crate) fn detach_here(
        &self,
        registry: &mut Registry<Endpoint>,
        key: &MemberKey,
        conn: ConnId,
    ) {
        if registry.detach(key, conn, Instant::now()) {
            self.sweeper.notify_one();
        }
    }

    /// A `welcome` gets this server's ICE servers with credentials fresh for its peer id
    /// (the registry has no clock); other frames go as they are.
    pub(crate) fn with_ice_servers<'a>(
        &self,
        reached: Option<&Reached>,
        frame: &'a ServerFrame,
    ) -> Cow<'a, ServerFrame> {
        match frame {
            ServerFrame::Welcome {
                id,
                token,
                room,
                peers,
                ..
            } => Cow::Owned(ServerFrame::Welcome {
                id: id.clone(),
                token: token.clone(),
                room: room.clone(),
                peers: peers.clone(),
                ice_servers: self.ice_servers(reached, id),
            }),
            other => Cow::Borrowed(other),
        }
    }

    /// The configured ICE servers and the built-in relay's, with credentials for `id`.
    fn ice_servers(&self, reached: Option<&Reached>, id: &str) -> Vec<IceServerInfo> {
        let now = SystemTime::now();
        let mut servers = self.config.ice.servers_for(id, now);
        if let (Some(relay), Some(reached)) = (&self.relay, reached) {
            servers.extend(crate::ice::relay_servers(relay, reached, id, now));
        }
        servers
    }
}

fn done(reply: Reply) -> Option<Result<(), Refusal>> {
    matches!(reply, Reply::Done).then_some(Ok(()))
}

/// A secret resume token: 256 random bits, hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
