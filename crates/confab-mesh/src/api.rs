//! The peer API of PEER-API.md: commands in, events out, as serde types. The desktop app,
//! `confab peer` and the tests all speak these.

use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};

use confab_proto::ChatScope;

/// A command to the peer (`{"cmd": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Command {
    /// Join a room over signaling.
    Connect {
        server: String,
        room: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    /// Close the signaling socket only; peer connections stay up.
    Disconnect,
    /// Close every peer connection and leave the room.
    Leave,
    /// Answered with a `peers` event.
    Peers,
    /// Send a chat message to one peer (`to`, a present peer's id, or `to_key`, a contact's
    /// key, present or not), or the whole room when both are absent.
    Chat {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_key: Option<String>,
    },
    /// Answered with one `stats` event per peer.
    Stats {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    Call {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peers: Option<Vec<String>>,
    },
    AcceptCall {
        call: String,
    },
    DeclineCall {
        call: String,
    },
    Hangup,
    Mute {
        muted: bool,
    },
    SendFile {
        to: String,
        path: String,
    },
    AcceptFile {
        file: String,
        dir: String,
    },
    RejectFile {
        file: String,
    },
    /// Answered with a `devices` event.
    Devices,
    /// Switch devices (mid-call too), in the forms of `--audio-in` and `--audio-out`;
    /// answered with an `audio` event. `noise_suppression` and `echo_cancellation` switch
    /// the microphone's processing (Confab additions; both on by default).
    SetAudio {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise_suppression: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        echo_cancellation: Option<bool>,
    },
    /// Open the microphone outside a call and report its `level` (a settings screen's
    /// meter), or stop (a Confab addition).
    MicTest {
        on: bool,
    },
    /// How loud a peer of the call plays here: 0 (silent) to 2, 1 as sent (a Confab
    /// addition).
    Volume {
        peer: String,
        volume: f32,
    },
    SafetyCode {
        peer: String,
    },
    /// Leave cleanly and stop.
    Quit,
    /// Mark a connected peer as verified: its name and fingerprint are remembered, and the
    /// name showing up later with another fingerprint is flagged (a Confab addition).
    Verify {
        peer: String,
    },
    /// Answered with a `history` event: the direct conversation with `peer` (a present
    /// peer) or `key` (a contact, present or not), or a room's (`room`, else the current
    /// one); the last `limit` messages when given.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Answered with a `contacts` event: everyone ever met by this install.
    Contacts,
    /// Offer again to one peer, although nothing changed (a Confab addition: it lets a
    /// test make both ends of a connection renegotiate at the same moment).
    Renegotiate {
        peer: String,
    },
}

impl Command {
    /// Parses one command line. Errors say what was wrong, for an `error` event.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("bad command: {e}"))
    }
}

/// Signaling connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalingState {
    Connecting,
    Connected,
    Reconnecting,
    Disconnected,
}

/// Peer connection states, as the browser names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelState {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    Ringing,
    Active,
    Declined,
    Busy,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustStatus {
    Verified,
    Changed,
    Unverified,
}

/// A peer as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub id: String,
    pub name: String,
    pub state: PeerState,
}

/// A sound device in a `devices` event: `name` is what `device:NAME` takes; `id` is the
/// sound system's own name for it, which `device:ID` takes too (a Confab addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub name: String,
    pub default: bool,
    pub id: String,
}

/// `{id, name}`, as in `peer-joined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRef {
    pub id: String,
    pub name: String,
}

