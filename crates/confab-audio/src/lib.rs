//! Confab's voice path: sound devices, and what turns samples into Opus packets and packets
//! back into samples, with the signal processing around it. The tracks on the peer
//! connections build on this.
//!
//! Layout:
//! - [`codec`]: Opus at 48 kHz mono, 20 ms frames (10 ms while nothing is lost), VOIP,
//!   in-band FEC; decoding with FEC recovery and loss concealment.
//! - [`jitter`]: the adaptive jitter buffer: reorders, drops late packets, chooses between a
//!   packet, FEC from the next one, or concealment, and sizes itself from measured jitter.
//!   Plain data with time passed in.
//! - [`dsp`]: levels (RMS dBFS), mixing, test tones, and a Goertzel detector.
//! - [`wav`]: WAV files as a source (looped) and a sink.
//! - [`device`]: sound devices through cpal (PulseAudio, else ALSA): listing, a microphone
//!   source and a speaker sink, fed through lock-free rings whose margins grow with the
//!   underruns they meet (`cushion`); a speaker's is kept from the writing side
//!   (`speaker_queue`), and the device's clock is followed a sample at a time (`drift`).
//! - [`priority`]: real-time scheduling for the sound threads.
//! - [`red`]: redundant audio data (RFC 2198): copies of earlier frames in each packet.
//! - [`resample`]: a device's native rate to and from 48 kHz (rubato).
//! - [`denoise`]: noise suppression of the microphone (RNNoise, in pure Rust).
//! - [`echo`]: echo cancellation of the microphone (WebRTC's AEC3, in pure Rust).
//! - [`io`]: the [`io::Source`] and [`io::Sink`] traits, for devices and the headless
//!   forms alike.
//! - [`open`]: the specs of a source and a sink (`default`, `device:NAME`, `none`,
//!   `sine:HZ`, `wav:PATH`), and opening what they name.
//! - [`call_audio`]: one side of a call: capture (source, mute, Opus, level) and a mixer
//!   of every peer's stream (jitter buffer, decoder, volume, level).

pub mod call_audio;
pub mod codec;
mod cushion;
pub mod denoise;
pub mod device;
mod drift;
pub mod dsp;
pub mod echo;
pub mod io;
pub mod jitter;
pub mod open;
pub mod priority;
pub mod red;
pub mod resample;
mod speaker_queue;
pub mod wav;

/// Every stream inside Confab is 48 kHz mono.
pub const SAMPLE_RATE: u32 = 48_000;
/// One Opus frame, what each packet carries: 20 ms. While a call loses nothing the frames
/// are a tick long instead (the engine decides; docs/mesh.md has the trade).
pub const FRAME_SAMPLES: usize = 960;
/// The frame duration in milliseconds.
pub const FRAME_MS: f64 = 20.0;
/// The frame duration, for clocks.
pub const FRAME_DURATION: std::time::Duration = duration_of(FRAME_SAMPLES);

/// How many frames (packets) last `ms`: for counts of packets that stand for a time.
pub const fn frames_in(ms: u32) -> u32 {
    ms * (SAMPLE_RATE / 1000) / FRAME_SAMPLES as u32
}

/// One tick of the audio engine: 10 ms, half a frame. Devices, echo cancellation (AEC3's
/// own block), noise suppression (RNNoise's own frame), the meters and the mix all work a
/// tick at a time, as WebRTC's audio does; the encoder takes two ticks to a frame and the
/// mixer plays a frame over two ticks. A sound from the microphone to the speaker through
/// the engine waits a tick, not a frame: 10 ms less than when the two were one.
pub const TICK_SAMPLES: usize = FRAME_SAMPLES / 2;
/// The tick in milliseconds.
pub const TICK_MS: f64 = FRAME_MS / 2.0;
/// The tick, for clocks.
pub const TICK_DURATION: std::time::Duration = duration_of(TICK_SAMPLES);

/// How long `samples` at [`SAMPLE_RATE`] last, for clocks.
pub const fn duration_of(samples: usize) -> std::time::Duration {
    std::time::Duration::from_micros(samples as u64 * 1_000_000 / SAMPLE_RATE as u64)
}

/// How many ticks last `ms`: for counts of ticks that stand for a time.
pub const fn ticks_in(ms: u32) -> u32 {
    ms * (SAMPLE_RATE / 1000) / TICK_SAMPLES as u32
}

/// Why an audio operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    #[error("Opus: {0}")]
    Opus(#[from] opus::Error),
    #[error("WAV: {0}")]
    Wav(#[from] hound::Error),
    #[error("unsupported audio format: {0}")]
    Format(String),
    #[error(transparent)]
    Device(#[from] device::DeviceError),
}
