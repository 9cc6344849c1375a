//! Several `confab server --cluster` instances sharing one `nats-server`, all on loopback:
//! what a single server promises holds for clients spread over the instances, and
//! survives an instance killed (SIGKILL) and NATS restarting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::cluster::{Front, Instance, Nats};
use confab_proto::{ClientFrame, ErrorCode, Join, ServerFrame};
use confab_signal::{ClientError, ClientOptions, SignalClient, Welcome};
use futures_util::SinkExt;
use serde_json::json;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(5);
/// Enough for a dead instance to be noticed (2 s of silence) and its rooms to move.
const TAKEOVER: Duration = Duration::from_secs(10);

fn join_frame(room: &str, name: &str) -> Join {
    Join {
        room: room.into(),
        name: name.into(),
        version: 1,
        password: None,
        resume: None,
    }
}

async fn try_join(url: &str, join: Join) -> Result<(SignalClient, Welcome), ClientError> {
    SignalClient::join(url, &ClientOptions::default(), join).await
}

async fn join(instance: &Instance, room: &str, name: &str) -> (SignalClient, Welcome) {
    try_join(&instance.url, join_frame(room, name))
        .await
        .expect("joins")
}

async fn next(client: &mut SignalClient) -> ServerFrame {
    timeout(WAIT, client.recv())
        .await
        .expect("a frame within the wait")
        .expect("a frame, not an error")
}

async fn silent(client: &mut SignalClient, quiet: Duration) {
    if let Ok(frame) = timeout(quiet, client.recv()).await {
        panic!("expected silence, got {frame:?}");
    }
}

