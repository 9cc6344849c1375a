//! What goes wrong, as the faces see it: the stable code of each kind of failure (the
//! `code` of an `error` event), and the mesh's own errors.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` event, serialised as the kebab-case strings docs/peer-api.md
/// lists. Faces branch on it; the message beside it is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorCode {
    // Passed on from the signaling server (PROTOCOL.md section 1).
    BadMessage,
    NotJoined,
    AlreadyJoined,
    UnknownPeer,
    RoomFull,
    BadPassword,
    UnsupportedVersion,
    TooLarge,
    RateLimited,
    /// A server code this version does not know.
    Unknown,
    // The peer's own.
    /// `connect` while connected.
    AlreadyConnected,
    /// No connection (or no description yet) to the peer or peers named.
    NotConnected,
    ServerUnreachable,
    /// A command with wrong fields.
    BadCommand,
    /// A peer's `signal.data` could not be used.
    BadSignal,
    /// An offer or answer failed.
    Negotiation,
    /// The WebRTC library refused something.
    #[serde(rename = "webrtc")]
    WebRtc,
    /// No path to a peer after the retries.
    IceFailed,
    /// An ICE server URL this peer cannot use.
    IceServerUnsupported,
    /// A TURN server refused the credentials.
    TurnAuthFailed,
    /// A chat-channel message could not be sent.
    SendFailed,
    /// A known name came with another key.
    IdentityChanged,
    /// The history store failed (chat goes on without it).
    Store,
    Busy,
    NotInCall,
    UnknownCall,
    Audio,
    AudioDevices,
    AudioIn,
    AudioOut,
    FileTransfer,
    FileUnreadable,
    FileUnwritable,
    UnknownFile,
}

/// The code as the wire writes it (for log lines).
impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(code)) => f.write_str(&code),
            _ => write!(f, "{self:?}"),
        }
    }
}

impl From<confab_proto::ErrorCode> for ErrorCode {
    fn from(code: confab_proto::ErrorCode) -> Self {
        use confab_proto::ErrorCode as Server;
        match code {
            Server::BadMessage => Self::BadMessage,
            Server::NotJoined => Self::NotJoined,
            Server::AlreadyJoined => Self::AlreadyJoined,
            Server::UnknownPeer => Self::UnknownPeer,
            Server::RoomFull => Self::RoomFull,
            Server::BadPassword => Self::BadPassword,
            Server::UnsupportedVersion => Self::UnsupportedVersion,
            Server::TooLarge => Self::TooLarge,
            Server::RateLimited => Self::RateLimited,
            // `Unknown`, and whatever a later protocol version adds.
            _ => Self::Unknown,
        }
    }
}

/// A cause from a library whose error types differ from call to call (the certificate's
/// generation, parsing and signing go through rcgen, webrtc and its crypto provider).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the mesh could not do something, with the cause kept as its `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The identity file could not be read or written.
    #[error("identity {}: {source}", path.display())]
    IdentityFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The identity's certificate could not be made, read or used (`what` says which).
    #[error("identity: {what}: {source}")]
    Identity {
        what: &'static str,
        #[source]
        source: Cause,
    },
    /// The WebRTC library refused to build a connection.
    #[error("WebRTC: {0}")]
    WebRtc(#[source] webrtc::error::Error),
    /// The store's folder could not be made.
    #[error("store {}: {source}", path.display())]
    StoreFolder {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store (SQLite) failed.
    #[error("store: {0}")]
    Store(#[source] rusqlite::Error),
}

impl MeshError {
    /// A certificate failure while doing `what`, for `map_err`.
    pub(crate) fn identity<E: Into<Cause>>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |source| Self::Identity {
            what,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_are_the_strings_faces_branch_on() {
        let json = |code: ErrorCode| serde_json::to_string(&code).unwrap();
        assert_eq!(json(ErrorCode::ServerUnreachable), "\"server-unreachable\"");
        assert_eq!(json(ErrorCode::WebRtc), "\"webrtc\"");
        assert_eq!(
            json(ErrorCode::IceServerUnsupported),
            "\"ice-server-unsupported\""
        );
        assert_eq!(ErrorCode::TurnAuthFailed.to_string(), "turn-auth-failed");
        for server in confab_proto::ErrorCode::ALL {
            assert_eq!(json(server.into()), format!("\"{}\"", server.as_str()));
        }
    }
}
