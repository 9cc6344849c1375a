//! The audio engine of one peer: every 10 ms tick it takes the input's samples (encoding
//! every second tick's frame for the call while sending), and plays one mixed tick of
//! every peer to the output. It runs on a task of its own, fed by the peers' RTP and
//! steered by the mesh.
//!
//! Playout keeps a clock of its own, apart from the capture's tick, which follows the
//! peers' packets: a packet arrives at some point before the playout that needs it and
//! would wait out the rest (0-20 ms, set by the two clocks' phase as a call starts, 10 ms
//! on average for the whole call). When every stream's frames waited longer than their
//! guard all through a watch (`JitterBuffer::advance_ms`), the clock moves that much
//! earlier, at most `MAX_ADVANCE_MS` at a time and only after two quiet ticks, and the
//! output drops as much of its queue, which is then silence.
//!
//! The input is opened only while it is needed (in a call, or testing the microphone), so a
//! microphone is not held open between calls; the output stays open, so that a recording
//! holds the whole run. Devices open on blocking threads: the engine keeps ticking while
//! they do. A device that fails is an `error` event, and the call goes on without it
//! (receive-only without a microphone, silent without a speaker).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use confab_audio::call_audio::{Capture, Mixer};
use confab_audio::dsp::QuietTicks;
use confab_audio::io::{Discard, Sink, Source};
use confab_audio::jitter::JitterStats;
use confab_audio::open::{SinkSpec, SourceSpec, open_sink, open_source};
use confab_audio::red;
use confab_audio::{AudioError, SAMPLE_RATE, TICK_DURATION, TICK_MS, TICK_SAMPLES, ticks_in};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::{Event, LogLevel};
use crate::error::ErrorCode;
use crate::voice::VoicePacket;

/// Packets waiting for a peer's track writer; a writer further behind skips ahead.
const PACKET_QUEUE: usize = 50;
/// Device underruns are logged at most this often: every 10 s.
const UNDERRUN_REPORT_TICKS: u64 = ticks_in(10_000) as u64;
/// How often each peer is told how much of its voice was lost here: every 2 s.
const LOSS_REPORT_TICKS: u64 = ticks_in(2_000) as u64;
/// The most the playout clock moves earlier at once: less than a tick, so that what the
/// output drops (oldest first) is within the two quiet ticks just written.
const MAX_ADVANCE_MS: f64 = 0.75 * TICK_MS;
/// Short frames (10 ms) come back only once no peer reported loss for this long: 10 s.
const SHORT_FRAMES_AFTER_TICKS: u64 = ticks_in(10_000) as u64;
/// Short frames only while at most this many peers hear us. In a full mesh each listener
/// takes a copy of our voice over our uplink: about 104 kb/s in short frames against 52
/// in 20 ms ones. An uplink too small for them fills its queue (delay) before it drops
/// (the loss that brings 20 ms frames back), so a larger call keeps the smaller copies:
/// with four listeners, 208 kb/s against 416.
const SHORT_FRAMES_MAX_LISTENERS: usize = 3;

#[derive(Debug)]
enum Control {
    /// In a call with someone: capture, encode and send.
    Sending(bool),
    /// Our voice goes to this peer too (until it is forgotten or the call ends).
    Listener(String),
    Muted(bool),
    /// Report the microphone's level outside calls (a settings screen's meter).
    MicTest(bool),
    Input(SourceSpec),
    Output(SinkSpec),
    NoiseSuppression(bool),
    EchoCancellation(bool),
    Volume(String, f32),
    /// A peer left the call: drop its stream.
    Forget(String),
    /// A peer muted: silence it at once.
    Hush(String),
    /// A peer reported how much of our voice it lost lately (percent).
    ReportedLoss(String, u8),
    Redundancy(String, bool),
    /// Finish the output (a WAV's header) and stop.
    Stop(oneshot::Sender<()>),
}

/// A device opened on a blocking thread, back to the engine.
enum Opened {
    Input(u64, Result<Box<dyn Source>, AudioError>),
    Output(u64, Result<Box<dyn Sink>, AudioError>),
}

