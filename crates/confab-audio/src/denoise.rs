//! Noise suppression for the microphone: RNNoise (nnnoiseless, pure Rust) on each 10 ms
//! tick, which is one of its frames. It removes steady noise (fans, hum, hiss) and keeps
//! speech; it is on for microphones by default and can be switched off.

use nnnoiseless::DenoiseState;

use crate::TICK_SAMPLES;

// A tick is one of RNNoise's frames.
const _: () = assert!(TICK_SAMPLES == DenoiseState::FRAME_SIZE);

/// RNNoise works on samples scaled like 16-bit PCM.
const PCM_SCALE: f32 = 32_768.0;

pub struct NoiseSuppressor {
    state: Box<DenoiseState<'static>>,
    input: [f32; DenoiseState::FRAME_SIZE],
    output: [f32; DenoiseState::FRAME_SIZE],
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoiseSuppressor")
    }
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self {
            state: DenoiseState::new(),
            input: [0.0; DenoiseState::FRAME_SIZE],
            output: [0.0; DenoiseState::FRAME_SIZE],
        }
    }
}

impl NoiseSuppressor {
    /// Cleans one tick in place.
    pub fn process(&mut self, tick: &mut [f32; TICK_SAMPLES]) {
        for (scaled, sample) in self.input.iter_mut().zip(tick.iter()) {
            *scaled = sample * PCM_SCALE;
        }
        self.state.process_frame(&mut self.output, &self.input);
        for (sample, cleaned) in tick.iter_mut().zip(self.output.iter()) {
            *sample = cleaned / PCM_SCALE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::level_dbfs;

    /// White noise from a small LCG: steady noise, the kind RNNoise removes.
    fn noise(seed: &mut u32, frame: &mut [f32]) {
        for sample in frame {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *sample = ((*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1;
        }
    }

    #[test]
    fn steady_noise_is_pushed_down_by_more_than_6_db() {
        let mut ns = NoiseSuppressor::default();
        let mut seed = 7;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for i in 0..crate::ticks_in(3_000) {
            let mut frame = [0.0; TICK_SAMPLES];
            noise(&mut seed, &mut frame);
            let raw = frame;
            ns.process(&mut frame);
            // After a second to adapt.
            if i >= crate::ticks_in(1_000) {
                before.extend_from_slice(&raw);
                after.extend_from_slice(&frame);
            }
        }
        let (b, a) = (level_dbfs(&before), level_dbfs(&after));
        assert!(a < b - 6.0, "noise at {b} dBFS came out at {a} dBFS");
    }
}
