//! `mesh-bench`: how fast Confab peers connect and how much a data channel carries, on
//! loopback, next to Chromium measured on the same machine in the same run. Run by hand;
//! it asserts nothing.
//!
//! ```text
//! cargo build --release -p confab -p confab-bench
//! target/release/mesh-bench --chromium tests/browser/bench.sh     # as root, for the namespace
//! target/release/mesh-bench --loss 2 --file-mib 16                 # as root: 2 % UDP loss
//! target/release/mesh-bench --relay --file-mib 64                  # direct, built-in relay, coturn
//! ```

mod allocations;
mod lossy;
mod raw;
mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use confab_bench::peers::{sibling_confab, until_within};
use confab_mesh::api::{ChannelState, SignalingState};
use confab_mesh::{Command, Event, Identity, Mesh, MeshConfig, TransportConfig};
use confab_signal::{ServerConfig, ServerHandle};

#[derive(Debug, Parser)]
#[command(about = "Measure Confab's mesh set-up, throughput and chat round trips on loopback")]
struct Args {
    /// Runs of the 2-peer set-up.
    #[arg(long, default_value_t = 20)]
    setups: usize,
    /// Peers in the mesh set-up.
    #[arg(long, default_value_t = 8)]
    mesh: usize,
    /// Seconds the throughput is measured (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Chat round trips measured.
    #[arg(long, default_value_t = 500)]
    round_trips: usize,
    /// Size of the file sent between two peers, in MiB.
    #[arg(long, default_value_t = 1024)]
    file_mib: u64,
    /// Script that measures Chromium and prints its figures as JSON (tests/browser/bench.sh).
    #[arg(long)]
    chromium: Option<PathBuf>,
    /// Random UDP loss, in percent, in a network namespace of the bench's own (as root).
    #[arg(long)]
    loss: Option<f64>,
    /// Measure only the set-up and the file, direct and through the relays (built-in and
    /// Debian's coturn); the other figures are skipped.
    #[arg(long)]
    relay: bool,
    /// The `confab` binary whose server's built-in relay `--relay` measures.
    #[arg(long, default_value_os_t = sibling_confab())]
    confab: PathBuf,
}

const WAIT: Duration = Duration::from_secs(20);

