//! Server limits. Each is a flag of `confab server`; the defaults suit a public host.

use std::time::Duration;

use confab_relay::RelayConfig;

use crate::cluster::ClusterConfig;
use crate::ice::IceConfig;
use crate::tls::TlsConfig;

/// How a signaling server behaves. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The largest text frame a client may send, in bytes.
    pub max_frame: usize,
    /// The most members a room may have, counting those in their resume grace period.
    pub max_room_peers: usize,
    /// The most rooms the server holds at once.
    pub max_rooms: usize,
    /// The most open TCP connections; further WebSocket upgrades get HTTP 503.
    pub max_connections: usize,
    /// Frames per second a socket may send on average; it may burst to twice as many.
    pub rate: f64,
    /// A socket that has not joined by then gets `not-joined` and is closed.
    pub join_timeout: Duration,
    /// How long a dropped member keeps its id for a `resume`.
    pub resume_grace: Duration,
    /// How often an idle socket is pinged. One that stays silent for two intervals is
    /// handled as dropped, so a dead peer is noticed within three intervals.
    pub ping_interval: Duration,
    /// Serve `wss://` and `https://` instead of plain text.
    pub tls: Option<TlsConfig>,
    /// The STUN and TURN servers every `welcome` hands out.
    pub ice: IceConfig,
    /// The built-in STUN and TURN relay, handed out in every `welcome` beside `ice`;
    /// `None` runs none. `confab server` and the app's hosted server turn it on.
    pub relay: Option<RelayConfig>,
    /// Announce the server on the local network (DNS-SD); `None` stays quiet.
    pub announce: Option<crate::lan::Announce>,
    /// Share rooms with the other servers on this NATS server; `None` serves alone.
    pub cluster: Option<ClusterConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame: 64 * 1024,
            max_room_peers: 16,
            max_rooms: 10_000,
            max_connections: 16_384,
            // The protocol promises that 100 frames/s with bursts of 200 is never limited;
            // twice that leaves room for a peer renegotiating with many others at once.
            rate: 200.0,
            join_timeout: Duration::from_secs(10),
            resume_grace: Duration::from_secs(30),
            ping_interval: Duration::from_secs(10),
            tls: None,
            announce: None,
            ice: IceConfig::default(),
            relay: None,
            cluster: None,
        }
    }
}

impl ServerConfig {
    /// The burst a socket may send above its average rate.
    pub(crate) fn burst(&self) -> f64 {
        (self.rate * 2.0).max(1.0)
    }
}
