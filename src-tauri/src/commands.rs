//! The commands the page invokes. `peer_command` carries the core API (docs/peer-api.md);
//! the others are the shell's own: settings, the hosted server, notifications, links and
//! the file chooser.

use std::time::Duration;

use confab_mesh::connection_test;
use confab_mesh::{Command, IceServer};
use confab_signal::lan::FoundServer;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, State};
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_notification::NotificationExt;

use confab_session::host::HostState;
use confab_session::settings::Settings;

use crate::AppState;
use crate::error::ShellError;
use crate::window::{MAIN_WINDOW, RoomEvent};

/// How long the app listens for servers' announcements.
const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// What the page needs to draw its first frame.
#[derive(Debug, Serialize)]
pub struct Boot {
    settings: Settings,
    host: HostState,
    /// Why the hosted server did not start, when Settings asks for one and it failed.
    host_error: Option<String>,
    /// Where accepted files go.
    downloads: Option<String>,
    /// An invite link the app was opened with, for the window to offer.
    invite: Option<String>,
}

/// The page is ready for events: `streams` carries the high-rate ones. Starts the core
/// peer and, when Settings asks for it, the hosted server.
#[tauri::command]
pub async fn attach(
    streams: Channel<RoomEvent>,
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<Boot, ShellError> {
    state.forwarder.attach(streams);
    let attached = state.session.attach().await?;
    let downloads = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .ok()
        .map(|dir| dir.display().to_string());
    Ok(Boot {
        settings: attached.settings,
        host: attached.host,
        host_error: attached.host_error,
        downloads,
        invite: state.invites.attached(),
    })
}

/// One command of the core API, as its JSON (`{"cmd": "chat", "text": "hi"}`), for the
/// room with id `room`; with none, for no room in particular (`Session::command`).
#[tauri::command]
pub async fn peer_command(
    command: serde_json::Value,
    room: Option<String>,
    state: State<'_, AppState>,
) -> Result<(), ShellError> {
    let command: Command =
        serde_json::from_value(command).map_err(|e| ShellError::BadCommand(e.to_string()))?;
    Ok(state.session.command(room.as_deref(), command).await?)
}

/// Saves the settings. Those the core is built with (name, ICE servers, devices) apply
/// from a room's next `connect`; the hosted server's are applied by `host_start`. A room
/// taken out of the list is left.
#[tauri::command]
pub async fn settings_set(
    settings: Settings,
    state: State<'_, AppState>,
) -> Result<Settings, ShellError> {
    Ok(state.session.save_settings(settings).await?)
}

/// Starts (or restarts, on a new port) the hosted server, and remembers it is wanted.
#[tauri::command]
pub async fn host_start(state: State<'_, AppState>) -> Result<HostState, ShellError> {
    Ok(state.session.host_start().await?)
}

#[tauri::command]
pub async fn host_stop(state: State<'_, AppState>) -> Result<HostState, ShellError> {
    Ok(state.session.host_stop().await?)
}

/// Push-to-talk is on (`enabled`) or off: grabs the desktop-wide talk shortcut or lets it
/// go. Answers the shortcut while it is grabbed, `null` otherwise (also when the desktop
/// does not allow it).
#[tauri::command]
pub fn talk_shortcut(enabled: bool, app: AppHandle) -> Option<&'static str> {
    crate::talk_key::apply(&app, enabled)
}

/// The Confab servers announced on the local network (listening for about 2 s).
#[tauri::command]
pub async fn discover_servers() -> Result<Vec<FoundServer>, ShellError> {
    confab_signal::lan::discover(DISCOVERY_WAIT)
        .await
        .map_err(|e| ShellError::Discovery(e.to_string()))
}

/// The connection test against `server`, with the user's own ICE servers (one spec per
/// entry, as Settings keeps them): what works from here, in plain words.
#[tauri::command]
pub async fn connection_test(
    server: String,
    ice_servers: Vec<String>,
) -> Result<Vec<connection_test::Finding>, ShellError> {
    let ice = ice_servers
        .iter()
        .map(|spec| IceServer::parse(spec).map_err(ShellError::BadCommand))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(connection_test::run(&server, &ice).await)
}

#[tauri::command]
pub async fn host_state(state: State<'_, AppState>) -> Result<HostState, ShellError> {
    Ok(state.session.host_state().await)
}

/// A desktop notification, shown only when the window is not focused (the user is
/// elsewhere). Returns whether one was shown.
#[tauri::command]
pub fn notify(title: String, body: String, app: AppHandle) -> bool {
    let focused = app
        .get_webview_window(MAIN_WINDOW)
        .and_then(|window| window.is_focused().ok())
        .unwrap_or(false);
    if focused {
        return false;
    }
    match app.notification().builder().title(title).body(body).show() {
        Ok(()) => true,
        Err(e) => {
            // No notification daemon (a bare X server): the in-app badges still show it.
            log::debug!("notification not shown: {e}");
            false
        }
    }
}

/// An invite link as a QR code, an SVG document, for a phone or another computer's camera.
#[tauri::command]
pub fn invite_qr(link: String) -> Result<String, ShellError> {
    let code = qrcode::QrCode::new(link.as_bytes())
        .map_err(|e| ShellError::BadCommand(format!("no QR code for this link: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(192, 192)
        .quiet_zone(true)
        .build())
}

/// Opens a link from a chat in the desktop's browser. Only web and mail links: a message
/// must not be able to start arbitrary programs.
#[tauri::command]
pub fn open_url(url: String) -> Result<(), ShellError> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:"))
    {
        return Err(ShellError::BadCommand(format!("not a web link: {url}")));
    }
    std::process::Command::new("xdg-open")
        .arg(&url)
        .spawn()
        .map(|mut child| {
            // Reap it when it exits, so no zombie stays behind.
            std::thread::spawn(move || child.wait());
        })
        .map_err(|e| ShellError::BadCommand(format!("cannot open a browser: {e}")))
}

/// Asks, with the desktop's file chooser, for a file to send; `None` when cancelled.
#[tauri::command]
pub async fn choose_file(app: AppHandle) -> Result<Option<String>, ShellError> {
    let (picked_tx, picked) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title("Send a file")
        .pick_file(move |file| {
            let _ = picked_tx.send(file);
        });
    let file = picked
        .await
        .map_err(|_| ShellError::BadCommand("the file chooser closed without an answer".into()))?;
    Ok(file
        .and_then(|file| file.into_path().ok())
        .map(|path| path.display().to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_invite_becomes_an_svg_qr_code() {
        let svg =
            invite_qr("confab://join?server=ws%3A%2F%2F192.0.2.1%3A8787%2Fws&room=team".into())
                .unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<path"));
    }
}
