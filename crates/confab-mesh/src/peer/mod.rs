//! One remote peer: its peer connection, negotiation, trickle ICE and `chat` channel.
//!
//! A task per peer owns everything about it. The library's callbacks and each data
//! channel's event loop only forward into this task's channels and return at once (a
//! callback that blocks stalls the connection); the task does the work in order.
//!
//! This file holds the task: its state, its loop and its inputs. The rest, each an
//! `impl Peer` of one job:
//! - `bridge`: the library's callbacks and channel events, forwarded into the task;
//! - `negotiate`: perfect negotiation, trickle ICE, restarts, connection states;
//! - `chat`: the `chat` channel and what arrives on it;
//! - `files`: transfers on `file:<id>` channels, both ways;
//! - `media`: our voice track and the peer's;
//! - `stats`: the selected path, reported and logged.

mod bridge;
mod chat;
mod files;
mod media;
mod negotiate;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use confab_proto::{ChatScope, IceCandidate, PeerMessage, SignalData};
use tokio::sync::broadcast;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCIceGatheringState};
use webrtc::rtp_transceiver::RtpSender;

use crate::api::{Event, LogLevel, PeerState, unix_ms};
use crate::error::ErrorCode;
use crate::files::{Incoming, Received};
use crate::identity::Identity;
use crate::negotiation::Negotiation;
use crate::safety::safety_code;
use crate::transport::{TransportConfig, build_peer_connection_through};
use crate::turn_tunnel::TurnTunnels;
use crate::voice::VoicePacket;

use bridge::{Callbacks, ChannelEvent, PcEvent};

/// Messages kept for a chat channel that has not opened yet.
const EARLY_OUT_MAX: usize = 64;

/// The label of the chat channel, created once by the newcomer.
pub(crate) const CHAT_LABEL: &str = "chat";
/// File channels are labelled `file:<id>`.
const FILE_PREFIX: &str = "file:";
/// The app string sent in `hello`.
const APP: &str = concat!("confab/", env!("CARGO_PKG_VERSION"));
/// While a connection is being set up, the library's event loop is woken this often.
/// Its loop sends what it has queued before it handles internal events, so the first
/// packets after the DTLS and SCTP handshakes otherwise wait for the next ICE timer tick
/// (hundreds of milliseconds); a wake-up flushes them at once. Only until the chat
/// channel opens: a connected peer is left quiet.
const SETUP_WAKE: Duration = Duration::from_millis(2);
const SETUP_WAKE_FOR: Duration = Duration::from_secs(5);
/// A connection whose chat channel has not opened by then has failed: the mesh tries
/// again (mesh/retry.rs). Set-ups take well under 5 s even at 20 % loss; without this, a
/// connection stuck in checking would be declared failed only after 30 s of silence.
const SETUP_DEADLINE: Duration = Duration::from_secs(15);
/// How long closing waits for the remote to see the chat channel close.
const CHANNEL_CLOSE_WAIT: Duration = Duration::from_millis(200);
/// How long a dropped peer's task gets to close its connection before it is aborted.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// While an ICE restart's offer goes unanswered, it goes again this often: the network
/// change that set the restart off often takes a signaling socket down too, and whatever
/// the server had written to the dead one is lost.
const RESTART_OFFER_AGAIN: Duration = Duration::from_millis(1500);

/// What the mesh asks of a peer task.
#[derive(Debug)]
pub(crate) enum PeerInput {
    /// `signal.data` relayed from this peer.
    Signal(serde_json::Value),
    /// One JSON message for the chat channel.
    Send(String),
    Stats,
    SafetyCode,
    /// A `file:<id>` channel from this peer is expected, to be received as described.
    ExpectFile {
        file: String,
        incoming: Incoming,
    },
    /// Open `file:<id>` and send `path` from `offset`.
    SendFile {
        file: String,
        path: PathBuf,
        offset: u64,
        size: u64,
    },
    /// Stop a transfer under way, either direction.
    CancelFile {
        file: String,
    },
    /// Offer again (used to test glare: both sides at once).
    Renegotiate,
    /// Send our voice to this peer: the impolite side adds its track at once (and offers);
    /// the polite one adds it before answering the offer that comes.
    StartAudio {
        packets: broadcast::Receiver<Arc<Vec<u8>>>,
    },
    /// Stop sending our voice to this peer.
    StopAudio,
    /// The share of our voice this peer last said it lost, in percent.
    VoiceLoss(u8),
}

