//! `confab peer`: a headless peer. One JSON command a line on stdin, one JSON event a line
//! on stdout (PEER-API.md).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;
use confab_audio::AudioError;
use confab_audio::open::{SinkSpec, SourceSpec};
use confab_mesh::api::{LogLevel, SignalingState};
use confab_mesh::{
    Command, ErrorCode, Event, IceServer, Identity, Mesh, MeshConfig, TransportConfig,
};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// Signaling server, e.g. ws://HOST:8787/ws.
    #[arg(long, value_name = "URL")]
    server: String,

    /// Room to join.
    #[arg(long)]
    room: String,

    /// Display name.
    #[arg(long)]
    name: String,

    /// Room password.
    #[arg(long)]
    password: Option<String>,

    /// ICE server: stun:HOST:PORT or turn:USER:PASS@HOST:PORT (repeatable).
    #[arg(long = "ice", value_name = "SPEC", value_parser = IceServer::parse)]
    ice: Vec<IceServer>,

    /// Local address to gather candidates on (repeatable). Default: every interface, or
    /// loopback only when the server is on loopback (its peers are then on this machine).
    #[arg(long = "udp", value_name = "IP")]
    udp: Vec<IpAddr>,

    /// Audio input: default, none, device:NAME, sine:HZ or wav:PATH (default: none).
    #[arg(long, value_name = "SOURCE", value_parser = audio_spec::<SourceSpec>)]
    audio_in: Option<SourceSpec>,

    /// Audio output: default, none, device:NAME or wav:PATH (default: none).
    #[arg(long, value_name = "SINK", value_parser = audio_spec::<SinkSpec>)]
    audio_out: Option<SinkSpec>,

    /// Accept every incoming call (after emitting call-incoming).
    #[arg(long)]
    auto_accept_calls: bool,

    /// Accept every offered file into DIR.
    #[arg(long, value_name = "DIR")]
    auto_accept_files: Option<PathBuf>,

    /// Keep the DTLS certificate in DIR, so the fingerprint is stable across runs; the chat
    /// history, verified peers and unfinished transfers are kept there too.
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
}

impl PeerArgs {
    fn transport(&self) -> TransportConfig {
        confab_session::transport::for_peer(&self.server, &self.udp, self.ice.clone())
    }
}

/// Checks an audio flag's form at start (a wrong one exits 2); the device itself is opened
/// when a call needs it.
fn audio_spec<Spec: FromStr<Err = AudioError>>(spec: &str) -> Result<Spec, String> {
    spec.parse::<Spec>().map_err(|e| e.to_string())
}

/// Writes events as JSON lines; logs go to stderr unless `verbose` asks for them here.
struct Output {
    verbose: bool,
}

impl Output {
    fn event(&self, event: &Event) {
        if let Event::Log {
            level, msg, peer, ..
        } = event
            && !self.verbose
        {
            if *level >= LogLevel::Info {
                let peer = peer
                    .as_deref()
                    .map(|p| format!(" [{p}]"))
                    .unwrap_or_default();
                eprintln!("{level:?}{peer}: {msg}");
            }
            return;
        }
        let mut stdout = std::io::stdout().lock();
        // A closed stdout is the reader's business; the peer goes on until told to quit.
        let _ = writeln!(stdout, "{}", event.to_json());
        let _ = stdout.flush();
    }
}

pub(crate) async fn run(args: PeerArgs, verbose: bool) -> anyhow::Result<ExitCode> {
    let output = Output { verbose };
    let identity = match &args.identity {
        Some(dir) => Identity::load_or_create(dir)?,
        None => Identity::ephemeral()?,
    };
    let mut mesh = Mesh::start(MeshConfig {
        name: args.name.clone(),
        transport: args.transport(),
        identity,
        auto_accept_files: args.auto_accept_files.clone(),
        // An install keeps its history beside its identity.
        data_dir: args.identity.clone(),
        audio_in: args.audio_in.clone(),
        audio_out: args.audio_out.clone(),
        auto_accept_calls: args.auto_accept_calls,
    });
    mesh.send(Command::Connect {
        server: args.server.clone(),
        room: args.room.clone(),
        name: args.name.clone(),
        password: args.password.clone(),
    });

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut ever_connected = false;
    let mut code = ExitCode::SUCCESS;
    let mut quitting = false;
    let terminate = terminate_signal();
    tokio::pin!(terminate);
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match Command::parse(&line) {
                    Ok(command) => {
                        quitting |= command == Command::Quit;
                        mesh.send(command);
                    }
                    Err(message) => output.event(&Event::Error {
                        code: ErrorCode::BadCommand,
                        message,
                        peer: None,
                    }),
                },
                // End of input (or unreadable input): leave cleanly and exit.
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    quitting = true;
                    mesh.send(Command::Quit);
                }
            },
            () = &mut terminate, if !quitting => {
                quitting = true;
                mesh.send(Command::Quit);
            }
            event = mesh.next_event() => match event {
                Some(event) => {
                    if matches!(event, Event::Signaling { state: SignalingState::Connected, .. }) {
                        ever_connected = true;
                    }
                    let gave_up = matches!(event, Event::Signaling { state: SignalingState::Disconnected, .. });
                    output.event(&event);
                    if gave_up && !ever_connected && !quitting {
                        // Never got into the room (unreachable, refused): nothing to do.
                        code = ExitCode::FAILURE;
                        quitting = true;
                        mesh.send(Command::Quit);
                    }
                }
                None => break,
            },
        }
    }
    Ok(code)
}

/// Ctrl-C or SIGTERM.
async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