/// Sends a signal and checks that it arrives, stamped with the sender's id.
async fn relayed(from: &mut SignalClient, from_id: &str, to: &mut SignalClient, to_id: &str) {
    let data = json!({"n": rand_tag()});
    from.signal(to_id, data.clone()).await.unwrap();
    assert_eq!(
        next(to).await,
        ServerFrame::Signal {
            from: from_id.into(),
            data
        }
    );
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn clients_spread_over_three_instances_meet_exactly_once_and_relay_each_way() {
    let nats = Nats::start();
    let instances = [
        Instance::start(&nats, "a", &[]),
        Instance::start(&nats, "b", &[]),
        Instance::start(&nats, "c", &[]),
    ];
    // Six clients join one room at once, two through each instance.
    let joins = (0..6).map(|i| {
        let url = instances[i % 3].url.clone();
        async move { try_join(&url, join_frame("team", &format!("P{i}"))).await }
    });
    let mut clients: Vec<(SignalClient, Welcome)> = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .map(|joined| joined.expect("joins"))
        .collect();
    let ids: HashSet<String> = clients.iter().map(|(_, w)| w.id.clone()).collect();
    assert_eq!(ids.len(), 6, "every id is unique across instances");

    // Each learns of every other exactly once: from its welcome or from a peer-joined.
    for (client, welcome) in &mut clients {
        let mut known: Vec<String> = welcome.peers.iter().map(|p| p.id.clone()).collect();
        while known.len() < 5 {
            match next(client).await {
                ServerFrame::PeerJoined { peer } => known.push(peer.id),
                other => panic!("unexpected {other:?}"),
            }
        }
        silent(client, Duration::from_millis(300)).await;
        let unique: HashSet<&String> = known.iter().collect();
        assert_eq!(
            unique.len(),
            5,
            "{} heard someone twice: {known:?}",
            welcome.id
        );
        assert!(!known.contains(&welcome.id));
    }

    // Relays both ways between clients on different instances, `from` stamped.
    let mut clients = clients.into_iter();
    let (mut a, wa) = clients.next().unwrap();
    let (mut b, wb) = clients.next().unwrap();
    let (mut c, wc) = clients.next().unwrap();
    // The others stay: a client that went would be a peer-left to the rest.
    let _others: Vec<_> = clients.collect();
    relayed(&mut a, &wa.id, &mut b, &wb.id).await;
    relayed(&mut b, &wb.id, &mut a, &wa.id).await;

    // A forged `from` is ignored: the owner stamps the sender's real id.
    c.send(&ClientFrame::Signal {
        to: wb.id.clone(),
        data: json!("hi"),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut b).await,
        ServerFrame::Signal {
            from: wc.id.clone(),
            data: json!("hi")
        }
    );
    let mut raw = tokio_tungstenite::connect_async(instances[2].url.clone())
        .await
        .unwrap()
        .0;
    raw.send(Message::text(
        json!({"type":"join","room":"team","name":"F","version":1}).to_string(),
    ))
    .await
    .unwrap();
    raw.send(Message::text(
        json!({"type":"signal","to":wb.id,"from":wa.id,"data":"forged"}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        match next(&mut b).await {
            ServerFrame::PeerJoined { .. } => continue,
            ServerFrame::Signal { from, data } => {
                assert_eq!(data, json!("forged"));
                assert_ne!(from, wa.id, "the forged sender was believed");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // An unknown peer is refused through any instance.
    a.signal("nobody", json!(1)).await.unwrap();
    loop {
        match next(&mut a).await {
            ServerFrame::PeerJoined { peer } => assert_eq!(peer.name, "F"),
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, ErrorCode::UnknownPeer);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_welcome_names_the_relay_of_the_instance_the_client_reached() {
    let nats = Nats::start();
    let relay_a = common::free_port().to_string();
    let relay_b = common::free_port().to_string();
    let turn = |port: &str| format!("127.0.0.1:{port}");
    let (listen_a, listen_b) = (turn(&relay_a), turn(&relay_b));
    let a = Instance::start_with_relay(&nats, "a", &["--turn-listen", &listen_a]);
    let b = Instance::start_with_relay(&nats, "b", &["--turn-listen", &listen_b]);
    // A room that `a` owns, joined through `b`: the welcome comes from `a`'s registry, and
    // still names `b`'s relay, the one the client can reach.
    let mut kept = Vec::new();
    for i in 0..40 {
        let owned = a.metric("confab_cluster_owned_rooms");
        let (client, welcome) = join(&b, &format!("relay{i}"), "A").await;
        kept.push(client);
        if a.metric("confab_cluster_owned_rooms") > owned {
            let urls: Vec<&String> = welcome.ice_servers.iter().flat_map(|s| &s.urls).collect();
            assert!(
                urls.iter()
                    .any(|u| u.starts_with("turn:") && u.contains(&listen_b)),
                "b's relay in {urls:?}"
            );
            assert!(
                !urls.iter().any(|u| u.contains(&listen_a)),
                "a's relay in {urls:?}"
            );
            return;
        }
    }
    panic!("40 rooms and `a` owns none");
}

#[tokio::test]
async fn behind_haproxy_clients_of_a_killed_instance_come_back_through_the_front() {
    let nats = Nats::start();
    let mut doomed = Instance::start(&nats, "doomed", &[]);
    let stays = Instance::start(&nats, "stays", &[]);
    let front = Front::start(&[&doomed, &stays]);
    // Everyone joins through the one address; round robin spreads them over both.
    let mut pairs = Vec::new();
    for i in 0..6 {
        let room = format!("front{i}");
        let (a, wa) = try_join(&front.url, join_frame(&room, "A")).await.unwrap();
        let (b, wb) = try_join(&front.url, join_frame(&room, "B")).await.unwrap();
        let mut pair = Pair { a, wa, b, wb };
        assert!(matches!(
            next(&mut pair.a).await,
            ServerFrame::PeerJoined { .. }
        ));
        pairs.push(pair);
    }
    doomed.kill();
    sleep(Duration::from_millis(500)).await;

    let mut moved = 0;
    for pair in &mut pairs {
        for (client, welcome) in [(&mut pair.a, &mut pair.wa), (&mut pair.b, &mut pair.wb)] {
            // A socket on the killed instance was reset; one on the other is quiet.
            let dropped = matches!(
                timeout(Duration::from_millis(200), client.recv()).await,
                Ok(Err(_))
            );
            if !dropped {
                continue;
            }
            moved += 1;
            let resume = Join {
                resume: Some(welcome.token.clone()),
                ..join_frame(&welcome.room, "again")
            };
            let (again, back) = timeout(TAKEOVER, async {
                loop {
                    match try_join(&front.url, resume.clone()).await {
                        Ok(joined) => return joined,
                        Err(_) => sleep(Duration::from_millis(200)).await,
                    }
                }
            })
            .await
            .expect("resumed through the front");
            assert_eq!(back.id, welcome.id, "the id is kept");
            *client = again;
            *welcome = back;
        }
    }
    assert!(moved > 0, "round robin put nobody on the killed instance");
    for pair in &mut pairs {
        relayed(&mut pair.a, &pair.wa.id, &mut pair.b, &pair.wb.id).await;
        relayed(&mut pair.b, &pair.wb.id, &mut pair.a, &pair.wa.id).await;
    }
}

#[tokio::test]
async fn passwords_and_room_limits_hold_across_instances() {
    let nats = Nats::start();
    let limit = ["--max-room-peers", "2"];
    let a = Instance::start(&nats, "a", &limit);
    let b = Instance::start(&nats, "b", &limit);
    let c = Instance::start(&nats, "c", &limit);
    let with_password = |name: &str, password: &str| Join {
        password: Some(password.into()),
        ..join_frame("locked", name)
    };
    let (_first, _) = try_join(&a.url, with_password("A", "secret"))
        .await
        .unwrap();
    match try_join(&b.url, with_password("B", "wrong")).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::BadPassword),
        other => panic!("a wrong password was not refused: {other:?}"),
    }
    let (_second, welcome) = try_join(&b.url, with_password("B", "secret"))
        .await
        .unwrap();
    assert_eq!(welcome.peers.len(), 1);
    match try_join(&c.url, with_password("C", "secret")).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::RoomFull),
        other => panic!("a third member of a room of two was let in: {other:?}"),
    }
}

/// Pairs whose two clients are on different instances, in rooms spread over the owners.
struct Pair {
    a: SignalClient,
    wa: Welcome,
    b: SignalClient,
    wb: Welcome,
}

/// Makes pairs until each of `owners` owns at least `each` of their rooms (which server
/// owns a new room is the hash's choice), so that every case a test means is met.
async fn pairs(on_a: &Instance, on_b: &Instance, owners: &[&Instance], each: f64) -> Vec<Pair> {
    let mut out = Vec::new();
    for i in 0.. {
        let owned = owners
            .iter()
            .map(|o| o.metric("confab_cluster_owned_rooms"))
            .fold(f64::INFINITY, f64::min);
        if owned >= each {
            break;
        }
        assert!(
            i < 40,
            "40 rooms and still one server owns fewer than {each}"
        );
        let room = format!("room{i}");
        let (a, wa) = join(on_a, &room, "A").await;
        let (b, wb) = join(on_b, &room, "B").await;
        let mut pair = Pair { a, wa, b, wb };
        match next(&mut pair.a).await {
            ServerFrame::PeerJoined { peer } => assert_eq!(peer.id, pair.wb.id),
            other => panic!("unexpected {other:?}"),
        }
        out.push(pair);
    }
    out
}

#[tokio::test]
async fn a_client_whose_instance_is_killed_resumes_on_another_with_its_id() {
    let nats = Nats::start();
    let mut doomed = Instance::start(&nats, "doomed", &[]);
    let stays = Instance::start(&nats, "stays", &[]);
    // Rooms land on either owner (the hash decides), so both cases are met: the killed
    // instance owned the room, or only held one of its clients.
    let mut pairs = pairs(&doomed, &stays, &[&doomed, &stays], 2.0).await;
    doomed.kill();

    resume_each_on(&stays, &mut pairs).await;
}

#[tokio::test]
async fn an_instance_stalled_past_the_death_timeout_stops_and_its_clients_resume_elsewhere() {
    let nats = Nats::start();
    let mut stalled = Instance::start(&nats, "stalled", &[]);
    let stays = Instance::start(&nats, "stays", &[]);
    let mut pairs = pairs(&stalled, &stays, &[&stalled, &stays], 2.0).await;

    // Stopped (SIGSTOP) for longer than the cluster waits for a silent member: its rooms
    // move. Once it runs again it must not act for them: it stops.
    stalled.signal("STOP");
    sleep(Duration::from_secs(4)).await;
    stalled.signal("CONT");
    let status = timeout(TAKEOVER, async {
        loop {
            if let Some(status) = stalled.process.child.try_wait().unwrap() {
                return status;
            }
            sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the stalled instance stops");
    assert!(!status.success(), "it says why it stopped: {status}");

    resume_each_on(&stays, &mut pairs).await;
}

/// Every A, whose instance is gone, resumes on `stays` and keeps its id; its partner B
/// heard nothing of the move, and they relay both ways.
async fn resume_each_on(stays: &Instance, pairs: &mut [Pair]) {
    for pair in pairs.iter_mut() {
        let resume = Join {
            resume: Some(pair.wa.token.clone()),
            ..join_frame(&pair.wa.room, "A")
        };
        let (a, welcome) = timeout(TAKEOVER, async {
            loop {
                match try_join(&stays.url, resume.clone()).await {
                    Ok(joined) => return joined,
                    Err(e) => {
                        eprintln!("resume not yet: {e}");
                        sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await
        .expect("resumed on the instance that stays");
        assert_eq!(welcome.id, pair.wa.id, "the id is kept");
        assert_eq!(welcome.peers.len(), 1);
        assert_eq!(welcome.peers[0].id, pair.wb.id);
        pair.a = a;
        pair.wa = welcome;
    }
    for pair in pairs.iter_mut() {
        relayed(&mut pair.a, &pair.wa.id, &mut pair.b, &pair.wb.id).await;
        relayed(&mut pair.b, &pair.wb.id, &mut pair.a, &pair.wa.id).await;
        // The one that stayed heard nothing of the move: no peer-left, no peer-joined.
        silent(&mut pair.b, Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_instance_killed_under_load_loses_no_frame_between_clients_that_stay() {
    let nats = Nats::start();
    let grace = ["--resume-grace", "3"];
    let one = Instance::start(&nats, "one", &grace);
    let two = Instance::start(&nats, "two", &grace);
    let mut doomed = Instance::start(&nats, "doomed", &grace);
    let mut pairs = pairs(&one, &two, &[&one, &two, &doomed], 2.0).await;
    // A third member of each room sits on the instance that will die, and some rooms are
    // owned by it.
    let mut thirds = Vec::new();
    for pair in &mut pairs {
        let (c, wc) = join(&doomed, &pair.wa.room, "C").await;
        for client in [&mut pair.a, &mut pair.b] {
            assert!(matches!(next(client).await, ServerFrame::PeerJoined { .. }));
        }
        thirds.push((c, wc));
    }

    // Every A streams numbered signals to its B, 100 per second, while `doomed` dies.
    const FRAMES: u64 = 400;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for pair in pairs {
        let Pair { mut a, b, wb, wa } = pair;
        let to = wb.id.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..FRAMES {
                a.signal(&to, json!({ "n": n })).await.unwrap();
                sleep(Duration::from_millis(10)).await;
            }
            a
        }));
        receivers.push(tokio::spawn(receive_all(b, wa.id, FRAMES)));
    }
    sleep(Duration::from_millis(1000)).await;
    doomed.kill();
    drop(thirds);
    for sender in senders {
        sender.await.unwrap();
    }
    for receiver in receivers {
        let left = receiver.await.unwrap();
        assert_eq!(
            left, 1,
            "the dead instance's member left once, after its grace"
        );
    }
}

/// Reads until every number `0..frames` from `from` has come, in order (a frame taken by
/// an owner that died before answering may come twice), and the third member has left.
/// Returns how many `peer-left` it saw.
async fn receive_all(mut b: SignalClient, from: String, frames: u64) -> usize {
    let mut expected = 0;
    let mut left = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while expected < frames || left == 0 {
        let frame = tokio::time::timeout_at(deadline, b.recv())
            .await
            .unwrap_or_else(|_| panic!("stuck at frame {expected} of {frames}, {left} left"))
            .unwrap();
        match frame {
            ServerFrame::Signal { from: sender, data } => {
                assert_eq!(sender, from);
                let n = data["n"].as_u64().unwrap();
                assert!(n <= expected, "frame {expected} was lost (got {n})");
                if n == expected {
                    expected += 1;
                }
            }
            ServerFrame::PeerLeft { .. } => left += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    silent(&mut b, Duration::from_millis(300)).await;
    left
}

#[tokio::test]
async fn rooms_carry_on_when_nats_restarts() {
    let mut nats = Nats::start();
    let one = Instance::start(&nats, "one", &[]);
    let two = Instance::start(&nats, "two", &[]);
    let mut pairs = pairs(&one, &two, &[&one, &two], 1.0).await;

    nats.restart(Duration::from_millis(500));

    for pair in &mut pairs {
        timeout(
            TAKEOVER,
            relayed(&mut pair.a, &pair.wa.id, &mut pair.b, &pair.wb.id),
        )
        .await
        .expect("relays once NATS is back");
        relayed(&mut pair.b, &pair.wb.id, &mut pair.a, &pair.wa.id).await;
        // A newcomer through either instance is met once by both.
        let (mut c, wc) = join(&one, &pair.wa.room, "C").await;
        assert_eq!(wc.peers.len(), 2);
        for client in [&mut pair.a, &mut pair.b] {
            match next(client).await {
                ServerFrame::PeerJoined { peer } => assert_eq!(peer.id, wc.id),
                other => panic!("unexpected {other:?}"),
            }
            silent(client, Duration::from_millis(100)).await;
        }
        relayed(&mut c, &wc.id, &mut pair.b, &pair.wb.id).await;
    }
}
