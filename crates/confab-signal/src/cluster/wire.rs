//! What the servers of a cluster say to each other over NATS, and on which subjects.
//!
//! Subjects name servers, not rooms: a room name may hold any character, a subject may
//! not, and every request goes to the one server that owns the room anyway.

use std::collections::HashMap;

use confab_proto::{Join, PeerInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::{ConnId, MemberKey, Refusal, RoomSnapshot};

/// Every server's heartbeat: "I am alive".
pub(crate) const HEARTBEAT: &str = "confab.cluster.heartbeat";
/// A server stopping cleanly: its rooms move at once, not after the heartbeat timeout.
pub(crate) const GOODBYE: &str = "confab.cluster.goodbye";
/// An owner's rooms as they change: what another server needs to take one over.
pub(crate) const CLAIMS: &str = "confab.cluster.claims";
/// A server coming up asks the others for every claim they know.
pub(crate) const SYNC: &str = "confab.cluster.sync";

/// Requests to the server that owns a room.
pub(crate) fn requests(node: &str) -> String {
    format!("confab.node.{node}.requests")
}

/// "The cluster found you dead": a server heard again after its rooms moved stops.
pub(crate) fn fenced(node: &str) -> String {
    format!("confab.node.{node}.fenced")
}

/// A server asking another to send again what it lost (see `stream`).
pub(crate) fn resends(node: &str) -> String {
    format!("confab.node.{node}.resends")
}

/// Frames for sockets a server holds in rooms owned elsewhere.
pub(crate) fn sockets(node: &str) -> String {
    format!("confab.node.{node}.sockets")
}

/// Relays, leaves and detaches of other servers' sockets, for the rooms a server owns,
/// as a numbered stream (see `stream`).
pub(crate) fn relays(node: &str) -> String {
    format!("confab.node.{node}.relays")
}

/// An owner saying how far it has done a server's stream of relays.
pub(crate) fn acks(node: &str) -> String {
    format!("confab.node.{node}.acks")
}

/// The messages of a stream in one NATS message: a line each (JSON as serde writes it
/// holds no line break).
pub(crate) fn lines(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload.split(|b| *b == b'\n')
}

/// A server's heartbeat, and its name in the other messages about it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) node: String,
    /// The last number it sent to each server's sockets (see `stream`).
    #[serde(default)]
    pub(crate) sent: HashMap<String, u64>,
    /// The last number it sent to each owner in its stream of relays.
    #[serde(default)]
    pub(crate) relayed: HashMap<String, u64>,
}

impl Heartbeat {
    pub(crate) fn of(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            sent: HashMap::new(),
            relayed: HashMap::new(),
        }
    }
}

/// What the owner of `room` says of it; `snapshot` is `None` once it has emptied.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ClaimMessage {
    pub(crate) room: String,
    pub(crate) owner: String,
    pub(crate) snapshot: Option<RoomSnapshot>,
}

/// One part of a server's answer to [`SYNC`]; the last has `done`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SyncPart {
    pub(crate) node: String,
    pub(crate) claims: Vec<ClaimMessage>,
    pub(crate) done: bool,
}

/// A socket's request to the owner of its room. `node` and `conn` name the socket, so
/// that the owner can deliver to it. A relay, leave or detach normally goes in the
/// socket's server's stream of relays to the owner, unanswered; as a NATS request (with a
/// [`Reply`]) only while the room moves.
#[derive(Debug, Serialize, Deserialize)]
// Externally tagged (`{"relay": {...}}`): serde reads an internally tagged enum into a
// buffer first, which for a relay meant building its data twice.
#[serde(rename_all = "kebab-case")]
pub(crate) enum Request {
    Join {
        join: Join,
        node: String,
        conn: ConnId,
    },
    /// The room moved while the socket stayed open: attach it again, with no welcome.
    Reattach {
        key: MemberKey,
        token: String,
        node: String,
        conn: ConnId,
    },
    /// `seq` counts the socket's relays, so that one asked again (its answer lost or
    /// late) is not delivered twice.
    Relay {
        from: MemberKey,
        to: String,
        data: Value,
        node: String,
        conn: ConnId,
        seq: u64,
    },
    List {
        key: MemberKey,
    },
    Leave {
        key: MemberKey,
        node: String,
        conn: ConnId,
    },
    Detach {
        key: MemberKey,
        node: String,
        conn: ConnId,
    },
}

impl Request {
    pub(crate) fn room(&self) -> &str {
        match self {
            Self::Join { join, .. } => &join.room,
            Self::Reattach { key, .. }
            | Self::List { key }
            | Self::Leave { key, .. }
            | Self::Detach { key, .. } => &key.room,
            Self::Relay { from, .. } => &from.room,
        }
    }

    /// The socket a relay, leave or detach comes from.
    pub(crate) fn conn(&self) -> Option<ConnId> {
        match self {
            Self::Relay { conn, .. } | Self::Leave { conn, .. } | Self::Detach { conn, .. } => {
                Some(*conn)
            }
            Self::Join { .. } | Self::Reattach { .. } | Self::List { .. } => None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub(crate) enum Reply {
    /// The welcome went to the socket; this is what its server needs to follow the room.
    Joined {
        key: MemberKey,
        token: String,
    },
    Done,
    Peers {
        peers: Vec<PeerInfo>,
    },
    Refused {
        refusal: Refusal,
    },
    /// This server does not own the room: ask `owner`.
    NotOwner {
        owner: String,
    },
}

/// Something for one socket of the server the message goes to.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ToSocket {
    pub(crate) conn: ConnId,
    pub(crate) what: SocketItem,
}

#[derive(Debug, Serialize, Deserialize)]
// Externally tagged, like `Request`: read without a buffer in between.
#[serde(rename_all = "kebab-case")]
pub(crate) enum SocketItem {
    /// A frame as its JSON text, passed to the socket as it is; only a `welcome` is read
    /// again, to add the relay this server offers.
    Frame { json: String, welcome: bool },
    /// A resume on another socket took this socket's id: close it.
    Replaced,
    /// The owner refused a relay from this socket: the client gets this error frame.
    Refused { refusal: Refusal },
    /// A relay reached a server that does not own the socket's room: drop the socket, so
    /// that its client resumes wherever the room is now.
    Lost,
}
