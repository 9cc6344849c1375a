//! What Confab's figures are read against, computed here with the codec calls use
//! (`VoiceEncoder`/`VoiceDecoder`: Opus VOIP, 48 kHz mono, 20 ms frames, 32 kb/s, in-band
//! FEC), with no network, jitter buffer or clock in the way:
//!
//! - the ceiling: FEC sized for no loss (Opus then carries none), nothing lost;
//! - plain Opus with a perfect receiver at a loss rate: FEC sized for that rate, a seeded
//!   random share of the packets dropped, and each lost frame rebuilt from the next
//!   packet's FEC when that packet arrived, else concealed. A receiver can do no better
//!   with these packets; Confab's own jitter buffer must also guess when to wait.

use anyhow::Context;
use confab_audio::FRAME_SAMPLES;
use confab_audio::codec::{VoiceDecoder, VoiceEncoder};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The same drops in every run, so the anchors move only when the codec does.
const SEED: u64 = 15;

/// What came out of the decoder, and what it went through.
#[derive(Debug)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub packets: usize,
    pub lost: usize,
    /// Lost frames rebuilt from the next packet's FEC (the others were concealed).
    pub rebuilt: usize,
}

/// The reference through Opus with nothing lost.
pub fn ceiling(reference: &[f32]) -> anyhow::Result<Decoded> {
    let packets = encode(reference, 0)?;
    decode(&packets, &vec![false; packets.len()])
}

/// The reference through Opus with `loss_percent` % of its packets lost at random.
pub fn perfect_receiver(reference: &[f32], loss_percent: u8) -> anyhow::Result<Decoded> {
    let packets = encode(reference, loss_percent)?;
    let mut rng = StdRng::seed_from_u64(SEED ^ u64::from(loss_percent));
    let share = f64::from(loss_percent) / 100.0;
    let lost: Vec<bool> = packets
        .iter()
        .map(|_| rng.random::<f64>() < share)
        .collect();
    decode(&packets, &lost)
}

/// One packet per 20 ms frame, with a silent frame more at the end: the decoder's output
/// lags by Opus's look-ahead, and the last words must not be cut.
fn encode(reference: &[f32], expected_loss: u8) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut encoder = VoiceEncoder::new(expected_loss).context("an Opus encoder")?;
    let frames = reference.len().div_ceil(FRAME_SAMPLES) + 1;
    (0..frames)
        .map(|i| {
            let mut frame = [0.0f32; FRAME_SAMPLES];
            let start = (i * FRAME_SAMPLES).min(reference.len());
            let end = (start + FRAME_SAMPLES).min(reference.len());
            frame[..end - start].copy_from_slice(&reference[start..end]);
            encoder.encode(&frame).context("encoding a frame")
        })
        .collect()
}

/// Decodes as a perfect receiver: every packet that arrived, and for each lost one the
/// next packet's FEC when that one arrived, else concealment.
fn decode(packets: &[Vec<u8>], lost: &[bool]) -> anyhow::Result<Decoded> {
    let mut decoder = VoiceDecoder::new().context("an Opus decoder")?;
    let mut out = Decoded {
        samples: Vec::with_capacity(packets.len() * FRAME_SAMPLES),
        packets: packets.len(),
        lost: lost.iter().filter(|l| **l).count(),
        rebuilt: 0,
    };
    for (i, packet) in packets.iter().enumerate() {
        let next = packets.get(i + 1).filter(|_| !lost[i + 1]);
        let frame = match (lost[i], next) {
            (false, _) => decoder.decode(packet),
            (true, Some(next)) => {
                out.rebuilt += 1;
                decoder.recover(next, FRAME_SAMPLES)
            }
            (true, None) => decoder.conceal(FRAME_SAMPLES),
        }
        .context("decoding a frame")?;
        out.samples.extend_from_slice(frame);
    }
    Ok(out)
}
