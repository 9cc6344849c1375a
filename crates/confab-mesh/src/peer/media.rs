//! Voice on the connection: our track while this peer is in our call, and its track
//! fed to the call's mixer.

use std::sync::Arc;

use confab_audio::call_audio::RtpNumbers;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::Peer;
use crate::api::LogLevel;
use crate::voice::{self, VoicePacket};

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
        let feeder = self
            .transfers
            .spawn(voice::feed_track(track, sender.clone(), ssrc, packets));
        self.voice_sender = Some((sender, feeder));
    }

    /// The peer's audio track: its RTP packets go to the mixer.
    pub(super) fn receive_voice(&mut self, track: Arc<dyn TrackRemote>) {
        self.log(LogLevel::Info, "remote audio track");
        let out = self.setup.voice_in.clone();
        let peer = self.setup.remote_id.clone();
        self.transfers.spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let voice = VoicePacket {
                            peer: peer.clone(),
                            rtp: RtpNumbers {
                                ssrc: packet.header.ssrc,
                                seq: packet.header.sequence_number,
                                timestamp: packet.header.timestamp,
                            },
                            payload: packet.payload.to_vec(),
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
