//! Sound devices through cpal: listing them, and a microphone and a speaker behind the
//! [`Source`] and [`Sink`] traits.
//!
//! The PulseAudio host is preferred where a sound server runs (it reports a vanished server
//! as a clean error; the ALSA host, through its pulse plugin, floods its error callback and
//! hangs on drop), and ALSA is the fallback. Each stream lives on a thread of its own, so
//! opening or dropping a device never blocks the audio engine. The device callbacks only
//! move samples through lock-free rings (no locks, no allocation); resampling to and from
//! 48 kHz and the framing into 10 ms ticks happen on the engine's side.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample, StreamConfig};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::cushion::Cushion;
use crate::drift::{Backlog, Drift};
use crate::io::{Sink, Source};
use crate::priority;
use crate::resample::RateConverter;
use crate::speaker_queue::SpeakerQueue;
use crate::{AudioError, SAMPLE_RATE, TICK_MS};

/// `samples` at `rate` in ms.
fn ms_at(rate: u32, samples: usize) -> f64 {
    samples as f64 * 1000.0 / f64::from(rate)
}

/// Samples at 48 kHz in ms.
fn ms(samples: usize) -> f64 {
    ms_at(SAMPLE_RATE, samples)
}

/// `ms` milliseconds of samples at `rate`.
fn samples(rate: u32, ms: u32) -> usize {
    (u64::from(rate) * u64::from(ms) / 1000) as usize
}

/// A margin for a ring at `rate`, starting at `floor_ms`, for requests of `request_ms`.
fn cushion(rate: u32, floor_ms: u32, request_ms: u32) -> Cushion {
    Cushion::new(
        samples(rate, floor_ms),
        samples(rate, MARGIN_STEP_MS),
        samples(rate, MARGIN_MOST_MS),
        CUSHION_WATCH_MS / request_ms.max(1),
    )
}

/// Device requests of 5 ms (Pulse's default buffer is two seconds; cpal asks it for two
/// requests' worth, 10 ms, on playback). The callbacks run at real-time priority
/// (`priority`), so a busy machine rarely makes them late; when it does, the ring's margin
/// grows instead. At 20 ms the device side of a call took about 100 ms; at 5 ms, with the
/// margins below held steady by following the device's clock (`drift`), about 29 ms idle
/// and busy through a null sink and its monitor with streams opened at 48 kHz and the
/// engine's 10 ms tick (voice-bench; 40 ms with a 20 ms tick, 46.7 ms with streams at the
/// sink's 44.1 kHz and our converter between). Microphone
/// pieces of 2.5 ms measured the same as 5 ms and were not kept.
const DEVICE_BUFFER_MS: u32 = 5;
/// The rings hold half a second at the highest rate a device may run at (two seconds at
/// 48 kHz); the engine keeps them far emptier than that.
const RING_MS: u32 = 500;
/// The margins kept (see `cushion`; the playback's at the ring's low point, see
/// `speaker_queue`; the capture's beyond a frame): the capture's starts at 2 ms and the
/// playback's at 4 ms (its requests are the sound server's, less regular than our tick;
/// at 4 the device side met no underrun through a null sink, idle or busy, and the
/// devices test passed 10 of 10 with three busy loops per core), each growing by 5 ms per
/// underrun up to 60 ms: small where the machine keeps up, as large as it needs where it
/// does not.
const CAPTURE_MARGIN_MS: u32 = 2;
const PLAYBACK_MARGIN_MS: u32 = 4;
const MARGIN_STEP_MS: u32 = 5;
const MARGIN_MOST_MS: u32 = 60;
/// How long a margin must go unneeded before it shrinks a step: long enough to have met
/// the jitter a busy machine shows.
const CUSHION_WATCH_MS: u32 = 2_000;
/// Queued beyond what is kept by more than this (a stream that started late, an engine or
/// a sound server catching up after a stall) is cut back at once: one skip rather than
/// seconds of delay for the clock following to take down.
const EXCESS_MS: u32 = 60;
/// A stream without a callback for this long is gone. (An idle PulseAudio null sink can
/// take two seconds to start a stream.)
const STALLED_AFTER: Duration = Duration::from_secs(3);
/// How long a device may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong with a sound device, in words a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("no sound system is available ({0})")]
    NoSoundSystem(String),
    #[error("there is no {0} device")]
    NoDefault(Direction),
    #[error("there is no {direction} device named `{name}`")]
    NotFound { direction: Direction, name: String },
    #[error("the {direction} device `{name}` is busy")]
    Busy { direction: Direction, name: String },
    #[error("the {direction} device `{name}` could not be opened: {reason}")]
    Open {
        direction: Direction,
        name: String,
        reason: String,
    },
    #[error("the {direction} device `{name}` stopped working: {reason}")]
    Lost {
        direction: Direction,
        name: String,
        reason: String,
    },
}

