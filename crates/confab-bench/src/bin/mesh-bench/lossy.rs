//! `--loss PCT`: the same measurements with random UDP loss. The bench makes a network
//! namespace of its own (as root), where nftables drops that share of arriving UDP on its
//! loopback (this kernel has no netem), runs itself again inside it, and deletes the
//! namespace when that run ends, however it ends.

use std::process::Command;

use anyhow::{Context, bail};

/// Set in the run inside the namespace, so it measures instead of making another one.
pub(crate) const INSIDE: &str = "CONFAB_BENCH_IN_LOSSY_NETNS";

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .context("cannot run ip (iproute2)")?;
    if !status.success() {
        bail!("ip {args:?}: {status} (the namespace needs root)");
    }
    Ok(())
}

/// Runs this binary again, with the same arguments, in a namespace losing `percent` % of
/// arriving UDP.
pub(crate) fn rerun_under_loss(percent: f64) -> anyhow::Result<()> {
    let netns = Netns(format!("confab-bench-loss-{}", std::process::id()));
    run(&["netns", "add", &netns.0])?;
    run(&["-n", &netns.0, "link", "set", "lo", "up"])?;
    let per_mille = ((percent * 10.0).round() as u32).min(1000).to_string();
    let nft = ["netns", "exec", &netns.0, "nft"];
    run(&[&nft[..], &["add", "table", "inet", "loss"]].concat())?;
    let chain = ["add", "chain", "inet", "loss", "in"];
    run(&[
        &nft[..],
        &chain[..],
        &["{ type filter hook input priority 0; }"],
    ]
    .concat())?;
    let rule = [
        "add", "rule", "inet", "loss", "in", "meta", "l4proto", "udp", "numgen", "random", "mod",
        "1000", "<", &per_mille, "drop",
    ];
    run(&[&nft[..], &rule[..]].concat())?;
    let me = std::env::current_exe()?;
    let status = Command::new("ip")
        .args(["netns", "exec", &netns.0])
        .arg(me)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()?;
    if !status.success() {
        bail!("the run under loss failed: {status}");
    }
    Ok(())
}
