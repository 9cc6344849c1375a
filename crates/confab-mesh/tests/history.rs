//! A room's history passed on between peers: latecomers get what was said before they
//! came, groups that were apart converge, and nothing forged, altered or re-dated gets in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use confab_mesh::{Command, Event, Mesh};
use confab_signal::ServerHandle;

async fn join(mesh: &mut Mesh, server: &ServerHandle, room: &str, name: &str) -> String {
    connect(mesh, &url(server), room, name);
    own_id(mesh).await
}

fn say(mesh: &Mesh, text: &str) {
    mesh.send(Command::Chat {
        text: text.to_owned(),
        to: None,
        to_key: None,
    });
}

async fn hear(mesh: &mut Mesh, text: &str) {
    wait_for(
        mesh,
        text,
        |e| matches!(e, Event::Chat { text: t, .. } if t == text),
    )
    .await;
}

/// What the history exchange with each of `peers` logged when it finished, per peer.
/// Every chat event seen meanwhile goes to `chats`.
async fn exchanges_done(mesh: &mut Mesh, peers: &[&str], chats: &mut Vec<Event>) -> Vec<String> {
    let mut done = vec![None; peers.len()];
    while done.iter().any(Option::is_none) {
        let event = wait_for(mesh, "history exchanges", |e| {
            matches!(e, Event::Chat { .. })
                || matches!(e, Event::Log { msg, .. } if msg.starts_with("history with"))
        })
        .await;
        match event {
            Event::Log { msg, peer, .. } => {
                // An exchange with a peer not asked about (one that left) is not counted.
                if let Some(at) = peers.iter().position(|p| Some(*p) == peer.as_deref()) {
                    done[at] = Some(msg);
                }
            }
            chat => chats.push(chat),
        }
    }
    done.into_iter().flatten().collect()
}

/// A figure from "history with P: got 0, gave 0, refused 0; 120 bytes out, 98 bytes in,
/// 3 ms": the number before `what` ("bytes out") or after it ("refused").
fn figure(msg: &str, what: &str) -> usize {
    let at = msg.find(what).expect(what);
    let number = if what.starts_with(' ') {
        msg[..at].rsplit(' ').next()
    } else {
        msg[at + what.len()..]
            .split([' ', ',', ';'])
            .find(|s| !s.is_empty())
    };
    number.and_then(|n| n.parse().ok()).expect("a number")
}

fn texts_of(chats: &[Event]) -> Vec<(String, bool)> {
    chats
        .iter()
        .filter_map(|e| match e {
            Event::Chat { text, history, .. } => Some((text.clone(), *history)),
            _ => None,
        })
        .collect()
}

