//! The built-in relay against the turn crate's own TURN client, on loopback: who may
//! allocate, what it relays to, quotas, and what it counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confab_relay::framing::{read_message, write_message};
use confab_relay::{Refusal, Relay, RelayConfig, rest_credential};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const WAIT: Duration = Duration::from_secs(5);

async fn relay(allow_private: bool, per_peer: usize) -> Relay {
    let mut config = RelayConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.allow_private = allow_private;
    config.max_allocations_per_peer = per_peer;
    Relay::start(config).await.unwrap()
}

fn username(peer: &str, valid_for: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    format!("{}:{peer}", now + valid_for)
}

async fn client(relay: &Relay, username: &str, password: &str) -> Client {
    confab_testkit::turn_client::over_udp(relay.listeners()[0], username, password)
        .await
        .unwrap()
}

/// The turn crate's client speaks datagrams: over TCP each is one framed message (RFC
/// 8656 section 3.1), read and written with the relay's own framing.
struct StreamConn {
    reader: tokio::sync::Mutex<OwnedReadHalf>,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    local: std::net::SocketAddr,
    server: std::net::SocketAddr,
}

#[async_trait::async_trait]
impl Conn for StreamConn {
    async fn connect(&self, _addr: std::net::SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }
    async fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> webrtc_util::Result<(usize, std::net::SocketAddr)> {
        let mut message = Vec::new();
        let mut reader = self.reader.lock().await;
        match read_message(&mut *reader, &mut message).await {
            Ok(true) => {
                buf[..message.len()].copy_from_slice(&message);
                Ok((message.len(), self.server))
            }
            _ => Err(webrtc_util::Error::ErrClosedListener),
        }
    }
    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.send_to(buf, self.server).await
    }
    async fn send_to(
        &self,
        buf: &[u8],
        _target: std::net::SocketAddr,
    ) -> webrtc_util::Result<usize> {
        let mut writer = self.writer.lock().await;
        write_message(&mut *writer, buf)
            .await
            .map_err(|e| webrtc_util::Error::Other(e.to_string()))?;
        writer.flush().await?;
        Ok(buf.len())
    }
    fn local_addr(&self) -> webrtc_util::Result<std::net::SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        Some(self.server)
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(self.writer.lock().await.shutdown().await?)
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// An allocation with the right REST password for `peer`.
async fn allocate(relay: &Relay, peer: &str) -> (Client, impl Conn + use<>) {
    let name = username(peer, 3600);
    let client = client(relay, &name, &rest_credential(relay.secret(), &name)).await;
    let relayed = timeout(WAIT, client.allocate()).await.unwrap().unwrap();
    (client, relayed)
}

