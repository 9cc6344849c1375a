//! Several `confab server`s behind one address, sharing nothing but a NATS server.
//!
//! Each room is owned by one live server (`ring` says which), whose registry holds it
//! exactly as a lone server's would: that is what keeps every promise of the protocol
//! (joins heard exactly once, `from` stamped, passwords, limits) across servers. A socket
//! on another server has its requests forwarded to the owner (`wire::Request`), and
//! the owner's frames for it come back on its server's subject.
//!
//! Owners publish each room as it changes (members, tokens and the password hash), so that when an owner dies the room's next owner takes it over with
//! every member in its grace period. Sockets that stayed open elsewhere are attached
//! again without a sound; the clients of the dead server reconnect to any other and
//! resume with their tokens, keeping their ids.
//!
//! What is not kept: signals the dead owner held for members in their grace period, and
//! a relayed frame the owner took just before it died may arrive twice (the sender's
//! server retries what was not answered).

mod ring;
mod stream;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, Message, Subscriber};
use bytes::Bytes;
use confab_proto::ServerFrame;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};
use tracing::{debug, info, warn};

use crate::endpoint::Endpoint;
use crate::ice::Reached;
use crate::registry::{Conn, ConnId, MemberKey, Registry, RoomSnapshot};
use crate::session::ConnHandle;
use crate::shared::Shared;

pub(crate) use ring::Owner;
use ring::Ring;
use stream::{Envelope, Incoming, Outgoing, Resend};
use wire::{ClaimMessage, Heartbeat, SocketItem, SyncPart, ToSocket};
pub(crate) use wire::{Reply, Request};

/// How often a server says it is alive; [`ring::DEATH_AFTER`] of silence is death.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// A gap this long between two heartbeats means this process stood still.
const STALL: Duration = Duration::from_secs(1);
/// How long one request to an owner may take before it is asked again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a server coming up listens for the others before it asks them for rooms.
const LISTEN_BEFORE_SYNC: Duration = Duration::from_millis(600);
/// How long it waits for their answers.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);
/// Claims per part of a sync answer, well under NATS's 1 MiB message limit.
const SYNC_PART: usize = 200;
/// Messages to other servers waiting to be published. A bus this far behind drops
/// messages (counted), as a socket too slow to read is dropped, rather than grow.
const OUTBOX: usize = 65_536;
/// The longest wait between attempts to reach NATS again.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// How a server joins a cluster.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The NATS server, `nats://HOST:PORT`.
    pub url: String,
    /// This server's name in the cluster: letters, digits, `-` and `_`.
    pub node_id: String,
}

/// Why a cluster configuration is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("node id {0:?}: use 1-64 letters, digits, '-' or '_'")]
    BadNodeId(String),
    #[error("cannot reach the cluster's NATS server at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot subscribe on the cluster's NATS server: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
}

impl ClusterConfig {
    /// A configuration for the NATS server at `url`; with no `node_id`, a random one.
    pub fn new(url: impl Into<String>, node_id: Option<String>) -> Result<Self, ClusterError> {
        let node_id = node_id.unwrap_or_else(|| format!("n{:08x}", rand::random::<u32>()));
        let valid = !node_id.is_empty()
            && node_id.len() <= 64
            && node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ClusterError::BadNodeId(node_id));
        }
        Ok(Self {
            url: url.into(),
            node_id,
        })
    }
}

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ClusterMetrics {
    pub(crate) forwarded: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) rtt_micros: AtomicU64,
}

/// A socket of another server, as the owner of its room delivers to it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSocket {
    pub(crate) node: Arc<str>,
    pub(crate) conn: ConnId,
    outlet: Outlet,
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

    fn send(&self, what: SocketItem) {
        let message = ToSocket {
            conn: self.conn,
            what,
        };
        self.outlet.to_socket(&self.node, message);
    }
}

/// Messages for other servers, published in order by one task.
#[derive(Debug, Clone)]
struct Outlet {
    me: Arc<str>,
    queue: mpsc::Sender<(String, Bytes)>,
    /// Numbered messages to other servers' sockets, kept for a resend.
    outgoing: Arc<Mutex<Outgoing>>,
    metrics: Arc<ClusterMetrics>,
}

impl Outlet {
    fn publish(&self, subject: String, message: &impl Serialize) {
        match serde_json::to_vec(message) {
            Ok(payload) => self.enqueue(subject, payload),
            Err(e) => warn!("cluster message not encoded: {e}"),
        }
    }

