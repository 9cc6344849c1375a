//! The adaptive jitter buffer: packets arrive early, late, out of order or not at all; the
//! playout clock asks for one frame every 20 ms. Plain data: arrival times are passed in.
//!
//! Each call to [`JitterBuffer::pop`] answers with the packet due, or, when it is missing,
//! with the next packet (whose in-band FEC rebuilds the lost frame), or with concealment.
//! The buffer holds a target number of frames, from one up, sized from the interarrival
//! jitter (RFC 3550's estimator): it grows when the network gets rough and drains back when
//! it calms down, so latency stays as low as the network allows.

use std::collections::BTreeMap;

use crate::FRAME_MS;

/// Frames held at most before the oldest are dropped to cut latency.
const MAX_TARGET: usize = 10;
/// How much of the loss estimate each frame keeps: it reflects about the last 100 frames.
const LOSS_MEMORY: f64 = 0.99;
/// A loss share above which the buffer holds an extra frame for FEC (about one in 200).
const LOSSY: f64 = 0.005;
/// RTP timestamp units (48 kHz) per millisecond.
const TICKS_PER_MS: f64 = 48.0;

/// What to play for the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Vec<u8>),
    /// The due packet is lost; this is the next one: recover the frame from its FEC.
    Recover(Vec<u8>),
    /// Lost with nothing to recover from: conceal.
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
    pub duplicates: u64,
    pub dropped_for_latency: u64,
    /// Frames of concealment played to grow the buffer (no packet was lost).
    pub stretched: u64,
}

