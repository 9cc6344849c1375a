//! What peers remember across restarts: history, delivery of what was missed, messages
//! that wait for their readers through crashes, contacts, and the keys of known peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_mesh::api::TrustStatus;
use confab_mesh::{Command, ErrorCode, Event, Identity, Mesh};
use confab_signal::ServerHandle;

async fn join(mesh: &mut Mesh, server: &ServerHandle, name: &str) -> String {
    connect(mesh, &url(server), "memory", name);
    own_id(mesh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_of_both_peers() {
    let server = server().await;
    let (dir_a, dir_b) = (install("ha"), install("hb"));
    let mut a = peer_in(&dir_a, "A");
    let a_id = join(&mut a, &server, "A").await;
    let mut b = peer_in(&dir_b, "B");
    let b_id = join(&mut b, &server, "B").await;
    chat_open_with(&mut a, std::slice::from_ref(&b_id)).await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    a.send(Command::Chat {
        text: "first".into(),
        to: None,
        to_key: None,
    });
    wait_for(&mut b, "chat", |e| matches!(e, Event::Chat { .. })).await;
    wait_for(&mut a, "ack", |e| matches!(e, Event::Ack { .. })).await;
    b.send(Command::Chat {
        text: "second".into(),
        to: None,
        to_key: None,
    });
    wait_for(&mut a, "chat", |e| matches!(e, Event::Chat { .. })).await;
    wait_for(&mut b, "ack", |e| matches!(e, Event::Ack { .. })).await;
    stop(a).await;
    stop(b).await;

    let mut a = peer_in(&dir_a, "A");
    join(&mut a, &server, "A").await;
    let kept = history(&mut a).await;
    let texts: Vec<(&str, &str)> = kept
        .iter()
        .map(|m| (m.text.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(texts, vec![("first", "delivered"), ("second", "received")]);
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    let kept = history(&mut b).await;
    let texts: Vec<(&str, &str)> = kept
        .iter()
        .map(|m| (m.text.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(texts, vec![("first", "received"), ("second", "delivered")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_a_peer_that_was_away_arrive_once_it_is_back() {
    let server = server().await;
    let (dir_a, dir_b) = (install("oa"), install("ob"));
    let mut a = peer_in(&dir_a, "A");
    let a_id = join(&mut a, &server, "A").await;
    let mut b = peer_in(&dir_b, "B");
    let b_id = join(&mut b, &server, "B").await;
    chat_open_with(&mut a, std::slice::from_ref(&b_id)).await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    stop(b).await;
    wait_for(&mut a, "B gone", |e| matches!(e, Event::PeerLeft { .. })).await;
    a.send(Command::Chat {
        text: "while you were away".into(),
        to: None,
        to_key: None,
    });
    let sent = wait_for(&mut a, "chat-sent", |e| matches!(e, Event::ChatSent { .. })).await;
    assert!(
        matches!(&sent, Event::ChatSent { to, .. } if to.is_empty()),
        "{sent:?}"
    );

    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    let got = wait_for(&mut b, "missed chat", |e| matches!(e, Event::Chat { .. })).await;
    assert!(matches!(&got, Event::Chat { text, .. } if text == "while you were away"));
    wait_for(&mut a, "ack", |e| matches!(e, Event::Ack { .. })).await;
    // Exactly once: no second copy now, nor after another reconnect.
    stop(b).await;
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    let again = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            if let Some(Event::Chat { .. }) = b.next_event().await {
                return;
            }
        }
    })
    .await;
    assert!(again.is_err(), "the message arrived twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_typed_alone_survives_a_crash_and_reaches_the_first_comer_once() {
    let server = server().await;
    let (dir, dir_b) = (install("crash"), install("crash-b"));
    let mut a = peer_in(&dir, "A");
    join(&mut a, &server, "A").await;
    a.send(Command::Chat {
        text: "draft".into(),
        to: None,
        to_key: None,
    });
    wait_for(&mut a, "chat-sent", |e| matches!(e, Event::ChatSent { .. })).await;
    // A crash: the task is gone without leaving or closing anything.
    drop(a);
    let mut a = peer_in(&dir, "A");
    let a_id = join(&mut a, &server, "A").await;
    let kept = history(&mut a).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].text.as_str(), kept[0].state.as_str()),
        ("draft", "queued")
    );

    // Someone arrives: the draft goes out to it, once, and is delivered.
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    let got = wait_for(&mut b, "the draft", |e| matches!(e, Event::Chat { .. })).await;
    assert!(
        matches!(&got, Event::Chat { text, from, author, history: false, .. }
            if text == "draft" && *from == a_id && author.name == "A"),
        "{got:?}"
    );
    wait_for(&mut a, "ack", |e| matches!(e, Event::Ack { .. })).await;
    assert_eq!(history(&mut a).await[0].state, "delivered");
    stop(b).await;
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    let again = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            if let Some(Event::Chat { .. }) = b.next_event().await {
                return;
            }
        }
    })
    .await;
    assert!(again.is_err(), "the draft arrived twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_to_an_away_contact_waits_across_restarts_of_both() {
    let server = server().await;
    let (dir_a, dir_b) = (install("away-a"), install("away-b"));
    let mut a = peer_in(&dir_a, "A");
    let a_id = join(&mut a, &server, "A").await;
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    wait_for(&mut a, "B's hello", |e| matches!(e, Event::Trust { .. })).await;
    stop(b).await;
    wait_for(&mut a, "B gone", |e| matches!(e, Event::PeerLeft { .. })).await;

    // B is away: a contact, found by key, and written to.
    a.send(Command::Contacts);
    let contacts = match wait_for(&mut a, "contacts", |e| matches!(e, Event::Contacts { .. })).await
    {
        Event::Contacts { contacts } => contacts,
        _ => unreachable!(),
    };
    let bob = contacts
        .iter()
        .find(|c| c.name == "B")
        .expect("B is a contact");
    assert!(!bob.verified && bob.last_seen > 0, "{bob:?}");
    let key = bob.key.clone();
    a.send(Command::Chat {
        text: "for when you are back".into(),
        to: None,
        to_key: Some(key.clone()),
    });
    let sent = wait_for(&mut a, "chat-sent", |e| matches!(e, Event::ChatSent { .. })).await;
    assert!(
        matches!(&sent, Event::ChatSent { to, .. } if to.is_empty()),
        "{sent:?}"
    );
    stop(a).await;

    // Both restart; A first, then B: it arrives once, as a direct message.
    let mut a = peer_in(&dir_a, "A");
    join(&mut a, &server, "A").await;
    a.send(Command::History {
        peer: None,
        room: None,
        key: Some(key.clone()),
        limit: None,
    });
    let queued = match wait_for(&mut a, "history", |e| matches!(e, Event::History { .. })).await {
        Event::History { messages, .. } => messages,
        _ => unreachable!(),
    };
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].text, "for when you are back");
    assert_eq!(queued[0].state, "queued");
    assert_eq!(
        queued[0].author.key,
        Identity::load_or_create(&dir_a).unwrap().fingerprint()
    );
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "B").await;
    let got = wait_for(
        &mut b,
        "the waiting message",
        |e| matches!(e, Event::Chat { text, .. } if text == "for when you are back"),
    )
    .await;
    assert!(
        matches!(
            &got,
            Event::Chat {
                scope: confab_proto::ChatScope::Direct,
                ..
            }
        ),
        "{got:?}"
    );
    wait_for(&mut a, "ack", |e| matches!(e, Event::Ack { .. })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_name_with_another_key_is_flagged() {
    let server = server().await;
    let (dir_a, dir_b) = (install("ta"), install("tb"));
    let mut a = peer_in(&dir_a, "A");
    let a_id = join(&mut a, &server, "A").await;
    let mut b = peer_in(&dir_b, "Bob");
    let b_id = join(&mut b, &server, "Bob").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    wait_for(&mut a, "unverified", |e| {
        matches!(
            e,
            Event::Trust {
                status: TrustStatus::Unverified,
                ..
            }
        )
    })
    .await;
    a.send(Command::Verify { peer: b_id });
    wait_for(&mut a, "verified", |e| {
        matches!(
            e,
            Event::Trust {
                status: TrustStatus::Verified,
                ..
            }
        )
    })
    .await;
    stop(b).await;

    // The real Bob again: still verified.
    let mut b = peer_in(&dir_b, "Bob");
    join(&mut b, &server, "Bob").await;
    wait_for(&mut a, "verified again", |e| {
        matches!(
            e,
            Event::Trust {
                status: TrustStatus::Verified,
                ..
            }
        )
    })
    .await;
    stop(b).await;

    // Someone else calling itself Bob, with another key.
    let mut impostor = peer_in(&install("impostor"), "Bob");
    join(&mut impostor, &server, "Bob").await;
    let flagged = wait_for(&mut a, "flag", |e| {
        matches!(e, Event::Trust { .. } | Event::Error { .. })
    })
    .await;
    assert!(
        matches!(&flagged, Event::Error { code, .. } if *code == ErrorCode::IdentityChanged),
        "{flagged:?}"
    );
    wait_for(&mut a, "changed", |e| {
        matches!(
            e,
            Event::Trust {
                status: TrustStatus::Changed,
                ..
            }
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_name_with_another_key_is_flagged_unverified_too() {
    let server = server().await;
    let dir_a = install("tofu-a");
    let mut a = peer_in(&dir_a, "A");
    join(&mut a, &server, "A").await;
    let mut carol = peer_in(&install("tofu-carol"), "Carol");
    join(&mut carol, &server, "Carol").await;
    wait_for(&mut a, "unverified", |e| {
        matches!(
            e,
            Event::Trust {
                status: TrustStatus::Unverified,
                ..
            }
        )
    })
    .await;
    stop(carol).await;

    let mut other = peer_in(&install("tofu-other"), "Carol");
    join(&mut other, &server, "Carol").await;
    wait_for(&mut a, "changed", |e| {
        matches!(
            e,
            Event::Trust {
                status: TrustStatus::Changed,
                ..
            }
        )
    })
    .await;
}