/// The mesh's handle on its engine.
#[derive(Debug)]
pub(crate) struct Engine {
    packets: broadcast::Sender<Arc<Vec<u8>>>,
    control: mpsc::UnboundedSender<Control>,
}

impl Engine {
    /// `input` and `output` as `--audio-in` and `--audio-out` name them.
    /// Every 2 s in a call, each peer's recent loss as heard here goes to `loss_reports`
    /// (peer, percent), for the mesh to tell that peer.
    pub(crate) fn start(
        input: SourceSpec,
        output: SinkSpec,
        voice_in: mpsc::UnboundedReceiver<VoicePacket>,
        events: mpsc::UnboundedSender<Event>,
        loss_reports: mpsc::UnboundedSender<(String, u8)>,
    ) -> Self {
        let (packets, _) = broadcast::channel(PACKET_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let (opened_tx, opened) = mpsc::unbounded_channel();
        let shared = packets.clone();
        let report = events.clone();
        // A thread and a small runtime of its own: the 10 ms ticks keep time however busy
        // the mesh is, and the echo canceller, which must stay on one thread, can live here.
        let spawned = std::thread::Builder::new()
            .name("confab-audio".to_owned())
            .spawn(move || {
                // The ticks must keep time when other programs keep every core busy.
                confab_audio::priority::promote_current_thread(
                    "the audio engine",
                    TICK_SAMPLES as u32,
                );
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let message = format!("no audio engine: {e}");
                        let _ = events.send(Event::error(ErrorCode::Audio, message, None));
                        return;
                    }
                };
                let state = EngineTask {
                    input_spec: input,
                    output_spec: SinkSpec::None,
                    input_name: None,
                    output_name: None,
                    input_generation: 0,
                    output_generation: 0,
                    input_open: false,
                    capture: None,
                    mixer: Mixer::new(),
                    output: Box::new(Discard),
                    sending: false,
                    mic_test: false,
                    muted: false,
                    noise_suppression: true,
                    echo_cancellation: true,
                    ticks: 0,
                    played_quiet: QuietTicks::default(),
                    underruns_reported: (0, 0),
                    packets: shared,
                    events,
                    opened_tx,
                    loss_reports,
                    listeners: HashSet::new(),
                    reported_loss: HashMap::new(),
                    redundant_peers: HashSet::new(),
                    expected_loss: None,
                    lossy_at: None,
                };
                runtime.block_on(state.run(output, voice_in, control_rx, opened));
            });
        if let Err(e) = spawned {
            let message = format!("no audio engine: {e}");
            let _ = report.send(Event::error(ErrorCode::Audio, message, None));
        }
        Self { packets, control }
    }

    /// Our encoded voice, for `peer`'s track: it counts among those who hear us until
    /// it is forgotten or the call ends.
    pub(crate) fn packets_for(&self, peer: &str) -> broadcast::Receiver<Arc<Vec<u8>>> {
        self.send(Control::Listener(peer.to_owned()));
        self.packets.subscribe()
    }

    fn send(&self, control: Control) {
        let _ = self.control.send(control);
    }

    pub(crate) fn set_sending(&self, sending: bool) {
        self.send(Control::Sending(sending));
    }

    pub(crate) fn set_muted(&self, muted: bool) {
        self.send(Control::Muted(muted));
    }

    pub(crate) fn set_mic_test(&self, on: bool) {
        self.send(Control::MicTest(on));
    }

    pub(crate) fn set_input(&self, spec: SourceSpec) {
        self.send(Control::Input(spec));
    }

    pub(crate) fn set_output(&self, spec: SinkSpec) {
        self.send(Control::Output(spec));
    }

    pub(crate) fn set_noise_suppression(&self, on: bool) {
        self.send(Control::NoiseSuppression(on));
    }

    pub(crate) fn set_echo_cancellation(&self, on: bool) {
        self.send(Control::EchoCancellation(on));
    }

    pub(crate) fn set_volume(&self, peer: &str, volume: f32) {
        self.send(Control::Volume(peer.to_owned(), volume));
    }

    pub(crate) fn forget(&self, peer: &str) {
        self.send(Control::Forget(peer.to_owned()));
    }

    pub(crate) fn hush(&self, peer: &str) {
        self.send(Control::Hush(peer.to_owned()));
    }

    /// A peer's report of how much of our voice it lost: FEC follows the worst one.
    pub(crate) fn set_reported_loss(&self, peer: &str, percent: u8) {
        self.send(Control::ReportedLoss(peer.to_owned(), percent));
    }

    /// Whether our voice goes to a peer with copies of earlier frames (RED), which leave
    /// FEC less to do for it.
    pub(crate) fn set_redundancy(&self, peer: &str, on: bool) {
        self.send(Control::Redundancy(peer.to_owned(), on));
    }

    /// Completes the output and stops.
    pub(crate) async fn stop(&self) {
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Stop(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), finished).await;
        }
    }
}

