//! Debian's coturn (`turnserver`) on loopback, as a TURN server to compare with or to
//! refuse credentials: one long-term user, relaying to loopback peers, killed when dropped.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The realm coturn puts in its challenges.
pub const REALM: &str = "confab.test";

#[derive(Debug)]
pub struct Coturn {
    child: Child,
    port: u16,
}

impl Coturn {
    /// coturn on a free loopback port, UDP and TCP, with `user`:`password` as its one
    /// long-term user; returns once it takes connections.
    pub fn start(user: &str, password: &str) -> anyhow::Result<Self> {
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--relay-ip",
                "127.0.0.1",
            ])
            .args(["--listening-port", &port.to_string()])
            .args(["--lt-cred-mech", "--user", &format!("{user}:{password}")])
            .args(["--realm", REALM, "--allow-loopback-peers"])
            .args(["--no-tls", "--no-dtls", "--no-cli", "--log-file", "stdout"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run turnserver (Debian's coturn)")?;
        let coturn = Self { child, port };
        // coturn opens its TCP listener beside the UDP one, on the same port.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("coturn did not start listening on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(coturn)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, for reading its CPU time and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A TURN URL over UDP with these credentials, in the form `--ice` takes.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("turn:{user}:{password}@127.0.0.1:{}", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
