//! Following a device's clock: the engine's 10 ms tick and a sound device never run at
//! quite the same rate (a PulseAudio null sink here took 44,135-44,177 samples a second
//! for its 44,100; a sound card's crystal is off by up to a few hundred parts per million).
//! Left alone, the difference piles up in a ring or drains it, and something then cuts
//! the sound: silence padded before a speaker runs dry, samples dropped from a
//! microphone's backlog, each a gap or a jump every second or two. Here the difference is
//! taken up as it arises: rubato's `Slip` inserts or drops one sample now and then under
//! a crossfade (no delay, no filtering), at a ratio a controller steers so that the ring's
//! level stays at its target. The ratio is a pitch shift as well, so it stays within what
//! clocks drift by; a backlog (an engine catching up after a stall, a playout clock moved
//! earlier) would take it seconds at its limit, and is cut instead once it has stood
//! through a watch (`Backlog`).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Adjustable, FixedAsync, Resampler, Slip};

use crate::{AudioError, TICK_SAMPLES};

/// The most the ratio moves from 1: twice the drift of a PulseAudio null sink here, and a
/// pitch shift of five cents at most.
const MOST: f64 = 0.003;
/// The error the integral takes in, at most, in ms: a drift shows as small errors; larger
/// ones are a backlog, cut rather than learnt as drift.
const INTEGRATED_MOST_MS: f64 = 2.0;
/// Proportional and integral gains, per ms of level error (integral: per ms·s). They set a
/// loop that settles in about ten seconds without overshooting: fast enough that a drift
/// never reaches a cut, slow enough that the level's own saw (a request's worth, as the
/// clocks' phases cross) barely moves the ratio.
const KP: f64 = 6e-4;
const KI: f64 = 9e-5;
/// The level is smoothed over this long before it steers (the saw comes and goes over a
/// second or two).
const SMOOTHING_S: f64 = 0.5;
const TICK_S: f64 = crate::TICK_MS / 1000.0;

/// The controller: from a ring's level at each tick, the ratio (output over input samples)
/// at which the next frame goes through.
#[derive(Debug, Clone, Default)]
pub(crate) struct DriftControl {
    smoothed: Option<f64>,
    integral: f64,
}

impl DriftControl {
    /// One tick: the level and its target in ms. A level above its target slows the side
    /// that fills the ring (a ratio under 1 for a speaker fed here, and for a microphone
    /// read here as well, since there it takes more input per frame).
    pub(crate) fn ratio(&mut self, level_ms: f64, target_ms: f64) -> f64 {
        let smoothed = self.smoothed.get_or_insert(level_ms);
        *smoothed += (level_ms - *smoothed) * (TICK_S / SMOOTHING_S).min(1.0);
        let error = *smoothed - target_ms;
        // The integral holds the drift itself; it never asks past the limit, so that it
        // does not wind up while the ratio is clamped.
        let drift_error = error.clamp(-INTEGRATED_MOST_MS, INTEGRATED_MOST_MS);
        self.integral = (self.integral + drift_error * TICK_S).clamp(-MOST / KI, MOST / KI);
        1.0 - (KP * error + KI * self.integral).clamp(-MOST, MOST)
    }

    /// The ring's level jumped by what was padded or dropped: the smoothed level jumps
    /// with it, so that the cut is not steered against as well.
    pub(crate) fn shift(&mut self, by_ms: f64) {
        if let Some(smoothed) = self.smoothed.as_mut() {
            *smoothed += by_ms;
        }
    }
}

/// Ticks in a watch for a backlog: half a second, long enough for a level to come back
/// down from the jitter of a busy machine, short enough that a stream's start does not
/// leave its backlog standing.
const BACKLOG_WATCH_TICKS: u32 = crate::ticks_in(500);
/// Above its target by more than this all through a watch, a level is cut back.
const BACKLOG_MS: f64 = 5.0;

/// A level that stood above its target all through a watch: the least it was above is
/// delay the clock following would take seconds to remove, so it is cut at once.
#[derive(Debug, Clone)]
pub(crate) struct Backlog {
    ticks: u32,
    least_ms: f64,
}

impl Default for Backlog {
    fn default() -> Self {
        Self {
            ticks: 0,
            least_ms: f64::MAX,
        }
    }
}

impl Backlog {
    /// One tick's level above its target, in ms; at the end of a watch, what to cut.
    pub(crate) fn note(&mut self, above_ms: f64) -> Option<f64> {
        self.ticks += 1;
        self.least_ms = self.least_ms.min(above_ms);
        if self.ticks < BACKLOG_WATCH_TICKS {
            return None;
        }
        let least = self.least_ms;
        *self = Self::default();
        (least > BACKLOG_MS).then_some(least)
    }
}

/// Samples through `Slip` at the controller's ratio, for one direction.
#[derive(Debug)]
pub(crate) struct Drift {
    slip: Slip<f32>,
    control: DriftControl,
}

impl Drift {
    /// For a speaker, at the device's rate: chunks of `chunk` in, give or take a few
    /// samples out.
    pub(crate) fn playback(chunk: usize) -> Result<Self, AudioError> {
        Self::new(chunk, FixedAsync::Input)
    }

