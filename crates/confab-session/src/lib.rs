//! What a Confab app keeps between its window and its core, with no window in it: the
//! settings file, the core peer started and restarted as settings change, the signaling
//! server the app may host (with its relay and LAN announcement), and the transport rules
//! the app and the headless `confab peer` share. The desktop shell maps these to Tauri
//! commands and events; a test drives them directly.
//!
//! - [`Session`]: settings, the mesh and the hosted server of one app.
//! - [`settings`]: what the user chose, kept as JSON across restarts.
//! - [`host`]: a signaling server hosted in-process for others to join.
//! - [`transport`]: where a mesh gathers candidates and with which ICE servers.
//! - [`Overrides`]: switches tests set through the environment.
//! - [`EventSink`]: where the core's events go.

mod error;
pub mod host;
mod overrides;
mod runner;
mod session;
pub mod settings;
pub mod transport;

pub use error::SessionError;
pub use overrides::Overrides;
pub use runner::EventSink;
pub use session::{Attached, Session};
