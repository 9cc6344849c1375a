//! Invite links (`confab://join?server=…&room=…`) the desktop opens with the app: the one
//! it was started with, and those opened while it runs (the single-instance plugin hands a
//! second start's link to this one instead of opening a second window). The window gets
//! each as the event `invite-opened` and asks before it joins; one that comes before the
//! window is ready waits for `attach`.

use std::sync::Mutex;

use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_deep_link::DeepLinkExt;

use crate::AppState;
use crate::window::{self, MAIN_WINDOW};

/// The frontend event carrying an opened invite link.
pub const INVITE_EVENT: &str = "invite-opened";
/// The scheme tauri.conf.json registers with the desktop.
const SCHEME: &str = "confab";

#[derive(Debug, Default)]
pub struct Invites {
    state: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    attached: bool,
    link: Option<String>,
}

impl Invites {
    /// The window is ready: the link it should offer, if one came before it.
    pub fn attached(&self) -> Option<String> {
        let mut state = self.lock();
        state.attached = true;
        state.link.take()
    }

    fn opened(&self, app: &AppHandle, link: String) {
        let mut state = self.lock();
        if !state.attached {
            state.link = Some(link);
            return;
        }
        if let Err(e) = app.emit_to(MAIN_WINDOW, INVITE_EVENT, &link) {
            log::warn!("cannot hand the invite to the window: {e}");
        }
    }

    /// A poisoned lock only means a holder panicked; the state is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Takes the link the app was started with, and listens for those opened later.
pub fn listen(app: &AppHandle) {
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        for url in event.urls() {
            deliver(&handle, &url);
        }
    });
    match app.deep_link().get_current() {
        Ok(Some(urls)) => {
            for url in urls {
                deliver(app, &url);
            }
        }
        Ok(None) => {}
        Err(e) => log::warn!("cannot read the link the app was opened with: {e}"),
    }
}

fn deliver(app: &AppHandle, url: &tauri::Url) {
    if url.scheme() != SCHEME {
        return;
    }
    log::info!("invite link opened");
    if let Some(state) = app.try_state::<AppState>() {
        state.invites.opened(app, url.to_string());
    }
    window::bring_forward(app);
}
