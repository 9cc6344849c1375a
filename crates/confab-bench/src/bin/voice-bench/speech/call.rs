//! Confab end to end: the reference spoken by one release `confab peer` (A) to another
//! (B), which records what it plays. A signaling server and both peers run in a network
//! namespace of the bench's own whose nftables rule drops a share of arriving UDP: the
//! peers' media, both ways (RTP and the RTCP that reports loss), and their ICE and DTLS.
//! Signaling is TCP and loses nothing.
//!
//! A calls with a silent input and switches to the speech (`set-audio`, which starts a
//! WAV from its first sample) once B plays A's stream: the figure is then the call's sound,
//! not how much of the first word a set-up under loss happened to cut.

use std::path::Path;
use std::time::Duration;

use confab_testkit::netns::Netns;

use super::interrupt;
use super::playout::Playout;
use super::process::ConfabProcess;

const SERVER: &str = "127.0.0.1:8787";
/// For each step of a set-up. Generous: at 20 % loss DTLS and SCTP resend for seconds.
const SET_UP_WAIT: Duration = Duration::from_secs(20);
/// Set-ups under loss sometimes never open the chat channel (PLATFORM.md); a set-up that
/// fails is tried again in a fresh namespace, this many times in all.
const ATTEMPTS: usize = 3;
/// Recorded after the speech, for the jitter buffer's delay and the end of the last word.
const TAIL: Duration = Duration::from_millis(1500);
const QUIT_WAIT: Duration = Duration::from_secs(5);
/// For B's playout summary after the hangup (which crosses the lossy chat channel).
const SUMMARY_WAIT: Duration = Duration::from_secs(10);

/// One call of the speech run: A says `reference` (`speech` long) at `loss_percent` % UDP
/// loss, and B's recording goes to `recording`.
pub struct Call<'a> {
    pub confab: &'a Path,
    pub reference: &'a Path,
    pub speech: Duration,
    pub loss_percent: u8,
    pub recording: &'a Path,
}

impl Call<'_> {
    /// Makes the call, trying again when one fails to set up.
    pub fn record(&self) -> anyhow::Result<Option<Playout>> {
        let mut attempt = 1;
        loop {
            match self.once() {
                Ok(playout) => return Ok(playout),
                Err(e) if attempt < ATTEMPTS && interrupt::check().is_ok() => {
                    eprintln!(
                        "  loss {} %: call attempt {attempt} failed, again: {e:#}",
                        self.loss_percent
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn once(&self) -> anyhow::Result<Option<Playout>> {
        let Self {
            confab,
            reference,
            speech,
            loss_percent,
            recording,
        } = *self;
        // Declared first, dropped last: the processes inside are killed before it goes.
        let netns = Netns::new("voice")?;
        netns.lose_udp(u32::from(loss_percent) * 10)?;
        let mut server = netns.command(confab);
        server.args(["server", "--listen", SERVER]);
        let _server = ConfabProcess::spawn("server", server)?;
        netns.wait_for_listener(SERVER, Duration::from_secs(10))?;

        let out = format!("wav:{}", recording.display());
        let b = peer(
            &netns,
            confab,
            "B",
            &["--audio-out", &out, "--auto-accept-calls"],
        )?;
        let b_id = b.connected_id(SET_UP_WAIT)?;
        let mut a = peer(&netns, confab, "A", &["--audio-in", "none"])?;
        let a_id = a.connected_id(SET_UP_WAIT)?;
        start_call(&mut a, &a_id, &b, &b_id, SET_UP_WAIT)?;

        let input = serde_json::json!({
            "cmd": "set-audio",
            "input": format!("wav:{}", reference.display()),
        });
        a.send(&input.to_string())?;
        interrupt::sleep(speech + TAIL)?;
        a.send(r#"{"cmd":"hangup"}"#)?;
        // Without a summary the column stays empty.
        let playout = Playout::logged_by(&b, &a_id, SUMMARY_WAIT);
        interrupt::check()?;
        // B's recording is complete once it has exited.
        b.quit(QUIT_WAIT)?;
        a.quit(QUIT_WAIT)?;
        Ok(playout)
    }
}

/// Once A and B have met (each has the other's hello), A calls B, which accepts by
/// itself (`--auto-accept-calls`); returns once A's voice plays at B. Each step may take
/// up to `wait`.
pub fn start_call(
    a: &mut ConfabProcess,
    a_id: &str,
    b: &ConfabProcess,
    b_id: &str,
    wait: Duration,
) -> anyhow::Result<()> {
    for (peer, other) in [(&*a, b_id), (b, a_id)] {
        peer.event(wait, &format!("the hello of {other}"), |e| {
            e["event"] == "trust" && e["peer"] == other
        })?;
    }
    a.send(r#"{"cmd":"call"}"#)?;
    a.event(wait, "the call active", |e| {
        e["event"] == "call-state" && e["state"] == "active" && e["peer"] == b_id
    })?;
    // B meters a stream from its first packet on: A's voice is playing there.
    b.event(wait, "A's voice playing", |e| {
        e["event"] == "level" && e["peer"] == a_id
    })?;
    Ok(())
}

/// A `confab peer` in `netns`, its logs as events (`-v`) for the playout summary.
fn peer(netns: &Netns, confab: &Path, name: &str, extra: &[&str]) -> anyhow::Result<ConfabProcess> {
    let url = format!("ws://{SERVER}/ws");
    let mut command = netns.command(confab);
    command
        .args([
            "-v", "peer", "--server", &url, "--room", "speech", "--name", name,
        ])
        .args(extra);
    ConfabProcess::spawn(name, command)
}

/// What the Confab column needs beyond the reference and the scoring, or what is missing.
pub fn missing(confab: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !confab_testkit::netns::is_root() {
        missing.push("root (for a network namespace)".to_owned());
    }
    if !works("nft", "--version") {
        missing.push("nftables (apt-get install nftables)".to_owned());
    }
    if !works("ip", "-V") {
        missing.push("iproute2".to_owned());
    }
    if !confab.is_file() {
        missing.push(format!(
            "the confab binary at {} (cargo build --release -p confab, or --confab PATH)",
            confab.display()
        ));
    }
    missing
}

fn works(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|out| out.status.success())
}
