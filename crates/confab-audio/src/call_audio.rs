//! One side of a call's audio, without devices or network: capture turns a source's ticks
//! into Opus packets, a frame of two ticks each, or of one while the call loses nothing
//! (none while muted); playout takes each peer's packets through a jitter buffer and a
//! decoder, and mixes them, at each peer's volume, into one tick at a time. Both report
//! levels over 100 ms windows, for the meters.

use std::collections::{BTreeMap, VecDeque};

use crate::codec::{VoiceDecoder, VoiceEncoder};
use crate::denoise::NoiseSuppressor;
use crate::dsp::{QuietTicks, level_dbfs, mix_into};
use crate::echo::EchoCanceller;
use crate::io::Source;
use crate::jitter::{JitterBuffer, JitterStats, Playout, loss_percent};
use crate::{AudioError, FRAME_SAMPLES, TICK_SAMPLES};

/// Ticks in one level window: 100 ms.
const LEVEL_TICKS: usize = crate::ticks_in(100) as usize;
/// The loss a new capture's FEC protects against until the far ends report theirs.
pub const INITIAL_EXPECTED_LOSS: u8 = 5;
/// Short frames asked for begin with a quiet tick after a quiet one, or after this many
/// ticks (5 s) if none comes (a microphone's noise above -50 dBFS).
const SHORT_FRAMES_WAIT_TICKS: u32 = crate::ticks_in(5_000);

/// RMS over 100 ms windows; a reading each time a window fills.
#[derive(Debug, Default)]
pub struct LevelMeter {
    sum_squares: f64,
    samples: usize,
    ticks: usize,
}

impl LevelMeter {
    /// Adds a tick's samples; returns the window's level (dBFS) when the window is full.
    pub fn add(&mut self, tick: &[f32]) -> Option<f32> {
        self.sum_squares += tick
            .iter()
            .map(|s| f64::from(*s) * f64::from(*s))
            .sum::<f64>();
        self.samples += tick.len();
        self.ticks += 1;
        if self.ticks < LEVEL_TICKS {
            return None;
        }
        let rms = (self.sum_squares / self.samples.max(1) as f64).sqrt() as f32;
        *self = Self::default();
        Some(level_dbfs(&[rms]))
    }
}

/// The sending side: source → echo cancellation and noise suppression (microphones) →
/// mute → Opus.
pub struct Capture {
    /// `None`: receive-only (the microphone is gone), nothing is sent.
    source: Option<Box<dyn Source>>,
    echo: Option<EchoCanceller>,
    cancel_echo: bool,
    denoise: Option<NoiseSuppressor>,
    suppress_noise: bool,
    encoder: VoiceEncoder,
    /// The frame being gathered for the encoder, a tick at a time.
    frame: Vec<f32>,
    /// Short frames asked for and not begun: the ticks waited so far for a quiet one.
    short_frames_waiting: Option<u32>,
    /// The ticks captured, for two quiet ones in a row.
    quiet: QuietTicks,
    meter: LevelMeter,
    muted: bool,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("sending", &self.source.is_some())
            .field("echo", &self.echo.is_some())
            .field("denoise", &self.denoise.is_some())
            .field("muted", &self.muted)
            .finish()
    }
}

/// What one capture tick produced.
#[derive(Debug, Default)]
pub struct Captured {
    /// The packet to send; `None` while muted or receive-only.
    pub packet: Option<Vec<u8>>,
    /// The microphone's level, every 100 ms.
    pub level: Option<f32>,
    /// Short frames asked for began with this tick.
    pub short_frames_began: bool,
}

impl Capture {
    pub fn new(source: Box<dyn Source>) -> Result<Self, AudioError> {
        let mut capture = Self {
            source: None,
            echo: None,
            cancel_echo: true,
            denoise: None,
            suppress_noise: true,
            encoder: VoiceEncoder::new(INITIAL_EXPECTED_LOSS)?,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            short_frames_waiting: None,
            quiet: QuietTicks::default(),
            meter: LevelMeter::default(),
            muted: false,
        };
        capture.set_source(Some(source));
        Ok(capture)
    }

    /// A new source, or none at all (receive-only).
    pub fn set_source(&mut self, source: Option<Box<dyn Source>>) {
        self.source = source;
        self.update_processing();
    }

    /// Noise suppression for microphones, on unless switched off.
    pub fn set_noise_suppression(&mut self, on: bool) {
        self.suppress_noise = on;
        self.update_processing();
    }

