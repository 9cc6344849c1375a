//! `voice-bench`: what a call costs and how it sounds. Run by hand; it prints figures and
//! asserts nothing.
//!
//! On loopback, in-process:
//! - capture-to-playout latency: a click injected at the source every 400 ms is found in the
//!   far side's playout, over a real peer connection built as calls build them (Opus, RTP,
//!   jitter buffer, decoder); device buffers are not involved and are reported apart,
//!   measured through a sound server's speaker and its monitor when one runs (`devices`);
//! - a call's whole path through devices (`call_path`): clicks into A's microphone (a null
//!   sink's monitor) found on B's speaker, two `confab peer` processes on loopback, less
//!   each click's time to that sink's own monitor; with B's concealed and stretched frames;
//! - jitter buffer depth during that run;
//! - CPU time per second of call, per peer, for 2- and 5-peer group calls of real peers;
//! - the fraction of 20 ms frames concealed (and recovered by FEC) under 0 % and 5 % random
//!   packet loss.
//!
//! Speech quality (`speech`), at each `--loss` rate: about 24 s of espeak-ng speech sent
//! by one release `confab peer` to another, which records it, both in a network namespace
//! where nftables drops that share of arriving UDP; and two anchors computed in-process
//! with the same codec: plain Opus with a perfect receiver at that loss, and the ceiling
//! (nothing lost). Each is scored with wide-band PESQ and STOI (`pesq_score.py`). Needs
//! root, nftables, espeak-ng, sox and Python's `pesq` and `pystoi`; what is missing is
//! named and its part skipped. About 40 s per loss rate.
//!
//! ```text
//! cargo build --release -p confab -p confab-bench
//! target/release/voice-bench                                      # everything
//! target/release/voice-bench --speech-only --loss 0,5,10,20       # as root
//! target/release/voice-bench --no-speech                          # loopback figures only
//! target/release/voice-bench --devices-only                       # through a sound server
//! ```

mod call_path;
mod devices;
mod speech;
mod stalls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use confab_audio::codec::{VoiceDecoder, VoiceEncoder};
use confab_audio::jitter::{JitterBuffer, Playout};
use confab_audio::open::{SinkSpec, SourceSpec};
use confab_audio::{FRAME_DURATION, FRAME_MS, FRAME_SAMPLES};
use confab_bench::peers::sibling_confab;
use confab_mesh::api::{CallState, ChannelState, SignalingState};
use confab_mesh::{Command, Event, Identity, Mesh, MeshConfig, TransportConfig};
use confab_signal::{ServerConfig, ServerHandle};
use confab_testkit::loopback_pair::{Arrival, LoopbackPair};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;

#[derive(Debug, Parser)]
#[command(about = "Measure what a Confab call costs and how its speech sounds under loss")]
struct Args {
    /// Only the speech-quality run.
    #[arg(long, conflicts_with = "no_speech")]
    speech_only: bool,
    /// Leave the speech-quality run out.
    #[arg(long)]
    no_speech: bool,
    /// Only the figures through a sound server's devices: the device round trip and a
    /// call's path from A's microphone to B's speaker (implies --no-speech).
    #[arg(long, conflicts_with = "speech_only")]
    devices_only: bool,
    /// Random UDP loss rates of the speech-quality run, in percent.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [0u8, 5, 10, 20],
        value_parser = clap::value_parser!(u8).range(0..=100),
    )]
    loss: Vec<u8>,
    /// The `confab` binary the speech-quality run calls with.
    #[arg(long, default_value_os_t = sibling_confab())]
    confab: PathBuf,
    /// Keep the speech-quality run's WAVs (reference, recordings, anchors) in DIR.
    #[arg(long, value_name = "DIR")]
    keep_audio: Option<PathBuf>,
}

const CLICKS: usize = 50;
/// A click every 400 ms.
const CLICK_EVERY_FRAMES: usize = confab_audio::frames_in(400) as usize;