/// A microphone or a speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Input => "input",
            Self::Output => "output",
        })
    }
}

/// One device as a user picks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What the system calls it for people ("Built-in Audio Analog Stereo").
    pub name: String,
    /// The host's own name for it ("alsa_output.pci-0000_00_1f.3.analog-stereo"): stable,
    /// and unique where display names are not.
    pub id: String,
    pub default: bool,
}

/// Every input and output device.
#[derive(Debug, Clone, Default)]
pub struct DeviceList {
    pub inputs: Vec<DeviceInfo>,
    pub outputs: Vec<DeviceInfo>,
}

/// Lists the devices. Blocks while it asks the sound system: call it off the async threads.
pub fn list() -> Result<DeviceList, DeviceError> {
    let host = host()?;
    let no_system = |e: cpal::Error| DeviceError::NoSoundSystem(plain(&e));
    let default_in = host.default_input_device().map(|d| device_id(&d));
    let default_out = host.default_output_device().map(|d| device_id(&d));
    Ok(DeviceList {
        inputs: describe_all(host.input_devices().map_err(no_system)?, default_in),
        outputs: describe_all(host.output_devices().map_err(no_system)?, default_out),
    })
}

/// Names people can tell apart: a display name that several devices share gets the
/// device's id after it, the form [`find`] takes too.
fn describe_all(
    devices: impl Iterator<Item = cpal::Device>,
    default_id: Option<String>,
) -> Vec<DeviceInfo> {
    let devices: Vec<(String, String)> =
        devices.map(|d| (display_name(&d), device_id(&d))).collect();
    devices
        .iter()
        .map(|(name, id)| {
            let shared = devices.iter().filter(|(other, _)| other == name).count() > 1;
            DeviceInfo {
                name: if shared {
                    format!("{name} ({id})")
                } else {
                    name.clone()
                },
                default: default_id.as_deref() == Some(id.as_str()),
                id: id.clone(),
            }
        })
        .collect()
}

fn host() -> Result<cpal::Host, DeviceError> {
    if let Ok(host) = cpal::host_from_id(cpal::HostId::PulseAudio) {
        return Ok(host);
    }
    cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| DeviceError::NoSoundSystem(plain(&e)))
}

fn device_id(device: &cpal::Device) -> String {
    device.id().map(|id| id.id().to_owned()).unwrap_or_default()
}

fn display_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| device_id(device))
}

/// The default device (`None`) or one named by its id or its display name.
fn find(
    host: &cpal::Host,
    direction: Direction,
    name: Option<&str>,
) -> Result<cpal::Device, DeviceError> {
    let Some(name) = name else {
        let default = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return default.ok_or(DeviceError::NoDefault(direction));
    };
    let devices: Vec<cpal::Device> = match direction {
        Direction::Input => host.input_devices().map(Iterator::collect),
        Direction::Output => host.output_devices().map(Iterator::collect),
    }
    .map_err(|e| DeviceError::NoSoundSystem(plain(&e)))?;
    let by_id = devices.iter().find(|d| device_id(d) == name);
    by_id
        .or_else(|| devices.iter().find(|d| display_name(d) == name))
        .or_else(|| {
            devices
                .iter()
                .find(|d| format!("{} ({})", display_name(d), device_id(d)) == name)
        })
        .cloned()
        .ok_or_else(|| DeviceError::NotFound {
            direction,
            name: name.to_owned(),
        })
}