#[tokio::test]
async fn it_answers_stun_and_relays_both_ways_between_a_client_and_a_peer() {
    let relay = relay(true, 4).await;
    let (client, relayed) = allocate(&relay, "p1").await;
    let mapped = client.send_binding_request().await.unwrap();
    assert_eq!(
        mapped.ip(),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    let relayed_addr = relayed.local_addr().unwrap();
    assert_eq!(relayed_addr.ip(), relay.listeners()[0].ip());
    assert_eq!(relay.metrics().allocations_open(), 1);

    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    relayed.send_to(b"to the peer", peer_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"to the peer");
    assert_eq!(from, relayed_addr);

    peer.send_to(b"back", relayed_addr).await.unwrap();
    let (n, from) = timeout(WAIT, relayed.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"back");
    assert_eq!(from, peer_addr);
    assert_eq!(relay.metrics().relayed_bytes(), (11, 4));

    relayed.close().await.unwrap();
    client.close().await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn wrong_or_expired_credentials_get_no_allocation() {
    let relay = relay(true, 4).await;
    let name = username("p1", 3600);
    let wrong = client(&relay, &name, "not-the-password").await;
    assert!(timeout(WAIT, wrong.allocate()).await.unwrap().is_err());
    let expired = username("p1", -10);
    let late = client(&relay, &expired, &rest_credential(relay.secret(), &expired)).await;
    assert!(timeout(WAIT, late.allocate()).await.unwrap().is_err());
    assert!(relay.metrics().refusals(Refusal::Credentials) >= 1);
    assert_eq!(relay.metrics().allocations_open(), 0);
    relay.stop().await;
}

#[tokio::test]
async fn loopback_and_private_peers_are_not_relayed_unless_allowed() {
    let relay = relay(false, 4).await;
    let (_client, relayed) = allocate(&relay, "p1").await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Permission and channel binding succeed; the datagrams themselves are dropped.
    relayed
        .send_to(b"into the host", peer.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        timeout(Duration::from_millis(500), peer.recv_from(&mut buf))
            .await
            .is_err(),
        "a loopback peer got a datagram"
    );
    assert!(relay.metrics().refusals(Refusal::PeerAddress) >= 1);
    assert_eq!(relay.metrics().relayed_bytes().0, 0);
    relay.stop().await;
}

#[tokio::test]
async fn a_peer_holds_at_most_its_quota_of_allocations() {
    let relay = relay(true, 2).await;
    let (_a, _ra) = allocate(&relay, "p1").await;
    let (_b, _rb) = allocate(&relay, "p1").await;
    let name = username("p1", 3600);
    let third = client(&relay, &name, &rest_credential(relay.secret(), &name)).await;
    assert!(timeout(WAIT, third.allocate()).await.unwrap().is_err());
    let (_other, _ro) = allocate(&relay, "p2").await;
    assert_eq!(relay.metrics().allocations_open(), 3);
    let mut text = String::new();
    relay.metrics().render(&mut text);
    assert!(text.contains("confab_relay_allocations 3\n"), "{text}");
    assert!(
        text.contains("confab_relay_refusals_total{reason=\"credentials\"} 1\n"),
        "{text}"
    );
    let endpoints = relay.endpoints_for("127.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(endpoints.udp, relay.listeners()[0]);
    assert_eq!(endpoints.tcp.map(|a| a.ip()), Some(endpoints.udp.ip()));
    assert_eq!(endpoints.tls, None);
    relay.stop().await;
}

#[tokio::test]
async fn an_allocation_made_over_tcp_ends_with_its_stream_and_frees_its_quota() {
    let relay = relay(true, 1).await;
    // Not the UDP listener's port: where another program holds that number over TCP,
    // the relay listens for streams on another.
    let server = relay
        .endpoints_for("127.0.0.1".parse().unwrap())
        .and_then(|endpoints| endpoints.tcp)
        .unwrap();
    let stream = TcpStream::connect(server).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (reader, writer) = stream.into_split();
    let conn = Arc::new(StreamConn {
        reader: tokio::sync::Mutex::new(reader),
        writer: tokio::sync::Mutex::new(writer),
        local,
        server,
    });
    let name = username("p1", 3600);
    let over_tcp = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: name.clone(),
        password: rest_credential(relay.secret(), &name),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: conn.clone(),
        vnet: None,
    })
    .await
    .unwrap();
    over_tcp.listen().await.unwrap();
    let relayed = timeout(WAIT, over_tcp.allocate()).await.unwrap().unwrap();
    assert_eq!(relay.metrics().allocations_open(), 1);

    // The stream ends without a goodbye from the client, as when its network goes.
    drop(relayed);
    conn.close().await.unwrap();
    over_tcp.close().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while relay.metrics().allocations_open() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the allocation outlived its stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its place in the quota is free at once, not when the allocation would have expired.
    let (_again, _relayed) = allocate(&relay, "p1").await;
    assert_eq!(relay.metrics().allocations_open(), 1);
    relay.stop().await;
}

#[tokio::test]
async fn a_peers_allocations_share_one_bandwidth() {
    const RATE: u64 = 20_000;
    let mut config = RelayConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.allow_private = true;
    config.bytes_per_second = RATE;
    let relay = Relay::start(config).await.unwrap();
    let (_a, first) = allocate(&relay, "p1").await;
    let (_b, second) = allocate(&relay, "p1").await;
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();

    // Twice the peer's one-second burst, half through each allocation, as fast as it goes.
    let started = tokio::time::Instant::now();
    let datagram = [7u8; 1000];
    for _ in 0..RATE / 1000 {
        first.send_to(&datagram, sink_addr).await.unwrap();
        second.send_to(&datagram, sink_addr).await.unwrap();
    }
    let mut received = 0u64;
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = timeout(Duration::from_millis(300), sink.recv_from(&mut buf)).await {
        received += n as u64;
    }
    let elapsed = started.elapsed().as_secs_f64() - 0.3;
    // One burst and what refilled meanwhile, for both allocations together (each on its
    // own would have let through a burst of its own).
    let allowed = RATE + (RATE as f64 * elapsed) as u64;
    assert!(
        received <= allowed,
        "{received} bytes relayed in {elapsed:.2} s, more than the peer's {allowed}"
    );
    assert!(received >= RATE * 3 / 4, "only {received} bytes relayed");
    assert!(relay.metrics().refusals(Refusal::Bandwidth) > 0);
    relay.stop().await;
}
