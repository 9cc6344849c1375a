//! Signaling frames (PROTOCOL.md section 1): JSON text frames over a WebSocket at `/ws`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MAX_NAME_CHARS;
use crate::frame::{FrameError, from_tagged_value, parse_tagged};

/// A peer as the server announces it: its server-chosen id and its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: String,
    pub name: String,
}

/// A STUN or TURN server, in the shape of the browser's `RTCIceServer`: `welcome` hands
/// these out and a page passes them straight to `RTCPeerConnection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerInfo {
    /// `stun:`, `turn:` or `turns:` URLs of one server. A browser may send one string
    /// instead of an array; both are read.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(d)? {
        Urls::One(url) => vec![url],
        Urls::Many(urls) => urls,
    })
}

/// The first frame a client sends on a new socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub room: String,
    pub name: String,
    pub version: u32,
    /// Sets the password of an empty room; must match it for a room that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The `token` of this client's last `welcome`, to get its old id back after a drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// A frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientFrame {
    /// Join one room; must come first, within the join timeout.
    Join(Join),
    /// Relay `data` to one other member of the room.
    Signal { to: String, data: Value },
    /// Ask for the room's current members (answered with `peers`).
    List,
    /// Leave the room; the server then closes the socket.
    Leave,
}

impl ClientFrame {
    const TYPES: &'static [&'static str] = &["join", "signal", "list", "leave"];

    /// Parses and validates one text frame from a client.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let frame: Self = parse_tagged(text, "type", Self::TYPES)?;
        if let Self::Join(join) = &frame {
            check_name("room", &join.room)?;
            check_name("name", &join.name)?;
        }
        Ok(frame)
    }
}

fn check_name(field: &str, value: &str) -> Result<(), FrameError> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(FrameError::BadField {
            kind: "join".to_owned(),
            reason: format!("`{field}` must be 1-{MAX_NAME_CHARS} characters, not {chars}"),
        });
    }
    Ok(())
}

/// A frame from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerFrame {
    /// The answer to a successful `join`: everyone else already in the room.
    Welcome {
        id: String,
        token: String,
        room: String,
        peers: Vec<PeerInfo>,
        /// STUN and TURN servers for this room's connections, with credentials fresh for
        /// this welcome; absent when the server has none to offer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServerInfo>,
    },
    /// Someone else joined this client's room.
    PeerJoined { peer: PeerInfo },
    /// Someone left this client's room (at once, or after its resume grace period).
    PeerLeft { id: String },
    /// Relayed from another member; `from` is stamped by the server.
    Signal { from: String, data: Value },
    /// The answer to `list`.
    Peers { peers: Vec<PeerInfo> },
    /// A request was refused; see [`ErrorCode`] for what happens to the socket.
    Error { code: ErrorCode, message: String },
}

impl ServerFrame {
    const TYPES: &'static [&'static str] = &[
        "welcome",
        "peer-joined",
        "peer-left",
        "signal",
        "peers",
        "error",
    ];

    /// Parses one text frame from the server.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        parse_tagged(text, "type", Self::TYPES)
    }

    /// Builds an `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }

    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        // A frame holds only strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorCode {
    BadMessage,
    NotJoined,
    AlreadyJoined,
    UnknownPeer,
    RoomFull,
    BadPassword,
    UnsupportedVersion,
    TooLarge,
    RateLimited,
    /// A code from a newer server that this version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a version-1 server sends.
    pub const ALL: [ErrorCode; 9] = [
        Self::BadMessage,
        Self::NotJoined,
        Self::AlreadyJoined,
        Self::UnknownPeer,
        Self::RoomFull,
        Self::BadPassword,
        Self::UnsupportedVersion,
        Self::TooLarge,
        Self::RateLimited,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadMessage => "bad-message",
            Self::NotJoined => "not-joined",
            Self::AlreadyJoined => "already-joined",
            Self::UnknownPeer => "unknown-peer",
            Self::RoomFull => "room-full",
            Self::BadPassword => "bad-password",
            Self::UnsupportedVersion => "unsupported-version",
            Self::TooLarge => "too-large",
            Self::RateLimited => "rate-limited",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` of a `signal` between two peers: WebRTC negotiation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SignalData {
    /// An offer or an answer.
    Description { description: SessionDescription },
    /// A trickled ICE candidate; `None` (or an empty candidate string) ends the candidates.
    Candidate { candidate: Option<IceCandidate> },
}

impl SignalData {
    const KINDS: &'static [&'static str] = &["description", "candidate"];

    /// Interprets relayed `signal.data`.
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        from_tagged_value(value, "kind", Self::KINDS)
    }

    /// The JSON value to relay.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The browser's `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpType,
    pub sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    Offer,
    Answer,
}

/// The browser's `RTCIceCandidateInit`, keeping any fields a browser adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_mline_index: Option<u16>,
    /// Extra fields such as `usernameFragment`, relayed as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl IceCandidate {
    /// An empty candidate string means "end of candidates", like `null`.
    pub fn is_end_of_candidates(&self) -> bool {
        self.candidate.is_empty()
    }
}
