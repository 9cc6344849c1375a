//! The load: many WebSocket clients in this process, speaking either server's protocol.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{MissedTickBehavior, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::target::{Kind, Server};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Sockets opened at once while setting up: more would overflow the listen backlog.
const CONNECT_CONCURRENCY: usize = 256;
const WARM_UP: Duration = Duration::from_secs(1);

/// Nanoseconds on one monotonic clock shared by senders and receivers.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

async fn connect(server: &Server, room: &str) -> anyhow::Result<Ws> {
    // Small buffers: this process holds as many sockets as the server does.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(server.url(room), Some(config), true).await?;
    Ok(ws)
}

/// The next text frame as JSON.
pub async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await.context("socket closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
            Message::Close(_) => bail!("closed by the server"),
            _ => {}
        }
    }
}

/// A joined client.
pub struct Member {
    pub ws: Ws,
    /// The id the server gave it.
    pub id: String,
    /// The resume token of its `welcome` (Confab only).
    pub token: Option<String>,
    /// The port of the server it joined through.
    pub port: u16,
}

/// Connects and joins `room`.
async fn join(server: &Server, room: &str) -> anyhow::Result<Member> {
    join_with(server, room, None).await
}

/// Connects and joins `room` with the token of an earlier `welcome`, to get its id back.
pub async fn resume(server: &Server, room: &str, token: &str) -> anyhow::Result<Member> {
    join_with(server, room, Some(token)).await
}

async fn join_with(server: &Server, room: &str, resume: Option<&str>) -> anyhow::Result<Member> {
    let mut ws = connect(server, room).await?;
    match server.kind {
        Kind::Confab => {
            let mut join = json!({"type":"join","room":room,"name":"bench","version":1});
            if let Some(token) = resume {
                join["resume"] = json!(token);
            }
            ws.send(Message::text(join.to_string())).await?;
        }
        // A bare node takes the id its client gives.
        Kind::Bare => {
            static CLIENTS: AtomicUsize = AtomicUsize::new(0);
            let id = format!("{room}-{}", CLIENTS.fetch_add(1, Relaxed));
            ws.send(Message::text(id)).await?;
        }
        Kind::Matchbox => {}
    }
    loop {
        let frame = next_json(&mut ws).await?;
        let id = match server.kind {
            Kind::Confab if frame["type"] == "welcome" => &frame["id"],
            Kind::Bare => &frame["id"],
            Kind::Matchbox => &frame["IdAssigned"],
            Kind::Confab if frame["type"] == "error" => bail!("join refused: {frame}"),
            Kind::Confab => continue,
        };
        if let Some(id) = id.as_str() {
            return Ok(Member {
                id: id.to_owned(),
                token: frame["token"].as_str().map(str::to_owned),
                port: server.port,
                ws,
            });
        }
    }
}

/// Joined sockets kept open by tasks that read (and so answer keepalive pings).
pub struct Idle {
    tasks: JoinSet<()>,
    alive: Arc<AtomicUsize>,
}

impl Idle {
    /// Sockets still open.
    pub fn len(&self) -> usize {
        self.alive.load(Relaxed)
    }
}

/// Opens `n` joined sockets in rooms of 16.
pub async fn open_idle(server: &Server, n: usize) -> Idle {
    let alive = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let joins = futures_util::stream::iter(0..n)
        .map(|i| async move { join(server, &format!("idle{}", i / 16)).await })
        .buffer_unordered(CONNECT_CONCURRENCY);
    tokio::pin!(joins);
    let mut failures = 0;
    while let Some(joined) = joins.next().await {
        match joined {
            Ok(Member { mut ws, .. }) => {
                alive.fetch_add(1, Relaxed);
                let alive = alive.clone();
                tasks.spawn(async move {
                    while let Some(Ok(_)) = ws.next().await {}
                    alive.fetch_sub(1, Relaxed);
                });
            }
            Err(e) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("   join failed: {e:#}");
                }
            }
        }
    }
    Idle { tasks, alive }
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Two clients in a room of their own, each knowing the other's id.
pub struct Pair {
    pub kind: Kind,
    pub room: String,
    pub a: Member,
    pub b: Member,
}

/// A pair whose A joins through `a_server` and B through `b_server`.
async fn open_pair(a_server: &Server, b_server: &Server, room: String) -> anyhow::Result<Pair> {
    let kind = a_server.kind;
    let mut a = join(a_server, &room).await?;
    let mut b = join(b_server, &room).await?;
    // A bare node has no rooms: B may be sent to once it is joined.
    if kind == Kind::Bare {
        return Ok(Pair { kind, room, a, b });
    }
    // Wait until A has heard of B; matchbox does not tell B about A, so A introduces itself.
    loop {
        let frame = next_json(&mut a.ws).await?;
        if frame["peer"]["id"] == b.id.as_str() || frame["NewPeer"] == b.id.as_str() {
            break;
        }
    }
    if kind == Kind::Matchbox {
        a.ws.send(Message::text(kind.signal(&b.id, 0))).await?;
        loop {
            let frame = next_json(&mut b.ws).await?;
            if frame["Signal"]["sender"] == a.id.as_str() {
                break;
            }
        }
    }
    Ok(Pair { kind, room, a, b })
}

