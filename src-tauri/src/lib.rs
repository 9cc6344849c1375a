//! Confab's desktop app: a thin Tauri shell over the core crates. What is not about the
//! window (settings, the core peer, the hosted server) is `confab_session`'s.
//!
//! Layout:
//! - [`commands`]: what the page invokes: the core API in one command, and the shell's own
//!   (settings, the hosted server, notifications, links, the file chooser).
//! - [`window`]: the one place where core events become frontend events.
//! - [`invites`]: `confab://` invite links the desktop opens with the app.
//! - [`talk_key`]: push-to-talk from anywhere on the desktop (a global shortcut).
//! - [`call_room`]: which room has the call, for the talk shortcut to speak into.
//! - [`error`]: errors as the page sees them, `{code, message}`.

pub mod call_room;
pub mod commands;
pub mod error;
pub mod invites;
pub mod talk_key;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

use confab_session::{Overrides, Session};
use tauri::{Manager, RunEvent};
use tauri_plugin_log::{Target, TargetKind};

use crate::error::ShellError;
use crate::invites::Invites;
use crate::window::Forwarder;

/// How long leaving the room may take when the app closes.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything the commands share.
#[derive(Debug)]
pub struct AppState {
    session: Session,
    forwarder: Arc<Forwarder>,
    invites: Invites,
}

impl AppState {
    /// Mutes or opens the microphone of the call, wherever it is; nothing without one.
    pub async fn mute_call(&self, muted: bool) {
        let Some(room) = self.forwarder.call_room() else {
            return;
        };
        let mute = confab_mesh::Command::Mute { muted };
        if let Err(e) = self.session.command(Some(&room), mute).await {
            log::warn!("the talk shortcut could not reach the call in {room}: {e}");
        }
    }
}

fn build_state(app: &tauri::AppHandle) -> Result<AppState, ShellError> {
    let paths = app.path();
    let config_dir = paths
        .app_config_dir()
        .map_err(|_| ShellError::Folder("settings"))?;
    let data_dir = paths
        .app_data_dir()
        .map_err(|_| ShellError::Folder("history"))?;
    let forwarder = Arc::new(Forwarder::new(app.clone()));
    let session = Session::open(
        &config_dir,
        &data_dir,
        Overrides::from_env(),
        forwarder.clone(),
    );
    Ok(AppState {
        session,
        forwarder,
        invites: Invites::default(),
    })
}

/// Builds and runs the app until its window closes.
pub fn run() {
    // The core's calls run on Tauri's async runtime: one whose threads carry packets raised.
    let runtime = match confab_mesh::runtime::for_calls() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("confab: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    tauri::async_runtime::set(runtime.handle().clone());
    let log = tauri_plugin_log::Builder::new()
        .targets([
            Target::new(TargetKind::LogDir {
                file_name: Some("confab".to_owned()),
            }),
            Target::new(TargetKind::Stderr),
        ])
        .level(log::LevelFilter::Info)
        // The WebRTC stack (webrtc, rtc_ice, rtc_dtls…) narrates every state change; the
        // core's own `log` events already say what matters, so only its warnings go in.
        .filter(|metadata| {
            !(metadata.target().starts_with("webrtc") || metadata.target().starts_with("rtc"))
                || metadata.level() <= log::Level::Warn
        })
        .build();
    let app = tauri::Builder::default()
        // First, so that a second start goes no further than handing over its arguments
        // (its invite link goes on to the deep-link plugin).
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            window::bring_forward(app);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(log)
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(talk_key::plugin())
        .setup(|app| {
            let state = build_state(app.handle())?;
            app.manage(state);
            invites::listen(app.handle());
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::attach,
            commands::peer_command,
            commands::settings_set,
            commands::host_start,
            commands::host_stop,
            commands::host_state,
            commands::discover_servers,
            commands::talk_shortcut,
            commands::connection_test,
            commands::invite_qr,
            commands::notify,
            commands::open_url,
            commands::choose_file,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("confab: cannot start the desktop app: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        // Closing: the single-instance name goes first, so that Confab started again
        // while this one is still leaving its room opens a window, instead of handing its
        // arguments to this one and exiting.
        if let RunEvent::ExitRequested { .. } = event {
            tauri_plugin_single_instance::destroy(app);
        }
        if let RunEvent::Exit = event
            && let Some(state) = app.try_state::<AppState>()
        {
            // Leave the room cleanly so others see us go at once, not after a timeout.
            tauri::async_runtime::block_on(async {
                let _ = tokio::time::timeout(LEAVE_TIMEOUT, state.session.shutdown()).await;
            });
        }
    });
}
