//! Real WebRTC connections on loopback between peers in this process, over a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;


use common::*;
use confab_mesh::Command;
use confab_mesh::Event;
use confab_proto::ChatScope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_connect_chat_both_ways_with_acks_and_stats() {
    let server = server().await;
    let mut a = peer("Ada");
    connect(&a, &url(&server), "room", "Ada");
    let a_id = own_id(&mut a).await;
    let mut b = peer("Bo");
    connect(&b, &url(&server), "room", "Bo");
    let b_id = own_id(&mut b).await;
    chat_open_with(&mut b, &[a_id.clone()]).await;
    chat_open_with(&mut a, &[b_id.clone()]).await;

    a.send(Command::Chat { text: "hello Bo".into(), to: None });
    let Event::ChatSent { id, to } = wait_for(&mut a, "chat-sent", |e| matches!(e, Event::ChatSent { .. })).await else {
        unreachable!()
    };
    assert_eq!(to, vec![b_id.clone()]);
    let got = wait_for(&mut b, "chat", |e| matches!(e, Event::Chat { .. })).await;
    assert!(matches!(&got, Event::Chat { from, id: got_id, text, scope: ChatScope::Room, .. }
        if *from == a_id && *got_id == id && text == "hello Bo"), "{got:?}");
    let ack = wait_for(&mut a, "ack", |e| matches!(e, Event::Ack { .. })).await;
    assert_eq!(ack, Event::Ack { peer: b_id.clone(), id });

    b.send(Command::Chat { text: "hi Ada, just you".into(), to: Some(a_id.clone()) });
    let got = wait_for(&mut a, "chat", |e| matches!(e, Event::Chat { .. })).await;
    assert!(matches!(&got, Event::Chat { from, text, scope: ChatScope::Direct, .. }
        if *from == b_id && text == "hi Ada, just you"), "{got:?}");
    wait_for(&mut b, "ack", |e| matches!(e, Event::Ack { peer, .. } if *peer == a_id)).await;

    a.send(Command::Stats { peer: None });
    let stats = wait_for(&mut a, "stats", |e| matches!(e, Event::Stats { .. })).await;
    let Event::Stats { peer, rtt_ms, bytes_sent, bytes_received, candidate_type } = stats else { unreachable!() };
    assert_eq!(peer, b_id);
    assert_eq!(candidate_type, "host");
    assert!(bytes_sent > 0 && bytes_received > 0, "{bytes_sent} {bytes_received}");
    assert!((0.0..1000.0).contains(&rtt_ms));

    a.send(Command::Quit);
    b.send(Command::Quit);
    a.stopped().await;
    b.stopped().await;
}
