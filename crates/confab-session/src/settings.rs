//! What the user chose, kept as JSON in the app's config folder across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SessionError;

/// The port a hosted server listens on unless the user picks another: the one
/// `confab server` uses, so the URL people share is the same either way.
pub const DEFAULT_PORT: u16 = 8787;

/// Every setting. Missing fields take their defaults, so an older file still loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// False until the user has been through the first-run screen.
    pub onboarded: bool,
    pub name: String,
    /// The rooms the app is in, each joined at every start, in the sidebar's order.
    pub rooms: Vec<RoomSettings>,
    /// `stun:HOST:PORT` or `turn:USER:PASS@HOST:PORT`, one per entry.
    pub ice_servers: Vec<String>,
    /// Microphone: `default`, `device:NAME`, `none` (the core's forms).
    pub audio_in: String,
    /// Speakers: `default`, `device:NAME`, `none`.
    pub audio_out: String,
    /// The microphone's processing, as last switched.
    pub noise_suppression: bool,
    pub echo_cancellation: bool,
    /// In a call, the microphone is open only while the talk key is held (the window
    /// does this; the shell only keeps the choice).
    pub push_to_talk: bool,
    /// How loud each peer plays here, by key (DTLS fingerprint): 0 to 2, 1 as sent. A
    /// peer not listed plays at 1.
    pub volumes: BTreeMap<String, f32>,
    pub host: HostSettings,
}

/// One room the app is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// The window's name for it; the app gives each room one, never reused for another
    /// while the room is kept.
    pub id: String,
    /// The signaling server's WebSocket URL.
    pub server: String,
    pub room: String,
    /// Empty: the room has no password.
    #[serde(default)]
    pub password: String,
}

impl RoomSettings {
    /// The room everyone starts in: the app's own server's lobby.
    fn first() -> Self {
        Self {
            id: "r1".to_owned(),
            server: format!("ws://127.0.0.1:{DEFAULT_PORT}/ws"),
            room: "lobby".to_owned(),
            password: String::new(),
        }
    }
}

/// The signaling server this app hosts for others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostSettings {
    /// Start it whenever the app starts.
    pub enabled: bool,
    pub port: u16,
    /// Listen on every interface (others on the network can join), or on 127.0.0.1 only.
    pub lan: bool,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            port: DEFAULT_PORT,
            lan: true,
        }
    }
}

impl Default for Settings {
    /// Out of the box the app hosts a server and joins its own room, so it works alone on
    /// a network with nothing else set up.
    fn default() -> Self {
        Self {
            onboarded: false,
            name: default_name(),
            rooms: vec![RoomSettings::first()],
            ice_servers: Vec::new(),
            audio_in: "default".to_owned(),
            audio_out: "default".to_owned(),
            noise_suppression: true,
            echo_cancellation: true,
            push_to_talk: false,
            volumes: BTreeMap::new(),
            host: HostSettings::default(),
        }
    }
}

/// The login name, capitalised, as a first guess at a display name.
fn default_name() -> String {
    let login = std::env::var("USER").unwrap_or_default();
    let mut chars = login.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Me".to_owned(),
    }
}

/// Where the settings live, and their current value.
#[derive(Debug)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("settings.json"),
        }
    }

    /// The saved settings, or the defaults when there are none yet. A file that cannot be
    /// parsed is kept aside (`settings.json.bad`) rather than overwritten unseen.
    pub fn load(&self) -> Settings {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(_) => return Settings::default(),
        };
        match serde_json::from_str(&text).and_then(one_room_to_rooms) {
            Ok(settings) => settings,
            Err(e) => {
                tracing::warn!("{}: {e}; starting from the defaults", self.path.display());
                let _ = std::fs::rename(&self.path, self.path.with_extension("json.bad"));
                Settings::default()
            }
        }
    }

    /// Writes to a temporary file and renames it over, so a crash mid-write never leaves
    /// half a file.
    pub fn save(&self, settings: &Settings) -> Result<(), SessionError> {
        let fail =
            |e: std::io::Error| SessionError::Settings(format!("{}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = serde_json::to_string_pretty(settings)
            .map_err(|e| SessionError::Settings(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}

/// A file from before the app could be in several rooms names one room with top-level
/// `server`, `room` and `password`; that room becomes the list's only one.
fn one_room_to_rooms(mut value: serde_json::Value) -> serde_json::Result<Settings> {
    if let Some(object) = value.as_object_mut()
        && !object.contains_key("rooms")
        && (object.contains_key("server") || object.contains_key("room"))
    {
        let first = RoomSettings::first();
        let mut take = |field: &str, default: String| match object.remove(field) {
            Some(serde_json::Value::String(text)) => text,
            _ => default,
        };
        let room = RoomSettings {
            server: take("server", first.server),
            room: take("room", first.room),
            password: take("password", first.password),
            id: first.id,
        };
        object.insert("rooms".to_owned(), serde_json::json!([room]));
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("confab-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn settings_survive_a_save_and_load() {
        let dir = temp_dir("roundtrip");
        let file = SettingsFile::new(&dir);
        assert_eq!(file.load(), Settings::default());
        let settings = Settings {
            name: "Ada".into(),
            host: HostSettings {
                port: 9000,
                ..HostSettings::default()
            },
            ice_servers: vec!["stun:example.org:3478".into()],
            noise_suppression: false,
            volumes: BTreeMap::from([("key-ada".to_owned(), 0.5)]),
            ..Settings::default()
        };
        file.save(&settings).unwrap();
        assert_eq!(file.load(), settings);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_from_the_one_room_app_keeps_its_room() {
        let dir = temp_dir("one-room");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("settings.json"),
            r#"{"name":"Bo","server":"ws://192.0.2.2:8787/ws","room":"team","password":"pw"}"#,
        )
        .unwrap();
        let loaded = SettingsFile::new(&dir).load();
        assert_eq!(loaded.name, "Bo");
        assert_eq!(
            loaded.rooms,
            vec![RoomSettings {
                id: "r1".into(),
                server: "ws://192.0.2.2:8787/ws".into(),
                room: "team".into(),
                password: "pw".into(),
            }]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_fields_take_defaults_and_a_broken_file_is_kept_aside() {
        let dir = temp_dir("partial");
        std::fs::create_dir_all(&dir).unwrap();
        let file = SettingsFile::new(&dir);
        std::fs::write(
            dir.join("settings.json"),
            r#"{"name":"Bo","host":{"port":1234}}"#,
        )
        .unwrap();
        let loaded = file.load();
        assert_eq!(loaded.name, "Bo");
        assert_eq!(loaded.host.port, 1234);
        assert!(loaded.host.enabled);
        assert_eq!(loaded.rooms, vec![RoomSettings::first()]);
        assert!(loaded.noise_suppression && loaded.echo_cancellation);
        assert!(loaded.volumes.is_empty());

        std::fs::write(dir.join("settings.json"), "{not json").unwrap();
        assert_eq!(file.load(), Settings::default());
        assert!(dir.join("settings.json.bad").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