    /// A numbered message for a socket of `node`. One that does not fit the queue is
    /// still kept: the receiver asks for it when it sees the gap.
    fn to_socket(&self, node: &str, message: ToSocket) {
        // Numbered and queued under one lock, so numbers go out in order.
        let mut outgoing = self.outgoing();
        if let Some(payload) = outgoing.stamp(&self.me, node, message) {
            self.enqueue(wire::sockets(node), payload);
        }
    }

    /// Sends again what `node` asked for.
    fn resend(&self, node: &str, from: u64) {
        let outgoing = self.outgoing();
        for payload in outgoing.resend(node, from) {
            self.enqueue(wire::sockets(node), payload);
        }
    }

    fn outgoing(&self) -> MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, subject: String, payload: Vec<u8>) {
        if self.queue.try_send((subject, payload.into())).is_err() {
            self.metrics.dropped.fetch_add(1, Relaxed);
            debug!("cluster outbox full: a message to another server was dropped");
        }
    }
}

/// A socket of this server in a room that another server owns (or owned).
#[derive(Debug)]
struct HeldSocket {
    handle: ConnHandle,
    reached: Option<Reached>,
    member: Option<Membership>,
}

/// What the owner of a room remembers of a socket on another server.
#[derive(Debug)]
struct RemoteMember {
    key: MemberKey,
    token: String,
    /// The number of its last relay done.
    relays: u64,
}

#[derive(Debug, Clone)]
struct Membership {
    key: MemberKey,
    token: String,
    owner: String,
}

/// What the background tasks take over once the server runs.
#[derive(Debug)]
struct Inbound {
    heartbeats: Subscriber,
    goodbyes: Subscriber,
    claims: Subscriber,
    syncs: Subscriber,
    requests: Subscriber,
    sockets: Subscriber,
    resends: Subscriber,
    fenced: Subscriber,
    link: mpsc::UnboundedReceiver<bool>,
    outbox: mpsc::Receiver<(String, Bytes)>,
}

/// This server's part in a cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    client: Client,
    /// The node id and this process's incarnation: a server restarted under the same
    /// id is a new member, and the old one's rooms move as from any dead server.
    me: Arc<str>,
    ring: Mutex<Ring>,
    sockets: Mutex<HashMap<ConnId, HeldSocket>>,
    /// Numbered messages from other servers for this one's sockets.
    incoming: Mutex<Incoming>,
    /// Sockets of other servers in rooms owned here, so that a request asked again (its
    /// answer lost or late) is not done twice.
    members: Mutex<HashMap<(String, ConnId), RemoteMember>>,
    outlet: Outlet,
    inbound: Mutex<Option<Inbound>>,
    /// When the last heartbeat went out, to notice this process stalling.
    last_beat: Mutex<Instant>,
    pub(crate) metrics: Arc<ClusterMetrics>,
}

impl Cluster {
    /// Connects to NATS and subscribes to everything this server will hear.
    pub(crate) async fn connect(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let me: Arc<str> = format!("{}-{:08x}", config.node_id, rand::random::<u32>()).into();
        let (link_tx, link) = mpsc::unbounded_channel();
        let client = ConnectOptions::new()
            .name(&*me)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .reconnect_delay_callback(|attempts| {
                RECONNECT_MAX_DELAY.min(Duration::from_millis(50 * attempts as u64))
            })
            .event_callback(move |event| {
                let link_tx = link_tx.clone();
                async move {
                    match event {
                        Event::Connected => {
                            let _ = link_tx.send(true);
                        }
                        Event::Disconnected => {
                            let _ = link_tx.send(false);
                        }
                        other => debug!("cluster bus: {other}"),
                    }
                }
            })
            .connect(&config.url)
            .await
            .map_err(|source| ClusterError::Connect {
                url: config.url.clone(),
                source,
            })?;
        let metrics = Arc::new(ClusterMetrics::default());
        let (queue, outbox) = mpsc::channel(OUTBOX);
        let inbound = Inbound {
            heartbeats: client.subscribe(wire::HEARTBEAT).await?,
            goodbyes: client.subscribe(wire::GOODBYE).await?,
            claims: client.subscribe(wire::CLAIMS).await?,
            syncs: client.subscribe(wire::SYNC).await?,
            requests: client.subscribe(wire::requests(&me)).await?,
            sockets: client.subscribe(wire::sockets(&me)).await?,
            resends: client.subscribe(wire::resends(&me)).await?,
            fenced: client.subscribe(wire::fenced(&me)).await?,
            link,
            outbox,
        };
        info!(node = %me, url = %config.url, "joined the cluster's bus");
        Ok(Self {
            ring: Mutex::new(Ring::new(me.to_string(), Instant::now())),
            me: me.clone(),
            client,
            sockets: Mutex::new(HashMap::new()),
            incoming: Mutex::new(Incoming::default()),
            members: Mutex::new(HashMap::new()),
            outlet: Outlet {
                me,
                queue,
                outgoing: Arc::default(),
                metrics: metrics.clone(),
            },
            inbound: Mutex::new(Some(inbound)),
            last_beat: Mutex::new(Instant::now()),
            metrics,
        })
    }

