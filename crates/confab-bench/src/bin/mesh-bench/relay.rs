//! `--relay`: the same pair of peers four ways in one run, on loopback: direct (the
//! anchor), through the relay built into `confab server` over UDP and over TCP, and through
//! Debian's coturn.
//! The relayed peers offer relay candidates only, so every byte crosses the relay. Each
//! relay runs as a process of its own, so its CPU time and memory are its alone.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confab_mesh::{IceServer, TransportConfig};
use confab_signal::{ServerConfig, ServerHandle};
use confab_testkit::coturn::Coturn;
use rtc::ice::url::Url;

use crate::{Route, file_throughput, percentile, two_peer_setup};

/// Set-ups timed per route; the median is reported.
const SETUPS: usize = 5;

/// What one route measured.
pub(crate) struct RouteFigures {
    pub name: &'static str,
    pub setup_median_ms: f64,
    pub file_mbps: f64,
    pub file_stall_ms: f64,
    /// The relay's CPU time over the file transfer, per MB of the file.
    pub relay_cpu_ms_per_mb: Option<f64>,
    /// The relay's resident memory when the transfer ended.
    pub relay_rss_mib: Option<f64>,
    /// The relay's resident memory per allocation held (see `allocations`), on the first
    /// route through each relay.
    pub relay_kib_per_allocation: Option<f64>,
}

/// A relay process, killed when dropped, however the run ends.
struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User plus system CPU time of process `pid` so far, from `/proc/PID/stat`.
fn cpu_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unreadable /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<u64>()?)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(
        total * 1000 / clock_ticks_per_second()?,
    ))
}

