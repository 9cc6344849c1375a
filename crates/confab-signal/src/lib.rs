//! The Confab signaling server, as a library, and a client for it (PROTOCOL.md section 1).
//!
//! Layout:
//! - [`server`]: [`run`] serves until a shutdown token fires; [`ServerHandle`] starts it on
//!   a background task for the desktop app's "host a server" toggle and for tests.
//! - [`config`]: the limits, each with a sane default ([`ServerConfig`]).
//! - [`client`]: [`SignalClient`]: connect, join, send, receive, with typed errors.
//! - [`lan`]: DNS-SD on the local network: a server announces itself, [`lan::discover`]
//!   lists the servers found.
//! - [`ice`]: the STUN and TURN servers a `welcome` hands out, with short-lived TURN
//!   credentials ([`IceConfig`]).
//! - `registry`: room membership, passwords, resume tokens and grace periods as plain data
//!   with no IO and no clock, so its rules are tested in microseconds.
//! - `shared`: what every socket of a server shares (the registry under its lock, the
//!   limits, metrics, relay and cluster).
//! - `session`: one task per WebSocket: limits, keepalive, and the room's decisions.
//! - `rooms`: what a session asks of its room, in this server's registry or, in a
//!   cluster, in the owner's ([`cluster`]: several servers sharing rooms over NATS);
//!   `endpoint`: where the registry's frames go, a socket here or on another server.
//! - `http`: the one port's plain HTTP side (`/healthz`, `/metrics`, the browser page from
//!   `web/`) and the upgrade to `/ws`.
//! - `metrics`, `rate_limit`, `password`, `tls`: one small job each.

pub mod client;
pub mod tls;

pub use client::{ClientError, ClientOptions, SignalClient, Welcome};
pub use tls::{TlsConfig, TlsError};

#[cfg(feature = "server")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
mod endpoint;
#[cfg(feature = "server")]
mod http;
#[cfg(feature = "server")]
pub mod ice;
#[cfg(feature = "server")]
pub mod lan;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod password;
#[cfg(feature = "server")]
mod rate_limit;
#[cfg(feature = "server")]
mod registry;
#[cfg(feature = "server")]
mod rooms;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod session;
#[cfg(feature = "server")]
mod shared;

#[cfg(feature = "server")]
pub use cluster::{ClusterConfig, ClusterError};
#[cfg(feature = "server")]
pub use config::ServerConfig;
#[cfg(feature = "server")]
pub use ice::{IceConfig, IceConfigError};
#[cfg(feature = "server")]
pub use server::{ServerError, ServerHandle, ServerState, run};
