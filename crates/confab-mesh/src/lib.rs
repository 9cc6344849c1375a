//! The Confab peer: a WebRTC full mesh over the signaling server, with chat on data
//! channels, driven by the commands and events of PEER-API.md.
//!
//! Layout:
//! - [`api`]: [`Command`] and [`Event`], the serde types every face speaks.
//! - [`error`]: [`ErrorCode`], the stable code of every `error` event, and [`MeshError`].
//! - [`mesh`]: [`Mesh::start`] runs one peer: signaling with reconnect and resume, one
//!   task per remote peer, chat routing and de-duplication.
//! - `call_control`: call control as plain data (invitations, crossing calls, newcomers):
//!   inputs in, actions out, tested without IO; `mesh/call.rs` carries the actions out.
//! - `chat_outbox`: the chat outbox as plain data (readers, open channels, what waits, what
//!   goes again on a new channel); `mesh/chat.rs` carries out its deliveries.
//! - `peer`: one remote peer's connection: perfect negotiation, trickle ICE, the `chat`
//!   channel, stats.
//! - [`transport`]: how connections are built (ICE servers, interfaces, timers, buffers).
//! - [`identity`]: the DTLS certificate a peer is known by, kept from run to run.
//! - [`files`]: file transfer on `file:<id>` channels, and what lands on disk.
//! - [`store`]: chat history and delivery states, verified peers, unfinished files.
//! - [`voice`]: our Opus track on a connection, fed from the call.
//! - `stats`: the selected candidate pair and what kind of path it is.
//! - [`safety`]: safety codes, which users compare to know their connection is direct.
//! - [`runtime`]: the async runtime a peer runs on, its threads raised for calls.

pub mod api;
mod call_control;
mod chat_outbox;
pub mod connection_test;
mod engine;
pub mod error;
pub mod files;
mod history;
pub mod identity;
pub mod mesh;
mod negotiation;
mod peer;
pub mod runtime;
pub mod safety;
mod stats;
pub mod store;
pub mod transport;
mod turn_check;
mod turn_tunnel;
pub mod voice;

pub use api::{Command, Event};
/// The voice input and output a [`MeshConfig`] names.
pub use confab_audio::open::{SinkSpec, SourceSpec};
pub use error::{ErrorCode, MeshError};
pub use identity::Identity;
pub use mesh::{Mesh, MeshConfig, MeshEvents, MeshHandle};

pub use transport::{IceServer, Mdns, TransportConfig};