fn main() -> anyhow::Result<()> {
    // Quiet unless RUST_LOG asks: what the libraries log while a figure is measured (a
    // speaker's requests growing, for one).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.devices_only {
        device_figures(&runtime, &args.confab)?;
    } else if !args.speech_only {
        loopback_figures(&runtime, &args.confab)?;
    }
    if !args.no_speech && !args.devices_only {
        let options = speech::Options {
            losses: args.loss,
            confab: args.confab,
            keep_audio: args.keep_audio,
        };
        speech::run(&runtime, &options)?;
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// The figures on loopback: in-process, and through devices and `confab peer`s where a
/// sound server runs.
fn loopback_figures(runtime: &tokio::runtime::Runtime, confab: &Path) -> anyhow::Result<()> {
    let (latency, depth) = runtime.block_on(click_latency())?;
    let cpu2 = runtime.block_on(call_cpu(2))?;
    let cpu5 = runtime.block_on(call_cpu(5))?;
    let (concealed0, recovered0) = concealment(0.0);
    let (concealed5, recovered5) = concealment(0.05);
    println!("\nvoice-bench on loopback (Opus 48 kHz mono, {FRAME_MS} ms frames)");
    println!(
        "{:<52} {:>10.1} ms",
        "capture to playout, median", latency.0
    );
    println!("{:<52} {:>10.1} ms", "capture to playout, p95", latency.1);
    device_figures(runtime, confab)?;
    println!("{:<52} {:>10.2} frames", "jitter buffer depth, mean", depth);
    println!(
        "{:<52} {:>10.2} %",
        "CPU per peer, 2-peer call (of one core)", cpu2
    );
    println!(
        "{:<52} {:>10.2} %",
        "CPU per peer, 5-peer call (of one core)", cpu5
    );
    println!(
        "{:<52} {:>10.2} % ({:.2} % recovered by FEC)",
        "frames concealed at 0 % loss", concealed0, recovered0
    );
    println!(
        "{:<52} {:>10.2} % ({:.2} % recovered by FEC)",
        "frames concealed at 5 % loss", concealed5, recovered5
    );
    Ok(())
}

/// A click every 400 ms from A's source; B plays out on its own 20 ms clock and timestamps
/// the frame where each click comes out. Latency: from the start of the click's capture
/// frame to the click's place in the playout frame, both on one monotonic clock.
async fn click_latency() -> anyhow::Result<((f64, f64), f64)> {
    let pair = LoopbackPair::build().await?;
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let ssrc = rand::random::<u32>();
    let track = Arc::new(confab_mesh::voice::local_track(ssrc).map_err(anyhow::Error::msg)?);
    let sender = a.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
    let mut arrivals = pair.connect().await?;

    let epoch = Instant::now();
    let frames = (CLICKS + 5) * CLICK_EVERY_FRAMES;
    let sending = tokio::spawn(async move {
        let mut encoder = VoiceEncoder::new(0)?;
        let mut ticks = tokio::time::interval(FRAME_DURATION);
        let mut clicks_at = Vec::new();
        let mut payload_type = None;
        for i in 0..frames {
            ticks.tick().await;
            let captured_at = epoch.elapsed().as_secs_f64() * 1000.0;
            let mut frame = [0.0f32; FRAME_SAMPLES];
            if i % CLICK_EVERY_FRAMES == 0 && i >= 2 * CLICK_EVERY_FRAMES {
                // A short burst at the frame's start: easy to find, hard to mistake.
                for (k, s) in frame.iter_mut().take(48).enumerate() {
                    *s = if k % 2 == 0 { 0.9 } else { -0.9 };
                }
                clicks_at.push(captured_at);
            }
            let packet = encoder.encode(&frame)?;
            if payload_type.is_none() {
                payload_type = sender
                    .get_parameters()
                    .await
                    .ok()
                    .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
            }
            if let Some(pt) = payload_type {
                let sample = rtc::media::Sample {
                    data: packet.into(),
                    duration: FRAME_DURATION,
                    ..rtc::media::Sample::new(Instant::now())
                };
                let _ = track.sample_writer(ssrc, pt).write_sample(&sample).await;
            }
        }
        anyhow::Ok(clicks_at)
    });

    let remote = loop {
        match tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await {
            Ok(Some(Arrival::Track(track))) => break track,
            Ok(Some(Arrival::Channel(_))) => {}
            Ok(None) | Err(_) => bail!("no remote track"),
        }
    };
    let (rtp_tx, mut rtp_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = remote.poll().await {
            if let TrackRemoteEvent::OnRtpPacket(p) = event {
                let arrival = epoch.elapsed().as_secs_f64() * 1000.0;
                if rtp_tx
                    .send((
                        p.header.sequence_number,
                        p.header.timestamp,
                        p.payload.to_vec(),
                        arrival,
                    ))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    let mut jitter = JitterBuffer::new();
    let mut decoder = VoiceDecoder::new()?;
    // The playout clock follows the arrivals as the engine's does (no device queue here
    // to shorten when it moves).
    let mut play_at = tokio::time::Instant::now();
    let mut heard_at = Vec::new();
    let mut depth_sum = 0usize;
    let mut quiet_frames = CLICK_EVERY_FRAMES;
    // Between clicks the stream is quiet, where the buffer may skip unheard.
    let mut played_quiet = confab_audio::dsp::QuietTicks::default();
    for _ in 0..frames + 10 {
        tokio::time::sleep_until(play_at).await;
        play_at += FRAME_DURATION;
        if let Some(ms) = jitter.advance_ms() {
            // Less than a frame at once, as the engine moves less than its tick at once.
            play_at -= Duration::from_secs_f64(ms.min(0.75 * FRAME_MS) / 1000.0);
            jitter.moved_earlier();
        }
        while let Ok((seq, ts, payload, arrival)) = rtp_rx.try_recv() {
            jitter.push(seq, ts, payload, arrival);
        }
        depth_sum += jitter.depth();
        let played_at = epoch.elapsed().as_secs_f64() * 1000.0;
        let frame = match jitter.pop(played_at, played_quiet.both()) {
            Playout::Packet(p) => decoder.decode(&p)?,
            Playout::Recover(p) => decoder.recover(&p, FRAME_SAMPLES)?,
            Playout::Conceal => decoder.conceal(FRAME_SAMPLES)?,
            Playout::Silence => &[0.0; FRAME_SAMPLES],
        };
        played_quiet.note(frame);
        quiet_frames += 1;
        if let Some(at) = frame.iter().position(|s| s.abs() > 0.3)
            && quiet_frames > CLICK_EVERY_FRAMES / 2
        {
            heard_at.push(played_at + at as f64 / 48.0);
            quiet_frames = 0;
        }
    }
    let clicks_at = sending.await??;
    if heard_at.len() < clicks_at.len() {
        bail!("heard {} of {} clicks", heard_at.len(), clicks_at.len());
    }
    // Pair each click with the first detection after it.
    let mut latencies: Vec<f64> = clicks_at
        .iter()
        .filter_map(|c| heard_at.iter().find(|h| *h > c).map(|h| h - c))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |p: f64| latencies[((p / 100.0) * (latencies.len() - 1) as f64).round() as usize];
    let _ = a.close().await;
    let _ = b.close().await;
    Ok((
        (pick(50.0), pick(95.0)),
        depth_sum as f64 / (frames + 10) as f64,
    ))
}

/// This process's user and system CPU time, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// `n` peers in one group call, tones in, audio out to nowhere: CPU time per second of call
/// per peer, as a percentage of one core. All peers share this process.
async fn call_cpu(n: usize) -> anyhow::Result<f64> {
    let server = ServerHandle::start(([127, 0, 0, 1], 0).into(), ServerConfig::default()).await?;
    let url = format!("ws://{}/ws", server.local_addr());
    let mut peers = Vec::new();
    for i in 0..n {
        let mut mesh = Mesh::start(MeshConfig {
            name: format!("v{i}"),
            transport: TransportConfig::loopback(),
            identity: Identity::ephemeral()?,
            auto_accept_files: None,
            data_dir: None,
            audio_in: Some(SourceSpec::Sine((300 + 100 * i) as f64)),
            audio_out: Some(SinkSpec::None),
            auto_accept_calls: true,
        });
        mesh.send(Command::Connect {
            server: url.clone(),
            room: format!("cpu{n}"),
            name: format!("v{i}"),
            password: None,
        });
        wait(&mut mesh, |e| {
            matches!(
                e,
                Event::Signaling {
                    state: SignalingState::Connected,
                    ..
                }
            )
        })
        .await?;
        peers.push(mesh);
    }
    for mesh in &mut peers {
        for _ in 1..n {
            wait(mesh, |e| matches!(e, Event::Channel { label, state: ChannelState::Open, .. } if label == "chat")).await?;
        }
    }
    peers[0].send(Command::Call { peers: None });
    for _ in 1..n {
        wait(&mut peers[0], |e| {
            matches!(
                e,
                Event::CallState {
                    state: CallState::Active,
                    ..
                }
            )
        })
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu_before, wall_before) = (cpu_seconds(), Instant::now());
    let drain = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < drain {
        for mesh in &mut peers {
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(1), mesh.next_event()).await
            {
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let share =
        (cpu_seconds() - cpu_before) / wall_before.elapsed().as_secs_f64() / n as f64 * 100.0;
    for mesh in &peers {
        mesh.send(Command::Quit);
    }
    for mesh in peers {
        mesh.stopped().await;
    }
    server.stop().await;
    Ok(share)
}

async fn wait(mesh: &mut Mesh, matches: impl Fn(&Event) -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, mesh.next_event()).await {
            Ok(Some(event)) if matches(&event) => return Ok(()),
            Ok(Some(_)) => {}
            _ => bail!("timed out"),
        }
    }
}

/// The device side, and a call's whole path through devices, where a sound server runs.
fn device_figures(runtime: &tokio::runtime::Runtime, confab: &Path) -> anyhow::Result<()> {
    let device = devices::round_trips()?;
    // Without its peers or a way to load sinks the rest still stands: said, not fatal.
    let call = call_path::measure(runtime, confab);
    match &device {
        Some((idle, busy)) => {
            for (label, run) in [("idle", idle), ("all cores busy", busy)] {
                println!(
                    "{:<52} {:>10.1} ms (p95 {:.1} ms, {} underruns, {})",
                    format!("device side, speaker to its monitor, {label}"),
                    run.median,
                    run.p95,
                    run.underruns,
                    run.stalls
                );
            }
        }
        None => println!(
            "{:<52} {:>10}",
            "device side (not included)", "no sound server"
        ),
    }
    match call {
        Ok(Some((idle, busy))) => {
            for (label, run) in [("idle", idle), ("all cores busy", busy)] {
                println!(
                    "{:<52} {:>10.1} ms (p95 {:.1} ms, {} of {} clicks, {})",
                    format!("A's microphone to B's speaker, {label}"),
                    run.path.median,
                    run.path.p95,
                    run.path.found,
                    devices::CLICKS,
                    run.path.stalls
                );
                let playout = run
                    .playout
                    .map_or_else(|| "no summary".to_owned(), |p| p.to_string());
                println!("{:<52} {playout}", format!("  B's playout of A, {label}"));
            }
        }
        Ok(None) => {}
        Err(e) => println!(
            "{:<52} {e:#}",
            "A's microphone to B's speaker: not measured"
        ),
    }
    Ok(())
}

/// 3000 frames of speech-like tone through Opus (FEC on, expecting `loss`), with `loss` of
/// the packets dropped at random, into the jitter buffer: percentages of frames concealed,
/// and recovered from FEC.
fn concealment(loss: f64) -> (f64, f64) {
    let Ok(mut encoder) = VoiceEncoder::new((loss * 100.0).round() as u8) else {
        return (f64::NAN, f64::NAN);
    };
    let mut tone = confab_audio::dsp::Tone::new(440.0);
    let mut jitter = JitterBuffer::new();
    const FRAMES: u16 = 3000;
    for seq in 0..FRAMES {
        let mut frame = [0.0f32; FRAME_SAMPLES];
        tone.fill(&mut frame);
        let Ok(packet) = encoder.encode(&frame) else {
            continue;
        };
        if rand::random::<f64>() >= loss {
            jitter.push(
                seq,
                u32::from(seq) * FRAME_SAMPLES as u32,
                packet,
                f64::from(seq) * FRAME_MS + 1.0,
            );
        }
        if seq > 0 {
            // A steady tone is never quiet.
            jitter.pop(f64::from(seq) * FRAME_MS + 1.0, false);
        }
    }
    let stats = jitter.stats();
    let total = f64::from(FRAMES);
    (
        stats.concealed as f64 / total * 100.0,
        stats.recovered as f64 / total * 100.0,
    )
}