/// Why a stream failed, set from cpal's error callback (not the audio callback: a lock is
/// fine there) and read by the engine; a count of the audio callbacks, by which the
/// engine notices a stream that stopped without a word (a sound server drops a stream
/// whose device was unplugged, and cpal's Pulse host does not say so); the playback
/// callback's underruns; the size and time of the last callback's buffer (a request to
/// fill, or a piece captured); and the samples the writing side asks the playback
/// callback to drop from its queue, oldest first (`speaker_queue`).
#[derive(Debug, Default)]
struct Health {
    failed: AtomicBool,
    reason: Mutex<String>,
    callbacks: AtomicU64,
    underruns: AtomicU64,
    piece: AtomicUsize,
    /// When the last callback came, in ns after `EPOCH` (0: none yet).
    piece_at: AtomicU64,
    skip: AtomicUsize,
}

/// What request times are counted from, for a time in an atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_epoch_ns(at: Instant) -> u64 {
    u64::try_from(at.duration_since(*EPOCH).as_nanos()).unwrap_or(u64::MAX)
}

/// The engine's watch on a stream's callbacks. Time is passed in.
#[derive(Debug)]
struct Watchdog {
    seen: u64,
    since: Instant,
}

impl Watchdog {
    fn new(now: Instant) -> Self {
        Self {
            seen: 0,
            since: now,
        }
    }

    /// Whether the stream has gone without a callback for too long, given the callbacks
    /// counted so far.
    fn stalled(&mut self, callbacks: u64, now: Instant) -> bool {
        if callbacks != self.seen {
            self.seen = callbacks;
            self.since = now;
            return false;
        }
        now.duration_since(self.since) > STALLED_AFTER
    }
}

impl Health {
    /// A callback's buffer of `frames`, now.
    fn note_piece(&self, frames: u32) {
        self.piece.store(frames as usize, Relaxed);
        self.piece_at
            .store(since_epoch_ns(Instant::now()).max(1), Relaxed);
    }

    /// The last callback's buffer, and how much of the next one the device has played or
    /// recorded since, at `rate` (at most a buffer's worth; nothing before a callback).
    fn piece_and_since(&self, rate: u32) -> (usize, usize) {
        let piece = self.piece.load(Relaxed);
        let at = self.piece_at.load(Relaxed);
        if at == 0 {
            return (piece, 0);
        }
        let since_ns = since_epoch_ns(Instant::now()).saturating_sub(at);
        let since = since_ns as f64 * f64::from(rate) / 1e9;
        (piece, (since as usize).min(piece))
    }

    fn on_error(&self, error: &cpal::Error) {
        use cpal::ErrorKind::{DeviceChanged, RealtimeDenied, Xrun};
        // Glitches and route changes go on playing; anything else ends the stream.
        if matches!(error.kind(), Xrun | DeviceChanged | RealtimeDenied) {
            return;
        }
        if let Ok(mut reason) = self.reason.lock() {
            *reason = plain(error);
        }
        self.failed.store(true, Relaxed);
    }

    fn check(
        &self,
        direction: Direction,
        name: &str,
        watchdog: &mut Watchdog,
    ) -> Result<(), DeviceError> {
        if watchdog.stalled(self.callbacks.load(Relaxed), Instant::now()) {
            return Err(DeviceError::Lost {
                direction,
                name: name.to_owned(),
                reason: "the sound system stopped serving it".to_owned(),
            });
        }
        if !self.failed.load(Relaxed) {
            return Ok(());
        }
        let reason = self
            .reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|_| "unknown error".to_owned());
        Err(DeviceError::Lost {
            direction,
            name: name.to_owned(),
            reason,
        })
    }
}

/// cpal's message without its closing full stop, to go inside a sentence of ours.
fn plain(error: &cpal::Error) -> String {
    error.to_string().trim_end_matches('.').to_owned()
}

/// The thread that owns a cpal stream; dropping this stops the stream there.
#[derive(Debug)]
struct StreamThread {
    _stop: mpsc::Sender<()>,
}

/// A device opened on its thread: its native rate, its name and the thread holding it.
struct Opened {
    rate: u32,
    name: String,
    thread: StreamThread,
}

