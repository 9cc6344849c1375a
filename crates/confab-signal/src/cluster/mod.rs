//! Several `confab server`s behind one address, sharing nothing but a NATS server.
//!
//! Each room is owned by one live server (`ring` says which), whose registry holds it
//! exactly as a lone server's would: that is what keeps every promise of the protocol
//! (joins heard exactly once, `from` stamped, passwords, limits) across servers. A socket
//! on another server has its requests forwarded to the owner (`wire::Request`): a join or
//! a list as a NATS request, its relays, leave and detach in a numbered stream from its
//! server to the owner, unanswered but acknowledged. The owner's frames for it come back
//! in a numbered stream on its server's subject.
//!
//! Owners publish each room as it changes (members, tokens and the password hash), so that when an owner dies the room's next owner takes it over with
//! every member in its grace period. Sockets that stayed open elsewhere are attached
//! again without a sound; the clients of the dead server reconnect to any other and
//! resume with their tokens, keeping their ids.
//!
//! Modules: `ring` (who is alive and owns what, as plain data), `wire` (the messages and
//! subjects), `stream` (numbered frames for other servers' sockets, resent when lost),
//! `outlet` (publishing in order), `owner` (serving the rooms owned here and taking rooms
//! over), `sockets` (this server's sockets in rooms owned elsewhere), `sync` (learning the
//! rooms on start). This file joins the bus and runs the heartbeat and the event loop.
//!
//! What is not kept: signals the dead owner held for members in their grace period. And
//! relays the owner did in its last moments, before it acknowledged them (it does every
//! 50 ms), may be delivered twice: the sender's server has the next owner do everything
//! not acknowledged.

mod outlet;
mod owner;
mod ring;
mod sockets;
mod stream;
mod sync;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, Subscriber};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};
use tracing::{debug, info, warn};

use crate::registry::ConnId;
use crate::shared::Shared;

pub(crate) use outlet::RemoteSocket;
use outlet::{Outbound, Outlet, publish_outbox};
use owner::RemoteMember;
pub(crate) use ring::Owner;
use ring::Ring;
use sockets::{HeldSocket, reattach, redo};
use stream::{Ack, Envelope, Incoming, Kind, Outgoing, Resend};
use wire::{ClaimMessage, Heartbeat, SocketItem, SyncPart, ToSocket};
pub(crate) use wire::{Reply, Request};

/// How often a server says it is alive; [`ring::DEATH_AFTER`] of silence is death.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// A gap this long between two heartbeats means this process stood still.
const STALL: Duration = Duration::from_secs(1);
/// How long one request to an owner may take before it is asked again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages to other servers waiting to be published. A bus this far behind drops
/// messages (counted), as a socket too slow to read is dropped, rather than grow.
const OUTBOX: usize = 65_536;
/// The longest wait between attempts to reach NATS again.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// How often an owner tells other servers how far it has done their relays. What is not
/// acknowledged when an owner dies is done again by the next one: this bounds the
/// duplicates, and what a sender keeps.
const ACK_EVERY: Duration = Duration::from_millis(50);

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
    #[error("cannot reach the cluster's NATS server at {url}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot subscribe on the cluster's NATS server")]
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

/// What the background tasks take over once the server runs.
#[derive(Debug)]
struct Inbound {
    heartbeats: Subscriber,
    goodbyes: Subscriber,
    claims: Subscriber,
    syncs: Subscriber,
    requests: Subscriber,
    relays: Subscriber,
    acks: Subscriber,
    sockets: Subscriber,
    resends: Subscriber,
    fenced: Subscriber,
    link: mpsc::UnboundedReceiver<bool>,
    outbox: mpsc::Receiver<Outbound>,
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
    incoming: Mutex<Incoming<ToSocket>>,
    /// Numbered relays (leaves, detaches) from other servers' sockets, for rooms here.
    relays_in: Mutex<Incoming<Request>>,
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
            relays: client.subscribe(wire::relays(&me)).await?,
            acks: client.subscribe(wire::acks(&me)).await?,
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
            relays_in: Mutex::new(Incoming::default()),
            members: Mutex::new(HashMap::new()),
            outlet: Outlet {
                me,
                queue,
                outgoing: Arc::default(),
                relays: Arc::default(),
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

    /// Where `room` lives when the registry does not hold it.
    pub(crate) fn owner_of(&self, room: &str) -> Owner {
        self.ring().owner_of(room)
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
        let mut acks = interval(ACK_EVERY);
        acks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rtt = interval(Duration::from_secs(2));
        rtt.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = shared.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(up) = inbound.link.recv() => cluster.on_link(&shared, up),
                Some(message) = inbound.requests.next() => cluster.answer(&shared, message),
                Some(message) = inbound.relays.next() => {
                    for line in wire::lines(&message.payload) {
                        cluster.on_relay(&shared, line);
                    }
                }
                Some(message) = inbound.sockets.next() => {
                    for line in wire::lines(&message.payload) {
                        cluster.on_socket_message(&shared, line);
                    }
                }
                Some(message) = inbound.acks.next() => {
                    if let Ok(ack) = serde_json::from_slice::<Ack>(&message.payload) {
                        cluster.outlet.relays().ack(&ack.node, ack.done);
                    }
                }
                Some(message) = inbound.resends.next() => {
                    if let Ok(ask) = serde_json::from_slice::<Resend>(&message.payload) {
                        cluster.outlet.resend(&ask.node, ask.from, ask.stream);
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
                _ = acks.tick() => cluster.acknowledge(),
                _ = rtt.tick() => cluster.measure_rtt(),
            }
        }
        cluster.say_goodbye().await;
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
            relayed: self.outlet.relays().last_sent(),
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
            self.ask_again(&beat.node, ask, Kind::Sockets);
        }
        if let Some(last) = beat.relayed.get(&*self.me) {
            let ask = self.relays_in().check(&beat.node, *last, now);
            self.ask_again(&beat.node, ask, Kind::Relays);
        }
    }
}
