//! Ctrl-C during the speech run ends it through the ordinary error path, so the guards
//! run: the `confab` processes are killed and the network namespace is deleted. Left to
//! its default, SIGINT would end the bench at once and leave the namespace behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

/// Process-wide, as the signal is.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// From now on Ctrl-C is noticed by [`check`] instead of ending the process.
pub fn catch(runtime: &tokio::runtime::Runtime) {
    runtime.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping the peers and removing the namespace");
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
    });
}

/// An error once Ctrl-C was pressed.
pub fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps for `duration`, or until Ctrl-C.
pub fn sleep(duration: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + duration;
    loop {
        check()?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