    /// Echo cancellation for microphones, on unless switched off.
    pub fn set_echo_cancellation(&mut self, on: bool) {
        self.cancel_echo = on;
        self.update_processing();
    }

    /// What a microphone gets: a generated source has neither noise nor echo.
    fn update_processing(&mut self) {
        let microphone = self.source.as_ref().is_some_and(|s| s.is_microphone());
        let wanted = self.suppress_noise && microphone;
        if wanted != self.denoise.is_some() {
            self.denoise = wanted.then(NoiseSuppressor::default);
        }
        let wanted = self.cancel_echo && microphone;
        if wanted != self.echo.is_some() {
            // Without it (it cannot fail to build, short of memory) the call goes on.
            self.echo = wanted.then(EchoCanceller::new).and_then(Result::ok);
        }
    }

    /// What is about to be played, for the echo canceller: call before each tick.
    pub fn render(&mut self, played: &[f32; TICK_SAMPLES]) {
        if let Some(echo) = self.echo.as_mut()
            && echo.render(played).is_err()
        {
            self.echo = None;
        }
    }

    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// How much loss the encoder's FEC protects against, as the far ends report it.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), AudioError> {
        self.encoder.set_expected_loss(percent)
    }

    /// Short frames (a tick, 10 ms, coded with less look-ahead) take 14 ms off the call's
    /// path, at more bits, and carry no FEC; the caller asks for them only while the call
    /// loses nothing. They begin where the switch is not heard (the voice moves 4 ms
    /// earlier, see `codec`): with a quiet tick after a quiet one, or with any tick while
    /// muted, or after `SHORT_FRAMES_WAIT_TICKS` without such a tick;
    /// [`Captured::short_frames_began`] tells when. Back to 20 ms frames is at once, for
    /// FEC. Off by default; a frame being gathered ends at whichever length comes first.
    pub fn set_short_frames(&mut self, short: bool) -> Result<(), AudioError> {
        if short {
            if !self.short_frames() {
                self.short_frames_waiting = Some(0);
            }
            return Ok(());
        }
        self.short_frames_waiting = None;
        self.encoder.set_short_frames(false)
    }

    /// Whether short frames are asked for (begun, or waiting for a quiet tick).
    pub fn short_frames(&self) -> bool {
        self.encoder.frame_samples() == TICK_SAMPLES || self.short_frames_waiting.is_some()
    }

    /// Begins short frames asked for, at the start of a frame, when `quiet` (this tick and
    /// the last) or muted, or when waited for long enough. Whether they began.
    fn begin_short_frames(&mut self, quiet: bool) -> Result<bool, AudioError> {
        let Some(waited) = self.short_frames_waiting.as_mut() else {
            return Ok(false);
        };
        *waited += 1;
        let now = quiet || self.muted || *waited >= SHORT_FRAMES_WAIT_TICKS;
        if !now || !self.frame.is_empty() {
            return Ok(false);
        }
        self.short_frames_waiting = None;
        self.encoder.set_short_frames(true)?;
        Ok(true)
    }

    /// Whether there is a source (none: receive-only).
    pub fn has_source(&self) -> bool {
        self.source.is_some()
    }

    /// Ticks the source could not fill in time, so far.
    pub fn underruns(&self) -> u64 {
        self.source.as_ref().map_or(0, |s| s.underruns())
    }

    /// One 10 ms tick; a packet once a frame is gathered (every second tick, or every one
    /// with short frames). An error from the source means it is gone: the capture is
    /// receive-only from then on (see [`Capture::has_source`]), and the caller says so.
    /// An error from the encoder costs the frame.
    pub fn tick(&mut self) -> Result<Captured, AudioError> {
        let Some(source) = self.source.as_mut() else {
            return Ok(Captured::default());
        };
        let mut tick = [0.0; TICK_SAMPLES];
        if let Err(e) = source.fill(&mut tick) {
            self.set_source(None);
            return Err(e);
        }
        if let Some(echo) = self.echo.as_mut()
            && echo.process(&mut tick).is_err()
        {
            // A canceller that fails is dropped; the voice goes on without it.
            self.echo = None;
        }
        if let Some(denoise) = self.denoise.as_mut() {
            denoise.process(&mut tick);
        }
        let level = self.meter.add(&tick);
        let quiet = self.quiet.note(&tick);
        let short_frames_began = self.begin_short_frames(quiet)?;
        self.frame.extend_from_slice(&tick);
        if self.frame.len() < self.encoder.frame_samples() {
            return Ok(Captured {
                packet: None,
                level,
                short_frames_began,
            });
        }
        let packet = (!self.muted).then(|| self.encoder.encode(&self.frame));
        // Gone either way: a frame that did not encode is not tried again with the next.
        self.frame.clear();
        Ok(Captured {
            packet: packet.transpose()?,
            level,
            short_frames_began,
        })
    }
}

