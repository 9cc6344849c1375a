//! The connection test: what works from this machine, in plain words. It reaches the
//! signaling server (and takes the ICE servers its `welcome` offers, with the user's own),
//! asks each STUN server over one UDP socket how this machine is seen (and whether the NAT
//! keeps one mapping for every destination), and allocates a relay on each TURN server
//! over the transport its URL names, releasing it at once.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use confab_proto::{Join, PROTOCOL_VERSION};
use confab_signal::{ClientOptions, SignalClient};
use rtc::stun::message::{BINDING_REQUEST, Getter as _, Message, TransactionId};
use rtc::stun::xoraddr::XorMappedAddress;
use serde::Serialize;
use tokio::net::UdpSocket;

use crate::transport::{IceServer, TransportConfig};
use crate::turn_check::{self, Verdict};
use crate::turn_tunnel::TurnTunnels;

/// How long STUN servers have to answer, all together.
const STUN_WITHIN: Duration = Duration::from_secs(3);
/// A binding request goes again this often while unanswered (UDP may lose it).
const STUN_RESEND: Duration = Duration::from_millis(500);

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The signaling server answers and lets us join.
    Server,
    /// How this machine is seen from outside (STUN).
    Reflexive,
    /// Whether the NAT keeps one public address for every destination.
    Mapping,
    /// A relay allocation on one TURN server (or that there is none).
    Relay,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    /// For a relay: `udp`, `tcp` or `tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
    /// Whether it works; `None` when it cannot be told from here.
    pub ok: Option<bool>,
    /// What it means, for a person.
    pub words: String,
}

impl Finding {
    fn new(check: Check, ok: Option<bool>, words: impl Into<String>) -> Self {
        Self {
            check,
            transport: None,
            ok,
            words: words.into(),
        }
    }
}

/// Runs every check against `server` (`ws://` or `wss://`), with the user's own ICE
/// servers besides those the server offers.
pub async fn run(server: &str, configured: &[IceServer]) -> Vec<Finding> {
    let (finding, offered) = reach_server(server).await;
    let mut findings = vec![finding];
    let ice = TransportConfig {
        ice_servers: configured.to_vec(),
        ..TransportConfig::all_interfaces()
    }
    .with_offered(&offered)
    .ice_servers;
    findings.extend(reflexive(&ice).await);
    findings.extend(relays(&ice).await);
    findings
}

async fn reach_server(server: &str) -> (Finding, Vec<confab_proto::IceServerInfo>) {
    let join = Join {
        // A room of its own, which nobody else joins and which ends when we leave.
        room: format!("connection-test-{:016x}", rand::random::<u64>()),
        name: "connection test".to_owned(),
        version: PROTOCOL_VERSION,
        password: None,
        resume: None,
    };
    let started = Instant::now();
    match SignalClient::join(server, &ClientOptions::default(), join).await {
        Ok((client, welcome)) => {
            let ms = started.elapsed().as_millis();
            let _ = client.leave().await;
            let words = format!("The server at {server} answers ({ms} ms).");
            (
                Finding::new(Check::Server, Some(true), words),
                welcome.ice_servers,
            )
        }
        Err(e) => {
            let words = format!("The server at {server} cannot be used: {e}.");
            (Finding::new(Check::Server, Some(false), words), Vec::new())
        }
    }
}

/// The `HOST:PORT` of every server that answers STUN over UDP: `stun:` ones, and TURN
/// servers over UDP (a TURN server is a STUN server too).
fn stun_targets(ice: &[IceServer]) -> BTreeSet<String> {
    ice.iter()
        .filter_map(|server| {
            let url = rtc::ice::url::Url::parse_url(&server.url).ok()?;
            let udp = match url.scheme {
                rtc::ice::url::SchemeType::Stun => true,
                rtc::ice::url::SchemeType::Turn => url.proto == rtc::ice::url::ProtoType::Udp,
                _ => false,
            };
            udp.then(|| format!("{}:{}", url.host, url.port))
        })
        .collect()
}

