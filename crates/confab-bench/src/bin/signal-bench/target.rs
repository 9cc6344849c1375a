//! The servers under test: how to start each, and how each frames a relayed signal.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Confab,
    /// matchbox_server 0.15: rooms by URL path, `IdAssigned`/`NewPeer`/`Signal` frames.
    Matchbox,
    /// A bare node of this binary (see [`crate::bare`]): `TO DATA` in, `FROM DATA` out.
    Bare,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Confab => "confab",
            Kind::Matchbox => "matchbox_server",
            Kind::Bare => "bare node",
        }
    }

    /// The text frame that relays `data` to `to`.
    pub fn signal(self, to: &str, data: u64) -> String {
        match self {
            Kind::Bare => return format!("{to} {data}"),
            Kind::Confab => json!({"type":"signal","to":to,"data":data}),
            Kind::Matchbox => json!({"Signal":{"receiver":to,"data":data}}),
        }
        .to_string()
    }

    /// The sender and data of a relayed signal, if `text` is one.
    pub fn parse_signal(self, text: &str) -> Option<(String, u64)> {
        if self == Kind::Bare {
            let (from, data) = text.split_once(' ')?;
            return Some((from.to_owned(), data.parse().ok()?));
        }
        let value: Value = serde_json::from_str(text).ok()?;
        let (from, data) = match self {
            Kind::Confab if value["type"] == "signal" => (&value["from"], &value["data"]),
            Kind::Matchbox => (&value["Signal"]["sender"], &value["Signal"]["data"]),
            Kind::Confab | Kind::Bare => return None,
        };
        Some((from.as_str()?.to_owned(), data.as_u64()?))
    }
}

/// A server process on a loopback port, killed when dropped (an error on the way out
/// leaves nothing running).
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Child,
}

/// How long a server may take to answer its health check: a cluster instance listens only
/// after it has synced with the others (up to ~4 s).
const HEALTHY_WITHIN: Duration = Duration::from_secs(15);

impl Server {
    pub async fn spawn(kind: Kind, binary: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(kind, binary, &[], None).await
    }

    /// A Confab server with `extra` flags after the bench's own, its log in `log`.
    pub async fn spawn_confab(binary: &Path, extra: &[String], log: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(Kind::Confab, binary, extra, Some(log)).await
    }

    /// A bare node of this binary, over the nats-server at `nats` when given.
    pub async fn spawn_bare(nats: Option<String>, log: &Path) -> anyhow::Result<Self> {
        let this = std::env::current_exe()?;
        let extra: Vec<String> = nats
            .into_iter()
            .flat_map(|url| ["--bare-nats".to_owned(), url])
            .collect();
        Self::spawn_with(Kind::Bare, &this, &extra, Some(log)).await
    }

    async fn spawn_with(
        kind: Kind,
        binary: &Path,
        extra: &[String],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        match kind {
            // The throughput phase floods on purpose: lift the per-socket rate limit, and
            // the connection limit to what the idle phase opens.
            Kind::Confab => command.args([
                "server",
                "--listen",
                &addr,
                "--rate",
                "10000000",
                "--max-connections",
                "19000",
            ]),
            Kind::Matchbox => command.arg(&addr).env("RUST_LOG", "error"),
            Kind::Bare => command.args(["--bare-node", &addr]),
        };
        command.args(extra);
        let stderr = match log {
            // Plain text, so that the report can search it for warnings.
            Some(path) => {
                command.env("NO_COLOR", "1");
                Stdio::from(File::create(path).with_context(|| format!("{}", path.display()))?)
            }
            None => Stdio::null(),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Self { kind, port, child };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
        while tokio::time::Instant::now() < deadline {
            let healthy = match self.kind {
                Kind::Confab => http_ok(self.port, "/healthz").await,
                Kind::Matchbox => http_ok(self.port, "/health").await,
                // A bare node has no HTTP: listening is all it has to be.
                Kind::Bare => tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok(),
            };
            if healthy {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before it listened: {status}", self.kind.label());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "{} did not come up on port {}",
            self.kind.label(),
            self.port
        )
    }

    /// The WebSocket URL a client opens to join `room`.
    pub fn url(&self, room: &str) -> String {
        match self.kind {
            Kind::Confab | Kind::Bare => format!("ws://127.0.0.1:{}/ws", self.port),
            Kind::Matchbox => format!("ws://127.0.0.1:{}/{room}", self.port),
        }
    }

    /// The server's resident memory.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS")
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        http_get(self.port, "/metrics").await
    }

    /// Kills the server with SIGKILL (no goodbye to a cluster) and reaps it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn http_ok(port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.is_ok() && head.ends_with(b"200")
}

/// The body of a `GET` that answers 200.
async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut response))
        .await
        .context("no answer within 5 s")??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end to the response's head")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// The value of the `name` line of a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}
