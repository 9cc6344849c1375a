//! One Confab peer: the signaling link (with reconnect and resume), a task per remote
//! peer, and chat routing. Commands come in through [`Mesh::send`]; events go out through
//! [`Mesh::next_event`].
//!
//! This file holds the mesh task, its commands and the peers' comings and goings; each
//! other job is an `impl MeshTask` of its own: `link` (joining, the welcome, signals),
//! `reconnect` (when to rejoin, as plain data), `chat` (messages out and resent),
//! `trust` (keys and verification), `history` (exchanging it on a channel), `call`
//! (carrying out call control's actions), `transfers` (files) and `retry` (connections
//! that failed).

mod call;
mod chat;
mod history;
mod link;
mod reconnect;
mod retry;
mod transfers;
mod trust;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use confab_proto::{ChatScope, ServerFrame};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::{
    Command, DeviceEntry, Event, LogLevel, PeerRef, PeerState, PeerSummary, SignalingState, unix_ms,
};
use confab_audio::open::{SinkSpec, SourceSpec};

use crate::call_control::CallControl;
use crate::chat_outbox::ChatOutbox;
use crate::engine::Engine;
use crate::error::ErrorCode;
use crate::history::signed::{AuthorCert, SignedFields};
use crate::identity::Identity;
use crate::peer::{PeerHandle, PeerInput, PeerOutput, PeerSetup};
use crate::store::{self, Store};
use crate::transport::TransportConfig;
use crate::turn_tunnel::TurnTunnels;
use crate::voice::VoicePacket;
use link::{Link, next_link_event, signal_kind};
use transfers::{Described, Transfers};

/// How long a leave waits at most for the connections to close before telling the server
/// (each peer task gives the far end up to 200 ms to see its chat channel close).
const PEERS_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a peer is: its display name, how it connects, and its DTLS identity.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub name: String,
    pub transport: TransportConfig,
    pub identity: Identity,
    /// Accept every offered file into this folder.
    pub auto_accept_files: Option<std::path::PathBuf>,
    /// Where this install keeps its chat history and unfinished transfers; `None` keeps
    /// them in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// Voice input (`None`: none).
    pub audio_in: Option<SourceSpec>,
    /// Voice output (`None`: none).
    pub audio_out: Option<SinkSpec>,
    /// Accept every incoming call (after `call-incoming`).
    pub auto_accept_calls: bool,
}

/// A running peer: the handle that commands it and the events it gives, together.
/// [`Mesh::split`] parts them, for a face whose commands and events live apart.
#[derive(Debug)]
pub struct Mesh {
    handle: MeshHandle,
    events: MeshEvents,
}

/// Commands a running peer; clones command the same peer.
#[derive(Debug, Clone)]
pub struct MeshHandle {
    commands: mpsc::UnboundedSender<Command>,
}

/// A running peer's events, and its end. The peer stops when every [`MeshHandle`] is
/// dropped, as on `quit`.
#[derive(Debug)]
pub struct MeshEvents {
    events: mpsc::UnboundedReceiver<Event>,
    live_peer_tasks: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Mesh {
    /// Starts a peer on the current tokio runtime. It does nothing until `connect`.
    pub fn start(config: MeshConfig) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let live_peer_tasks = Arc::new(AtomicUsize::new(0));
        let (peer_out, peer_out_rx) = mpsc::unbounded_channel();
        let (internal, internal_rx) = mpsc::unbounded_channel();
        let (retries, retries_rx) = mpsc::unbounded_channel();
        let store = open_store(config.data_dir.as_deref(), &event_tx);
        let (voice_in, voice_in_rx) = mpsc::unbounded_channel();
        let (loss_reports, loss_reports_rx) = mpsc::unbounded_channel();
        let engine = start_engine(&config, voice_in_rx, &event_tx, loss_reports);
        let own_key = config.identity.fingerprint().to_owned();
        let mut task = MeshTask {
            engine,
            voice_in,
            calls: CallControl::new(config.auto_accept_calls),
            store,
            auto_accept_files: config.auto_accept_files,
            internal,
            retries,
            transfers: Transfers::default(),
            name: config.name,
            configured: Arc::new(config.transport.clone()),
            transport: Arc::new(config.transport),
            tunnels: Arc::default(),
            identity: Arc::new(config.identity),
            events: event_tx,
            peer_out,
            live_peer_tasks: live_peer_tasks.clone(),
            session: None,
            link: Link::new(),
            peers: BTreeMap::new(),
            outbox: ChatOutbox::new(own_key),
            held_signals: VecDeque::new(),
        };
        task.open_tunnels();
        task.report_unsupported(None);
        task.check_turn_credentials(None);
        let task = tokio::spawn(task.run(
            command_rx,
            peer_out_rx,
            internal_rx,
            retries_rx,
            loss_reports_rx,
        ));
        Self {
            handle: MeshHandle { commands },
            events: MeshEvents {
                events,
                live_peer_tasks,
                task,
            },
        }
    }