struct EngineTask {
    input_spec: SourceSpec,
    output_spec: SinkSpec,
    input_name: Option<String>,
    output_name: Option<String>,
    /// Which open is the latest: an older one finishing late is dropped.
    input_generation: u64,
    output_generation: u64,
    /// The input is open, or being opened.
    input_open: bool,
    capture: Option<Capture>,
    mixer: Mixer,
    output: Box<dyn Sink>,
    sending: bool,
    mic_test: bool,
    muted: bool,
    noise_suppression: bool,
    echo_cancellation: bool,
    ticks: u64,
    /// The ticks played, for two quiet ones in a row.
    played_quiet: QuietTicks,
    /// The input's and the output's underruns as last logged.
    underruns_reported: (u64, u64),
    packets: broadcast::Sender<Arc<Vec<u8>>>,
    events: mpsc::UnboundedSender<Event>,
    opened_tx: mpsc::UnboundedSender<Opened>,
    loss_reports: mpsc::UnboundedSender<(String, u8)>,
    /// The peers our voice goes to.
    listeners: HashSet<String>,
    /// What each peer in the call last said it lost of our voice, in percent.
    reported_loss: HashMap<String, u8>,
    /// The peers our voice goes to with copies of earlier frames (RED).
    redundant_peers: HashSet<String>,
    /// What the encoder's FEC is sized for now, once a report set it.
    expected_loss: Option<u8>,
    /// The tick at which a peer last reported losing any of our voice.
    lossy_at: Option<u64>,
}

