//! `confab discover`: the servers announced on the local network, as JSON lines.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::server_cmd::seconds;

#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    /// How long to listen for announcements.
    #[arg(long, default_value = "2", value_name = "SECS", value_parser = seconds)]
    wait: Duration,
}

/// Prints `{"name", "url", "rooms": [{"room", "people"}], "people"}` per server found.
pub(crate) async fn run(args: DiscoverArgs) -> anyhow::Result<()> {
    let servers = confab_signal::lan::discover(args.wait)
        .await
        .context("cannot listen for servers on the network")?;
    for server in servers {
        println!("{}", serde_json::to_string(&server)?);
    }
    Ok(())
}
