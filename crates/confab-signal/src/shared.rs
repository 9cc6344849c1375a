//! What every socket of one server shares: the registry under its lock, the limits, the
//! metrics, the relay and the cluster, and the token that stops them all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};

use confab_relay::{Relay, RelayError};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::cluster::{Cluster, ClusterError};
use crate::config::ServerConfig;
use crate::endpoint::Endpoint;
use crate::metrics::Metrics;
use crate::registry::{Limits, Registry};

/// tungstenite's buffers default to 128 KiB each, which would make an idle socket cost
/// ~256 KiB. Signaling frames are small: a few KiB to read into is plenty, and larger
/// frames (up to the frame limit) still fit because the buffer grows on demand.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 8 * 1024;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The cluster took this server's rooms over: it stopped so that its clients move
    /// to the others (a supervisor starts it again as a new member).
    #[error("stopped: {0}")]
    Fenced(String),
}

/// What every socket of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    registry: Mutex<Registry<Endpoint>>,
    /// Wakes the grace-period sweeper when a new grace period starts.
    pub(crate) sweeper: Notify,
    pub(crate) metrics: Metrics,
    pub(crate) shutdown: CancellationToken,
    /// The built-in relay, when the config asks for one.
    pub(crate) relay: Option<Relay>,
    /// This server's part in a cluster, when it is one of several.
    pub(crate) cluster: Option<Cluster>,
    /// Why the cluster stopped this server, if it did.
    pub(crate) fenced: OnceLock<String>,
    next_conn: AtomicU64,
    pub(crate) ws_config: WebSocketConfig,
}

impl Shared {
    /// Starts the relay the config asks for, if any.
    pub(crate) async fn start(
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, ServerError> {
        let relay = match &config.relay {
            Some(relay) => Some(Relay::start(relay.clone()).await?),
            None => None,
        };
        let cluster = match &config.cluster {
            Some(cluster) => Some(Cluster::connect(cluster).await?),
            None => None,
        };
        // Peer ids get a part drawn at random per process. A client whose resume fails
        // after a restart takes its fresh id for its old one when the two are equal, and
        // then the members it knew by those ids for the same people: with ids counted from
        // 1 in every process, the first to rejoin a restarted server got its old id back
        // and kept a dead connection to a newcomer that had an old member's id. In a
        // cluster, socket numbers must not collide with another server's either when a
        // room moves.
        let id_prefix = format!("p{:08x}-", rand::random::<u32>());
        let first_conn = match &cluster {
            Some(_) => u64::from(rand::random::<u32>()) << 32 | 1,
            None => 1,
        };
        let limits = Limits {
            max_rooms: config.max_rooms,
            max_room_peers: config.max_room_peers,
            resume_grace: config.resume_grace,
        };
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(WRITE_BUFFER + 4 * config.max_frame)
            .max_message_size(Some(config.max_frame))
            .max_frame_size(Some(config.max_frame));
        Ok(Self {
            config,
            registry: Mutex::new(Registry::new(limits, id_prefix)),
            sweeper: Notify::new(),
            metrics: Metrics::default(),
            shutdown,
            relay,
            cluster,
            fenced: OnceLock::new(),
            next_conn: AtomicU64::new(first_conn),
            ws_config,
        })
    }

    /// The registry. A panic elsewhere cannot leave it half-updated (every change is
    /// made in one call), so a poisoned lock is still safe to use.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry<Endpoint>> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops the server because the cluster found it dead and moved its rooms: acting
    /// for them any longer would split them in two.
    pub(crate) fn fence(&self, why: String) {
        error!("{why}: stopping");
        let _ = self.fenced.set(why);
        self.shutdown.cancel();
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Relaxed)
    }

    /// The open rooms (largest first, with their people) and everyone in any room: what
    /// the network announcement tells.
    pub(crate) fn census(&self) -> (Vec<(String, usize)>, usize) {
        let registry = self.lock();
        (registry.open_rooms(), registry.counts().1)
    }
}
