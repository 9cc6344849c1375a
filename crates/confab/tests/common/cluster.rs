//! A cluster on loopback: a real `nats-server` and real `confab server` instances, each a
//! process of its own (so that one can be SIGKILLed), and clients on any of them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Process, free_port, http_get, wait_until_listening};

/// How long a process of the cluster may take to listen: an instance first learns the
/// cluster's rooms (up to 3.6 s).
const START: Duration = Duration::from_secs(15);

fn wait_for_listener(addr: &str, what: &str) {
    wait_until_listening(addr, what, START);
}

/// Debian's `nats-server`, on a loopback port of its own; killed when dropped.
pub struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    pub fn start() -> Nats {
        let mut nats = Nats {
            port: free_port(),
            child: None,
        };
        nats.run();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (apt install nats-server)");
        self.child = Some(child);
        wait_for_listener(&format!("127.0.0.1:{}", self.port), "nats-server");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it, waits `down`, and starts it again on the same port.
    pub fn restart(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.run();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `confab server --cluster` instance on a loopback port of its own.
pub struct Instance {
    pub process: Process,
    pub url: String,
    pub addr: String,
}

impl Instance {
    /// An instance with no relay.
    pub fn start(nats: &Nats, node: &str, extra: &[&str]) -> Instance {
        let mut args = vec!["--no-turn"];
        args.extend_from_slice(extra);
        Self::start_with_relay(nats, node, &args)
    }

    /// An instance with its built-in relay (unless `extra` says `--no-turn`).
    pub fn start_with_relay(nats: &Nats, node: &str, extra: &[&str]) -> Instance {
        let addr = format!("127.0.0.1:{}", free_port());
        let nats_url = nats.url();
        let mut args = vec![
            "server",
            "--listen",
            &addr,
            "--no-announce",
            "--cluster",
            &nats_url,
            "--node-id",
            node,
        ];
        args.extend_from_slice(extra);
        let process = Process::spawn(&args);
        wait_for_listener(&addr, "confab server");
        Instance {
            process,
            url: format!("ws://{addr}/ws"),
            addr,
        }
    }

    /// SIGKILL: no goodbye, no close frames, sockets reset by the kernel.
    pub fn kill(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    /// Sends a signal (`STOP`, `CONT`) to the process.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name}");
    }

    /// The value of one line of its `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let body = http_get(&self.addr, "/metrics").unwrap();
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
    }
}

/// Debian's HAProxy in front of instances, as docs/signaling-server.md sets it up: round
/// robin, `/healthz` checks, WebSocket upgrades passed through, no sticky sessions.
pub struct Front {
    pub url: String,
    child: Child,
    config: std::path::PathBuf,
}

impl Front {
    pub fn start(backends: &[&Instance]) -> Front {
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    "    server s{i} {} check inter 200ms fall 1 rise 1\n",
                    b.addr
                )
            })
            .collect();
        let config = std::env::temp_dir().join(format!("confab-front-{port}.cfg"));
        // A check's answer may be slow on a busy machine (two CPU hogs per core): without
        // `timeout check` it had to come within `inter` (200 ms), and one late answer
        // (fall 1) took a live instance out, so that a join got 503 from the front. A
        // killed instance still fails its check at once: its port refuses.
        std::fs::write(
            &config,
            format!(
                "defaults\n    mode http\n    timeout connect 1s\n    timeout check 5s\n    timeout client 60s\n    \
                 timeout server 60s\n    timeout tunnel 1h\n    retries 3\n    option redispatch\n\
                 frontend confab\n    bind 127.0.0.1:{port}\n    default_backend servers\n\
                 backend servers\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}"
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy runs (apt install haproxy)");
        let addr = format!("127.0.0.1:{port}");
        wait_for_listener(&addr, "haproxy");
        Front {
            url: format!("ws://{addr}/ws"),
            child,
            config,
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}
