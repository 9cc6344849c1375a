//! Echo cancellation for the microphone: WebRTC's AEC3, in the pure-Rust port of the
//! `aec3` crate. What we play (the far end) is fed in as the reference; what the
//! microphone picks up of it is taken out of what we send. Its own noise suppression and
//! gain control stay off: RNNoise does the one, and levels are the user's.

use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};

use crate::{AudioError, SAMPLE_RATE, TICK_SAMPLES};

/// AEC3 works in 10 ms blocks: a tick is one.
const BLOCK: usize = SAMPLE_RATE as usize / 100;
const _: () = assert!(TICK_SAMPLES == BLOCK);

pub struct EchoCanceller {
    pipeline: LinearPipeline,
    output: [f32; BLOCK],
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EchoCanceller")
    }
}

fn failed(e: aec3::graph::GraphError) -> AudioError {
    AudioError::Format(format!("echo cancellation: {e:?}"))
}

impl EchoCanceller {
    pub fn new() -> Result<Self, AudioError> {
        let format = AudioFormat::ten_ms(SAMPLE_RATE, 1);
        let pipeline = linear::builder(format, format)
            .enable_noise_suppression(false)
            .enable_gain_controller2(false)
            .build()
            .map_err(failed)?;
        Ok(Self {
            pipeline,
            output: [0.0; BLOCK],
        })
    }

    /// What is about to be played: the echo to expect.
    pub fn render(&mut self, tick: &[f32; TICK_SAMPLES]) -> Result<(), AudioError> {
        self.pipeline.handle_render_frame(tick).map_err(failed)?;
        Ok(())
    }

    /// Takes the echo out of a microphone tick, in place.
    pub fn process(&mut self, tick: &mut [f32; TICK_SAMPLES]) -> Result<(), AudioError> {
        if self
            .pipeline
            .process_capture_frame(tick, &mut self.output)
            .map_err(failed)?
        {
            tick.copy_from_slice(&self.output);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{Tone, goertzel_dbfs, level_dbfs};

    fn ticks(ms: u32) -> usize {
        crate::ticks_in(ms) as usize
    }

    /// Far-end audio with speech's broad spectrum and pauses: noise bursts of half a
    /// second, from a small LCG.
    fn far_end(i: usize, seed: &mut u32) -> [f32; TICK_SAMPLES] {
        let mut frame = [0.0; TICK_SAMPLES];
        if (i / ticks(500)).is_multiple_of(2) {
            for sample in &mut frame {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *sample = ((*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.4;
            }
        }
        frame
    }

    #[test]
    fn an_echo_of_the_far_end_is_taken_out_and_the_near_end_kept() {
        let mut aec = EchoCanceller::new().expect("AEC3");
        // The room: what is played comes back 60 ms later at half the level.
        let delay = ticks(60);
        let mut seed = 1;
        let played: Vec<[f32; TICK_SAMPLES]> =
            (0..ticks(8_000)).map(|i| far_end(i, &mut seed)).collect();
        let (mut echo, mut left) = (Vec::new(), Vec::new());
        let mut voice = Tone::new(1000.0);
        let (mut near, mut kept) = (Vec::new(), Vec::new());
        for i in 0..played.len() {
            aec.render(&played[i]).expect("render");
            let mut mic = [0.0; TICK_SAMPLES];
            if i >= delay {
                for (m, p) in mic.iter_mut().zip(played[i - delay].iter()) {
                    *m = p * 0.5;
                }
            }
            // The last second, someone speaks here too.
            let speaking = i >= ticks(7_000);
            let mut own = [0.0; TICK_SAMPLES];
            if speaking {
                voice.fill(&mut own);
                for (m, o) in mic.iter_mut().zip(own.iter()) {
                    *m += o;
                }
            }
            let heard = mic;
            aec.process(&mut mic).expect("process");
            // After four seconds to converge.
            if speaking {
                near.extend_from_slice(&own);
                kept.extend_from_slice(&mic);
            } else if i >= ticks(4_000) {
                echo.extend_from_slice(&heard);
                left.extend_from_slice(&mic);
            }
        }
        let (said, came_out) = (goertzel_dbfs(&near, 1000.0), goertzel_dbfs(&kept, 1000.0));
        assert!(
            came_out > said - 6.0,
            "near end at {said} dBFS came out at {came_out}"
        );
        let (before, after) = (level_dbfs(&echo), level_dbfs(&left));
        assert!(
            after < before - 20.0,
            "echo at {before} dBFS, {after} dBFS left"
        );
    }
}