/// Builds a stream for a device in its native format; the ring end moves into the callback.
type Build<Ring> = fn(
    &cpal::Device,
    StreamConfig,
    SampleFormat,
    Ring,
    Arc<Health>,
) -> Result<cpal::Stream, cpal::Error>;

/// Opens a device on a thread of its own and waits (a bounded time) for it to play.
fn open<Ring: Send + 'static>(
    direction: Direction,
    name: Option<&str>,
    ring: Ring,
    health: Arc<Health>,
    build: Build<Ring>,
) -> Result<Opened, DeviceError> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (stop, stopped) = mpsc::channel::<()>();
    let wanted = name.map(str::to_owned);
    let label = name.unwrap_or("default").to_owned();
    std::thread::Builder::new()
        .name(format!("confab-audio-{direction}"))
        .spawn(move || {
            // The sound server client's threads start from here and inherit it.
            priority::raise_current_thread();
            let opened = start_stream(direction, wanted.as_deref(), ring, health, build);
            match opened {
                Ok((stream, rate, name)) => {
                    let _ = ready_tx.send(Ok((rate, name)));
                    // Until the handle is dropped.
                    let _ = stopped.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| DeviceError::Open {
            direction,
            name: label.clone(),
            reason: e.to_string(),
        })?;
    match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok((rate, name))) => Ok(Opened {
            rate,
            name,
            thread: StreamThread { _stop: stop },
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeviceError::Open {
            direction,
            name: label,
            reason: "the sound system did not answer".to_owned(),
        }),
    }
}

/// On the stream's thread: finds the device, builds the stream and starts it.
fn start_stream<Ring>(
    direction: Direction,
    name: Option<&str>,
    ring: Ring,
    health: Arc<Health>,
    build: Build<Ring>,
) -> Result<(cpal::Stream, u32, String), DeviceError> {
    let host = host()?;
    let device = find(&host, direction, name)?;
    let name = display_name(&device);
    let open_error = |e: cpal::Error| match e.kind() {
        cpal::ErrorKind::DeviceBusy => DeviceError::Busy {
            direction,
            name: name.clone(),
        },
        _ => DeviceError::Open {
            direction,
            name: name.clone(),
            reason: plain(&e),
        },
    };
    let native = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(open_error)?;
    let format = native.sample_format();
    let mut config: StreamConfig = native.config();
    if takes_our_rate(&device, direction, &config, format) {
        config.sample_rate = SAMPLE_RATE;
    }
    let rate = config.sample_rate;
    config.buffer_size = cpal::BufferSize::Fixed((rate * DEVICE_BUFFER_MS / 1000).max(1));
    let stream = build(&device, config, format, ring, health).map_err(open_error)?;
    stream.play().map_err(open_error)?;
    Ok((stream, rate, name))
}

/// Whether the device opens at our 48 kHz with its own channels and format: then no
/// converter runs on our side, and its chunk and delay each way (3.4 ms in all at 44.1
/// kHz) leave the path. A sound server converts in its own process, off our threads.
fn takes_our_rate(
    device: &cpal::Device,
    direction: Direction,
    config: &StreamConfig,
    format: SampleFormat,
) -> bool {
    let offered = |range: &cpal::SupportedStreamConfigRange| {
        range.channels() == config.channels
            && range.sample_format() == format
            && (range.min_sample_rate()..=range.max_sample_rate()).contains(&SAMPLE_RATE)
    };
    match direction {
        Direction::Input => device
            .supported_input_configs()
            .is_ok_and(|mut ranges| ranges.any(|r| offered(&r))),
        Direction::Output => device
            .supported_output_configs()
            .is_ok_and(|mut ranges| ranges.any(|r| offered(&r))),
    }
}

/// A ring long enough for half a second at any rate a device may run at.
fn ring() -> (HeapProd<f32>, HeapCons<f32>) {
    HeapRb::<f32>::new(192_000 * RING_MS as usize / 1000).split()
}

fn build_input(
    device: &cpal::Device,
    config: StreamConfig,
    format: SampleFormat,
    ring: HeapProd<f32>,
    health: Arc<Health>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::I16 => input_stream::<i16>(device, config, ring, health),
        SampleFormat::I32 => input_stream::<i32>(device, config, ring, health),
        SampleFormat::U8 => input_stream::<u8>(device, config, ring, health),
        SampleFormat::U16 => input_stream::<u16>(device, config, ring, health),
        // Float, and whatever else: the sound server converts.
        _ => input_stream::<f32>(device, config, ring, health),
    }
}

