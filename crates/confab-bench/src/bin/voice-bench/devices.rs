//! The device side of latency, which the network figures leave out: a click written to a
//! speaker is found again on that speaker's monitor, through Confab's own device source and
//! sink (rings, cushions, device buffers, the sound server). Needs a sound server: with
//! PulseAudio, `PULSE_SERVER` and a null sink (`CONFAB_BENCH_SINK`, default the default
//! sink) whose monitor is read back. Run twice: idle, and with a busy loop on every core
//! (as a parallel build keeps a machine), with the underruns each run met. The clicks are
//! written and read on a real-time thread, as the engine's 10 ms tick runs. The same
//! clicks measure a call's path (`call_path`), from one null sink into another.

use std::time::Instant;

use confab_audio::device::{DeviceSink, DeviceSource};
use confab_audio::io::{Sink, Source};
use confab_audio::{TICK_DURATION, TICK_SAMPLES};
use confab_testkit::cpu_hogs::CpuHogs;

use crate::stalls::{StallWatch, Stalls};

pub const CLICKS: usize = 50;
const CLICK_EVERY_TICKS: usize = confab_audio::ticks_in(400) as usize;
/// A click: 5 ms of 1 kHz at -2 dBFS peak, a sound a voice codec carries.
const CLICK_SAMPLES: usize = 240;
const CLICK_HZ: f32 = 1_000.0;
/// Found where the signal first passes this.
const THRESHOLD: f32 = 0.3;

/// What one run measured.
pub struct RoundTrip {
    /// Speaker-to-monitor time, in ms.
    pub median: f64,
    pub p95: f64,
    /// Underruns of the speaker and the monitor over the run.
    pub underruns: u64,
    /// Clicks found, of `CLICKS`.
    pub found: usize,
    /// The host's stalls over the run.
    pub stalls: Stalls,
}

/// Speaker-to-monitor time, idle and with every core kept busy; `None` without a sound
/// server.
pub fn round_trips() -> anyhow::Result<Option<(RoundTrip, RoundTrip)>> {
    if std::env::var_os("PULSE_SERVER").is_none() {
        return Ok(None);
    }
    let sink = std::env::var("CONFAB_BENCH_SINK").ok();
    let monitor = format!("{}.monitor", sink.as_deref().unwrap_or("@DEFAULT_SINK@"));
    let idle = clicks(sink.clone(), monitor.clone())?;
    let busy = {
        let _hog = CpuHogs::start(1);
        clicks(sink, monitor)?
    };
    Ok(Some((idle, busy)))
}

/// Clicks written to `sink` (the default one for `None`) and found on `source`.
pub fn clicks(sink: Option<String>, source: String) -> anyhow::Result<RoundTrip> {
    let run = click_run(sink, vec![source.clone()])?;
    let latencies: Vec<f64> = run.times.into_iter().flatten().flatten().collect();
    summary(latencies, run.underruns, run.stalls, &source)
}

/// Clicks written to `sink` and found both on `direct` (the sink's own monitor) and on
/// `far` (at the end of a path that starts at the sink): per click, the far time less the
/// direct one, which leaves out the bench's own playback side (shared) and the capture
/// side (the same on both).
pub fn clicks_via(sink: String, direct: String, far: String) -> anyhow::Result<RoundTrip> {
    let run = click_run(Some(sink), vec![direct, far.clone()])?;
    let [at_direct, at_far] = <[Vec<Option<f64>>; 2]>::try_from(run.times)
        .map_err(|_| anyhow::anyhow!("two sources read, not two results"))?;
    let differences = at_direct
        .iter()
        .zip(&at_far)
        .filter_map(|(d, f)| Some((*f)? - (*d)?))
        .collect();
    summary(differences, run.underruns, run.stalls, &far)
}

