//! One Confab peer: the signaling link (with reconnect and resume), a task per remote
//! peer, and chat routing. Commands come in through [`Mesh::send`]; events go out through
//! [`Mesh::next_event`].

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use confab_proto::peer::MAX_CHAT_TEXT_BYTES;
use confab_proto::{ChatScope, Join, PROTOCOL_VERSION, PeerMessage, ServerFrame};
use confab_signal::{ClientError, ClientOptions, SignalClient, Welcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::{
    Command, DeviceEntry, Event, LogLevel, PeerRef, PeerState, PeerSummary, SignalingState,
    TrustStatus, unix_ms,
};
use crate::engine::Engine;
use crate::error::ErrorCode;
use crate::history::signed::{AuthorCert, SignedFields};
use crate::identity::Identity;
use crate::peer::{PeerHandle, PeerInput, PeerOutput, PeerSetup};
use crate::store::{self, Store};
use crate::transport::TransportConfig;
use crate::turn_check;
use crate::turn_tunnel::TurnTunnels;
use crate::voice::VoicePacket;

mod call;
mod history;
mod reconnect;
mod retry;
mod transfers;
use crate::call_control::CallControl;
use reconnect::{AfterFailure, Reconnect};
use transfers::{Described, Transfers};

/// Signals held while the link is down, at most (the oldest go first): a restart's offer
/// and its candidates for a full mesh are a few dozen.
const MAX_HELD_SIGNALS: usize = 256;

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
    /// Voice input: `default`, `device:NAME`, `none`, `sine:HZ` or `wav:PATH` (`None`:
    /// none).
    pub audio_in: Option<String>,
    /// Voice output: `default`, `device:NAME`, `none` or `wav:PATH` (`None`: none).
    pub audio_out: Option<String>,
    /// Accept every incoming call (after `call-incoming`).
    pub auto_accept_calls: bool,
}

/// A running peer.
#[derive(Debug)]
pub struct Mesh {
    commands: mpsc::UnboundedSender<Command>,
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
            link: Link {
                io: LinkIo::None,
                reconnect: Reconnect::new(),
            },
            peers: BTreeMap::new(),
            waiting: Vec::new(),
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
            commands,
            events,
            live_peer_tasks,
            task,
        }
    }

    /// Queues a command. Returns false once the peer has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// The next event; `None` once the peer has stopped (after `quit`).
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

type Joined = Result<(Box<SignalClient>, Welcome), ClientError>;
type Joining = JoinHandle<Joined>;

/// The signaling connection: its sockets and tasks, and when to try again
/// (`reconnect.rs`).
#[derive(Debug)]
struct Link {
    io: LinkIo,
    reconnect: Reconnect,
}

#[derive(Debug)]
enum LinkIo {
    None,
    Joining(Joining),
    Up(Box<SignalClient>),
}

impl Link {
    /// Stops whatever the link does; returns the client if it was up.
    fn take_down(&mut self) -> Option<Box<SignalClient>> {
        self.reconnect.stop();
        match std::mem::replace(&mut self.io, LinkIo::None) {
            LinkIo::Up(client) => Some(client),
            LinkIo::Joining(joining) => {
                joining.abort();
                None
            }
            LinkIo::None => None,
        }
    }
}

enum LinkEvent {
    Joined(Joined),
    Frame(Result<ServerFrame, ClientError>),
    RetryDue,
}

#[derive(Debug)]
struct RemotePeer {
    name: String,
    /// The server announced it gone (its connection may still be up).
    left_room: bool,
    state: PeerState,
    handle: Option<PeerHandle>,
    chat_open: bool,
    /// Its DTLS fingerprint, once its description arrived: who it is across ids and runs.
    fingerprint: Option<String>,
    /// Connections to it that failed since one was last up (retry.rs).
    failures: u32,
    /// Its certificate, from its `hello`: checks the signatures of what it writes.
    cert: Option<AuthorCert>,
    /// The history exchange on its chat channel (history.rs).
    history: Option<history::Exchange>,
}

