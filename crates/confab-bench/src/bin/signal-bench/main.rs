//! `signal-bench`: drives a signaling server over loopback from this process and prints
//! what it holds and how fast it relays. Run by hand; it asserts nothing.
//!
//! It measures Confab's server and, in the same run, matchbox_server 0.15 (the anchor)
//! with the same client code, so the two sets of figures are comparable:
//! - idle sockets: how many joined sockets the server holds, and its RSS per socket;
//! - relay throughput: pairs of clients echoing signals with a fixed window in flight;
//! - relay latency: p50/p99 at a fixed offered load, paced open-loop.
//!
//! With `--cluster N` it then compares Confab clusters with one instance, in the same run:
//! one instance alone (the anchor), then clusters of 2, 3 ... N instances, each on a
//! nats-server of its own, every process on loopback with `--no-turn --no-announce`, and
//! all of them killed at the end, on an error too. The relay phases run over pairs whose
//! two clients join through different instances (pair i: instance i mod N and the next),
//! so a signal crosses the bus to its room's owner and back; the figures are throughput,
//! p50/p99/max latency and the share delivered, and what the forward adds to the anchor's
//! p50/p99. Then a fresh cluster of N holds `--failover-pairs` pairs and its last
//! instance is SIGKILLed: each client that was on it waits for its socket to end, sends
//! `join` with its old resume token to a survivor every 100 ms until welcomed, then
//! signals its partner every 100 ms until one arrives. Printed: the median and max time
//! from the kill until then, how many got their old id back, the same time for pairs
//! that had no client on the killed instance (whose room may have moved), and the
//! warnings in the instances' logs (kept under the temporary directory).
//!
//! Beside them, the cluster comparison measures one bare node of this binary and two over
//! a nats-server of their own ([`bare`]), which pass signals on and do nothing else, so
//! that what a crossing of the bus adds by itself on the machine is seen beside what it
//! adds in Confab's cluster.
//!
//! ```text
//! cargo build --release -p confab -p confab-bench
//! target/release/signal-bench --matchbox /path/to/matchbox_server
//! target/release/signal-bench --sockets 2000 --cluster 3   # needs nats-server on PATH
//! ```

mod bare;
mod clients;
mod cluster;
mod failover;
mod target;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use crate::cluster::{BusFigures, Deployment, LogNotes};
use crate::failover::Failover;
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
    /// Also compare Confab clusters of 2 to N instances with one instance, and measure
    /// a failover in the cluster of N; 0 for none.
    #[arg(long, default_value_t = 0, value_name = "N")]
    cluster: usize,
    /// The nats-server binary the clusters talk over.
    #[arg(long, default_value = "nats-server")]
    nats_server: PathBuf,
    /// Pairs of clients across the instances in the failover.
    #[arg(long, default_value_t = 50)]
    failover_pairs: usize,
    /// Run as a bare node listening here, for the cluster comparison (started by the
    /// bench itself).
    #[arg(long, hide = true, value_name = "ADDR")]
    bare_node: Option<std::net::SocketAddr>,
    /// The bare node's nats-server.
    #[arg(long, hide = true, value_name = "URL", requires = "bare_node")]
    bare_nats: Option<String>,
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