impl EngineTask {
    async fn run(
        mut self,
        output: SinkSpec,
        mut voice_in: mpsc::UnboundedReceiver<VoicePacket>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut opened: mpsc::UnboundedReceiver<Opened>,
    ) {
        self.open_output(output);
        let started = Instant::now();
        let mut ticks = tokio::time::interval(TICK_DURATION);
        // Keep real time: a late tick is made up, so recordings hold the call's full length.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        // The playout clock: a late playout is made up the same way, as the deadline past
        // fires again at once.
        let mut play_at = started;
        let playout = tokio::time::sleep_until(play_at);
        tokio::pin!(playout);
        loop {
            tokio::select! {
                command = control.recv() => match command {
                    Some(Control::Stop(done)) => {
                        self.finish_output();
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.on_control(command),
                    None => {
                        self.finish_output();
                        return;
                    }
                },
                Some(done) = opened.recv() => self.on_opened(done),
                // Out of a call, packets still in flight from the last one are dropped: they
                // would bring back a stream that was just let go.
                Some(packet) = voice_in.recv() => {
                    if !self.sending {
                        continue;
                    }
                    let arrival_ms = started.elapsed().as_secs_f64() * 1000.0;
                    if let Err(e) = self.mixer.push(&packet.peer, packet.rtp, packet.payload, arrival_ms) {
                        self.error(ErrorCode::Audio, format!("voice from {}: {e}", packet.peer));
                    }
                    for (offset, copy) in packet.redundant {
                        self.mixer.push_redundant(&packet.peer, packet.rtp, offset, copy);
                    }
                }
                _ = ticks.tick() => self.tick(),
                () = &mut playout => {
                    let now_ms = started.elapsed().as_secs_f64() * 1000.0;
                    let advance = self.play(now_ms);
                    play_at += TICK_DURATION.saturating_sub(advance);
                    playout.as_mut().reset(play_at);
                }
            }
        }
    }

    fn on_control(&mut self, command: Control) {
        match command {
            Control::Sending(on) => {
                self.sending = on;
                if !on {
                    self.listeners.clear();
                }
                self.update_input();
            }
            Control::Listener(peer) => {
                self.listeners.insert(peer);
                self.apply_frame_length();
            }
            Control::MicTest(on) => {
                self.mic_test = on;
                self.update_input();
            }
            Control::Muted(muted) => {
                self.muted = muted;
                if let Some(capture) = self.capture.as_mut() {
                    capture.set_muted(muted);
                }
            }
            Control::Input(spec) => {
                self.input_spec = spec;
                self.input_name = None;
                if self.input_open {
                    // The old source goes on until the new one is open, so that the peers
                    // hear no gap, and the encoder carries on across the switch.
                    self.open_input();
                } else {
                    self.update_input();
                }
                self.report_audio();
            }
            Control::Output(spec) => self.open_output(spec),
            Control::NoiseSuppression(on) => {
                self.noise_suppression = on;
                if let Some(capture) = self.capture.as_mut() {
                    capture.set_noise_suppression(on);
                }
                self.report_audio();
            }
            Control::EchoCancellation(on) => {
                self.echo_cancellation = on;
                if let Some(capture) = self.capture.as_mut() {
                    capture.set_echo_cancellation(on);
                }
                self.report_audio();
            }
            Control::Volume(peer, volume) => self.mixer.set_gain(&peer, volume),
            Control::Forget(peer) => {
                if let Some(stats) = self.mixer.remove(&peer) {
                    self.log_playout(&peer, stats);
                }
                self.reported_loss.remove(&peer);
                self.redundant_peers.remove(&peer);
                self.listeners.remove(&peer);
                self.apply_expected_loss();
                self.apply_frame_length();
            }
            Control::Hush(peer) => self.mixer.hush(&peer),
            Control::ReportedLoss(peer, percent) => {
                if percent > 0 {
                    self.lossy_at = Some(self.ticks);
                }
                self.reported_loss.insert(peer, percent);
                self.apply_expected_loss();
                self.apply_frame_length();
            }
            Control::Redundancy(peer, on) => {
                if on {
                    self.redundant_peers.insert(peer);
                } else {
                    self.redundant_peers.remove(&peer);
                }
                self.apply_expected_loss();
            }
            Control::Stop(_) => {}
        }
    }

    /// Opens the input when something needs it, and lets it go when nothing does.
    fn update_input(&mut self) {
        let needed = self.sending || self.mic_test;
        if needed && !self.input_open {
            self.open_input();
        } else if !needed && self.input_open {
            self.close_input();
        }
    }

    /// Opens `input_spec` off the engine's thread (a device takes up to seconds); what is
    /// opened goes to the capture there is, or to a new one (`on_opened`).
    fn open_input(&mut self) {
        self.input_open = true;
        self.input_generation += 1;
        let (generation, spec, done) = (
            self.input_generation,
            self.input_spec.clone(),
            self.opened_tx.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let _ = done.send(Opened::Input(generation, open_source(&spec)));
        });
    }

    fn close_input(&mut self) {
        self.input_open = false;
        self.input_generation += 1;
        self.capture = None;
    }

    fn open_output(&mut self, spec: SinkSpec) {
        self.output_spec = spec.clone();
        self.output_name = None;
        self.output_generation += 1;
        let (generation, done) = (self.output_generation, self.opened_tx.clone());
        tokio::task::spawn_blocking(move || {
            let _ = done.send(Opened::Output(generation, open_sink(&spec)));
        });
    }

