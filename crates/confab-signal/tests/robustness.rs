//! One client's behaviour never hurts the others: floods, slow readers, connection limits;
//! and the server's own lifecycle: HTTP endpoints, TLS, graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use confab_proto::ServerFrame;
use confab_signal::{ClientOptions, ServerConfig, SignalClient, TlsConfig};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn healthz_and_metrics() {
    let server = start(ServerConfig::default()).await;
    let health = http_get(server.local_addr(), "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    assert!(health.ends_with("\r\n\r\nok"), "{health}");

    let (mut a, _) = joined(&server, "r", "A").await;
    let (_b, wb) = joined(&server, "r", "B").await;
    next(&mut a).await;
    a.signal(&wb.id, json!(1)).await.unwrap();
    a.send(&confab_proto::ClientFrame::List).await.unwrap();
    next(&mut a).await; // the list answer: the relay was handled before it
    let metrics = http_get(server.local_addr(), "/metrics").await;
    for line in [
        "# TYPE confab_connections gauge",
        "confab_connections 3",
        "confab_rooms 1",
        "confab_peers 2",
        "confab_frames_relayed_total 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    let missing = http_get(server.local_addr(), "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
}

/// One client floods with everything it has; two others keep relaying to each other
/// with low latency all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_does_not_hurt_the_others() {
    let server = start(ServerConfig::default()).await;
    let (mut a, wa) = joined(&server, "r", "A").await;
    let (mut b, wb) = joined(&server, "r", "B").await;
    next(&mut a).await;
    let flood_url = url(&server);
    let b_id = wb.id.clone();
    let flood = tokio::spawn(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(flood_url).await.unwrap();
        let join = r#"{"type":"join","room":"r","name":"flood","version":1}"#;
        let _ = ws.send(Message::text(join)).await;
        let garbage = format!(
            r#"{{"type":"signal","to":"{b_id}","data":"{}"}}"#,
            "x".repeat(4000)
        );
        // Flood until the server cuts the socket off, or give up after a while.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if ws.send(Message::text(garbage.clone())).await.is_err() {
                return true;
            }
        }
        false
    });
    let mut worst = Duration::ZERO;
    for i in 0..200 {
        let started = Instant::now();
        a.signal(&wb.id, json!(i)).await.unwrap();
        loop {
            match next(&mut b).await {
                ServerFrame::Signal { from, data } if from == wa.id => {
                    assert_eq!(data, json!(i));
                    break;
                }
                _ => {} // the flooder's frames and its arrival
            }
        }
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(flood.await.unwrap(), "the flooder is cut off");
    assert!(
        worst < Duration::from_secs(1),
        "a relay took {worst:?} during the flood"
    );
}

/// A member that never reads: frames for it are bounded, then it is dropped, and the
/// sender goes on unharmed.
#[tokio::test]
async fn a_slow_reader_is_dropped_instead_of_growing_memory() {
    let mut config = ServerConfig::default();
    config.rate = 100_000.0;
    config.resume_grace = Duration::from_millis(200);
    let server = start(config).await;
    let (mut sender, _) = joined(&server, "r", "sender").await;
    let mut sleeper = Raw::connect(&server).await;
    let ServerFrame::Welcome { id: sleeper_id, .. } = sleeper.join("r", "sleeper").await else {
        panic!()
    };
    next(&mut sender).await;
    let payload = json!("y".repeat(60_000));
    let mut left = false;
    // 60 KB frames: kernel buffers fill within a few hundred, then the outbox.
    for _ in 0..5_000 {
        sender.signal(&sleeper_id, payload.clone()).await.unwrap();
        let polled = tokio::time::timeout(Duration::from_micros(1), sender.recv()).await;
        if let Ok(Ok(ServerFrame::PeerLeft { id })) = polled
            && id == sleeper_id
        {
            left = true;
            break;
        }
    }
    if !left {
        assert_eq!(
            next(&mut sender).await,
            ServerFrame::PeerLeft { id: sleeper_id }
        );
    }
    drop(sleeper);
    assert_eq!(server.state().peers, 1);
}

#[tokio::test]
async fn connections_over_the_limit_get_503() {
    let mut config = ServerConfig::default();
    config.max_connections = 2;
    let server = start(config).await;
    let _a = joined(&server, "r", "A").await;
    let _b = joined(&server, "r", "B").await;
    let refused = SignalClient::connect(&url(&server), &ClientOptions::default()).await;
    match refused {
        Err(confab_signal::ClientError::Unreachable { reason, .. }) => {
            assert!(reason.contains("503"), "{reason}")
        }
        other => panic!("expected a 503, got {other:?}"),
    }
}

#[tokio::test]
async fn graceful_shutdown_sends_every_client_a_close_frame() {
    let server = start(ServerConfig::default()).await;
    let mut raws = Vec::new();
    for i in 0..20 {
        let mut raw = Raw::connect(&server).await;
        raw.join(&format!("r{}", i % 3), "n").await;
        raws.push(raw);
    }
    let unjoined = Raw::connect(&server).await;
    raws.push(unjoined);
    let addr = server.local_addr();
    server.stop().await;
    for raw in &mut raws {
        assert_eq!(raw.close_code().await, 1001);
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut config = ServerConfig::default();
    config.tls = Some(TlsConfig::new(vec![der.clone()], key).unwrap());
    let server = start(config).await;
    let url = format!("wss://localhost:{}/ws", server.local_addr().port());

    // Without trusting the certificate the connection is refused.
    let untrusted = SignalClient::connect(&url, &ClientOptions::default()).await;
    assert!(matches!(
        untrusted,
        Err(confab_signal::ClientError::Unreachable { .. })
    ));

    let mut options = ClientOptions::default();
    options.extra_roots = vec![der];
    let (mut a, wa) = SignalClient::join(&url, &options, join("r", "A"))
        .await
        .unwrap();
    let (mut b, wb) = SignalClient::join(&url, &options, join("r", "B"))
        .await
        .unwrap();
    assert_eq!(wb.peers[0].id, wa.id);
    next(&mut a).await;
    a.signal(&wb.id, json!("over tls")).await.unwrap();
    assert_eq!(
        next(&mut b).await,
        ServerFrame::Signal {
            from: wa.id,
            data: json!("over tls")
        }
    );
}