fn input_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut ring: HeapProd<f32>,
    health: Arc<Health>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels).max(1);
    let scale = 1.0 / channels as f32;
    let alive = health.clone();
    let mut promoted = false;
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _| {
            if !promoted {
                promoted = true;
                priority::promote_current_thread("the microphone", frames(data, channels));
            }
            alive.callbacks.fetch_add(1, Relaxed);
            alive.note_piece(frames(data, channels));
            // Down to mono, straight into the ring: no lock, no allocation.
            for frame in data.chunks_exact(channels) {
                let sum: f32 = frame.iter().map(|s| f32::from_sample(*s)).sum();
                // A full ring (the engine stalled) drops the newest samples.
                let _ = ring.try_push(sum * scale);
            }
        },
        move |e| health.on_error(&e),
        Some(OPEN_TIMEOUT),
    )
}

fn build_output(
    device: &cpal::Device,
    config: StreamConfig,
    format: SampleFormat,
    ring: HeapCons<f32>,
    health: Arc<Health>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::I16 => output_stream::<i16>(device, config, ring, health),
        SampleFormat::I32 => output_stream::<i32>(device, config, ring, health),
        SampleFormat::U8 => output_stream::<u8>(device, config, ring, health),
        SampleFormat::U16 => output_stream::<u16>(device, config, ring, health),
        _ => output_stream::<f32>(device, config, ring, health),
    }
}

fn output_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut ring: HeapCons<f32>,
    health: Arc<Health>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels).max(1);
    // Until the ring first covers a request the stream is starting, not running dry; once
    // it has, a dry spell counts as one underrun however many requests it lasts (the next
    // write fills the ring up again: see `speaker_queue`).
    let mut playing = false;
    let mut dry = false;
    let mut promoted = false;
    let alive = health.clone();
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _| {
            if !promoted {
                promoted = true;
                priority::promote_current_thread("the speaker", frames(data, channels));
            }
            alive.callbacks.fetch_add(1, Relaxed);
            alive.note_piece(frames(data, channels));
            let asked = alive.skip.swap(0, Relaxed);
            if asked > 0 {
                ring.skip(asked.min(ring.occupied_len()));
            }
            let request = data.len() / channels;
            if ring.occupied_len() < request {
                if playing && !dry {
                    alive.underruns.fetch_add(1, Relaxed);
                }
                dry = true;
            } else {
                playing = true;
                dry = false;
            }
            // The same mono sample on every channel; silence for what is missing.
            for frame in data.chunks_exact_mut(channels) {
                let sample = ring.try_pop().unwrap_or(0.0);
                frame.fill(T::from_sample(sample));
            }
        },
        move |e| health.on_error(&e),
        Some(OPEN_TIMEOUT),
    )
}

/// Frames in a callback's buffer, for the scheduler's budget.
fn frames<T>(data: &[T], channels: usize) -> u32 {
    u32::try_from(data.len() / channels).unwrap_or(u32::MAX)
}

/// A microphone: 48 kHz mono frames from a capture device.
pub struct DeviceSource {
    ring: HeapCons<f32>,
    /// The device's own rate.
    rate: u32,
    converter: RateConverter,
    /// The device's clock followed, on our side of the converter (see `drift`).
    drift: Drift,
    backlog: Backlog,
    scratch: Vec<f32>,
    primed: bool,
    cushion: Cushion,
    health: Arc<Health>,
    watchdog: Watchdog,
    name: String,
    _thread: StreamThread,
}

impl std::fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSource")
            .field("name", &self.name)
            .finish()
    }
}

