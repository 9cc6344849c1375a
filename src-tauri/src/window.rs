//! The one place where core events become frontend events.
//!
//! Most go to the main window as the global event `peer-event`, in the JSON of
//! docs/peer-api.md with the id of the room whose peer gave it added (`room_id`). The
//! high-rate ones (`level` every 100 ms per peer in a call,
//! `file-progress` every 250 ms per transfer) go over the `tauri::ipc::Channel` the page
//! handed to `attach`, since global events are not made for that rate. `log` events also go
//! to the log file (errors too: the core logs each one it reports).

use std::sync::Mutex;

use confab_mesh::Event;
use confab_mesh::api::LogLevel;
use confab_session::EventSink;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Emitter, Manager};

use crate::call_room::CallRooms;

/// The window the app shows (tauri.conf.json's only window).
pub const MAIN_WINDOW: &str = "main";
/// The frontend event carrying one core event.
pub const PEER_EVENT: &str = "peer-event";

/// A core event as the page gets it: the event's own fields and its room's id (not
/// `room`, which a `signaling` event has: the room's name).
#[derive(Debug, Clone, Serialize)]
pub struct RoomEvent {
    room_id: String,
    #[serde(flatten)]
    event: Event,
}

/// Where events go.
pub struct Forwarder {
    app: AppHandle,
    /// The page's stream channel; replaced when the page reloads and attaches again.
    streams: Mutex<Option<Channel<RoomEvent>>>,
    /// Which room has the call, for the talk shortcut.
    calls: CallRooms,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Channels have no Debug of their own; whether one is attached is what matters.
        f.debug_struct("Forwarder")
            .field("attached", &self.lock().is_some())
            .finish()
    }
}

impl Forwarder {
    pub fn new(app: AppHandle) -> Self {
        Self {
            app,
            streams: Mutex::new(None),
            calls: CallRooms::default(),
        }
    }

    /// The room whose call rings or runs, as the events passing through here tell.
    pub fn call_room(&self) -> Option<String> {
        self.calls.current()
    }

    pub fn attach(&self, channel: Channel<RoomEvent>) {
        *self.lock() = Some(channel);
    }

    fn forward(&self, room: &str, event: Event) {
        self.calls.follow(room, &event);
        let streamed = matches!(event, Event::Level { .. } | Event::FileProgress { .. });
        if let Event::Log {
            level, msg, peer, ..
        } = &event
        {
            write_log(room, *level, msg, peer.as_deref());
        }
        let event = RoomEvent {
            room_id: room.to_owned(),
            event,
        };
        match streamed {
            true => {
                if let Some(channel) = self.lock().as_ref()
                    && let Err(e) = channel.send(event)
                {
                    log::debug!("stream channel: {e}");
                }
            }
            false => {
                if let Err(e) = self.app.emit_to(MAIN_WINDOW, PEER_EVENT, &event) {
                    log::warn!("cannot reach the window: {e}");
                }
            }
        }
    }

    /// A poisoned lock only means a send panicked; the channel itself is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Channel<RoomEvent>>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Brings the main window to the front (a second start of the app, an invite opened).
pub fn bring_forward(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

impl EventSink for Forwarder {
    fn event(&self, room: &str, event: Event) {
        self.forward(room, event);
    }
}

/// The core's log lines go to the log file (tauri-plugin-log) at their own level, with
/// their room's id.
fn write_log(room: &str, level: LogLevel, msg: &str, peer: Option<&str>) {
    let level = match level {
        LogLevel::Debug => log::Level::Debug,
        LogLevel::Info => log::Level::Info,
        LogLevel::Warn => log::Level::Warn,
        LogLevel::Error => log::Level::Error,
    };
    match peer {
        Some(peer) => log::log!(target: "confab::core", level, "{room} [{peer}] {msg}"),
        None => log::log!(target: "confab::core", level, "{room} {msg}"),
    }
}
