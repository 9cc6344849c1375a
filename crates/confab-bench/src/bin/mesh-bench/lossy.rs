//! `--loss PCT`: the same measurements with random UDP loss. The bench makes a network
//! namespace of its own (as root), where nftables drops that share of arriving UDP on its
//! loopback (this kernel has no netem), runs itself again inside it, and deletes the
//! namespace when that run ends, however it ends.

use anyhow::bail;
use confab_testkit::netns::Netns;

/// Set in the run inside the namespace, so it measures instead of making another one.
pub(crate) const INSIDE: &str = "CONFAB_BENCH_IN_LOSSY_NETNS";

/// Runs this binary again, with the same arguments, in a namespace losing `percent` % of
/// arriving UDP.
pub(crate) fn rerun_under_loss(percent: f64) -> anyhow::Result<()> {
    let netns = Netns::new("loss")?;
    netns.lose_udp((percent * 10.0).round() as u32)?;
    let status = netns
        .command(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()?;
    if !status.success() {
        bail!("the run under loss failed: {status}");
    }
    Ok(())
}