impl DeviceSource {
    /// Opens the default input (`None`) or the one named. Blocks for up to a few seconds.
    pub fn open(name: Option<&str>) -> Result<Self, AudioError> {
        let (producer, ring) = ring();
        let health = Arc::new(Health::default());
        let opened = open(
            Direction::Input,
            name,
            producer,
            health.clone(),
            build_input,
        )?;
        Ok(Self {
            ring,
            rate: opened.rate,
            converter: RateConverter::new(opened.rate, SAMPLE_RATE)?,
            drift: Drift::capture()?,
            backlog: Backlog::default(),
            scratch: vec![0.0; 4096],
            primed: false,
            cushion: cushion(SAMPLE_RATE, CAPTURE_MARGIN_MS, TICK_MS as u32),
            health,
            watchdog: Watchdog::new(Instant::now()),
            name: opened.name,
            _thread: opened.thread,
        })
    }
}

impl Source for DeviceSource {
    fn fill(&mut self, frame: &mut [f32]) -> Result<(), AudioError> {
        self.health
            .check(Direction::Input, &self.name, &mut self.watchdog)?;
        loop {
            let n = self.ring.pop_slice(&mut self.scratch);
            if n == 0 {
                break;
            }
            self.converter.push(&self.scratch[..n])?;
        }
        // Pieces arrive on the sound server's clock, frames leave on our tick: a frame goes
        // out once one and the margin are buffered.
        let needed = self.drift.input_needed();
        let wanted = needed + self.cushion.margin();
        let available = self.converter.available();
        if available > wanted + samples(SAMPLE_RATE, EXCESS_MS) {
            let cut = self.converter.trim_to(wanted);
            self.drift.shift(-ms(cut));
        }
        if !self.primed && self.converter.available() < wanted {
            frame.fill(0.0);
            return Ok(());
        }
        if self.converter.available() < needed {
            // Ran dry: what there is, then wait for the (larger) margin again rather than
            // stutter frame by frame.
            let got = self.converter.pull(frame);
            frame[got..].fill(0.0);
            self.primed = false;
            self.cushion.underrun();
            return Ok(());
        }
        self.primed = true;
        let pulled = self.converter.pull(&mut self.scratch[..needed]);
        self.drift.process(&self.scratch[..pulled], frame)?;
        self.cushion.served(self.converter.available());
        // The level as if the device delivered sample by sample: what is converted, what
        // waits for a whole chunk, and what it has recorded since its last piece. Its
        // target keeps the margin even when a chunk and a piece are both about to land.
        let (piece, since) = self.health.piece_and_since(self.rate);
        let to_ours = |n: usize| n * SAMPLE_RATE as usize / self.rate.max(1) as usize;
        let level = self.converter.available() + self.converter.held() + to_ours(since);
        let target = self.cushion.margin() + self.converter.held_most() + to_ours(piece);
        let (mut level, target) = (ms(level), ms(target));
        if let Some(cut_ms) = self.backlog.note(level - target) {
            let cut = (cut_ms * f64::from(SAMPLE_RATE) / 1000.0) as usize;
            let kept = self.converter.available().saturating_sub(cut);
            let cut = ms(self.converter.trim_to(kept));
            self.drift.shift(-cut);
            level -= cut;
        }
        self.drift.steer(level, target);
        Ok(())
    }

    fn underruns(&self) -> u64 {
        self.cushion.underruns()
    }

    fn is_microphone(&self) -> bool {
        true
    }

    fn device_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// A speaker: 48 kHz mono frames to a playback device.
pub struct DeviceSink {
    ring: HeapProd<f32>,
    /// The device's own rate.
    rate: u32,
    converter: RateConverter,
    scratch: Vec<f32>,
    queue: SpeakerQueue,
    /// The device's clock followed, on the converted side (see `drift`).
    drift: Drift,
    slipped: Vec<f32>,
    /// One request of `DEVICE_BUFFER_MS`, until the callback says what it asks.
    nominal_request: usize,
    health: Arc<Health>,
    watchdog: Watchdog,
    name: String,
    _thread: StreamThread,
}

impl std::fmt::Debug for DeviceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSink")
            .field("name", &self.name)
            .finish()
    }
}