    pub(crate) fn me(&self) -> &str {
        &self.me
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

    /// The other servers alive, for `/metrics`.
    pub(crate) fn nodes_alive(&self) -> usize {
        self.ring().alive().count()
    }

    /// The cluster's lines of `/metrics`; `rooms` are those this server owns.
    pub(crate) fn render_metrics(&self, out: &mut String, rooms: usize) {
        use std::fmt::Write;
        let rtt = self.metrics.rtt_micros.load(Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "# HELP confab_cluster_owned_rooms Rooms this server owns in its cluster.\n\
             # TYPE confab_cluster_owned_rooms gauge\nconfab_cluster_owned_rooms {rooms}\n\
             # HELP confab_cluster_nodes Other servers of the cluster alive.\n\
             # TYPE confab_cluster_nodes gauge\nconfab_cluster_nodes {}\n\
             # HELP confab_cluster_forwarded_frames_total Signals relayed through another server that owns the room.\n\
             # TYPE confab_cluster_forwarded_frames_total counter\nconfab_cluster_forwarded_frames_total {}\n\
             # HELP confab_cluster_dropped_messages_total Messages to other servers dropped while the bus was behind.\n\
             # TYPE confab_cluster_dropped_messages_total counter\nconfab_cluster_dropped_messages_total {}\n\
             # HELP confab_cluster_nats_rtt_seconds The last round trip to the NATS server.\n\
             # TYPE confab_cluster_nats_rtt_seconds gauge\nconfab_cluster_nats_rtt_seconds {rtt}\n",
            self.nodes_alive(),
            self.metrics.forwarded.load(Relaxed),
            self.metrics.dropped.load(Relaxed),
        );
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sockets(&self) -> MutexGuard<'_, HashMap<ConnId, HeldSocket>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where `room` lives when the registry does not hold it.
    pub(crate) fn owner_of(&self, room: &str) -> Owner {
        self.ring().owner_of(room)
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

    /// An endpoint for a socket of `node`, as the owner's registry keeps it.
    fn remote(&self, node: &str, conn: ConnId) -> Endpoint {
        Endpoint::Remote(RemoteSocket {
            node: node.into(),
            conn,
            outlet: self.outlet.clone(),
        })
    }

    /// Runs the heartbeat, serves requests for the rooms this server owns and frames for
    /// its sockets, and follows the others, until the server stops.
    pub(crate) async fn run(shared: Arc<Shared>) {
        let Some(cluster) = shared.cluster.as_ref() else {
            return;
        };
        let taken = cluster
            .inbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut inbound) = taken else {
            return;
        };
        tokio::spawn(publish_outbox(cluster.client.clone(), inbound.outbox));
        let mut beat = interval(HEARTBEAT_EVERY);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rtt = interval(Duration::from_secs(2));
        rtt.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = shared.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(up) = inbound.link.recv() => cluster.on_link(&shared, up),
                Some(message) = inbound.requests.next() => cluster.answer(&shared, message),
                Some(message) = inbound.sockets.next() => cluster.on_socket_message(&shared, &message),
                Some(message) = inbound.resends.next() => {
                    if let Ok(ask) = serde_json::from_slice::<Resend>(&message.payload) {
                        cluster.outlet.resend(&ask.node, ask.from);
                    }
                }
                Some(message) = inbound.heartbeats.next() => {
                    if let Ok(beat) = serde_json::from_slice::<Heartbeat>(&message.payload) {
                        cluster.on_heartbeat(beat);
                    }
                }
                Some(message) = inbound.fenced.next() => {
                    let by = serde_json::from_slice::<Heartbeat>(&message.payload)
                        .map(|beat| beat.node)
                        .unwrap_or_default();
                    shared.fence(format!(
                        "{by} found this server dead (silent on the cluster's bus for \
                         {:?}: a stalled process or a cut link) and took its rooms over",
                        ring::DEATH_AFTER
                    ));
                }
                Some(message) = inbound.goodbyes.next() => {
                    if let Ok(beat) = serde_json::from_slice::<Heartbeat>(&message.payload)
                        && cluster.ring().forget(&beat.node)
                    {
                        info!(node = %beat.node, "a server of the cluster stopped");
                        cluster.on_death(&shared, &beat.node);
                    }
                }
                Some(message) = inbound.claims.next() => {
                    if let Ok(claim) = serde_json::from_slice::<ClaimMessage>(&message.payload) {
                        cluster.ring().claim(&claim.room, &claim.owner, claim.snapshot);
                    }
                }
                Some(message) = inbound.syncs.next() => cluster.answer_sync(&shared, &message).await,
                _ = beat.tick() => cluster.beat(&shared),
                _ = rtt.tick() => cluster.measure_rtt(),
            }
        }
        cluster.say_goodbye().await;
    }

