//! One app session: the settings as saved, the core peer built from them, and the server
//! the app may host. A window calls these; nothing here knows about windows.

use std::path::Path;
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

#[derive(Debug)]
pub struct Session {
    settings_file: SettingsFile,
    settings: Mutex<Settings>,
    mesh: MeshRunner,
    host: Host,
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
            mesh: MeshRunner::new(sink, overrides, data_dir.to_owned()),
            host: Host::default(),
        }
    }

    pub async fn settings(&self) -> Settings {
        self.settings.lock().await.clone()
    }

    /// Saves the settings. Those the core is built with (name, ICE servers) apply from the
    /// next `connect`; the hosted server's from the next [`Session::host_start`].
    pub async fn save_settings(&self, settings: Settings) -> Result<Settings, SessionError> {
        let mut current = self.settings.lock().await;
        self.settings_file.save(&settings)?;
        *current = settings.clone();
        Ok(settings)
    }

    /// The window is ready for events: starts the core peer and, when the settings ask for
    /// it (and the first run is through), the hosted server.
    pub async fn attach(&self) -> Result<Attached, SessionError> {
        let settings = self.settings().await;
        self.mesh.ensure_started(&settings).await?;
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

    /// One command of the core API.
    pub async fn command(&self, command: Command) -> Result<(), SessionError> {
        let settings = self.settings().await;
        self.mesh.send(command, &settings).await
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

    /// Leaves the room cleanly (so others see us go at once) and stops the hosted server.
    pub async fn shutdown(&self) {
        self.mesh.shutdown().await;
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
    use crate::settings::HostSettings;

    struct Collect(mpsc::UnboundedSender<Event>);

    impl EventSink for Collect {
        fn event(&self, event: Event) {
            let _ = self.0.send(event);
        }
    }

    /// The events until `wanted` matches one, for up to 10 s.
    async fn until(events: &mut mpsc::UnboundedReceiver<Event>, wanted: impl Fn(&Event) -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = events.recv().await {
                if wanted(&event) {
                    return;
                }
            }
            panic!("the events ended");
        })
        .await
        .expect("the event in time");
    }

    #[tokio::test]
    async fn a_session_hosts_its_server_joins_its_room_and_keeps_its_settings() {
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
        session.save_settings(settings).await.unwrap();

        let attached = session.attach().await.unwrap();
        assert!(attached.host.running, "{:?}", attached.host_error);
        let server = attached.host.local_url.unwrap();
        session
            .command(Command::Connect {
                server,
                room: "lobby".into(),
                name: "Ada".into(),
                password: None,
            })
            .await
            .unwrap();
        until(&mut events, |e| {
            matches!(
                e,
                Event::Signaling {
                    state: SignalingState::Connected,
                    ..
                }
            )
        })
        .await;
        assert_eq!(session.host_state().await.peers, 1);

        // Stopping the server is remembered, in the file too.
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
        session.shutdown().await;
        assert!(data_dir.join("identity").exists(), "the identity is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