/// A chat message that found no open channel yet.
#[derive(Debug)]
/// A direct message to a present peer whose key is not known yet (so the store cannot
/// name its reader): it waits for that peer's channel.
struct WaitingChat {
    id: String,
    to: String,
    json: String,
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
    waiting: Vec<WaitingChat>,
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
        // Let the peer tasks finish closing their connections.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.live_peer_tasks.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
                if let Some(input) = input {
                    self.engine.set_input(input);
                }
                if let Some(output) = output {
                    self.engine.set_output(output);
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

    fn emit_signaling(&self, state: SignalingState) {
        let session = self.session.as_ref();
        self.emit(Event::Signaling {
            state,
            id: session.and_then(|s| s.id.clone()),
            room: session.map(|s| s.room.clone()),
        });
    }

    /// Connects (or reconnects, with the resume token) on a task of its own, so that
    /// chat and peers go on while the server is slow or away.
    fn start_joining(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        let join = Join {
            room: session.room.clone(),
            name: self.name.clone(),
            version: PROTOCOL_VERSION,
            password: session.password.clone(),
            resume: session.token.clone(),
        };
        let server = session.server.clone();
        self.log(
            LogLevel::Info,
            format!("joining {} on {server}", join.room),
            None,
        );
        let joining = tokio::spawn(async move {
            SignalClient::join(&server, &ClientOptions::default(), join)
                .await
                .map(|(client, welcome)| (Box::new(client), welcome))
        });
        self.emit_signaling(if session.token.is_some() {
            SignalingState::Reconnecting
        } else {
            SignalingState::Connecting
        });
        self.link.io = LinkIo::Joining(joining);
        self.link.reconnect.joining();
    }

    async fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Joined(Ok((client, welcome))) => {
                self.link.io = LinkIo::Up(client);
                self.link.reconnect.joined();
                self.on_welcome(welcome);
                self.send_held_signals().await;
            }
            LinkEvent::Joined(Err(e)) => {
                self.link.io = LinkIo::None;
                let rejoining = self.session.as_ref().is_some_and(|s| s.token.is_some());
                let refused = matches!(e, ClientError::Refused { .. });
                let after = self.link.reconnect.join_failed(
                    Instant::now(),
                    refused,
                    rejoining,
                    rand::random(),
                );
                match (after, e) {
                    (AfterFailure::RetryIn(delay), e) => {
                        self.log(LogLevel::Warn, format!("{e}; retrying in {delay:?}"), None);
                    }
                    (AfterFailure::GiveUp, ClientError::Refused { code, message }) => {
                        self.error(code.into(), message, None);
                        self.emit_signaling(SignalingState::Disconnected);
                    }
                    (AfterFailure::GiveUp, e) => {
                        self.error(ErrorCode::ServerUnreachable, e.to_string(), None);
                        self.emit_signaling(SignalingState::Disconnected);
                    }
                }
            }
            LinkEvent::Frame(Ok(frame)) => self.on_server_frame(frame),
            LinkEvent::Frame(Err(e)) => {
                self.log(LogLevel::Warn, format!("signaling lost: {e}"), None);
                self.link.io = LinkIo::None;
                self.link.reconnect.lost(Instant::now());
                self.emit_signaling(SignalingState::Reconnecting);
            }
            LinkEvent::RetryDue => {
                if self.link.reconnect.handle_timeout(Instant::now()) {
                    self.start_joining();
                }
            }
        }
    }

    fn on_welcome(&mut self, welcome: Welcome) {
        if self.session.is_none() {
            return;
        }
        // Connections made from now on use the servers this welcome offers.
        let transport = self.configured.with_offered(&welcome.ice_servers);
        if transport != *self.transport {
            let before = std::mem::replace(&mut self.transport, Arc::new(transport));
            self.open_tunnels();
            self.report_unsupported(Some(&before));
            self.check_turn_credentials(Some(&before));
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let resumed = session.id.as_deref() == Some(welcome.id.as_str());
        session.id = Some(welcome.id.clone());
        session.token = Some(welcome.token);
        self.log(
            LogLevel::Info,
            format!(
                "{} {} as {} with {} peers",
                if resumed { "resumed" } else { "joined" },
                welcome.room,
                welcome.id,
                welcome.peers.len()
            ),
            None,
        );
        self.emit_signaling(SignalingState::Connected);
        if resumed {
            // Peers that left while we were away were not announced to us.
            let present: HashSet<&str> = welcome.peers.iter().map(|p| p.id.as_str()).collect();
            let gone: Vec<String> = self
                .peers
                .keys()
                .filter(|id| !present.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                self.on_peer_left(id);
            }
            for peer in welcome.peers {
                if !self.peers.contains_key(&peer.id) {
                    self.add_peer(peer.id, peer.name);
                }
            }
            return;
        }
        // A fresh id: whatever we had belongs to our old one.
        self.held_signals.clear();
        self.drop_all_peers();
        for peer in welcome.peers {
            self.add_peer(peer.id.clone(), peer.name);
            self.connect_peer(&peer.id, true);
        }
    }

    /// Tunnels for the current transport's TURN servers over TCP and TLS, keeping those
    /// already open. One that cannot open leaves its server out, with a warning.
    fn open_tunnels(&mut self) {
        let (tunnels, failed) = self.tunnels.for_servers(&self.transport.ice_servers);
        self.tunnels = Arc::new(tunnels);
        for (url, why) in failed {
            self.log(LogLevel::Warn, format!("{url}: not used: {why}"), None);
        }
    }

    /// An `ice-server-unsupported` error for each server of the current transport that
    /// this peer cannot use and `before` did not have (already reported).
    fn report_unsupported(&self, before: Option<&TransportConfig>) {
        for (server, why) in self.transport.unsupported() {
            if before.is_some_and(|b| b.ice_servers.contains(server)) {
                continue;
            }
            self.emit(Event::error(
                ErrorCode::IceServerUnsupported,
                format!("{}: {why}", server.url),
                None,
            ));
        }
    }

    /// Tries the credentials of each TURN server new since `before`: a refusal is a
    /// `turn-auth-failed` error (the WebRTC stack would only log it and go on without it).
    fn check_turn_credentials(&self, before: Option<&TransportConfig>) {
        let local = self
            .transport
            .udp_addrs
            .first()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |addr| addr.ip());
        for server in &self.transport.ice_servers {
            let is_turn = server.url.to_ascii_lowercase().starts_with("turn:");
            if !is_turn
                || server.unsupported().is_some()
                || before.is_some_and(|b| b.ice_servers.contains(server))
            {
                continue;
            }
            // A server over TCP or TLS is tried through its tunnel, as connections reach it.
            let tried = self.tunnels.reached_through(server);
            let (url, events) = (server.url.clone(), self.events.clone());
            tokio::spawn(async move {
                let event = match turn_check::try_credentials(&tried, local).await {
                    turn_check::Verdict::Refused(why) => Event::error(
                        ErrorCode::TurnAuthFailed,
                        format!("{url} refused the credentials: {why}"),
                        None,
                    ),
                    turn_check::Verdict::Accepted => Event::Log {
                        level: LogLevel::Info,
                        msg: format!("{url} accepted the credentials"),
                        peer: None,
                        ts: unix_ms(),
                    },
                    turn_check::Verdict::Unknown(why) => Event::Log {
                        level: LogLevel::Warn,
                        msg: format!("{url}: credentials not checked: {why}"),
                        peer: None,
                        ts: unix_ms(),
                    },
                };
                let _ = events.send(event);
            });
        }
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
                chat_open: false,
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
            peer.chat_open = false;
        }
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
        match self.peers.get_mut(&id) {
            Some(peer) if peer.state == PeerState::Connected && peer.chat_open => {
                peer.left_room = true;
            }
            _ => {
                self.peers.remove(&id);
            }
        }
    }

    fn drop_all_peers(&mut self) {
        for (id, peer) in std::mem::take(&mut self.peers) {
            if !peer.left_room {
                self.emit(Event::PeerLeft { id });
            }
        }
    }

    /// Sends a signal to `peer`, or holds it while the link is down (see `held_signals`).
    async fn send_signal(&mut self, peer: String, data: serde_json::Value) {
        let LinkIo::Up(client) = &mut self.link.io else {
            return self.hold_signal(peer, data);
        };
        let kind = signal_kind(&data);
        match client.signal(&peer, data.clone()).await {
            Ok(()) => self.log(
                LogLevel::Debug,
                format!("signal to {peer}: {kind}"),
                Some(&peer),
            ),
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    format!("signal to {peer} not sent ({e}): held for the reconnect"),
                    Some(&peer),
                );
                self.hold_signal(peer, data);
            }
        }
    }

    fn hold_signal(&mut self, peer: String, data: serde_json::Value) {
        if self.session.is_none() {
            return;
        }
        if self.held_signals.len() == MAX_HELD_SIGNALS {
            self.held_signals.pop_front();
        }
        self.held_signals.push_back((peer, data));
    }

    /// The held signals, in order, to the peers still here.
    async fn send_held_signals(&mut self) {
        let held = std::mem::take(&mut self.held_signals);
        if !held.is_empty() {
            self.log(
                LogLevel::Info,
                format!(
                    "sending {} signals held while signaling was down",
                    held.len()
                ),
                None,
            );
        }
        for (peer, data) in held {
            if self.peers.contains_key(&peer) {
                self.send_signal(peer, data).await;
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
                    self.peers.remove(&peer);
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
                if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.chat_open = true;
                }
                self.connection_up(&peer);
                self.start_history(&peer);
                self.flush_waiting(&peer);
                self.resend_unacked(&peer);
                self.reoffer_unfinished_files(&peer);
            }
            PeerOutput::ChannelClosed => {
                // Gone from the room and now from the mesh: forget it.
                if self.peers.get(&peer).is_some_and(|p| p.left_room) {
                    self.peers.remove(&peer);
                } else if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.chat_open = false;
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
            PeerOutput::Gone(state) => {
                self.leave_call_of(&peer);
                if let Some(key) = self.fingerprint(&peer) {
                    self.report_store(self.store.seen(&key));
                }
                if self.peers.get(&peer).is_some_and(|p| p.left_room) {
                    self.peers.remove(&peer);
                } else if let Some(remote) = self.peers.get_mut(&peer) {
                    remote.handle = None;
                    remote.chat_open = false;
                    remote.history = None;
                    remote.state = state;
                    if state == PeerState::Failed {
                        self.on_connection_failed(&peer);
                    }
                }
            }
        }
    }

    fn chat(&mut self, text: String, to: Option<String>, to_key: Option<String>) {
        if text.len() > MAX_CHAT_TEXT_BYTES {
            return self.error(
                ErrorCode::TooLarge,
                format!("a message holds at most {MAX_CHAT_TEXT_BYTES} bytes"),
                None,
            );
        }
        if let Some(peer) = &to
            && !self.peers.contains_key(peer)
        {
            return self.error(
                ErrorCode::UnknownPeer,
                format!("no peer {peer}"),
                Some(peer),
            );
        }
        let room = self.room();
        // Its readers, by key: a direct message's one, or everyone present or ever met in
        // the room. Each gets it when its channel next opens, until it acknowledges it.
        let (direct_to, readers): (Option<String>, Vec<String>) = match (&to, to_key) {
            (_, Some(key)) => (Some(key.clone()), vec![key]),
            (Some(peer), None) => {
                let key = self.fingerprint(peer);
                (key.clone(), key.into_iter().collect())
            }
            (None, None) => {
                let own = self.identity.fingerprint();
                let mut readers: Vec<String> = self
                    .peers
                    .values()
                    .filter_map(|p| p.fingerprint.clone())
                    .collect();
                let members = self.store.members(&room);
                readers.extend(self.report_store(members).unwrap_or_default());
                readers.retain(|key| key != own);
                readers.sort();
                readers.dedup();
                (None, readers)
            }
        };
        let id = new_message_id();
        let ts = unix_ms();
        let for_room = direct_to.is_none() && to.is_none();
        // Room messages are signed, so others can pass them on to latecomers.
        let sig = for_room
            .then(|| self.sign_room_message(&id, ts, &text))
            .flatten();
        let message = PeerMessage::Chat {
            id: id.clone(),
            text: text.clone(),
            ts,
            scope: if for_room {
                ChatScope::Room
            } else {
                ChatScope::Direct
            },
            sig: sig.clone(),
        };
        let json = message.to_json();
        let recorded = self.store.record_sent(
            &store::Outgoing {
                id: &id,
                room: &room,
                direct_to: direct_to.as_deref(),
                for_room,
                name: &self.name,
                text: &text,
                ts,
                json: &json,
                sig: sig.as_deref(),
            },
            &readers,
        );
        self.report_store(recorded);
        let sent_to = match (&to, &direct_to) {
            // A peer whose key is not known yet: it waits in memory for that peer.
            (Some(peer), None) => {
                let sent_to = self.send_chat(&id, &json, Some(peer));
                if sent_to.is_empty() {
                    self.waiting.push(WaitingChat {
                        id: id.clone(),
                        to: peer.clone(),
                        json,
                    });
                }
                sent_to
            }
            (_, Some(key)) => {
                let peer = self.peer_with_key(key);
                match peer {
                    Some(peer) => self.send_chat(&id, &json, Some(&peer)),
                    None => Vec::new(),
                }
            }
            (None, None) => self.send_chat(&id, &json, None),
        };
        self.emit(Event::ChatSent { id, to: sent_to });
    }

    /// Sends on the open chat channels `to` names (all of them when `None`), and notes
    /// which readers it reached.
    fn send_chat(&self, id: &str, json: &str, to: Option<&str>) -> Vec<String> {
        let sent_to: Vec<(String, Option<String>)> = self
            .peers
            .iter()
            .filter(|(peer, p)| p.chat_open && to.is_none_or(|to| to == peer.as_str()))
            .filter_map(|(peer, p)| {
                let handle = p.handle.as_ref()?;
                handle.input.send(PeerInput::Send(json.to_owned())).ok()?;
                Some((peer.clone(), p.fingerprint.clone()))
            })
            .collect();
        for key in sent_to.iter().filter_map(|(_, key)| key.as_deref()) {
            self.report_store(self.store.mark_sent(id, key));
        }
        sent_to.into_iter().map(|(peer, _)| peer).collect()
    }

    /// The present peer with this key, if any.
    fn peer_with_key(&self, key: &str) -> Option<String> {
        self.peers
            .iter()
            .find(|(_, p)| p.fingerprint.as_deref() == Some(key))
            .map(|(peer, _)| peer.clone())
    }

    /// A channel opened: what waited for it goes out now.
    fn flush_waiting(&mut self, peer: &str) {
        let waiting = std::mem::take(&mut self.waiting);
        for chat in waiting {
            if chat.to == peer {
                let sent_to = self.send_chat(&chat.id, &chat.json, Some(peer));
                self.emit(Event::ChatSent {
                    id: chat.id,
                    to: sent_to,
                });
            } else {
                self.waiting.push(chat);
            }
        }
    }

    /// Own messages this peer has not acknowledged go out again (same ids: it shows each
    /// once), room messages that waited for anyone included.
    fn resend_unacked(&mut self, peer: &str) {
        let Some(fingerprint) = self.fingerprint(peer) else {
            return;
        };
        let room = self.room();
        self.report_store(self.store.claim_waiting_for_anyone(&room, &fingerprint));
        let pending = self.store.unacked_for(&fingerprint);
        for (id, json) in self.report_store(pending).unwrap_or_default() {
            let sent_to = self.send_chat(&id, &json, Some(peer));
            self.log(LogLevel::Info, format!("resent {id} to {peer}"), Some(peer));
            self.emit(Event::ChatSent { id, to: sent_to });
        }
    }

    fn fingerprint(&self, peer: &str) -> Option<String> {
        self.peers.get(peer).and_then(|p| p.fingerprint.clone())
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

    /// A peer said who it is: a name the user verified must come with the key it had
    /// then, and a name met before with another key is a warning too (trust on first use).
    /// Then it is a contact, and a reader of this room's messages.
    fn check_trust(&self, peer: &str, name: &str) {
        let Some(fingerprint) = self.fingerprint(peer) else {
            return;
        };
        let verified = self
            .report_store(self.store.verified_fingerprint(name))
            .flatten();
        let known_otherwise = self
            .report_store(self.store.name_known_with_other_key(name, &fingerprint))
            .unwrap_or(false);
        let status = match verified {
            Some(verified) if verified == fingerprint => TrustStatus::Verified,
            Some(_) => {
                self.error(
                    ErrorCode::IdentityChanged,
                    format!("{name} was verified with another key: this may not be {name}"),
                    Some(peer),
                );
                TrustStatus::Changed
            }
            None if known_otherwise => {
                self.error(
                    ErrorCode::IdentityChanged,
                    format!("{name} was met before with another key: this may not be {name}"),
                    Some(peer),
                );
                TrustStatus::Changed
            }
            None => TrustStatus::Unverified,
        };
        self.emit(Event::Trust {
            peer: peer.to_owned(),
            name: name.to_owned(),
            fingerprint: fingerprint.clone(),
            status,
        });
        self.report_store(self.store.met(&fingerprint, name, &self.room()));
    }

    fn verify(&mut self, peer: &str) {
        let Some(remote) = self.peers.get(peer) else {
            return self.error(
                ErrorCode::UnknownPeer,
                format!("no peer {peer}"),
                Some(peer),
            );
        };
        let Some(fingerprint) = remote.fingerprint.clone() else {
            return self.error(
                ErrorCode::NotConnected,
                format!("{peer} has no known key yet"),
                Some(peer),
            );
        };
        let name = remote.name.clone();
        if self
            .report_store(self.store.verify(&name, &fingerprint))
            .is_some()
        {
            self.emit(Event::Trust {
                peer: peer.to_owned(),
                name,
                fingerprint,
                status: TrustStatus::Verified,
            });
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

/// Waits for whatever the signaling link does next.
async fn next_link_event(link: &mut Link) -> LinkEvent {
    match &mut link.io {
        LinkIo::Joining(joining) => LinkEvent::Joined(match joining.await {
            Ok(result) => result,
            Err(e) => Err(ClientError::Disconnected(e.to_string())),
        }),
        LinkIo::Up(client) => LinkEvent::Frame(client.recv().await),
        LinkIo::None => match link.reconnect.poll_timeout() {
            Some(due) => {
                tokio::time::sleep_until(due).await;
                LinkEvent::RetryDue
            }
            None => std::future::pending().await,
        },
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
        config.audio_in.clone().unwrap_or_else(|| "none".to_owned()),
        config
            .audio_out
            .clone()
            .unwrap_or_else(|| "none".to_owned()),
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

fn signal_kind(data: &serde_json::Value) -> String {
    match (
        data.get("kind").and_then(|k| k.as_str()),
        data.pointer("/description/type"),
    ) {
        (Some("description"), Some(kind)) => {
            format!("description {}", kind.as_str().unwrap_or("?"))
        }
        (Some("candidate"), _) if data.get("candidate").is_some_and(|c| c.is_null()) => {
            "end of candidates".to_owned()
        }
        (Some(kind), _) => kind.to_owned(),
        (None, _) => "unknown".to_owned(),
    }
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
