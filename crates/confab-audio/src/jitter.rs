//! The adaptive jitter buffer: packets arrive early, late, out of order or not at all; the
//! playout asks for the next packet each time the last one has been played. Plain data:
//! arrival times are passed in. It holds packets, which are frames of 20 ms as browsers
//! send them and ours are under loss (10 ms while nothing is lost), but its holds, watches
//! and guards are times: the packets' length is learnt from their RTP timestamps, and each
//! time is that many packets.
//!
//! Each call to [`JitterBuffer::pop`] answers with the packet due, or, when it is missing,
//! with the next packet (whose in-band FEC rebuilds the lost frame), or with concealment.
//!
//! The buffer grows only when it must: when it runs dry, it conceals without consuming the
//! frame due and plays that frame when it comes, so a packet that is only late (a rough
//! network, or another program keeping the receiving threads waiting) is played, not lost,
//! and the buffer is deeper by the wait; a lost packet is then rebuilt from its successor's
//! FEC. It shrinks by skipping a frame when it holds more than about twice its target, and
//! at once whatever it held beyond the target all through a 2 s watch (a burst queued as a
//! call starts, a delay peak let go), where the stream is quiet, so that the cut is not
//! heard: such a backlog waits up to 2 s for a pause. The target is sized from the
//! interarrival jitter (RFC 3550's estimator), one or two more frames during loss, and the
//! depth the latest late packet showed was needed, held for a while as WebRTC's NetEQ
//! holds its delay peaks: a delay met once is ridden out unheard if it comes again within
//! 5 s instead of costing a wait each time, and delays that recur are held until 20 s pass
//! without one; a one-off stall's delay is gone 5 s after it. Delays in a stream's first
//! second are waited out but not held: a sender's first packets come unevenly as its track
//! starts, and holding that cost a call 25 ms more delay for 20 s.
//!
//! The buffer also tells its playout clock when it could run earlier. A frame's packet
//! arrives at some point between two packets' playouts, and without this the frame waits
//! out whatever is left of it: 0 to 20 ms for 20 ms packets, set by the phase of the
//! sender's clock and ours as a call starts, 10 ms on average and kept for the whole call.
//! Each frame played from its own packet notes how long it waited since it arrived; when the least wait over
//! a watch (2 s) exceeds what a frame must keep (three times the jitter or the latest
//! late packet's lateness, and the clock's precision; a frame or two more while packets
//! are being lost), [`JitterBuffer::advance_ms`] says by how much the clock may move earlier.
//!
//! Copies of earlier frames carried in RED (see [`crate::red`]) fill the gaps their own
//! packets left; the loss the buffer measures is still the network's (a frame whose own
//! packet never came), which is what the sender sizes its redundancy for.

use std::collections::BTreeMap;

use crate::codec::{MAX_PACKET_SAMPLES, MIN_PACKET_SAMPLES};
use crate::{FRAME_MS, frames_in};

/// Held at most before the oldest are dropped to cut latency (ms).
const MAX_TARGET_MS: f64 = 200.0;
/// Frames played before the loss estimate is offered: the horizon it reflects (2 s of
/// 20 ms packets; 1 s of 10 ms ones, which come only while nothing is lost, and where any
/// loss at all still shows in the next report, since a report rounds up). Fewer say
/// little (a report after ten frames is 0 % or 10 % by chance).
const LOSS_ESTIMATE_FRAMES: u32 = frames_in(2_000);
/// How much of the loss estimate each frame keeps: it reflects about the last
/// [`LOSS_ESTIMATE_FRAMES`].
const LOSS_MEMORY: f64 = 1.0 - 1.0 / LOSS_ESTIMATE_FRAMES as f64;
/// A loss share above which the buffer holds an extra frame for FEC (about one in 200).
const LOSSY: f64 = 0.005;
/// RTP timestamp units (48 kHz) per millisecond.
const TICKS_PER_MS: f64 = 48.0;
/// How long the buffer waits, dry, for the packet due before it stops and refills (ms).
/// Longer than that, the sender has most likely stopped, and concealment would only smear.
const DRY_WAIT_MS: f64 = 100.0;
/// How long delay peaks that recur are held after the latest of them (ms): a peak met
/// within this long of the one before is held this long.
const PEAK_HOLD_MS: f64 = 20_000.0;
/// How long a lone delay peak is held (ms), one with no other in the [`PEAK_HOLD_MS`]
/// before it: a one-off stall of a busy machine. Long enough to ride out a stall that
/// comes back at once; holding it longer cost a call the stall's delay for up to 100 s.
const LONE_PEAK_HOLD_MS: f64 = 5_000.0;
/// A stream's start-up: delays met this soon after its first packet are the sender's
/// pipeline getting going (its first packets come unevenly as the track starts), not the
/// network's or the machine's, and are waited out but not held as peaks (ms).
const START_UP_MS: f64 = 1_000.0;
/// How long the least depth is watched: what stood above the target all that time is
/// delay, not cushion (ms).
const DEPTH_WATCH_MS: f64 = 2_000.0;
/// How long a backlog found standing waits for the stream to be quiet before its frames
/// are skipped anyway (ms): speech pauses well within it; a steady sound never does.
const QUIET_SKIP_WAIT_MS: f64 = 2_000.0;
/// How long the least wait (arrival to playout) is watched before the playout clock may
/// move earlier (ms): long enough to have met the delays a busy machine adds.
const PHASE_WATCH_MS: f64 = 2_000.0;
/// The packet lengths a sender may use (Opus: 2.5 to 120 ms), in RTP timestamp units.
const PACKET_UNITS: std::ops::RangeInclusive<u32> =
    MIN_PACKET_SAMPLES as u32..=MAX_PACKET_SAMPLES as u32;
/// What a frame keeps between its arrival and its playout at the least: the playout
/// clock's own precision (tokio's timer works in whole milliseconds, and a thread wakes a
/// little after its time).
const MIN_GUARD_MS: f64 = 2.0;
/// Less spare than this is not worth moving the clock for.
const LEAST_ADVANCE_MS: f64 = 1.0;

/// A loss share (0 to 1) in whole percent, rounded up: any loss at all is at least 1.
pub fn loss_percent(share: f64) -> u8 {
    (share * 100.0).ceil().clamp(0.0, 100.0) as u8
}

