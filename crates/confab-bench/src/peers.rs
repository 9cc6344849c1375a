//! What benches that drive Confab peers share: finding the `confab` binary built beside
//! them, and waiting for a peer's event.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use confab_mesh::{Event, Mesh};

/// `confab`, built beside the running bench.
pub fn sibling_confab() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|me| Some(me.parent()?.join("confab")))
        .unwrap_or_else(|| PathBuf::from("confab"))
}

/// The next event of `mesh` that `matches`, within `wait`.
pub async fn until_within(
    mesh: &mut Mesh,
    wait: Duration,
    mut matches: impl FnMut(&Event) -> bool,
) -> anyhow::Result<Event> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, mesh.next_event()).await {
            Ok(Some(event)) if matches(&event) => return Ok(event),
            Ok(Some(_)) => {}
            Ok(None) => bail!("the peer stopped"),
            Err(_) => bail!("nothing came within {wait:?}"),
        }
    }
}
