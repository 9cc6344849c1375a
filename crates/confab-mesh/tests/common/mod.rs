//! Helpers: a real signaling server and real peers on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_mesh::api::{ChannelState, PeerState};
use confab_mesh::{Command, Event, Identity, Mesh, MeshConfig, TransportConfig};
use confab_signal::{ServerConfig, ServerHandle};

pub const WAIT: Duration = Duration::from_secs(10);
/// How long a whole file may take to arrive. These tests check that files arrive intact,
/// not how fast (mesh-bench measures that): six transfers at once in a debug build on two
/// cores now and then stall a few seconds, and 20 MiB then outlasts [`WAIT`].
pub const TRANSFER_WAIT: Duration = Duration::from_secs(60);

pub async fn server() -> ServerHandle {
    ServerHandle::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::default(),
    )
    .await
    .unwrap()
}

pub fn url(server: &ServerHandle) -> String {
    format!("ws://{}/ws", server.local_addr())
}

/// A peer on loopback only, with mDNS off (the network rule).
pub fn peer(name: &str) -> Mesh {
    Mesh::start(MeshConfig {
        name: name.to_owned(),
        transport: TransportConfig::loopback(),
        identity: Identity::ephemeral().unwrap(),
        auto_accept_files: None,
        data_dir: None,
        audio_in: None,
        audio_out: None,
        auto_accept_calls: false,
    })
}

pub fn connect(mesh: &Mesh, url: &str, room: &str, name: &str) {
    assert!(mesh.send(Command::Connect {
        server: url.to_owned(),
        room: room.to_owned(),
        name: name.to_owned(),
        password: None,
    }));
}

/// Reads events until one matches; panics after [`WAIT`].
pub async fn wait_for(mesh: &mut Mesh, what: &str, matches: impl FnMut(&Event) -> bool) -> Event {
    wait_within(mesh, what, WAIT, matches).await
}

/// Reads events until one matches; panics after `wait`.
pub async fn wait_within(
    mesh: &mut Mesh,
    what: &str,
    wait: Duration,
    mut matches: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + wait;
    // The last events seen, for the failure message: where a wait stalled tells why.
    let mut recent = std::collections::VecDeque::new();
    loop {
        match tokio::time::timeout_at(deadline, mesh.next_event()).await {
            Ok(Some(event)) if matches(&event) => return event,
            Ok(Some(event)) => {
                if recent.len() == 12 {
                    recent.pop_front();
                }
                recent.push_back(event);
            }
            Ok(None) => panic!("the peer stopped while waiting for {what}; last: {recent:#?}"),
            Err(_) => panic!("timed out waiting for {what}; the last events: {recent:#?}"),
        }
    }
}

/// Waits for the own id once signaling is connected.
pub async fn own_id(mesh: &mut Mesh) -> String {
    match wait_for(mesh, "signaling connected", |e| {
        matches!(
            e,
            Event::Signaling {
                state: confab_mesh::api::SignalingState::Connected,
                ..
            }
        )
    })
    .await
    {
        Event::Signaling { id: Some(id), .. } => id,
        other => panic!("{other:?}"),
    }
}

/// Waits until the chat channel to each of `peers` is open.
pub async fn chat_open_with(mesh: &mut Mesh, peers: &[String]) {
    let mut waiting: std::collections::HashSet<String> = peers.iter().cloned().collect();
    while !waiting.is_empty() {
        if let Event::Channel { peer, .. } = wait_for(mesh, "chat channels", |e| {
            matches!(e, Event::Channel { label, state: ChannelState::Open, .. } if label == "chat")
        })
        .await
        {
            waiting.remove(&peer);
        }
    }
}

pub fn is_state(event: &Event, who: &str, wanted: PeerState) -> bool {
    matches!(event, Event::PeerState { peer, state } if peer == who && *state == wanted)
}

/// Two peers in `room`, their chat channel open both ways: (a, a's id, b, b's id).
pub async fn connected_pair(server: &ServerHandle, room: &str) -> (Mesh, String, Mesh, String) {
    let mut a = peer("A");
    connect(&a, &url(server), room, "A");
    let a_id = own_id(&mut a).await;
    let mut b = peer("B");
    connect(&b, &url(server), room, "B");
    let b_id = own_id(&mut b).await;
    chat_open_with(&mut a, std::slice::from_ref(&b_id)).await;
    chat_open_with(&mut b, std::slice::from_ref(&a_id)).await;
    (a, a_id, b, b_id)
}

/// A folder of a test's own, removed when it goes out of scope (also when the test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    /// An empty folder, `confab-KIND-PID-NAME` under the system's temporary folder.
    pub fn new(kind: &str, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("confab-{kind}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh install folder for a peer that keeps its identity and store.
pub fn install(name: &str) -> TempDir {
    TempDir::new("install", name)
}

/// A peer with an install folder (identity and store).
pub fn peer_in(dir: &Path, name: &str) -> Mesh {
    Mesh::start(MeshConfig {
        name: name.to_owned(),
        transport: TransportConfig::loopback(),
        identity: Identity::load_or_create(dir).unwrap(),
        auto_accept_files: None,
        data_dir: Some(dir.to_owned()),
        audio_in: None,
        audio_out: None,
        auto_accept_calls: false,
    })
}

/// Quits and waits until the peer has left.
pub async fn stop(mesh: Mesh) {
    mesh.send(Command::Quit);
    mesh.stopped().await;
}

/// The current room's history, as the `history` command answers it.
pub async fn history(mesh: &mut Mesh) -> Vec<confab_mesh::store::HistoryEntry> {
    mesh.send(Command::History {
        peer: None,
        room: None,
        key: None,
        limit: None,
    });
    match wait_for(mesh, "history", |e| matches!(e, Event::History { .. })).await {
        Event::History { messages, .. } => messages,
        _ => unreachable!(),
    }
}
