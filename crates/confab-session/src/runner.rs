//! The core peer (`confab_mesh::Mesh`) an app drives in one room, and the task that pumps
//! its events to the app's window, tagged with the room.
//!
//! A mesh is built with the display name and ICE servers, so when those change the next
//! `connect` starts a fresh one (the old one leaves cleanly first). Devices are not part of
//! that: `set-audio` switches them on the running mesh, calls included.

use std::path::PathBuf;
use std::sync::Arc;

use confab_mesh::{Command, Event, Identity, Mesh, MeshConfig, MeshEvents, MeshHandle};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::SessionError;
use crate::overrides::Overrides;
use crate::settings::Settings;
use crate::transport;

/// Where the meshes' events go (the app's window), each with the id of its room
/// ([`crate::settings::RoomSettings::id`]).
pub trait EventSink: Send + Sync + 'static {
    fn event(&self, room: &str, event: Event);
}

/// What a mesh is built from; a change needs a new mesh.
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

/// A running mesh: commands go straight to it; its events go to the sink through the pump
/// task.
#[derive(Debug)]
struct Running {
    key: MeshKey,
    commands: MeshHandle,
    pump: JoinHandle<()>,
}

/// The app's peer in one room, started and restarted as settings change.
pub(crate) struct MeshRunner {
    /// The room's id, which its events carry.
    room: String,
    sink: Arc<dyn EventSink>,
    overrides: Overrides,
    /// Identity and history live here.
    data_dir: PathBuf,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for MeshRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshRunner")
            .field("room", &self.room)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl MeshRunner {
    pub(crate) fn new(
        room: &str,
        sink: Arc<dyn EventSink>,
        overrides: Overrides,
        data_dir: PathBuf,
    ) -> Self {
        Self {
            room: room.to_owned(),
            sink,
            overrides,
            data_dir,
            running: Mutex::new(None),
        }
    }

    /// Starts the mesh if none runs yet (when the window first attaches).
    pub(crate) async fn ensure_started(&self, settings: &Settings) -> Result<(), SessionError> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            *running = Some(self.start(settings)?);
        }
        Ok(())
    }

    /// Hands a command to the mesh. A `connect` first makes sure the mesh was built from
    /// the current settings.
    pub(crate) async fn send(
        &self,
        command: Command,
        settings: &Settings,
    ) -> Result<(), SessionError> {
        let mut running = self.running.lock().await;
        let key = MeshKey::new(settings);
        let stale = running.as_ref().is_none_or(|r| r.key != key);
        if stale && (running.is_none() || matches!(command, Command::Connect { .. })) {
            if let Some(old) = running.take() {
                tracing::info!("settings changed: starting the connection engine again");
                stop(old).await;
            }
            *running = Some(self.start(settings)?);
        }
        let Some(current) = running.as_ref() else {
            return Err(SessionError::Stopped);
        };
        if !current.commands.send(command) {
            // The pump ended (the mesh stopped on `quit`): nothing is there to take it.
            running.take();
            return Err(SessionError::Stopped);
        }
        Ok(())
    }

    /// Leaves cleanly (closing peer connections and the room).
    pub(crate) async fn shutdown(&self) {
        if let Some(old) = self.running.lock().await.take() {
            stop(old).await;
        }
    }

    fn start(&self, settings: &Settings) -> Result<Running, SessionError> {
        let key = MeshKey::new(settings);
        let (audio_in, audio_out) = self.overrides.audio(settings);
        let identity_dir = self.data_dir.join("identity");
        let identity = Identity::load_or_create(&identity_dir)
            .map_err(|e| SessionError::Identity(e.to_string()))?;
        let mesh = Mesh::start(MeshConfig {
            name: key.name.clone(),
            transport: transport::for_app(self.overrides.loopback_only, &key.ice_servers),
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
        let pump = tokio::spawn(pump(events, self.room.clone(), self.sink.clone()));
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

/// Forwards the mesh's events to the sink, tagged with its room, until it stops.
async fn pump(mut events: MeshEvents, room: String, sink: Arc<dyn EventSink>) {
    while let Some(event) = events.next_event().await {
        sink.event(&room, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
