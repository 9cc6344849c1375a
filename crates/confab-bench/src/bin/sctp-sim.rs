//! `sctp-sim`: how a reliable SCTP stream recovers from random loss, with nothing else in
//! the way. Two associations of `rtc-sctp` (sans-IO, patched as the build uses it) talk
//! over a simulated link: a serialisation rate, a one-way delay, random loss of datagrams
//! both ways, a processing cost per datagram, and hosts that read up to `--burst`
//! datagrams before they flush, as webrtc's driver does. The clock is virtual, so a run is
//! repeatable from its seed and unaffected by a busy machine. DTLS, ICE and sockets are
//! left out: `mesh-bench --loss` measures the real thing.
//!
//! ```text
//! cargo run --release -p confab-bench --bin sctp-sim -- --loss 0,1,2,5,10 --seeds 3
//! ```
//!
//! Prints, per loss rate and seed, the file's MB/s, the longest time the receiver got
//! nothing, and the sender's retransmission counters; the 0 % row is the anchor.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use rtc::sctp::{
    Association, AssociationHandle, AssociationStats, ClientConfig, DatagramEvent, Endpoint,
    EndpointConfig, Event, Payload, PayloadProtocolIdentifier, ServerConfig, TransportConfig,
};
use rtc::shared::TransportProtocol;

#[derive(Parser, Debug)]
#[command(about = "SCTP loss recovery over a simulated link")]
struct Args {
    /// Loss rates to run, in percent, each way.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,5,10")]
    loss: Vec<f64>,
    /// Seeds per loss rate.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// The size of the file sent, in MiB.
    #[arg(long, default_value_t = 16)]
    file_mib: usize,
    /// Link rate, in MB/s.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// One-way delay, in microseconds.
    #[arg(long, default_value_t = 50)]
    delay_us: u64,
    /// Processing time per datagram read or written, in nanoseconds.
    #[arg(long, default_value_t = 5000)]
    cost_ns: u64,
    /// Datagrams read before one flush.
    #[arg(long, default_value_t = 65)]
    burst: usize,
}

/// Application messages, as the mesh sends files.
const MESSAGE: usize = 16 * 1024;
/// The sender keeps this much queued in the association.
const SEND_BUFFER: usize = 1 << 20;
const STREAM: u16 = 1;
/// A run that has not delivered the file by then (virtual time) is reported as stuck.
const GIVE_UP: Duration = Duration::from_secs(600);

/// A small deterministic generator (xorshift64*): the same seed, the same losses.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// True with probability `p`.
    fn roll(&mut self, p: f64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

struct Host {
    endpoint: Endpoint,
    association: Option<(AssociationHandle, Association)>,
    addr: SocketAddr,
    /// Datagrams on their way to this host, with their arrival times.
    inbound: VecDeque<(Instant, Bytes)>,
    /// When this host's outgoing link is free again.
    link_free: Instant,
    /// When this host has finished processing its last burst.
    busy_until: Instant,
}

impl Host {
    fn new(addr: SocketAddr, server: Option<Arc<ServerConfig>>, now: Instant) -> Self {
        Self {
            endpoint: Endpoint::new(
                addr,
                TransportProtocol::UDP,
                Arc::new(EndpointConfig::default()),
                server,
            ),
            association: None,
            addr,
            inbound: VecDeque::new(),
            link_free: now,
            busy_until: now,
        }
    }

    /// The next moment this host has something to do.
    fn next_wake(&self) -> Option<Instant> {
        let arrival = self.inbound.front().map(|(at, _)| *at);
        let timer = self
            .association
            .as_ref()
            .and_then(|(_, a)| a.poll_timeout());
        [arrival, timer]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(self.busy_until))
    }
}

struct Link<'a> {
    args: &'a Args,
    loss: f64,
    dice: Dice,
}

/// What the two hosts' applications do.
struct Transfer {
    total: usize,
    written: usize,
    received: usize,
    stream_open: bool,
    started: Option<Instant>,
    last_progress: Option<Instant>,
    longest_stall: Duration,
}

struct Figures {
    mbps: f64,
    stall: Duration,
    stats: AssociationStats,
}

