//! Sample-rate conversion of a mono stream between a device's native rate and the call's
//! 48 kHz, with rubato's FFT resampler (the ratio of two device clocks we never adjust: a
//! drift between them is absorbed by the device rings, see `device`).

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use crate::AudioError;

/// The shortest input chunk, in ms. A chunk is converted as one FFT block, so it is both
/// what a microphone waits for before anything comes out and twice the converter's own
/// delay, each way: it is kept short. Chunks are whole blocks of the two rates' smallest
/// exact ratio (147 samples, 3.3 ms, from 44.1 kHz to 48 kHz).
const MIN_CHUNK_MS: usize = 2;

/// The input chunk for converting `from_hz` to `to_hz`: the fewest of the rates' smallest
/// blocks (`from_hz / gcd`) that last [`MIN_CHUNK_MS`].
fn chunk_for(from_hz: usize, to_hz: usize) -> usize {
    let block = from_hz / gcd(from_hz, to_hz);
    let wanted = (from_hz * MIN_CHUNK_MS / 1000).max(1);
    wanted.div_ceil(block) * block
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Converts a stream pushed in pieces of any length; what comes out is pulled as it is
/// ready. At equal rates it passes samples through untouched.
pub struct RateConverter {
    resampler: Option<Fft<f32>>,
    pending: Vec<f32>,
    chunk: usize,
    out_buf: Vec<f32>,
    ready: VecDeque<f32>,
}

impl std::fmt::Debug for RateConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateConverter")
            .field("resampling", &self.resampler.is_some())
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl RateConverter {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        let chunk = chunk_for(from_hz as usize, to_hz as usize);
        let (resampler, out_len) = if from_hz == to_hz {
            (None, 0)
        } else {
            // One sub-chunk: the whole chunk is one FFT block, so the delay is half of it.
            let fft = Fft::<f32>::new_custom(
                from_hz as usize,
                to_hz as usize,
                chunk,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| AudioError::Format(format!("resampling {from_hz} to {to_hz} Hz: {e}")))?;
            let out_len = fft.output_frames_max();
            (Some(fft), out_len)
        };
        Ok(Self {
            chunk: resampler
                .as_ref()
                .map_or(chunk, Resampler::input_frames_next),
            resampler,
            pending: Vec::with_capacity(chunk * 2),
            out_buf: vec![0.0; out_len],
            ready: VecDeque::with_capacity(to_hz as usize / 10),
        })
    }

    /// Adds input samples.
    pub fn push(&mut self, input: &[f32]) -> Result<(), AudioError> {
        let Some(resampler) = self.resampler.as_mut() else {
            self.ready.extend(input);
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk {
            let chunk = &self.pending[start..start + self.chunk];
            let input = InterleavedSlice::new(chunk, 1, self.chunk)
                .map_err(|e| AudioError::Format(format!("resampler input: {e}")))?;
            let out_frames = self.out_buf.len();
            let mut output = InterleavedSlice::new_mut(&mut self.out_buf, 1, out_frames)
                .map_err(|e| AudioError::Format(format!("resampler output: {e}")))?;
            let (_, written) = resampler
                .process_into_buffer(&input, &mut output, None)
                .map_err(|e| AudioError::Format(format!("resampling: {e}")))?;
            self.ready.extend(&self.out_buf[..written]);
            start += self.chunk;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Output samples one chunk of input gives.
    pub fn output_chunk(&self) -> usize {
        self.resampler
            .as_ref()
            .map_or(self.chunk, Resampler::output_frames_next)
    }

    /// Input held back as a partial chunk, in output samples: what the stream holds beyond
    /// [`Self::available`].
    pub fn held(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| {
            self.pending.len() * r.output_frames_next() / self.chunk.max(1)
        })
    }

    /// The most [`Self::held`] comes to, just before a chunk completes.
    pub fn held_most(&self) -> usize {
        self.resampler
            .as_ref()
            .map_or(0, Resampler::output_frames_next)
    }

    /// Samples converted and not yet taken.
    pub fn available(&self) -> usize {
        self.ready.len()
    }

    /// Takes up to `out.len()` samples; returns how many.
    pub fn pull(&mut self, out: &mut [f32]) -> usize {
        let n = out.len().min(self.ready.len());
        for (slot, sample) in out.iter_mut().zip(self.ready.drain(..n)) {
            *slot = sample;
        }
        n
    }

    /// Forgets the oldest samples so that at most `keep` stay ready: a device whose clock
    /// runs fast must not build up delay.
    pub fn trim_to(&mut self, keep: usize) -> usize {
        let excess = self.ready.len().saturating_sub(keep);
        self.ready.drain(..excess);
        excess
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{goertzel_dbfs, level_dbfs};

    fn tone_at(hz: f64, rate: u32, samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| {
                (0.25 * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn equal_rates_pass_samples_through() {
        let mut conv = RateConverter::new(48_000, 48_000).expect("converter");
        conv.push(&[0.1, 0.2, 0.3]).expect("push");
        let mut out = [0.0; 4];
        assert_eq!(conv.pull(&mut out), 3);
        assert_eq!(&out[..3], &[0.1, 0.2, 0.3]);
    }

    #[test]
    fn a_44k1_tone_comes_out_at_48k_with_its_pitch_and_level() {
        let mut conv = RateConverter::new(44_100, 48_000).expect("converter");
        let input = tone_at(1000.0, 44_100, 44_100);
        // Pushed in the ragged pieces a device callback hands over.
        for piece in input.chunks(37) {
            conv.push(piece).expect("push");
        }
        let got = conv.available();
        assert!(
            (47_000..=48_000).contains(&got),
            "{got} samples out of 44100 in"
        );
        let mut out = vec![0.0; got];
        conv.pull(&mut out);
        let tail = &out[got - 9600..];
        let at_1k = goertzel_dbfs(tail, 1000.0);
        let level = level_dbfs(tail);
        assert!(
            (at_1k - level).abs() < 1.0,
            "1 kHz at {at_1k} dBFS of {level}"
        );
        assert!((level - level_dbfs(&input)).abs() < 0.5, "level {level}");
    }

    #[test]
    fn chunks_are_whole_blocks_of_the_rates_ratio_and_short() {
        assert_eq!(chunk_for(44_100, 48_000), 147);
        assert_eq!(chunk_for(48_000, 44_100), 160);
        assert_eq!(chunk_for(16_000, 48_000), 32);
        assert_eq!(chunk_for(22_050, 48_000), 147);
        let conv = RateConverter::new(48_000, 44_100).expect("converter");
        assert_eq!(conv.output_chunk(), 147);
    }

    #[test]
    fn trimming_keeps_the_newest() {
        let mut conv = RateConverter::new(16_000, 16_000).expect("converter");
        conv.push(&[1.0, 2.0, 3.0, 4.0]).expect("push");
        assert_eq!(conv.trim_to(2), 2);
        let mut out = [0.0; 2];
        conv.pull(&mut out);
        assert_eq!(out, [3.0, 4.0]);
    }
}