    /// The handle and the events, apart.
    pub fn split(self) -> (MeshHandle, MeshEvents) {
        (self.handle, self.events)
    }

    /// Queues a command. Returns false once the peer has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.handle.send(command)
    }

    /// The next event; `None` once the peer has stopped (after `quit`).
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.next_event().await
    }

    /// Peer tasks still running, closing ones included: for leak checks.
    pub fn live_peer_tasks(&self) -> usize {
        self.events.live_peer_tasks()
    }

    /// Waits until the peer has stopped; returns how many peer tasks were still running
    /// then (zero unless something leaked).
    pub async fn stopped(self) -> usize {
        self.events.stopped().await
    }
}

impl MeshHandle {
    /// Queues a command. Returns false once the peer has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }
}

impl MeshEvents {
    /// The next event; `None` once the peer has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Peer tasks still running, closing ones included: for leak checks.
    pub fn live_peer_tasks(&self) -> usize {
        self.live_peer_tasks.load(Relaxed)
    }

    /// Waits until the peer has stopped; returns how many peer tasks were still running
    /// then (zero unless something leaked).
    pub async fn stopped(self) -> usize {
        let _ = self.task.await;
        self.live_peer_tasks.load(Relaxed)
    }
}

/// The room this peer is in, or is trying to get back into.
#[derive(Debug)]
struct Session {
    server: String,
    room: String,
    password: Option<String>,
    id: Option<String>,
    token: Option<String>,
}

#[derive(Debug)]
struct RemotePeer {
    name: String,
    /// The server announced it gone (its connection may still be up).
    left_room: bool,
    state: PeerState,
    handle: Option<PeerHandle>,
    /// Its DTLS fingerprint, once its description arrived: who it is across ids and runs.
    fingerprint: Option<String>,
    /// Connections to it that failed since one was last up (retry.rs).
    failures: u32,
    /// Its certificate, from its `hello`: checks the signatures of what it writes.
    cert: Option<AuthorCert>,
    /// The history exchange on its chat channel (history.rs).
    history: Option<history::Exchange>,
}

struct MeshTask {
    name: String,
    engine: Engine,
    /// Where peer tasks send the voice they receive (the engine's mixer).
    voice_in: mpsc::UnboundedSender<VoicePacket>,
    calls: CallControl,
    auto_accept_files: Option<std::path::PathBuf>,
    /// Work the mesh hands off (hashing a file) reports back here.
    internal: mpsc::UnboundedSender<Described>,
    /// Peers whose retry pause is over (retry.rs).
    retries: mpsc::UnboundedSender<String>,
    transfers: Transfers,
    /// The user's own network settings.
    configured: Arc<TransportConfig>,
    /// What new connections use: the user's settings and the servers the last `welcome`
    /// offered.
    transport: Arc<TransportConfig>,
    /// How new connections reach `transport`'s TURN servers over TCP and TLS.
    tunnels: Arc<TurnTunnels>,
    identity: Arc<Identity>,
    events: mpsc::UnboundedSender<Event>,
    peer_out: mpsc::UnboundedSender<(String, PeerOutput)>,
    live_peer_tasks: Arc<AtomicUsize>,
    session: Option<Session>,
    link: Link,
    peers: BTreeMap<String, RemotePeer>,
    store: Store,
    /// Which chat channels are open, and direct messages waiting for one.
    outbox: ChatOutbox,
    /// Signals to peers made while the signaling link was down (or that its dead socket
    /// took): sent once the link is back under the same id. An ICE restart happens just
    /// when a network changes, which is when the link drops too; its offer must not be
    /// lost to the reconnect.
    held_signals: VecDeque<(String, serde_json::Value)>,
}

