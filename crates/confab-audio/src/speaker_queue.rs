//! What a speaker's ring holds, decided where frames go in: on the engine's tick.
//!
//! The ring is fed a frame at a time and drained a request at a time on the sound server's
//! clock. What it holds just before a write is what must cover the tick being late, but as
//! a count it is a saw: it moves by a whole request whenever the two clocks' phases cross
//! (at 44.1 kHz a tick brings 882 samples and requests of 220 take 880, so now and then a
//! tick meets five requests, not four). So the level watched here is the ring less what
//! the device has played since its last request (at most a request): a smooth measure
//! that is zero just as the ring would run dry. It is held at its target by following the
//! device's clock (`drift`). Below the margin, silence brings it back before the write (a
//! stream's start, or a tick later than the margin); a backlog past the excess (a stream
//! that started late) is dropped at once, oldest first, by the callback, and a smaller one
//! once it has stood through a watch (`drift::Backlog`). Deciding at the
//! callback instead, as this once did, saw the ring at whatever phase a request came, and
//! with the clocks apart it ran dry every second or two on an idle machine, each time
//! growing the margin and the delay.

use crate::cushion::Cushion;
use crate::drift::Backlog;

/// What to do before a write, in samples at the device's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Adjust {
    /// Silence to queue ahead of the frame.
    pub pad: usize,
    /// Oldest samples the callback should drop.
    pub drop: usize,
}

/// The playback ring's keeper, on the writing side.
#[derive(Debug)]
pub(crate) struct SpeakerQueue {
    cushion: Cushion,
    /// Beyond the target, a backlog cut back at once.
    excess: usize,
    /// The callback's underruns already given to the cushion.
    underruns_seen: u64,
    backlog: Backlog,
    /// Samples per ms at the device's rate.
    per_ms: f64,
}

impl SpeakerQueue {
    pub(crate) fn new(cushion: Cushion, excess: usize, rate: u32) -> Self {
        Self {
            cushion,
            excess,
            underruns_seen: 0,
            backlog: Backlog::default(),
            per_ms: f64::from(rate) / 1000.0,
        }
    }

    /// Before a write: `low` is the level (the ring, less the drops asked and not yet made,
    /// less what was played since the last request), `request` the callback's request,
    /// `underruns` the callback's count so far.
    pub(crate) fn before_write(&mut self, low: usize, request: usize, underruns: u64) -> Adjust {
        for _ in self.underruns_seen..underruns {
            self.cushion.underrun();
        }
        self.underruns_seen = self.underruns_seen.max(underruns);
        let margin = self.cushion.margin();
        let target = self.target(request);
        if low < margin {
            self.cushion.served(margin);
            return Adjust {
                pad: margin - low,
                drop: 0,
            };
        }
        if low > target + self.excess {
            return Adjust {
                pad: 0,
                drop: low - target,
            };
        }
        self.cushion.served(low);
        let above_ms = (low as f64 - target as f64) / self.per_ms;
        let drop = self
            .backlog
            .note(above_ms)
            .map_or(0, |ms| (ms * self.per_ms) as usize);
        Adjust { pad: 0, drop }
    }

    /// The level held: half a request above the margin, room for the requests' own
    /// unevenness before a pad.
    pub(crate) fn target(&self, request: usize) -> usize {
        self.cushion.margin() + request / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::DriftControl;

    const REQUEST: usize = 220;
    const MARGIN: usize = 220;
    const PER_MS: f64 = 44.1;

    fn queue() -> SpeakerQueue {
        SpeakerQueue::new(Cushion::new(MARGIN, 220, 2_640, 100), 2_646, 44_100)
    }

    /// A ring fed on a 20 ms tick (882 samples at 44.1 kHz, at the drift controller's
    /// ratio) and drained by requests of `REQUEST` on a clock `fast` times ours; tick `t`
    /// comes `late(t)` µs late. Returns the underruns, and the silence padded after the
    /// stream's first two seconds.
    fn run(ticks: u64, fast: f64, late: impl Fn(u64) -> u64) -> (u64, usize) {
        let mut queue = queue();
        let mut control = DriftControl::default();
        let (mut level, mut underruns, mut padded, mut dry) = (0.0f64, 0u64, 0usize, false);
        let request_us = REQUEST as f64 * 1e6 / (44_100.0 * fast);
        let mut next_request = 3_000.0;
        for tick in 0..ticks {
            let at = (tick * 20_000 + late(tick)) as f64;
            while next_request < at {
                if level < REQUEST as f64 {
                    underruns += u64::from(!dry);
                    dry = true;
                    level = 0.0;
                } else {
                    dry = false;
                    level -= REQUEST as f64;
                }
                next_request += request_us;
            }
            // What the device played since its last request, as the level counts it.
            let since_request = at - (next_request - request_us);
            let played = (since_request / request_us).clamp(0.0, 1.0) * REQUEST as f64;
            let smooth = (level - played).max(0.0);
            let adjust = queue.before_write(smooth as usize, REQUEST, underruns);
            if tick >= 100 {
                padded += adjust.pad;
            }
            level += adjust.pad as f64 - adjust.drop as f64;
            let smooth = smooth + adjust.pad as f64 - adjust.drop as f64;
            let ratio = control.ratio(smooth / PER_MS, queue.target(REQUEST) as f64 / PER_MS);
            level += 882.0 * ratio;
        }
        (underruns, padded)
    }

    #[test]
    fn a_punctual_tick_never_runs_a_drifting_device_dry_across_the_clocks_crossings() {
        // A minute: crossings every second or so, either way of drift.
        for fast in [1.0, 1.0017, 0.999] {
            let (underruns, padded) = run(3_000, fast, |_| 0);
            assert_eq!(underruns, 0, "{fast}");
            assert_eq!(padded, 0, "{fast}");
        }
    }

    #[test]
    fn the_first_write_queues_the_margin_of_silence() {
        let mut queue = queue();
        let adjust = queue.before_write(0, REQUEST, 0);
        assert_eq!(
            adjust,
            Adjust {
                pad: MARGIN,
                drop: 0
            }
        );
    }

    #[test]
    fn a_late_tick_is_covered_by_the_margin_and_one_that_outlasts_it_grows_it() {
        let (underruns, _) = run(1_500, 1.0017, |t| if t == 800 { 4_000 } else { 0 });
        assert_eq!(underruns, 0, "4 ms late, within the 5 ms margin");
        let (underruns, _) = run(1_500, 1.0017, |t| if t == 800 { 30_000 } else { 0 });
        assert_eq!(underruns, 1, "30 ms late");
        let mut queue = queue();
        for _ in 0..100 {
            queue.before_write(REQUEST + MARGIN, REQUEST, 0);
        }
        // Past the stream's start, an underrun grows the margin, and the next write pads
        // up to it.
        let adjust = queue.before_write(0, REQUEST, 1);
        assert_eq!(adjust.pad, MARGIN + 220);
        assert_eq!(queue.target(REQUEST), MARGIN + 220 + REQUEST / 2);
    }

    #[test]
    fn a_backlog_is_cut_after_a_watch_and_a_burst_past_the_excess_at_once() {
        let mut queue = queue();
        let target = queue.target(REQUEST);
        let mut low = target + 1_000;
        let mut dropped = 0;
        for _ in 0..300 {
            let drop = queue.before_write(low, REQUEST, 0).drop;
            low -= drop;
            dropped += drop;
        }
        assert!(
            (999..=1_000).contains(&dropped),
            "once, after the first watch: {dropped}"
        );
        let burst = queue.before_write(target + 3_000, REQUEST, 0);
        assert_eq!(burst.drop, 3_000);
    }
}
