//! `confab server`: the signaling server with its limits as flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use confab_signal::{IceConfig, ServerConfig, TlsConfig};
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

    /// A STUN or TURN server to hand to every peer in its `welcome` (`stun:HOST:PORT`,
    /// `turn:HOST:PORT`, `turns:HOST:PORT`); repeatable. TURN URLs get short-lived
    /// credentials made with --turn-secret-file.
    #[arg(long = "turn-url", value_name = "URL")]
    turn_urls: Vec<String>,

    /// A file holding the TURN servers' shared secret (coturn's `static-auth-secret`
    /// with `use-auth-secret`); surrounding whitespace is ignored.
    #[arg(long, value_name = "PATH")]
    turn_secret_file: Option<PathBuf>,
}

fn seconds(text: &str) -> Result<Duration, String> {
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
        config.tls = tls;
        config.ice = ice;
        Ok(config)
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
    confab_signal::run(listener, config, shutdown).await;
    Ok(())
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