#[derive(Debug, Default)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Vec<u8>>,
    /// The extended sequence number of the next frame to play.
    next: Option<u64>,
    highest: Option<u64>,
    playing: bool,
    /// Interarrival jitter in milliseconds.
    jitter_ms: f64,
    last_transit_ms: Option<f64>,
    /// A running share of recent frames that were lost (recovered or concealed).
    recent_loss: f64,
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
        if self.next.is_some_and(|next| seq < next) {
            self.stats.late += 1;
            return;
        }
        if self.packets.insert(seq, payload).is_some() {
            self.stats.duplicates += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
    }

    /// The frame to play now; call once per frame period.
    pub fn pop(&mut self) -> Playout {
        if !self.playing {
            if self.packets.len() < self.target_frames() {
                return Playout::Silence;
            }
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
        // Below target (jitter rose, or loss began): play one concealed frame without
        // consuming, so the buffer grows by a frame.
        if self.packets.len() + 1 < self.target_frames() {
            self.stats.stretched += 1;
            return Playout::Conceal;
        }
        // Too far behind: skip a frame to bring latency back down.
        if self.packets.len() > 2 * self.target_frames() + 2 && self.packets.contains_key(&next) {
            self.packets.remove(&next);
            self.stats.dropped_for_latency += 1;
            self.next = Some(next + 1);
            return self.pop();
        }
        self.next = Some(next + 1);
        if let Some(packet) = self.packets.remove(&next) {
            self.stats.played += 1;
            self.recent_loss *= LOSS_MEMORY;
            return Playout::Packet(packet);
        }
        self.recent_loss = self.recent_loss * LOSS_MEMORY + (1.0 - LOSS_MEMORY);
        if self.packets.is_empty() {
            // Ran dry: conceal this frame, then wait to refill before playing again.
            self.playing = false;
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        match self.packets.get(&(next + 1)) {
            Some(following) => {
                self.stats.recovered += 1;
                Playout::Recover(following.clone())
            }
            None => {
                self.stats.concealed += 1;
                Playout::Conceal
            }
        }
    }

    /// Forgets what is held and stops playing until packets come again: for a sender that
    /// said it stopped (muted), silence at once rather than concealment of what it said last.
    pub fn flush(&mut self) {
        self.packets.clear();
        self.playing = false;
    }

    /// Frames held now.
    pub fn depth(&self) -> usize {
        self.packets.len()
    }

    /// Frames the buffer aims to hold: enough to ride out about three times the jitter,
    /// and one more while packets are being lost, so the packet after a lost one is here
    /// in time for its FEC to rebuild the lost frame.
    pub fn target_frames(&self) -> usize {
        let for_jitter = 1 + (3.0 * self.jitter_ms / FRAME_MS).ceil() as usize;
        let for_loss = usize::from(self.recent_loss > LOSSY);
        (for_jitter + for_loss).min(MAX_TARGET)
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// The share of recent frames (about the last 100 played) whose packet was missing
    /// when due: the network's loss as this receiver sees it, 0 to 1.
    pub fn recent_loss(&self) -> f64 {
        self.recent_loss
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

    fn packet(seq: u16) -> Vec<u8> {
        seq.to_be_bytes().to_vec()
    }

    /// Pushes packet `seq` as sent at its own time plus `delay_ms`.
    fn arrive(buffer: &mut JitterBuffer, seq: u16, delay_ms: f64) {
        let sent_ms = f64::from(seq) * FRAME_MS;
        buffer.push(seq, u32::from(seq) * 960, packet(seq), sent_ms + delay_ms);
    }

    #[test]
    fn in_order_packets_play_in_order_with_one_frame_of_delay() {
        let mut buffer = JitterBuffer::new();
        assert_eq!(buffer.pop(), Playout::Silence);
        for seq in 0..50 {
            arrive(&mut buffer, seq, 1.0);
            assert_eq!(buffer.pop(), Playout::Packet(packet(seq)));
        }
        assert_eq!(buffer.target_frames(), 1);
        assert_eq!(buffer.stats().played, 50);
        assert_eq!(buffer.stats().concealed, 0);
    }

    #[test]
    fn recent_loss_follows_the_share_of_packets_missing() {
        let mut buffer = JitterBuffer::new();
        // One packet in ten lost, for 500 frames: about 10 %.
        for seq in 0..500u16 {
            if seq % 10 != 5 {
                arrive(&mut buffer, seq, 1.0);
            }
            buffer.pop();
        }
        let lossy = buffer.recent_loss();
        assert!((0.06..0.14).contains(&lossy), "{lossy}");
        // Then none lost: it drains back towards zero.
        for seq in 500..1000u16 {
            arrive(&mut buffer, seq, 1.0);
            buffer.pop();
        }
        assert!(buffer.recent_loss() < 0.01, "{}", buffer.recent_loss());
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut buffer = JitterBuffer::new();
        let mut played = Vec::new();
        for pair in [[1, 0], [3, 2]] {
            for seq in pair {
                arrive(&mut buffer, seq, 1.0);
            }
            played.extend([buffer.pop(), buffer.pop()]);
        }
        arrive(&mut buffer, 4, 1.0);
        played.push(buffer.pop());
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
        assert_eq!(buffer.pop(), Playout::Packet(packet(0)));
        assert_eq!(buffer.pop(), Playout::Recover(packet(2)));
        assert_eq!(buffer.pop(), Playout::Packet(packet(2)));
        assert_eq!(buffer.pop(), Playout::Packet(packet(3)));
        assert_eq!(
            buffer.pop(),
            Playout::Conceal,
            "4 lost, 5 lost too: nothing to recover from"
        );
        assert_eq!(buffer.pop(), Playout::Recover(packet(6)));
        assert_eq!(buffer.pop(), Playout::Packet(packet(6)));
        let stats = buffer.stats();
        assert_eq!((stats.recovered, stats.concealed), (2, 1));
    }

    #[test]
    fn late_and_duplicate_packets_are_dropped() {
        let mut buffer = JitterBuffer::new();
        arrive(&mut buffer, 0, 1.0);
        arrive(&mut buffer, 1, 1.0);
        assert_eq!(buffer.pop(), Playout::Packet(packet(0)));
        arrive(&mut buffer, 0, 40.0);
        arrive(&mut buffer, 1, 1.0);
        assert_eq!(buffer.pop(), Playout::Packet(packet(1)));
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
        buffer.pop();
        assert!(buffer.stats().dropped_for_latency > 0);
        assert!(buffer.depth() <= 2 * buffer.target_frames() + 2);
    }

    #[test]
    fn loss_adds_a_frame_so_fec_can_rebuild_the_next_loss() {
        let mut buffer = JitterBuffer::new();
        let mut playouts = Vec::new();
        // Steady traffic with packet 10 and packet 40 lost, one pop per arrival.
        for seq in 0..60u16 {
            if seq != 10 && seq != 40 {
                arrive(&mut buffer, seq, 1.0);
            }
            playouts.push(buffer.pop());
        }
        assert!(buffer.target_frames() >= 2, "loss raised the target");
        // The first loss could only be concealed (its successor was not here yet); by the
        // second, the buffer had grown and FEC rebuilt it.
        assert_eq!(buffer.stats().concealed, 1, "{:?}", buffer.stats());
        assert_eq!(buffer.stats().recovered, 1, "{:?}", buffer.stats());
    }

    #[test]
    fn a_flushed_buffer_is_silent_until_packets_come_again() {
        let mut buffer = JitterBuffer::new();
        for seq in 0..3 {
            arrive(&mut buffer, seq, 1.0);
        }
        assert_eq!(buffer.pop(), Playout::Packet(packet(0)));
        buffer.flush();
        assert_eq!(buffer.pop(), Playout::Silence);
        assert_eq!(buffer.stats().concealed, 0);
        arrive(&mut buffer, 9, 1.0);
        assert_eq!(buffer.pop(), Playout::Packet(packet(9)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut buffer = JitterBuffer::new();
        for seq in [65_534u16, 65_535, 0, 1] {
            buffer.push(seq, 0, packet(seq), 0.0);
        }
        let played: Vec<Playout> = (0..4).map(|_| buffer.pop()).collect();
        assert_eq!(
            played,
            [65_534u16, 65_535, 0, 1]
                .iter()
                .map(|s| Playout::Packet(packet(*s)))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn running_dry_conceals_then_refills_before_playing_again() {
        let mut buffer = JitterBuffer::new();
        arrive(&mut buffer, 0, 1.0);
        assert_eq!(buffer.pop(), Playout::Packet(packet(0)));
        assert_eq!(buffer.pop(), Playout::Conceal);
        assert_eq!(buffer.pop(), Playout::Silence);
        // The loss raised the target to two frames: it refills to that before playing.
        arrive(&mut buffer, 3, 1.0);
        assert_eq!(buffer.pop(), Playout::Silence);
        arrive(&mut buffer, 4, 1.0);
        assert_eq!(buffer.pop(), Playout::Packet(packet(3)));
    }
}
