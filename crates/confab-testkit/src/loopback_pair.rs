//! Two peer connections built exactly as the mesh builds them, with the offer and answer
//! passed by hand and candidates relayed both ways: what the transport carries, without
//! signaling or the chat protocol on top.

use std::sync::Arc;

use confab_mesh::{Identity, TransportConfig};
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
};

/// What the answering side receives from the offering one.
pub enum Arrival {
    Channel(Arc<dyn DataChannel>),
    Track(Arc<dyn TrackRemote>),
}

enum Signal {
    Candidate(RTCIceCandidateInit),
    Arrival(Arrival),
}

struct Forward(mpsc::UnboundedSender<Signal>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forward {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.send(Signal::Candidate(init));
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.0.send(Signal::Arrival(Arrival::Channel(channel)));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(Signal::Arrival(Arrival::Track(track)));
    }
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arrival::Channel(_) => "Arrival::Channel",
            Arrival::Track(_) => "Arrival::Track",
        })
    }
}

/// Two connections, not yet negotiated: add to `a` what it sends, then [`Self::connect`].
pub struct LoopbackPair {
    pub a: Arc<dyn PeerConnection>,
    pub b: Arc<dyn PeerConnection>,
    a_signals: mpsc::UnboundedReceiver<Signal>,
    b_signals: mpsc::UnboundedReceiver<Signal>,
}

async fn build() -> anyhow::Result<(Arc<dyn PeerConnection>, mpsc::UnboundedReceiver<Signal>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let pc = confab_mesh::transport::build_peer_connection(
        &TransportConfig::loopback(),
        &Identity::ephemeral()?,
        Arc::new(Forward(tx)),
    )
    .await?;
    Ok((pc, rx))
}

impl std::fmt::Debug for LoopbackPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoopbackPair")
    }
}

impl LoopbackPair {
    pub async fn build() -> anyhow::Result<Self> {
        let (a, a_signals) = build().await?;
        let (b, b_signals) = build().await?;
        Ok(Self {
            a,
            b,
            a_signals,
            b_signals,
        })
    }

    /// A offers, B answers, candidates cross; what B receives comes out of the receiver.
    pub async fn connect(self) -> anyhow::Result<mpsc::UnboundedReceiver<Arrival>> {
        let Self {
            a,
            b,
            a_signals,
            b_signals,
        } = self;
        let offer = a.create_offer(None).await?;
        a.set_local_description(offer.clone()).await?;
        b.set_remote_description(offer).await?;
        let answer = b.create_answer(None).await?;
        b.set_local_description(answer.clone()).await?;
        a.set_remote_description(answer).await?;
        let (arrivals, received) = mpsc::unbounded_channel();
        tokio::spawn(relay(a_signals, b, None));
        tokio::spawn(relay(b_signals, a, Some(arrivals)));
        Ok(received)
    }
}

/// Passes one side's candidates to the other, and hands on what arrives.
async fn relay(
    mut from: mpsc::UnboundedReceiver<Signal>,
    to: Arc<dyn PeerConnection>,
    arrivals: Option<mpsc::UnboundedSender<Arrival>>,
) {
    while let Some(signal) = from.recv().await {
        match signal {
            Signal::Candidate(init) => {
                let _ = to.add_ice_candidate(init).await;
            }
            Signal::Arrival(arrival) => {
                if let Some(arrivals) = &arrivals {
                    let _ = arrivals.send(arrival);
                }
            }
        }
    }
}
