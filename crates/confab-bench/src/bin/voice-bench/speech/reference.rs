//! The speech every output is scored against: sentences read by `espeak-ng`, made 48 kHz
//! mono 16-bit by `sox` (a call's rate and what `wav:` plays without resampling).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Harvard sentences (IEEE 1969, lists 1 and 2), the usual material of speech-quality
/// tests: about 24 s read, long enough for PESQ and STOI to settle, short enough that a
/// run at four loss rates takes a few minutes.
const SENTENCES: &str = "The birch canoe slid on the smooth planks. \
    Glue the sheet to the dark blue background. \
    It is easy to tell the depth of a well. \
    These days a chicken leg is a rare dish. \
    Rice is often served in round bowls. \
    The juice of lemons makes fine punch. \
    The box was thrown beside the parked truck. \
    The hogs were fed chopped corn and garbage. \
    Four hours of steady work faced us. \
    A large size in stockings is hard to sell.";

/// Silence before and after the speech, in seconds: a frame or two is lost while the
/// sender switches to the speech (its encoder starts over), and Opus adds a few ms of delay
/// at the end; both fall on silence, not on the first or last word.
const PAD_SECONDS: &str = "0.5";

#[derive(Debug)]
pub struct Reference {
    pub path: PathBuf,
    pub samples: Vec<f32>,
}

impl Reference {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(confab_audio::SAMPLE_RATE)
    }
}

/// Makes the reference in `dir`.
pub fn make(dir: &Path) -> anyhow::Result<Reference> {
    let spoken = dir.join("espeak.wav");
    let path = dir.join("reference.wav");
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&spoken)
        .arg(SENTENCES))?;
    run(Command::new("sox")
        .arg(&spoken)
        .args(["-D", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["pad", PAD_SECONDS, PAD_SECONDS]))?;
    let samples = super::wav::read(&path)?;
    Ok(Reference { path, samples })
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
