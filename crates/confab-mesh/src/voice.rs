//! Voice on a peer connection: our Opus track, fed from the call's packets, and the
//! payload types it is sent and received in: Opus, or RED (RFC 2198) carrying copies of
//! earlier Opus frames where both sides negotiated it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_audio::call_audio::RtpNumbers;
use confab_audio::red::{self, RedEncoder};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{broadcast, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::rtp_transceiver::RtpSender;

/// RED's media type, as Chromium registers it.
pub(crate) const MIME_TYPE_RED: &str = "audio/red";
/// The payload type offered for RED: Chromium's, so offers from either side read alike.
const RED_PAYLOAD_TYPE: u8 = 63;
/// The payload type offered for Opus (webrtc-rs's default, and Chromium's).
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Copies of earlier Opus frames a packet carried in RED, each with its RTP timestamp's
/// offset back from the packet's.
pub(crate) type Copies = Vec<(u32, Vec<u8>)>;

/// An RTP packet of a peer's voice: its Opus frame, and the copies it carried.
#[derive(Debug)]
pub(crate) struct VoicePacket {
    pub(crate) peer: String,
    pub(crate) rtp: RtpNumbers,
    pub(crate) payload: Vec<u8>,
    pub(crate) redundant: Copies,
}

/// RED with Opus in every block, registered after Opus: a peer that sends the first codec
/// it negotiated (as browsers do) still sends plain Opus, and RED is there for a sender
/// that chooses it (ours, see [`feed_track`]).
pub(crate) fn red_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RED.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: format!("{OPUS_PAYLOAD_TYPE}/{OPUS_PAYLOAD_TYPE}"),
            rtcp_feedback: vec![],
        },
        payload_type: RED_PAYLOAD_TYPE,
    }
}

/// The payload types a connection negotiated for voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VoiceCodecs {
    pub(crate) opus: u8,
    /// RED, if negotiated with Opus as every block's encoding.
    pub(crate) red: Option<u8>,
}

impl VoiceCodecs {
    /// Opus and RED among negotiated codecs; `None` without Opus.
    pub(crate) fn find(codecs: &[RTCRtpCodecParameters]) -> Option<Self> {
        let opus = codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS))?
            .payload_type;
        let red = codecs
            .iter()
            .find(|c| {
                c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RED)
                    && c.rtp_codec
                        .sdp_fmtp_line
                        .split('/')
                        .all(|block| block.trim().parse::<u8>() == Ok(opus))
            })
            .map(|c| c.payload_type);
        Some(Self { opus, red })
    }

    /// A received packet's payload as Opus: its own frame and the copies it carries.
    /// `None` for another payload type (comfort noise, tones) or a RED payload that does
    /// not parse.
    pub(crate) fn read(&self, payload_type: u8, payload: &[u8]) -> Option<(Vec<u8>, Copies)> {
        if payload_type == self.opus {
            return Some((payload.to_vec(), Vec::new()));
        }
        if Some(payload_type) != self.red {
            return None;
        }
        let parsed = red::parse(payload).ok()?;
        if parsed.primary.payload_type != self.opus {
            return None;
        }
        let copies = parsed
            .redundant
            .iter()
            .filter(|block| block.payload_type == self.opus && !block.data.is_empty())
            .map(|block| (block.timestamp_offset, block.data.to_vec()))
            .collect();
        Some((parsed.primary.data.to_vec(), copies))
    }
}

/// An Opus track with one stream, `ssrc`.
pub fn local_track(ssrc: u32) -> Result<TrackLocalStaticSample, String> {
    TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            "confab".to_owned(),
            "voice".to_owned(),
            "voice".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                ..Default::default()
            }],
        ),
    )
    .map_err(|e| e.to_string())
}

