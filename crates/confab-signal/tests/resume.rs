//! Resume tokens and grace periods, with sockets dropped abruptly (no close frame).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_proto::{ClientFrame, ServerFrame};
use confab_signal::{ClientOptions, ServerConfig, SignalClient};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;

fn config(grace: Duration) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.resume_grace = grace;
    config
}

/// Drops a client's TCP connection without a close frame, as a crash or a lost network
/// would. Resetting (linger 0) makes the server see it at once.
fn drop_abruptly(raw: Raw) {
    let stream = raw.ws.into_inner();
    if let MaybeTlsStream::Plain(tcp) = stream {
        tcp.set_zero_linger().unwrap();
        drop(tcp);
    } else {
        panic!("plain TCP expected");
    }
}

#[tokio::test]
async fn resume_within_the_grace_keeps_the_id_silently_and_delivers_kept_signals() {
    let server = start(config(Duration::from_secs(30))).await;
    let mut a = Raw::connect(&server).await;
    let ServerFrame::Welcome {
        id: a_id, token, ..
    } = a.join("r", "A").await
    else {
        panic!()
    };
    let (mut b, _) = joined(&server, "r", "B").await;
    a.frame().await; // peer-joined for B
    drop_abruptly(a);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let b_id = {
        b.send(&ClientFrame::List).await.unwrap();
        match next(&mut b).await {
            ServerFrame::Peers { peers } => {
                assert_eq!(
                    peers.len(),
                    1,
                    "a dropped peer is still a member in its grace"
                );
                peers[0].id.clone()
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(b_id, a_id);
    b.signal(&a_id, json!("kept-1")).await.unwrap();
    b.signal(&a_id, json!("kept-2")).await.unwrap();

    let mut resume = join("r", "A");
    resume.resume = Some(token.clone());
    let (mut a2, welcome) = SignalClient::join(&url(&server), &ClientOptions::default(), resume)
        .await
        .unwrap();
    assert_eq!(welcome.id, a_id);
    assert_ne!(welcome.token, token, "a fresh token");
    assert_eq!(welcome.peers.len(), 1);
    assert_eq!(
        next(&mut a2).await,
        ServerFrame::Signal {
            from: welcome.peers[0].id.clone(),
            data: json!("kept-1")
        }
    );
    assert_eq!(
        next(&mut a2).await,
        ServerFrame::Signal {
            from: welcome.peers[0].id.clone(),
            data: json!("kept-2")
        }
    );
    silent(&mut b, Duration::from_millis(300)).await;

    // The old token is spent: it now gives a fresh id.
    let mut reuse = join("r", "A");
    reuse.resume = Some(token);
    let (_a3, again) = SignalClient::join(&url(&server), &ClientOptions::default(), reuse)
        .await
        .unwrap();
    assert_ne!(again.id, a_id);
}

#[tokio::test]
async fn after_the_grace_the_room_hears_peer_left_and_the_token_is_dead() {
    let server = start(config(Duration::from_millis(500))).await;
    let mut a = Raw::connect(&server).await;
    let ServerFrame::Welcome {
        id: a_id, token, ..
    } = a.join("r", "A").await
    else {
        panic!()
    };
    let (mut b, _) = joined(&server, "r", "B").await;
    drop_abruptly(a);
    silent(&mut b, Duration::from_millis(300)).await;
    assert_eq!(
        next(&mut b).await,
        ServerFrame::PeerLeft { id: a_id.clone() }
    );

    let mut late = join("r", "A");
    late.resume = Some(token);
    let (_a2, welcome) = SignalClient::join(&url(&server), &ClientOptions::default(), late)
        .await
        .unwrap();
    assert_ne!(welcome.id, a_id);
    match next(&mut b).await {
        ServerFrame::PeerJoined { peer } => assert_eq!(peer.id, welcome.id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn resume_while_the_old_socket_is_open_closes_it_without_a_leave() {
    let server = start(config(Duration::from_secs(30))).await;
    let (mut old, wa) = joined(&server, "r", "A").await;
    let (mut b, _) = joined(&server, "r", "B").await;
    next(&mut old).await;
    let mut resume = join("r", "A");
    resume.resume = Some(wa.token.clone());
    let (_new, welcome) = SignalClient::join(&url(&server), &ClientOptions::default(), resume)
        .await
        .unwrap();
    assert_eq!(welcome.id, wa.id);
    match tokio::time::timeout(WAIT, old.recv()).await.unwrap() {
        Err(confab_signal::ClientError::Closed { code, .. }) => assert_eq!(code, 1000),
        other => panic!("old socket should be closed, got {other:?}"),
    }
    silent(&mut b, Duration::from_millis(300)).await;
}

/// A socket whose client vanished silently (no FIN, no RST: a pulled cable) is noticed by
/// the keepalive and handled as a drop.
#[tokio::test]
async fn a_silently_dead_socket_is_noticed_by_the_keepalive() {
    let mut config = config(Duration::from_millis(200));
    config.ping_interval = Duration::from_millis(200);
    let server = start(config).await;
    let (mut b, _) = joined(&server, "r", "B").await;
    // A client that joins and then never reads again, so it never answers a ping.
    let mut silent_client = Raw::connect(&server).await;
    let ServerFrame::Welcome { id, .. } = silent_client.join("r", "S").await else {
        panic!()
    };
    let started = std::time::Instant::now();
    // Keep the socket open but never poll it again.
    let _keep = silent_client;
    loop {
        match next(&mut b).await {
            ServerFrame::PeerJoined { .. } => continue,
            ServerFrame::PeerLeft { id: left } => {
                assert_eq!(left, id);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // Two silent intervals, at most one more to notice, plus the grace.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn abrupt_drops_of_many_sockets_leave_nothing_behind() {
    let server = start(config(Duration::from_millis(200))).await;
    let (mut watcher, _) = joined(&server, "r", "W").await;
    for i in 0..10 {
        let mut raw = Raw::connect(&server).await;
        raw.join("r", &format!("n{i}")).await;
        raw.ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                "{\"type\":\"list\"}",
            ))
            .await
            .unwrap();
        drop_abruptly(raw);
    }
    let mut joined_count = 0;
    let mut left_count = 0;
    while left_count < 10 {
        match next(&mut watcher).await {
            ServerFrame::PeerJoined { .. } => joined_count += 1,
            ServerFrame::PeerLeft { .. } => left_count += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(joined_count, 10);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let state = server.state();
    assert_eq!(state.peers, 1);
    assert_eq!(state.rooms, 1);
}

/// A client whose server restarted cannot resume; it must not get its old id back, or it
/// would take the fresh join for a resume and the members it knew by their old ids for the
/// same people (a dead connection kept to a newcomer that has an old member's id).
#[tokio::test]
async fn a_restarted_server_never_hands_out_an_id_of_the_one_before() {
    let first = start(ServerConfig::default()).await;
    let (_a, a) = joined(&first, "r", "A").await;
    let (_b, b) = joined(&first, "r", "B").await;
    first.stop().await;

    let second = start(ServerConfig::default()).await;
    let mut again = join("r", "A");
    again.resume = Some(a.token);
    let (_a2, a2) = SignalClient::join(&url(&second), &ClientOptions::default(), again)
        .await
        .unwrap();
    let (_c, c) = joined(&second, "r", "C").await;
    assert_ne!(a2.id, a.id, "a resume that failed gives a fresh id");
    assert_ne!(c.id, a.id);
    assert_ne!(c.id, b.id, "a newcomer never takes an old member's id");
}
