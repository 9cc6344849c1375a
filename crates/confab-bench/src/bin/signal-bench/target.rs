//! The two servers under test: how to start each, and how each frames a relayed signal.

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
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Confab => "confab",
            Kind::Matchbox => "matchbox_server",
        }
    }

    /// The text frame that relays `data` to `to`.
    pub fn signal(self, to: &str, data: u64) -> String {
        match self {
            Kind::Confab => json!({"type":"signal","to":to,"data":data}),
            Kind::Matchbox => json!({"Signal":{"receiver":to,"data":data}}),
        }
        .to_string()
    }

    /// The sender and data of a relayed signal, if `text` is one.
    pub fn parse_signal(self, text: &str) -> Option<(String, u64)> {
        let value: Value = serde_json::from_str(text).ok()?;
        let (from, data) = match self {
            Kind::Confab if value["type"] == "signal" => (&value["from"], &value["data"]),
            Kind::Matchbox => (&value["Signal"]["sender"], &value["Signal"]["data"]),
            Kind::Confab => return None,
        };
        Some((from.as_str()?.to_owned(), data.as_u64()?))
    }
}

/// A server process on a loopback port.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Child,
}

impl Server {
    pub async fn spawn(kind: Kind, binary: &Path) -> anyhow::Result<Self> {
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
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let server = Self { kind, port, child };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let path = match self.kind {
            Kind::Confab => "/healthz",
            Kind::Matchbox => "/health",
        };
        for _ in 0..100 {
            if http_ok(self.port, path).await {
                return Ok(());
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
            Kind::Confab => format!("ws://127.0.0.1:{}/ws", self.port),
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

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
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
