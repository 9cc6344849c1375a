//! Rooms over real sockets: joins, leaves, relays, lists, and many clients at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use confab_proto::{PeerInfo, ServerFrame};
use confab_signal::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn members_learn_of_each_other_and_relay_both_ways() {
    let server = start(ServerConfig::default()).await;
    let (mut a, wa) = joined(&server, "lobby", "Ada").await;
    assert!(wa.peers.is_empty());
    assert_eq!(wa.room, "lobby");
    let (mut b, wb) = joined(&server, "lobby", "Bo").await;
    assert_eq!(
        wb.peers,
        vec![PeerInfo {
            id: wa.id.clone(),
            name: "Ada".into()
        }]
    );
    assert_eq!(
        next(&mut a).await,
        ServerFrame::PeerJoined {
            peer: PeerInfo {
                id: wb.id.clone(),
                name: "Bo".into()
            }
        }
    );

    a.signal(
        &wb.id,
        json!({"kind":"description","description":{"type":"offer","sdp":"x"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut b).await,
        ServerFrame::Signal {
            from: wa.id.clone(),
            data: json!({"kind":"description","description":{"type":"offer","sdp":"x"}})
        }
    );
    b.signal(&wa.id, json!({"kind":"candidate","candidate":null}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut a).await,
        ServerFrame::Signal {
            from: wb.id.clone(),
            data: json!({"kind":"candidate","candidate":null})
        }
    );

    // A third joiner in another room is invisible to both.
    let (_c, wc) = joined(&server, "elsewhere", "Cy").await;
    assert!(wc.peers.is_empty());
    silent(&mut a, Duration::from_millis(200)).await;

    b.leave().await.unwrap();
    assert_eq!(
        next(&mut a).await,
        ServerFrame::PeerLeft { id: wb.id.clone() }
    );
    assert_eq!(server.state().peers, 2);
    server.stop().await;
}

#[tokio::test]
async fn a_forged_from_is_ignored() {
    let server = start(ServerConfig::default()).await;
    let (_a, wa) = joined(&server, "r", "A").await;
    let (mut b, wb) = joined(&server, "r", "B").await;
    let mut c = Raw::connect(&server).await;
    let ServerFrame::Welcome { id: c_id, .. } = c.join("r", "C").await else {
        panic!("no welcome")
    };
    c.text(&json!({"type":"signal","to":wb.id,"from":wa.id,"data":"hi"}).to_string())
        .await;
    loop {
        match next(&mut b).await {
            ServerFrame::PeerJoined { .. } => continue,
            frame => {
                assert_eq!(
                    frame,
                    ServerFrame::Signal {
                        from: c_id,
                        data: json!("hi")
                    }
                );
                break;
            }
        }
    }
}

#[tokio::test]
async fn list_answers_with_everyone_else() {
    let server = start(ServerConfig::default()).await;
    let (_a, wa) = joined(&server, "r", "A").await;
    let (mut b, _) = joined(&server, "r", "B").await;
    b.send(&confab_proto::ClientFrame::List).await.unwrap();
    assert_eq!(
        next(&mut b).await,
        ServerFrame::Peers {
            peers: vec![PeerInfo {
                id: wa.id,
                name: "A".into()
            }]
        }
    );
}

#[tokio::test]
async fn a_clean_close_is_a_leave_at_once() {
    let server = start(ServerConfig::default()).await;
    let (mut a, _) = joined(&server, "r", "A").await;
    let mut b = Raw::connect(&server).await;
    let ServerFrame::Welcome { id: b_id, .. } = b.join("r", "B").await else {
        panic!()
    };
    next(&mut a).await;
    b.ws.close(None).await.unwrap();
    assert_eq!(next(&mut a).await, ServerFrame::PeerLeft { id: b_id });
}

/// Hundreds of clients join 25 rooms at the same moment. Every two members of a room
/// learn of each other exactly once, and every member can reach every other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_concurrent_clients() {
    const ROOMS: usize = 25;
    const PER_ROOM: usize = 16;
    let server = start(ServerConfig::default()).await;
    let joins = (0..ROOMS * PER_ROOM).map(|i| {
        let url = url(&server);
        async move {
            let room = format!("room-{}", i % ROOMS);
            confab_signal::SignalClient::join(
                &url,
                &Default::default(),
                join(&room, &format!("n{i}")),
            )
            .await
            .map(|(client, welcome)| (room, client, welcome))
        }
    });
    let mut clients = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every join succeeds");
    assert_eq!(server.state().peers, ROOMS * PER_ROOM);
    assert_eq!(server.state().rooms, ROOMS);

    let mut members: HashMap<String, HashSet<String>> = HashMap::new();
    for (room, _, welcome) in &clients {
        members
            .entry(room.clone())
            .or_default()
            .insert(welcome.id.clone());
    }
    // Each member's view: its welcome plus the peer-joined frames that follow.
    for (room, client, welcome) in &mut clients {
        let mut known: Vec<String> = welcome.peers.iter().map(|p| p.id.clone()).collect();
        while known.len() < PER_ROOM - 1 {
            match next(client).await {
                ServerFrame::PeerJoined { peer } => known.push(peer.id),
                other => panic!("unexpected {other:?}"),
            }
        }
        let unique: HashSet<String> = known.iter().cloned().collect();
        assert_eq!(unique.len(), known.len(), "nobody is announced twice");
        assert!(!unique.contains(&welcome.id), "nobody hears of itself");
        let mut expected = members[room.as_str()].clone();
        expected.remove(&welcome.id);
        assert_eq!(unique, expected);
    }
    // Everyone signals everyone else in its room; everything arrives, stamped right.
    for (room, client, welcome) in &mut clients {
        for other in &members[room.as_str()] {
            if *other != welcome.id {
                client.signal(other, json!(welcome.id)).await.unwrap();
            }
        }
    }
    for (_, client, welcome) in &mut clients {
        for _ in 0..PER_ROOM - 1 {
            match next(client).await {
                ServerFrame::Signal { from, data } => assert_eq!(data, json!(from)),
                other => panic!("unexpected {other:?} for {}", welcome.id),
            }
        }
    }
    server.stop().await;
}
