//! `history-bench`: what passing on a room's history costs. Two peers chat `--messages`
//! room messages live (the anchor: the same messages as they first went out); then a
//! newcomer, a `confab peer` process of its own, joins with only the first of them online
//! and fetches the whole history by reconcile; then it comes back and finds nothing
//! missing. Prints the time, the bytes each way and the newcomer's peak memory for each.
//! Run by hand; it asserts nothing.
//!
//! ```text
//! cargo build --release -p confab -p confab-bench
//! target/release/history-bench --messages 5000 --text-bytes 1000
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use confab_bench::peers::{sibling_confab, until_within};
use confab_mesh::api::ChannelState;
use confab_mesh::{Command, Event, Identity, Mesh, MeshConfig, TransportConfig};
use confab_signal::{ServerConfig, ServerHandle};

#[derive(Debug, Parser)]
#[command(about = "Measure a room history reconcile: missing history, and nothing missing")]
struct Args {
    /// Room messages in the history.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Bytes of text in each message.
    #[arg(long, default_value_t = 1000)]
    text_bytes: usize,
    /// The `confab` binary the newcomer runs.
    #[arg(long, default_value_os_t = sibling_confab())]
    confab: PathBuf,
}

const WAIT: Duration = Duration::from_secs(300);
const ROOM: &str = "history-bench";

/// One reconcile, as the newcomer saw it.
#[derive(Debug)]
struct Exchange {
    /// The newcomer's own summary line ("history with P: got N, …").
    summary: String,
    /// From starting the process to the summary.
    wall: Duration,
    /// The newcomer's peak resident memory (VmHWM), KiB.
    peak_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = std::env::temp_dir().join(format!("confab-history-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(&args, &base));
    let _ = std::fs::remove_dir_all(&base);
    let (live, missing, same) = result?;
    let history_mib = (args.messages * args.text_bytes) as f64 / (1024.0 * 1024.0);
    println!(
        "history: {} room messages of {} bytes of text ({history_mib:.1} MiB)",
        args.messages, args.text_bytes
    );
    println!(
        "anchor, the same messages live from A to B: {:.2} s ({:.0} messages/s)",
        live.as_secs_f64(),
        args.messages as f64 / live.as_secs_f64()
    );
    for (case, exchange) in [("all missing", &missing), ("nothing missing", &same)] {
        println!(
            "{case}: {} (process start to done: {:.2} s); newcomer's peak memory {:.1} MiB",
            exchange.summary,
            exchange.wall.as_secs_f64(),
            exchange.peak_kib as f64 / 1024.0
        );
    }
    Ok(())
}

async fn measure(args: &Args, base: &Path) -> anyhow::Result<(Duration, Exchange, Exchange)> {
    let server = ServerHandle::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::default(),
    )
    .await?;
    let url = format!("ws://{}/ws", server.local_addr());
    let mut a = peer_in(&base.join("a"), "A")?;
    connect(&a, &url, "A");
    let mut b = peer_in(&base.join("b"), "B")?;
    connect(&b, &url, "B");
    until(
        &mut b,
        |e| matches!(e, Event::Channel { label, state: ChannelState::Open, .. } if label == "chat"),
    )
    .await?;

    let text = "x".repeat(args.text_bytes);
    let started = Instant::now();
    for _ in 0..args.messages {
        a.send(Command::Chat {
            text: text.clone(),
            to: None,
            to_key: None,
        });
    }
    let mut heard = 0;
    while heard < args.messages {
        until(&mut b, |e| matches!(e, Event::Chat { .. })).await?;
        heard += 1;
    }
    let live = started.elapsed();
    b.send(Command::Quit);
    b.stopped().await;
    // A's events are not read from here on; it only answers.
    let a_events = tokio::spawn(async move { while a.next_event().await.is_some() {} });

    let newcomer = base.join("c");
    let missing = newcomer_exchange(&args.confab, &url, &newcomer)?;
    let same = newcomer_exchange(&args.confab, &url, &newcomer)?;
    a_events.abort();
    server.stop().await;
    Ok((live, missing, same))
}

/// Runs the newcomer until its history exchange is done, then ends it (end of stdin).
fn newcomer_exchange(confab: &Path, url: &str, dir: &Path) -> anyhow::Result<Exchange> {
    let started = Instant::now();
    let mut child = Process::new(confab)
        .args([
            "peer",
            "--server",
            url,
            "--room",
            ROOM,
            "--name",
            "C",
            "--identity",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", confab.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut summary = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(at) = line.find("history with") {
            summary = Some(line[at..].to_owned());
            break;
        }
        if started.elapsed() > WAIT {
            break;
        }
    }
    // Read on to the end, so the peer's last lines find a reader.
    let drain = std::thread::spawn(move || lines.for_each(drop));
    let wall = started.elapsed();
    let peak_kib = peak_memory_kib(child.id());
    drop(child.stdin.take());
    child.wait()?;
    let _ = drain.join();
    let Some(summary) = summary else {
        bail!("the newcomer's history exchange never finished");
    };
    Ok(Exchange {
        summary,
        wall,
        peak_kib: peak_kib?,
    })
}

/// A process's peak resident memory, from /proc.
fn peak_memory_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc status")
}

fn peer_in(dir: &Path, name: &str) -> anyhow::Result<Mesh> {
    Ok(Mesh::start(MeshConfig {
        name: name.to_owned(),
        transport: TransportConfig::loopback(),
        identity: Identity::load_or_create(dir)?,
        auto_accept_files: None,
        data_dir: Some(dir.to_owned()),
        audio_in: None,
        audio_out: None,
        auto_accept_calls: false,
    }))
}

fn connect(mesh: &Mesh, url: &str, name: &str) {
    mesh.send(Command::Connect {
        server: url.to_owned(),
        room: ROOM.to_owned(),
        name: name.to_owned(),
        password: None,
    });
}

async fn until(mesh: &mut Mesh, matches: impl FnMut(&Event) -> bool) -> anyhow::Result<Event> {
    until_within(mesh, WAIT, matches).await
}
