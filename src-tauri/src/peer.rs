//! The core peer (`confab_mesh::Mesh`) the app drives, and the task that pumps its events
//! to the window.
//!
//! A mesh is built with the display name, ICE servers and audio devices, so when those
//! change the next `connect` starts a fresh one (the old one leaves cleanly first).

use std::path::PathBuf;
use std::sync::Arc;

use confab_mesh::{
    Command, IceServer, Identity, Mesh, MeshConfig, MeshEvents, MeshHandle, SinkSpec, SourceSpec,
    TransportConfig,
};
use tokio::sync::Mutex;

use crate::error::ShellError;
use crate::settings::Settings;
use crate::window::Forwarder;

/// Switches tests may set; a user never needs them.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `CONFAB_LOOPBACK_ONLY=1`: gather ICE candidates on 127.0.0.1 only, with multicast
    /// DNS off, so test traffic never leaves the machine.
    pub loopback_only: bool,
    /// `CONFAB_AUDIO_IN` / `CONFAB_AUDIO_OUT`: audio forms (`sine:440`, `wav:PATH`, `none`)
    /// in place of the devices chosen in Settings, so meters move with no sound card.
    pub audio_in: Option<String>,
    pub audio_out: Option<String>,
}

impl Overrides {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            loopback_only: var("CONFAB_LOOPBACK_ONLY").is_some_and(|v| v != "0"),
            audio_in: var("CONFAB_AUDIO_IN"),
            audio_out: var("CONFAB_AUDIO_OUT"),
        }
    }
}

/// What a mesh is built from; a change needs a new mesh. Devices are not part of it:
/// `set-audio` switches them on the running mesh, calls included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MeshKey {
    name: String,
    ice_servers: Vec<String>,
}

impl MeshKey {
    fn new(settings: &Settings) -> Self {
        Self {
            name: settings.name.clone(),
            ice_servers: settings.ice_servers.clone(),
        }
    }
}

/// The devices a new mesh opens: Settings' choice unless a test overrides it. A form that
/// names nothing (a hand-edited settings file) falls back to the default device.
fn audio_forms(settings: &Settings, overrides: &Overrides) -> (SourceSpec, SinkSpec) {
    let input = overrides.audio_in.as_ref().unwrap_or(&settings.audio_in);
    let output = overrides.audio_out.as_ref().unwrap_or(&settings.audio_out);
    (
        input.parse().unwrap_or_else(|e| {
            log::warn!("microphone {input:?}: {e}; the default is used");
            SourceSpec::Default
        }),
        output.parse().unwrap_or_else(|e| {
            log::warn!("speakers {output:?}: {e}; the default is used");
            SinkSpec::Default
        }),
    )
}

/// A running mesh: commands go straight to it; its events go to the window through the
/// pump task.
#[derive(Debug)]
struct Running {
    key: MeshKey,
    commands: MeshHandle,
    pump: tauri::async_runtime::JoinHandle<()>,
}

/// The app's peer.
#[derive(Debug)]
pub struct Peer {
    forwarder: Arc<Forwarder>,
    overrides: Overrides,
    /// Identity and history live here.
    data_dir: PathBuf,
    running: Mutex<Option<Running>>,
}

impl Peer {
    pub fn new(forwarder: Arc<Forwarder>, overrides: Overrides, data_dir: PathBuf) -> Self {
        Self {
            forwarder,
            overrides,
            data_dir,
            running: Mutex::new(None),
        }
    }