fn run(args: &Args, loss: f64, seed: u64) -> anyhow::Result<Option<Figures>> {
    let t0 = Instant::now();
    let mut now = t0;
    let transport = TransportConfig::default();
    let mut hosts = [
        Host::new(SocketAddr::from(([10, 0, 0, 1], 5000)), None, now),
        Host::new(
            SocketAddr::from(([10, 0, 0, 2], 5000)),
            Some(Arc::new(ServerConfig::new(transport.clone()))),
            now,
        ),
    ];
    let server = hosts[1].addr;
    let client = ClientConfig {
        transport: Arc::new(transport),
    };
    hosts[0].association = Some(hosts[0].endpoint.connect(now, client, server)?);
    let mut link = Link {
        args,
        loss: loss / 100.0,
        dice: Dice::new(seed),
    };
    let mut transfer = Transfer {
        total: args.file_mib << 20,
        written: 0,
        received: 0,
        stream_open: false,
        started: None,
        last_progress: None,
        longest_stall: Duration::ZERO,
    };
    let message = Bytes::from(vec![7u8; MESSAGE]);
    while transfer.received < transfer.total {
        for sender in [true, false] {
            let (first, second) = hosts.split_at_mut(1);
            let (me, peer) = if sender {
                (&mut first[0], &mut second[0])
            } else {
                (&mut second[0], &mut first[0])
            };
            serve(me, peer, now, &mut link, &mut transfer, sender, &message)?;
        }
        let Some(next) = hosts.iter().filter_map(Host::next_wake).min() else {
            bail!("both hosts idle with the file unfinished");
        };
        now = now.max(next);
        if now - t0 > GIVE_UP {
            return Ok(None);
        }
    }
    let started = transfer.started.context("never connected")?;
    let stats = hosts[0]
        .association
        .as_ref()
        .map(|(_, a)| a.stats())
        .context("no association")?;
    Ok(Some(Figures {
        mbps: transfer.total as f64 / 1e6 / (now - started).as_secs_f64(),
        stall: transfer.longest_stall,
        stats,
    }))
}

/// One turn of a host: a burst read, its timers, its application, its flush.
fn serve(
    me: &mut Host,
    peer: &mut Host,
    now: Instant,
    link: &mut Link<'_>,
    transfer: &mut Transfer,
    sender: bool,
    message: &Bytes,
) -> anyhow::Result<()> {
    if me.busy_until > now {
        return Ok(());
    }
    let mut work = 0u32;
    while work < link.args.burst as u32 && me.inbound.front().is_some_and(|(at, _)| *at <= now) {
        let Some((_, datagram)) = me.inbound.pop_front() else {
            break;
        };
        work += 1;
        match me.endpoint.handle(now, peer.addr, None, datagram) {
            Some((handle, DatagramEvent::NewAssociation(association))) => {
                me.association = Some((handle, association));
            }
            Some((_, DatagramEvent::AssociationEvent(event))) => {
                if let Some((_, association)) = me.association.as_mut() {
                    association.handle_event(event);
                }
            }
            _ => {}
        }
    }
    let Some((_, association)) = me.association.as_mut() else {
        return Ok(());
    };
    if association.poll_timeout().is_some_and(|t| t <= now) {
        association.handle_timeout(now);
    }
    while let Some(event) = association.poll() {
        if sender && matches!(event, Event::Connected) {
            transfer.started = Some(now);
        }
    }
    if sender {
        if transfer.started.is_some() && !transfer.stream_open {
            association.open_stream(STREAM, PayloadProtocolIdentifier::Binary)?;
            transfer.stream_open = true;
        }
        if transfer.stream_open {
            let mut stream = association.stream(STREAM)?;
            while transfer.written < transfer.total && stream.buffered_amount()? < SEND_BUFFER {
                stream.write_sctp(now, message, PayloadProtocolIdentifier::Binary)?;
                transfer.written += MESSAGE;
            }
        }
    } else {
        while association.accept_stream().is_some() {}
        if let Ok(mut stream) = association.stream(STREAM) {
            while let Some(chunks) = stream.read_sctp()? {
                transfer.received += chunks.len();
                if let Some(last) = transfer.last_progress {
                    transfer.longest_stall = transfer.longest_stall.max(now - last);
                }
                transfer.last_progress = Some(now);
            }
        }
    }
    while let Some(transmit) = association.poll_transmit(now) {
        let Payload::RawEncode(datagrams) = transmit.message else {
            continue;
        };
        for datagram in datagrams {
            work += 1;
            // On the wire with UDP and IP headers.
            let wire = (datagram.len() + 28) as f64;
            let done =
                me.link_free.max(now) + Duration::from_secs_f64(wire / (link.args.rate * 1e6));
            me.link_free = done;
            if !link.dice.roll(link.loss) {
                peer.inbound
                    .push_back((done + Duration::from_micros(link.args.delay_us), datagram));
            }
        }
    }
    me.busy_until = now + Duration::from_nanos(link.args.cost_ns * u64::from(work));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "sctp-sim: {} MiB, link {} MB/s, {} µs one way, {} ns per datagram, bursts of {}",
        args.file_mib, args.rate, args.delay_us, args.cost_ns, args.burst
    );
    println!(
        "{:>6} {:>5} {:>10} {:>10} {:>8} {:>10} {:>8}",
        "loss %", "seed", "MB/s", "stall ms", "T3-rtx", "fast rtx", "SACKs"
    );
    for &loss in &args.loss {
        for seed in 1..=args.seeds {
            match run(&args, loss, seed)? {
                Some(mut f) => println!(
                    "{:>6} {:>5} {:>10.2} {:>10.0} {:>8} {:>10} {:>8}",
                    loss,
                    seed,
                    f.mbps,
                    f.stall.as_secs_f64() * 1000.0,
                    f.stats.get_num_t3timeouts(),
                    f.stats.get_num_fast_retrans(),
                    f.stats.get_num_sacks(),
                ),
                None => println!("{loss:>6} {seed:>5}   not done in {GIVE_UP:?}"),
            }
        }
    }
    Ok(())
}
