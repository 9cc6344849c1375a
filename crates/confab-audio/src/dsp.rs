//! Small signal processing: levels, mixing, test tones, and a single-frequency detector.

use crate::SAMPLE_RATE;

/// The quietest level reported: digital silence reads as this rather than minus infinity.
pub const FLOOR_DBFS: f32 = -120.0;

/// Follows ticks for a run of two quiet ones (every sample below -50 dBFS): what is
/// dropped within them, or a change of coding at the second one's start, is not heard.
#[derive(Debug, Default)]
pub struct QuietTicks {
    /// Quiet ticks in a row at the last one noted, up to two.
    in_a_row: u8,
}

impl QuietTicks {
    /// Notes `tick`; whether it and the tick before it were both quiet.
    pub fn note(&mut self, tick: &[f32]) -> bool {
        const QUIET: f32 = 0.003;
        let quiet = tick.iter().all(|s| s.abs() < QUIET);
        self.in_a_row = if quiet { (self.in_a_row + 1).min(2) } else { 0 };
        self.both()
    }

    /// Whether the last two ticks noted were both quiet.
    pub fn both(&self) -> bool {
        self.in_a_row == 2
    }
}

/// RMS level in dBFS, referenced to a full-scale sine (AES17), so a sine of peak 0.25
/// reads -12 dBFS.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return FLOOR_DBFS;
    }
    let mean_square = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    let rms = mean_square.sqrt() * std::f32::consts::SQRT_2;
    if rms <= 0.0 {
        FLOOR_DBFS
    } else {
        (20.0 * rms.log10()).max(FLOOR_DBFS)
    }
}

/// Adds `source` into `mix` at `gain`, clamping to [-1, 1].
pub fn mix_into(mix: &mut [f32], source: &[f32], gain: f32) {
    for (out, sample) in mix.iter_mut().zip(source) {
        *out = (*out + sample * gain).clamp(-1.0, 1.0);
    }
}

/// A sine tone at -12 dBFS, frame after frame without a phase jump.
#[derive(Debug, Clone)]
pub struct Tone {
    step: f64,
    phase: f64,
    amplitude: f32,
}

impl Tone {
    pub fn new(hz: f64) -> Self {
        Self {
            step: std::f64::consts::TAU * hz / f64::from(SAMPLE_RATE),
            phase: 0.0,
            amplitude: 10f32.powf(-12.0 / 20.0),
        }
    }