    /// For a microphone, at 48 kHz: a tick out, from a tick give or take a few samples.
    pub(crate) fn capture() -> Result<Self, AudioError> {
        Self::new(TICK_SAMPLES, FixedAsync::Output)
    }

    fn new(chunk: usize, fixed: FixedAsync) -> Result<Self, AudioError> {
        let slip = Slip::new(chunk, 1, fixed)
            .map_err(|e| AudioError::Format(format!("clock drift correction: {e}")))?;
        Ok(Self {
            slip,
            control: DriftControl::default(),
        })
    }

    /// Steers the next frame from the ring's level and its target, in ms.
    pub(crate) fn steer(&mut self, level_ms: f64, target_ms: f64) {
        let ratio = self.control.ratio(level_ms, target_ms);
        // Out of range is clamped and said so; the controller's own limit is inside it.
        let _ = self.slip.set_resample_ratio(ratio, false);
    }

    /// See [`DriftControl::shift`].
    pub(crate) fn shift(&mut self, by_ms: f64) {
        self.control.shift(by_ms);
    }

    /// Input samples the next frame takes.
    pub(crate) fn input_needed(&self) -> usize {
        self.slip.input_frames_next()
    }

    /// Most output samples a frame can give.
    pub(crate) fn output_most(&self) -> usize {
        self.slip.output_frames_max()
    }

    /// One frame: `input` holds [`Self::input_needed`] samples; returns how many went into
    /// `output`, which has room for [`Self::output_most`].
    pub(crate) fn process(
        &mut self,
        input: &[f32],
        output: &mut [f32],
    ) -> Result<usize, AudioError> {
        let frames_in = input.len();
        let frames_out = output.len();
        let input = InterleavedSlice::new(input, 1, frames_in)
            .map_err(|e| AudioError::Format(format!("drift correction input: {e}")))?;
        let mut output = InterleavedSlice::new_mut(output, 1, frames_out)
            .map_err(|e| AudioError::Format(format!("drift correction output: {e}")))?;
        let (_, written) = self
            .slip
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| AudioError::Format(format!("drift correction: {e}")))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring filled by a 20 ms tick at `ratio` times 882 samples (44.1 kHz) and drained by
    /// requests of 220 on a clock `fast` times ours; returns the level (ms) at each tick.
    fn follow(fast: f64, start_ms: f64, target_ms: f64, seconds: usize) -> Vec<f64> {
        let mut control = DriftControl::default();
        let mut level = start_ms * 44.1;
        let mut ratio = 1.0;
        let request_us = 220.0 * 1e6 / (44_100.0 * fast);
        let mut next_request = 0.0;
        let mut levels = Vec::new();
        for tick in 0..seconds * 50 {
            let at = tick as f64 * 20_000.0;
            while next_request < at {
                level = (level - 220.0).max(0.0);
                next_request += request_us;
            }
            levels.push(level / 44.1);
            ratio = control.ratio(level / 44.1, target_ms);
            level += 882.0 * ratio;
        }
        assert!((1.0 - ratio).abs() <= MOST);
        levels
    }

    fn mean(levels: &[f64]) -> f64 {
        levels.iter().sum::<f64>() / levels.len() as f64
    }

    #[test]
    fn a_device_a_fifth_of_a_percent_fast_is_followed_at_the_target() {
        let levels = follow(1.002, 15.0, 15.0, 60);
        let settled = &levels[20 * 50..];
        let (least, mean) = (
            settled.iter().copied().fold(f64::MAX, f64::min),
            mean(settled),
        );
        assert!((mean - 15.0).abs() < 1.0, "mean {mean:.1} ms");
        // Never nearer to running dry than the saw's own depth.
        assert!(least > 15.0 - 5.5, "least {least:.1} ms");
    }

    #[test]
    fn a_slow_device_starting_above_its_target_is_brought_to_it() {
        let levels = follow(0.998, 20.0, 15.0, 60);
        let mean = mean(&levels[30 * 50..]);
        assert!((mean - 15.0).abs() < 1.0, "mean {mean:.1} ms");
    }

    #[test]
    fn a_level_above_its_target_all_through_a_watch_is_cut_and_a_passing_one_is_not() {
        let mut backlog = Backlog::default();
        let cuts: Vec<f64> = (0..BACKLOG_WATCH_TICKS)
            .filter_map(|i| backlog.note(if i == 10 { 3.0 } else { 20.0 }))
            .collect();
        assert!(cuts.is_empty(), "{cuts:?}");
        let cuts: Vec<f64> = (0..BACKLOG_WATCH_TICKS)
            .filter_map(|i| backlog.note(if i == 10 { 12.0 } else { 20.0 }))
            .collect();
        assert_eq!(cuts, [12.0]);
    }

    #[test]
    fn a_frame_through_the_clutch_keeps_its_samples_in_order() {
        let mut drift = Drift::playback(TICK_SAMPLES).expect("drift");
        let mut out = vec![0.0; drift.output_most()];
        let frame: Vec<f32> = (0..TICK_SAMPLES).map(|i| i as f32).collect();
        drift.steer(10.0, 10.0);
        let written = drift.process(&frame, &mut out).expect("frame");
        assert_eq!(written, TICK_SAMPLES);
        assert_eq!(&out[..written], &frame[..]);
    }
}
