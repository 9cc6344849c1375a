//! A call's whole path through real devices: two `confab peer` processes on loopback, A
//! capturing a PulseAudio null sink's monitor as its microphone and B playing into another
//! null sink as its speaker. The bench writes clicks into A's microphone sink and finds each
//! both on that sink's own monitor and on B's speaker's monitor, on one clock with the
//! device source and sink of the device round trip (`devices`), and takes the first time
//! from the second: what is left is A's microphone device to B's speaker device, i.e.
//! microphone callback to speaker callback plus the sound server's own buffers on A's
//! capture and B's playback (about 10 ms, see the round trip), an upper bound of the
//! callback-to-callback time. B's playout summary
//! at the hang-up gives its concealed and stretched frames. Run idle and with a busy loop
//! on every core.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use confab_testkit::cpu_hogs::CpuHogs;

use crate::devices::{self, RoundTrip};
use crate::speech::call::start_call;
use crate::speech::playout::Playout;
use crate::speech::process::ConfabProcess;

/// The null sinks loaded for the run: A's microphone (its monitor) and B's speaker.
const MIC: &str = "confab_bench_mic";
const SPEAKER: &str = "confab_bench_speaker";
const SET_UP_WAIT: Duration = Duration::from_secs(20);
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// One call's figures.
pub struct CallPath {
    /// A's microphone device to B's speaker device, per click; the underruns are the
    /// bench's own.
    pub path: RoundTrip,
    /// B's playout of A's voice, from its summary.
    pub playout: Option<Playout>,
}

/// A's microphone to B's speaker, idle and with every core busy; `None` without a sound
/// server.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    confab: &Path,
) -> anyhow::Result<Option<(CallPath, CallPath)>> {
    if std::env::var_os("PULSE_SERVER").is_none() {
        return Ok(None);
    }
    if !confab.exists() {
        bail!("no `confab` binary at {}", confab.display());
    }
    let _sinks = [NullSink::load(MIC)?, NullSink::load(SPEAKER)?];
    let server = runtime.block_on(confab_signal::ServerHandle::start(
        ([127, 0, 0, 1], 0).into(),
        confab_signal::ServerConfig::default(),
    ))?;
    let url = format!("ws://{}/ws", server.local_addr());
    let idle = call(confab, &url, "idle");
    let busy = {
        let _hog = CpuHogs::start(1);
        call(confab, &url, "busy")
    };
    runtime.block_on(server.stop());
    Ok(Some((idle?, busy?)))
}

/// One call from A to B, clicks through it, and B's summary after the hang-up.
fn call(confab: &Path, url: &str, room: &str) -> anyhow::Result<CallPath> {
    let peer = |name: &str, extra: &[&str]| {
        let mut command = Command::new(confab);
        command
            .args([
                "-v", "peer", "--server", url, "--room", room, "--name", name,
            ])
            .args(extra);
        ConfabProcess::spawn(name, command)
    };
    let microphone = format!("device:{MIC}.monitor");
    let speaker = format!("device:{SPEAKER}");
    let b = peer(
        "B",
        &[
            "--audio-in",
            "none",
            "--audio-out",
            &speaker,
            "--auto-accept-calls",
        ],
    )?;
    let b_id = b.connected_id(SET_UP_WAIT)?;
    let mut a = peer("A", &["--audio-in", &microphone, "--audio-out", "none"])?;
    let a_id = a.connected_id(SET_UP_WAIT)?;
    // Noise suppression takes clicks for noise; it works within each frame and adds no delay.
    a.send(r#"{"cmd":"set-audio","noise_suppression":false}"#)?;
    start_call(&mut a, &a_id, &b, &b_id, SET_UP_WAIT)?;
    let path = devices::clicks_via(
        MIC.to_owned(),
        format!("{MIC}.monitor"),
        format!("{SPEAKER}.monitor"),
    )?;
    a.send(r#"{"cmd":"hangup"}"#)?;
    let playout = Playout::logged_by(&b, &a_id, SET_UP_WAIT);
    b.quit(QUIT_WAIT)?;
    a.quit(QUIT_WAIT)?;
    Ok(CallPath { path, playout })
}

/// A null sink loaded into the sound server for the run, unloaded when dropped.
struct NullSink {
    module: String,
}

impl NullSink {
    fn load(name: &str) -> anyhow::Result<Self> {
        let output = Command::new("pactl")
            .args(["load-module", "module-null-sink"])
            .arg(format!("sink_name={name}"))
            .args(["rate=48000", "channels=2"])
            .output()
            .context("pactl (Debian `pulseaudio-utils`)")?;
        if !output.status.success() {
            bail!(
                "pactl could not load a null sink: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Self {
            module: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        })
    }
}

impl Drop for NullSink {
    fn drop(&mut self) {
        let _ = Command::new("pactl")
            .args(["unload-module", &self.module])
            .status();
    }
}
