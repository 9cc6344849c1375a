//! Wide-band PESQ and STOI of an output against the reference, by `pesq_score.py` (PyPI
//! `pesq` and `pystoi`: no Rust implementation of either is trusted), which also lines the
//! output up with the reference and trims it to the reference's length.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The script, built in: the bench runs from its build directory, not the source tree.
const SCRIPT: &str = include_str!("../../../../pesq_score.py");

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Score {
    pub pesq_wb: f64,
    pub stoi: f64,
    /// Where in the output the reference was found to start.
    pub offset_ms: f64,
    /// How far the delay moved during the output (a jitter buffer growing by a frame).
    pub delay_moved_ms: f64,
}

/// Scores `degraded` against `reference` (both 48 kHz mono WAVs).
pub fn score(reference: &Path, degraded: &Path) -> anyhow::Result<Score> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(reference)
        .arg(degraded)
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        bail!(
            "scoring {}: {}: {}",
            degraded.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("the script printed {stdout:?}"))
}

/// What the scoring needs, or a line saying what is missing.
pub fn missing() -> Option<String> {
    let check = Command::new("python3")
        .args(["-c", "import numpy, scipy, pesq, pystoi"])
        .output();
    match check {
        Ok(out) if out.status.success() => None,
        Ok(_) => {
            Some("python3 with the modules pesq and pystoi (pip install pesq pystoi)".to_owned())
        }
        Err(_) => Some("python3".to_owned()),
    }
}