/// The cluster comparison's results.
struct Comparison {
    /// One instance first, then the clusters by size.
    setups: Vec<(String, Figures, Option<BusFigures>)>,
    /// One bare node first, then two over NATS.
    bare: Vec<(String, Figures)>,
    failover: Failover,
    /// The survivors' figures after the failover.
    failover_bus: Option<BusFigures>,
    logs: PathBuf,
    warnings: Vec<LogNotes>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.cluster == 1 {
        bail!("--cluster N compares clusters of 2 to N instances: give N >= 2, or 0 for none");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(listen) = args.bare_node {
        return runtime.block_on(bare::serve(listen, args.bare_nats));
    }
    let confab = match &args.confab {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder for this binary")?
            .join("confab"),
    };
    let mut kinds = vec![(Kind::Confab, confab.clone())];
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
    if args.cluster >= 2 {
        let logs = std::env::temp_dir().join(format!("signal-bench-{}", std::process::id()));
        std::fs::create_dir_all(&logs).with_context(|| format!("{}", logs.display()))?;
        let comparison = runtime.block_on(compare_clusters(&confab, &args, logs))?;
        print_cluster_report(&args, &comparison);
    }
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

    measure_relay(std::slice::from_ref(&server), args, &mut figures).await?;
    server.stop();
    Ok(figures)
}

/// The throughput and latency phases, over pairs spread across `servers` as
/// [`clients::open_pairs`] does.
async fn measure_relay(
    servers: &[Server],
    args: &Args,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let pairs = clients::open_pairs(servers, args.pairs, "tput").await?;
    figures.throughput = clients::echo_throughput(pairs, args.window, args.seconds).await;
    eprintln!("   throughput: {:.0} messages/s", figures.throughput);

    let pairs = clients::open_pairs(servers, args.pairs, "lat").await?;
    let latency = clients::paced_latency(pairs, args.rate, args.seconds).await;
    figures.p50_ms = latency.percentile(50.0);
    figures.p99_ms = latency.percentile(99.0);
    figures.max_ms = latency.percentile(100.0);
    figures.delivered = latency.delivered_ratio();
    eprintln!(
        "   latency: p50 {:.3} ms, p99 {:.3} ms, {:.2}% delivered",
        figures.p50_ms,
        figures.p99_ms,
        figures.delivered * 100.0
    );
    Ok(())
}

/// One instance, then clusters of 2 to N, each with fresh processes (gone when the
/// deployment is dropped), each of the first two after the bare nodes of its shape, then
/// the failover in a fresh cluster of N.
async fn compare_clusters(confab: &Path, args: &Args, logs: PathBuf) -> anyhow::Result<Comparison> {
    let mut setups = Vec::new();
    let mut bare = Vec::new();
    for size in std::iter::once(1).chain(2..=args.cluster) {
        if size <= 2 {
            let deployment = Deployment::bare(size, &args.nats_server, &logs).await?;
            eprintln!("== {}", deployment.label());
            let mut figures = Figures::default();
            measure_relay(&deployment.instances, args, &mut figures).await?;
            bare.push((deployment.label(), figures));
        }
        let deployment = match size {
            1 => Deployment::lone(confab, &logs).await?,
            _ => {
                let name = format!("cluster{size}");
                Deployment::cluster(size, confab, &args.nats_server, &logs, &name).await?
            }
        };
        eprintln!("== {}", deployment.label());
        let mut figures = Figures::default();
        measure_relay(&deployment.instances, args, &mut figures).await?;
        let bus = deployment.bus_figures().await?;
        setups.push((deployment.label(), figures, bus));
    }
    eprintln!("== failover in a cluster of {}", args.cluster);
    let mut deployment =
        Deployment::cluster(args.cluster, confab, &args.nats_server, &logs, "failover").await?;
    let failover = failover::measure(&mut deployment, args.failover_pairs).await?;
    let failover_bus = deployment.bus_figures().await?;
    drop(deployment);
    let warnings = cluster::warnings_in(&logs)?;
    Ok(Comparison {
        setups,
        bare,
        failover,
        failover_bus,
        logs,
        warnings,
    })
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

fn print_cluster_report(args: &Args, comparison: &Comparison) {
    println!(
        "\ncluster comparison: {} pairs, each pair's two clients on different instances; throughput window {}; latency at {} msgs/s; {} s per phase",
        args.pairs, args.window, args.rate, args.seconds
    );
    let rows: Vec<_> = comparison
        .setups
        .iter()
        .map(|(label, figures, bus)| (label.as_str(), figures, bus.as_ref()))
        .collect();
    print_setups(&rows);
    println!(
        "bare nodes, passing signals on and nothing else, each just before the set-up of its shape:"
    );
    let rows: Vec<_> = comparison
        .bare
        .iter()
        .map(|(label, figures)| (label.as_str(), figures, None))
        .collect();
    print_setups(&rows);
    for (label, _, bus) in &comparison.setups {
        if let Some(bus) = bus {
            println!("{label}: {}", describe_bus(bus));
        }
    }
    print_failover(&comparison.failover, comparison.failover_bus.as_ref());
    print_warnings(&comparison.logs, &comparison.warnings);
}

/// A table of set-ups, each against the first (the anchor): what it adds at p50 and p99,
/// and its p99 as a multiple of the anchor's.
fn print_setups(rows: &[(&str, &Figures, Option<&BusFigures>)]) {
    println!(
        "{:<14} {:>12} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7} {:>10} {:>8}",
        "servers",
        "relay msg/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "delivered",
        "+p50 ms",
        "+p99 ms",
        "p99 x",
        "forwarded",
        "dropped"
    );
    let Some((_, anchor, _)) = rows.first() else {
        return;
    };
    for (i, (label, f, bus)) in rows.iter().enumerate() {
        // The anchor adds nothing to itself.
        let against = |text: String| if i == 0 { "-".to_owned() } else { text };
        let (forwarded, dropped) = match bus {
            Some(bus) => (bus.forwarded.to_string(), bus.dropped.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<14} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>9.2}% {:>9} {:>9} {:>7} {:>10} {:>8}",
            label,
            f.throughput,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.delivered * 100.0,
            against(format!("{:+.3}", f.p50_ms - anchor.p50_ms)),
            against(format!("{:+.3}", f.p99_ms - anchor.p99_ms)),
            against(format!("{:.1}", f.p99_ms / anchor.p99_ms)),
            forwarded,
            dropped
        );
    }
}

fn describe_bus(bus: &BusFigures) -> String {
    let owned: Vec<String> = bus.owned_rooms.iter().map(u64::to_string).collect();
    format!(
        "rooms owned per instance {}; last NATS round trip up to {:.3} ms",
        owned.join("/"),
        bus.rtt_ms
    )
}

fn print_failover(f: &Failover, bus: Option<&BusFigures>) {
    println!(
        "failover, cluster of {} ({} pairs across the instances; instance {} SIGKILLed, time from the kill):",
        f.instances, f.pairs, f.killed
    );
    println!(
        "  clients on it: {}; served again (resumed, and a signal reached the partner): {}; {}; old id back: {}/{}; most resume attempts by one client: {}",
        f.victims,
        f.victims_served.len(),
        median_and_max(&f.victims_served),
        f.old_id_back,
        f.victims,
        f.most_attempts
    );
    println!(
        "  pairs with no client on it: {}; served again: {}; {}",
        f.bystanders,
        f.bystanders_served.len(),
        median_and_max(&f.bystanders_served)
    );
    if let Some(bus) = bus {
        println!(
            "  survivors afterwards: {}; dropped {}",
            describe_bus(bus),
            bus.dropped
        );
    }
    for (note, count) in &f.notes {
        println!("  {count} x {note}");
    }
}

fn median_and_max(times: &[Duration]) -> String {
    match (times.get(times.len() / 2), times.last()) {
        (Some(median), Some(max)) => format!(
            "median {:.3} s, max {:.3} s",
            median.as_secs_f64(),
            max.as_secs_f64()
        ),
        _ => "no figures".to_owned(),
    }
}

/// How many distinct lines of each log to show.
const WARNINGS_SHOWN: usize = 6;

fn print_warnings(dir: &Path, notes: &[LogNotes]) {
    if notes.is_empty() {
        println!("no warnings or errors in the logs under {}", dir.display());
        return;
    }
    println!("warnings and errors in the logs under {}:", dir.display());
    for log in notes {
        let total: usize = log.lines.iter().map(|(_, count)| count).sum();
        println!("  {}: {total}", log.file);
        for (line, count) in log.lines.iter().take(WARNINGS_SHOWN) {
            println!("    {count} x {line}");
        }
        if log.lines.len() > WARNINGS_SHOWN {
            println!(
                "    ... {} more distinct lines",
                log.lines.len() - WARNINGS_SHOWN
            );
        }
    }
}
