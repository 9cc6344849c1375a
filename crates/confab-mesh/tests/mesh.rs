//! Real WebRTC connections on loopback between peers in this process, over a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_mesh::Command;
use confab_mesh::ErrorCode;
use confab_mesh::Event;
use confab_proto::ChatScope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_connect_chat_both_ways_with_acks_and_stats() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "room").await;

    a.send(Command::Chat {
        text: "hello B".into(),
        to: None,
        to_key: None,
    });
    let Event::ChatSent { id, to } =
        wait_for(&mut a, "chat-sent", |e| matches!(e, Event::ChatSent { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(to, vec![b_id.clone()]);
    let got = wait_for(&mut b, "chat", |e| matches!(e, Event::Chat { .. })).await;
    assert!(
        matches!(&got, Event::Chat { from, id: got_id, text, scope: ChatScope::Room, .. }
        if *from == a_id && *got_id == id && text == "hello B"),
        "{got:?}"
    );
    let ack = wait_for(&mut a, "ack", |e| matches!(e, Event::Ack { .. })).await;
    assert_eq!(
        ack,
        Event::Ack {
            peer: b_id.clone(),
            id
        }
    );

    b.send(Command::Chat {
        text: "hi Ada, just you".into(),
        to: Some(a_id.clone()),
        to_key: None,
    });
    let got = wait_for(&mut a, "chat", |e| matches!(e, Event::Chat { .. })).await;
    assert!(
        matches!(&got, Event::Chat { from, text, scope: ChatScope::Direct, .. }
        if *from == b_id && text == "hi Ada, just you"),
        "{got:?}"
    );
    wait_for(
        &mut b,
        "ack",
        |e| matches!(e, Event::Ack { peer, .. } if *peer == a_id),
    )
    .await;

    a.send(Command::Stats { peer: None });
    let stats = wait_for(&mut a, "stats", |e| matches!(e, Event::Stats { .. })).await;
    let Event::Stats {
        peer,
        rtt_ms,
        bytes_sent,
        bytes_received,
        candidate_type,
        local_candidate,
        remote_candidate,
        transport,
    } = stats
    else {
        unreachable!()
    };
    assert_eq!(peer, b_id);
    assert_eq!(candidate_type, "host");
    assert!(
        local_candidate
            .as_deref()
            .is_some_and(|c| c.starts_with("host 127.0.0.1:"))
            && remote_candidate
                .as_deref()
                .is_some_and(|c| c.starts_with("host 127.0.0.1:")),
        "{local_candidate:?} {remote_candidate:?}"
    );
    assert_eq!(transport.as_deref(), Some("udp"));
    assert!(
        bytes_sent > 0 && bytes_received > 0,
        "{bytes_sent} {bytes_received}"
    );
    assert!((0.0..1000.0).contains(&rtt_ms));

    a.send(Command::Quit);
    b.send(Command::Quit);
    a.stopped().await;
    b.stopped().await;
}

/// Five peers: ten connections form, and a message to all reaches everyone exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_peers_form_a_full_mesh_and_room_messages_arrive_once() {
    let server = server().await;
    let mut peers = Vec::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut mesh = peer(&format!("n{i}"));
        connect(&mesh, &url(&server), "five", &format!("n{i}"));
        ids.push(own_id(&mut mesh).await);
        peers.push(mesh);
    }
    for (i, mesh) in peers.iter_mut().enumerate() {
        let others: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.clone())
            .collect();
        chat_open_with(mesh, &others).await;
    }
    for (i, mesh) in peers.iter().enumerate() {
        mesh.send(Command::Chat {
            text: format!("from {i}"),
            to: None,
            to_key: None,
        });
    }
    for (i, mesh) in peers.iter_mut().enumerate() {
        let mut texts = Vec::new();
        let mut sent_to = None;
        while texts.len() < 4 || sent_to.is_none() {
            match wait_for(mesh, "chats", |e| {
                matches!(e, Event::Chat { .. } | Event::ChatSent { .. })
            })
            .await
            {
                Event::Chat { text, .. } => texts.push(text),
                Event::ChatSent { to, .. } => sent_to = Some(to.len()),
                _ => unreachable!(),
            }
        }
        assert_eq!(
            sent_to,
            Some(4),
            "a room message goes on every open channel"
        );
        texts.sort();
        let expected: Vec<String> = (0..5)
            .filter(|j| *j != i)
            .map(|j| format!("from {j}"))
            .collect();
        assert_eq!(texts, expected);
    }
    // No duplicates trail behind.
    for mesh in &mut peers {
        let late = tokio::time::timeout(std::time::Duration::from_millis(300), async {
            loop {
                if let Some(Event::Chat { .. }) = mesh.next_event().await {
                    return;
                }
            }
        })
        .await;
        assert!(late.is_err(), "a message arrived twice");
    }
}