impl MeshTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut peer_out: mpsc::UnboundedReceiver<(String, PeerOutput)>,
        mut internal: mpsc::UnboundedReceiver<Described>,
        mut retries: mpsc::UnboundedReceiver<String>,
        mut loss_reports: mpsc::UnboundedReceiver<(String, u8)>,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Quit) | None => break,
                    Some(command) => self.on_command(command).await,
                },
                Some((peer, output)) = peer_out.recv() => self.on_peer_output(peer, output).await,
                Some(described) = internal.recv() => self.offer_described(described),
                Some(peer) = retries.recv() => self.on_retry_due(peer),
                Some((peer, percent)) = loss_reports.recv() => {
                    self.report_voice_loss(&peer, percent);
                }
                event = next_link_event(&mut self.link) => self.on_link_event(event).await,
            }
        }
        // Sound stops first: a recording is complete on exit and ends where the call did,
        // not after the leave (up to a second waiting for the server), which it would
        // otherwise fill with silence.
        self.engine.stop().await;
        self.leave().await;
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn log(&self, level: LogLevel, msg: impl Into<String>, peer: Option<&str>) {
        self.emit(Event::Log {
            level,
            msg: msg.into(),
            peer: peer.map(str::to_owned),
            ts: unix_ms(),
        });
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>, peer: Option<&str>) {
        let message = message.into();
        self.log(LogLevel::Error, format!("{code}: {message}"), peer);
        self.emit(Event::error(code, message, peer));
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect {
                server,
                room,
                name,
                password,
            } => {
                if !self.link.reconnect.is_idle() {
                    return self.error(
                        ErrorCode::AlreadyConnected,
                        "leave or disconnect first",
                        None,
                    );
                }
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.room != room || s.server != server)
                {
                    self.drop_all_peers();
                }
                self.name = name;
                self.session = Some(Session {
                    server,
                    room,
                    password,
                    id: None,
                    token: None,
                });
                self.start_joining();
            }
            Command::Disconnect => {
                if let Some(client) = self.link.take_down() {
                    // A clean close; the peer connections do not depend on it.
                    client.close().await;
                }
                self.emit_signaling(SignalingState::Disconnected);
            }
            Command::Leave => self.leave().await,
            Command::Peers => self.emit(Event::Peers {
                peers: self
                    .peers
                    .iter()
                    .map(|(id, p)| PeerSummary {
                        id: id.clone(),
                        name: p.name.clone(),
                        state: p.state,
                    })
                    .collect(),
            }),
            Command::Chat { text, to, to_key } => self.chat(text, to, to_key),
            Command::Stats { peer } => {
                let targets: Vec<&String> = match &peer {
                    Some(id) if !self.peers.contains_key(id) => {
                        return self.error(
                            ErrorCode::UnknownPeer,
                            format!("no peer {id}"),
                            Some(id),
                        );
                    }
                    Some(id) => vec![id],
                    None => self.peers.keys().collect(),
                };
                for id in targets {
                    if let Some(handle) = self.peers.get(id).and_then(|p| p.handle.as_ref()) {
                        let _ = handle.input.send(PeerInput::Stats);
                    }
                }
            }
            Command::SafetyCode { peer } => {
                match self.peers.get(&peer).and_then(|p| p.handle.as_ref()) {
                    Some(handle) => {
                        let _ = handle.input.send(PeerInput::SafetyCode);
                    }
                    None => self.error(
                        ErrorCode::UnknownPeer,
                        format!("no connection to {peer}"),
                        Some(&peer),
                    ),
                }
            }
            Command::Renegotiate { peer } => {
                match self.peers.get(&peer).and_then(|p| p.handle.as_ref()) {
                    Some(handle) => {
                        let _ = handle.input.send(PeerInput::Renegotiate);
                    }
                    None => self.error(
                        ErrorCode::UnknownPeer,
                        format!("no connection to {peer}"),
                        Some(&peer),
                    ),
                }
            }
            Command::SendFile { to, path } => self.send_file(to, path),
            Command::Verify { peer } => self.verify(&peer),
            Command::Call { peers } => self.start_call(peers),
            Command::AcceptCall { call } => self.accept_call(call),
            Command::DeclineCall { call } => self.decline_call(call),
            Command::Hangup => self.hang_up(),
            Command::Mute { muted } => self.mute(muted),
            Command::History {
                peer,
                room,
                key,
                limit,
            } => self.history(peer, room, key, limit),
            Command::Contacts => {
                if let Some(contacts) = self.report_store(self.store.contacts()) {
                    self.emit(Event::Contacts { contacts });
                }
            }
            Command::AcceptFile { file, dir } => self.accept_file(file, dir.into()),
            Command::RejectFile { file } => self.reject_file(file),
            Command::Devices => self.list_devices(),
            Command::SetAudio {
                input,
                output,
                noise_suppression,
                echo_cancellation,
            } => {
                // A spec that names nothing leaves the device in use as it is.
                match input.map(|spec| spec.parse::<SourceSpec>()) {
                    Some(Ok(spec)) => self.engine.set_input(spec),
                    Some(Err(e)) => self.error(ErrorCode::AudioIn, e.to_string(), None),
                    None => {}
                }
                match output.map(|spec| spec.parse::<SinkSpec>()) {
                    Some(Ok(spec)) => self.engine.set_output(spec),
                    Some(Err(e)) => self.error(ErrorCode::AudioOut, e.to_string(), None),
                    None => {}
                }
                if let Some(on) = noise_suppression {
                    self.engine.set_noise_suppression(on);
                }
                if let Some(on) = echo_cancellation {
                    self.engine.set_echo_cancellation(on);
                }
            }
            Command::MicTest { on } => self.engine.set_mic_test(on),
            Command::Volume { peer, volume } => {
                if volume.is_finite() {
                    self.engine.set_volume(&peer, volume);
                } else {
                    self.error(
                        ErrorCode::BadCommand,
                        "a volume is a number from 0 to 2",
                        Some(&peer),
                    );
                }
            }
            Command::Quit => {}
        }
    }

    /// Answers with a `devices` event, asking the sound system on a blocking thread.
    fn list_devices(&self) {
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let entry = |d: confab_audio::device::DeviceInfo| DeviceEntry {
                name: d.name,
                default: d.default,
                id: d.id,
            };
            let event = match confab_audio::device::list() {
                Ok(list) => Event::Devices {
                    inputs: list.inputs.into_iter().map(entry).collect(),
                    outputs: list.outputs.into_iter().map(entry).collect(),
                },
                Err(e) => Event::error(ErrorCode::AudioDevices, e.to_string(), None),
            };
            let _ = events.send(event);
        });
    }

    fn add_peer(&mut self, id: String, name: String) {
        self.emit(Event::PeerJoined {
            peer: PeerRef {
                id: id.clone(),
                name: name.clone(),
            },
        });
        self.peers.insert(
            id,
            RemotePeer {
                name,
                left_room: false,
                state: PeerState::New,
                handle: None,
                fingerprint: None,
                failures: 0,
                cert: None,
                history: None,
            },
        );
    }

    /// Starts the task for a peer's connection; the newcomer creates the chat channel.
    fn connect_peer(&mut self, id: &str, newcomer: bool) {
        let Some(local_id) = self.session.as_ref().and_then(|s| s.id.clone()) else {
            return;
        };
        let setup = PeerSetup {
            local_id,
            local_name: self.name.clone(),
            remote_id: id.to_owned(),
            create_chat: newcomer,
            transport: self.transport.clone(),
            tunnels: self.tunnels.clone(),
            identity: self.identity.clone(),
            out: self.peer_out.clone(),
            voice_in: self.voice_in.clone(),
        };
        let live = self.live_peer_tasks.clone();
        let handle = PeerHandle::spawn(setup, live);
        if let Some(peer) = self.peers.get_mut(id) {
            peer.handle = Some(handle);
        }
        self.outbox.closed(id);
    }

    fn on_server_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::PeerJoined { peer } => {
                self.log(
                    LogLevel::Info,
                    format!("{} ({}) joined", peer.id, peer.name),
                    Some(&peer.id),
                );
                // The newcomer offers; we wait for it.
                self.add_peer(peer.id, peer.name);
            }
            ServerFrame::PeerLeft { id } => self.on_peer_left(id),
            ServerFrame::Signal { from, data } => {
                self.log(
                    LogLevel::Debug,
                    format!("signal from {from}: {}", signal_kind(&data)),
                    Some(&from),
                );
                if !self.peers.contains_key(&from) {
                    self.add_peer(from.clone(), String::new());
                }
                if self.peers.get(&from).is_some_and(|p| p.handle.is_none()) {
                    self.connect_peer(&from, false);
                }
                if let Some(handle) = self.peers.get(&from).and_then(|p| p.handle.as_ref()) {
                    let _ = handle.input.send(PeerInput::Signal(data));
                }
            }
            ServerFrame::Error { code, message } => self.error(code.into(), message, None),
            ServerFrame::Peers { .. } | ServerFrame::Welcome { .. } => {}
        }
    }

    /// The server says a peer left. A connection that is up is kept: the server may only
    /// have lost the peer's signaling socket, and a peer that really left closes it itself.
    fn on_peer_left(&mut self, id: String) {
        self.leave_call_of(&id);
        self.log(LogLevel::Info, format!("{id} left the room"), Some(&id));
        self.emit(Event::PeerLeft { id: id.clone() });
        let chat_open = self.outbox.is_open(&id);
        match self.peers.get_mut(&id) {
            Some(peer) if peer.state == PeerState::Connected && chat_open => {
                peer.left_room = true;
            }
            _ => self.remove_peer(&id),
        }
    }

    /// Forgets a peer: gone from the room and from the mesh.
    fn remove_peer(&mut self, id: &str) {
        self.peers.remove(id);
        self.outbox.forget(id);
    }

    fn drop_all_peers(&mut self) {
        for (id, peer) in std::mem::take(&mut self.peers) {
            self.outbox.forget(&id);
            if !peer.left_room {
                self.emit(Event::PeerLeft { id });
            }
        }
    }

    async fn on_peer_output(&mut self, peer: String, output: PeerOutput) {
        match output {
            PeerOutput::Signal(data) => self.send_signal(peer, data).await,
            PeerOutput::Event(event) => {
                if let Event::FileDone { file, ok, .. } = &event {
                    self.forget_transfer(file, *ok);
                }
                if let Event::Ack { id, .. } = &event
                    && let Some(fingerprint) = self.fingerprint(&peer)
                {
                    let acked = self.store.mark_acked(id, &fingerprint);
                    self.report_store(acked);
                }
                if let Event::PeerState { state, .. } = &event
                    && let Some(remote) = self.peers.get_mut(&peer)
                {
                    remote.state = *state;
                }
                let quiet_and_gone = matches!(
                    &event,
                    Event::PeerState {
                        state: PeerState::Disconnected,
                        ..
                    }
                ) && self.peers.get(&peer).is_some_and(|p| p.left_room);
                self.emit(event);
                // Gone from the room and silent: it is not coming back on this connection
                // (one that is only lossy keeps its signaling and stays in the room).
                if quiet_and_gone {
                    self.log(
                        LogLevel::Info,
                        format!("closing {peer}: left and silent"),
                        Some(&peer),
                    );
                    self.remove_peer(&peer);
                }
            }
            PeerOutput::Hello { name, cert } => {
                if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.name = name.clone();
                }
                if let Some(cert) = cert {
                    self.on_peer_certificate(&peer, &cert);
                }
                self.check_trust(&peer, &name);
            }
            PeerOutput::History { message, bytes } => self.on_history(&peer, message, bytes),
            PeerOutput::Identity { fingerprint } => {
                if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.fingerprint = Some(fingerprint);
                }
            }
            PeerOutput::Chat {
                id,
                text,
                ts,
                scope,
                sig,
            } => {
                let (from, name) = match self.peers.get(&peer) {
                    Some(p) => (
                        p.fingerprint.clone().unwrap_or_else(|| peer.clone()),
                        p.name.clone(),
                    ),
                    None => (peer.clone(), String::new()),
                };
                let room = self.room();
                let sig = match scope {
                    ChatScope::Room => {
                        let fields = SignedFields {
                            room: &room,
                            author: &from,
                            id: &id,
                            ts,
                            name: &name,
                            text: &text,
                        };
                        self.checked_live_signature(&peer, &fields, sig)
                    }
                    ChatScope::Direct => None,
                };
                let first = self.store.record_received(&store::Incoming {
                    id: &id,
                    room: &room,
                    from: &from,
                    name: &name,
                    text: &text,
                    ts,
                    scope,
                    sig: sig.as_deref(),
                });
                // A store that fails still lets the message through (shown, maybe twice).
                if self.report_store(first).unwrap_or(true) {
                    self.emit(Event::Chat {
                        from: peer,
                        id,
                        text,
                        ts,
                        scope,
                        author: store::Author { name, key: from },
                        history: false,
                    });
                }
            }
            PeerOutput::ChannelOpen => {
                self.connection_up(&peer);
                self.start_history(&peer);
                self.chat_opened(&peer);
                self.reoffer_unfinished_files(&peer);
            }
            PeerOutput::ChannelClosed => {
                // Gone from the room and now from the mesh: forget it.
                self.outbox.closed(&peer);
                if self.peers.get(&peer).is_some_and(|p| p.left_room) {
                    self.remove_peer(&peer);
                } else if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.history = None;
                }
            }
            PeerOutput::FileOffer {
                file,
                name,
                size,
                sha256,
            } => {
                self.on_file_offer(peer, file, name, size, sha256);
            }
            PeerOutput::FileAccepted { file, offset } => self.on_file_accepted(peer, file, offset),
            PeerOutput::FileRejected { file } => self.on_file_rejected(peer, file),
            PeerOutput::FileReceived { file, ok } => self.on_file_received(peer, file, ok),
            PeerOutput::Call(message) => self.on_call_message(peer, message),
            PeerOutput::VoiceRedundancy(on) => {
                let how = if on {
                    "with copies of earlier frames (RED)"
                } else {
                    "as plain Opus (RED not negotiated yet)"
                };
                self.log(LogLevel::Info, format!("our voice goes {how}"), Some(&peer));
                self.engine.set_redundancy(&peer, on);
            }
            PeerOutput::Gone(state) => {
                self.leave_call_of(&peer);
                if let Some(key) = self.fingerprint(&peer) {
                    self.report_store(self.store.seen(&key));
                }
                self.outbox.closed(&peer);
                if self.peers.get(&peer).is_some_and(|p| p.left_room) {
                    self.remove_peer(&peer);
                } else if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.handle = None;
                    remote.history = None;
                    remote.state = state;
                    if state == PeerState::Failed {
                        self.on_connection_failed(&peer);
                    }
                }
            }
        }
    }

    fn room(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.room.clone())
            .unwrap_or_default()
    }

    /// A store error is reported, never fatal: chat goes on without it.
    fn report_store<T>(&self, result: Result<T, crate::MeshError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.error(ErrorCode::Store, e.to_string(), None);
                None
            }
        }
    }

    fn history(
        &self,
        peer: Option<String>,
        room: Option<String>,
        key: Option<String>,
        limit: Option<usize>,
    ) {
        let conversation = match (&peer, &key) {
            (_, Some(key)) => store::Conversation::Direct(key.clone()),
            (Some(id), None) => match self.fingerprint(id) {
                Some(fingerprint) => store::Conversation::Direct(fingerprint),
                None => {
                    return self.error(
                        ErrorCode::UnknownPeer,
                        format!("no known key for {id}"),
                        Some(id),
                    );
                }
            },
            (None, None) => store::Conversation::Room(room.clone().unwrap_or_else(|| self.room())),
        };
        let own_key = self.identity.fingerprint();
        let found = self.store.history(&conversation, own_key, limit);
        if let Some(messages) = self.report_store(found) {
            self.emit(Event::History {
                peer,
                room,
                key,
                messages,
            });
        }
    }

    async fn leave(&mut self) {
        self.held_signals.clear();
        self.drop_all_peers();
        // The peers hear our connections close before the server tells them we left: one
        // that hears the leave first keeps a connection that still looks up (the server may
        // only have lost our socket) and sends on it what should wait for our return.
        let deadline = Instant::now() + PEERS_CLOSE_WAIT;
        while self.live_peer_tasks.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(client) = self.link.take_down() {
            let _ = client.leave().await;
        }
        if self.session.take().is_some() {
            self.emit(Event::Signaling {
                state: SignalingState::Disconnected,
                id: None,
                room: None,
            });
        }
    }
}

