//! A raw data channel on a [`LoopbackPair`]: what the transport carries, without the chat
//! protocol on top.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::bail;
use bytes::BytesMut;
use confab_testkit::loopback_pair::{Arrival, LoopbackPair};
use webrtc::data_channel::DataChannelEvent;
use webrtc::peer_connection::{PeerConnection, RTCStatsReportEntry, StatsSelector};

const MESSAGE: usize = 16 * 1024;
const WARM_UP: Duration = Duration::from_secs(1);
/// How long the connected pair is left idle to count its keepalive traffic.
const IDLE: Duration = Duration::from_secs(15);

pub struct ChannelFigures {
    pub throughput_mbps: f64,
    pub stun_per_s: f64,
}

pub async fn measure_channel(seconds: u64) -> anyhow::Result<ChannelFigures> {
    let pair = LoopbackPair::build().await?;
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let sender = a.create_data_channel("bench", None).await?;
    let mut arrivals = pair.connect().await?;

    // Wait for the sender's channel to open.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sender.poll()).await {
            Ok(Some(DataChannelEvent::OnOpen)) => break,
            Ok(Some(_)) => {}
            Ok(None) => bail!("channel closed before opening"),
            Err(_) => bail!("channel did not open"),
        }
    }
    let receiver = loop {
        match tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await {
            Ok(Some(Arrival::Channel(channel))) => break channel,
            Ok(Some(Arrival::Track(_))) => {}
            Ok(None) | Err(_) => bail!("no channel on the receiving side"),
        }
    };

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
