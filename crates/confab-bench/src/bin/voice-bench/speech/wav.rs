//! WAV files as the speech run keeps them: 48 kHz mono 16-bit, what `confab`'s `wav:`
//! output records and what the scoring script reads.

use std::path::Path;

use anyhow::{Context, bail};
use confab_audio::SAMPLE_RATE;

/// The samples of a 48 kHz mono 16-bit WAV, in [-1, 1].
pub fn read(path: &Path) -> anyhow::Result<Vec<f32>> {
    let reader =
        hound::WavReader::open(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        bail!("{}: {spec:?}; 48 kHz mono 16-bit expected", path.display());
    }
    reader
        .into_samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / f32::from(i16::MAX)))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

/// Writes `samples` as a 48 kHz mono 16-bit WAV.
pub fn write(path: &Path, samples: &[f32]) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let context = || format!("writing {}", path.display());
    let mut writer = hound::WavWriter::create(path, spec).with_context(context)?;
    for sample in samples {
        let scaled = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
        writer.write_sample(scaled).with_context(context)?;
    }
    writer.finalize().with_context(context)
}