/// The audio engine with the configured input and output; an input or output that cannot
/// be opened is an error event, and none is used instead.
fn start_engine(
    config: &MeshConfig,
    voice_in: mpsc::UnboundedReceiver<VoicePacket>,
    events: &mpsc::UnboundedSender<Event>,
    loss_reports: mpsc::UnboundedSender<(String, u8)>,
) -> Engine {
    Engine::start(
        config.audio_in.clone().unwrap_or(SourceSpec::None),
        config.audio_out.clone().unwrap_or(SinkSpec::None),
        voice_in,
        events.clone(),
        loss_reports,
    )
}

/// The install's store, or one in memory (with an error event) when it cannot be opened.
fn open_store(dir: Option<&std::path::Path>, events: &mpsc::UnboundedSender<Event>) -> Store {
    let opened = match dir {
        Some(dir) => Store::open_in(dir),
        None => Store::in_memory(),
    };
    match opened {
        Ok(store) => store,
        Err(e) => {
            let _ = events.send(Event::error(
                ErrorCode::Store,
                format!("{e}; history is kept in memory only"),
                None,
            ));
            // An in-memory SQLite database only fails to open without memory.
            Store::in_memory().unwrap_or_else(|_| std::process::abort())
        }
    }
}

/// A random UUID (version 4) for a chat message.
fn new_message_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_look_like_uuids_and_differ() {
        let a = new_message_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_message_id());
    }
}
