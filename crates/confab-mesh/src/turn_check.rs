//! A TURN server's credentials, tried once when they are configured or offered. webrtc-rs
//! logs a refused allocation and goes on without the relay, so a wrong password or an
//! expired credential would show only as connections that never come up. This makes the
//! same Allocate with the library's own TURN client (rtc-turn, no parsing of ours), over a
//! socket of its own, and releases it at once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use rtc::ice::url::{ProtoType, SchemeType, Url};
use rtc::sansio::Protocol;
use rtc::shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc::turn::client::{Client, ClientConfig, Event};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::transport::IceServer;

/// How long the server has to answer: one that does not is unreachable, not refusing.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What a TURN server said to these credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It allocated a relay.
    Accepted,
    /// It refused the allocation, with its reason (401 Unauthorized, 441 Wrong Credentials).
    Refused(String),
    /// No answer, an address that does not resolve, or a URL this check does not try
    /// (not TURN over UDP): nothing is known.
    Unknown(String),
}

/// Tries `server`'s credentials from `local` (an address of the interface the peer
/// connections use).
pub(crate) async fn try_credentials(server: &IceServer, local: IpAddr) -> Verdict {
    match allocate(server, local).await {
        Ok(verdict) => verdict,
        Err(e) => Verdict::Unknown(e),
    }
}

async fn allocate(server: &IceServer, local: IpAddr) -> Result<Verdict, String> {
    let mut url = Url::parse_url(&server.url).map_err(|e| e.to_string())?;
    if url.scheme != SchemeType::Turn || url.proto != ProtoType::Udp {
        return Err("only TURN over UDP is tried".to_owned());
    }
    url.username = server.username.clone().unwrap_or_default();
    url.password = server.credential.clone().unwrap_or_default();
    let target = format!("{}:{}", url.host, url.port);
    let remote = tokio::net::lookup_host(&target)
        .await
        .map_err(|e| format!("{target}: {e}"))?
        .find(|addr| addr.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| format!("{target}: no address of this family"))?;
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|e| e.to_string())?;
    let local_addr = socket.local_addr().map_err(|e| e.to_string())?;
    let provider =
        webrtc::peer_connection::crypto::default_provider().map_err(|e| e.to_string())?;
    let mut client = Client::new(
        ClientConfig {
            stun_serv_addr: remote.to_string(),
            turn_serv_addr: remote.to_string(),
            local_addr,
            transport_protocol: TransportProtocol::UDP,
            username: url.username.clone(),
            password: url.password.clone(),
            ..ClientConfig::default()
        },
        provider,
    )
    .map_err(|e| e.to_string())?;
    let allocation = client
        .allocate(Instant::now().into_std())
        .map_err(|e| e.to_string())?;
    let give_up = Instant::now() + ANSWER_WITHIN;
    let mut buf = vec![0u8; 1500];
    loop {
        while let Some(out) = client.poll_write() {
            socket
                .send_to(&out.message, out.transport.peer_addr)
                .await
                .map_err(|e| e.to_string())?;
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::AllocateResponse(tid, relayed) if tid == allocation => {
                    // Released at once: the check must not hold a relay port.
                    if let Ok(mut relay) = client.relay(relayed) {
                        let _ = relay.close(Instant::now().into_std());
                    }
                    while let Some(out) = client.poll_write() {
                        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
                    }
                    return Ok(Verdict::Accepted);
                }
                Event::AllocateError(tid, e) if tid == allocation => {
                    return Ok(Verdict::Refused(e.to_string()));
                }
                Event::TransactionTimeout(tid) if tid == allocation => {
                    return Err("the server did not answer".to_owned());
                }
                _ => {}
            }
        }
        let wake = client
            .poll_timeout()
            .map_or(give_up, Instant::from_std)
            .min(give_up);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, from) = received.map_err(|e| e.to_string())?;
                let message = TransportMessage {
                    now: Instant::now().into_std(),
                    transport: TransportContext {
                        local_addr,
                        peer_addr: from,
                        transport_protocol: TransportProtocol::UDP,
                        ecn: None,
                    },
                    message: BytesMut::from(&buf[..n]),
                };
                // A datagram that is not a well-formed answer is ignored, as the library does.
                let _ = client.handle_read(message);
            }
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= give_up {
                    return Err("the server did not answer".to_owned());
                }
                client
                    .handle_timeout(Instant::now().into_std())
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}
