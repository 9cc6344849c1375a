//! WAV files: a source that loops a file, and a sink that records 48 kHz mono 16-bit.

use std::path::Path;

use crate::{AudioError, SAMPLE_RATE};

/// A WAV file played in a loop, 48 kHz, mixed down to mono.
#[derive(Debug)]
pub struct WavSource {
    samples: Vec<f32>,
    position: usize,
}

impl WavSource {
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let reader = hound::WavReader::open(path)?;
        let spec = reader.spec();
        if spec.sample_rate != SAMPLE_RATE {
            return Err(AudioError::Format(format!(
                "{}: {} Hz; 48000 Hz expected",
                path.display(),
                spec.sample_rate
            )));
        }
        let channels = usize::from(spec.channels.max(1));
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>()?,
            hound::SampleFormat::Int => {
                let scale = (1i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|s| s as f32 / scale))
                    .collect::<Result<_, _>>()?
            }
        };
        let samples: Vec<f32> = interleaved
            .chunks(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect();
        if samples.is_empty() {
            return Err(AudioError::Format(format!(
                "{}: no samples",
                path.display()
            )));
        }
        Ok(Self {
            samples,
            position: 0,
        })
    }

    /// Fills `frame`, starting over at the end of the file.
    pub fn fill(&mut self, frame: &mut [f32]) {
        for sample in frame {
            *sample = self.samples[self.position];
            self.position = (self.position + 1) % self.samples.len();
        }
    }
}

/// Records everything it is given as a 48 kHz mono 16-bit WAV; complete once finished.
pub struct WavSink {
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WavSink")
    }
}

impl WavSink {
    pub fn create(path: &Path) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Self {
            writer: hound::WavWriter::create(path, spec)?,
        })
    }

    pub fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        for sample in frame {
            self.writer
                .write_sample((sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)?;
        }
        Ok(())
    }

    /// Writes the header's final sizes.
    pub fn finish(self) -> Result<(), AudioError> {
        Ok(self.writer.finalize()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dsp::{Tone, goertzel_dbfs};

    #[test]
    fn a_recording_plays_back_as_a_looping_source() {
        let path = std::env::temp_dir().join(format!("confab-wav-{}.wav", std::process::id()));
        let mut sink = WavSink::create(&path).unwrap();
        let mut tone = Tone::new(600.0);
        let mut frame = vec![0.0; 960];
        for _ in 0..10 {
            tone.fill(&mut frame);
            sink.write(&frame).unwrap();
        }
        sink.finish().unwrap();
        let mut source = WavSource::open(&path).unwrap();
        let mut played = vec![0.0; 9600 * 2];
        source.fill(&mut played);
        assert!((goertzel_dbfs(&played[..9600], 600.0) + 12.0).abs() < 0.5);
        assert_eq!(played[..100], played[9600..9700], "it loops");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn other_rates_and_broken_files_are_clear_errors() {
        let path = std::env::temp_dir().join(format!("confab-wav-bad-{}.wav", std::process::id()));
        std::fs::write(&path, b"RIFF nonsense").unwrap();
        assert!(WavSource::open(&path).is_err());
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        writer.write_sample(0i16).unwrap();
        writer.write_sample(0i16).unwrap();
        writer.finalize().unwrap();
        assert!(matches!(WavSource::open(&path), Err(AudioError::Format(_))));
        std::fs::remove_file(&path).unwrap();
    }
}
