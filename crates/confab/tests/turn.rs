//! A TURN server that refuses a peer's credentials is a `turn-auth-failed` error, not a
//! line on stderr; right credentials are none. Against Debian's coturn on loopback, and
//! against the relay built into `confab server`. And the built-in relay over TCP, for a
//! network that lets no UDP out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::netns::TestNetns;
use common::{Process, WAIT, chat_open, connected_id, server};
use confab_testkit::coturn::Coturn;
use serde_json::Value;

fn peer_with_ice(url: &str, ice: &str) -> Process {
    Process::spawn(&[
        "-v", "peer", "--server", url, "--room", "turn", "--name", "A", "--ice", ice,
    ])
}

#[test]
fn a_refused_turn_password_is_a_turn_auth_failed_error() {
    let coturn = Coturn::start("ada", "right").expect("Debian's coturn");
    let (_server, url) = server();
    let peer = peer_with_ice(&url, &coturn.url("ada", "wrong"));
    let error = peer.event(WAIT, "turn-auth-failed", |e| {
        e["event"] == "error" && e["code"] == "turn-auth-failed"
    });
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("401"), "the server's reason: {message}");
}

#[test]
fn accepted_turn_credentials_raise_no_error() {
    let coturn = Coturn::start("ada", "right").expect("Debian's coturn");
    let (_server, url) = server();
    let peer = peer_with_ice(&url, &coturn.url("ada", "right"));
    let verdict = peer.event(WAIT, "the check's verdict", |e| {
        (e["event"] == "error" && e["code"] == "turn-auth-failed")
            || (e["event"] == "log"
                && e["msg"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("accepted the credentials")))
    });
    assert_eq!(verdict["event"], "log", "{verdict}");
}

#[test]
fn the_servers_built_in_relay_takes_the_credentials_its_welcome_hands_out() {
    let (_server, url) = server();
    let peer = Process::spawn(&[
        "-v", "peer", "--server", &url, "--room", "relay", "--name", "A",
    ]);
    let verdict = peer.event(WAIT, "the check's verdict", |e| {
        (e["event"] == "error" && e["code"] == "turn-auth-failed")
            || (e["event"] == "log"
                && e["msg"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("accepted the credentials")))
    });
    assert_eq!(verdict["event"], "log", "{verdict}");
    assert!(
        verdict["msg"].as_str().unwrap().contains("127.0.0.1"),
        "the relay on the address the peer reached: {verdict}"
    );
}

/// In `netns`, peer A on 127.0.0.2 (whose network the caller has shaped) and peer B on
/// 127.0.0.3 join through `url`, open chat and talk both ways; A's stats of B come back.
fn a_talks_with_b(netns: &TestNetns, url: &str, env: &[(&str, &str)]) -> Value {
    let peer = |name: &str, ip: &str| {
        netns.spawn_with_env(
            &[
                "-v", "peer", "--server", url, "--room", "walls", "--name", name, "--udp", ip,
            ],
            env,
        )
    };
    let mut a = peer("A", "127.0.0.2");
    let a_id = connected_id(&a);
    let mut b = peer("B", "127.0.0.3");
    let b_id = connected_id(&b);
    chat_open(&a, &b_id);
    chat_open(&b, &a_id);

    a.send(r#"{"cmd":"chat","text":"from behind the firewall"}"#);
    b.event(WAIT, "A's chat", |e| {
        e["event"] == "chat" && e["text"] == "from behind the firewall"
    });
    b.send(r#"{"cmd":"chat","text":"heard you"}"#);
    a.event(WAIT, "B's chat", |e| {
        e["event"] == "chat" && e["text"] == "heard you"
    });

    a.send(&format!(r#"{{"cmd":"stats","peer":"{b_id}"}}"#));
    a.event(WAIT, "stats", |e| {
        e["event"] == "stats" && e["peer"] == b_id
    })
}

/// A peer whose network lets no UDP out (only its own loopback tunnel's) reaches the
/// server's built-in relay over TCP, with nothing configured, and talks both ways with a
/// peer on an open network. In a namespace of the test's own; needs root.
#[test]
fn a_peer_on_a_network_that_lets_no_udp_out_talks_through_the_relay_over_tcp() {
    let Some(netns) = TestNetns::new("tcp-relay") else {
        return;
    };
    let _server = netns.server_on("127.0.0.4:8787", &["--turn-allow-private"]);
    netns.block_udp_of("127.0.0.2").expect("nftables");
    let stats = a_talks_with_b(&netns, "ws://127.0.0.4:8787/ws", &[]);
    assert_eq!(stats["candidate_type"], "relay", "{stats}");
    assert_eq!(stats["transport"], "tcp", "{stats}");
    let local = stats["local_candidate"].as_str().unwrap_or_default();
    assert!(local.starts_with("relay 127.0.0.4:"), "{stats}");
}

/// A network that lets neither UDP nor TCP to the relay's port out, only TLS: the relay's
/// TURN over TLS, checked against the server's certificate (trusted here through
/// `SSL_CERT_FILE`, as a self-hosted server's would be).
#[test]
fn a_peer_on_a_network_that_lets_only_tls_out_talks_through_the_relay_over_tls() {
    let Some(netns) = TestNetns::new("tls-relay") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.4".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let _server = netns.server_on(
        "127.0.0.4:8787",
        &[
            "--turn-allow-private",
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    );
    netns.block_udp_of("127.0.0.2").expect("nftables");
    netns.block_tcp_port(3478).expect("nftables");
    let trust = [("SSL_CERT_FILE", cert_pem.to_str().unwrap())];
    let stats = a_talks_with_b(&netns, "wss://127.0.0.4:8787/ws", &trust);
    assert_eq!(stats["candidate_type"], "relay", "{stats}");
    assert_eq!(stats["transport"], "tls", "{stats}");
}
