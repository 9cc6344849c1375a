//! Where samples come from and go to, behind two small traits: a sound device (`device`),
//! a tone, a WAV file, nothing. `open` turns a spec into one of them.

use crate::AudioError;
use crate::dsp::Tone;
use crate::wav::{WavSink, WavSource};

/// Produces 48 kHz mono frames.
pub trait Source: Send {
    /// The next frame. An error means the source is gone for good (a device unplugged).
    fn fill(&mut self, frame: &mut [f32]) -> Result<(), AudioError>;

    /// A real microphone, whose noise is worth suppressing (a generated tone is not).
    fn is_microphone(&self) -> bool {
        false
    }

    /// The sound device's name, for a device.
    fn device_name(&self) -> Option<&str> {
        None
    }

    /// Frames a device could not fill in time, so far.
    fn underruns(&self) -> u64 {
        0
    }
}

/// Takes 48 kHz mono frames.
pub trait Sink: Send {
    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError>;
    /// Completes what was written (a WAV header's sizes).
    fn finish(self: Box<Self>) -> Result<(), AudioError>;

    /// The sound device's name, for a device.
    fn device_name(&self) -> Option<&str> {
        None
    }

    /// Requests a device found the queue short for, so far.
    fn underruns(&self) -> u64 {
        0
    }

    /// The playout clock moved `samples` (48 kHz) earlier: a device drops as much of what
    /// is queued for it, oldest first, as it holds beyond the level it keeps; else what the
    /// clock gained would only stand in the device's queue instead. Called
    /// only after quiet frames, so what is dropped is silence. Anything without a device
    /// clock (a file, nothing) has no queue to shorten.
    fn skip(&mut self, _samples: usize) {}
}

impl Source for Tone {
    fn fill(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
        Tone::fill(self, frame);
        Ok(())
    }
}

impl Source for WavSource {
    fn fill(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
        WavSource::fill(self, frame);
        Ok(())
    }
}

/// No input: silence.
#[derive(Debug, Default)]
pub struct Silence;

impl Source for Silence {
    fn fill(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
        frame.fill(0.0);
        Ok(())
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
