//! The relay's memory per allocation: its resident memory before and while
//! [`ALLOCATIONS`] allocations are held at once, each by a TURN client of its own over UDP,
//! as that many peers would hold them. Measured on a relay that has relayed nothing yet, so
//! memory freed by earlier transfers does not hide what allocations take.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use turn::client::Client;
use webrtc_util::Conn;

/// Allocations held at once.
pub(crate) const ALLOCATIONS: usize = 200;
/// How long one allocation may take.
const ALLOCATE_WITHIN: Duration = Duration::from_secs(10);

/// The relay at `server` (process `pid`) holding [`ALLOCATIONS`] allocations with these
/// credentials: KiB of resident memory each.
pub(crate) async fn kib_per_allocation(
    pid: u32,
    server: SocketAddr,
    username: &str,
    password: &str,
) -> anyhow::Result<f64> {
    let before = crate::relay::rss_mib_of(pid)?;
    let mut held = Vec::with_capacity(ALLOCATIONS);
    for _ in 0..ALLOCATIONS {
        held.push(allocate(server, username, password).await?);
    }
    // The relay answers each Allocate once its socket and task exist: nothing is pending.
    let during = crate::relay::rss_mib_of(pid)?;
    for (client, relayed) in held {
        let _ = relayed.close().await;
        let _ = client.close().await;
    }
    Ok((during - before) * 1024.0 / ALLOCATIONS as f64)
}

async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> anyhow::Result<(Client, impl Conn + use<>)> {
    let client = confab_testkit::turn_client::over_udp(server, username, password).await?;
    let relayed = tokio::time::timeout(ALLOCATE_WITHIN, client.allocate())
        .await
        .context("the relay did not answer an Allocate")??;
    Ok((client, relayed))
}