/// The numbers of an RTP header that playout needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpNumbers {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
}

struct Stream {
    /// The source these packets come from.
    ssrc: u32,
    jitter: JitterBuffer,
    decoder: VoiceDecoder,
    gain: f32,
    meter: LevelMeter,
    /// Decoded samples not played yet: what a packet holds beyond the tick being played
    /// (the second half of one of our frames).
    pending: VecDeque<f32>,
    /// How many samples the stream's last packet held: what a lost one is concealed as.
    packet_samples: usize,
    /// When a packet of this stream last could not be played as it came (ms, the clock
    /// of the arrivals), to say so at most once per [`REPORT_EVERY_MS`].
    reported_ms: Option<f64>,
    /// The ticks played, for two quiet ones in a row: where the buffer may skip a frame
    /// unheard.
    played_quiet: QuietTicks,
}

/// A stream whose packets keep failing is reported at most this often.
const REPORT_EVERY_MS: f64 = 10_000.0;

impl Stream {
    /// One tick of this stream, from as many packets as it takes: ours are a frame (two
    /// ticks, or one) each, a sender with another `ptime` sends 10 to 120 ms, and what a
    /// packet holds beyond the tick waits for the next. A packet that does not decode (or
    /// whose FEC does not) is concealed for as long as the stream's packets last; the mix goes on, and
    /// what went wrong is returned, at most once per [`REPORT_EVERY_MS`]. Only concealment
    /// itself failing, which takes nothing from the network, is an error.
    fn play(
        &mut self,
        now_ms: f64,
        tick: &mut [f32; TICK_SAMPLES],
    ) -> Result<Option<String>, AudioError> {
        let mut problem = None;
        while self.pending.len() < TICK_SAMPLES {
            let decoded = match self.jitter.pop(now_ms, self.played_quiet.both()) {
                Playout::Silence => break,
                Playout::Packet(packet) => self.decoder.decode(&packet).inspect(|samples| {
                    self.packet_samples = samples.len();
                }),
                Playout::Recover(next) => self.decoder.recover(&next, self.packet_samples),
                // Concealment failing is not the packet's fault: an error, not a problem.
                Playout::Conceal => Ok(self.decoder.conceal(self.packet_samples)?),
            };
            let samples = match decoded {
                Ok(samples) => samples,
                Err(e) => {
                    problem = Some(format!(
                        "a voice packet that does not decode ({e}), concealed"
                    ));
                    self.decoder.conceal(self.packet_samples)?
                }
            };
            self.pending.extend(samples);
        }
        let ready = self.pending.len().min(TICK_SAMPLES);
        for (out, sample) in tick.iter_mut().zip(self.pending.drain(..ready)) {
            *out = sample;
        }
        self.played_quiet.note(tick);
        let due = self
            .reported_ms
            .is_none_or(|last| now_ms - last >= REPORT_EVERY_MS);
        Ok(problem
            .filter(|_| due)
            .inspect(|_| self.reported_ms = Some(now_ms)))
    }
}

