//! The audio engine of one peer: every 20 ms it takes a frame from the input (encoding it
//! for the call while sending), and plays one mixed frame of every peer to the output. It
//! runs on a task of its own, fed by the peers' RTP and steered by the call.

use std::sync::Arc;
use std::time::Duration;

use confab_audio::call_audio::{Capture, Mixer};
use confab_audio::io::{Discard, Sink, Source};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::Event;
use crate::peer::VoicePacket;

/// Packets waiting for a peer's track writer; a writer further behind skips ahead.
const PACKET_QUEUE: usize = 50;

#[derive(Debug)]
enum Control {
    /// In a call with someone: encode and send.
    Sending(bool),
    Muted(bool),
    /// A peer left the call: drop its stream.
    Forget(String),
    /// A peer muted: silence it at once.
    Hush(String),
    /// Finish the output (a WAV's header) and stop.
    Stop(oneshot::Sender<()>),
}

/// The mesh's handle on its engine.
#[derive(Debug)]
pub(crate) struct Engine {
    packets: broadcast::Sender<Arc<Vec<u8>>>,
    control: mpsc::UnboundedSender<Control>,
}

impl Engine {
    pub(crate) fn start(
        input: Box<dyn Source>,
        output: Box<dyn Sink>,
        voice_in: mpsc::UnboundedReceiver<VoicePacket>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        let (packets, _) = broadcast::channel(PACKET_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            input,
            output,
            voice_in,
            control_rx,
            packets.clone(),
            events,
        ));
        Self { packets, control }
    }

    /// Our encoded voice, for a peer's track.
    pub(crate) fn packets(&self) -> broadcast::Receiver<Arc<Vec<u8>>> {
        self.packets.subscribe()
    }

    pub(crate) fn set_sending(&self, sending: bool) {
        let _ = self.control.send(Control::Sending(sending));
    }

    pub(crate) fn set_muted(&self, muted: bool) {
        let _ = self.control.send(Control::Muted(muted));
    }

    pub(crate) fn forget(&self, peer: &str) {
        let _ = self.control.send(Control::Forget(peer.to_owned()));
    }

    pub(crate) fn hush(&self, peer: &str) {
        let _ = self.control.send(Control::Hush(peer.to_owned()));
    }

    /// Completes the output and stops.
    pub(crate) async fn stop(&self) {
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Stop(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), finished).await;
        }
    }
}

async fn run(
    input: Box<dyn Source>,
    mut output: Box<dyn Sink>,
    mut voice_in: mpsc::UnboundedReceiver<VoicePacket>,
    mut control: mpsc::UnboundedReceiver<Control>,
    packets: broadcast::Sender<Arc<Vec<u8>>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let error = |code: &str, message: String| {
        let _ = events.send(Event::error(code, message, None));
    };
    let mut capture = match Capture::new(input) {
        Ok(capture) => capture,
        Err(e) => return error("audio", format!("no voice: {e}")),
    };
    let mut mixer = Mixer::new();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    // Keep real time: a late tick is made up, so recordings hold the call's full length.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sending = false;
    loop {
        tokio::select! {
            command = control.recv() => match command {
                Some(Control::Sending(on)) => sending = on,
                Some(Control::Muted(muted)) => capture.set_muted(muted),
                Some(Control::Forget(peer)) => mixer.remove(&peer),
                Some(Control::Hush(peer)) => mixer.hush(&peer),
                Some(Control::Stop(done)) => {
                    if let Err(e) = output.finish() {
                        error("audio-out", format!("finishing the output: {e}"));
                    }
                    let _ = done.send(());
                    return;
                }
                None => {
                    let _ = output.finish();
                    return;
                }
            },
            Some(packet) = voice_in.recv() => {
                let arrival_ms = started.elapsed().as_secs_f64() * 1000.0;
                if let Err(e) = mixer.push(&packet.peer, packet.seq, packet.timestamp, packet.payload, arrival_ms) {
                    error("audio", format!("voice from {}: {e}", packet.peer));
                }
            }
            _ = ticks.tick() => {
                match capture.tick() {
                    Ok(captured) => {
                        if sending {
                            if let Some(packet) = captured.packet {
                                let _ = packets.send(Arc::new(packet));
                            }
                            if let Some(dbfs) = captured.level {
                                let _ = events.send(Event::Level { peer: None, dbfs });
                            }
                        }
                    }
                    Err(e) => error("audio-in", e.to_string()),
                }
                match mixer.tick() {
                    Ok(mixed) => {
                        if let Err(e) = output.write(&mixed.frame) {
                            error("audio-out", format!("{e}; playing nowhere from now on"));
                            output = Box::new(Discard);
                        }
                        for (peer, dbfs) in mixed.levels {
                            let _ = events.send(Event::Level { peer: Some(peer), dbfs });
                        }
                    }
                    Err(e) => error("audio", e.to_string()),
                }
            }
        }
    }
}
