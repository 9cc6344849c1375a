//! A `confab` process driven as scripts drive it (PEER-API.md): JSON commands on its stdin,
//! its JSON events read from stdout on a thread of their own, the last lines of its stderr
//! kept to say what it was doing when a wait fails. Killed when dropped, however the bench
//! ends.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::interrupt;

/// How many stderr lines a failed wait shows.
const STDERR_TAIL: usize = 20;

pub struct ConfabProcess {
    /// "server", "A", "B": for messages.
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ConfabProcess {
    pub fn spawn(name: &str, mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            // A group of its own: Ctrl-C at the terminal reaches the bench alone, which
            // then ends its processes in order instead of finding them dead mid-call.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        // From here on the child is killed with `process`, whatever happens.
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (tx, lines) = mpsc::channel();
        let process = Self {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            stderr_tail: Arc::default(),
        };
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            bail!("{name}: no pipes to its stdout and stderr");
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let tail = process.stderr_tail.clone();
        // Read to the end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
        Ok(process)
    }

    /// One command, as a JSON line.
    pub fn send(&mut self, json: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .with_context(|| format!("{}: stdin closed", self.name))?;
        writeln!(stdin, "{json}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("{}: cannot write {json}", self.name))
    }

    /// The next event that `matches`, within `wait`.
    pub fn event(
        &self,
        wait: Duration,
        what: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + wait;
        loop {
            interrupt::check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{}: no {what} within {wait:?}\n{}", self.name, self.state());
            }
            // In short steps, so an interrupt is noticed.
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(line) => {
                    let event: Value = serde_json::from_str(&line).with_context(|| {
                        format!("{}: a stdout line is not JSON: {line}", self.name)
                    })?;
                    if matches(&event) {
                        return Ok(event);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "{}: exited while waiting for {what}\n{}",
                        self.name,
                        self.state()
                    );
                }
            }
        }
    }

    /// Its id in the room, once its signaling has connected (within `wait`).
    pub fn connected_id(&self, wait: Duration) -> anyhow::Result<String> {
        let event = self.event(wait, "connected", |e| {
            e["event"] == "signaling" && e["state"] == "connected"
        })?;
        event["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: no id in {event}", self.name))
    }

    /// Asks it to quit and waits up to `wait` for it to exit (so a recording is complete);
    /// kills it after that.
    pub fn quit(mut self, wait: Duration) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{}: ended early, {status}\n{}", self.name, self.state());
        }
        self.send(r#"{"cmd":"quit"}"#)?;
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{}: exited with {status}\n{}", self.name, self.state());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{}: still running {wait:?} after quit", self.name)
    }

    /// The last lines of its stderr, for the message of a failed wait.
    fn state(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        format!("its stderr ended with:\n{tail}")
    }
}

impl Drop for ConfabProcess {
    fn drop(&mut self) {
        // Nothing to do when it has exited already: kill() fails, wait() reaps.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