/// The receiving side: a stream per peer, mixed.
#[derive(Default)]
pub struct Mixer {
    streams: BTreeMap<String, Stream>,
    /// Volumes set per peer, kept while it has no stream (before its voice starts, or
    /// between calls) and given to each new one.
    gains: BTreeMap<String, f32>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("peers", &self.streams.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What one playout tick produced.
#[derive(Debug)]
pub struct Mixed {
    pub tick: [f32; TICK_SAMPLES],
    /// Each peer's level, every 100 ms.
    pub levels: Vec<(String, f32)>,
    /// Peers whose packets could not be played as they came, and why: each peer at most
    /// once in 10 s.
    pub problems: Vec<(String, String)>,
}

impl Mixer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A peer's packet arrived, with its RTP header's numbers.
    pub fn push(
        &mut self,
        peer: &str,
        rtp: RtpNumbers,
        payload: Vec<u8>,
        arrival_ms: f64,
    ) -> Result<(), AudioError> {
        // A new source (a track added again after a hang-up) starts its numbering afresh:
        // its packets would look years late to the old stream's buffer, so it gets a new
        // one. The volume set for the peer stays.
        let fresh = self.streams.get(peer).is_none_or(|s| s.ssrc != rtp.ssrc);
        if fresh {
            let gain = self.gains.get(peer).copied().unwrap_or(1.0);
            let stream = Stream {
                ssrc: rtp.ssrc,
                jitter: JitterBuffer::new(),
                decoder: VoiceDecoder::new()?,
                gain,
                meter: LevelMeter::default(),
                pending: VecDeque::with_capacity(2 * FRAME_SAMPLES),
                packet_samples: FRAME_SAMPLES,
                reported_ms: None,
                played_quiet: QuietTicks::default(),
            };
            self.streams.insert(peer.to_owned(), stream);
        }
        if let Some(stream) = self.streams.get_mut(peer) {
            stream
                .jitter
                .push(rtp.seq, rtp.timestamp, payload, arrival_ms);
        }
        Ok(())
    }

    /// A copy of an earlier frame of a peer (RED) came in the packet numbered `carrier`,
    /// `offset` RTP timestamp units before that packet's frame. Push the packet's own frame
    /// first: a copy is for a stream that exists.
    pub fn push_redundant(
        &mut self,
        peer: &str,
        carrier: RtpNumbers,
        offset: u32,
        payload: Vec<u8>,
    ) {
        if let Some(stream) = self.streams.get_mut(peer)
            && stream.ssrc == carrier.ssrc
        {
            stream.jitter.push_redundant(carrier.seq, offset, payload);
        }
    }

    /// A peer's volume, 0 to 2 (1 as sent), now and for its later streams.
    pub fn set_gain(&mut self, peer: &str, gain: f32) {
        let gain = gain.clamp(0.0, 2.0);
        self.gains.insert(peer.to_owned(), gain);
        if let Some(stream) = self.streams.get_mut(peer) {
            stream.gain = gain;
        }
    }

    /// A peer stopped sending (it muted): silence from it at once, not concealment.
    pub fn hush(&mut self, peer: &str) {
        if let Some(stream) = self.streams.get_mut(peer) {
            stream.jitter.flush();
            // What a packet held beyond the last tick played goes too.
            stream.pending.clear();
            // Its meter starts a window afresh: one that began before the mute would read
            // its voice and say so 100 ms later than the silence came.
            stream.meter = LevelMeter::default();
        }
    }

    /// A peer left the call: its stream and decoder go, and what its playout met is
    /// returned.
    pub fn remove(&mut self, peer: &str) -> Option<JitterStats> {
        self.streams.remove(peer).map(|s| s.jitter.stats())
    }

    /// Every peer's stream goes (the audio stops), each with what its playout met.
    pub fn drain(&mut self) -> Vec<(String, JitterStats)> {
        std::mem::take(&mut self.streams)
            .into_iter()
            .map(|(peer, s)| (peer, s.jitter.stats()))
            .collect()
    }

    pub fn stats(&self, peer: &str) -> Option<JitterStats> {
        self.streams.get(peer).map(|s| s.jitter.stats())
    }

    /// Each peer's recent packet loss as heard here, in whole percent rounded up (any loss
    /// at all is at least 1): what that peer's encoder should protect against. A peer heard
    /// too briefly to say is left out.
    pub fn losses(&self) -> Vec<(String, u8)> {
        self.streams
            .iter()
            .filter_map(|(peer, s)| Some((peer.clone(), loss_percent(s.jitter.recent_loss()?))))
            .collect()
    }

    /// How much earlier (ms) the playout clock may run: what every stream being played
    /// allows (see [`JitterBuffer::advance_ms`]); `None` while any of them wants it to stay.
    pub fn advance_ms(&self) -> Option<f64> {
        let mut playing = self
            .streams
            .values()
            .filter(|s| s.jitter.playing())
            .peekable();
        playing.peek()?;
        playing
            .map(|s| s.jitter.advance_ms())
            .try_fold(f64::INFINITY, |least, advance| {
                advance.map(|ms| least.min(ms))
            })
    }

    /// The playout clock moved earlier: every stream watches its waits afresh.
    pub fn moved_earlier(&mut self) {
        for stream in self.streams.values_mut() {
            stream.jitter.moved_earlier();
        }
    }

    /// One 10 ms tick of every peer, mixed, played at `now_ms` (the clock of the
    /// arrivals).
    pub fn tick(&mut self, now_ms: f64) -> Result<Mixed, AudioError> {
        let mut mix = [0.0; TICK_SAMPLES];
        let mut levels = Vec::new();
        let mut problems = Vec::new();
        for (peer, stream) in &mut self.streams {
            let mut tick = [0.0; TICK_SAMPLES];
            if let Some(problem) = stream.play(now_ms, &mut tick)? {
                problems.push((peer.clone(), problem));
            }
            if let Some(level) = stream.meter.add(&tick) {
                levels.push((peer.clone(), level));
            }
            mix_into(&mut mix, &tick, stream.gain);
        }
        Ok(Mixed {
            tick: mix,
            levels,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dsp::{FLOOR_DBFS, Tone, goertzel_dbfs};
    use crate::io::Silence;
    use crate::{FRAME_MS, TICK_MS};

    /// The numbers of packet `seq` of source `ssrc`, 20 ms apart.
    fn rtp(ssrc: u32, seq: u16) -> RtpNumbers {
        RtpNumbers {
            ssrc,
            seq,
            timestamp: u32::from(seq).wrapping_mul(FRAME_SAMPLES as u32),
        }
    }

    /// A frame from `capture`: its two ticks, and the packet the second makes.
    fn frame_packet(capture: &mut Capture) -> Option<Vec<u8>> {
        let first = capture.tick().unwrap();
        assert!(
            first.packet.is_none(),
            "a packet every second tick, not every one"
        );
        capture.tick().unwrap().packet
    }

    /// A frame's worth of the mix, its two ticks from `now_ms` on.
    #[derive(Default)]
    struct Played {
        samples: Vec<f32>,
        levels: Vec<(String, f32)>,
        problems: Vec<(String, String)>,
    }

    fn play_frame(mixer: &mut Mixer, now_ms: f64) -> Played {
        let mut played = Played::default();
        for tick in 0..2 {
            let mixed = mixer.tick(now_ms + f64::from(tick) * TICK_MS).unwrap();
            played.samples.extend_from_slice(&mixed.tick);
            played.levels.extend(mixed.levels);
            played.problems.extend(mixed.problems);
        }
        played
    }

    /// A peer's track added again after a hang-up numbers its packets afresh: they are
    /// played, at the volume set for the peer, not dropped as hopelessly late.
    #[test]
    fn a_new_source_from_a_peer_starts_a_new_stream() {
        let mut mixer = Mixer::new();
        let mut tone = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        let mut play = |mixer: &mut Mixer, ssrc: u32, first: u16, at: usize| {
            let mut out = Vec::new();
            for i in 0..40u16 {
                let packet = frame_packet(&mut tone).unwrap();
                let seq = first.wrapping_add(i);
                let now = (at + usize::from(i)) as f64 * FRAME_MS;
                mixer.push("a", rtp(ssrc, seq), packet, now).unwrap();
                out.extend(play_frame(mixer, now).samples);
            }
            goertzel_dbfs(&out[20 * FRAME_SAMPLES..], 440.0)
        };
        let first = play(&mut mixer, 7, 100, 0);
        mixer.set_gain("a", 0.5);
        let second = play(&mut mixer, 8, 51_000, 40);
        assert!(first > -15.0, "first source at {first} dBFS");
        assert!(
            (second - (first - 6.0)).abs() < 2.0,
            "second source at {second} dBFS"
        );
    }

    /// Runs `frames` frames of two peers sending tones into one mixer.
    fn call(frames: usize, mute_b_after: Option<usize>) -> (Vec<f32>, Vec<(String, f32)>) {
        let mut a = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        let mut b = Capture::new(Box::new(Tone::new(880.0))).unwrap();
        let mut mixer = Mixer::new();
        let mut out = Vec::new();
        let mut levels = Vec::new();
        for i in 0..frames {
            if mute_b_after == Some(i) {
                b.set_muted(true);
            }
            let now = i as f64 * FRAME_MS;
            for (peer, capture) in [("a", &mut a), ("b", &mut b)] {
                if let Some(packet) = frame_packet(capture) {
                    mixer
                        .push(peer, rtp(1, i as u16), packet, now + 1.0)
                        .unwrap();
                }
            }
            let played = play_frame(&mut mixer, now + 1.0);
            out.extend(played.samples);
            levels.extend(played.levels);
        }
        (out, levels)
    }

    #[test]
    fn two_peers_are_heard_mixed_with_levels_ten_times_a_second() {
        let (out, levels) = call(crate::frames_in(2_000) as usize, None);
        let settled = &out[crate::frames_in(1_000) as usize * FRAME_SAMPLES..];
        assert!(goertzel_dbfs(settled, 440.0) > -18.0);
        assert!(goertzel_dbfs(settled, 880.0) > -18.0);
        let of_a: Vec<f32> = levels
            .iter()
            .filter(|(p, _)| p == "a")
            .map(|(_, l)| *l)
            .collect();
        assert_eq!(of_a.len(), 20, "one reading per 100 ms for 2 s");
        assert!((of_a[10] + 12.0).abs() < 3.0, "{}", of_a[10]);
    }

    #[test]
    fn a_muted_peer_sends_nothing_and_falls_silent() {
        let (out, _) = call(100, Some(50));
        let after = &out[60 * FRAME_SAMPLES..];
        assert!(
            goertzel_dbfs(after, 440.0) > -18.0,
            "the other is still heard"
        );
        assert!(
            goertzel_dbfs(after, 880.0) < -50.0,
            "{}",
            goertzel_dbfs(after, 880.0)
        );
        let mut muted = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        muted.set_muted(true);
        assert!(frame_packet(&mut muted).is_none());
    }

    /// A peer hushed partway through a level window reads silent at the next reading,
    /// a window after the hush, not at the one after that.
    #[test]
    fn a_hushed_peer_reads_silent_a_window_after_the_hush() {
        let mut tone = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        let mut mixer = Mixer::new();
        let mut readings = Vec::new();
        for i in 0..50u16 {
            let now = f64::from(i) * FRAME_MS;
            let packet = frame_packet(&mut tone).unwrap();
            mixer.push("a", rtp(1, i), packet, now).unwrap();
            readings.extend(play_frame(&mut mixer, now).levels);
        }
        assert!(
            readings.last().is_some_and(|(_, dbfs)| *dbfs > -18.0),
            "{readings:?}"
        );
        // Two ticks into a window: the packets still coming are flushed too.
        let at = 50.0 * FRAME_MS;
        play_frame(&mut mixer, at);
        mixer.hush("a");
        let mut after = Vec::new();
        for tick in 0..LEVEL_TICKS as u32 {
            after.extend(
                mixer
                    .tick(at + (2.0 + f64::from(tick)) * TICK_MS)
                    .unwrap()
                    .levels,
            );
        }
        assert_eq!(
            after.len(),
            1,
            "one reading a window after the hush: {after:?}"
        );
        assert!(after[0].1 < -50.0, "{after:?}");
    }

    #[test]
    fn volume_and_silence_read_as_they_should() {
        let mut meter = LevelMeter::default();
        let silence = [0.0; TICK_SAMPLES];
        let readings: Vec<f32> = (0..LEVEL_TICKS)
            .filter_map(|_| meter.add(&silence))
            .collect();
        assert_eq!(readings, vec![FLOOR_DBFS]);
        let mut capture = Capture::new(Box::new(Silence)).unwrap();
        assert!(
            frame_packet(&mut capture).is_some(),
            "silence is still sent (no DTX)"
        );
        let mut mixer = Mixer::new();
        let mut tone = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        let mut out = Vec::new();
        for i in 0..60u16 {
            let packet = frame_packet(&mut tone).unwrap();
            mixer
                .push("a", rtp(1, i), packet, f64::from(i) * FRAME_MS)
                .unwrap();
            if i == 0 {
                mixer.set_gain("a", 0.5);
            }
            out.extend(play_frame(&mut mixer, f64::from(i) * FRAME_MS).samples);
        }
        let level = goertzel_dbfs(&out[30 * FRAME_SAMPLES..], 440.0);
        assert!((level + 18.0).abs() < 3.0, "half volume is -6 dB: {level}");
        mixer.remove("a");
        assert!(mixer.stats("a").is_none());
    }

    #[test]
    fn a_volume_set_before_a_peers_voice_or_between_calls_holds_for_it() {
        let mut mixer = Mixer::new();
        mixer.set_gain("a", 0.25);
        let mut tone = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        for call in 0..2u32 {
            let mut out = Vec::new();
            for i in 0..40u16 {
                let packet = frame_packet(&mut tone).unwrap();
                mixer
                    .push("a", rtp(10 + call, i), packet, f64::from(i) * FRAME_MS)
                    .unwrap();
                out.extend(play_frame(&mut mixer, f64::from(i) * FRAME_MS).samples);
            }
            let level = goertzel_dbfs(&out[20 * FRAME_SAMPLES..], 440.0);
            assert!(
                (level + 24.0).abs() < 3.0,
                "quarter volume in call {call}: {level}"
            );
            mixer.remove("a");
        }
    }

    /// With two peers, the clock may run as much earlier as the later one's arrivals
    /// allow: A's packets come 1 ms after their send time, B's 8 ms, the mix is played
    /// 15 ms after it; B's frames wait 7 ms, 5 more than the 2 ms guard.
    #[test]
    fn the_playout_clock_may_gain_what_the_latest_peer_leaves() {
        let mut mixer = Mixer::new();
        let mut a = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        let mut b = Capture::new(Box::new(Tone::new(880.0))).unwrap();
        let mut advance = None;
        // Each frame is played three quarters of a frame after it is sent; b's arrive
        // later than a's, a quarter of a frame and the 2 ms guard before they are played.
        let (played_after, b_delay) = (0.75 * FRAME_MS, 0.5 * FRAME_MS - 2.0);
        for i in 0..crate::frames_in(2_400) as u16 {
            let sent = f64::from(i) * FRAME_MS;
            for (peer, capture, delay) in [("a", &mut a, 1.0), ("b", &mut b, b_delay)] {
                let packet = frame_packet(capture).unwrap();
                mixer.push(peer, rtp(1, i), packet, sent + delay).unwrap();
            }
            play_frame(&mut mixer, sent + played_after);
            advance = advance.or(mixer.advance_ms());
        }
        let advance = advance.unwrap();
        assert!((advance - 0.25 * FRAME_MS).abs() < 0.5, "{advance}");
        mixer.moved_earlier();
        assert_eq!(mixer.advance_ms(), None);
    }

    /// `frames` frames of a mixer where peer "a" sends a 440 Hz tone from a capture and
    /// peer "b" sends what `b_packet` makes of each frame's index: the mix, and what the
    /// mixer reported.
    fn beside_a_tone(
        frames: usize,
        mut b_packet: impl FnMut(usize) -> Vec<u8>,
    ) -> (Vec<f32>, Vec<(String, String)>) {
        let mut a = Capture::new(Box::new(Tone::new(440.0))).unwrap();
        let mut mixer = Mixer::new();
        let (mut out, mut problems) = (Vec::new(), Vec::new());
        for i in 0..frames {
            let now = i as f64 * FRAME_MS;
            let seq = i as u16;
            let packet = frame_packet(&mut a).unwrap();
            mixer.push("a", rtp(1, seq), packet, now).unwrap();
            mixer.push("b", rtp(2, seq), b_packet(i), now).unwrap();
            let played = play_frame(&mut mixer, now);
            out.extend(played.samples);
            problems.extend(played.problems);
        }
        (out, problems)
    }

    /// A peer whose packets are not Opus (a code-3 packet that says it holds no frames)
    /// is concealed and reported once; the other peer plays on at its level.
    #[test]
    fn a_peer_whose_packets_do_not_decode_leaves_the_others_playing() {
        let (out, problems) = beside_a_tone(100, |_| vec![0x03, 0x00]);
        let level = goertzel_dbfs(&out[20 * FRAME_SAMPLES..], 440.0);
        assert!(level > -15.0, "the other peer at {level} dBFS");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "b");
        assert!(problems[0].1.contains("does not decode"), "{problems:?}");
    }

    /// A tone after `quiet_ticks` of silence, then silence again from `quiet_again_at`.
    struct Bursts {
        tone: Tone,
        quiet_ticks: u32,
        quiet_again_at: u32,
        ticks: u32,
    }

    impl Bursts {
        fn new(quiet_ticks: u32, quiet_again_at: u32) -> Box<Self> {
            Box::new(Self {
                tone: Tone::new(660.0),
                quiet_ticks,
                quiet_again_at,
                ticks: 0,
            })
        }
    }

    impl Source for Bursts {
        fn fill(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
            if (self.quiet_ticks..self.quiet_again_at).contains(&self.ticks) {
                self.tone.fill(frame);
            } else {
                frame.fill(0.0);
            }
            self.ticks += 1;
            Ok(())
        }
    }

    /// With short frames a 10 ms packet leaves at every tick and plays as 20 ms ones do;
    /// going back to 20 ms mid-call (the call started losing) goes on at the same level.
    #[test]
    fn short_frames_leave_at_every_tick_and_play_whole() {
        // Asked for from the start, short frames begin with the second frame, the first
        // that starts with two quiet ticks.
        let mut tone = Capture::new(Bursts::new(4, u32::MAX)).unwrap();
        let mut mixer = Mixer::new();
        let (mut out, mut seq, mut timestamp) = (Vec::new(), 0u16, 0u32);
        for tick in 0..300u32 {
            let short = tick < 150;
            tone.set_short_frames(short).unwrap();
            let now = f64::from(tick) * TICK_MS;
            let captured = tone.tick().unwrap();
            assert!(
                !short || tick < 2 || captured.packet.is_some(),
                "tick {tick}"
            );
            if let Some(packet) = captured.packet {
                let samples = crate::codec::packet_samples(&packet).unwrap();
                let numbers = RtpNumbers {
                    ssrc: 1,
                    seq,
                    timestamp,
                };
                mixer.push("a", numbers, packet, now).unwrap();
                (seq, timestamp) = (seq + 1, timestamp + samples as u32);
            }
            out.extend_from_slice(&mixer.tick(now).unwrap().tick);
        }
        assert_eq!(
            seq,
            1 + 148 + 75,
            "one of 20 ms, 148 short, then 75 of 20 ms"
        );
        for half in [
            &out[20 * TICK_SAMPLES..150 * TICK_SAMPLES],
            &out[150 * TICK_SAMPLES..],
        ] {
            let heard = goertzel_dbfs(half, 660.0);
            assert!((heard + 12.0).abs() < 2.0, "heard at {heard} dBFS");
            let silent = half.iter().filter(|s| s.abs() < 1e-4).count();
            assert!(silent < half.len() / 100, "{silent} silent samples");
        }
    }

    /// Ticks until short frames asked for at the first tick begin, from `source`; `None`
    /// if not within `ticks`.
    fn short_frames_begin_after(source: Box<dyn Source>, ticks: u32) -> Option<u32> {
        let mut capture = Capture::new(source).unwrap();
        capture.set_short_frames(true).unwrap();
        assert!(capture.short_frames(), "asked for, waiting");
        (0..ticks).find(|_| capture.tick().unwrap().short_frames_began)
    }

    /// The switch to short frames moves the voice 4 ms, so it waits for a frame that
    /// starts with two quiet ticks; a voice that never pauses gets them after 5 s.
    #[test]
    fn short_frames_begin_where_the_switch_is_not_heard() {
        // Sound from the start, quiet from tick 30: a frame begins at tick 30 and 32;
        // tick 31 is the second quiet tick but mid-frame.
        assert_eq!(short_frames_begin_after(Bursts::new(0, 30), 100), Some(32));
        let waited = short_frames_begin_after(Bursts::new(0, u32::MAX), 600);
        assert_eq!(waited, Some(SHORT_FRAMES_WAIT_TICKS));
        // Muted, nothing is heard anyway.
        let mut capture = Capture::new(Bursts::new(0, u32::MAX)).unwrap();
        capture.set_muted(true);
        capture.set_short_frames(true).unwrap();
        assert!(capture.tick().unwrap().short_frames_began);
    }

    /// A sender with another packet duration (a `ptime` of 40, 10 or 60 ms) plays whole,
    /// at its level, with nothing to report.
    #[test]
    fn packets_of_another_duration_play_whole() {
        for samples in [1920, 480, 2880] {
            let mut encoder = opus::Encoder::new(
                crate::SAMPLE_RATE,
                opus::Channels::Mono,
                opus::Application::Voip,
            )
            .unwrap();
            let mut tone = Tone::new(660.0);
            let mut mixer = Mixer::new();
            let mut out = Vec::new();
            let (mut sent, mut seq) = (0, 0u16);
            for tick in 0..300 {
                let now = tick as f64 * TICK_MS;
                // Sent as the sender's clock makes them: a packet once its samples are in.
                while sent + samples <= (tick + 1) * TICK_SAMPLES {
                    let mut pcm = vec![0.0; samples];
                    tone.fill(&mut pcm);
                    let packet = encoder.encode_vec_float(&pcm, 1500).unwrap();
                    let numbers = RtpNumbers {
                        ssrc: 1,
                        seq,
                        timestamp: sent as u32,
                    };
                    mixer.push("a", numbers, packet, now).unwrap();
                    (sent, seq) = (sent + samples, seq + 1);
                }
                let mixed = mixer.tick(now).unwrap();
                assert!(mixed.problems.is_empty(), "{:?}", mixed.problems);
                out.extend_from_slice(&mixed.tick);
            }
            let settled = &out[100 * TICK_SAMPLES..];
            let heard = goertzel_dbfs(settled, 660.0);
            assert!(
                (heard + 12.0).abs() < 2.0,
                "{samples}: heard at {heard} dBFS"
            );
            let silent = settled.iter().filter(|s| s.abs() < 1e-4).count();
            assert!(
                silent < settled.len() / 100,
                "{samples}: {silent} silent samples"
            );
        }
    }
}
