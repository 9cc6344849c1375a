//! `confab`: the command line. Flags and logging only; the work is in the library crates.

mod check_cmd;
mod discover_cmd;
mod peer_cmd;
mod server_cmd;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Confab: peer-to-peer text chat, file transfer and voice calls over WebRTC.
///
/// Peers meet on a signaling server, then talk directly over a full mesh; chat, files and
/// voice keep flowing when the server goes away.
#[derive(Debug, Parser)]
#[command(name = "confab", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr: -v for connections and joins, -vv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a signaling server, e.g. on a public host, for peers to meet on.
    Server(server_cmd::ServerArgs),
    /// Run a headless peer: JSON commands on stdin, JSON events on stdout.
    Peer(peer_cmd::PeerArgs),
    /// List the Confab servers announced on the local network, one JSON line each.
    Discover(discover_cmd::DiscoverArgs),
    /// Test what works from here: the server, STUN, and its relays over UDP, TCP and TLS.
    Check(check_cmd::CheckArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = if matches!(cli.command, Command::Peer(_)) {
        // This thread drives the peer, which carries its calls' packets.
        confab_audio::priority::raise_current_thread();
        confab_mesh::runtime::for_calls()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("confab: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server_cmd::run(args)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Peer(args) => peer_cmd::run(args, cli.verbose > 0).await,
            Command::Discover(args) => discover_cmd::run(args)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Check(args) => check_cmd::run(args).await,
        }
    });
    // The peer's libraries may leave background tasks (socket readers) behind: do not
    // wait for them once the work is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("confab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr. Quiet by default (warnings and the start-up line); `RUST_LOG`
/// overrides the level given by `-v`.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // Our crates at the chosen level; the libraries below only when they fail, unless -vv.
    let default = if verbose >= 2 {
        level.to_owned()
    } else {
        // The Pulse client logs every connection it closes (each device listing) as an
        // error; its real failures reach us as cpal errors, which we report.
        format!("error,pulseaudio=off,confab={level},confab_signal={level},confab_mesh={level}")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
