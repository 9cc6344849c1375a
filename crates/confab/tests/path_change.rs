//! A connection whose path dies for good comes back by ICE restart, on the same peers and
//! the same chat channel: the UDP port each side used is cut off by nftables (as when a
//! NAT mapping expires or a laptop moves to another network), and the peers, restarting
//! ICE on new sockets, find a new path while signaling stays up. In a network namespace of
//! the test's own, deleted when it ends. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::TestNetns;
use common::{Process, WAIT, chat_open, connected_id};
use serde_json::Value;

/// Consent fails over to `disconnected` after 5 s of silence; the restart then needs an
/// offer, an answer and new checks. `failed` (and a fresh connection) would come at 12 s.
const BACK_WITHIN: Duration = Duration::from_secs(12);

/// The port of the selected pair's local candidate (`TYPE ADDRESS:PORT`).
fn local_port(peer: &mut Process, other: &str) -> u16 {
    peer.send(&format!(r#"{{"cmd":"stats","peer":"{other}"}}"#));
    let stats = peer.event(WAIT, "stats", |e| {
        e["event"] == "stats" && e["peer"] == other
    });
    let candidate = stats["local_candidate"].as_str().unwrap_or_default();
    candidate
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no local candidate in {stats}"))
}

/// Reads `peer`'s events until its connection to `other` is `connected` again, and returns
/// every event seen on the way.
fn until_connected_again(peer: &Process, other: &str) -> Vec<Value> {
    let deadline = Instant::now() + BACK_WITHIN;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = peer.event(left, "the connection back", |_| true);
        let back = event["event"] == "peer-state"
            && event["peer"] == other
            && event["state"] == "connected"
            && seen.iter().any(|e: &Value| e["event"] == "peer-state");
        seen.push(event);
        if back {
            return seen;
        }
    }
}

#[test]
fn a_path_cut_off_for_good_comes_back_by_ice_restart_on_the_same_chat_channel() {
    let Some(netns) = TestNetns::new("path") else {
        return;
    };
    let _server = netns.server();
    let mut a = netns.peer("path", "A", &["-v"]);
    let a_id = connected_id(&a);
    let mut b = netns.peer("path", "B", &["-v"]);
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);

    let a_port = local_port(&mut a, &b_id);
    let b_port = local_port(&mut b, &a_id);
    netns.cut_udp_port(a_port).expect("nftables");
    netns.cut_udp_port(b_port).expect("nftables");
    let cut = Instant::now();

    let on_a = until_connected_again(&a, &b_id);
    let on_b = until_connected_again(&b, &a_id);
    eprintln!("connected again {:?} after the cut", cut.elapsed());
    // The side whose consent checks fail first restarts; the other may only answer its
    // offer, and so go straight from connected to checking again.
    let restarted = |events: &[Value]| {
        events.iter().any(|e| {
            e["event"] == "log"
                && e["msg"]
                    .as_str()
                    .is_some_and(|m| m.contains("restarting ICE"))
        })
    };
    assert!(
        restarted(&on_a) || restarted(&on_b),
        "neither side restarted ICE"
    );
    for (who, events) in [("A", &on_a), ("B", &on_b)] {
        let states: Vec<&str> = events
            .iter()
            .filter(|e| e["event"] == "peer-state")
            .filter_map(|e| e["state"].as_str())
            .collect();
        assert!(
            states.contains(&"disconnected") || states.contains(&"connecting"),
            "{who} never saw the path go: {states:?}"
        );
        // The same connection: its chat channel never closed, nobody left or came anew.
        let broken: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["event"] == "peer-left"
                    || e["event"] == "peer-joined"
                    || (e["event"] == "channel" && e["state"] != "open")
                    || (e["event"] == "peer-state"
                        && matches!(e["state"].as_str(), Some("failed" | "closed")))
            })
            .collect();
        assert!(
            broken.is_empty(),
            "{who}: the connection was replaced: {broken:?}"
        );
    }

    // Chat goes both ways on the new path, over the channel that was open before the cut.
    a.send(r#"{"cmd":"chat","text":"after the move"}"#);
    b.event(WAIT, "A's chat", |e| {
        e["event"] == "chat" && e["text"] == "after the move"
    });
    b.send(r#"{"cmd":"chat","text":"heard you"}"#);
    a.event(WAIT, "B's chat", |e| {
        e["event"] == "chat" && e["text"] == "heard you"
    });
    assert_ne!(
        local_port(&mut a, &b_id),
        a_port,
        "A still on the port cut off"
    );
}
