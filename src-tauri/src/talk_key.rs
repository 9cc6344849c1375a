//! Push-to-talk from anywhere on the desktop: a global shortcut held to talk, grabbed only
//! while push-to-talk is on (so it is not taken from other programs otherwise), and only
//! where the desktop lets a program grab keys (X11 does; Wayland compositors mostly do
//! not). Space in the window works either way. A press goes from here to the call's peer
//! (`call_room`), and the window is told only to show it: through the page, the IPC of a
//! webview under load made the microphone open up to 240 ms after the press.

use std::sync::Mutex;

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Emitter, Manager, Wry};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, ShortcutState};
use tokio::sync::mpsc;

use crate::AppState;
use crate::window::MAIN_WINDOW;

/// The shortcut, in the plugin's accelerator syntax and as the page shows it.
pub const TALK_SHORTCUT: &str = "Ctrl+Shift+Space";
/// The frontend event: `true` when the shortcut goes down, `false` when it comes up. The
/// app has opened or muted the microphone already: the page only shows it.
pub const TALK_KEY_EVENT: &str = "talk-key";

/// The plugin: each press and release opens or mutes the call's microphone, and is shown
/// in the window.
pub fn plugin() -> TauriPlugin<Wry> {
    let (presses, queue) = mpsc::unbounded_channel();
    let queue = Mutex::new(Some(queue));
    tauri_plugin_global_shortcut::Builder::new()
        .with_handler(move |app, _shortcut, event| {
            let held = event.state() == ShortcutState::Pressed;
            // One task applies them all, so that a release never overtakes its press.
            let unstarted = queue.lock().ok().and_then(|mut queue| queue.take());
            if let Some(queue) = unstarted {
                tauri::async_runtime::spawn(apply_presses(app.clone(), queue));
            }
            let _ = presses.send(held);
            if let Err(e) = app.emit_to(MAIN_WINDOW, TALK_KEY_EVENT, held) {
                log::warn!("the talk key could not reach the window: {e}");
            }
        })
        .build()
}

/// Opens the call's microphone while the shortcut is held, and mutes it when released.
async fn apply_presses(app: AppHandle, mut queue: mpsc::UnboundedReceiver<bool>) {
    while let Some(held) = queue.recv().await {
        if let Some(state) = app.try_state::<AppState>() {
            state.mute_call(!held).await;
        }
    }
}

/// Grabs the shortcut (`enabled`) or lets it go. Returns the shortcut while it is grabbed;
/// `None` when it is not, also when the desktop refused it (said once in the log).
pub fn apply(app: &AppHandle, enabled: bool) -> Option<&'static str> {
    let shortcuts = app.global_shortcut();
    let grabbed = shortcuts.is_registered(TALK_SHORTCUT);
    if !enabled {
        if grabbed && let Err(e) = shortcuts.unregister(TALK_SHORTCUT) {
            log::warn!("could not let go of the talk shortcut {TALK_SHORTCUT}: {e}");
        }
        return None;
    }
    if grabbed {
        return Some(TALK_SHORTCUT);
    }
    match shortcuts.register(TALK_SHORTCUT) {
        Ok(()) => Some(TALK_SHORTCUT),
        Err(e) => {
            log::warn!(
                "push-to-talk works in the window only: the desktop did not give {TALK_SHORTCUT} to Confab ({e})"
            );
            None
        }
    }
}
