//! The library's callbacks, forwarded into the peer task as they come: a callback that
//! blocks stalls the connection, so these only send and return.

use std::sync::Arc;

use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceConnectionState, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

/// Library callbacks, forwarded as they come.
pub(super) enum PcEvent {
    NegotiationNeeded,
    Candidate(RTCIceCandidateInit),
    Gathering(RTCIceGatheringState),
    Ice(RTCIceConnectionState),
    State(RTCPeerConnectionState),
    /// A channel the remote opened, with its label.
    DataChannel(Arc<dyn DataChannel>, String),
    Track(Arc<dyn TrackRemote>),
}

pub(super) struct Callbacks(pub(super) mpsc::UnboundedSender<PcEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Callbacks {
    async fn on_negotiation_needed(&self) {
        let _ = self.0.send(PcEvent::NegotiationNeeded);
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.send(PcEvent::Candidate(init));
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        let _ = self.0.send(PcEvent::Gathering(state));
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.0.send(PcEvent::Ice(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(PcEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(PcEvent::Track(track));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // The label is read now, while the library still holds the channel: a file channel
        // that the sender closes at once (an empty file) is gone a moment later, and its
        // label with it, so the transfer was never recognised. (The library releases its
        // lock before this callback; reading the label is a lookup, so this returns at once.)
        let label = channel.label().await.unwrap_or_default();
        let _ = self.0.send(PcEvent::DataChannel(channel, label));
    }
}

/// A data channel's events, tagged with its label.
pub(super) enum ChannelEvent {
    Open(String),
    Message(String, Vec<u8>),
    Closed(String),
}
