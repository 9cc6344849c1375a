//! Opus for voice: 48 kHz mono, frames of 20 ms in the VOIP application with in-band FEC,
//! or, while nothing is lost, of 10 ms in the restricted low-delay one.

use crate::{AudioError, FRAME_SAMPLES, SAMPLE_RATE, TICK_SAMPLES};

/// The largest packet we produce (Opus allows more; voice at our bitrate is far below).
const MAX_PACKET: usize = 1500;
const BITRATE: i32 = 32_000;
/// Short frames are coded by CELT alone (the restricted low-delay application): its
/// look-ahead is 2.5 ms against the VOIP application's 6.5, 4 ms off the call's path. CELT
/// codes speech less well than SILK does: the speech-quality run's reference through the
/// codec alone scored 3.32 PESQ at 40 kb/s, 3.91 at 56 and 4.05 at 64, against 3.87 in 20
/// ms VOIP frames at 32 kb/s. A call loses about 0.1 more on its way (56 kb/s: 3.79 in a
/// call against a ceiling of 3.89).
const SHORT_FRAME_BITRATE: i32 = 64_000;

/// Encodes frames of 48 kHz mono samples, 20 or 10 ms each.
pub struct VoiceEncoder {
    /// The VOIP application: SILK for speech, with in-band FEC for the loss expected.
    voip: opus::Encoder,
    /// The restricted low-delay application, for short frames.
    low_delay: opus::Encoder,
    short: bool,
}

impl std::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceEncoder")
            .field("short", &self.short)
            .finish()
    }
}

impl VoiceEncoder {
    /// `expected_loss_percent` above zero makes Opus carry FEC for the previous frame in
    /// each packet (it produces none at zero).
    pub fn new(expected_loss_percent: u8) -> Result<Self, AudioError> {
        let encoder =
            |application| opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, application);
        let mut voip = encoder(opus::Application::Voip)?;
        voip.set_bitrate(opus::Bitrate::Bits(BITRATE))?;
        voip.set_inband_fec(true)?;
        voip.set_packet_loss_perc(i32::from(expected_loss_percent.min(100)))?;
        let mut low_delay = encoder(opus::Application::LowDelay)?;
        low_delay.set_bitrate(opus::Bitrate::Bits(SHORT_FRAME_BITRATE))?;
        Ok(Self {
            voip,
            low_delay,
            short: false,
        })
    }

    /// Follows the loss the far end reports, so FEC costs bits only when it helps. (Short
    /// frames carry no FEC: they are asked for only while nothing is lost.)
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), AudioError> {
        Ok(self
            .voip
            .set_packet_loss_perc(i32::from(percent.min(100)))?)
    }

    /// Short frames (`short`) from the low-delay encoder, or 20 ms ones from the VOIP
    /// encoder; the one switched to starts afresh rather than from the voice it last
    /// heard. Either way the decoder's output moves by the 4 ms between their look-aheads.
    pub fn set_short_frames(&mut self, short: bool) -> Result<(), AudioError> {
        if short != self.short {
            self.short = short;
            self.current().reset_state()?;
        }
        Ok(())
    }

    /// How many samples the frames to come take: [`TICK_SAMPLES`] for short frames,
    /// [`FRAME_SAMPLES`] else.
    pub fn frame_samples(&self) -> usize {
        if self.short {
            TICK_SAMPLES
        } else {
            FRAME_SAMPLES
        }
    }

    fn current(&mut self) -> &mut opus::Encoder {
        if self.short {
            &mut self.low_delay
        } else {
            &mut self.voip
        }
    }

    /// One frame of [`FRAME_SAMPLES`] or [`TICK_SAMPLES`] samples in [-1, 1] to one
    /// packet.
    pub fn encode(&mut self, frame: &[f32]) -> Result<Vec<u8>, AudioError> {
        if frame.len() != FRAME_SAMPLES && frame.len() != TICK_SAMPLES {
            return Err(AudioError::Format(format!(
                "a frame has {FRAME_SAMPLES} or {TICK_SAMPLES} samples, not {}",
                frame.len()
            )));
        }
        Ok(self.current().encode_vec_float(frame, MAX_PACKET)?)
    }
}

/// How many samples (at 48 kHz) an Opus packet holds, from its table of contents.
pub fn packet_samples(packet: &[u8]) -> Result<usize, AudioError> {
    Ok(opus::packet::get_nb_samples(packet, SAMPLE_RATE)?)
}

/// The shortest frame Opus has: 2.5 ms at 48 kHz; durations it rebuilds or conceals come
/// in steps of it.
pub(crate) const MIN_PACKET_SAMPLES: usize = SAMPLE_RATE as usize / 400;
/// The longest packet Opus allows: 120 ms at 48 kHz.
pub(crate) const MAX_PACKET_SAMPLES: usize = 5_760;

/// Decodes one peer's packets, recovering or concealing the lost ones.
pub struct VoiceDecoder {
    inner: opus::Decoder,
    /// Room for the longest packet, so that one of another duration than ours decodes
    /// rather than failing for want of space.
    whole: Box<[f32; MAX_PACKET_SAMPLES]>,
}

impl std::fmt::Debug for VoiceDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoiceDecoder")
    }
}