    /// Every room this server owns, as the others need it to take one over.
    fn own_claims(&self, shared: &Shared) -> Vec<ClaimMessage> {
        let registry = shared.lock();
        registry
            .room_names()
            .into_iter()
            .filter_map(|room| {
                registry
                    .snapshot(&room, &self.me)
                    .map(|snapshot| ClaimMessage {
                        room,
                        owner: self.me.to_string(),
                        snapshot: Some(snapshot),
                    })
            })
            .collect()
    }

    fn on_link(&self, shared: &Arc<Shared>, up: bool) {
        if up {
            info!("cluster bus connected");
            self.ring().link_back(Instant::now());
            // Claims published while the bus was away were lost; tell them again once
            // the others are likely back on it too.
            let shared = shared.clone();
            tokio::spawn(async move {
                sleep(STALL).await;
                if let Some(cluster) = &shared.cluster {
                    for claim in cluster.own_claims(&shared) {
                        cluster.outlet.publish(wire::CLAIMS.to_owned(), &claim);
                    }
                }
            });
        } else {
            warn!("cluster bus lost: reconnecting");
            self.ring().link_down();
        }
    }

    fn beat(&self, shared: &Arc<Shared>) {
        let beat = Heartbeat {
            node: self.me.to_string(),
            sent: self.outlet.outgoing().last_sent(),
        };
        self.outlet.publish(wire::HEARTBEAT.to_owned(), &beat);
        let now = Instant::now();
        let gap = now.duration_since(std::mem::replace(
            &mut *self.last_beat.lock().unwrap_or_else(|p| p.into_inner()),
            now,
        ));
        if gap >= STALL {
            // This process heard nothing while it stood still: the others' silence proves
            // nothing, and if they found it dead meanwhile, they say so in a moment.
            warn!(?gap, "this server stalled: no heartbeat went out meanwhile");
            self.ring().link_back(now);
        }
        let dead = self.ring().expire(now);
        for node in dead {
            warn!(%node, "a server of the cluster went silent: its rooms move");
            self.on_death(shared, &node);
        }
    }