    fn on_opened(&mut self, opened: Opened) {
        match opened {
            Opened::Input(generation, _) if generation != self.input_generation => {}
            Opened::Input(_, Ok(source)) => {
                self.input_name = source.device_name().map(str::to_owned);
                match self.capture.as_mut() {
                    Some(capture) => {
                        capture.set_source(Some(source));
                        self.report_audio();
                    }
                    None => self.start_capture(source),
                }
            }
            Opened::Input(_, Err(e)) => {
                self.capture = None;
                self.error(
                    ErrorCode::AudioIn,
                    format!("{e}; the call goes on receive-only (others do not hear you)"),
                );
            }
            Opened::Output(generation, _) if generation != self.output_generation => {}
            Opened::Output(_, Ok(sink)) => {
                self.output_name = sink.device_name().map(str::to_owned);
                let previous = std::mem::replace(&mut self.output, sink);
                if let Err(e) = previous.finish() {
                    self.error(ErrorCode::AudioOut, format!("finishing the output: {e}"));
                }
                self.report_audio();
            }
            Opened::Output(_, Err(e)) => {
                self.error(
                    ErrorCode::AudioOut,
                    format!("{e}; the call goes on, unheard here"),
                );
            }
        }
    }

    fn start_capture(&mut self, source: Box<dyn Source>) {
        match Capture::new(source) {
            Ok(mut capture) => {
                capture.set_muted(self.muted);
                capture.set_noise_suppression(self.noise_suppression);
                capture.set_echo_cancellation(self.echo_cancellation);
                self.capture = Some(capture);
                self.expected_loss = None;
                self.apply_expected_loss();
                self.apply_frame_length();
                self.report_audio();
            }
            Err(e) => self.error(ErrorCode::AudioIn, format!("no voice: {e}")),
        }
    }

    /// Plays one mixed tick at `now_ms`; returns how much earlier the next playout comes
    /// than one tick on (see the module's doc).
    fn play(&mut self, now_ms: f64) -> Duration {
        let mixed = match self.mixer.tick(now_ms) {
            Ok(mixed) => mixed,
            Err(e) => {
                self.error(ErrorCode::Audio, e.to_string());
                return Duration::ZERO;
            }
        };
        for (peer, problem) in &mixed.problems {
            self.emit(Event::error(
                ErrorCode::Audio,
                format!("voice from {peer}: {problem}"),
                Some(peer),
            ));
        }
        // What is played now is the echo the microphone is about to hear.
        if let Some(capture) = self.capture.as_mut() {
            capture.render(&mixed.tick);
        }
        if let Err(e) = self.output.write(&mixed.tick) {
            self.error(
                ErrorCode::AudioOut,
                format!("{e}; the call goes on, unheard here"),
            );
            self.output = Box::new(Discard);
        }
        for (peer, dbfs) in mixed.levels {
            self.emit(Event::Level {
                peer: Some(peer),
                dbfs,
            });
        }
        let both_quiet = self.played_quiet.note(&mixed.tick);
        let Some(ms) = self.mixer.advance_ms().filter(|_| both_quiet) else {
            return Duration::ZERO;
        };
        let ms = ms.min(MAX_ADVANCE_MS);
        self.mixer.moved_earlier();
        self.output
            .skip((ms * f64::from(SAMPLE_RATE) / 1000.0) as usize);
        Duration::from_secs_f64(ms / 1000.0)
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(UNDERRUN_REPORT_TICKS) {
            self.log_underruns();
        }
        if self.sending && self.ticks.is_multiple_of(LOSS_REPORT_TICKS) {
            for report in self.mixer.losses() {
                let _ = self.loss_reports.send(report);
            }
        }
        if let Some(capture) = self.capture.as_mut() {
            match capture.tick() {
                Ok(captured) => {
                    if self.sending
                        && let Some(packet) = captured.packet
                    {
                        let _ = self.packets.send(Arc::new(packet));
                    }
                    if let Some(dbfs) = captured.level {
                        self.emit(Event::Level { peer: None, dbfs });
                    }
                    if captured.short_frames_began {
                        self.log_info("voice in 10 ms frames: no peer lost any of it lately");
                    }
                }
                Err(e) if capture.has_source() => {
                    self.error(ErrorCode::Audio, format!("encoding the voice: {e}"));
                }
                Err(e) => {
                    // The capture is receive-only from here on.
                    self.error(
                        ErrorCode::AudioIn,
                        format!("{e}; the call goes on receive-only (others do not hear you)"),
                    );
                }
            }
        }
    }