/// No chat event within half a second: nothing more was shown.
async fn no_more_chat(mesh: &mut Mesh) {
    let more = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            if let Some(Event::Chat { text, .. }) = mesh.next_event().await {
                return text;
            }
        }
    })
    .await;
    assert!(more.is_err(), "shown again: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latecomer_gets_what_was_said_before_it_came_in_order_once() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "history").await;
    say(&a, "one");
    hear(&mut b, "one").await;
    say(&b, "two");
    hear(&mut a, "two").await;
    say(&a, "three");
    hear(&mut b, "three").await;

    let mut c = peer("C");
    connect(&c, &url(&server), "history", "C");
    let mut chats = Vec::new();
    exchanges_done(&mut c, &[&a_id, &b_id], &mut chats).await;
    // Each once, from history, by its author, in author time order: by time, then by id
    // (two messages a millisecond apart on loopback may share a time).
    let shown: Vec<(u64, String, String, String, bool)> = chats
        .iter()
        .filter_map(|e| match e {
            Event::Chat {
                ts,
                id,
                text,
                author,
                history,
                ..
            } => Some((*ts, id.clone(), text.clone(), author.name.clone(), *history)),
            _ => None,
        })
        .collect();
    let mut in_order = shown.clone();
    in_order.sort();
    assert_eq!(shown, in_order, "not in author time order");
    let mut said: Vec<(&str, &str, bool)> = shown
        .iter()
        .map(|(_, _, text, author, history)| (text.as_str(), author.as_str(), *history))
        .collect();
    said.sort();
    assert_eq!(
        said,
        [("one", "A", true), ("three", "A", true), ("two", "B", true)],
        "{chats:#?}"
    );
    no_more_chat(&mut c).await;
    let kept: Vec<String> = history(&mut c).await.into_iter().map(|m| m.text).collect();
    let shown_texts: Vec<String> = shown.into_iter().map(|(_, _, text, _, _)| text).collect();
    assert_eq!(kept, shown_texts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_that_chatted_apart_converge() {
    let (here, there) = (server().await, server().await);
    let dirs: Vec<_> = ["ga", "gb", "gc", "gd"]
        .iter()
        .map(|n| install(n))
        .collect();
    let mut a = peer_in(&dirs[0], "A");
    let a_id = join(&mut a, &here, "apart", "A").await;
    let mut b = peer_in(&dirs[1], "B");
    join(&mut b, &here, "apart", "B").await;
    let mut c = peer_in(&dirs[2], "C");
    let c_id = join(&mut c, &there, "apart", "C").await;
    let mut d = peer_in(&dirs[3], "D");
    join(&mut d, &there, "apart", "D").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    chat_open_with(&mut d, std::slice::from_ref(&c_id)).await;
    say(&a, "from A");
    hear(&mut b, "from A").await;
    say(&d, "from D");
    hear(&mut c, "from D").await;
    say(&b, "from B");
    hear(&mut a, "from B").await;
    stop(c).await;
    stop(d).await;

    // C and D come over to the other server's room of the same name.
    let mut c = peer_in(&dirs[2], "C");
    join(&mut c, &here, "apart", "C").await;
    let mut d = peer_in(&dirs[3], "D");
    join(&mut d, &here, "apart", "D").await;
    for mesh in [&mut a, &mut b, &mut c, &mut d] {
        let mut all: HashSet<String> = HashSet::new();
        while all.len() < 3 {
            all = history(mesh).await.into_iter().map(|m| m.text).collect();
            if all.len() < 3 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        assert_eq!(all.len(), 3, "{all:?}");
    }
}

/// Rewrites what a stopped peer holds, as a peer that lies about others' messages would.
fn tamper(dir: &Path, sql: &str) {
    let db = rusqlite::Connection::open(dir.join("history.sqlite3")).unwrap();
    let changed = db.execute(sql, []).unwrap();
    assert_eq!(changed, 1, "{sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_or_redated_history_is_refused() {
    let server = server().await;
    let (dir_a, dir_b) = (install("fa"), install("fb"));
    let mut a = peer_in(&dir_a, "A");
    let a_id = join(&mut a, &server, "forged", "A").await;
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "forged", "B").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    for text in [
        "kept as written",
        "to be altered",
        "to be re-dated",
        "to be claimed",
    ] {
        say(&a, text);
        hear(&mut b, text).await;
    }
    stop(a).await;
    stop(b).await;

    // B now lies about three of A's messages: other words, another time, and one it
    // claims as its own (it passes it on under its own key and certificate).
    tamper(
        &dir_b,
        "UPDATE messages SET text = 'send money' WHERE text = 'to be altered'",
    );
    tamper(
        &dir_b,
        "UPDATE messages SET ts = ts - 86400000 WHERE text = 'to be re-dated'",
    );
    tamper(
        &dir_b,
        "UPDATE messages SET sender = '' WHERE text = 'to be claimed'",
    );

    let mut b = peer_in(&dir_b, "B");
    let b_id = join(&mut b, &server, "forged", "B").await;
    let mut c = peer("C");
    join(&mut c, &server, "forged", "C").await;
    let mut chats = Vec::new();
    let done = exchanges_done(&mut c, &[&b_id], &mut chats).await;
    assert_eq!(figure(&done[0], "refused"), 3, "{}", done[0]);
    assert_eq!(
        texts_of(&chats),
        [("kept as written".to_owned(), true)],
        "only the untouched message gets through"
    );
    no_more_chat(&mut c).await;
    let kept: Vec<String> = history(&mut c).await.into_iter().map(|m| m.text).collect();
    assert_eq!(kept, ["kept as written"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_the_same_history_spend_under_a_kib_finding_it_out() {
    let server = server().await;
    let (dir_a, dir_b) = (install("sa"), install("sb"));
    let mut a = peer_in(&dir_a, "A");
    let a_id = join(&mut a, &server, "same", "A").await;
    let mut b = peer_in(&dir_b, "B");
    join(&mut b, &server, "same", "B").await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    for i in 0..40 {
        say(&a, &format!("message {i}"));
        hear(&mut b, &format!("message {i}")).await;
    }
    stop(b).await;

    let mut b = peer_in(&dir_b, "B");
    let b_id = join(&mut b, &server, "same", "B").await;
    let mut chats = Vec::new();
    let on_b = exchanges_done(&mut b, &[&a_id], &mut chats).await;
    let on_a = exchanges_done(&mut a, &[&b_id], &mut chats).await;
    assert!(chats.is_empty(), "nothing was missing: {chats:?}");
    let (out, inn) = (
        figure(&on_b[0], " bytes out"),
        figure(&on_b[0], " bytes in"),
    );
    assert!(out + inn < 1024, "{}", on_b[0]);
    assert_eq!(
        (
            figure(&on_a[0], " bytes out"),
            figure(&on_a[0], " bytes in")
        ),
        (inn, out),
        "both ends count the same bytes"
    );
    println!("{}", on_b[0]);
}