/// Opens `n` pairs in rooms `{tag}{i}`. Pair i's A joins through `servers[i % len]` and
/// its B through the next server, so that with several servers (a cluster) every pair
/// spans two of them, and with one both sides share it.
pub async fn open_pairs(servers: &[Server], n: usize, tag: &str) -> anyhow::Result<Vec<Pair>> {
    anyhow::ensure!(!servers.is_empty(), "no server to open pairs on");
    let count = servers.len();
    futures_util::stream::iter(0..n)
        .map(|i| {
            open_pair(
                &servers[i % count],
                &servers[(i + 1) % count],
                format!("{tag}{i}"),
            )
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Closed loop: A keeps `window` signals in flight to B, which echoes each one back.
/// Returns relayed messages per second (both directions).
pub async fn echo_throughput(pairs: Vec<Pair>, window: usize, seconds: u64) -> f64 {
    let start = tokio::time::Instant::now();
    let warm = start + WARM_UP;
    let end = warm + Duration::from_secs(seconds);
    let mut echoes = JoinSet::new();
    let mut senders = JoinSet::new();
    for pair in pairs {
        let Pair { kind, a, b, .. } = pair;
        let (mut a, a_id, mut b, b_id) = (a.ws, a.id, b.ws, b.id);
        echoes.spawn(async move {
            while let Some(Ok(message)) = b.next().await {
                if let Message::Text(text) = message
                    && let Some((_, data)) = kind.parse_signal(text.as_str())
                    && b.send(Message::text(kind.signal(&a_id, data)))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        senders.spawn(async move {
            let mut round_trips = 0u64;
            for _ in 0..window {
                if a.send(Message::text(kind.signal(&b_id, 0))).await.is_err() {
                    return 0;
                }
            }
            while let Ok(Some(Ok(message))) = timeout_at(end, a.next()).await {
                if let Message::Text(text) = message
                    && kind.parse_signal(text.as_str()).is_some()
                {
                    if tokio::time::Instant::now() >= warm {
                        round_trips += 1;
                    }
                    if a.send(Message::text(kind.signal(&b_id, 0))).await.is_err() {
                        break;
                    }
                }
            }
            round_trips
        });
    }
    let mut round_trips = 0;
    while let Some(done) = senders.join_next().await {
        round_trips += done.unwrap_or(0);
    }
    echoes.abort_all();
    (2 * round_trips) as f64 / seconds as f64
}

/// Latencies of signals sent after the warm-up, and how many of them arrived.
pub struct Latency {
    nanos: Vec<u64>,
    sent: usize,
}

impl Latency {
    pub fn percentile(&self, p: f64) -> f64 {
        if self.nanos.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (self.nanos.len() - 1) as f64).round() as usize;
        self.nanos[rank.min(self.nanos.len() - 1)] as f64 / 1e6
    }

    pub fn delivered_ratio(&self) -> f64 {
        self.nanos.len() as f64 / self.sent.max(1) as f64
    }
}

/// Open loop: every client sends to its partner at an even pace, `rate` messages a second
/// over all of them; receivers time each message from its send timestamp.
pub async fn paced_latency(pairs: Vec<Pair>, rate: u32, seconds: u64) -> Latency {
    let clients = pairs.len() * 2;
    let period = Duration::from_secs_f64(clients as f64 / f64::from(rate.max(1)));
    let warm_ns = now_ns() + WARM_UP.as_nanos() as u64;
    let end = tokio::time::Instant::now() + WARM_UP + Duration::from_secs(seconds);
    let mut senders = JoinSet::new();
    let mut receivers = JoinSet::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let kind = pair.kind;
        for (ws, to) in [(pair.a.ws, pair.b.id), (pair.b.ws, pair.a.id)] {
            let (mut sink, mut stream) = ws.split();
            // Spread the clients' send times evenly over one period.
            let offset = period.mul_f64(i as f64 / clients as f64);
            senders.spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
                let mut sent = 0usize;
                while ticks.tick().await < end {
                    let ts = now_ns();
                    if sink
                        .send(Message::text(kind.signal(&to, ts)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    if ts >= warm_ns {
                        sent += 1;
                    }
                }
                sent
            });
            receivers.spawn(async move {
                let mut nanos = Vec::new();
                let drain = end + Duration::from_millis(500);
                while let Ok(Some(Ok(message))) = timeout_at(drain, stream.next()).await {
                    if let Message::Text(text) = message
                        && let Some((_, ts)) = kind.parse_signal(text.as_str())
                        && ts >= warm_ns
                    {
                        nanos.push(now_ns().saturating_sub(ts));
                    }
                }
                nanos
            });
        }
    }
    let mut sent = 0;
    while let Some(done) = senders.join_next().await {
        sent += done.unwrap_or(0);
    }
    let mut nanos = Vec::new();
    while let Some(done) = receivers.join_next().await {
        nanos.extend(done.unwrap_or_default());
    }
    nanos.sort_unstable();
    Latency { nanos, sent }
}