impl VoiceDecoder {
    pub fn new() -> Result<Self, AudioError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
            whole: Box::new([0.0; MAX_PACKET_SAMPLES]),
        })
    }

    /// A received packet's samples, whatever its duration (ours are a frame; a sender
    /// with another `ptime` sends 10 to 120 ms).
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], AudioError> {
        self.run(packet, MAX_PACKET_SAMPLES, false)
    }

    /// The `samples` lost before `next_packet`, from the FEC data `next_packet` carries
    /// (concealment when it carries none). Opus rebuilds a duration in steps of 2.5 ms, up
    /// to 120 ms; `samples` is rounded down to one.
    pub fn recover(&mut self, next_packet: &[u8], samples: usize) -> Result<&[f32], AudioError> {
        self.run(next_packet, samples, true)
    }

    /// `samples` lost with nothing to recover them from: Opus's concealment, in the same
    /// steps as [`VoiceDecoder::recover`].
    pub fn conceal(&mut self, samples: usize) -> Result<&[f32], AudioError> {
        self.run(&[], samples, false)
    }

    fn run(&mut self, packet: &[u8], samples: usize, fec: bool) -> Result<&[f32], AudioError> {
        let asked =
            (samples.min(MAX_PACKET_SAMPLES) / MIN_PACKET_SAMPLES).max(1) * MIN_PACKET_SAMPLES;
        let decoded = self
            .inner
            .decode_float(packet, &mut self.whole[..asked], fec)?;
        Ok(&self.whole[..decoded.min(asked)])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dsp::{Tone, goertzel_dbfs, level_dbfs};

    fn encode_tone(encoder: &mut VoiceEncoder, tone: &mut Tone, frames: usize) -> Vec<Vec<u8>> {
        (0..frames)
            .map(|_| {
                let mut frame = [0.0; FRAME_SAMPLES];
                tone.fill(&mut frame);
                encoder.encode(&frame).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_tone_survives_encoding_at_its_frequency_and_level() {
        let mut encoder = VoiceEncoder::new(0).unwrap();
        let mut decoder = VoiceDecoder::new().unwrap();
        let packets = encode_tone(&mut encoder, &mut Tone::new(440.0), 50);
        let mut out = Vec::new();
        for packet in &packets {
            out.extend_from_slice(decoder.decode(packet).unwrap());
        }
        let settled = &out[10 * FRAME_SAMPLES..];
        assert!(
            (level_dbfs(settled) - (-12.0)).abs() < 3.0,
            "level {}",
            level_dbfs(settled)
        );
        assert!(goertzel_dbfs(settled, 440.0) > -20.0);
        assert!(goertzel_dbfs(settled, 880.0) < -40.0);
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next_ones_fec() {
        let mut encoder = VoiceEncoder::new(20).unwrap();
        let packets = encode_tone(&mut encoder, &mut Tone::new(440.0), 30);
        let mut decoder = VoiceDecoder::new().unwrap();
        for packet in &packets[..20] {
            decoder.decode(packet).unwrap();
        }
        // Packet 20 is lost: recover it from packet 21.
        let recovered = decoder.recover(&packets[21], FRAME_SAMPLES).unwrap();
        assert_eq!(recovered.len(), FRAME_SAMPLES);
        let level = goertzel_dbfs(recovered, 440.0);
        assert!(level > -25.0, "recovered {level}");
        decoder.decode(&packets[21]).unwrap();
        // And with nothing to recover from, concealment still sounds like the tone.
        let concealed = decoder.conceal(FRAME_SAMPLES).unwrap();
        assert_eq!(concealed.len(), FRAME_SAMPLES);
        assert!(goertzel_dbfs(concealed, 440.0) > -35.0);
    }

    #[test]
    fn a_packet_says_how_long_its_frame_is() {
        let mut encoder = VoiceEncoder::new(5).unwrap();
        for samples in [FRAME_SAMPLES, TICK_SAMPLES] {
            let packet = encoder.encode(&vec![0.1; samples]).unwrap();
            assert_eq!(packet_samples(&packet).unwrap(), samples);
        }
        assert!(packet_samples(&[]).is_err());
    }

    /// Where a tone that starts at sample 0 first comes out of the decoder.
    fn onset(short: bool) -> usize {
        let mut encoder = VoiceEncoder::new(0).unwrap();
        encoder.set_short_frames(short).unwrap();
        let mut decoder = VoiceDecoder::new().unwrap();
        let mut tone = Tone::new(440.0);
        let mut out = Vec::new();
        for _ in 0..10 {
            let mut frame = [0.0; TICK_SAMPLES];
            tone.fill(&mut frame);
            let packet = encoder.encode(&frame).unwrap();
            out.extend_from_slice(decoder.decode(&packet).unwrap());
        }
        out.iter().position(|s| s.abs() > 0.05).unwrap()
    }

    /// Short frames come from the low-delay encoder: the voice comes out 4 ms sooner.
    #[test]
    fn short_frames_come_out_four_ms_sooner() {
        let (voip, low_delay) = (onset(false), onset(true));
        let sooner_ms = (voip as f64 - low_delay as f64) / 48.0;
        assert!(
            (3.5..=4.5).contains(&sooner_ms),
            "{voip} against {low_delay}"
        );
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_an_error() {
        let mut encoder = VoiceEncoder::new(0).unwrap();
        assert!(matches!(
            encoder.encode(&[0.0; 100]),
            Err(AudioError::Format(_))
        ));
    }
}
