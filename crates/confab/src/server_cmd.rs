//! `confab server`: the signaling server and its built-in relay, with their limits as flags.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use confab_relay::{RelayConfig, RelayTls};
use confab_signal::lan::Announce;
use confab_signal::{ClusterConfig, IceConfig, ServerConfig, ServerError, TlsConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:8787", value_name = "ADDR:PORT")]
    listen: SocketAddr,

    /// Largest frame a client may send.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    max_frame: usize,

    /// Most peers in one room (counting those in their resume grace period).
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_room_peers: usize,

    /// Most rooms at once.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_rooms: usize,

    /// Most open connections; more get HTTP 503.
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    max_connections: usize,

    /// Frames per second one socket may send on average (bursts of twice that).
    #[arg(long, default_value_t = 200.0, value_name = "MSGS_PER_S")]
    rate: f64,

    /// Seconds a new socket has to join a room.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = seconds)]
    join_timeout: Duration,

    /// Seconds a dropped peer keeps its id for a resume.
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = seconds)]
    resume_grace: Duration,

    /// Seconds between keepalive pings; a socket silent for two is dropped.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = seconds)]
    ping_interval: Duration,

    /// PEM certificate chain, to serve wss:// (needs --tls-key).
    #[arg(long, requires = "tls_key", value_name = "PATH")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "PATH")]
    tls_key: Option<PathBuf>,

    /// The name the server is announced under on the local network
    /// [default: "Confab on HOSTNAME"].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Do not announce the server on the local network (DNS-SD `_confab._tcp`).
    #[arg(long)]
    no_announce: bool,

    /// Share rooms with the other servers on this NATS server (`nats://HOST:PORT`), so that
    /// several instances serve one address; clients may reach any of them.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// This instance's name in the cluster: letters, digits, '-' and '_'
    /// [default: a random one].
    #[arg(long, requires = "cluster", value_name = "ID")]
    node_id: Option<String>,

    /// A STUN or TURN server to hand to every peer in its `welcome` (`stun:HOST:PORT`,
    /// `turn:HOST:PORT`, `turns:HOST:PORT`); repeatable. TURN URLs get short-lived
    /// credentials made with --turn-secret-file.
    #[arg(long = "turn-url", value_name = "URL")]
    turn_urls: Vec<String>,

    /// A file holding the TURN servers' shared secret (coturn's `static-auth-secret`
    /// with `use-auth-secret`); surrounding whitespace is ignored.
    #[arg(long, value_name = "PATH")]
    turn_secret_file: Option<PathBuf>,

    /// Run no built-in STUN and TURN relay. --turn-url turns it off too: the servers
    /// named there are the relay.
    #[arg(long)]
    no_turn: bool,

    /// Address of the built-in relay, for UDP and TCP [default: the --listen IP, port
    /// 3478, or any free port when another server holds 3478]. An unspecified IP listens
    /// on every interface address.
    #[arg(long, value_name = "ADDR:PORT")]
    turn_listen: Option<SocketAddr>,

    /// Port of the built-in relay's TURN over TLS, served with --tls-cert (443 gets
    /// through networks that let only HTTPS out, if nothing else holds it).
    #[arg(long, default_value_t = 5349, value_name = "PORT")]
    turn_tls_port: u16,

    /// The host's public IP when it sits behind a 1:1 NAT (a cloud VM): handed to peers
    /// and put in relayed addresses.
    #[arg(long, value_name = "IP")]
    turn_external_ip: Option<IpAddr>,

    /// Ports for relayed sockets (open them in the firewall) [default: any free port].
    #[arg(long, value_name = "LOW-HIGH", value_parser = port_range)]
    turn_relay_ports: Option<RangeInclusive<u16>>,

    /// Relay to loopback, private and link-local addresses too (a relay for a LAN).
    #[arg(long)]
    turn_allow_private: bool,

    /// Most relay allocations at once.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    turn_max_allocations: u64,

    /// Most relay allocations one peer holds at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    turn_max_allocations_per_peer: usize,

    /// Megabytes per second each peer id may relay through all its allocations (both ways
    /// together); 0 is no limit.
    #[arg(long, default_value_t = 50.0, value_name = "MB_PER_S")]
    turn_max_rate: f64,
}

fn port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("`{text}` is not LOW-HIGH, two ports with LOW <= HIGH");
    let (low, high) = text.split_once('-').ok_or_else(bad)?;
    let (low, high): (u16, u16) = (
        low.trim().parse().map_err(|_| bad())?,
        high.trim().parse().map_err(|_| bad())?,
    );
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok(low..=high)
}

/// A flag's number of seconds (fractions allowed).
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{text}`: {e}"))
}

impl ServerArgs {
    fn config(&self) -> anyhow::Result<ServerConfig> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            bail!("--rate must be a positive number");
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
            _ => None,
        };
        let secret = match &self.turn_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let ice = IceConfig::new(&self.turn_urls, secret).context("--turn-url")?;
        let mut config = ServerConfig::default();
        config.max_frame = self.max_frame;
        config.max_room_peers = self.max_room_peers;
        config.max_rooms = self.max_rooms;
        config.max_connections = self.max_connections;
        config.rate = self.rate;
        config.join_timeout = self.join_timeout;
        config.resume_grace = self.resume_grace;
        config.ping_interval = self.ping_interval;
        config.ice = ice;
        config.relay = self.relay_config(tls.as_ref())?;
        config.tls = tls;
        config.announce = (!self.no_announce).then(|| Announce {
            name: self.name.clone().unwrap_or_else(default_name),
        });
        config.cluster = match &self.cluster {
            Some(url) => Some(ClusterConfig::new(url, self.node_id.clone()).context("--node-id")?),
            None => None,
        };
        Ok(config)
    }

    fn relay_config(&self, tls: Option<&TlsConfig>) -> anyhow::Result<Option<RelayConfig>> {
        if self.no_turn || !self.turn_urls.is_empty() {
            return Ok(None);
        }
        if !(self.turn_max_rate >= 0.0 && self.turn_max_rate.is_finite()) {
            bail!("--turn-max-rate must be 0 or a positive number");
        }
        let mut relay = RelayConfig::default();
        match self.turn_listen {
            Some(addr) => relay.listen = addr,
            None => {
                relay.listen = SocketAddr::new(self.listen.ip(), 3478);
                relay.any_port_if_taken = true;
            }
        }
        relay.external_ip = self.turn_external_ip;
        relay.relay_ports = self.turn_relay_ports.clone();
        relay.allow_private = self.turn_allow_private;
        relay.max_allocations = self.turn_max_allocations;
        relay.max_allocations_per_peer = self.turn_max_allocations_per_peer;
        relay.bytes_per_second = (self.turn_max_rate * 1e6) as u64;
        relay.tls = tls.map(|tls| RelayTls {
            port: self.turn_tls_port,
            config: tls.server_config(),
        });
        Ok(Some(relay))
    }
}

pub(crate) async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    info!("signaling server listening on {scheme}://{addr}/ws");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    confab_signal::run(listener, config, shutdown)
        .await
        .map_err(|e| match e {
            ServerError::Relay(_) => anyhow::Error::new(e)
                .context("the built-in relay (--turn-listen to move it, --no-turn for none)"),
            other => anyhow::Error::new(other).context("--cluster"),
        })
}

/// "Confab on HOSTNAME".
fn default_name() -> String {
    match confab_signal::lan::host_name() {
        Some(host) => format!("Confab on {host}"),
        None => "Confab server".to_owned(),
    }
}

/// Ctrl-C or SIGTERM: close every socket with a close frame, then exit.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutting down");
    shutdown.cancel();
}