/// What a peer task tells the mesh.
#[derive(Debug)]
pub(crate) enum PeerOutput {
    /// `signal.data` to relay to this peer.
    Signal(serde_json::Value),
    Event(Event),
    Hello {
        name: String,
        /// Its certificate, base64 DER, when it sent one.
        cert: Option<String>,
    },
    Chat {
        id: String,
        text: String,
        ts: u64,
        scope: ChatScope,
        sig: Option<String>,
    },
    /// A history reconcile message (mesh/history.rs), with its size on the wire.
    History {
        message: PeerMessage,
        bytes: usize,
    },
    ChannelOpen,
    ChannelClosed,
    /// The peer's DTLS fingerprint, from its first description: who it is.
    Identity {
        fingerprint: String,
    },
    FileOffer {
        file: String,
        name: String,
        size: u64,
        sha256: String,
    },
    FileAccepted {
        file: String,
        offset: u64,
    },
    FileRejected {
        file: String,
    },
    /// The receiver's verdict on a file we sent.
    FileReceived {
        file: String,
        ok: bool,
    },
    /// A call-control message (invite, accept, decline, end, mute).
    Call(PeerMessage),
    /// Whether our voice goes to this peer with copies of earlier frames (RED).
    VoiceRedundancy(bool),
    /// The connection failed or closed: the mesh forgets the peer.
    Gone(PeerState),
}

/// How to set up one peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerSetup {
    pub(crate) local_id: String,
    pub(crate) local_name: String,
    pub(crate) remote_id: String,
    /// The newcomer creates the chat channel, which makes it offer.
    pub(crate) create_chat: bool,
    pub(crate) transport: Arc<TransportConfig>,
    pub(crate) tunnels: Arc<TurnTunnels>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) out: mpsc::UnboundedSender<(String, PeerOutput)>,
    /// Voice packets received from this peer go here, tagged with its id.
    pub(crate) voice_in: mpsc::UnboundedSender<VoicePacket>,
}

/// The mesh's hold on a peer task. Dropping it ends the task, which closes the connection.
#[derive(Debug)]
pub(crate) struct PeerHandle {
    pub(crate) input: mpsc::UnboundedSender<PeerInput>,
    task: tokio::task::JoinHandle<()>,
}

impl PeerHandle {
    /// Starts the task; `live` counts running peer tasks, for leak checks.
    pub(crate) fn spawn(setup: PeerSetup, live: Arc<AtomicUsize>) -> Self {
        let (input, inputs) = mpsc::unbounded_channel();
        live.fetch_add(1, Relaxed);
        let task = tokio::spawn(async move {
            run(setup, inputs).await;
            live.fetch_sub(1, Relaxed);
        });
        Self { input, task }
    }
}

impl Drop for PeerHandle {
    /// The task sees its input close and shuts the connection down itself; this only
    /// makes sure a task stuck in the library cannot outlive its handle for long.
    fn drop(&mut self) {
        let task = self.task.abort_handle();
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_GRACE).await;
            task.abort();
        });
    }
}