/// An event from the peer (`{"event": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    Signaling {
        state: SignalingState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    Peers {
        peers: Vec<PeerSummary>,
    },
    PeerJoined {
        peer: PeerRef,
    },
    PeerLeft {
        id: String,
    },
    PeerState {
        peer: String,
        state: PeerState,
    },
    Channel {
        peer: String,
        label: String,
        state: ChannelState,
    },
    Chat {
        from: String,
        id: String,
        text: String,
        ts: u64,
        scope: ChatScope,
        author: Author,
        /// True when it came by history reconcile rather than live.
        history: bool,
    },
    ChatSent {
        id: String,
        to: Vec<String>,
    },
    Ack {
        peer: String,
        id: String,
    },
    Stats {
        peer: String,
        rtt_ms: f64,
        bytes_sent: u64,
        bytes_received: u64,
        /// The path's type: `relay` if either end of the selected pair is a relay
        /// candidate, else `srflx` or `prflx` if either is, else `host`.
        candidate_type: String,
        /// The selected pair's candidates, `TYPE ADDRESS:PORT`; absent before one is
        /// selected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_candidate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote_candidate: Option<String>,
        /// How this peer reaches the first hop: `udp`, `tcp` or `tls`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transport: Option<String>,
    },
    SafetyCode {
        peer: String,
        code: String,
    },
    CallIncoming {
        call: String,
        from: String,
        /// Everyone else in or invited to the call, so a prompt can say who is in it;
        /// left out when the call is just the two of us.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<String>,
    },
    CallState {
        call: String,
        peer: String,
        state: CallState,
    },
    Muted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        muted: bool,
    },
    Level {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        dbfs: f32,
    },
    /// What is known of a peer's identity: `verified` (the fingerprint the user verified
    /// for this name), `changed` (this name was verified with another fingerprint: someone
    /// may be impersonating it), or `unverified`.
    Trust {
        peer: String,
        name: String,
        fingerprint: String,
        status: TrustStatus,
    },
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        messages: Vec<HistoryEntry>,
    },
    Contacts {
        contacts: Vec<crate::store::Contact>,
    },
    FileOffered {
        file: String,
        to: String,
        name: String,
        size: u64,
    },
    FileIncoming {
        file: String,
        from: String,
        name: String,
        size: u64,
        sha256: String,
    },
    FileProgress {
        file: String,
        peer: String,
        bytes: u64,
        size: u64,
    },
    FileDone {
        file: String,
        peer: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    Devices {
        inputs: Vec<DeviceEntry>,
        outputs: Vec<DeviceEntry>,
    },
    /// The devices in use after `set-audio` or at start (a Confab addition): the forms of
    /// `--audio-in`/`--audio-out`, and the device's own name where one was opened.
    Audio {
        input: String,
        output: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_name: Option<String>,
        noise_suppression: bool,
        echo_cancellation: bool,
    },
    Log {
        level: LogLevel,
        msg: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        ts: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
}

impl Event {
    /// The JSON line for this event.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn error(code: ErrorCode, message: impl Into<String>, peer: Option<&str>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            peer: peer.map(str::to_owned),
        }
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Who wrote a message: the name it came with, and the writer's key (DTLS fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub name: String,
    pub key: String,
}

/// One message of the history, as the `history` event lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: String,
    /// Fingerprint of the writer; absent for this install's own messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub name: String,
    pub text: String,
    pub ts: u64,
    pub scope: ChatScope,
    pub author: Author,
    /// For own messages: `queued` (no reader reached yet), `sent` (waiting for acks) or
    /// `delivered` (every reader acked); for others' messages: `received`.
    pub state: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_parse_from_the_documented_json() {
        assert_eq!(
            Command::parse(r#"{"cmd":"chat","text":"hi"}"#).unwrap(),
            Command::Chat {
                text: "hi".into(),
                to: None,
                to_key: None
            }
        );
        assert_eq!(
            Command::parse(r#"{"cmd":"connect","server":"ws://h/ws","room":"r","name":"n"}"#)
                .unwrap(),
            Command::Connect {
                server: "ws://h/ws".into(),
                room: "r".into(),
                name: "n".into(),
                password: None
            }
        );
        assert_eq!(
            Command::parse(r#"{"cmd":"accept-call","call":"c"}"#).unwrap(),
            Command::AcceptCall { call: "c".into() }
        );
        assert_eq!(Command::parse(r#"{"cmd":"quit"}"#).unwrap(), Command::Quit);
        assert!(Command::parse(r#"{"cmd":"fly"}"#).is_err());
        assert!(Command::parse("nope").is_err());
    }

    #[test]
    fn events_serialise_as_documented() {
        let event = Event::ChatSent {
            id: "m".into(),
            to: vec!["p1".into()],
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"event":"chat-sent","id":"m","to":["p1"]})
        );
        let event = Event::PeerState {
            peer: "p1".into(),
            state: PeerState::Connected,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"event":"peer-state","peer":"p1","state":"connected"})
        );
        let event = Event::Signaling {
            state: SignalingState::Connected,
            id: Some("p2".into()),
            room: Some("r".into()),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"event":"signaling","state":"connected","id":"p2","room":"r"})
        );
    }
}
