//! Where samples come from and go to, behind two small traits, as the headless peer's
//! `--audio-in` and `--audio-out` name them: a tone, a WAV file, nothing. (Devices come
//! with the device layer.)

use std::path::Path;

use crate::AudioError;
use crate::dsp::Tone;
use crate::wav::{WavSink, WavSource};

/// Produces 48 kHz mono frames.
pub trait Source: Send {
    fn fill(&mut self, frame: &mut [f32]);
}

/// Takes 48 kHz mono frames.
pub trait Sink: Send {
    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError>;
    /// Completes what was written (a WAV header's sizes).
    fn finish(self: Box<Self>) -> Result<(), AudioError>;
}

impl Source for Tone {
    fn fill(&mut self, frame: &mut [f32]) {
        Tone::fill(self, frame);
    }
}

impl Source for WavSource {
    fn fill(&mut self, frame: &mut [f32]) {
        WavSource::fill(self, frame);
    }
}

/// No input: silence.
#[derive(Debug, Default)]
pub struct Silence;

impl Source for Silence {
    fn fill(&mut self, frame: &mut [f32]) {
        frame.fill(0.0);
    }
}

impl Sink for WavSink {
    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        WavSink::write(self, frame)
    }

    fn finish(self: Box<Self>) -> Result<(), AudioError> {
        WavSink::finish(*self)
    }
}

/// No output: frames are dropped.
#[derive(Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn write(&mut self, _frame: &[f32]) -> Result<(), AudioError> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), AudioError> {
        Ok(())
    }
}

/// `none`, `sine:HZ` or `wav:PATH`.
pub fn open_source(spec: &str) -> Result<Box<dyn Source>, AudioError> {
    match spec.split_once(':') {
        _ if spec == "none" => Ok(Box::new(Silence)),
        Some(("sine", hz)) => match hz.parse::<f64>() {
            Ok(hz) if hz > 0.0 && hz < 24_000.0 => Ok(Box::new(Tone::new(hz))),
            _ => Err(AudioError::Format(format!(
                "`{hz}` is not a frequency below 24000 Hz"
            ))),
        },
        Some(("wav", path)) => Ok(Box::new(WavSource::open(Path::new(path))?)),
        _ => Err(AudioError::Format(format!("unknown audio input `{spec}`"))),
    }
}

/// `none` or `wav:PATH`.
pub fn open_sink(spec: &str) -> Result<Box<dyn Sink>, AudioError> {
    match spec.split_once(':') {
        _ if spec == "none" => Ok(Box::new(Discard)),
        Some(("wav", path)) => Ok(Box::new(WavSink::create(Path::new(path))?)),
        _ => Err(AudioError::Format(format!("unknown audio output `{spec}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_open_what_they_name_and_refuse_the_rest() {
        assert!(open_source("none").is_ok());
        assert!(open_source("sine:440").is_ok());
        assert!(open_source("sine:loud").is_err());
        assert!(open_source("sine:-5").is_err());
        assert!(open_source("wav:/nonexistent/x.wav").is_err());
        assert!(open_source("radio:1").is_err());
        assert!(open_sink("none").is_ok());
        assert!(open_sink("tape:1").is_err());
    }
}
