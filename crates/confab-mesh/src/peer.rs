//! One remote peer: its peer connection, negotiation, trickle ICE and `chat` channel.
//!
//! A task per peer owns everything about it. The library's callbacks and each data
//! channel's event loop only forward into this task's channels and return at once (a
//! callback that blocks stalls the connection); the task does the work in order.

use confab_audio::call_audio::RtpNumbers;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use confab_proto::peer::MAX_CHAT_TEXT_BYTES;
use confab_proto::{
    ChatScope, FrameError, IceCandidate, PeerMessage, SdpType, SessionDescription, SignalData,
};
use tokio::sync::broadcast;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceConnectionState,
    RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType,
    RTCSessionDescription,
};

use crate::api::{ChannelState, Event, LogLevel, PeerState, unix_ms};
use crate::error::ErrorCode;
use crate::files::{self, Incoming, Received};
use crate::identity::Identity;
use crate::negotiation::{Negotiation, Step};
use crate::safety::{safety_code, sdp_fingerprint};
use crate::stats;
use crate::transport::{FAILED_AFTER, TransportConfig, build_peer_connection_through};
use crate::turn_tunnel::TurnTunnels;
use crate::voice;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

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

/// An RTP packet of a peer's voice.
#[derive(Debug)]
pub(crate) struct VoicePacket {
    pub(crate) peer: String,
    pub(crate) rtp: RtpNumbers,
    pub(crate) payload: Vec<u8>,
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

/// Library callbacks, forwarded as they come.
enum PcEvent {
    NegotiationNeeded,
    Candidate(RTCIceCandidateInit),
    Gathering(RTCIceGatheringState),
    Ice(RTCIceConnectionState),
    State(RTCPeerConnectionState),
    /// A channel the remote opened, with its label.
    DataChannel(Arc<dyn DataChannel>, String),
    Track(Arc<dyn TrackRemote>),
}

struct Callbacks(mpsc::UnboundedSender<PcEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Callbacks {
    async fn on_negotiation_needed(&self) {
        let _ = self.0.send(PcEvent::NegotiationNeeded);
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.send(PcEvent::Candidate(init));
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        let _ = self.0.send(PcEvent::Gathering(state));
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.0.send(PcEvent::Ice(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(PcEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(PcEvent::Track(track));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // The label is read now, while the library still holds the channel: a file channel
        // that the sender closes at once (an empty file) is gone a moment later, and its
        // label with it, so the transfer was never recognised. (The library releases its
        // lock before this callback; reading the label is a lookup, so this returns at once.)
        let label = channel.label().await.unwrap_or_default();
        let _ = self.0.send(PcEvent::DataChannel(channel, label));
    }
}

/// A data channel's events, tagged with its label.
enum ChannelEvent {
    Open(String),
    Message(String, Vec<u8>),
    Closed(String),
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

    async fn on_signal(&mut self, data: serde_json::Value) {
        match SignalData::from_value(data) {
            Ok(SignalData::Description { description }) => self.on_description(description).await,
            Ok(SignalData::Candidate { candidate }) => self.on_candidate(candidate).await,
            Err(e) => {
                let message = format!("bad signal: {e}");
                self.log(LogLevel::Warn, message.clone());
                self.emit(Event::error(
                    ErrorCode::BadSignal,
                    message,
                    Some(&self.setup.remote_id),
                ));
            }
        }
    }

    async fn on_description(&mut self, description: SessionDescription) {
        let kind = description.kind;
        self.log(
            LogLevel::Debug,
            format!("SDP {} received:\n{}", sdp_kind(kind), description.sdp),
        );
        if kind == SdpType::Answer && !self.negotiation.awaiting_answer() {
            // The answer to a repeat of an offer already answered (see offer_again).
            return self.log(
                LogLevel::Debug,
                "an answer to no outstanding offer: ignored",
            );
        }
        let step = self.negotiation.on_remote(kind);
        let fingerprint = sdp_fingerprint(&description.sdp);
        let sdp_has_audio = voice::sdp_sends_audio(&description.sdp);
        let Step::Apply { rollback, answer } = step else {
            self.log(
                LogLevel::Info,
                "glare: ignoring the colliding offer (impolite side)",
            );
            return;
        };
        if rollback {
            self.log(
                LogLevel::Info,
                "glare: rolling back our offer (polite side)",
            );
            let mut rollback = RTCSessionDescription::default();
            rollback.sdp_type = RTCSdpType::Rollback;
            if let Err(e) = self.pc.set_local_description(rollback).await {
                self.fail_negotiation(format!("rollback failed: {e}"));
                return;
            }
        }
        let remote = match kind {
            SdpType::Offer => RTCSessionDescription::offer(description.sdp),
            SdpType::Answer => RTCSessionDescription::answer(description.sdp),
        };
        let applied = match remote {
            Ok(remote) => self.pc.set_remote_description(remote).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            self.fail_negotiation(format!("remote {} refused: {e}", sdp_kind(kind)));
            return;
        }
        self.negotiation.remote_applied(kind);
        self.has_remote_description = true;
        if let Some(fingerprint) = fingerprint
            && self.remote_fingerprint.as_ref() != Some(&fingerprint)
        {
            self.out(PeerOutput::Identity {
                fingerprint: fingerprint.clone(),
            });
            self.remote_fingerprint = Some(fingerprint);
        }
        for candidate in std::mem::take(&mut self.early_candidates) {
            self.add_candidate(candidate).await;
        }
        if answer {
            self.remote_offered_audio = sdp_has_audio;
            // The polite side adds its own track before answering, so one exchange sets up
            // audio both ways.
            if self.voice_packets.is_some() && self.voice_sender.is_none() {
                self.add_voice_track().await;
            }
            self.answer().await;
        } else if self.negotiation.stable_with_offer_wanted() {
            self.offer().await;
        }
    }

    async fn answer(&mut self) {
        let answer = match self.pc.create_answer(None).await {
            Ok(answer) => answer,
            Err(e) => return self.fail_negotiation(format!("cannot create an answer: {e}")),
        };
        if let Err(e) = self.pc.set_local_description(answer.clone()).await {
            return self.fail_negotiation(format!("cannot set our answer: {e}"));
        }
        self.send_description(SdpType::Answer, answer.sdp);
        if self.negotiation.local_answer_set() {
            self.offer().await;
        }
    }

    /// Sends our restart offer again if it is still unanswered (see
    /// [`RESTART_OFFER_AGAIN`]); the remote answers a repeat as any offer.
    fn offer_again(&mut self) {
        let unanswered = self.restart_gives_up.is_some() && self.negotiation.awaiting_answer();
        match (&self.last_offer, unanswered) {
            (Some(sdp), true) => {
                self.log(LogLevel::Info, "restart offer unanswered: sending it again");
                self.send_description(SdpType::Offer, sdp.clone());
                self.offer_again_at = Some(Instant::now() + RESTART_OFFER_AGAIN);
            }
            _ => self.offer_again_at = None,
        }
    }

    async fn offer(&mut self) {
        if !self.negotiation.may_offer() {
            return;
        }
        let offer = match self.pc.create_offer(None).await {
            Ok(offer) => offer,
            Err(e) => return self.fail_negotiation(format!("cannot create an offer: {e}")),
        };
        if let Err(e) = self.pc.set_local_description(offer.clone()).await {
            return self.fail_negotiation(format!("cannot set our offer: {e}"));
        }
        self.negotiation.local_offer_set();
        self.last_offer = Some(offer.sdp.clone());
        self.send_description(SdpType::Offer, offer.sdp);
    }

    fn send_description(&self, kind: SdpType, sdp: String) {
        self.log(
            LogLevel::Debug,
            format!("SDP {} sent:\n{sdp}", sdp_kind(kind)),
        );
        let data = SignalData::Description {
            description: SessionDescription { kind, sdp },
        };
        self.out(PeerOutput::Signal(data.to_value()));
    }

    fn fail_negotiation(&self, message: String) {
        self.log(LogLevel::Error, message.clone());
        self.emit(Event::error(
            ErrorCode::Negotiation,
            message,
            Some(&self.setup.remote_id),
        ));
    }

    async fn on_candidate(&mut self, candidate: Option<IceCandidate>) {
        let Some(candidate) = candidate.filter(|c| !c.is_end_of_candidates()) else {
            self.log(LogLevel::Debug, "remote end of candidates");
            return;
        };
        if let Some((addr, kind)) = stats::address_and_type(&candidate.candidate) {
            stats::remember_signalled(&mut self.signalled, addr, kind);
        }
        self.log(
            LogLevel::Debug,
            format!("remote candidate {}", candidate.candidate),
        );
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate
                .extra
                .get("usernameFragment")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            ..Default::default()
        };
        if self.has_remote_description {
            self.add_candidate(init).await;
        } else {
            // Candidates may overtake the description they belong to: keep them for it.
            self.early_candidates.push(init);
        }
    }

    async fn add_candidate(&mut self, init: RTCIceCandidateInit) {
        if let Err(e) = self.pc.add_ice_candidate(init).await
            && !self.negotiation.ignoring_offer()
        {
            self.log(LogLevel::Warn, format!("remote candidate refused: {e}"));
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

    /// A connection that was up and lost its path (ICE `disconnected`: nothing heard for
    /// 5 s) is restarted: new ICE credentials, and candidates gathered afresh on rebound
    /// sockets (a laptop on another network, a NAT mapping that expired), with DTLS and
    /// SCTP kept, so chat, transfers and a call carry on over the new path. Both sides
    /// restart and offer, since either may be the one whose network changed; perfect
    /// negotiation settles the two offers. If no path comes back by the time the connection
    /// would have failed without a restart, it fails, and the mesh tries a fresh
    /// connection (mesh/retry.rs).
    async fn on_ice_state(&mut self, state: RTCIceConnectionState) {
        self.log(LogLevel::Info, format!("ICE connection {state}"));
        match state {
            RTCIceConnectionState::Disconnected if self.set_up => {
                self.log(LogLevel::Info, "path lost: restarting ICE");
                if let Err(e) = self.pc.restart_ice().await {
                    return self.log(LogLevel::Warn, format!("cannot restart ICE: {e}"));
                }
                // A restart resets the library's silence timers; the connection must still
                // fail when it would have without one (a killed peer, no path at all), so
                // the mesh cleans up and tries afresh on time.
                self.restart_gives_up
                    .get_or_insert(Instant::now() + FAILED_AFTER);
                self.offer().await;
                self.offer_again_at = Some(Instant::now() + RESTART_OFFER_AGAIN);
            }
            RTCIceConnectionState::Connected if self.restart_gives_up.is_some() => {
                self.restart_gives_up = None;
                self.offer_again_at = None;
                self.log(LogLevel::Info, "ICE restart found a path");
                self.log_selected_pair().await;
            }
            _ => {}
        }
    }

    async fn on_state(&mut self, state: RTCPeerConnectionState) -> bool {
        self.log(LogLevel::Info, format!("connection {state}"));
        let state = match state {
            RTCPeerConnectionState::New => PeerState::New,
            RTCPeerConnectionState::Connecting => PeerState::Connecting,
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => return false,
        };
        self.emit_state(state);
        if state == PeerState::Connected {
            self.log_selected_pair().await;
        }
        if matches!(state, PeerState::Failed | PeerState::Closed) {
            self.out(PeerOutput::Gone(state));
            return true;
        }
        false
    }

    /// Takes a data channel in: its events are polled by a task of their own, so the
    /// library's callback returns at once.
    async fn adopt_channel(&mut self, channel: Arc<dyn DataChannel>, label: String) {
        if let Some(file) = label.strip_prefix(FILE_PREFIX) {
            return self.receive_file(file.to_owned(), channel);
        }
        let tx = self.channel_tx.clone();
        let poller = channel.clone();
        let is_chat = label == CHAT_LABEL;
        self.pollers.spawn(async move {
            while let Some(event) = poller.poll().await {
                let forwarded = match event {
                    DataChannelEvent::OnOpen => tx.send(ChannelEvent::Open(label.clone())),
                    DataChannelEvent::OnMessage(message) => {
                        tx.send(ChannelEvent::Message(label.clone(), message.data.to_vec()))
                    }
                    DataChannelEvent::OnClose => break,
                    _ => Ok(()),
                };
                if forwarded.is_err() {
                    return;
                }
            }
            let _ = tx.send(ChannelEvent::Closed(label));
        });
        // Only one chat channel per peer: a second one offered by a remote is ignored.
        if is_chat && self.chat.is_none() {
            self.chat = Some(channel);
        }
    }

    async fn on_channel_event(&mut self, event: ChannelEvent) {
        match event {
            ChannelEvent::Open(label) => {
                self.log(LogLevel::Info, format!("channel {label} open"));
                if label == CHAT_LABEL {
                    self.chat_open = true;
                    self.set_up = true;
                    let hello = PeerMessage::Hello {
                        name: self.setup.local_name.clone(),
                        app: APP.to_owned(),
                        cert: Some(self.setup.identity.certificate_base64()),
                    };
                    self.on_input(PeerInput::Send(hello.to_json())).await;
                    for text in std::mem::take(&mut self.early_out) {
                        self.on_input(PeerInput::Send(text)).await;
                    }
                    // Before the event: whoever sees the channel open may chat at once.
                    self.out(PeerOutput::ChannelOpen);
                }
                self.emit(Event::Channel {
                    peer: self.setup.remote_id.clone(),
                    label,
                    state: ChannelState::Open,
                });
            }
            ChannelEvent::Message(label, bytes) if label == CHAT_LABEL => {
                self.on_chat_message(&bytes).await;
            }
            ChannelEvent::Message(label, _) => {
                self.log(
                    LogLevel::Debug,
                    format!("message on unknown channel {label} ignored"),
                );
            }
            ChannelEvent::Closed(label) => {
                self.log(LogLevel::Info, format!("channel {label} closed"));
                if label == CHAT_LABEL && self.chat_open {
                    self.chat_open = false;
                    self.out(PeerOutput::ChannelClosed);
                }
                self.emit(Event::Channel {
                    peer: self.setup.remote_id.clone(),
                    label,
                    state: ChannelState::Closed,
                });
            }
        }
    }

    async fn on_chat_message(&mut self, bytes: &[u8]) {
        // Over-long input is refused before it is parsed.
        if bytes.len() > MAX_CHAT_TEXT_BYTES + 4096 {
            return self.bad_message(format!("message of {} bytes is too large", bytes.len()));
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return self.bad_message("message is not UTF-8".to_owned()),
        };
        match PeerMessage::parse(text) {
            Ok(PeerMessage::Hello { name, app, cert }) => {
                self.log(LogLevel::Info, format!("hello from {name} ({app})"));
                self.out(PeerOutput::Hello { name, cert });
            }
            Ok(PeerMessage::Chat {
                id,
                text,
                ts,
                scope,
                sig,
            }) => {
                // Acknowledge every copy: the sender may be resending one we already have.
                let ack = PeerMessage::Ack { id: id.clone() };
                self.on_input(PeerInput::Send(ack.to_json())).await;
                self.out(PeerOutput::Chat {
                    id,
                    text,
                    ts,
                    scope,
                    sig,
                });
            }
            Ok(PeerMessage::Ack { id }) => self.emit(Event::Ack {
                peer: self.setup.remote_id.clone(),
                id,
            }),
            Ok(PeerMessage::FileOffer {
                file,
                name,
                size,
                sha256,
            }) => {
                self.out(PeerOutput::FileOffer {
                    file,
                    name,
                    size,
                    sha256,
                });
            }
            Ok(PeerMessage::FileAccept { file, offset }) => {
                self.out(PeerOutput::FileAccepted { file, offset });
            }
            Ok(PeerMessage::FileReject { file }) => {
                self.expected_files.remove(&file);
                if let Some(handle) = self.transfer_handles.remove(&file) {
                    handle.abort();
                }
                self.out(PeerOutput::FileRejected { file });
            }
            Ok(PeerMessage::FileReceived { file, ok }) => {
                self.out(PeerOutput::FileReceived { file, ok });
            }
            Ok(
                message @ (PeerMessage::CallInvite { .. }
                | PeerMessage::CallAccept { .. }
                | PeerMessage::CallDecline { .. }
                | PeerMessage::CallEnd { .. }
                | PeerMessage::Mute { .. }
                | PeerMessage::VoiceLoss { .. }),
            ) => self.out(PeerOutput::Call(message)),
            Ok(
                message @ (PeerMessage::HistorySince { .. }
                | PeerMessage::HistoryRanges { .. }
                | PeerMessage::HistoryHave { .. }
                | PeerMessage::HistoryWant { .. }
                | PeerMessage::HistoryMissing { .. }
                | PeerMessage::HistoryCert { .. }
                | PeerMessage::HistoryMessage { .. }),
            ) => self.out(PeerOutput::History {
                message,
                bytes: bytes.len(),
            }),
            Ok(other) => self.log(
                LogLevel::Debug,
                format!("{} ignored: not supported yet", other.to_json()),
            ),
            Err(FrameError::UnknownTag { value, .. }) => {
                self.log(
                    LogLevel::Debug,
                    format!("unknown message type {value} ignored"),
                );
            }
            Err(e) => self.bad_message(e.to_string()),
        }
    }

    async fn send_file(&mut self, file: String, path: PathBuf, offset: u64, size: u64) {
        let label = format!("{FILE_PREFIX}{file}");
        let channel = match self.pc.create_data_channel(&label, None).await {
            Ok(channel) => channel,
            Err(e) => {
                return self
                    .file_events(&file, size)
                    .failed(format!("cannot open {label}: {e}"));
            }
        };
        let events = self.file_events(&file, size);
        let handle = self.transfers.spawn(async move {
            if let Err(e) = files::send(channel, path, offset, size, |b| events.progress(b)).await {
                events.failed(e);
            }
        });
        self.transfer_handles.insert(file, handle);
    }

    fn receive_file(&mut self, file: String, channel: Arc<dyn DataChannel>) {
        let Some(incoming) = self.expected_files.remove(&file) else {
            self.log(
                LogLevel::Warn,
                format!("file channel for {file}, which we did not accept: closed"),
            );
            self.transfers.spawn(async move {
                let _ = channel.close().await;
            });
            return;
        };
        let events = self.file_events(&file, incoming.size);
        let done = self.received_tx.clone();
        let handle = self.transfers.spawn(async move {
            let outcome = match files::receive(channel, incoming, |b| events.progress(b)).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    events.error(e);
                    Received::Complete {
                        ok: false,
                        path: None,
                    }
                }
            };
            let _ = done.send((events.file, outcome));
        });
        self.transfer_handles.insert(file, handle);
    }

    /// Adds our audio track, fed from the call's packets.
    async fn add_voice_track(&mut self) {
        let Some(packets) = self.voice_packets.as_ref().map(|p| p.resubscribe()) else {
            return;
        };
        let ssrc = rand::random::<u32>();
        let track = match voice::local_track(ssrc) {
            Ok(track) => Arc::new(track),
            Err(e) => return self.log(LogLevel::Error, format!("cannot make an audio track: {e}")),
        };
        let sender = match self
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
        {
            Ok(sender) => sender,
            Err(e) => return self.log(LogLevel::Error, format!("cannot add our audio track: {e}")),
        };
        self.log(LogLevel::Info, "audio track added");
        let feeder = self
            .transfers
            .spawn(voice::feed_track(track, sender.clone(), ssrc, packets));
        self.voice_sender = Some((sender, feeder));
    }

    /// The peer's audio track: its RTP packets go to the mixer.
    fn receive_voice(&mut self, track: Arc<dyn TrackRemote>) {
        self.log(LogLevel::Info, "remote audio track");
        let out = self.setup.voice_in.clone();
        let peer = self.setup.remote_id.clone();
        self.transfers.spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let voice = VoicePacket {
                            peer: peer.clone(),
                            rtp: RtpNumbers {
                                ssrc: packet.header.ssrc,
                                seq: packet.header.sequence_number,
                                timestamp: packet.header.timestamp,
                            },
                            payload: packet.payload.to_vec(),
                        };
                        if out.send(voice).is_err() {
                            return;
                        }
                    }
                    TrackRemoteEvent::OnEnded => return,
                    _ => {}
                }
            }
        });
    }

    fn file_events(&self, file: &str, size: u64) -> FileEvents {
        FileEvents {
            out: self.setup.out.clone(),
            peer: self.setup.remote_id.clone(),
            file: file.to_owned(),
            size,
        }
    }

    async fn on_received(&mut self, file: String, outcome: Received) {
        self.transfer_handles.remove(&file);
        match outcome {
            Received::Complete { ok, path } => {
                let verdict = PeerMessage::FileReceived {
                    file: file.clone(),
                    ok,
                };
                self.on_input(PeerInput::Send(verdict.to_json())).await;
                if !ok {
                    self.log(
                        LogLevel::Warn,
                        format!("file {file} failed its size or SHA-256 check: discarded"),
                    );
                }
                self.emit(Event::FileDone {
                    file,
                    peer: self.setup.remote_id.clone(),
                    ok,
                    path: path.map(|p| p.display().to_string()),
                });
            }
            Received::Interrupted { held } => {
                self.log(
                    LogLevel::Warn,
                    format!("file {file} interrupted after {held} bytes; kept for a resume"),
                );
                self.emit(Event::FileDone {
                    file,
                    peer: self.setup.remote_id.clone(),
                    ok: false,
                    path: None,
                });
            }
        }
    }

    fn bad_message(&self, message: String) {
        self.log(LogLevel::Warn, format!("bad message on chat: {message}"));
        self.emit(Event::error(
            ErrorCode::BadMessage,
            message,
            Some(&self.setup.remote_id),
        ));
    }

    /// Wakes the library's event loop so what it queued goes out now (see [`SETUP_WAKE`]).
    async fn wake_driver(&self) {
        let configuration = self.pc.get_configuration().await;
        let _ = self.pc.set_configuration(configuration).await;
    }

    async fn report_stats(&self) {
        let pair = stats::selected_pair(self.pc.as_ref()).await.map(|p| {
            p.with_signalled_types(&self.signalled)
                .through(&self.setup.tunnels)
        });
        self.emit(Event::Stats {
            peer: self.setup.remote_id.clone(),
            rtt_ms: pair.as_ref().map_or(0.0, |p| p.rtt_ms),
            bytes_sent: pair.as_ref().map_or(0, |p| p.bytes_sent),
            bytes_received: pair.as_ref().map_or(0, |p| p.bytes_received),
            candidate_type: pair.as_ref().map_or("host", |p| p.path_type()).to_owned(),
            local_candidate: pair.as_ref().map(|p| p.local.describe()),
            remote_candidate: pair.as_ref().map(|p| p.remote.describe()),
            transport: pair.as_ref().map(|p| p.transport().to_owned()),
        });
    }

    async fn log_selected_pair(&self) {
        if let Some(pair) = stats::selected_pair(self.pc.as_ref()).await.map(|p| {
            p.with_signalled_types(&self.signalled)
                .through(&self.setup.tunnels)
        }) {
            self.log(
                LogLevel::Info,
                format!(
                    "selected pair: {} -> {} ({} path over {})",
                    pair.local.describe(),
                    pair.remote.describe(),
                    pair.path_type(),
                    pair.transport()
                ),
            );
        }
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

/// What a transfer task reports about its file.
struct FileEvents {
    out: mpsc::UnboundedSender<(String, PeerOutput)>,
    peer: String,
    file: String,
    size: u64,
}

impl FileEvents {
    fn emit(&self, event: Event) {
        let _ = self.out.send((self.peer.clone(), PeerOutput::Event(event)));
    }

    fn progress(&self, bytes: u64) {
        self.emit(Event::FileProgress {
            file: self.file.clone(),
            peer: self.peer.clone(),
            bytes,
            size: self.size,
        });
    }

    fn error(&self, message: String) {
        self.emit(Event::error(
            ErrorCode::FileTransfer,
            message,
            Some(&self.peer),
        ));
    }

    /// The transfer could not finish: an error, and a failed `file-done`.
    fn failed(&self, message: String) {
        self.error(message);
        self.emit(Event::FileDone {
            file: self.file.clone(),
            peer: self.peer.clone(),
            ok: false,
            path: None,
        });
    }
}

fn sdp_kind(kind: SdpType) -> &'static str {
    match kind {
        SdpType::Offer => "offer",
        SdpType::Answer => "answer",
    }
}
