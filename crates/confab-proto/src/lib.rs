//! The wire types of the Confab protocol, version 1, and nothing else: no IO.
//!
//! Layout:
//! - [`signaling`]: the JSON frames between a client and the signaling server
//!   (PROTOCOL.md section 1), and the `signal.data` payloads peers relay through it.
//! - [`peer`]: the JSON messages on the `chat` data channel (section 2).
//! - [`frame`]: parsing a text frame into one of those types with an error that says
//!   what was wrong, so a receiver can answer bad input instead of dropping it silently.
//!
//! The server treats `signal.data` as opaque JSON; only peers look inside it.

pub mod frame;
pub mod peer;
pub mod signaling;

pub use frame::FrameError;
pub use peer::{ChatScope, HistoryBound, HistoryRange, PeerMessage};
pub use signaling::{
    ClientFrame, ErrorCode, IceCandidate, IceServerInfo, Join, PeerInfo, SdpType, ServerFrame,
    SessionDescription, SignalData,
};

/// The protocol version this crate speaks, sent in every `join`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest room or display name a `join` may carry, in characters.
pub const MAX_NAME_CHARS: usize = 64;
