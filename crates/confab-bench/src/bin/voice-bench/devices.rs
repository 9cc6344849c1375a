//! The device side of latency, which the network figures leave out: a click written to a
//! speaker is found again on that speaker's monitor, through Confab's own device source and
//! sink (rings, cushions, device buffers, the sound server). Needs a sound server: with
//! PulseAudio, `PULSE_SERVER` and a null sink (`CONFAB_BENCH_SINK`, default the default
//! sink) whose monitor is read back.

use std::time::{Duration, Instant};

use confab_audio::FRAME_SAMPLES;
use confab_audio::device::{DeviceSink, DeviceSource};
use confab_audio::io::{Sink, Source};

const CLICKS: usize = 50;
const CLICK_EVERY_FRAMES: usize = 20;

/// Median and p95, in ms, of speaker-to-monitor time; `None` without a sound server.
pub fn round_trip() -> anyhow::Result<Option<(f64, f64)>> {
    if std::env::var_os("PULSE_SERVER").is_none() {
        return Ok(None);
    }
    let sink_name = std::env::var("CONFAB_BENCH_SINK").ok();
    let monitor = format!(
        "{}.monitor",
        sink_name.as_deref().unwrap_or("@DEFAULT_SINK@")
    );
    let mut sink = DeviceSink::open(sink_name.as_deref())?;
    let mut source = DeviceSource::open(Some(&monitor))?;
    // Both on one 20 ms clock, one frame out and one in per tick: a click written at
    // sample N and found at sample M took M - N samples.
    let (mut written, mut read) = (0usize, 0usize);
    let (mut clicks, mut found) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let settle = 100; // frames of silence first: an idle null sink starts late
    for tick in 0..settle + CLICKS * CLICK_EVERY_FRAMES {
        let mut out = [0.0f32; FRAME_SAMPLES];
        if tick >= settle && (tick - settle) % CLICK_EVERY_FRAMES == 0 {
            out[..48].fill(0.8);
            clicks.push(written);
        }
        sink.write(&out)?;
        written += FRAME_SAMPLES;
        let mut captured = [0.0f32; FRAME_SAMPLES];
        source.fill(&mut captured)?;
        if let Some(at) = captured.iter().position(|s| s.abs() > 0.4) {
            // One detection per click: the click is 1 ms long.
            if found
                .last()
                .is_none_or(|last| read + at > last + FRAME_SAMPLES)
            {
                found.push(read + at);
            }
        }
        read += FRAME_SAMPLES;
        let next = start + Duration::from_millis(20 * (tick as u64 + 1));
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let mut latencies: Vec<f64> = clicks
        .iter()
        .filter_map(|c| found.iter().find(|f| *f > c).map(|f| (f - c) as f64 / 48.0))
        .collect();
    if latencies.len() < CLICKS / 2 {
        anyhow::bail!("found {} of {CLICKS} clicks on {monitor}", latencies.len());
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |p: f64| latencies[((p / 100.0) * (latencies.len() - 1) as f64).round() as usize];
    Ok(Some((pick(50.0), pick(95.0))))
}