    pub fn fill(&mut self, frame: &mut [f32]) {
        for sample in frame {
            *sample = self.amplitude * self.phase.sin() as f32;
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
    }
}

/// The level, in dBFS like [`level_dbfs`], of the component of `samples` at `hz` (the
/// Goertzel algorithm): how loud one tone is in a mix.
pub fn goertzel_dbfs(samples: &[f32], hz: f64) -> f32 {
    if samples.is_empty() {
        return FLOOR_DBFS;
    }
    let coefficient = 2.0 * (std::f64::consts::TAU * hz / f64::from(SAMPLE_RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    // A sine of peak A gives power (A·N/2)²: scale back to its peak, then to dBFS.
    let peak = 2.0 * power.max(0.0).sqrt() / samples.len() as f64;
    if peak <= 0.0 {
        FLOOR_DBFS
    } else {
        ((20.0 * peak.log10()) as f32).max(FLOOR_DBFS)
    }
}

/// Samples in one block of [`heard_tone_dbfs`]: 100 ms, a whole number of cycles of any
/// tone on a 10 Hz grid, so such tones do not leak into each other's readings.
const HEARD_BLOCK: usize = SAMPLE_RATE as usize / 10;

/// The level of the tone at `hz` in a stretch of playout, as a listener would judge its
/// loudness: the mean power of [`goertzel_dbfs`] over 100 ms blocks. One reading over the
/// whole stretch adds the tone up coherently, so a single 20 ms jump in playout (a frame
/// waited for, or skipped) can cancel most of it: at 880 Hz, 20 ms is 17.6 cycles, and the
/// two sides of a jump in the middle meet 216° apart, reading 10 dB down. Block by block, a
/// jump costs its own block only. A stretch shorter than a block is read whole.
pub fn heard_tone_dbfs(samples: &[f32], hz: f64) -> f32 {
    if samples.len() < HEARD_BLOCK {
        return goertzel_dbfs(samples, hz);
    }
    let blocks = samples.chunks_exact(HEARD_BLOCK);
    let count = blocks.len() as f64;
    let mean_power = blocks
        .map(|block| 10f64.powf(f64::from(goertzel_dbfs(block, hz)) / 10.0))
        .sum::<f64>()
        / count;
    ((10.0 * mean_power.log10()) as f32).max(FLOOR_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two quiet ticks in a row, and only while they last.
    #[test]
    fn quiet_ticks_say_when_two_in_a_row_were_quiet() {
        let (silence, mut tone) = ([0.0f32; 480], [0.0f32; 480]);
        Tone::new(440.0).fill(&mut tone);
        let mut quiet = QuietTicks::default();
        let heard: Vec<bool> = [&silence, &silence, &silence, &tone, &silence, &silence]
            .iter()
            .map(|tick| {
                let both = quiet.note(&tick[..]);
                assert_eq!(both, quiet.both());
                both
            })
            .collect();
        assert_eq!(heard, [false, true, true, false, false, true]);
    }

    #[test]
    fn levels_of_tones_and_silence() {
        let mut frame = vec![0.0; 4800];
        Tone::new(1000.0).fill(&mut frame);
        assert!(
            (level_dbfs(&frame) + 12.0).abs() < 0.1,
            "{}",
            level_dbfs(&frame)
        );
        assert!(
            (goertzel_dbfs(&frame, 1000.0) + 12.0).abs() < 0.5,
            "{}",
            goertzel_dbfs(&frame, 1000.0)
        );
        assert!(goertzel_dbfs(&frame, 3000.0) < -50.0);
        assert_eq!(level_dbfs(&[0.0; 480]), FLOOR_DBFS);
        assert_eq!(level_dbfs(&[]), FLOOR_DBFS);
    }

    /// A frame inserted mid-way (a wait for a late packet) shifts the tone's phase: heard,
    /// it is a click, not a quieter tone.
    #[test]
    fn a_tone_heard_through_a_jump_in_playout_keeps_its_level() {
        let mut tone = Tone::new(880.0);
        let mut samples = vec![0.0; 24_000];
        tone.fill(&mut samples);
        samples.extend(std::iter::repeat_n(0.0, 960));
        let mut rest = vec![0.0; 24_000];
        tone.fill(&mut rest);
        samples.extend(rest);
        let whole = goertzel_dbfs(&samples, 880.0);
        assert!(whole < -18.0, "coherently, the halves cancel: {whole}");
        let heard = heard_tone_dbfs(&samples, 880.0);
        assert!((heard + 12.0).abs() < 1.0, "{heard}");
        assert!(heard_tone_dbfs(&samples, 440.0) < -40.0);
    }

    #[test]
    fn mixing_two_tones_keeps_both_and_clips_at_full_scale() {
        let (mut a, mut b) = (vec![0.0; 4800], vec![0.0; 4800]);
        Tone::new(440.0).fill(&mut a);
        Tone::new(880.0).fill(&mut b);
        let mut mix = vec![0.0; 4800];
        mix_into(&mut mix, &a, 1.0);
        mix_into(&mut mix, &b, 0.5);
        assert!((goertzel_dbfs(&mix, 440.0) + 12.0).abs() < 0.5);
        assert!((goertzel_dbfs(&mix, 880.0) + 18.0).abs() < 0.5);
        let mut loud = vec![0.9; 10];
        mix_into(&mut loud, &[0.9; 10], 1.0);
        assert!(loud.iter().all(|s| *s == 1.0));
    }
}