async fn reflexive(ice: &[IceServer]) -> Vec<Finding> {
    let targets = stun_targets(ice);
    if targets.is_empty() {
        return vec![Finding::new(
            Check::Reflexive,
            None,
            "No STUN server is offered or set: how this machine is seen from outside is not \
             known, and peers behind other NATs may not find a direct path to it.",
        )];
    }
    let mut addrs = Vec::new();
    for target in &targets {
        if let Ok(mut found) = tokio::net::lookup_host(target).await
            && let Some(addr) = found.find(SocketAddr::is_ipv4)
        {
            addrs.push(addr);
        }
    }
    let mapped = match ask_stun(&addrs).await {
        Ok(mapped) => mapped,
        Err(e) => {
            let words = format!("STUN could not be asked: {e}.");
            return vec![Finding::new(Check::Reflexive, Some(false), words)];
        }
    };
    let Some((_, first)) = mapped.first() else {
        return vec![Finding::new(
            Check::Reflexive,
            Some(false),
            "No STUN server answered over UDP: this network seems to let no UDP out. \
             Connections can only go through a relay over TCP or TLS.",
        )];
    };
    let behind_nat = match local_ip_towards(mapped[0].0).await {
        Some(local) if local == first.ip() => "no NAT in between",
        Some(_) => "through a NAT",
        None => "through a NAT or not",
    };
    let mut findings = vec![Finding::new(
        Check::Reflexive,
        Some(true),
        format!("Others on the internet see this machine at {first} ({behind_nat})."),
    )];
    let distinct: BTreeSet<SocketAddr> = mapped.iter().map(|(_, seen)| *seen).collect();
    findings.push(match (mapped.len(), distinct.len()) {
        (1, _) => Finding::new(
            Check::Mapping,
            None,
            "Whether the NAT keeps one address for every destination is not known: that \
             needs two STUN servers to answer.",
        ),
        (_, 1) => Finding::new(
            Check::Mapping,
            Some(true),
            "The NAT keeps one address for every destination: direct connections to people \
             behind other NATs can work.",
        ),
        _ => Finding::new(
            Check::Mapping,
            Some(false),
            "The NAT gives each destination its own address (a symmetric NAT): connections to \
             people behind other NATs will need the relay.",
        ),
    });
    findings
}

/// Asks each of `servers` from one socket, in parallel; returns the servers that answered
/// with the address each saw.
async fn ask_stun(servers: &[SocketAddr]) -> std::io::Result<Vec<(SocketAddr, SocketAddr)>> {
    let socket = UdpSocket::bind((IpAddr::from([0, 0, 0, 0]), 0)).await?;
    let mut pending: Vec<(SocketAddr, Message)> = Vec::new();
    for server in servers {
        let mut request = Message::new();
        request
            .build(&[Box::new(BINDING_REQUEST), Box::new(TransactionId::new())])
            .map_err(std::io::Error::other)?;
        pending.push((*server, request));
    }
    let mut answered = Vec::new();
    let deadline = tokio::time::Instant::now() + STUN_WITHIN;
    let mut buf = vec![0u8; 1500];
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        for (server, request) in &pending {
            // A send that fails (no route) leaves that server unanswered.
            let _ = socket.send_to(&request.raw, server).await;
        }
        let resend = tokio::time::Instant::now() + STUN_RESEND;
        while let Ok(received) =
            tokio::time::timeout_at(resend.min(deadline), socket.recv_from(&mut buf)).await
        {
            let Ok((len, from)) = received else { continue };
            let mut answer = Message::new();
            if answer.unmarshal_binary(&buf[..len]).is_err() {
                continue;
            }
            let Some(at) = pending.iter().position(|(server, request)| {
                *server == from && request.transaction_id == answer.transaction_id
            }) else {
                continue;
            };
            let mut seen = XorMappedAddress::default();
            if seen.get_from(&answer).is_ok() {
                pending.remove(at);
                answered.push((from, SocketAddr::new(seen.ip, seen.port)));
            }
        }
    }
    Ok(answered)
}

/// The local address this machine sends from towards `peer`.
async fn local_ip_towards(peer: SocketAddr) -> Option<IpAddr> {
    let socket = UdpSocket::bind((IpAddr::from([0, 0, 0, 0]), 0))
        .await
        .ok()?;
    socket.connect(peer).await.ok()?;
    socket.local_addr().ok().map(|addr| addr.ip())
}

async fn relays(ice: &[IceServer]) -> Vec<Finding> {
    let turn: Vec<&IceServer> = ice
        .iter()
        .filter(|server| server.url.to_ascii_lowercase().starts_with("turn"))
        .collect();
    if turn.is_empty() {
        return vec![Finding::new(
            Check::Relay,
            None,
            "No relay is offered or set: people behind strict NATs or firewalls cannot be \
             reached from here.",
        )];
    }
    let mut findings = Vec::new();
    for server in turn {
        findings.push(relay(server).await);
    }
    findings
}

/// One TURN server's allocation, over UDP directly or over TCP or TLS through a tunnel.
async fn relay(server: &IceServer) -> Finding {
    let (tunnels, failed) = TurnTunnels::default().for_servers(std::slice::from_ref(server));
    let tried = tunnels.reached_through(server);
    let transport = match tunnels.kind_of(&server.url) {
        Some(kind) => kind.name(),
        None => "udp",
    };
    let url = &server.url;
    let (ok, words) = if let Some((_, why)) = failed.first() {
        (false, format!("The relay at {url} cannot be tried: {why}."))
    } else if let Some(why) = server.unsupported() {
        (false, format!("The relay at {url} cannot be used: {why}."))
    } else {
        match turn_check::try_credentials(&tried, IpAddr::from([0, 0, 0, 0])).await {
            Verdict::Accepted => (
                true,
                format!("A relay over {} works ({url}).", transport.to_uppercase()),
            ),
            Verdict::Refused(why) => (
                false,
                format!("The relay at {url} refused the credentials: {why}."),
            ),
            Verdict::Unknown(why) => (false, format!("The relay at {url} did not work: {why}.")),
        }
    };
    Finding {
        check: Check::Relay,
        transport: Some(transport),
        ok: Some(ok),
        words,
    }
}