/// Resident memory of process `pid`.
pub(crate) fn rss_mib_of(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

fn clock_ticks_per_second() -> anyhow::Result<u64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts TCP on `addr`.
fn wait_for_tcp(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn relayed() -> TransportConfig {
    TransportConfig {
        relay_only: true,
        ..TransportConfig::loopback()
    }
}

/// Times the set-up and the file of `mib` MiB on `route`, with the usage of the relay
/// whose process id is `relay`; `kib_per_allocation` is that relay's, measured before.
async fn measure_route(
    name: &'static str,
    route: &Route,
    mib: u64,
    relay: Option<u32>,
    kib_per_allocation: Option<f64>,
) -> anyhow::Result<RouteFigures> {
    let mut setups = Vec::with_capacity(SETUPS);
    for run in 0..SETUPS {
        setups.push(two_peer_setup(route, &format!("{name}-setup{run}")).await?);
    }
    setups.sort_by(f64::total_cmp);
    let cpu_before = relay.map(cpu_of).transpose()?;
    let (file_mbps, file_stall_ms) = file_throughput(route, mib).await?;
    let relay_cpu_ms_per_mb = match (relay, cpu_before) {
        (Some(relay), Some(before)) => {
            let used = cpu_of(relay)?.saturating_sub(before);
            Some(used.as_secs_f64() * 1000.0 / ((mib << 20) as f64 / 1e6))
        }
        _ => None,
    };
    let figures = RouteFigures {
        name,
        setup_median_ms: percentile(&setups, 50.0),
        file_mbps,
        file_stall_ms,
        relay_cpu_ms_per_mb,
        relay_rss_mib: relay.map(rss_mib_of).transpose()?,
        relay_kib_per_allocation: kib_per_allocation,
    };
    eprintln!(
        "{name}: set-up {setups:.1?} ms; file {file_mbps:.2} MB/s, longest stall {file_stall_ms:.0} ms"
    );
    Ok(figures)
}

/// The four routes, in this order: direct, built-in relay over UDP and over TCP, coturn.
pub(crate) async fn compare(mib: u64, confab: &Path) -> anyhow::Result<Vec<RouteFigures>> {
    let server = ServerHandle::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::default(),
    )
    .await?;
    let bare_url = format!("ws://{}/ws", server.local_addr());
    let direct = Route {
        url: bare_url.clone(),
        transport: TransportConfig::loopback(),
    };
    let mut figures = vec![measure_route("direct", &direct, mib, None, None).await?];

    let built_in = start_confab_server(confab)?;
    let built_in_pid = built_in.0.0.id();
    let built_in_relays = built_in_relays(built_in.1).await?;
    let built_in_kib = per_allocation(built_in_pid, &over(&built_in_relays, "udp")?).await?;
    let route = Route {
        url: format!("ws://{}/ws", built_in.1),
        transport: relayed(),
    };
    figures.push(
        measure_route(
            "built-in relay",
            &route,
            mib,
            Some(built_in_pid),
            Some(built_in_kib),
        )
        .await?,
    );
    let route = Route {
        url: bare_url.clone(),
        transport: TransportConfig {
            ice_servers: vec![over(&built_in_relays, "tcp")?],
            ..relayed()
        },
    };
    figures.push(measure_route("built-in, TCP", &route, mib, Some(built_in_pid), None).await?);
    drop(built_in);

    let coturn = Coturn::start("bench", "bench")?;
    let coturn_server = IceServer {
        url: format!("turn:127.0.0.1:{}?transport=udp", coturn.port()),
        username: Some("bench".to_owned()),
        credential: Some("bench".to_owned()),
    };
    let coturn_kib = per_allocation(coturn.pid(), &coturn_server).await?;
    let route = Route {
        url: bare_url,
        transport: TransportConfig {
            ice_servers: vec![coturn_server],
            ..relayed()
        },
    };
    figures.push(measure_route("coturn", &route, mib, Some(coturn.pid()), Some(coturn_kib)).await?);
    server.stop().await;
    Ok(figures)
}

/// `confab server` on loopback with its relay allowed to relay to loopback peers, and no
/// bandwidth quota per allocation (coturn has none by default): the relay's own capacity
/// is measured, not the quota.
fn start_confab_server(confab: &Path) -> anyhow::Result<(RelayProcess, SocketAddr)> {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let turn = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let child = Command::new(confab)
        .args(["server", "--listen", &listen.to_string()])
        .args(["--turn-listen", &turn.to_string(), "--turn-allow-private"])
        .args([
            "--turn-max-rate",
            "0",
            "--turn-max-allocations-per-peer",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", confab.display()))?;
    let process = RelayProcess(child);
    wait_for_tcp(listen, "confab server")?;
    Ok((process, listen))
}

/// The memory per allocation of the relay `pid` that `relay` names (`turn:IP:PORT?...`).
async fn per_allocation(pid: u32, relay: &IceServer) -> anyhow::Result<f64> {
    let url = Url::parse_url(&relay.url).with_context(|| format!("cannot read {}", relay.url))?;
    let ip = url
        .host
        .parse()
        .with_context(|| format!("no IP address in {}", relay.url))?;
    let address = SocketAddr::new(ip, url.port);
    let username = relay.username.as_deref().unwrap_or_default();
    let password = relay.credential.as_deref().unwrap_or_default();
    let kib = crate::allocations::kib_per_allocation(pid, address, username, password).await?;
    eprintln!(
        "{}: {kib:.1} KiB per allocation, {} held at once",
        relay.url,
        crate::allocations::ALLOCATIONS
    );
    Ok(kib)
}

/// The built-in relay's URLs with credentials from a welcome of its server, one per URL
/// as a peer takes them: peers on a server that offers no relay reach it only that way.
async fn built_in_relays(server: SocketAddr) -> anyhow::Result<Vec<IceServer>> {
    let join = confab_proto::Join {
        room: "credentials".to_owned(),
        name: "bench".to_owned(),
        version: confab_proto::PROTOCOL_VERSION,
        password: None,
        resume: None,
    };
    let url = format!("ws://{server}/ws");
    let (client, welcome) =
        confab_signal::SignalClient::join(&url, &Default::default(), join).await?;
    client.close().await;
    Ok(TransportConfig::loopback()
        .with_offered(&welcome.ice_servers)
        .ice_servers)
}

/// The TURN server among `relays` reached over `transport` (`udp`, `tcp`).
fn over(relays: &[IceServer], transport: &str) -> anyhow::Result<IceServer> {
    relays
        .iter()
        .find(|relay| relay.url.ends_with(&format!("transport={transport}")))
        .cloned()
        .with_context(|| format!("the server's welcome offers no TURN over {transport}"))
}

pub(crate) fn report(mib: u64, routes: &[RouteFigures]) {
    println!("\nmesh-bench --relay on loopback: a {mib} MiB file and the set-up, per route");
    println!(
        "{:<16} {:>14} {:>10} {:>10} {:>12} {:>14} {:>10} {:>14}",
        "route",
        "set-up ms",
        "MB/s",
        "% direct",
        "stall ms",
        "relay CPU ms/MB",
        "relay MiB",
        "KiB/allocation"
    );
    let direct = routes.first().map_or(0.0, |r| r.file_mbps);
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for route in routes {
        println!(
            "{:<16} {:>14.1} {:>10.2} {:>10.1} {:>12.0} {:>14} {:>10} {:>14}",
            route.name,
            route.setup_median_ms,
            route.file_mbps,
            100.0 * route.file_mbps / direct,
            route.file_stall_ms,
            cell(route.relay_cpu_ms_per_mb),
            cell(route.relay_rss_mib),
            cell(route.relay_kib_per_allocation),
        );
    }
}