    /// Measures the bus's round trip on the side, for `/metrics`.
    fn measure_rtt(&self) {
        let client = self.client.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            if let Ok(Ok(())) = timeout(REQUEST_TIMEOUT, client.flush()).await {
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                metrics.rtt_micros.store(micros, Relaxed);
            }
        });
    }

    /// A server is gone: its sockets in rooms here start their grace periods, the rooms it
    /// owned that this server wins are taken over, and this server's sockets in rooms it
    /// owned are attached again wherever those rooms went.
    fn on_death(&self, shared: &Arc<Shared>, node: &str) {
        let now = Instant::now();
        self.outlet.outgoing().forget(node);
        self.incoming().forget(node);
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
        let moved: Vec<ConnId> = self
            .sockets()
            .iter()
            .filter(|(_, s)| s.member.as_ref().is_some_and(|m| m.owner == node))
            .map(|(conn, _)| *conn)
            .collect();
        for conn in moved {
            tokio::spawn(reattach(shared.clone(), conn));
        }
    }

    async fn say_goodbye(&self) {
        if let Ok(payload) = serde_json::to_vec(&Heartbeat::of(&self.me)) {
            let _ = self.client.publish(wire::GOODBYE, payload.into()).await;
            let _ = timeout(REQUEST_TIMEOUT, self.client.flush()).await;
        }
    }

    fn on_heartbeat(&self, beat: Heartbeat) {
        let now = Instant::now();
        if !self.ring().heard_from(&beat.node, now) {
            self.outlet
                .publish(wire::fenced(&beat.node), &Heartbeat::of(&self.me));
            return;
        }
        if let Some(last) = beat.sent.get(&*self.me) {
            let ask = self.incoming().check(&beat.node, *last, now);
            self.ask_again(&beat.node, ask);
        }
    }

    /// Frames (or kicks) from the owner of a room, for this server's sockets, delivered
    /// in the order they were sent.
    fn on_socket_message(&self, shared: &Shared, message: &Message) {
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
    fn ask_again(&self, sender: &str, from: Option<u64>) {
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

    fn members(&self) -> MutexGuard<'_, HashMap<(String, ConnId), RemoteMember>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn incoming(&self) -> MutexGuard<'_, Incoming> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one request for a room this server owns, or says who does.
    fn answer(&self, shared: &Shared, message: Message) {
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

    fn serve(&self, shared: &Shared, request: Request) -> Reply {
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

    /// Asks the others for every room they know, so that this server, new to the
    /// cluster, neither creates a room that exists nor misses one it should take over.
    pub(crate) async fn sync(&self) {
        sleep(LISTEN_BEFORE_SYNC).await;
        let inbox = self.client.new_inbox();
        let Ok(mut answers) = self.client.subscribe(inbox.clone()).await else {
            warn!("cannot ask the cluster for its rooms");
            return;
        };
        let Ok(payload) = serde_json::to_vec(&Heartbeat::of(&self.me)) else {
            return;
        };
        if self
            .client
            .publish_with_reply(wire::SYNC, inbox, payload.into())
            .await
            .is_err()
        {
            warn!("cannot ask the cluster for its rooms");
            return;
        }
        let mut waiting: HashSet<String> = self.ring().alive().map(str::to_owned).collect();
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
        while !waiting.is_empty() {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await else {
                warn!(
                    missing = waiting.len(),
                    "some servers did not tell their rooms in time"
                );
                break;
            };
            let Ok(part) = serde_json::from_slice::<SyncPart>(&message.payload) else {
                continue;
            };
            let mut ring = self.ring();
            for claim in part.claims {
                ring.claim(&claim.room, &claim.owner, claim.snapshot);
            }
            if part.done {
                waiting.remove(&part.node);
            }
        }
        let rooms = self.ring().claims().count();
        info!(rooms, "learnt the cluster's rooms");
    }

    /// Tells a server coming up every room this one owns or knows of.
    async fn answer_sync(&self, shared: &Shared, message: &Message) {
        let Some(reply_to) = &message.reply else {
            return;
        };
        match serde_json::from_slice::<Heartbeat>(&message.payload) {
            Ok(asker) if asker.node != *self.me => {}
            _ => return,
        }
        let mut claims = self.own_claims(shared);
        claims.extend(self.ring().claims().map(|(room, claim)| ClaimMessage {
            room: room.to_owned(),
            owner: claim.owner.clone(),
            snapshot: Some(claim.snapshot.clone()),
        }));
        let mut parts: Vec<SyncPart> = Vec::new();
        while !claims.is_empty() || parts.is_empty() {
            let rest = claims.split_off(claims.len().min(SYNC_PART));
            parts.push(SyncPart {
                node: self.me.to_string(),
                claims: std::mem::replace(&mut claims, rest),
                done: false,
            });
        }
        if let Some(last) = parts.last_mut() {
            last.done = true;
        }
        for part in parts {
            if let Ok(payload) = serde_json::to_vec(&part) {
                let _ = self.client.publish(reply_to.clone(), payload.into()).await;
            }
        }
    }
}

/// Publishes what the registry and the heartbeat queue for other servers, in order.
async fn publish_outbox(client: Client, mut outbox: mpsc::Receiver<(String, Bytes)>) {
    while let Some((subject, payload)) = outbox.recv().await {
        if let Err(e) = client.publish(subject, payload).await {
            debug!("cluster message not published: {e}");
        }
    }
}

/// Attaches a socket of this server again after its room's owner died, wherever the room
/// went. A member that did not survive the move (its grace ran out) has its socket
/// dropped, so that the client joins anew.
async fn reattach(shared: Arc<Shared>, conn: ConnId) {
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
    let request = Request::Reattach {
        key: member.key.clone(),
        token: member.token.clone(),
        node: cluster.me.to_string(),
        conn,
    };
    let attached = shared
        .route(
            &member.key.room,
            |registry| {
                registry
                    .reattach(&member.key, &member.token, Endpoint::Local(handle.clone()))
                    .map(|kept| {
                        for frame in &kept {
                            handle.deliver(frame);
                        }
                    })
            },
            &request,
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