fn main() -> anyhow::Result<()> {
    // Quiet unless RUST_LOG asks: what the libraries log while a figure is measured.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(percent) = args.loss
        && std::env::var_os(lossy::INSIDE).is_none()
    {
        return lossy::rerun_under_loss(percent);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.relay {
        let routes = runtime.block_on(relay::compare(args.file_mib, &args.confab))?;
        relay::report(args.file_mib, &routes);
        runtime.shutdown_timeout(Duration::from_millis(200));
        return Ok(());
    }
    let ours = runtime.block_on(measure(&args))?;
    let chromium = match &args.chromium {
        Some(script) => Some(run_chromium(script, args.loss)?),
        None => None,
    };
    report(&args, &ours, chromium.as_ref());
    // The library may leave socket tasks behind; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

struct Figures {
    setup2_failed: usize,
    setup2_median_ms: f64,
    setup2_p90_ms: f64,
    mesh_ms: f64,
    throughput_mbps: f64,
    chat_rtt_p50_ms: f64,
    chat_rtt_p99_ms: f64,
    stun_per_s: f64,
    file_mbps: f64,
    /// The longest time the receiver's byte count stood still.
    file_stall_ms: f64,
    peak_rss_mib: f64,
}

async fn measure(args: &Args) -> anyhow::Result<Figures> {
    let server = ServerHandle::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::default(),
    )
    .await?;
    let route = Route {
        url: format!("ws://{}/ws", server.local_addr()),
        transport: TransportConfig::loopback(),
    };

    let mut setups = Vec::new();
    let mut setup2_failed = 0;
    for run in 0..args.setups {
        match two_peer_setup(&route, &format!("setup{run}")).await {
            Ok(ms) => setups.push(ms),
            Err(e) => {
                eprintln!("2-peer set-up {run} failed: {e}");
                setup2_failed += 1;
            }
        }
    }
    setups.sort_by(f64::total_cmp);
    eprintln!("2-peer set-up: {setups:.1?} ms");

    let mut meshes = Vec::new();
    for run in 0..3 {
        meshes.push(mesh_setup(&route, &format!("mesh{run}"), args.mesh).await?);
    }
    meshes.sort_by(f64::total_cmp);
    eprintln!("{}-peer mesh: {meshes:.1?} ms", args.mesh);

    let (chat_rtt_p50_ms, chat_rtt_p99_ms) = chat_round_trips(&route, args.round_trips).await?;
    eprintln!("chat round trip: p50 {chat_rtt_p50_ms:.3} ms, p99 {chat_rtt_p99_ms:.3} ms");

    let channel = raw::measure_channel(args.seconds).await?;
    eprintln!(
        "data channel: {:.1} MB/s; {:.2} STUN requests/s per pair once connected",
        channel.throughput_mbps, channel.stun_per_s
    );
    let (file_mbps, file_stall_ms) = file_throughput(&route, args.file_mib).await?;
    eprintln!("file transfer: {file_mbps:.1} MB/s, longest stall {file_stall_ms:.0} ms");
    server.stop().await;
    Ok(Figures {
        setup2_failed,
        file_mbps,
        file_stall_ms,
        peak_rss_mib: peak_rss_kib() as f64 / 1024.0,
        setup2_median_ms: percentile(&setups, 50.0),
        setup2_p90_ms: percentile(&setups, 90.0),
        mesh_ms: percentile(&meshes, 50.0),
        throughput_mbps: channel.throughput_mbps,
        chat_rtt_p50_ms,
        chat_rtt_p99_ms,
        stun_per_s: channel.stun_per_s,
    })
}

/// Where the peers of a measurement meet, and how they reach each other.
pub(crate) struct Route {
    pub url: String,
    pub transport: TransportConfig,
}

fn peer(name: &str, transport: &TransportConfig) -> anyhow::Result<Mesh> {
    Ok(Mesh::start(MeshConfig {
        name: name.to_owned(),
        transport: transport.clone(),
        identity: Identity::ephemeral()?,
        auto_accept_files: None,
        data_dir: None,
        audio_in: None,
        audio_out: None,
        auto_accept_calls: false,
    }))
}

fn connect(mesh: &Mesh, url: &str, room: &str) {
    mesh.send(Command::Connect {
        server: url.to_owned(),
        room: room.to_owned(),
        name: "bench".to_owned(),
        password: None,
    });
}

async fn until(mesh: &mut Mesh, matches: impl FnMut(&Event) -> bool) -> anyhow::Result<Event> {
    until_within(mesh, WAIT, matches).await
}

async fn connected(mesh: &mut Mesh) -> anyhow::Result<()> {
    until(mesh, |e| {
        matches!(
            e,
            Event::Signaling {
                state: SignalingState::Connected,
                ..
            }
        )
    })
    .await?;
    Ok(())
}

fn chat_opened(event: &Event) -> bool {
    matches!(event, Event::Channel { label, state: ChannelState::Open, .. } if label == "chat")
}

async fn quit(peers: Vec<Mesh>) {
    for mesh in &peers {
        mesh.send(Command::Quit);
    }
    for mesh in peers {
        mesh.stopped().await;
    }
}

/// A is in the room; B joins: time from B's `connect` to its chat channel being open.
pub(crate) async fn two_peer_setup(route: &Route, room: &str) -> anyhow::Result<f64> {
    let mut a = peer("a", &route.transport)?;
    connect(&a, &route.url, room);
    connected(&mut a).await?;
    let mut b = peer("b", &route.transport)?;
    let started = Instant::now();
    connect(&b, &route.url, room);
    until(&mut b, chat_opened).await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    quit(vec![a, b]).await;
    Ok(elapsed)
}

/// `n` peers join at once: time until every one has all its chat channels open.
async fn mesh_setup(route: &Route, room: &str, n: usize) -> anyhow::Result<f64> {
    let mut peers = (0..n)
        .map(|i| peer(&format!("m{i}"), &route.transport))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for mesh in &peers {
        connect(mesh, &route.url, room);
    }
    let waits = peers.iter_mut().map(|mesh| async move {
        for _ in 1..n {
            until(mesh, chat_opened).await?;
        }
        anyhow::Ok(())
    });
    for done in futures_util::future::join_all(waits).await {
        done?;
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    quit(peers).await;
    Ok(elapsed)
}

/// Two peers in `room` with their chat channel open both ways: (a, b, b's id).
async fn chatting_pair(route: &Route, room: &str) -> anyhow::Result<(Mesh, Mesh, String)> {
    let mut a = peer("a", &route.transport)?;
    connect(&a, &route.url, room);
    connected(&mut a).await?;
    let mut b = peer("b", &route.transport)?;
    connect(&b, &route.url, room);
    let joined = until(&mut b, |e| {
        matches!(
            e,
            Event::Signaling {
                state: SignalingState::Connected,
                ..
            }
        )
    })
    .await?;
    let Event::Signaling { id: Some(b_id), .. } = joined else {
        bail!("no id for b");
    };
    until(&mut b, chat_opened).await?;
    until(&mut a, chat_opened).await?;
    Ok((a, b, b_id))
}

/// Chat to the other peer and time until its `ack` comes back, one at a time.
async fn chat_round_trips(route: &Route, count: usize) -> anyhow::Result<(f64, f64)> {
    let (mut a, b, b_id) = chatting_pair(route, "rtt").await?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        a.send(Command::Chat {
            text: format!("ping {i}"),
            to: Some(b_id.clone()),
            to_key: None,
        });
        until(&mut a, |e| matches!(e, Event::Ack { .. })).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    quit(vec![a, b]).await;
    Ok((percentile(&samples, 50.0), percentile(&samples, 99.0)))
}

/// A file of `mib` MiB from one peer to another, accept to the receiver's verdict: MB/s,
/// and the longest time the received byte count stood still (ms).
pub(crate) async fn file_throughput(route: &Route, mib: u64) -> anyhow::Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!("confab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let source = dir.join("payload.bin");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source)?);
        let block: Vec<u8> = (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for _ in 0..mib {
            file.write_all(&block)?;
        }
    }
    let (a, mut b, b_id) = chatting_pair(route, "file").await?;
    a.send(Command::SendFile {
        to: b_id,
        path: source.display().to_string(),
    });
    let Event::FileIncoming { file, .. } =
        until(&mut b, |e| matches!(e, Event::FileIncoming { .. })).await?
    else {
        bail!("no offer");
    };
    let started = Instant::now();
    b.send(Command::AcceptFile {
        file,
        dir: dir.join("in").display().to_string(),
    });
    let (mut held, mut moved, mut stall) = (0, Instant::now(), Duration::ZERO);
    let done = until_long(&mut b, |e| {
        if let Event::FileProgress { bytes, .. } = e
            && *bytes > held
        {
            stall = stall.max(moved.elapsed());
            (held, moved) = (*bytes, Instant::now());
        }
        matches!(e, Event::FileDone { .. })
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    if !matches!(done, Event::FileDone { ok: true, .. }) {
        bail!("transfer failed: {done:?}");
    }
    quit(vec![a, b]).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        (mib << 20) as f64 / 1e6 / seconds,
        stall.as_secs_f64() * 1000.0,
    ))
}

/// Like [`until`], for something that takes minutes.
async fn until_long(mesh: &mut Mesh, matches: impl FnMut(&Event) -> bool) -> anyhow::Result<Event> {
    until_within(mesh, Duration::from_secs(600), matches).await
}

/// This process's peak resident memory (both peers of the file transfer live here).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Chromium's figures, from the browser harness's benchmark script.
#[derive(Debug, serde::Deserialize)]
struct Chromium {
    setup2_ms: f64,
    mesh8_ms: f64,
    throughput_mbps: f64,
    #[serde(default)]
    throughput_longest_gap_ms: Option<f64>,
    #[serde(default)]
    chromium_version: String,
}

/// Runs the Chromium benchmark script, with the same UDP loss in its own namespace.
fn run_chromium(script: &PathBuf, loss: Option<f64>) -> anyhow::Result<Chromium> {
    eprintln!("measuring Chromium with {} ...", script.display());
    let mut command = std::process::Command::new(script);
    if let Some(percent) = loss {
        command.env("BENCH_LOSS_PCT", percent.to_string());
    }
    let out = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The figures are the JSON object the script prints last (possibly over several lines).
    let json = text
        .rfind("\n{")
        .map(|at| &text[at + 1..])
        .or_else(|| text.starts_with('{').then_some(&text[..]))
        .context("no JSON from the Chromium benchmark")?;
    Ok(serde_json::from_str(json)?)
}

fn report(args: &Args, ours: &Figures, chromium: Option<&Chromium>) {
    let ratio = |a: f64, b: Option<f64>| match b {
        Some(b) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    };
    let theirs = |f: fn(&Chromium) -> f64| chromium.map(f);
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "\nmesh-bench on loopback{} ({} set-ups, {}-peer mesh, {} s of throughput){}",
        args.loss
            .map(|pct| format!(" with {pct} % UDP loss"))
            .unwrap_or_default(),
        args.setups,
        args.mesh,
        args.seconds,
        chromium
            .map(|c| format!("; Chromium {}", c.chromium_version))
            .unwrap_or_default()
    );
    println!(
        "{:<38} {:>12} {:>12} {:>12}",
        "", "confab", "chromium", "ratio"
    );
    let c2 = theirs(|c| c.setup2_ms);
    println!(
        "{:<38} {:>12.1} {:>12} {:>12}",
        "2-peer set-up, median ms",
        ours.setup2_median_ms,
        cell(c2),
        ratio(ours.setup2_median_ms, c2)
    );
    println!(
        "{:<38} {:>12.1}",
        "2-peer set-up, p90 ms", ours.setup2_p90_ms
    );
    println!(
        "{:<38} {:>12}",
        "2-peer set-ups failed",
        format!("{}/{}", ours.setup2_failed, args.setups)
    );
    let c8 = theirs(|c| c.mesh8_ms);
    println!(
        "{:<38} {:>12.1} {:>12} {:>12}",
        format!("{}-peer mesh connected, ms", args.mesh),
        ours.mesh_ms,
        cell(c8),
        ratio(ours.mesh_ms, c8)
    );
    let ct = theirs(|c| c.throughput_mbps);
    println!(
        "{:<38} {:>12.1} {:>12} {:>12}",
        "data channel, MB/s (16 KiB messages)",
        ours.throughput_mbps,
        cell(ct),
        ratio(ours.throughput_mbps, ct)
    );
    println!(
        "{:<38} {:>12.3}",
        "chat round trip p50, ms", ours.chat_rtt_p50_ms
    );
    println!(
        "{:<38} {:>12.3}",
        "chat round trip p99, ms", ours.chat_rtt_p99_ms
    );
    println!(
        "{:<38} {:>12.2}",
        "STUN requests/s per connected pair", ours.stun_per_s
    );
    println!(
        "{:<38} {:>12.1} {:>12} {:>12}",
        format!("file transfer {} MiB, MB/s", args.file_mib),
        ours.file_mbps,
        "",
        format!(
            "{:.0}% of raw",
            100.0 * ours.file_mbps / ours.throughput_mbps
        )
    );
    println!(
        "{:<38} {:>12.0} {:>12}",
        "longest stall ms (file; Chromium channel)",
        ours.file_stall_ms,
        cell(chromium.and_then(|c| c.throughput_longest_gap_ms))
    );
    println!(
        "{:<38} {:>12.1}",
        "peak RSS of both peers, MiB", ours.peak_rss_mib
    );
}
