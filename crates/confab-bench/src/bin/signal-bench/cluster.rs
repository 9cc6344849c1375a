//! The set-ups of the cluster comparison: one Confab instance alone (the anchor), or a
//! cluster of instances sharing a nats-server of their own; and the same two shapes of
//! bare nodes (see [`crate::bare`]); all on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::target::{Kind, Server, free_port, metric};

/// Flags every instance of the comparison gets: no relay ports, no multicast, so that the
/// instances differ from the anchor only by `--cluster`.
const QUIET: [&str; 2] = ["--no-turn", "--no-announce"];
/// How long the instances of a new cluster may take to hear of each other.
const VIEW_WITHIN: Duration = Duration::from_secs(10);

/// A nats-server on a loopback port, killed when dropped.
pub struct Nats {
    port: u16,
    child: Child,
}

impl Nats {
    async fn spawn(binary: &Path, log: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(log).with_context(|| format!("{}", log.display()))?,
            ))
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut nats = Self { port, child };
        nats.wait_listening().await?;
        Ok(nats)
    }

    async fn wait_listening(&mut self) -> anyhow::Result<()> {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("nats-server exited before it listened: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nats-server did not listen on port {}", self.port)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the instances' `/metrics` say about their cluster.
#[derive(Debug, Default)]
pub struct BusFigures {
    /// Rooms each instance owns, in instance order.
    pub owned_rooms: Vec<u64>,
    /// Signals relayed through another instance, summed over the instances.
    pub forwarded: u64,
    /// Messages to other instances dropped because the bus was behind, summed.
    pub dropped: u64,
    /// The slowest instance's last round trip to NATS.
    pub rtt_ms: f64,
}

/// Confab instances under test, killed (and their nats-server after them) when dropped.
pub struct Deployment {
    /// Declared before `nats` so that it is dropped first: instances do not see their
    /// bus vanish under them on the way out.
    pub instances: Vec<Server>,
    nats: Option<Nats>,
}

impl Deployment {
    /// One instance without `--cluster`: the anchor.
    pub async fn lone(confab: &Path, logs: &Path) -> anyhow::Result<Self> {
        let flags = QUIET.map(str::to_owned);
        let server = Server::spawn_confab(confab, &flags, &logs.join("one.log")).await?;
        Ok(Self {
            instances: vec![server],
            nats: None,
        })
    }

    /// `size` instances on a fresh nats-server, started one after the other (each syncs
    /// with those before it), ready once every instance counts all the others alive.
    /// `name` tells their logs apart from other clusters'.
    pub async fn cluster(
        size: usize,
        confab: &Path,
        nats_server: &Path,
        logs: &Path,
        name: &str,
    ) -> anyhow::Result<Self> {
        let nats = Nats::spawn(nats_server, &logs.join(format!("{name}-nats.log"))).await?;
        let mut deployment = Self {
            instances: Vec::with_capacity(size),
            nats: None,
        };
        for i in 1..=size {
            let mut flags = QUIET.map(str::to_owned).to_vec();
            flags.extend(["--cluster".into(), nats.url()]);
            flags.extend(["--node-id".into(), format!("node{i}")]);
            let log = logs.join(format!("{name}-node{i}.log"));
            let server = Server::spawn_confab(confab, &flags, &log)
                .await
                .with_context(|| format!("instance {i} of {size} (log: {})", log.display()))?;
            deployment.instances.push(server);
        }
        deployment.nats = Some(nats);
        deployment.wait_for_full_view().await?;
        Ok(deployment)
    }

    /// One bare node, or `size` of them on a fresh nats-server.
    pub async fn bare(size: usize, nats_server: &Path, logs: &Path) -> anyhow::Result<Self> {
        let nats = match size {
            1 => None,
            _ => Some(Nats::spawn(nats_server, &logs.join(format!("bare{size}-nats.log"))).await?),
        };
        let mut instances = Vec::with_capacity(size);
        for i in 1..=size {
            let log = logs.join(format!("bare{size}-node{i}.log"));
            instances.push(Server::spawn_bare(nats.as_ref().map(Nats::url), &log).await?);
        }
        Ok(Self { instances, nats })
    }

    /// "one instance", "cluster of N", "bare, one node" or "bare, N nodes".
    pub fn label(&self) -> String {
        let bare = self.instances.first().is_some_and(|s| s.kind == Kind::Bare);
        match (bare, &self.nats) {
            (false, None) => "one instance".to_owned(),
            (false, Some(_)) => format!("cluster of {}", self.instances.len()),
            (true, None) => "bare, one node".to_owned(),
            (true, Some(_)) => format!("bare, {} nodes", self.instances.len()),
        }
    }

    /// Waits until every instance counts all the others alive: before that, instances
    /// could place a new room on different owners, which is not what is measured here.
    async fn wait_for_full_view(&self) -> anyhow::Result<()> {
        let others = (self.instances.len() - 1) as f64;
        let deadline = tokio::time::Instant::now() + VIEW_WITHIN;
        loop {
            let mut all = true;
            for server in &self.instances {
                let text = server.metrics().await?;
                all &= metric(&text, "confab_cluster_nodes") == Some(others);
            }
            if all {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the instances did not all see each other within {VIEW_WITHIN:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs the instance at `index`: no goodbye, the others find out by its silence.
    pub fn kill(&mut self, index: usize) {
        self.instances.remove(index).stop();
    }

    /// The cluster's figures from every instance's `/metrics`; `None` for a lone instance
    /// or bare nodes.
    pub async fn bus_figures(&self) -> anyhow::Result<Option<BusFigures>> {
        if self.nats.is_none() || self.instances.iter().any(|s| s.kind == Kind::Bare) {
            return Ok(None);
        }
        let mut figures = BusFigures::default();
        for server in &self.instances {
            let text = server.metrics().await?;
            let value =
                |name| metric(&text, name).with_context(|| format!("no {name} in /metrics"));
            figures
                .owned_rooms
                .push(value("confab_cluster_owned_rooms")? as u64);
            figures.forwarded += value("confab_cluster_forwarded_frames_total")? as u64;
            figures.dropped += value("confab_cluster_dropped_messages_total")? as u64;
            figures.rtt_ms = figures
                .rtt_ms
                .max(value("confab_cluster_nats_rtt_seconds")? * 1e3);
        }
        Ok(Some(figures))
    }
}

/// The warnings and errors in one log of the run.
#[derive(Debug)]
pub struct LogNotes {
    pub file: String,
    /// Distinct lines (timestamp cut off), with how often each came.
    pub lines: Vec<(String, usize)>,
}

/// The logs under `dir` that hold warnings or errors, in name order.
pub fn warnings_in(dir: &Path) -> anyhow::Result<Vec<LogNotes>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    files.sort();
    let mut notes = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let mut lines: Vec<(String, usize)> = Vec::new();
        for line in text.lines().filter_map(warning) {
            match lines.iter_mut().find(|(seen, _)| seen == line) {
                Some((_, count)) => *count += 1,
                None => lines.push((line.to_owned(), 1)),
            }
        }
        if !lines.is_empty() {
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
            notes.push(LogNotes {
                file: file.unwrap_or_default(),
                lines,
            });
        }
    }
    Ok(notes)
}

/// A warning or error line of confab (tracing) or nats-server, from its level on.
fn warning(line: &str) -> Option<&str> {
    ["WARN ", "ERROR ", "[WRN]", "[ERR]", "[FTL]"]
        .iter()
        .find_map(|level| line.find(level).map(|at| &line[at..]))
}