    /// Starts the mesh if none runs yet (when the page first attaches).
    pub async fn ensure_started(&self, settings: &Settings) -> Result<(), ShellError> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            *running = Some(self.start(settings)?);
        }
        Ok(())
    }

    /// Hands a command to the mesh. A `connect` first makes sure the mesh was built from
    /// the current settings.
    pub async fn send(&self, command: Command, settings: &Settings) -> Result<(), ShellError> {
        let mut running = self.running.lock().await;
        let key = MeshKey::new(settings);
        let stale = running.as_ref().is_none_or(|r| r.key != key);
        if stale && (running.is_none() || matches!(command, Command::Connect { .. })) {
            if let Some(old) = running.take() {
                log::info!("settings changed: starting the connection engine again");
                stop(old).await;
            }
            *running = Some(self.start(settings)?);
        }
        let Some(current) = running.as_ref() else {
            return Err(ShellError::PeerStopped);
        };
        if !current.commands.send(command) {
            // The pump ended (the mesh stopped on `quit`): nothing is there to take it.
            running.take();
            return Err(ShellError::PeerStopped);
        }
        Ok(())
    }

    /// Leaves cleanly (closing peer connections and the room) before the app exits.
    pub async fn shutdown(&self) {
        if let Some(old) = self.running.lock().await.take() {
            stop(old).await;
        }
    }

    fn start(&self, settings: &Settings) -> Result<Running, ShellError> {
        let key = MeshKey::new(settings);
        let (audio_in, audio_out) = audio_forms(settings, &self.overrides);
        let identity_dir = self.data_dir.join("identity");
        let identity = Identity::load_or_create(&identity_dir)
            .map_err(|e| ShellError::Identity(e.to_string()))?;
        let mut transport = if self.overrides.loopback_only {
            TransportConfig::loopback()
        } else {
            TransportConfig::all_interfaces()
        };
        for spec in &key.ice_servers {
            match IceServer::parse(spec) {
                Ok(server) => transport.ice_servers.push(server),
                // Settings checks them as they are typed; one bad entry must not stop the rest.
                Err(e) => log::warn!("ICE server skipped: {e}"),
            }
        }
        let mesh = Mesh::start(MeshConfig {
            name: key.name.clone(),
            transport,
            identity,
            auto_accept_files: None,
            data_dir: Some(identity_dir),
            audio_in: Some(audio_in),
            audio_out: Some(audio_out),
            auto_accept_calls: false,
        });
        // The microphone's processing as the user last left it: a new mesh starts with
        // both switches on.
        mesh.send(Command::SetAudio {
            input: None,
            output: None,
            noise_suppression: Some(settings.noise_suppression),
            echo_cancellation: Some(settings.echo_cancellation),
        });
        let (commands, events) = mesh.split();
        let pump = tauri::async_runtime::spawn(pump(events, self.forwarder.clone()));
        Ok(Running {
            key,
            commands,
            pump,
        })
    }
}

/// Asks the mesh to quit and waits for it to have left.
async fn stop(running: Running) {
    let _ = running.commands.send(Command::Quit);
    let _ = running.pump.await;
}

/// Forwards the mesh's events to the window until it stops.
async fn pump(mut events: MeshEvents, forwarder: Arc<Forwarder>) {
    while let Some(event) = events.next_event().await {
        forwarder.forward(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_overrides_replace_the_chosen_devices() {
        let settings = Settings::default();
        let overrides = Overrides {
            audio_in: Some("sine:440".into()),
            ..Overrides::default()
        };
        let (input, output) = audio_forms(&settings, &overrides);
        assert_eq!(input, SourceSpec::Sine(440.0));
        assert_eq!(output, SinkSpec::Default);
        let broken = Settings {
            audio_out: "tape:1".into(),
            ..Settings::default()
        };
        assert_eq!(
            audio_forms(&broken, &Overrides::default()).1,
            SinkSpec::Default
        );
    }

    #[test]
    fn a_new_name_or_ice_servers_need_a_new_mesh_and_devices_do_not() {
        let settings = Settings::default();
        let key = MeshKey::new(&settings);
        let other_mic = Settings {
            audio_in: "device:USB".into(),
            ..settings.clone()
        };
        assert_eq!(MeshKey::new(&other_mic), key);
        let renamed = Settings {
            name: "Someone else".into(),
            ..settings.clone()
        };
        assert_ne!(MeshKey::new(&renamed), key);
        let with_stun = Settings {
            ice_servers: vec!["stun:example.org:3478".into()],
            ..settings
        };
        assert_ne!(MeshKey::new(&with_stun), key);
    }
}
