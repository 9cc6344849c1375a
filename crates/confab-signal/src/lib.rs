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
pub mod cluster;
pub mod config;
mod endpoint;
mod http;
pub mod ice;
pub mod lan;
mod metrics;
mod password;
mod rate_limit;
mod registry;
mod rooms;
pub mod server;
mod session;
mod shared;
pub mod tls;

pub use client::{ClientError, ClientOptions, SignalClient, Welcome};
pub use cluster::{ClusterConfig, ClusterError};
pub use config::ServerConfig;
pub use ice::{IceConfig, IceConfigError};
pub use server::{ServerError, ServerHandle, ServerState, run};
pub use tls::{TlsConfig, TlsError};
