//! What the tests of the `confab` binary share: processes whose JSON lines arrive on a
//! channel, a signaling server on loopback, and reading tones out of recordings.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod netns;
pub mod pulse;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn confab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_confab"))
}

/// A `confab` process whose stdout lines arrive on a channel; the last lines of its
/// stderr are kept, to say what it was doing when a wait for it fails.
pub struct Process {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

/// How many stderr lines a failed wait shows.
const STDERR_TAIL: usize = 30;

impl Process {
    pub fn spawn(args: &[&str]) -> Process {
        Self::spawn_with_env(args, &[])
    }

    /// With extra environment variables (a sound server of the test's own).
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = confab();
        command.args(args).envs(env.iter().copied());
        Self::spawn_command(command)
    }

    /// Inside a network namespace (`ip netns exec` becomes the `confab` process itself).
    pub fn spawn_in_netns(netns: &str, args: &[&str]) -> Process {
        Self::spawn_in_netns_with_env(netns, args, &[])
    }

    /// Inside a network namespace, with extra environment variables.
    pub fn spawn_in_netns_with_env(netns: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_confab")])
            .args(args)
            .envs(env.iter().copied());
        Self::spawn_command(command)
    }

    fn spawn_command(mut command: Command) -> Process {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        // Read to the end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut tail = tail.lock().unwrap();
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        Process {
            child,
            stdin,
            lines,
            stderr_tail,
        }
    }

    pub fn send(&mut self, json: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{json}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line, if one comes within `wait`.
    pub fn try_line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// The next event matching `matches`, within `wait`.
    pub fn event(&self, wait: Duration, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} within {wait:?}\n{}", self.state()));
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if matches(&event) {
                return event;
            }
        }
    }
}

impl Process {
    /// Whether the process is still running, and the last lines of its stderr: for the
    /// message of a failed wait (it may take a stdout line that was waiting).
    pub fn state(&self) -> String {
        let tail: Vec<String> = self.stderr_tail.lock().unwrap().iter().cloned().collect();
        format!(
            "process {}; its stderr ended with:\n{}",
            if self.lines_closed() {
                "gone (stdout closed)"
            } else {
                "running"
            },
            tail.join("\n")
        )
    }

    /// What `matches` takes from a line the process writes to stderr within `wait`.
    pub fn stderr_line<T>(
        &self,
        wait: Duration,
        what: &str,
        matches: impl Fn(&str) -> Option<T>,
    ) -> T {
        let found = poll(wait, || {
            let tail = self.stderr_tail.lock().unwrap();
            tail.iter().find_map(|line| matches(line))
        });
        found.unwrap_or_else(|| panic!("no {what} within {wait:?}\n{}", self.state()))
    }

    fn lines_closed(&self) -> bool {
        matches!(self.lines.try_recv(), Err(mpsc::TryRecvError::Disconnected))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (taken by nothing the moment it is returned).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What `probe` finds, asked every 20 ms for up to `wait`; `None` if it found nothing.
fn poll<T>(wait: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `wait` for something to accept TCP connections on the loopback `addr`.
pub fn wait_until_listening(addr: &str, what: &str, wait: Duration) {
    let listening = poll(wait, || std::net::TcpStream::connect(addr).ok());
    assert!(listening.is_some(), "{what} did not start on {addr}");
}

/// The whole answer (head and body) to a plain HTTP GET of `path` at `addr`.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(addr)?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: confab\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    Ok(answer)
}

/// A signaling server process serving on a loopback port, and its URL. The server
/// chooses the port itself: one picked for it beforehand may be taken by another process
/// of a parallel test before the server binds it.
pub fn server() -> (Process, String) {
    const START: Duration = Duration::from_secs(10);
    let process = Process::spawn(&["server", "--listen", "127.0.0.1:0"]);
    let addr = process.stderr_line(START, "the server's address", |line| {
        let (_, rest) = line.split_once("signaling server listening on ws://")?;
        Some(rest.split_once("/ws")?.0.to_owned())
    });
    wait_until_healthy(&process, &addr, START);
    (process, format!("ws://{addr}/ws"))
}

/// Waits up to `wait` for the server `process` at `addr` to answer `/healthz`: once it
/// does, its relay has started too (a server whose relay cannot start stops).
fn wait_until_healthy(process: &Process, addr: &str, wait: Duration) {
    let healthy = poll(wait, || {
        let answer = http_get(addr, "/healthz").ok()?;
        answer.starts_with("HTTP/1.1 200").then_some(())
    });
    assert!(
        healthy.is_some(),
        "the server on {addr} did not answer /healthz\n{}",
        process.state()
    );
}

pub fn peer(url: &str, name: &str) -> Process {
    Process::spawn(&["peer", "--server", url, "--room", "cli", "--name", name])
}

pub const WAIT: Duration = Duration::from_secs(10);

pub fn connected_id(process: &Process) -> String {
    let event = process.event(WAIT, "connected", |e| {
        e["event"] == "signaling" && e["state"] == "connected"
    });
    event["id"].as_str().unwrap().to_owned()
}

pub fn chat_open(process: &Process, peer: &str) {
    process.event(WAIT, "chat open", |e| {
        e["event"] == "channel" && e["label"] == "chat" && e["state"] == "open" && e["peer"] == peer
    });
}

/// The level of one tone in a WAV recording (48 kHz mono), over its second half.
pub fn tone_in_recording(path: &std::path::Path, hz: f64) -> f32 {
    let reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 48_000);
    let samples: Vec<f32> = reader
        .into_samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / f32::from(i16::MAX))
        .collect();
    // One second of whole 20 ms frames, ending 0.7 s before the recording does: the call
    // is up by then, and nobody has quit yet.
    let frames = samples.len() / 960;
    assert!(frames > 100, "a recording of {frames} frames");
    let tail = &samples[(frames - 85) * 960..(frames - 35) * 960];
    confab_audio::dsp::heard_tone_dbfs(tail, hz)
}

/// A peer with a tone and a recording, in room `room`.
pub fn voice_peer(
    url: &str,
    room: &str,
    name: &str,
    hz: u32,
    recording: &std::path::Path,
) -> Process {
    Process::spawn(&[
        "peer",
        "--server",
        url,
        "--room",
        room,
        "--name",
        name,
        "--audio-in",
        &format!("sine:{hz}"),
        "--audio-out",
        &format!("wav:{}", recording.display()),
        "--auto-accept-calls",
    ])
}
