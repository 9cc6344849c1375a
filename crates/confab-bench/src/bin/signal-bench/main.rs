//! `signal-bench`: drives a signaling server over loopback from this process and prints
//! what it holds and how fast it relays. Run by hand; it asserts nothing.
//!
//! It measures Confab's server and, in the same run, matchbox_server 0.15 (the anchor)
//! with the same client code, so the two sets of figures are comparable:
//! - idle sockets: how many joined sockets the server holds, and its RSS per socket;
//! - relay throughput: pairs of clients echoing signals with a fixed window in flight;
//! - relay latency: p50/p99 at a fixed offered load, paced open-loop.
//!
//! ```text
//! cargo build --release -p confab -p confab-bench
//! target/release/signal-bench --matchbox /path/to/matchbox_server
//! ```

mod clients;
mod target;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::target::{Kind, Server};

#[derive(Debug, Parser)]
#[command(about = "Measure a Confab signaling server against matchbox_server on loopback")]
struct Args {
    /// The confab binary (default: next to this one).
    #[arg(long)]
    confab: Option<PathBuf>,
    /// The matchbox_server binary; without it only Confab is measured.
    #[arg(long)]
    matchbox: Option<PathBuf>,
    /// Idle joined sockets to open.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Pairs of clients for the relay phases.
    #[arg(long, default_value_t = 250)]
    pairs: usize,
    /// Offered load for the latency phase, messages per second over all pairs.
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    /// Seconds each relay phase measures (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Signals in flight per pair in the throughput phase.
    #[arg(long, default_value_t = 16)]
    window: usize,
}

#[derive(Debug, Default)]
struct Figures {
    held: usize,
    rss_per_socket_kib: f64,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    delivered: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let confab = match &args.confab {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder for this binary")?
            .join("confab"),
    };
    let mut kinds = vec![(Kind::Confab, confab)];
    if let Some(path) = &args.matchbox {
        kinds.push((Kind::Matchbox, path.clone()));
    }
    let mut results = Vec::new();
    for (kind, binary) in kinds {
        eprintln!("== {}", kind.label());
        let figures = runtime.block_on(measure(kind, &binary, &args))?;
        results.push((kind, figures));
    }
    print_report(&args, &results);
    Ok(())
}

async fn measure(kind: Kind, binary: &std::path::Path, args: &Args) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    let server = Server::spawn(kind, binary).await?;

    let baseline = server.rss_kib()?;
    let idle = clients::open_idle(&server, args.sockets).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = server.rss_kib()?;
    figures.held = idle.len();
    figures.rss_per_socket_kib = (loaded - baseline) as f64 / idle.len().max(1) as f64;
    eprintln!(
        "   idle: held {} sockets, RSS {baseline} KiB -> {loaded} KiB",
        idle.len()
    );
    drop(idle);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let pairs = clients::open_pairs(&server, args.pairs, "tput").await?;
    figures.throughput = clients::echo_throughput(pairs, args.window, args.seconds).await;
    eprintln!("   throughput: {:.0} messages/s", figures.throughput);

    let pairs = clients::open_pairs(&server, args.pairs, "lat").await?;
    let latency = clients::paced_latency(pairs, args.rate, args.seconds).await;
    figures.p50_ms = latency.percentile(50.0);
    figures.p99_ms = latency.percentile(99.0);
    figures.max_ms = latency.percentile(100.0);
    figures.delivered = latency.delivered_ratio();
    eprintln!(
        "   latency: p50 {:.3} ms, p99 {:.3} ms",
        figures.p50_ms, figures.p99_ms
    );
    server.stop();
    Ok(figures)
}

fn print_report(args: &Args, results: &[(Kind, Figures)]) {
    println!(
        "\nsignal-bench: {} idle sockets; {} pairs; throughput window {}; latency at {} msgs/s; {} s per phase",
        args.sockets, args.pairs, args.window, args.rate, args.seconds
    );
    println!(
        "{:<18} {:>8} {:>14} {:>14} {:>9} {:>9} {:>9} {:>10}",
        "server", "held", "RSS/socket", "relay msg/s", "p50 ms", "p99 ms", "max ms", "delivered"
    );
    for (kind, f) in results {
        println!(
            "{:<18} {:>8} {:>10.1} KiB {:>14.0} {:>9.3} {:>9.3} {:>9.3} {:>9.2}%",
            kind.label(),
            f.held,
            f.rss_per_socket_kib,
            f.throughput,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.delivered * 100.0
        );
    }
}
