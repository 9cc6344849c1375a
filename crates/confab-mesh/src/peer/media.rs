//! Voice on the connection: our track while this peer is in our call, and its track
//! fed to the call's mixer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_audio::call_audio::RtpNumbers;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

use super::{Peer, PeerOutput};
use crate::api::LogLevel;
use crate::voice::{self, VoiceCodecs, VoicePacket};

/// How often at most a receiver asks again which payload types were negotiated.
const CODECS_ASKED_EVERY: Duration = Duration::from_secs(1);

impl Peer {
    /// Adds our audio track, fed from the call's packets.
    pub(super) async fn add_voice_track(&mut self) {
        let Some(packets) = self.voice_packets.as_ref().map(|p| p.resubscribe()) else {
            return;
        };
        let ssrc = rand::random::<u32>();
        let track = match voice::local_track(ssrc) {
            Ok(track) => Arc::new(track),
            Err(e) => return self.log(LogLevel::Error, format!("cannot make an audio track: {e}")),
        };
        let sender = match self
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
        {
            Ok(sender) => sender,
            Err(e) => return self.log(LogLevel::Error, format!("cannot add our audio track: {e}")),
        };
        self.log(LogLevel::Info, "audio track added");
        self.voice_loss.send_replace(None);
        let (out, remote) = (self.setup.out.clone(), self.setup.remote_id.clone());
        let feeder = self.transfers.spawn(voice::feed_track(
            track,
            sender.clone(),
            ssrc,
            packets,
            self.voice_loss.subscribe(),
            move |codecs| {
                let on = codecs.red.is_some();
                let _ = out.send((remote.clone(), PeerOutput::VoiceRedundancy(on)));
            },
        ));
        self.voice_sender = Some((sender, feeder));
    }

    /// The peer's audio track: its RTP packets go to the mixer, each as its Opus frame and
    /// the copies of earlier ones it carries in RED.
    pub(super) fn receive_voice(&mut self, track: Arc<dyn TrackRemote>) {
        self.log(LogLevel::Info, "remote audio track");
        let out = self.setup.voice_in.clone();
        let peer = self.setup.remote_id.clone();
        let pc = self.pc.clone();
        self.transfers.spawn(async move {
            let mut codecs: Option<VoiceCodecs> = None;
            let mut asked: Option<Instant> = None;
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let pt = packet.header.payload_type;
                        // A payload type not known yet (the first packet, or RED first used
                        // after a renegotiation): ask what was negotiated, at most once a
                        // second, since comfort noise or tones would ask every packet.
                        if codecs.is_none_or(|c| pt != c.opus && Some(pt) != c.red)
                            && asked.is_none_or(|at| at.elapsed() >= CODECS_ASKED_EVERY)
                        {
                            asked = Some(Instant::now());
                            codecs = receive_codecs(pc.as_ref()).await.or(codecs);
                        }
                        let Some((payload, redundant)) =
                            codecs.as_ref().and_then(|c| c.read(pt, &packet.payload))
                        else {
                            continue;
                        };
                        let voice = VoicePacket {
                            peer: peer.clone(),
                            rtp: RtpNumbers {
                                ssrc: packet.header.ssrc,
                                seq: packet.header.sequence_number,
                                timestamp: packet.header.timestamp,
                            },
                            payload,
                            redundant,
                        };
                        if out.send(voice).is_err() {
                            return;
                        }
                    }
                    TrackRemoteEvent::OnEnded => return,
                    _ => {}
                }
            }
        });
    }
}

/// The voice payload types negotiated for receiving (one audio section per connection).
async fn receive_codecs(pc: &dyn PeerConnection) -> Option<VoiceCodecs> {
    for receiver in pc.get_receivers().await {
        if let Ok(parameters) = receiver.get_parameters().await
            && let Some(codecs) = VoiceCodecs::find(&parameters.rtp_parameters.codecs)
        {
            return Some(codecs);
        }
    }
    None
}