fn summary(
    mut latencies: Vec<f64>,
    underruns: u64,
    stalls: Stalls,
    source: &str,
) -> anyhow::Result<RoundTrip> {
    if latencies.len() < CLICKS / 2 {
        anyhow::bail!("found {} of {CLICKS} clicks on {source}", latencies.len());
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |p: f64| latencies[((p / 100.0) * (latencies.len() - 1) as f64).round() as usize];
    Ok(RoundTrip {
        median: pick(50.0),
        p95: pick(95.0),
        underruns,
        found: latencies.len(),
        stalls,
    })
}

/// What a click run saw.
struct ClickRun {
    /// Per source, each click's time in ms (`None`: not found).
    times: Vec<Vec<Option<f64>>>,
    /// The underruns of all the devices.
    underruns: u64,
    /// The host's stalls meanwhile.
    stalls: Stalls,
}

/// Writes the clicks and reads `sources`, on a thread of its own at the priority the
/// engine's tick runs at: the engine's 10 ms clock is what the device rings work against.
fn click_run(sink: Option<String>, sources: Vec<String>) -> anyhow::Result<ClickRun> {
    let watch = StallWatch::start();
    let run = std::thread::spawn(move || {
        confab_audio::priority::promote_current_thread("the bench's tick", TICK_SAMPLES as u32);
        let sink = DeviceSink::open(sink.as_deref())?;
        let sources = sources
            .iter()
            .map(|name| DeviceSource::open(Some(name)))
            .collect::<Result<Vec<_>, _>>()?;
        tick_clicks(sink, sources)
    })
    .join();
    let stalls = watch.stop();
    let (times, underruns) = run.map_err(|_| anyhow::anyhow!("the click run panicked"))??;
    Ok(ClickRun {
        times,
        underruns,
        stalls,
    })
}

fn tick_clicks(
    mut sink: DeviceSink,
    mut sources: Vec<DeviceSource>,
) -> anyhow::Result<(Vec<Vec<Option<f64>>>, u64)> {
    // All on one 10 ms clock, one tick's samples out and in per source per tick: a click
    // written at sample N and found at sample M took M - N samples.
    let (mut written, mut read) = (0usize, 0usize);
    let mut clicks = Vec::new();
    let mut found = vec![Vec::new(); sources.len()];
    let start = Instant::now();
    let settle = confab_audio::ticks_in(2_000) as usize; // silence first: an idle null sink starts late
    for tick in 0..settle + CLICKS * CLICK_EVERY_TICKS {
        let mut out = [0.0f32; TICK_SAMPLES];
        if tick >= settle && (tick - settle).is_multiple_of(CLICK_EVERY_TICKS) {
            for (i, s) in out[..CLICK_SAMPLES].iter_mut().enumerate() {
                *s = 0.8 * (std::f32::consts::TAU * CLICK_HZ * i as f32 / 48_000.0).sin();
            }
            clicks.push(written);
        }
        sink.write(&out)?;
        written += TICK_SAMPLES;
        for (source, found) in sources.iter_mut().zip(&mut found) {
            let mut captured = [0.0f32; TICK_SAMPLES];
            source.fill(&mut captured)?;
            if let Some(at) = captured.iter().position(|s| s.abs() > THRESHOLD) {
                // One detection per click: a click is shorter than a tick.
                if found
                    .last()
                    .is_none_or(|last| read + at > last + TICK_SAMPLES)
                {
                    found.push(read + at);
                }
            }
        }
        read += TICK_SAMPLES;
        let next = start + TICK_DURATION * (tick as u32 + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    // Each click paired with the first sound found after it and before the next click: a
    // click lost on the way is missing, not the next one's arrival.
    let spacing = CLICK_EVERY_TICKS * TICK_SAMPLES;
    let times = found
        .iter()
        .map(|found| {
            clicks
                .iter()
                .map(|c| {
                    let f = found.iter().find(|f| *f > c && **f < c + spacing)?;
                    Some((f - c) as f64 / 48.0)
                })
                .collect()
        })
        .collect();
    let underruns = sink.underruns() + sources.iter().map(Source::underruns).sum::<u64>();
    Ok((times, underruns))
}