/// The signaling server goes away once the mesh is up: chat keeps flowing both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flows_after_the_server_stops() {
    let server = server().await;
    let (mut a, a_id, mut b, _) = connected_pair(&server, "r").await;
    server.stop().await;
    wait_for(&mut a, "reconnecting", |e| {
        matches!(
            e,
            Event::Signaling {
                state: confab_mesh::api::SignalingState::Reconnecting,
                ..
            }
        )
    })
    .await;

    a.send(Command::Chat {
        text: "still here?".into(),
        to: None,
        to_key: None,
    });
    wait_for(
        &mut b,
        "chat from A",
        |e| matches!(e, Event::Chat { text, .. } if text == "still here?"),
    )
    .await;
    b.send(Command::Chat {
        text: "yes".into(),
        to: Some(a_id.clone()),
        to_key: None,
    });
    wait_for(
        &mut a,
        "chat from B",
        |e| matches!(e, Event::Chat { text, .. } if text == "yes"),
    )
    .await;
    wait_for(
        &mut b,
        "ack from A",
        |e| matches!(e, Event::Ack { peer, .. } if *peer == a_id),
    )
    .await;
}

/// `disconnect` closes only the signaling socket: the data channels keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_keeps_the_channels() {
    let server = server().await;
    let (mut a, _, mut b, _) = connected_pair(&server, "r").await;
    a.send(Command::Disconnect);
    wait_for(&mut a, "disconnected", |e| {
        matches!(
            e,
            Event::Signaling {
                state: confab_mesh::api::SignalingState::Disconnected,
                ..
            }
        )
    })
    .await;
    a.send(Command::Chat {
        text: "over the mesh".into(),
        to: None,
        to_key: None,
    });
    wait_for(
        &mut b,
        "chat",
        |e| matches!(e, Event::Chat { text, .. } if text == "over the mesh"),
    )
    .await;
    b.send(Command::Chat {
        text: "back".into(),
        to: None,
        to_key: None,
    });
    wait_for(
        &mut a,
        "chat",
        |e| matches!(e, Event::Chat { text, .. } if text == "back"),
    )
    .await;
}

/// Both ends offer again at the same moment: perfect negotiation converges and the
/// connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glare_converges() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "r").await;
    for _ in 0..3 {
        a.send(Command::Renegotiate { peer: b_id.clone() });
        b.send(Command::Renegotiate { peer: a_id.clone() });
    }
    let (polite, impolite) = if a_id < b_id {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    wait_for(
        polite,
        "rollback",
        |e| matches!(e, Event::Log { msg, .. } if msg.contains("rolling back")),
    )
    .await;
    wait_for(
        impolite,
        "ignore",
        |e| matches!(e, Event::Log { msg, .. } if msg.contains("ignoring the colliding offer")),
    )
    .await;
    // Settled: a message each way still arrives, and no negotiation error was reported.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    a.send(Command::Chat {
        text: "after glare".into(),
        to: None,
        to_key: None,
    });
    let got = wait_for(&mut b, "chat", |e| {
        matches!(e, Event::Chat { .. } | Event::Error { .. })
    })
    .await;
    assert!(
        matches!(&got, Event::Chat { text, .. } if text == "after glare"),
        "{got:?}"
    );
    b.send(Command::Chat {
        text: "and back".into(),
        to: None,
        to_key: None,
    });
    let got = wait_for(&mut a, "chat", |e| {
        matches!(e, Event::Chat { .. } | Event::Error { .. })
    })
    .await;
    assert!(
        matches!(&got, Event::Chat { text, .. } if text == "and back"),
        "{got:?}"
    );
}

/// Both ends of a connection show the same safety code, made of both fingerprints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_show_the_same_safety_code() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "r").await;
    a.send(Command::SafetyCode { peer: b_id.clone() });
    b.send(Command::SafetyCode { peer: a_id.clone() });
    let code = |e: Event| match e {
        Event::SafetyCode { code, .. } => code,
        other => panic!("{other:?}"),
    };
    let at_a = code(wait_for(&mut a, "code", |e| matches!(e, Event::SafetyCode { .. })).await);
    let at_b = code(wait_for(&mut b, "code", |e| matches!(e, Event::SafetyCode { .. })).await);
    assert_eq!(at_a, at_b);
    assert!(
        at_a.len() == 11 && at_a.chars().filter(|c| c.is_ascii_digit()).count() == 9,
        "{at_a}"
    );
    a.send(Command::SafetyCode {
        peer: "p999".into(),
    });
    wait_for(
        &mut a,
        "unknown peer",
        |e| matches!(e, Event::Error { code, .. } if *code == ErrorCode::UnknownPeer),
    )
    .await;
}

/// The largest text the protocol allows fits in one data channel message both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_of_64_kib_goes_both_ways() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "r").await;
    let text = "é".repeat(32 * 1024);
    assert_eq!(text.len(), 64 * 1024);
    a.send(Command::Chat {
        text: text.clone(),
        to: Some(b_id),
        to_key: None,
    });
    let got = wait_for(&mut b, "big chat", |e| {
        matches!(e, Event::Chat { .. } | Event::Error { .. })
    })
    .await;
    assert!(
        matches!(&got, Event::Chat { text: t, .. } if *t == text),
        "{got:?}"
    );
    b.send(Command::Chat {
        text: text.clone(),
        to: Some(a_id),
        to_key: None,
    });
    let got = wait_for(&mut a, "big chat", |e| {
        matches!(e, Event::Chat { .. } | Event::Error { .. })
    })
    .await;
    assert!(
        matches!(&got, Event::Chat { text: t, .. } if *t == text),
        "{got:?}"
    );
    a.send(Command::Chat {
        text: format!("{text}x"),
        to: None,
        to_key: None,
    });
    wait_for(
        &mut a,
        "too large",
        |e| matches!(e, Event::Error { code, .. } if *code == ErrorCode::TooLarge),
    )
    .await;
}