    /// The encoder's FEC protects against the worst loss a peer in the call reports (one
    /// encoder feeds every peer), or for a peer that gets copies of earlier frames (RED),
    /// against what the copies leave: FEC's bits come out of the voice's own, so sizing it
    /// for loss the copies already cover would only make every frame sound worse. Until a
    /// peer reports, the capture's initial guess stands.
    fn apply_expected_loss(&mut self) {
        let Some((reported, worst)) = self
            .reported_loss
            .iter()
            .map(|(peer, &percent)| {
                let left = if self.redundant_peers.contains(peer) {
                    red::loss_left(percent)
                } else {
                    percent
                };
                (percent, left)
            })
            .max_by_key(|(_, left)| *left)
        else {
            return;
        };
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        match capture.set_expected_loss(worst) {
            Ok(()) if self.expected_loss != Some(worst) => {
                self.expected_loss = Some(worst);
                self.log_info(format!(
                    "voice FEC sized for {worst} % loss (the worst left: {reported} % \
                     reported{})",
                    if worst == reported {
                        ""
                    } else {
                        ", the rest covered by copies"
                    }
                ));
            }
            Ok(()) => {}
            Err(e) => self.error(ErrorCode::Audio, format!("setting the voice's FEC: {e}")),
        }
    }

    /// Frames of 10 ms, coded with 4 ms less look-ahead, take 14 ms off the path from our
    /// microphone to the peers' speakers, but take more bits (64 kb/s against 32, so that
    /// they sound as well with nothing lost), carry no FEC, and, at a packet per tick,
    /// give copies of earlier frames half as much to rebuild from. So they are asked for
    /// only in a small call that loses nothing ([`short_frames_suit`]); the first report
    /// of loss, or a fourth listener, brings 20 ms frames back at once. A new capture
    /// starts with 20 ms frames until the first reports; short ones begin where the
    /// switch is not heard (`Capture`), and are logged then.
    fn apply_frame_length(&mut self) {
        let since_loss = self.lossy_at.map(|at| self.ticks - at);
        let clean = short_frames_suit(&self.reported_loss, self.listeners.len(), since_loss);
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        if clean == capture.short_frames() {
            return;
        }
        if let Err(e) = capture.set_short_frames(clean) {
            self.error(
                ErrorCode::Audio,
                format!("setting the voice's frame length: {e}"),
            );
            return;
        }
        // Back to 20 ms because the last peer left is not worth a line; for loss or a
        // larger call it is.
        if self.reported_loss.values().any(|&percent| percent > 0) {
            self.log_info("voice in 20 ms frames: a peer is losing some of it");
        } else if self.listeners.len() > SHORT_FRAMES_MAX_LISTENERS {
            self.log_info(format!(
                "voice in 20 ms frames: {} peers hear it, each taking a copy over the uplink",
                self.listeners.len()
            ));
        }
    }

    fn log_info(&self, msg: impl Into<String>) {
        self.emit(Event::Log {
            level: LogLevel::Info,
            msg: msg.into(),
            peer: None,
            ts: crate::api::unix_ms(),
        });
    }

    /// A device that could not keep up since the last report is worth a line: its margin
    /// grew, and the user may hear why.
    fn log_underruns(&mut self) {
        let input = self.capture.as_ref().map_or(0, Capture::underruns);
        let output = self.output.underruns();
        let (last_in, last_out) = self.underruns_reported;
        if input > last_in || output > last_out {
            tracing::info!(
                "sound devices fell behind: the microphone {} times, the speaker {} times \
                 in the last 10 s; their margins grew",
                input.saturating_sub(last_in),
                output.saturating_sub(last_out)
            );
        }
        self.underruns_reported = (input, output);
    }