/// What to play for the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Vec<u8>),
    /// The due packet is lost; this is the next one: recover the frame from its FEC.
    Recover(Vec<u8>),
    /// Lost with nothing to recover from, or not here yet: conceal.
    Conceal,
    /// Not playing (nothing received yet, or refilling after running dry): silence.
    Silence,
}

/// Counts since the start, for stats and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub played: u64,
    pub recovered: u64,
    pub concealed: u64,
    pub late: u64,
    /// Frames played from a copy another packet carried (RED), their own packet lost.
    pub repaired: u64,
    pub duplicates: u64,
    pub dropped_for_latency: u64,
    /// Frames of concealment played while waiting, dry, for the packet due: each grows
    /// the buffer by a frame.
    pub stretched: u64,
}

/// A frame held for playout.
#[derive(Debug)]
struct Held {
    payload: Vec<u8>,
    /// When its own packet brought it; `None` when a redundant copy in a later one did.
    arrival_ms: Option<f64>,
}

/// A wait, while playing, for a packet that has not come.
#[derive(Debug, Clone, Copy)]
struct Dry {
    /// Frames concealed so far.
    frames: u32,
    /// When the buffer first found nothing for the frame due (ms).
    since_ms: f64,
}

#[derive(Debug, Default)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Held>,
    /// When the first packet arrived (ms).
    first_arrival_ms: Option<f64>,
    /// The newest packet's extended sequence number and RTP timestamp.
    newest: Option<(u64, u32)>,
    /// How long each packet lasts, as the last two in a row showed (ms); `None` before.
    packet_ms: Option<f64>,
    /// The extended sequence number of the next frame to play.
    next: Option<u64>,
    highest: Option<u64>,
    playing: bool,
    /// While playing and dry: the frames concealed so far waiting for the packet due, and
    /// when the wait began (ms).
    dry: Option<Dry>,
    /// Interarrival jitter in milliseconds.
    jitter_ms: f64,
    last_transit_ms: Option<f64>,
    /// A running share of recent frames that were lost (recovered or concealed), counting
    /// the frames before the first as not lost.
    recent_loss: f64,
    /// Frames that moved `recent_loss` so far (up to the estimate's horizon).
    loss_frames: u32,
    /// The depth, in frames, that the late packets of the held peak showed was needed
    /// (0 when none is held).
    peak_frames: usize,
    /// Frames played since a late packet last showed a delay peak, held or not.
    since_peak: Option<u32>,
    /// Frames the held peak lasts from the latest late packet.
    peak_hold: u32,
    /// Frames popped in the current depth watch, and the least depth held at a pop.
    depth_watch: (u32, usize),
    /// Frames to skip, together at one pop, for a backlog that stood all through a watch.
    standing: usize,
    /// Pops since that backlog was found, while it waits for the stream to be quiet.
    standing_wait: u32,
    /// The most lateness (ms) the held peak's late packets showed, held as long as
    /// `peak_frames`.
    peak_ms: f64,
    /// Frames played from their own packets in the current phase watch, and the least
    /// time one of them waited between its arrival and its playout (ms).
    phase_watch: (u32, f64),
    /// How much earlier the playout clock may run, found at the end of the last watch.
    advance_ms: Option<f64>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet arrived at `arrival_ms` (any monotonic clock in milliseconds).
    pub fn push(&mut self, seq: u16, rtp_timestamp: u32, payload: Vec<u8>, arrival_ms: f64) {
        let seq = self.extend(seq);
        self.measure(rtp_timestamp, arrival_ms);
        self.learn_length(seq, rtp_timestamp);
        let first_ms = *self.first_arrival_ms.get_or_insert(arrival_ms);
        let starting = arrival_ms - first_ms < START_UP_MS;
        if let Some(next) = self.next {
            if seq < next {
                // Its frame was played without it: the buffer was this much too shallow.
                self.stats.late += 1;
                if !starting {
                    self.note_delay_peak(next - seq, (next - seq) as f64 * self.packet_ms());
                }
                return;
            }
            if seq == next
                && let Some(dry) = self.dry
                && !starting
            {
                // The packet waited for: it is played now, this many frames late.
                self.note_delay_peak(u64::from(dry.frames), arrival_ms - dry.since_ms);
            }
        }
        let held = Held {
            payload,
            arrival_ms: Some(arrival_ms),
        };
        if self
            .packets
            .insert(seq, held)
            .is_some_and(|before| before.arrival_ms.is_some())
        {
            self.stats.duplicates += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
    }

    /// Two packets in a row tell how long a packet lasts: the difference of their
    /// timestamps.
    fn learn_length(&mut self, seq: u64, rtp_timestamp: u32) {
        if let Some((newest, timestamp)) = self.newest {
            if seq <= newest {
                return;
            }
            let units = rtp_timestamp.wrapping_sub(timestamp);
            if seq == newest + 1 && PACKET_UNITS.contains(&units) {
                self.packet_ms = Some(f64::from(units) / TICKS_PER_MS);
            }
        }
        self.newest = Some((seq, rtp_timestamp));
    }

    /// How long a packet lasts (ms): a frame of 20 ms until two in a row said otherwise.
    fn packet_ms(&self) -> f64 {
        self.packet_ms.unwrap_or(FRAME_MS)
    }

    /// How many packets last `ms`, at least one.
    fn packets_in(&self, ms: f64) -> u32 {
        (ms / self.packet_ms()).round().max(1.0) as u32
    }

    /// A copy of an earlier frame arrived inside the packet `carrier_seq`, `offset` RTP
    /// timestamp units before that packet's own frame. It fills its frame's place if that
    /// frame is still to be played and nothing holds it; otherwise it is not needed, which
    /// is the common case and is not counted. A copy whose offset is not a whole number
    /// of packets back cannot be placed and is dropped.
    pub fn push_redundant(&mut self, carrier_seq: u16, offset: u32, payload: Vec<u8>) {
        let frame = (self.packet_ms() * TICKS_PER_MS).round() as u32;
        if offset == 0 || !offset.is_multiple_of(frame) {
            return;
        }
        let Ok(back) = u16::try_from(offset / frame) else {
            return;
        };
        let seq = self.extend(carrier_seq.wrapping_sub(back));
        if self.next.is_some_and(|next| seq < next) {
            return;
        }
        self.packets.entry(seq).or_insert(Held {
            payload,
            arrival_ms: None,
        });
    }

    /// The frame to play now (`now_ms` on the clock of the arrivals); call as each packet's
    /// worth is to be played (once per frame period for packets of a frame). `quiet`: the
    /// stream was quiet just before (see [`crate::dsp::QuietTicks`]), where a frame may be
    /// skipped unheard.
    pub fn pop(&mut self, now_ms: f64, quiet: bool) -> Playout {
        self.age_peak();
        self.watch_depth();
        self.next_playout(now_ms, quiet)
    }

    /// How much earlier (ms) the playout clock may run, once a watch found every frame
    /// waiting longer than it must; `None` while it should stay. The clock's owner calls
    /// [`JitterBuffer::moved_earlier`] when it moves.
    pub fn advance_ms(&self) -> Option<f64> {
        self.advance_ms
    }

    /// The playout clock moved earlier: the waits measured before no longer hold, and are
    /// watched afresh.
    pub fn moved_earlier(&mut self) {
        self.advance_ms = None;
        self.phase_watch = (0, 0.0);
    }

    /// What a frame must keep between its arrival and its playout: three times the jitter,
    /// or the lateness of the latest late packet while it is held, plus the clock's
    /// precision; while packets are being lost, a frame or two more (`frames_for_loss`),
    /// so that the packets after a lost one are here for their FEC or copies to fill in.
    pub fn guard_ms(&self) -> f64 {
        let for_loss = self.frames_for_loss() as f64 * self.packet_ms();
        (3.0 * self.jitter_ms).max(self.peak_ms) + MIN_GUARD_MS + for_loss
    }

    /// A frame from its own packet is played, `wait_ms` after it arrived; at the end of a
    /// watch, the least wait beyond the guard is what the clock may gain.
    fn watch_phase(&mut self, wait_ms: f64) {
        let watch = self.packets_in(PHASE_WATCH_MS);
        let (frames, least) = &mut self.phase_watch;
        *least = if *frames == 0 {
            wait_ms
        } else {
            least.min(wait_ms)
        };
        *frames += 1;
        if *frames >= watch {
            let spare = *least - self.guard_ms();
            self.advance_ms = (spare >= LEAST_ADVANCE_MS).then_some(spare);
            self.phase_watch = (0, 0.0);
        }
    }

    /// Whether a stream is being played (else it is silent: nothing received yet, or
    /// refilling).
    pub fn playing(&self) -> bool {
        self.playing
    }

    /// At the end of each watch while playing: the least depth held at a pop, beyond the
    /// target, was never needed (a burst queued when a call started, a path that got
    /// faster) and is skipped, all at one pop. Before, such a backlog stayed until it
    /// exceeded twice the target and two frames: up to six frames, 120 ms, for a whole call.
    fn watch_depth(&mut self) {
        if !self.playing {
            self.depth_watch = (0, usize::MAX);
            return;
        }
        let watch = self.packets_in(DEPTH_WATCH_MS);
        let (pops, least) = &mut self.depth_watch;
        *pops += 1;
        *least = (*least).min(self.packets.len());
        if *pops >= watch {
            self.standing = least.saturating_sub(self.target_frames());
            self.depth_watch = (0, usize::MAX);
        }
    }

    fn next_playout(&mut self, now_ms: f64, quiet: bool) -> Playout {
        if !self.playing {
            if self.packets.len() < self.target_frames() {
                return Playout::Silence;
            }
            self.moved_earlier();
            self.playing = true;
            let first = self.packets.keys().next().copied();
            self.next = match (self.next, first) {
                (Some(next), Some(first)) => Some(next.max(first)),
                (_, first) => first,
            };
        }
        let Some(next) = self.next else {
            return Playout::Silence;
        };
        if self.packets.is_empty() {
            return self.wait_dry(next, now_ms);
        }
        self.dry = None;
        // Too far behind, or behind all through the last watch (in a pause, or having
        // waited long enough for one): skip a frame to bring latency back down.
        let standing = self.standing > 0 && self.packets.len() > self.target_frames();
        if standing {
            self.standing_wait = self.standing_wait.saturating_add(1);
        } else {
            self.standing_wait = 0;
        }
        let unheard = quiet || self.standing_wait >= self.packets_in(QUIET_SKIP_WAIT_MS);
        if ((standing && unheard) || self.packets.len() > 2 * self.target_frames() + 2)
            && self.packets.contains_key(&next)
        {
            self.standing = self.standing.saturating_sub(1);
            self.packets.remove(&next);
            self.stats.dropped_for_latency += 1;
            self.next = Some(next + 1);
            return self.next_playout(now_ms, quiet);
        }
        self.next = Some(next + 1);
        if let Some(held) = self.packets.remove(&next) {
            self.stats.played += 1;
            match held.arrival_ms {
                Some(arrival_ms) => self.watch_phase(now_ms - arrival_ms),
                None => self.stats.repaired += 1,
            }
            self.record_frame(held.arrival_ms.is_none());
            return Playout::Packet(held.payload);
        }
        self.record_frame(true);
        match self.packets.get(&(next + 1)) {
            Some(following) => {
                self.stats.recovered += 1;
                Playout::Recover(following.payload.clone())
            }
            None => {
                self.stats.concealed += 1;
                Playout::Conceal
            }
        }
    }

    /// Nothing held while playing: conceal without consuming the frame due, so that a
    /// packet that is only late is still played when it comes. Waiting too long, the
    /// sender has stopped: the frame due counts as lost and the buffer refills.
    fn wait_dry(&mut self, next: u64, now_ms: f64) -> Playout {
        let most = self.packets_in(DRY_WAIT_MS);
        let dry = self.dry.get_or_insert(Dry {
            frames: 0,
            since_ms: now_ms,
        });
        dry.frames += 1;
        if dry.frames > most {
            self.dry = None;
            self.playing = false;
            self.next = Some(next + 1);
            self.record_frame(true);
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        self.stats.stretched += 1;
        Playout::Conceal
    }

    /// One frame played, `lost` if its packet was missing: the running loss share moves.
    fn record_frame(&mut self, lost: bool) {
        let this_frame = if lost { 1.0 - LOSS_MEMORY } else { 0.0 };
        self.recent_loss = self.recent_loss * LOSS_MEMORY + this_frame;
        // Past the horizon the start weighs under 1 %: the count need go no further.
        self.loss_frames = (self.loss_frames + 1).min(10 * LOSS_ESTIMATE_FRAMES);
    }

    /// A packet came `frames_late` frames (`lateness_ms`) after it was due: hold a target
    /// and a guard that would have had it in time, for a while from now. Delays that
    /// recur are held for [`PEAK_HOLD_MS`] after the latest, a lone one for
    /// [`LONE_PEAK_HOLD_MS`], as NetEQ keeps its peak mode only for peaks that repeat.
    fn note_delay_peak(&mut self, frames_late: u64, lateness_ms: f64) {
        let most = self.max_target();
        let needed = usize::try_from(frames_late)
            .unwrap_or(most)
            .saturating_add(1)
            .min(most);
        let recurring = self
            .since_peak
            .is_some_and(|frames| frames < self.packets_in(PEAK_HOLD_MS));
        self.peak_hold = self.packets_in(if recurring {
            PEAK_HOLD_MS
        } else {
            LONE_PEAK_HOLD_MS
        });
        self.since_peak = Some(0);
        self.peak_frames = self.peak_frames.max(needed);
        self.peak_ms = self.peak_ms.max(lateness_ms);
    }

    /// A held peak is let go whole once its hold has passed without another.
    fn age_peak(&mut self) {
        let Some(frames) = self.since_peak.as_mut() else {
            return;
        };
        *frames = frames.saturating_add(1);
        if *frames >= self.peak_hold {
            // No delay like it for the hold: the target and guard are the jitter's again.
            self.peak_frames = 0;
            self.peak_ms = 0.0;
        }
    }

    /// Forgets what is held and stops playing until packets come again: for a sender that
    /// said it stopped (muted), silence at once rather than concealment of what it said last.
    pub fn flush(&mut self) {
        self.packets.clear();
        self.playing = false;
        self.dry = None;
    }

    /// Frames held now.
    pub fn depth(&self) -> usize {
        self.packets.len()
    }

    /// Frames the buffer fills to before it plays, and keeps about twice of before it
    /// skips: one, and as many more as three times the jitter fills whole (the first
    /// frame's own share is covered by the playout clock keeping its guard after the
    /// arrivals, see [`JitterBuffer::guard_ms`]), and one more while packets are being
    /// lost, so the packet after a lost one is here in time for its FEC to rebuild the
    /// lost frame; and at least what a late packet lately showed was needed.
    pub fn target_frames(&self) -> usize {
        let for_jitter = 1 + (3.0 * self.jitter_ms / self.packet_ms()).floor() as usize;
        let for_loss = self.frames_for_loss();
        (for_jitter + for_loss)
            .max(self.peak_frames)
            .min(self.max_target())
    }

    /// The most packets held before the oldest are dropped.
    fn max_target(&self) -> usize {
        self.packets_in(MAX_TARGET_MS) as usize
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// The share of recent frames (about the last 100 played) whose own packet was missing
    /// when due, whether or not a copy filled in: the network's loss as this receiver sees
    /// it, 0 to 1. `None` until 100 frames were played. The running share starts from none
    /// lost, so it is divided by the weight its frames have so far: early in a call it
    /// would otherwise say a fraction of the loss there is.
    pub fn recent_loss(&self) -> Option<f64> {
        (self.loss_frames >= LOSS_ESTIMATE_FRAMES)
            .then(|| self.recent_loss / (1.0 - LOSS_MEMORY.powi(self.loss_frames as i32)))
    }

    /// Whether packets are being lost lately: the buffer then keeps a frame or two more
    /// (`frames_for_loss`).
    fn losing(&self) -> bool {
        self.recent_loss > LOSSY
    }

    /// Frames held beyond the jitter's for loss: as many as the copies a sender adds for
    /// the loss heard here reach back (`red::distance_for_loss`: one for a trace, two from
    /// 3 %), so that the packet carrying the copy of a frame lost with its successor is
    /// here when the frame is due; one for FEC alone, which only the next packet carries.
    fn frames_for_loss(&self) -> usize {
        if !self.losing() {
            return 0;
        }
        crate::red::distance_for_loss(Some(loss_percent(self.recent_loss))).max(1)
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// RTP sequence numbers wrap at 65536: extend them relative to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start high enough that a reordered first packet cannot go below zero.
            return (1 << 16) + u64::from(seq);
        };
        let base = highest & !0xffff;
        let candidates = [base.saturating_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .iter()
            .map(|b| b + u64::from(seq))
            .min_by_key(|c| c.abs_diff(highest))
            .unwrap_or(base + u64::from(seq))
    }

    /// RFC 3550's interarrival jitter: a running average of how much transit time varies.
    fn measure(&mut self, rtp_timestamp: u32, arrival_ms: f64) {
        let transit = arrival_ms - f64::from(rtp_timestamp) / TICKS_PER_MS;
        if let Some(last) = self.last_transit_ms {
            let mut d = (transit - last).abs();
            // A timestamp wrap shows as a jump of about 2^32 ticks: not jitter.
            if d > 1e6 {
                d = 0.0;
            }
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last_transit_ms = Some(transit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FRAME_SAMPLES;

    /// The time of a pop matters only to the playout clock's phase, tested on its own; the
    /// other tests leave it out.
    const UNTIMED: f64 = 0.0;
    /// The stream quiet at every pop: a backlog is skipped as soon as it is found.
    const QUIET: bool = true;

    fn packet(seq: u16) -> Vec<u8> {
        seq.to_be_bytes().to_vec()
    }

    /// Pushes packet `seq` as sent at its own time plus `delay_ms`.
    fn arrive(buffer: &mut JitterBuffer, seq: u16, delay_ms: f64) {
        let sent_ms = f64::from(seq) * FRAME_MS;
        buffer.push(
            seq,
            u32::from(seq) * FRAME_SAMPLES as u32,
            packet(seq),
            sent_ms + delay_ms,
        );
    }

    #[test]
    fn in_order_packets_play_in_order_with_one_frame_of_delay() {
        let mut buffer = JitterBuffer::new();
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Silence);
        for seq in 0..50 {
            arrive(&mut buffer, seq, 1.0);
            assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(seq)));
        }
        assert_eq!(buffer.target_frames(), 1);
        assert_eq!(buffer.stats().played, 50);
        assert_eq!(buffer.stats().concealed, 0);
    }

    /// Three frames at once, then a steady stream to packet 400, each played at once;
    /// `quiet_at` says whether the stream was quiet before the pop after packet `seq`.
    /// The buffer, and its depth after each packet from the fourth.
    fn burst_then_steady(quiet_at: impl Fn(u16) -> bool) -> (JitterBuffer, Vec<usize>) {
        let mut buffer = JitterBuffer::new();
        for seq in 0..3 {
            arrive(&mut buffer, seq, 60.0 - f64::from(seq) * FRAME_MS);
        }
        let mut depths = Vec::new();
        for seq in 3..400u16 {
            arrive(&mut buffer, seq, 1.0);
            depths.push(buffer.depth());
            assert!(matches!(
                buffer.pop(UNTIMED, quiet_at(seq)),
                Playout::Packet(_)
            ));
        }
        (buffer, depths)
    }

    /// A burst queued as a call starts (here three frames at once, then a steady stream;
    /// more than twice the target and two is skipped at once) is not kept for the whole
    /// call: after one watch the buffer skips down to its target.
    #[test]
    fn a_backlog_that_stands_for_a_watch_is_skipped_down_to_the_target() {
        let (buffer, depths) = burst_then_steady(|_| QUIET);
        let target = buffer.target_frames();
        assert!(depths[50] >= 4, "the burst stands at first: {}", depths[50]);
        assert!(
            depths[300] <= target,
            "{} held after 6 s, target {target}",
            depths[300]
        );
        assert_eq!(buffer.stats().concealed, 0);
        assert_eq!(buffer.stats().stretched, 0);
        assert!(buffer.stats().dropped_for_latency >= 3);
    }

    /// The same burst while the stream is loud (speech, a tone): the backlog found at the
    /// end of the watch waits for a pause and is skipped in it, or, with no pause, 2 s
    /// after it was found.
    #[test]
    fn a_standing_backlog_is_skipped_in_a_pause() {
        let depths_with = |pause_from: Option<u16>| -> Vec<usize> {
            let (buffer, depths) =
                burst_then_steady(|seq| pause_from.is_some_and(|from| seq >= from));
            assert_eq!(buffer.stats().concealed + buffer.stats().stretched, 0);
            depths
        };
        // Depths by the sequence number pushed before them.
        let at = |depths: &[usize], seq: usize| depths[seq - 3];
        let paused = depths_with(Some(150));
        assert!(at(&paused, 145) >= 3, "{paused:?}");
        assert!(at(&paused, 155) <= 1, "{paused:?}");
        let loud = depths_with(None);
        assert!(at(&loud, 195) >= 3, "{loud:?}");
        assert!(at(&loud, 215) <= 1, "{loud:?}");
    }

    #[test]
    fn recent_loss_follows_the_share_of_packets_missing() {
        let mut buffer = JitterBuffer::new();
        // One packet in ten lost: 10 %, said as soon as enough frames were played to say
        // anything, not a fraction of it that grows over the call's first seconds.
        let mut first_said = None;
        let horizon = LOSS_ESTIMATE_FRAMES as u16;
        for seq in 0..5 * horizon {
            if seq % 10 != 5 {
                arrive(&mut buffer, seq, 1.0);
            }
            buffer.pop(UNTIMED, QUIET);
            if first_said.is_none() {
                first_said = buffer.recent_loss().map(|loss| (seq, loss));
            }
        }
        let (at, first) = first_said.expect("a loss said within five horizons");
        assert!(
            (horizon - 1..=horizon + 10).contains(&at),
            "first said after frame {at}"
        );
        assert!((0.08..0.12).contains(&first), "{first}");
        let lossy = buffer.recent_loss().expect("said after five horizons");
        assert!((0.08..0.12).contains(&lossy), "{lossy}");
        // Then none lost: it drains back towards zero.
        for seq in 5 * horizon..10 * horizon {
            arrive(&mut buffer, seq, 1.0);
            buffer.pop(UNTIMED, QUIET);
        }
        let drained = buffer.recent_loss().expect("said after ten horizons");
        assert!(drained < 0.01, "{drained}");
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut buffer = JitterBuffer::new();
        let mut played = Vec::new();
        for pair in [[1, 0], [3, 2]] {
            for seq in pair {
                arrive(&mut buffer, seq, 1.0);
            }
            played.extend([buffer.pop(UNTIMED, QUIET), buffer.pop(UNTIMED, QUIET)]);
        }
        arrive(&mut buffer, 4, 1.0);
        played.push(buffer.pop(UNTIMED, QUIET));
        assert_eq!(
            played,
            (0..5)
                .map(|s| Playout::Packet(packet(s)))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next_or_concealed() {
        let mut buffer = JitterBuffer::new();
        for seq in [0, 2, 3, 6] {
            arrive(&mut buffer, seq, 1.0);
        }
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(0)));
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Recover(packet(2)));
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(2)));
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(3)));
        assert_eq!(
            buffer.pop(UNTIMED, QUIET),
            Playout::Conceal,
            "4 lost, 5 lost too: nothing to recover from"
        );
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Recover(packet(6)));
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(6)));
        let stats = buffer.stats();
        assert_eq!((stats.recovered, stats.concealed), (2, 1));
    }

    /// Packet `seq` arrives on time carrying copies of the `copies` frames before it.
    fn arrive_with_copies(buffer: &mut JitterBuffer, seq: u16, copies: u16) {
        arrive(buffer, seq, 1.0);
        for back in 1..=copies.min(seq) {
            buffer.push_redundant(
                seq,
                u32::from(back) * FRAME_SAMPLES as u32,
                packet(seq - back),
            );
        }
    }

    #[test]
    fn lost_packets_play_whole_from_the_copies_later_ones_carried() {
        let mut buffer = JitterBuffer::new();
        let mut played = Vec::new();
        // 3 lost, then 5 and 6; each packet carries copies of the two frames before it.
        // The buffer holds a frame beyond the one due, as it does while packets are lost.
        buffer.recent_loss = 0.02;
        for seq in 0..8u16 {
            if ![3, 5, 6].contains(&seq) {
                arrive_with_copies(&mut buffer, seq, 2);
            }
            if seq >= 1 {
                played.push(buffer.pop(UNTIMED, QUIET));
            }
        }
        played.push(buffer.pop(UNTIMED, QUIET));
        played.push(buffer.pop(UNTIMED, QUIET));
        let whole: Vec<Playout> = played
            .iter()
            .filter(|p| **p != Playout::Conceal)
            .cloned()
            .collect();
        let expected: Vec<Playout> = (0..8).map(|s| Playout::Packet(packet(s))).collect();
        assert_eq!(whole, expected, "{played:?}");
        let stats = buffer.stats();
        assert_eq!(
            (stats.repaired, stats.recovered, stats.concealed),
            (3, 0, 0)
        );
        // Two in a row outrun the frame held beyond the one due: the buffer waits a frame
        // for the copies instead of losing both.
        assert_eq!(stats.stretched, 1, "{played:?}");
        assert_eq!(
            (stats.late, stats.duplicates),
            (0, 0),
            "copies are not counted"
        );
        // The network lost three frames: the measured loss says so, though none was
        // lost to the ear, so the sender keeps its redundancy.
        assert!(buffer.recent_loss > 0.02, "{}", buffer.recent_loss);
    }

    /// Plays `frames` frames with a seeded random `share` of packets lost, each packet
    /// carrying copies of `copies` frames before it; returns what the playout met.
    fn play_lossy(frames: u16, share: f64, copies: u16) -> JitterStats {
        let mut buffer = JitterBuffer::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for seq in 0..frames {
            // xorshift64: the same losses for every mode compared.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (state % 10_000) as f64 >= share * 10_000.0 {
                arrive_with_copies(&mut buffer, seq, copies);
            }
            buffer.pop(UNTIMED, QUIET);
        }
        buffer.stats()
    }

    #[test]
    fn under_10_percent_loss_copies_leave_far_fewer_frames_concealed_than_fec_alone() {
        let fec = play_lossy(5000, 0.10, 0);
        let one = play_lossy(5000, 0.10, 1);
        let two = play_lossy(5000, 0.10, 2);
        eprintln!("FEC alone {fec:?}\none copy {one:?}\ntwo copies {two:?}");
        // FEC rebuilds a lone loss at a lower bit rate and conceals two in a row.
        assert!(fec.concealed > 20 && fec.recovered > 300, "{fec:?}");
        // One copy plays a lone loss whole; two copies also two in a row.
        assert!(one.concealed * 2 < fec.concealed, "{one:?} against {fec:?}");
        assert!(two.concealed * 5 < fec.concealed, "{two:?} against {fec:?}");
        assert!(two.repaired > 400 && two.recovered < 10, "{two:?}");
    }

    #[test]
    fn a_copy_of_a_frame_played_or_held_changes_nothing() {
        let mut buffer = JitterBuffer::new();
        arrive(&mut buffer, 0, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(0)));
        arrive(&mut buffer, 1, 1.0);
        arrive(&mut buffer, 2, 1.0);
        // A copy of 0 (played) and of 1 (held), and one whose offset is not whole frames.
        buffer.push_redundant(2, 1920, b"stale".to_vec());
        buffer.push_redundant(2, FRAME_SAMPLES as u32, b"copy".to_vec());
        buffer.push_redundant(2, 500, b"odd".to_vec());
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(1)));
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(2)));
        assert_eq!(buffer.depth(), 0);
        let stats = buffer.stats();
        assert_eq!((stats.late, stats.duplicates, stats.repaired), (0, 0, 0));
    }

    #[test]
    fn a_packet_arriving_after_its_copy_is_not_a_duplicate() {
        let mut buffer = JitterBuffer::new();
        arrive(&mut buffer, 0, 1.0);
        arrive(&mut buffer, 2, 1.0);
        buffer.push_redundant(2, FRAME_SAMPLES as u32, packet(1));
        arrive(&mut buffer, 1, 5.0);
        for seq in 0..3 {
            assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(seq)));
        }
        let stats = buffer.stats();
        assert_eq!((stats.duplicates, stats.repaired), (0, 0));
    }

    #[test]
    fn late_and_duplicate_packets_are_dropped() {
        let mut buffer = JitterBuffer::new();
        arrive(&mut buffer, 0, 1.0);
        arrive(&mut buffer, 1, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(0)));
        arrive(&mut buffer, 0, 40.0);
        arrive(&mut buffer, 1, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(1)));
        assert_eq!(buffer.stats().late, 1);
        assert_eq!(buffer.stats().duplicates, 1);
    }

    #[test]
    fn the_target_grows_with_jitter_and_shrinks_when_it_calms() {
        let mut buffer = JitterBuffer::new();
        let mut seq = 0u16;
        // Rough: delays swing between 0 and 60 ms.
        for i in 0..200 {
            arrive(&mut buffer, seq, if i % 2 == 0 { 0.0 } else { 60.0 });
            seq = seq.wrapping_add(1);
        }
        let rough = buffer.target_frames();
        assert!(rough >= 5, "target {rough} for ~60 ms of jitter");
        // Calm: a steady 5 ms.
        for _ in 0..400 {
            arrive(&mut buffer, seq, 5.0);
            seq = seq.wrapping_add(1);
        }
        assert!(
            buffer.target_frames() <= 2,
            "target {} after calm",
            buffer.target_frames()
        );
    }

    #[test]
    fn a_backlog_is_trimmed_to_cut_latency() {
        let mut buffer = JitterBuffer::new();
        for seq in 0..20 {
            arrive(&mut buffer, seq, 1.0);
        }
        buffer.pop(UNTIMED, QUIET);
        assert!(buffer.stats().dropped_for_latency > 0);
        assert!(buffer.depth() <= 2 * buffer.target_frames() + 2);
    }

    #[test]
    fn a_lost_packet_is_waited_for_once_then_rebuilt_from_fec() {
        let mut buffer = JitterBuffer::new();
        // Steady traffic with packet 10 and packet 40 lost, one pop per arrival.
        for seq in 0..60u16 {
            if seq != 10 && seq != 40 {
                arrive(&mut buffer, seq, 1.0);
            }
            buffer.pop(UNTIMED, QUIET);
        }
        assert!(buffer.target_frames() >= 2, "loss raised the target");
        // The first loss found the buffer dry: it waited a frame, and the successor that
        // came meanwhile rebuilt it. By the second, the buffer was deep enough not to wait.
        let stats = buffer.stats();
        assert_eq!((stats.recovered, stats.concealed), (2, 0), "{stats:?}");
        assert_eq!(stats.stretched, 1, "{stats:?}");
    }

    #[test]
    fn a_flushed_buffer_is_silent_until_packets_come_again() {
        let mut buffer = JitterBuffer::new();
        for seq in 0..3 {
            arrive(&mut buffer, seq, 1.0);
        }
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(0)));
        buffer.flush();
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Silence);
        assert_eq!(buffer.stats().concealed, 0);
        arrive(&mut buffer, 9, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(9)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut buffer = JitterBuffer::new();
        for seq in [65_534u16, 65_535, 0, 1] {
            buffer.push(seq, 0, packet(seq), 0.0);
        }
        let played: Vec<Playout> = (0..4).map(|_| buffer.pop(UNTIMED, QUIET)).collect();
        assert_eq!(
            played,
            [65_534u16, 65_535, 0, 1]
                .iter()
                .map(|s| Playout::Packet(packet(*s)))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_sender_that_stops_is_concealed_briefly_then_silent_until_it_comes_back() {
        let mut buffer = JitterBuffer::new();
        arrive(&mut buffer, 0, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(0)));
        for _ in 0..=buffer.packets_in(DRY_WAIT_MS) {
            assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Conceal);
        }
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Silence);
        assert_eq!(buffer.stats().concealed, 1, "one frame counts as lost");
        // The loss raised the target to two frames: it refills to that before playing.
        arrive(&mut buffer, 30, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Silence);
        arrive(&mut buffer, 31, 1.0);
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(30)));
    }

    /// Threads kept waiting by another program deliver a packet two frames late, then the
    /// rest in a burst: the late one is played, not dropped, after concealment that grows
    /// the buffer; and the same delay again later is ridden out without a sound of it.
    #[test]
    fn a_late_packet_is_waited_for_and_the_next_delay_like_it_goes_unheard() {
        let mut buffer = JitterBuffer::new();
        let mut playouts = Vec::new();
        // Steady at one frame of depth, then, past the stream's start-up, packets 60 and 61
        // held back 40 ms (a stall of the receiving threads), then steady again, then
        // packets 120 and 121 held back alike.
        let mut held = Vec::new();
        for seq in 0..180u16 {
            if matches!(seq, 60 | 61 | 120 | 121) {
                held.push(seq);
            } else {
                for late in held.drain(..) {
                    arrive(&mut buffer, late, 41.0);
                }
                arrive(&mut buffer, seq, 1.0);
            }
            playouts.push(buffer.pop(UNTIMED, QUIET));
        }
        let stats = buffer.stats();
        assert_eq!(stats.late, 0, "nothing dropped as late: {stats:?}");
        assert_eq!(
            stats.concealed + stats.recovered,
            0,
            "nothing lost: {stats:?}"
        );
        assert_eq!(
            stats.stretched, 2,
            "one wait of two frames, once: {stats:?}"
        );
        let waits: Vec<usize> = playouts
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == Playout::Conceal)
            .map(|(i, _)| i)
            .collect();
        assert!(waits.iter().all(|i| (60..70).contains(i)), "{waits:?}");
        assert!(buffer.target_frames() >= 3, "the peak is held");
    }

    /// The same stall in the stream's first second (its sender getting going) is waited
    /// out, but the buffer keeps no more than the jitter asks for afterwards.
    #[test]
    fn a_delay_as_a_stream_starts_is_waited_out_and_not_held() {
        let mut buffer = JitterBuffer::new();
        let mut held = Vec::new();
        for seq in 0..140u16 {
            if matches!(seq, 5 | 6) {
                held.push(seq);
            } else {
                for late in held.drain(..) {
                    arrive(&mut buffer, late, 41.0);
                }
                arrive(&mut buffer, seq, 1.0);
            }
            buffer.pop(UNTIMED, QUIET);
        }
        let stats = buffer.stats();
        assert_eq!(stats.late + stats.concealed, 0, "{stats:?}");
        assert_eq!(stats.stretched, 2, "{stats:?}");
        assert_eq!(buffer.target_frames(), 1);
        assert!(buffer.guard_ms() < 10.0, "{}", buffer.guard_ms());
    }

    /// A sender's packets of 10 ms: the buffer's times are as long as with 20 ms packets,
    /// so it waits, dry, 100 ms of them (ten), and a late one counts 10 ms per packet.
    #[test]
    fn holds_and_guards_are_times_whatever_the_packets_length() {
        let mut buffer = JitterBuffer::new();
        // A second and a half of them in time: past the stream's start-up.
        for seq in 0..150u16 {
            let arrival_ms = f64::from(seq) * 10.0 + 1.0;
            buffer.push(seq, u32::from(seq) * 480, packet(seq), arrival_ms);
            assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Packet(packet(seq)));
        }
        assert_eq!(buffer.packets_in(DRY_WAIT_MS), 10);
        // Packet 150 does not come in time: ten waits, then it counts as lost.
        for _ in 0..=10 {
            assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Conceal);
        }
        assert_eq!(buffer.pop(UNTIMED, QUIET), Playout::Silence);
        buffer.push(150, 150 * 480, packet(150), 1_512.0);
        assert_eq!(buffer.stats().late, 1);
        // The packet late by one, and one more for the loss the dry wait counted.
        let guard = 10.0 + MIN_GUARD_MS + 10.0;
        assert!(
            (buffer.guard_ms() - guard).abs() < 0.5,
            "{}",
            buffer.guard_ms()
        );
    }

    /// A one-off stall: its depth and lateness are held for a short while, then let go
    /// whole.
    #[test]
    fn a_lone_peak_is_let_go_after_a_short_hold() {
        let mut buffer = JitterBuffer::new();
        buffer.note_delay_peak(2, 2.0 * FRAME_MS);
        assert_eq!(buffer.target_frames(), 3);
        for _ in 1..buffer.packets_in(LONE_PEAK_HOLD_MS) {
            buffer.pop(UNTIMED, QUIET);
        }
        assert_eq!(buffer.target_frames(), 3, "held until the end of the hold");
        assert!(buffer.guard_ms() >= 2.0 * FRAME_MS, "{}", buffer.guard_ms());
        buffer.pop(UNTIMED, QUIET);
        assert_eq!(buffer.target_frames(), 1);
        assert!(buffer.guard_ms() < 10.0, "{}", buffer.guard_ms());
    }

    /// Stalls that come back: the deepest is held until a long hold passes after the
    /// latest, and then let go whole.
    #[test]
    fn peaks_that_recur_are_held_until_a_hold_passes_without_one() {
        let mut buffer = JitterBuffer::new();
        buffer.note_delay_peak(2, 2.0 * FRAME_MS);
        // Past the lone peak's hold: it has been let go when the next stall comes.
        for _ in 0..buffer.packets_in(LONE_PEAK_HOLD_MS + 3_000.0) {
            buffer.pop(UNTIMED, QUIET);
        }
        assert_eq!(buffer.target_frames(), 1);
        buffer.note_delay_peak(2, 2.0 * FRAME_MS);
        for _ in 0..buffer.packets_in(3_000.0) {
            buffer.pop(UNTIMED, QUIET);
        }
        buffer.note_delay_peak(1, FRAME_MS);
        assert_eq!(buffer.target_frames(), 3, "the deeper of the two is held");
        for _ in 1..buffer.packets_in(PEAK_HOLD_MS) {
            buffer.pop(UNTIMED, QUIET);
        }
        assert_eq!(buffer.target_frames(), 3, "held until the end of the hold");
        buffer.pop(UNTIMED, QUIET);
        assert_eq!(buffer.target_frames(), 1);
    }

    /// Packets arrive 1 ms after their send time and are played 15 ms after it: after a
    /// watch, the clock may run 12 ms earlier (a guard of 2 ms with no jitter); once it
    /// has, frames wait about the guard and it stays.
    #[test]
    fn the_playout_clock_is_told_to_run_earlier_when_every_frame_waited_too_long() {
        let mut buffer = JitterBuffer::new();
        let mut play_offset_ms = 15.0;
        let mut advances = Vec::new();
        for seq in 0..300u16 {
            arrive(&mut buffer, seq, 1.0);
            let now = f64::from(seq) * FRAME_MS + play_offset_ms;
            assert!(matches!(buffer.pop(now, QUIET), Playout::Packet(_)));
            if let Some(ms) = buffer.advance_ms() {
                advances.push(ms);
                play_offset_ms -= ms;
                buffer.moved_earlier();
            }
        }
        assert_eq!(advances.len(), 1, "{advances:?}");
        assert!((advances[0] - 12.0).abs() < 0.5, "{advances:?}");
        assert_eq!(buffer.stats().stretched, 0);
    }

    /// While packets are being lost, a frame keeps one frame more: the next packet, whose
    /// FEC fills in, must be here when a lost one is due. The clock follows the advice
    /// as the engine does.
    #[test]
    fn under_loss_the_clock_keeps_a_frame_more_after_the_arrivals() {
        let mut buffer = JitterBuffer::new();
        let mut play_offset_ms = 5.0;
        for seq in 0..600u16 {
            if seq % 10 != 5 {
                arrive(&mut buffer, seq, 1.0);
            }
            buffer.pop(f64::from(seq) * FRAME_MS + play_offset_ms, QUIET);
            if let Some(ms) = buffer.advance_ms() {
                play_offset_ms -= ms.min(15.0);
                buffer.moved_earlier();
            }
        }
        assert!(buffer.recent_loss().is_some_and(|loss| loss > LOSSY));
        let stats = buffer.stats();
        // Frames played wait at least a frame and the guard after their arrival.
        let waited = play_offset_ms + FRAME_MS * stats.stretched as f64 - 1.0;
        assert!(waited >= FRAME_MS + MIN_GUARD_MS, "{waited} ms, {stats:?}");
        assert!(stats.stretched <= 2, "{stats:?}");
        assert_eq!(stats.concealed, 0, "every loss rebuilt from FEC: {stats:?}");
    }

    /// Under a trace of loss the buffer keeps a frame more (the next packet's FEC or copy);
    /// from 3 %, two (senders then add copies of two frames back).
    #[test]
    fn the_buffer_keeps_as_many_frames_more_as_the_copies_reach_back() {
        for (every, more) in [(100u16, 1), (10, 2)] {
            let mut buffer = JitterBuffer::new();
            for seq in 0..1_000u16 {
                if seq % every != every / 2 {
                    arrive(&mut buffer, seq, 1.0);
                }
                buffer.pop(UNTIMED, QUIET);
            }
            assert!(buffer.losing(), "one in {every} lost");
            assert_eq!(buffer.frames_for_loss(), more, "one in {every} lost");
            assert_eq!(buffer.target_frames(), 1 + more, "one in {every} lost");
        }
    }

    /// A packet that came 7 ms after its frame was due raises the guard to that, so the
    /// clock never moves closer to the arrivals than the delay just met.
    #[test]
    fn a_late_packet_keeps_the_clock_its_lateness_behind_the_arrivals() {
        let mut buffer = JitterBuffer::new();
        // Two seconds in time: past the stream's start-up.
        for seq in 0..100u16 {
            arrive(&mut buffer, seq, 1.0);
            buffer.pop(f64::from(seq) * FRAME_MS + 3.0, QUIET);
        }
        // Packet 100 is due at 2,003 ms and comes at 2,010.
        assert_eq!(buffer.pop(100.0 * FRAME_MS + 3.0, QUIET), Playout::Conceal);
        arrive(&mut buffer, 100, 10.0);
        assert!(
            buffer.guard_ms() >= 7.0 + MIN_GUARD_MS,
            "{}",
            buffer.guard_ms()
        );
    }
}