struct Peer {
    setup: PeerSetup,
    pc: Arc<dyn PeerConnection>,
    negotiation: Negotiation,
    has_remote_description: bool,
    early_candidates: Vec<RTCIceCandidateInit>,
    /// The remote's signalled candidates, address to type, for `stats`.
    signalled: HashMap<String, String>,
    chat: Option<Arc<dyn DataChannel>>,
    chat_open: bool,
    /// The chat channel has opened at least once: the connection was set up.
    set_up: bool,
    /// While an ICE restart of ours is under way (see `on_ice_state`): when it has failed.
    restart_gives_up: Option<Instant>,
    /// Our last offer, and when it goes again if still unanswered during a restart.
    last_offer: Option<String>,
    offer_again_at: Option<Instant>,
    /// Messages given before the chat channel opened (a call accept to a peer whose channel
    /// is still coming up): sent, in order, once it opens.
    early_out: Vec<String>,
    channel_tx: mpsc::UnboundedSender<ChannelEvent>,
    pollers: JoinSet<()>,
    state: PeerState,
    /// The remote's DTLS fingerprint, from its SDP.
    remote_fingerprint: Option<String>,
    /// Incoming files accepted, waiting for their channel.
    expected_files: HashMap<String, Incoming>,
    /// Transfers under way, both directions.
    transfers: JoinSet<()>,
    transfer_handles: HashMap<String, AbortHandle>,
    /// Our voice packets, while this peer is in our call.
    voice_packets: Option<broadcast::Receiver<Arc<Vec<u8>>>>,
    /// The peer's last offer sent us audio.
    remote_offered_audio: bool,
    /// Our audio track on this connection and the task feeding it.
    voice_sender: Option<(Arc<dyn RtpSender>, AbortHandle)>,
    /// What this peer last reported losing of our voice, for the task feeding our track.
    voice_loss: watch::Sender<Option<u8>>,
    /// Receivers report their outcome here, to be answered on the chat channel.
    received_tx: mpsc::UnboundedSender<(String, Received)>,
}

async fn run(setup: PeerSetup, mut inputs: mpsc::UnboundedReceiver<PeerInput>) {
    let (pc_tx, mut pc_events) = mpsc::unbounded_channel();
    let pc = match build_peer_connection_through(
        &setup.transport,
        &setup.tunnels,
        &setup.identity,
        Arc::new(Callbacks(pc_tx)),
    )
    .await
    {
        Ok(pc) => pc,
        Err(e) => {
            let remote = setup.remote_id.clone();
            let _ = setup.out.send((
                remote.clone(),
                PeerOutput::Event(Event::error(
                    ErrorCode::WebRtc,
                    e.to_string(),
                    Some(&remote),
                )),
            ));
            let _ = setup
                .out
                .send((remote, PeerOutput::Gone(PeerState::Failed)));
            return;
        }
    };
    let (channel_tx, mut channel_events) = mpsc::unbounded_channel();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let mut peer = Peer {
        negotiation: Negotiation::new(&setup.local_id, &setup.remote_id),
        setup,
        pc,
        has_remote_description: false,
        early_candidates: Vec::new(),
        signalled: HashMap::new(),
        chat: None,
        chat_open: false,
        set_up: false,
        restart_gives_up: None,
        last_offer: None,
        offer_again_at: None,
        early_out: Vec::new(),
        channel_tx,
        pollers: JoinSet::new(),
        state: PeerState::New,
        remote_fingerprint: None,
        expected_files: HashMap::new(),
        voice_packets: None,
        voice_sender: None,
        voice_loss: watch::Sender::new(None),
        remote_offered_audio: false,
        transfers: JoinSet::new(),
        transfer_handles: HashMap::new(),
        received_tx,
    };
    peer.emit_state(PeerState::Connecting);
    if peer.setup.create_chat {
        match peer.pc.create_data_channel(CHAT_LABEL, None).await {
            Ok(channel) => peer.adopt_channel(channel, CHAT_LABEL.to_owned()).await,
            Err(e) => peer.log(
                LogLevel::Error,
                format!("cannot create the chat channel: {e}"),
            ),
        }
    }
    let setup_until = Instant::now() + SETUP_WAKE_FOR;
    let give_up_at = Instant::now() + SETUP_DEADLINE;
    let mut wake = tokio::time::interval(SETUP_WAKE);
    wake.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let setting_up = !peer.chat_open && Instant::now() < setup_until;
        tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => peer.on_input(input).await,
                None => break,
            },
            Some(event) = pc_events.recv() => {
                if peer.on_pc_event(event).await {
                    break;
                }
            }
            Some(event) = channel_events.recv() => peer.on_channel_event(event).await,
            Some((file, outcome)) = received.recv() => peer.on_received(file, outcome).await,
            Some(_) = peer.transfers.join_next(), if !peer.transfers.is_empty() => {}
            _ = wake.tick(), if setting_up => peer.wake_driver().await,
            _ = tokio::time::sleep_until(give_up_at), if !peer.set_up => {
                peer.give_up(format!("not connected after {SETUP_DEADLINE:?}"));
                break;
            }
            _ = tokio::time::sleep_until(peer.restart_gives_up.unwrap_or(give_up_at)),
                if peer.restart_gives_up.is_some() =>
            {
                peer.give_up("ICE restart found no path".to_owned());
                break;
            }
            _ = tokio::time::sleep_until(peer.offer_again_at.unwrap_or(give_up_at)),
                if peer.offer_again_at.is_some() => peer.offer_again(),
        }
    }
    peer.close(&mut channel_events).await;
}

