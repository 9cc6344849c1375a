//! `confab check`: the connection test, one JSON line per finding.

use clap::Args;
use confab_mesh::IceServer;
use confab_mesh::connection_test::{self, Check};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Signaling server, e.g. ws://HOST:8787/ws.
    #[arg(long, value_name = "URL")]
    server: String,

    /// An ICE server of your own, as `confab peer` takes it (repeatable).
    #[arg(long = "ice", value_name = "SPEC", value_parser = IceServer::parse)]
    ice: Vec<IceServer>,
}

/// Prints `{"check", "transport"?, "ok", "words"}` per finding. Exits 1 when the server
/// cannot be used, else 0: the findings say what works.
pub(crate) async fn run(args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    let findings = connection_test::run(&args.server, &args.ice).await;
    for finding in &findings {
        println!("{}", serde_json::to_string(finding)?);
    }
    let server_ok = findings
        .iter()
        .any(|f| f.check == Check::Server && f.ok == Some(true));
    Ok(if server_ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
