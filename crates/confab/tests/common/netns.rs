//! A network namespace of a test's own, with loopback only: the server and the peers run
//! in it, nftables rules in it shape their traffic (random UDP loss, a port cut off), and
//! it is deleted when the test ends, also on failure. Needs root.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Process;

pub const SERVER: &str = "127.0.0.1:8787";

pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// None (and the test passes without running) when not root: namespaces need it.
    pub fn new(purpose: &str) -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: a network namespace needs root");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "confab-{purpose}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        // From here on the namespace goes away with `netns`, whatever happens.
        let netns = Self { name };
        run("ip", &["-n", &netns.name, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &netns.name,
                "nft",
                "add table inet shape; add chain inet shape in { type filter hook input priority 0; }",
            ],
        );
        Some(netns)
    }

    /// Drops `per_mille` of the UDP datagrams arriving in the namespace: on the input hook,
    /// dropped on the way in as real loss is (on the output hook the sender's sendto()
    /// would fail instead).
    pub fn lose_udp(&self, per_mille: u32) {
        self.drop_arriving(&format!(
            "meta l4proto udp numgen random mod 1000 < {per_mille}"
        ));
    }

    /// Drops every UDP datagram to or from `port`: a path that is gone for good, as when a
    /// NAT mapping expires or a laptop leaves its network.
    pub fn cut_udp_port(&self, port: u16) {
        self.drop_arriving(&format!("udp sport {port}"));
        self.drop_arriving(&format!("udp dport {port}"));
    }

    /// Drops every UDP datagram to or from `ip` (a loopback address its peer binds with
    /// `--udp`), except those with 127.0.0.1, where that peer's own TURN tunnels listen:
    /// a host on a network that lets only TCP out.
    pub fn block_udp_of(&self, ip: &str) {
        self.drop_arriving(&format!(
            "meta l4proto udp ip saddr {ip} ip daddr != 127.0.0.1"
        ));
        self.drop_arriving(&format!(
            "meta l4proto udp ip daddr {ip} ip saddr != 127.0.0.1"
        ));
    }

    /// Drops every TCP segment to `port`: a firewall that lets no TCP out to it.
    pub fn block_tcp_port(&self, port: u16) {
        self.drop_arriving(&format!("tcp dport {port}"));
    }

    fn drop_arriving(&self, matching: &str) {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.name,
                "nft",
                &format!("add rule inet shape in {matching} drop"),
            ],
        );
    }

    pub fn spawn(&self, args: &[&str]) -> Process {
        Process::spawn_in_netns(&self.name, args)
    }

    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::spawn_in_netns_with_env(&self.name, args, env)
    }

    /// The signaling server, once it takes connections.
    pub fn server(&self) -> Process {
        self.server_on(SERVER, &[])
    }

    /// A signaling server on `listen`, with `extra` flags, once it takes connections.
    pub fn server_on(&self, listen: &str, extra: &[&str]) -> Process {
        let mut args = vec!["server", "--listen", listen];
        args.extend_from_slice(extra);
        let server = self.spawn(&args);
        wait_for_listener(&self.name, listen);
        server
    }

    pub fn peer(&self, room: &str, name: &str, extra: &[&str]) -> Process {
        let url = format!("ws://{SERVER}/ws");
        let mut args = vec!["peer", "--server", &url, "--room", room, "--name", name];
        args.extend_from_slice(extra);
        self.spawn(&args)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Processes still in it were killed by their own guards (declared later, dropped
        // first); the namespace's interfaces and rules go with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Waits until something in namespace `netns` accepts TCP connections on `addr`
/// (`IP:PORT`); panics after 10 s.
pub fn wait_for_listener(netns: &str, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = Command::new("ip")
            .args(["netns", "exec", netns, "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{}", addr.replace(':', "/")))
            .status()
            .unwrap();
        if probe.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} in {netns}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed: {status}");
}