impl Peer {
    fn out(&self, output: PeerOutput) {
        let _ = self.setup.out.send((self.setup.remote_id.clone(), output));
    }

    fn emit(&self, event: Event) {
        self.out(PeerOutput::Event(event));
    }

    fn log(&self, level: LogLevel, msg: impl Into<String>) {
        self.emit(Event::Log {
            level,
            msg: msg.into(),
            peer: Some(self.setup.remote_id.clone()),
            ts: unix_ms(),
        });
    }

    /// The connection has failed on a deadline of ours: the mesh forgets the peer, and
    /// tries again if it is still in the room (mesh/retry.rs).
    fn give_up(&mut self, reason: String) {
        self.log(LogLevel::Warn, reason);
        self.emit_state(PeerState::Failed);
        self.out(PeerOutput::Gone(PeerState::Failed));
    }

    fn emit_state(&mut self, state: PeerState) {
        if self.state != state {
            self.state = state;
            self.emit(Event::PeerState {
                peer: self.setup.remote_id.clone(),
                state,
            });
        }
    }

    async fn on_input(&mut self, input: PeerInput) {
        match input {
            PeerInput::Signal(data) => self.on_signal(data).await,
            PeerInput::Send(text) if !self.chat_open => {
                if self.early_out.len() < EARLY_OUT_MAX {
                    self.early_out.push(text);
                } else {
                    self.log(LogLevel::Warn, "channel not open: a message is dropped");
                }
            }
            PeerInput::Send(text) => {
                let Some(chat) = self.chat.as_ref() else {
                    return;
                };
                match chat.send_text(&text).await {
                    Ok(()) => {}
                    // The remote closed the channel (it is leaving) before its close reached
                    // us. Nothing is lost that the next channel does not redo: what it did
                    // not acknowledge goes again (resend_unacked), and hello and history are
                    // exchanged anew. So it is no failure to report.
                    Err(webrtc::error::Error::ErrDataChannelClosed) => self.log(
                        LogLevel::Info,
                        "chat channel closed: a message was not sent",
                    ),
                    Err(e) => {
                        let message = format!("chat channel send failed: {e}");
                        self.log(LogLevel::Warn, message.clone());
                        self.emit(Event::error(
                            ErrorCode::SendFailed,
                            message,
                            Some(&self.setup.remote_id),
                        ));
                    }
                }
            }
            PeerInput::Stats => self.report_stats().await,
            PeerInput::SafetyCode => match &self.remote_fingerprint {
                Some(theirs) => self.emit(Event::SafetyCode {
                    peer: self.setup.remote_id.clone(),
                    code: safety_code(self.setup.identity.fingerprint(), theirs),
                }),
                None => self.emit(Event::error(
                    ErrorCode::NotConnected,
                    "no description from this peer yet",
                    Some(&self.setup.remote_id),
                )),
            },
            PeerInput::Renegotiate => self.offer().await,
            PeerInput::ExpectFile { file, incoming } => {
                self.expected_files.insert(file, incoming);
            }
            PeerInput::SendFile {
                file,
                path,
                offset,
                size,
            } => {
                self.send_file(file, path, offset, size).await;
            }
            PeerInput::StartAudio { packets } => {
                self.voice_packets = Some(packets);
                // Of a pair, the impolite side (higher id) adds its track and offers; the
                // polite one adds its own before answering that offer. The call messages (on
                // the chat channel) and the offer (through the server) can race: if the polite
                // side already answered an offer with audio, it adds its track now and offers.
                if self.setup.local_id > self.setup.remote_id || self.remote_offered_audio {
                    self.add_voice_track().await;
                    // Offered here, not only on the library's negotiation-needed event:
                    // a change made while an exchange is under way (a call ended and placed
                    // again at once) gets no event once that exchange is over. Made while
                    // one is under way, the offer waits for it; a second offer for the same
                    // change finds nothing new and costs one exchange.
                    self.offer().await;
                }
            }
            PeerInput::VoiceLoss(percent) => {
                self.voice_loss.send_replace(Some(percent));
            }
            PeerInput::StopAudio => {
                self.voice_packets = None;
                self.remote_offered_audio = false;
                if let Some((sender, feeder)) = self.voice_sender.take() {
                    feeder.abort();
                    if let Err(e) = self.pc.remove_track(&sender).await {
                        self.log(LogLevel::Warn, format!("removing our audio track: {e}"));
                    }
                    self.offer().await;
                }
            }
            PeerInput::CancelFile { file } => {
                self.expected_files.remove(&file);
                if let Some(handle) = self.transfer_handles.remove(&file) {
                    handle.abort();
                }
            }
        }
    }