/// How often a sender without RED asks again what was negotiated: the first packets can
/// come before the answer is applied, when the sender knows only the track's own codec,
/// Opus.
const RENEGOTIATED_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Writes each packet of the call to the track: in RED, carrying as many earlier frames as
/// the loss this peer last reported calls for (`loss`, in percent, `None` before its first
/// report), where RED was negotiated; else as plain Opus. Until the track is negotiated
/// there is no payload type to stamp, and those packets are skipped, as live audio would
/// be. `negotiated_with` is told the codecs each time whether RED is in use changes.
pub(crate) async fn feed_track(
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mut packets: broadcast::Receiver<Arc<Vec<u8>>>,
    loss: watch::Receiver<Option<u8>>,
    negotiated_with: impl Fn(VoiceCodecs) + Send,
) {
    let mut negotiated: Option<(VoiceCodecs, RedEncoder)> = None;
    let mut asked_at = Instant::now();
    loop {
        let packet = match packets.recv().await {
            Ok(packet) => packet,
            // Fell behind: the skipped frames are simply not sent.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let without_red = negotiated.as_ref().is_none_or(|(c, _)| c.red.is_none());
        if negotiated.is_none() || (without_red && asked_at.elapsed() >= RENEGOTIATED_CHECK_EVERY) {
            asked_at = Instant::now();
            let now = sender
                .get_parameters()
                .await
                .ok()
                .and_then(|p| VoiceCodecs::find(&p.rtp_parameters.codecs));
            if let Some(codecs) = now
                && negotiated
                    .as_ref()
                    .is_none_or(|(before, _)| *before != codecs)
            {
                negotiated_with(codecs);
                // The frames kept to repeat stay, unless Opus itself changed number.
                negotiated = Some(match negotiated.take() {
                    Some((before, encoder)) if before.opus == codecs.opus => (codecs, encoder),
                    _ => (codecs, RedEncoder::new(codecs.opus)),
                });
            }
        }
        let Some((codecs, encoder)) = negotiated.as_mut() else {
            continue;
        };
        // Our frames are 20 ms, or 10 ms while the call loses nothing: each packet says.
        let Ok(samples) = confab_audio::codec::packet_samples(&packet) else {
            continue;
        };
        let frame_ticks = samples as u32;
        let distance = red::distance_for_loss(*loss.borrow());
        let (payload_type, data) = match codecs.red {
            Some(red) if distance > 0 => (red, encoder.encode(&packet, frame_ticks, distance)),
            _ => {
                encoder.remember(&packet, frame_ticks);
                (codecs.opus, packet.as_ref().clone())
            }
        };
        let sample = Sample {
            data: data.into(),
            duration: confab_audio::duration_of(samples),
            ..Sample::new(Instant::now())
        };
        let _ = track
            .sample_writer(ssrc, payload_type)
            .write_sample(&sample)
            .await;
    }
}

/// Whether an SDP has an audio section its writer sends on (sendrecv or sendonly).
pub(crate) fn sdp_sends_audio(sdp: &str) -> bool {
    sdp.split("\nm=").skip(1).any(|section| {
        section.starts_with("audio")
            && (section.contains("a=sendrecv") || section.contains("a=sendonly"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn codec(mime: &str, fmtp: &str, payload_type: u8) -> RTCRtpCodecParameters {
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type,
        }
    }

    #[test]
    fn red_counts_only_with_opus_in_every_block() {
        let opus = codec("audio/opus", "minptime=10;useinbandfec=1", 109);
        let both = [opus.clone(), codec("audio/RED", "109/109", 120)];
        assert_eq!(
            VoiceCodecs::find(&both),
            Some(VoiceCodecs {
                opus: 109,
                red: Some(120)
            })
        );
        let other_blocks = [opus.clone(), codec("audio/red", "109/0", 120)];
        assert_eq!(VoiceCodecs::find(&other_blocks).unwrap().red, None);
        assert_eq!(VoiceCodecs::find(&[codec("audio/PCMU", "", 0)]), None);
    }

    #[test]
    fn received_payloads_are_read_by_their_type() {
        let codecs = VoiceCodecs {
            opus: 111,
            red: Some(63),
        };
        assert_eq!(
            codecs.read(111, b"frame"),
            Some((b"frame".to_vec(), vec![]))
        );
        let mut encoder = RedEncoder::new(111);
        encoder.encode(b"before", 960, 1);
        let payload = encoder.encode(b"now", 960, 1);
        assert_eq!(
            codecs.read(63, &payload),
            Some((b"now".to_vec(), vec![(960, b"before".to_vec())]))
        );
        // Comfort noise, a RED payload cut short, RED around another encoding.
        assert_eq!(codecs.read(13, b"cn"), None);
        assert_eq!(codecs.read(63, &[0xef, 0x0f]), None);
        assert_eq!(codecs.read(63, &[0x00, 1, 2]), None);
    }

    #[test]
    fn audio_that_is_sent_is_told_from_audio_that_is_not() {
        let sending = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sendrecv\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n";
        assert!(sdp_sends_audio(sending));
        let stopped = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sendrecv\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n";
        assert!(!sdp_sends_audio(stopped));
        assert!(!sdp_sends_audio(
            "v=0\r\nm=application 9 x\r\na=sendrecv\r\n"
        ));
    }
}
