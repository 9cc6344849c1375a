//! A network namespace of one's own, with loopback only, whose nftables rules shape what
//! arrives: a share of UDP lost (this kernel has no netem, PLATFORM.md), a port or an
//! address cut off. Whatever runs inside talks over the namespace's loopback, so every
//! datagram between two processes in it crosses the rules once. The namespace is deleted
//! when the value is dropped, however the test or bench ends (except by SIGKILL). Needs
//! root.

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace, loopback up, with an nftables input chain for the rules that
    /// shape what arrives. `purpose` goes into its name, to tell them apart in
    /// `ip netns list`.
    pub fn new(purpose: &str) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "confab-{purpose}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name])?;
        // From here on the namespace goes away with `netns`, whatever happens.
        let netns = Self { name };
        run("ip", &["-n", &netns.name, "link", "set", "lo", "up"])?;
        netns.nft(
            "add table inet shape; \
             add chain inet shape in { type filter hook input priority 0; }",
        )?;
        Ok(netns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops `per_mille` of the UDP datagrams arriving in the namespace. On the input
    /// hook, as real loss is dropped on the way: on the output hook the sender's
    /// `sendto()` would fail with EPERM instead, which the network never does.
    pub fn lose_udp(&self, per_mille: u32) -> anyhow::Result<()> {
        let per_mille = per_mille.min(1000);
        self.drop_arriving(&format!(
            "meta l4proto udp numgen random mod 1000 < {per_mille}"
        ))
    }

    /// Drops every UDP datagram to or from `port`: a path that is gone for good, as when a
    /// NAT mapping expires or a laptop leaves its network.
    pub fn cut_udp_port(&self, port: u16) -> anyhow::Result<()> {
        self.drop_arriving(&format!("udp sport {port}"))?;
        self.drop_arriving(&format!("udp dport {port}"))
    }

    /// Drops every UDP datagram to or from `ip` (a loopback address a peer binds), except
    /// those with 127.0.0.1, where that peer's own TURN tunnels listen: a host on a
    /// network that lets only TCP out.
    pub fn block_udp_of(&self, ip: &str) -> anyhow::Result<()> {
        self.drop_arriving(&format!(
            "meta l4proto udp ip saddr {ip} ip daddr != 127.0.0.1"
        ))?;
        self.drop_arriving(&format!(
            "meta l4proto udp ip daddr {ip} ip saddr != 127.0.0.1"
        ))
    }

    /// Drops every TCP segment to `port`: a firewall that lets no TCP out to it.
    pub fn block_tcp_port(&self, port: u16) -> anyhow::Result<()> {
        self.drop_arriving(&format!("tcp dport {port}"))
    }

    /// `program`, to be run inside the namespace (`ip netns exec` becomes `program`, so
    /// the child's id is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Waits until something inside accepts TCP connections on `addr` (`IP:PORT`).
    pub fn wait_for_listener(&self, addr: &str, wait: Duration) -> anyhow::Result<()> {
        wait_for_listener_in(&self.name, addr, wait)
    }

    fn drop_arriving(&self, matching: &str) -> anyhow::Result<()> {
        self.nft(&format!("add rule inet shape in {matching} drop"))
    }

    fn nft(&self, script: &str) -> anyhow::Result<()> {
        run("ip", &["netns", "exec", &self.name, "nft", script])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes still inside were ended by their own guards, dropped first; the
        // loopback and the rules go with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Waits until something in the namespace named `netns` (made here or elsewhere) accepts
/// TCP connections on `addr` (`IP:PORT`).
pub fn wait_for_listener_in(netns: &str, addr: &str, wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    let (ip, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("{addr} is not IP:PORT"))?;
    loop {
        // bash's /dev/tcp connects from inside, where the caller itself cannot.
        let probe = Command::new("ip")
            .args(["netns", "exec", netns, "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{ip}/{port}"))
            .stderr(std::process::Stdio::null())
            .status()
            .context("cannot run bash in the namespace")?;
        if probe.success() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing listens on {addr} in {netns} after {wait:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this process may make namespaces.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?}: {} {}(namespaces need root, loss needs nftables)",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
