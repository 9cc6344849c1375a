//! Voice on a peer connection: our Opus track, fed from the call's packets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_audio::call_audio::RtpNumbers;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::broadcast;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::rtp_transceiver::RtpSender;

/// An RTP packet of a peer's voice.
#[derive(Debug)]
pub(crate) struct VoicePacket {
    pub(crate) peer: String,
    pub(crate) rtp: RtpNumbers,
    pub(crate) payload: Vec<u8>,
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

/// Writes each packet of the call to the track. Until the track is negotiated there is no
/// payload type to stamp, and those packets are skipped, as live audio would be.
pub(crate) async fn feed_track(
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    mut packets: broadcast::Receiver<Arc<Vec<u8>>>,
) {
    let mut payload_type = None;
    loop {
        let packet = match packets.recv().await {
            Ok(packet) => packet,
            // Fell behind: the skipped frames are simply not sent.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if payload_type.is_none() {
            payload_type = sender
                .get_parameters()
                .await
                .ok()
                .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
        }
        let Some(payload_type) = payload_type else {
            continue;
        };
        let sample = Sample {
            data: packet.as_ref().clone().into(),
            duration: Duration::from_millis(20),
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
    use super::*;

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