impl DeviceSink {
    /// Opens the default output (`None`) or the one named. Blocks for up to a few seconds.
    pub fn open(name: Option<&str>) -> Result<Self, AudioError> {
        let (ring, consumer) = ring();
        let health = Arc::new(Health::default());
        let opened = open(
            Direction::Output,
            name,
            consumer,
            health.clone(),
            build_output,
        )?;
        let converter = RateConverter::new(SAMPLE_RATE, opened.rate)?;
        let drift = Drift::playback(converter.output_chunk())?;
        Ok(Self {
            ring,
            rate: opened.rate,
            converter,
            scratch: vec![0.0; 4096],
            slipped: vec![0.0; drift.output_most()],
            drift,
            queue: SpeakerQueue::new(
                cushion(opened.rate, PLAYBACK_MARGIN_MS, TICK_MS as u32),
                samples(opened.rate, EXCESS_MS),
                opened.rate,
            ),
            nominal_request: samples(opened.rate, DEVICE_BUFFER_MS),
            health,
            watchdog: Watchdog::new(Instant::now()),
            name: opened.name,
            _thread: opened.thread,
        })
    }
}

impl DeviceSink {
    /// What the ring holds; drops asked and not yet made are as good as made.
    fn queued(&self) -> usize {
        self.ring
            .occupied_len()
            .saturating_sub(self.health.skip.load(Relaxed))
    }

    /// The callback's request (a nominal one before the first), and the ring's level: what
    /// it holds less what the device has played of that request since (see
    /// `speaker_queue`).
    fn request_and_level(&self) -> (usize, usize) {
        let (request, played) = match self.health.piece_and_since(self.rate) {
            (0, _) => (self.nominal_request, 0),
            parts => parts,
        };
        (request, self.queued().saturating_sub(played))
    }
}

impl Sink for DeviceSink {
    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        self.health
            .check(Direction::Output, &self.name, &mut self.watchdog)?;
        let (request, low) = self.request_and_level();
        let adjust = self
            .queue
            .before_write(low, request, self.health.underruns.load(Relaxed));
        self.ring.push_iter(std::iter::repeat_n(0.0, adjust.pad));
        self.health.skip.fetch_add(adjust.drop, Relaxed);
        let rate = self.rate;
        self.drift
            .shift(ms_at(rate, adjust.pad) - ms_at(rate, adjust.drop));
        let level = ms_at(rate, low + adjust.pad - adjust.drop);
        self.drift
            .steer(level, ms_at(rate, self.queue.target(request)));
        self.converter.push(frame)?;
        // Converted a chunk at a time, each through the clutch at the device's rate.
        let chunk = self.drift.input_needed();
        while self.converter.available() >= chunk {
            let pulled = self.converter.pull(&mut self.scratch[..chunk]);
            let n = self
                .drift
                .process(&self.scratch[..pulled], &mut self.slipped)?;
            // A full ring (a stalled device) drops what does not fit.
            self.ring.push_slice(&self.slipped[..n]);
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), AudioError> {
        Ok(())
    }

    fn device_name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn underruns(&self) -> u64 {
        self.health.underruns.load(Relaxed)
    }

    fn skip(&mut self, samples: usize) {
        let at_device_rate = samples as u64 * u64::from(self.rate) / u64::from(SAMPLE_RATE);
        let at_device_rate = usize::try_from(at_device_rate).unwrap_or(usize::MAX);
        // Just after a write the ring holds a frame more than its low point, and the next
        // write comes as much earlier as the clock moved: what it holds beyond the target
        // can go without lowering the next low point.
        let (request, level) = self.request_and_level();
        let spare = level.saturating_sub(self.queue.target(request));
        self.health
            .skip
            .fetch_add(at_device_rate.min(spare), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_stalled_after_three_seconds_without_a_callback() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut watchdog = Watchdog::new(start);
        // An idle null sink may start two seconds late.
        assert!(!watchdog.stalled(0, at(2_000)));
        assert!(!watchdog.stalled(1, at(2_500)));
        assert!(!watchdog.stalled(1, at(5_400)));
        assert!(watchdog.stalled(1, at(5_600)));
        assert!(!watchdog.stalled(2, at(5_700)));
    }
}
