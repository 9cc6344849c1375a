//! One app session: the settings as saved, a core peer for each room they list, and the
//! server the app may host. A window calls these; nothing here knows about windows.
//!
//! Each room has a mesh of its own under the install's one identity (one DTLS certificate,
//! one history file, which keeps each room's messages apart), so joining or leaving one
//! room never touches another's connections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use confab_mesh::Command;
use tokio::sync::Mutex;

use crate::error::SessionError;
use crate::host::{Host, HostState};
use crate::overrides::Overrides;
use crate::runner::{EventSink, MeshRunner};
use crate::settings::{Settings, SettingsFile};

/// What a window needs to draw its first frame.
#[derive(Debug, Clone)]
pub struct Attached {
    pub settings: Settings,
    pub host: HostState,
    /// Why the hosted server did not start, when the settings ask for one and it failed.
    pub host_error: Option<String>,
}

pub struct Session {
    settings_file: SettingsFile,
    settings: Mutex<Settings>,
    /// The meshes, by room id; one for each room in the settings once started.
    rooms: Mutex<BTreeMap<String, Arc<MeshRunner>>>,
    sink: Arc<dyn EventSink>,
    overrides: Overrides,
    /// Identity and history live here.
    data_dir: PathBuf,
    host: Host,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sink is the window's; what matters here is where the session lives.
        f.debug_struct("Session")
            .field("settings_file", &self.settings_file)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session whose settings live in `config_dir` and whose identity and history live in
    /// `data_dir`; the core's events go to `sink`. Nothing starts until [`Session::attach`].
    pub fn open(
        config_dir: &Path,
        data_dir: &Path,
        overrides: Overrides,
        sink: Arc<dyn EventSink>,
    ) -> Self {
        let settings_file = SettingsFile::new(config_dir);
        let settings = settings_file.load();
        if overrides.loopback_only {
            tracing::info!("CONFAB_LOOPBACK_ONLY: ICE candidates on 127.0.0.1 only");
        }
        Self {
            settings_file,
            settings: Mutex::new(settings),
            rooms: Mutex::default(),
            sink,
            overrides,
            data_dir: data_dir.to_owned(),
            host: Host::default(),
        }
    }

    pub async fn settings(&self) -> Settings {
        self.settings.lock().await.clone()
    }

    /// Saves the settings. Those the core is built with (name, ICE servers) apply from a
    /// room's next `connect`; the hosted server's from the next [`Session::host_start`].
    /// A room no longer listed is left at once (its peers see it go); a room added is
    /// joined by its first `connect`.
    pub async fn save_settings(&self, settings: Settings) -> Result<Settings, SessionError> {
        let mut current = self.settings.lock().await;
        self.settings_file.save(&settings)?;
        *current = settings.clone();
        drop(current);
        let left: Vec<_> = {
            let mut rooms = self.rooms.lock().await;
            let listed = |id: &String| settings.rooms.iter().any(|room| &room.id == id);
            let gone: Vec<String> = rooms.keys().filter(|id| !listed(id)).cloned().collect();
            gone.iter().filter_map(|id| rooms.remove(id)).collect()
        };
        for runner in left {
            runner.shutdown().await;
        }
        Ok(settings)
    }

    /// The window is ready for events: starts a core peer for each room and, when the
    /// settings ask for it (and the first run is through), the hosted server.
    pub async fn attach(&self) -> Result<Attached, SessionError> {
        let settings = self.settings().await;
        for room in &settings.rooms {
            self.runner(&room.id)
                .await
                .ensure_started(&settings)
                .await?;
        }
        let mut host_error = None;
        if settings.onboarded
            && settings.host.enabled
            && !self.host.state().await.running
            && let Err(e) = self.host.start(&settings.host, &settings.name).await
        {
            host_error = Some(e.to_string());
        }
        Ok(Attached {
            settings,
            host: self.host.state().await,
            host_error,
        })
    }

    /// One command of the core API, for the room with id `room` (which the settings must
    /// list). With no room, the command is not about one: `set-audio` goes to every
    /// room's peer (each keeps its devices), anything else (device lists, the microphone
    /// test) to the first room's.
    pub async fn command(&self, room: Option<&str>, command: Command) -> Result<(), SessionError> {
        let settings = self.settings().await;
        let targets: Vec<&str> = match room {
            Some(id) if settings.rooms.iter().any(|room| room.id == id) => vec![id],
            Some(id) => return Err(SessionError::UnknownRoom(id.to_owned())),
            None if matches!(command, Command::SetAudio { .. }) => {
                settings.rooms.iter().map(|room| room.id.as_str()).collect()
            }
            None => settings
                .rooms
                .first()
                .map(|room| room.id.as_str())
                .into_iter()
                .collect(),
        };
        if targets.is_empty() {
            return Err(SessionError::NoRoom);
        }
        for id in targets {
            self.runner(id)
                .await
                .send(command.clone(), &settings)
                .await?;
        }
        Ok(())
    }

    /// The room's mesh runner, made (not yet started) the first time it is asked for.
    async fn runner(&self, room: &str) -> Arc<MeshRunner> {
        self.rooms
            .lock()
            .await
            .entry(room.to_owned())
            .or_insert_with(|| {
                Arc::new(MeshRunner::new(
                    room,
                    self.sink.clone(),
                    self.overrides.clone(),
                    self.data_dir.clone(),
                ))
            })
            .clone()
    }