    /// How a peer's voice played here, once it ends: what a user who heard gaps can read.
    fn log_playout(&self, peer: &str, stats: JitterStats) {
        self.emit(Event::Log {
            level: LogLevel::Info,
            msg: format!(
                "voice from {peer}: {} frames played ({} from copies in later packets), \
                 {} rebuilt from FEC, {} concealed, {} late, {} stretched and {} skipped to \
                 follow the network's delay",
                stats.played,
                stats.repaired,
                stats.recovered,
                stats.concealed,
                stats.late,
                stats.stretched,
                stats.dropped_for_latency
            ),
            peer: Some(peer.to_owned()),
            ts: crate::api::unix_ms(),
        });
    }

    fn finish_output(&mut self) {
        for (peer, stats) in self.mixer.drain() {
            self.log_playout(&peer, stats);
        }
        let output = std::mem::replace(&mut self.output, Box::new(Discard));
        if let Err(e) = output.finish() {
            self.error(ErrorCode::AudioOut, format!("finishing the output: {e}"));
        }
    }

    fn report_audio(&self) {
        self.emit(Event::Audio {
            input: self.input_spec.to_string(),
            output: self.output_spec.to_string(),
            input_name: self.input_name.clone(),
            output_name: self.output_name.clone(),
            noise_suppression: self.noise_suppression,
            echo_cancellation: self.echo_cancellation,
        });
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn error(&self, code: ErrorCode, message: String) {
        self.emit(Event::error(code, message, None));
    }
}

/// Whether our voice may go in short frames, by how many peers it goes to (`listeners`),
/// what those that reported say of their loss of it (`reported_loss`, a percentage each)
/// and the ticks since the last report of any loss (`since_loss`): some have reported,
/// no more than [`SHORT_FRAMES_MAX_LISTENERS`] hear us, none lost any, and no loss for
/// [`SHORT_FRAMES_AFTER_TICKS`].
fn short_frames_suit(
    reported_loss: &HashMap<String, u8>,
    listeners: usize,
    since_loss: Option<u64>,
) -> bool {
    !reported_loss.is_empty()
        && listeners.max(reported_loss.len()) <= SHORT_FRAMES_MAX_LISTENERS
        && reported_loss.values().all(|&percent| percent == 0)
        && since_loss.is_none_or(|ticks| ticks >= SHORT_FRAMES_AFTER_TICKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(losses: &[u8]) -> HashMap<String, u8> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &percent)| (format!("p{i}"), percent))
            .collect()
    }

    /// The rule with every listener having reported.
    fn suit(reported_loss: &HashMap<String, u8>, since_loss: Option<u64>) -> bool {
        short_frames_suit(reported_loss, reported_loss.len(), since_loss)
    }

    #[test]
    fn short_frames_suit_a_small_call_that_loses_nothing() {
        assert!(!suit(&reports(&[]), None), "no one has reported");
        assert!(suit(&reports(&[0]), None));
        assert!(suit(&reports(&[0, 0, 0]), None));
        assert!(!suit(&reports(&[0, 2, 0]), None));
        let after = SHORT_FRAMES_AFTER_TICKS;
        assert!(!suit(&reports(&[0, 0]), Some(after - 1)));
        assert!(suit(&reports(&[0, 0]), Some(after)));
    }

    #[test]
    fn a_fourth_listener_brings_20_ms_frames_back() {
        assert!(!suit(&reports(&[0, 0, 0, 0]), None));
        assert!(!suit(&reports(&[0; 7]), None));
        // Counted by who hears us, not by who has reported: in a call of five the first
        // report already says no, rather than asking for short frames the fourth report
        // would take back.
        assert!(short_frames_suit(&reports(&[0]), 3, None));
        assert!(!short_frames_suit(&reports(&[0]), 4, None));
    }
}
