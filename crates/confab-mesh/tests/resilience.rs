//! Signaling drops and resumes, hostile signaling input, and many joins and leaves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use confab_mesh::Command;
use confab_mesh::Event;
use confab_mesh::api::SignalingState;
use confab_signal::{ClientOptions, SignalClient};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A TCP relay in front of the server whose connections the test can cut at will, as a
/// network blip would.
struct Relay {
    url: String,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let token = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let cancel = token.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cancel.cancelled() => {
                            // A reset, not a close: the server must see a drop.
                            let _ = inbound.set_zero_linger();
                            let _ = outbound.set_zero_linger();
                        }
                    }
                });
            }
        });
        Relay { url, cut }
    }

    fn cut_all(&self) {
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_signaling_socket_resumes_and_the_room_sees_nothing() {
    let server = server().await;
    let relay = Relay::start(server.local_addr()).await;
    let mut a = peer("A");
    connect(&a, &relay.url, "r", "A");
    let a_id = own_id(&mut a).await;
    let mut b = peer("B");
    connect(&b, &url(&server), "r", "B");
    let b_id = own_id(&mut b).await;
    chat_open_with(&mut a, std::slice::from_ref(&b_id)).await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;

    relay.cut_all();
    wait_for(&mut a, "reconnecting", |e| {
        matches!(
            e,
            Event::Signaling {
                state: SignalingState::Reconnecting,
                ..
            }
        )
    })
    .await;
    let back = wait_for(&mut a, "connected again", |e| {
        matches!(
            e,
            Event::Signaling {
                state: SignalingState::Connected,
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(&back, Event::Signaling { id: Some(id), .. } if *id == a_id),
        "same id: {back:?}"
    );

    // B heard nothing of it, and the mesh never noticed.
    b.send(Command::Peers);
    let peers = wait_for(&mut b, "peers", |e| {
        matches!(
            e,
            Event::Peers { .. } | Event::PeerLeft { .. } | Event::PeerJoined { .. }
        )
    })
    .await;
    assert!(
        matches!(&peers, Event::Peers { peers } if peers.len() == 1 && peers[0].id == a_id),
        "{peers:?}"
    );
    a.send(Command::Chat {
        text: "after the blip".into(),
        to: None,
        to_key: None,
    });
    wait_for(
        &mut b,
        "chat",
        |e| matches!(e, Event::Chat { text, .. } if text == "after the blip"),
    )
    .await;
}

/// Garbage from a member of the room (bad signal data, a broken SDP, a candidate before
/// any description) is an error event for that peer, and the rest of the mesh goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signaling_input_is_an_error_not_a_crash() {
    let server = server().await;
    let (mut a, a_id, mut b, b_id) = connected_pair(&server, "r").await;
    let (mut rogue, _) = SignalClient::join(
        &url(&server),
        &ClientOptions::default(),
        confab_proto::Join {
            room: "r".into(),
            name: "rogue".into(),
            version: 1,
            password: None,
            resume: None,
        },
    )
    .await
    .unwrap();
    for data in [
        json!("not an object"),
        json!({"kind":"teleport"}),
        json!({"kind":"description","description":{"type":"offer","sdp":"this is not SDP"}}),
        json!({"kind":"description","description":{"type":"answer","sdp":"v=0"}}),
        json!({"kind":"candidate","candidate":{"candidate":"candidate:garbage","sdpMid":"0","sdpMLineIndex":0}}),
    ] {
        rogue.signal(&a_id, data).await.unwrap();
    }
    let mut errors = 0;
    while errors < 3 {
        if let Event::Error { peer: Some(_), .. } =
            wait_for(&mut a, "errors", |e| matches!(e, Event::Error { .. })).await
        {
            errors += 1;
        }
    }
    // A's link to B is untouched.
    a.send(Command::Chat {
        text: "still fine".into(),
        to: Some(b_id),
        to_key: None,
    });
    wait_for(
        &mut b,
        "chat",
        |e| matches!(e, Event::Chat { text, .. } if text == "still fine"),
    )
    .await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A peer stays while 200 others join, connect and leave, four at a time: every peer
/// task ends and no socket is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_joins_and_leaves_leak_nothing() {
    let server = server().await;
    let mut host = peer("host");
    connect(&host, &url(&server), "churn", "host");
    let host_id = own_id(&mut host).await;
    // One round first, so lazily created process-wide resources exist before counting.
    let cycle = |i: usize| {
        let url = url(&server);
        let host_id = host_id.clone();
        async move {
            let mut guest = peer(&format!("g{i}"));
            connect(&guest, &url, "churn", "guest");
            own_id(&mut guest).await;
            chat_open_with(&mut guest, std::slice::from_ref(&host_id)).await;
            guest.send(Command::Quit);
            guest.stopped().await
        }
    };
    cycle(0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_before = open_fds();
    // 200 guests, four at a time.
    for round in 0..50 {
        let leftovers =
            futures_util::future::join_all((0..4).map(|k| cycle(1 + round * 4 + k))).await;
        assert!(
            leftovers.iter().all(|n| *n == 0),
            "a guest's peer tasks outlived it: {leftovers:?}"
        );
    }
    // The host cleans up each guest once its connection closes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while host.live_peer_tasks() > 0 && tokio::time::Instant::now() < deadline {
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(10), host.next_event()).await
        {}
    }
    assert_eq!(
        host.live_peer_tasks(),
        0,
        "every connection of the host ended"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before + 5,
        "file descriptors grew from {fds_before} to {fds_after}"
    );
}

/// A STUN server that never answers must not hold up the connection: host candidates
/// trickle at once and the chat channel opens while the STUN request is still out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_stun_server_does_not_stall_set_up() {
    let server = server().await;
    // A bound UDP socket that never answers: a STUN server that is down.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stun = format!("stun:{}", silent.local_addr().unwrap());
    let with_stun = |name: &str| {
        let mut transport = confab_mesh::TransportConfig::loopback();
        transport.ice_servers = vec![confab_mesh::IceServer::parse(&stun).unwrap()];
        confab_mesh::Mesh::start(confab_mesh::MeshConfig {
            name: name.to_owned(),
            transport,
            identity: confab_mesh::Identity::ephemeral().unwrap(),
            auto_accept_files: None,
            data_dir: None,
            audio_in: None,
            audio_out: None,
            auto_accept_calls: false,
        })
    };
    let mut a = with_stun("A");
    connect(&a, &url(&server), "stun", "A");
    let a_id = own_id(&mut a).await;
    let mut b = with_stun("B");
    let started = std::time::Instant::now();
    connect(&b, &url(&server), "stun", "B");
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "set-up took {:?}",
        started.elapsed()
    );
}