    /// Starts (or restarts, on a new port) the hosted server, and remembers it is wanted.
    pub async fn host_start(&self) -> Result<HostState, SessionError> {
        let settings = self.settings().await;
        let host = self.host.start(&settings.host, &settings.name).await?;
        self.remember_hosting(true).await?;
        Ok(host)
    }

    /// Stops the hosted server, and remembers it is not wanted.
    pub async fn host_stop(&self) -> Result<HostState, SessionError> {
        let host = self.host.stop().await;
        self.remember_hosting(false).await?;
        Ok(host)
    }

    /// Whether the server is wanted at the next start, saved.
    async fn remember_hosting(&self, enabled: bool) -> Result<(), SessionError> {
        let mut settings = self.settings().await;
        settings.host.enabled = enabled;
        self.save_settings(settings).await.map(|_| ())
    }

    pub async fn host_state(&self) -> HostState {
        self.host.state().await
    }

    /// Leaves every room cleanly (so others see us go at once) and stops the hosted server.
    pub async fn shutdown(&self) {
        let rooms: Vec<_> = std::mem::take(&mut *self.rooms.lock().await)
            .into_values()
            .collect();
        let leaving = rooms.iter().map(|runner| runner.shutdown());
        futures_util::future::join_all(leaving).await;
        self.host.stop().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use confab_mesh::Event;
    use confab_mesh::api::SignalingState;
    use tokio::sync::mpsc;

    use super::*;
    use crate::settings::{HostSettings, RoomSettings};

    struct Collect(mpsc::UnboundedSender<(String, Event)>);

    impl EventSink for Collect {
        fn event(&self, room: &str, event: Event) {
            let _ = self.0.send((room.to_owned(), event));
        }
    }

    /// The events until `wanted` matches one of `room`'s, for up to 10 s.
    async fn until(
        events: &mut mpsc::UnboundedReceiver<(String, Event)>,
        room: &str,
        wanted: impl Fn(&Event) -> bool,
    ) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some((from, event)) = events.recv().await {
                if from == room && wanted(&event) {
                    return;
                }
            }
            panic!("the events ended");
        })
        .await
        .expect("the event in time");
    }

    fn connected(event: &Event) -> bool {
        matches!(
            event,
            Event::Signaling {
                state: SignalingState::Connected,
                ..
            }
        )
    }

    /// Until the hosted server counts `peers` people, for up to 10 s.
    async fn until_hosting(session: &Session, peers: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while session.host_state().await.peers != peers {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the server's count in time");
    }

    fn room(id: &str, server: &str, name: &str) -> RoomSettings {
        RoomSettings {
            id: id.into(),
            server: server.into(),
            room: name.into(),
            password: String::new(),
        }
    }

    async fn connect(session: &Session, room: &RoomSettings) {
        session
            .command(
                Some(&room.id),
                Command::Connect {
                    server: room.server.clone(),
                    room: room.room.clone(),
                    name: "Ada".into(),
                    password: None,
                },
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_session_hosts_its_server_is_in_two_rooms_and_keeps_its_settings() {
        let dir = std::env::temp_dir().join(format!("confab-session-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (config_dir, data_dir) = (dir.join("config"), dir.join("data"));
        let overrides = Overrides {
            loopback_only: true,
            ..Overrides::default()
        };
        let (sink, mut events) = mpsc::unbounded_channel();
        let session = Session::open(
            &config_dir,
            &data_dir,
            overrides.clone(),
            Arc::new(Collect(sink)),
        );
        let mut settings = session.settings().await;
        settings.onboarded = true;
        settings.name = "Ada".into();
        settings.host = HostSettings {
            enabled: true,
            port: 0,
            lan: false,
        };
        session.save_settings(settings.clone()).await.unwrap();

        let attached = session.attach().await.unwrap();
        assert!(attached.host.running, "{:?}", attached.host_error);
        let server = attached.host.local_url.unwrap();
        let (lobby, team) = (room("r1", &server, "lobby"), room("r2", &server, "team"));
        settings.rooms = vec![lobby.clone(), team.clone()];
        session.save_settings(settings.clone()).await.unwrap();
        connect(&session, &lobby).await;
        until(&mut events, "r1", connected).await;
        connect(&session, &team).await;
        until(&mut events, "r2", connected).await;
        until_hosting(&session, 2).await;

        // A room that is not in the settings takes no commands.
        let unknown = session.command(Some("r9"), Command::Peers).await;
        assert!(
            matches!(unknown, Err(SessionError::UnknownRoom(_))),
            "{unknown:?}"
        );

        // Leaving one room (saving the settings without it) leaves only it.
        settings.rooms = vec![lobby];
        session.save_settings(settings).await.unwrap();
        until_hosting(&session, 1).await;
        session.command(Some("r1"), Command::Peers).await.unwrap();
        until(&mut events, "r1", |e| matches!(e, Event::Peers { .. })).await;

        // Stopping the server is remembered, in the file too, and so are the rooms.
        assert!(!session.host_stop().await.unwrap().running);
        let reopened = Session::open(
            &config_dir,
            &data_dir,
            overrides,
            Arc::new(Collect(mpsc::unbounded_channel().0)),
        );
        let kept = reopened.settings().await;
        assert_eq!(kept.name, "Ada");
        assert!(!kept.host.enabled);
        assert_eq!(kept.rooms.len(), 1);
        assert_eq!(kept.rooms[0].room, "lobby");
        session.shutdown().await;
        assert!(data_dir.join("identity").exists(), "the identity is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