    /// Handles a library callback. Returns true when the connection is over.
    async fn on_pc_event(&mut self, event: PcEvent) -> bool {
        match event {
            PcEvent::NegotiationNeeded => self.offer().await,
            PcEvent::Candidate(init) => {
                self.log(
                    LogLevel::Debug,
                    format!("local candidate {}", init.candidate),
                );
                let candidate = IceCandidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                    extra: init
                        .username_fragment
                        .map(|u| {
                            serde_json::Map::from_iter([(
                                "usernameFragment".to_owned(),
                                serde_json::Value::String(u),
                            )])
                        })
                        .unwrap_or_default(),
                };
                let data = SignalData::Candidate {
                    candidate: Some(candidate),
                };
                self.out(PeerOutput::Signal(data.to_value()));
            }
            PcEvent::Gathering(state) => {
                self.log(LogLevel::Debug, format!("ICE gathering {state}"));
                if state == RTCIceGatheringState::Complete {
                    let end = SignalData::Candidate { candidate: None };
                    self.out(PeerOutput::Signal(end.to_value()));
                }
            }
            PcEvent::Ice(state) => self.on_ice_state(state).await,
            PcEvent::State(state) => return self.on_state(state).await,
            PcEvent::DataChannel(channel, label) => self.adopt_channel(channel, label).await,
            PcEvent::Track(track) => self.receive_voice(track),
        }
        false
    }

    /// Wakes the library's event loop so what it queued goes out now (see [`SETUP_WAKE`]).
    async fn wake_driver(&self) {
        let configuration = self.pc.get_configuration().await;
        let _ = self.pc.set_configuration(configuration).await;
    }

    async fn close(mut self, channel_events: &mut mpsc::UnboundedReceiver<ChannelEvent>) {
        // Close the chat channel first and give the remote a moment to see it: a closed
        // channel tells it at once that we are gone, where a closed connection is only
        // noticed when its consent checks fail, seconds later.
        if self.chat_open
            && let Some(chat) = &self.chat
            && chat.close().await.is_ok()
        {
            let _ = tokio::time::timeout(CHANNEL_CLOSE_WAIT, async {
                while let Some(event) = channel_events.recv().await {
                    if matches!(&event, ChannelEvent::Closed(label) if label == CHAT_LABEL) {
                        break;
                    }
                }
            })
            .await;
        }
        // Transfers under way end with the connection; a receiver keeps what it holds.
        for file in std::mem::take(&mut self.transfer_handles).into_keys() {
            self.log(
                LogLevel::Warn,
                format!("file {file} interrupted: the connection closed"),
            );
            self.emit(Event::FileDone {
                file,
                peer: self.setup.remote_id.clone(),
                ok: false,
                path: None,
            });
        }
        if let Err(e) = self.pc.close().await {
            self.log(LogLevel::Debug, format!("close: {e}"));
        }
        self.pollers.abort_all();
        while self.pollers.join_next().await.is_some() {}
        self.emit_state(PeerState::Closed);
    }
}
