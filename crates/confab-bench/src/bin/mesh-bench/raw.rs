//! A raw data channel between two peer connections built exactly as the mesh builds
//! them, with the offer and answer passed by hand: what the transport carries, without
//! the chat protocol on top.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use confab_mesh::{Identity, TransportConfig};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCStatsReportEntry, StatsSelector,
};

const MESSAGE: usize = 16 * 1024;
const WARM_UP: Duration = Duration::from_secs(1);
/// How long the connected pair is left idle to count its keepalive traffic.
const IDLE: Duration = Duration::from_secs(15);

pub struct ChannelFigures {
    pub throughput_mbps: f64,
    pub stun_per_s: f64,
}

enum Signal {
    Candidate(RTCIceCandidateInit),
    Channel(Arc<dyn DataChannel>),
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
        let _ = self.0.send(Signal::Channel(channel));
    }
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

/// Passes `from`'s candidates to `to` until it hands over a data channel.
async fn relay_candidates(
    mut from: mpsc::UnboundedReceiver<Signal>,
    to: Arc<dyn PeerConnection>,
    channel: Option<tokio::sync::oneshot::Sender<Arc<dyn DataChannel>>>,
) {
    let mut channel = channel;
    while let Some(signal) = from.recv().await {
        match signal {
            Signal::Candidate(init) => {
                let _ = to.add_ice_candidate(init).await;
            }
            Signal::Channel(dc) => {
                if let Some(tx) = channel.take() {
                    let _ = tx.send(dc);
                }
            }
        }
    }
}

pub async fn measure_channel(seconds: u64) -> anyhow::Result<ChannelFigures> {
    let (a, a_signals) = build().await?;
    let (b, b_signals) = build().await?;
    let sender = a.create_data_channel("bench", None).await?;
    let offer = a.create_offer(None).await?;
    a.set_local_description(offer.clone()).await?;
    b.set_remote_description(offer).await?;
    let answer = b.create_answer(None).await?;
    b.set_local_description(answer.clone()).await?;
    a.set_remote_description(answer).await?;
    let (channel_tx, channel_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(relay_candidates(a_signals, b.clone(), None));
    tokio::spawn(relay_candidates(b_signals, a.clone(), Some(channel_tx)));

    // Wait for the sender's channel to open.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sender.poll()).await {
            Ok(Some(DataChannelEvent::OnOpen)) => break,
            Ok(Some(_)) => {}
            Ok(None) => bail!("channel closed before opening"),
            Err(_) => bail!("channel did not open"),
        }
    }
    let receiver = tokio::time::timeout(Duration::from_secs(10), channel_rx)
        .await
        .context("no channel on the receiving side")??;

    // Count what arrives, after the warm-up, until the end.
    let received = Arc::new(AtomicU64::new(0));
    let counting = received.clone();
    let start = tokio::time::Instant::now();
    let warm = start + WARM_UP;
    let end = warm + Duration::from_secs(seconds);
    let reader = tokio::spawn(async move {
        while let Ok(Some(event)) = tokio::time::timeout_at(end, receiver.poll()).await {
            if let DataChannelEvent::OnMessage(message) = event
                && tokio::time::Instant::now() >= warm
            {
                counting.fetch_add(message.data.len() as u64, Relaxed);
            }
        }
    });
    let payload = vec![0x5a_u8; MESSAGE];
    // `send` waits while the channel's buffer is over its limit: that is the back-pressure.
    while tokio::time::Instant::now() < end {
        sender.send(BytesMut::from(&payload[..])).await?;
    }
    let _ = reader.await;
    let throughput_mbps = received.load(Relaxed) as f64 / 1e6 / seconds as f64;

    // Keepalive traffic of a connected, idle pair.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = stun_requests(&a).await + stun_requests(&b).await;
    tokio::time::sleep(IDLE).await;
    let after = stun_requests(&a).await + stun_requests(&b).await;
    let stun_per_s = after.saturating_sub(before) as f64 / IDLE.as_secs_f64();

    let _ = a.close().await;
    let _ = b.close().await;
    Ok(ChannelFigures {
        throughput_mbps,
        stun_per_s,
    })
}

/// STUN binding requests this side has sent on its selected pair (consent checks are
/// among them).
async fn stun_requests(pc: &Arc<dyn PeerConnection>) -> u64 {
    let report = pc
        .get_stats(std::time::Instant::now(), StatsSelector::None)
        .await;
    report
        .iter()
        .filter_map(|entry| match entry {
            RTCStatsReportEntry::IceCandidatePair(pair) if pair.nominated => {
                Some(pair.requests_sent)
            }
            _ => None,
        })
        .sum()
}
