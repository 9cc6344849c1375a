//! Opus over a real peer connection: a 440 Hz tone encoded by confab-audio, sent as
//! samples on an audio track built the way the mesh builds connections, received as RTP,
//! put through the jitter buffer and decoded, arrives as a 440 Hz tone. The ground the
//! voice calls stand on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_audio::FRAME_SAMPLES;
use confab_audio::codec::{VoiceDecoder, VoiceEncoder};
use confab_audio::dsp::{Tone, heard_tone_dbfs};
use confab_audio::jitter::{JitterBuffer, Playout};
use confab_testkit::loopback_pair::{Arrival, LoopbackPair};
use rtc::media::Sample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opus_tone_crosses_a_peer_connection() {
    let pair = LoopbackPair::build().await.unwrap();
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let ssrc = rand::random::<u32>();
    // The track exactly as a call builds it.
    let track = Arc::new(confab_mesh::voice::local_track(ssrc).unwrap());
    let sender = a
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let mut arrivals = pair.connect().await.unwrap();

    // Send 2 s of a 440 Hz tone in real time, as the capture side will.
    let payload_type = sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type;
    let sending = tokio::spawn(async move {
        let mut encoder = VoiceEncoder::new(5).unwrap();
        let mut tone = Tone::new(440.0);
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..100 {
            ticks.tick().await;
            let mut frame = [0.0; FRAME_SAMPLES];
            tone.fill(&mut frame);
            let packet = encoder.encode(&frame).unwrap();
            let sample = Sample {
                data: packet.into(),
                duration: Duration::from_millis(20),
                ..Sample::new(Instant::now())
            };
            // Before the connection is up, writes fail: those frames are simply not sent.
            let _ = track
                .sample_writer(ssrc, payload_type)
                .write_sample(&sample)
                .await;
        }
    });

    let remote = loop {
        match tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .expect("a remote track")
            .expect("a remote track")
        {
            Arrival::Track(track) => break track,
            Arrival::Channel(_) => {}
        }
    };
    let mut jitter = JitterBuffer::new();
    let mut decoder = VoiceDecoder::new().unwrap();
    let mut played = Vec::new();
    let started = Instant::now();
    let mut packets = 0;
    while packets < 50 {
        let event = tokio::time::timeout(Duration::from_secs(5), remote.poll())
            .await
            .expect("RTP within the wait")
            .expect("track open");
        if let TrackRemoteEvent::OnRtpPacket(packet) = event {
            packets += 1;
            let now_ms = started.elapsed().as_secs_f64() * 1000.0;
            jitter.push(
                packet.header.sequence_number,
                packet.header.timestamp,
                packet.payload.to_vec(),
                now_ms,
            );
            // A steady tone is never quiet.
            let frame = match jitter.pop(now_ms, false) {
                Playout::Packet(data) => decoder.decode(&data).unwrap(),
                Playout::Recover(next) => decoder.recover(&next, FRAME_SAMPLES).unwrap(),
                Playout::Conceal => decoder.conceal(FRAME_SAMPLES).unwrap(),
                Playout::Silence => &[0.0; FRAME_SAMPLES],
            };
            played.extend_from_slice(frame);
        }
    }
    sending.abort();
    // Skip the decoder's start-up; 30 frames of 20 ms hold exactly 264 cycles of 440 Hz.
    let settled = &played[played.len() - 30 * FRAME_SAMPLES..];
    assert!(
        heard_tone_dbfs(settled, 440.0) > -18.0,
        "440 Hz at {}",
        heard_tone_dbfs(settled, 440.0)
    );
    assert!(
        heard_tone_dbfs(settled, 880.0) < -40.0,
        "880 Hz at {}",
        heard_tone_dbfs(settled, 880.0)
    );
    assert_eq!(jitter.stats().concealed, 0, "no loss on loopback");
    let _ = a.close().await;
    let _ = b.close().await;
}
