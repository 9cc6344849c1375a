//! Messages on the `chat` data channel between two peers (PROTOCOL.md section 2).

use serde::{Deserialize, Serialize};

use crate::frame::{FrameError, parse_tagged};

/// The longest `chat.text`, in bytes of UTF-8.
pub const MAX_CHAT_TEXT_BYTES: usize = 64 * 1024;

/// Which conversation a chat message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatScope {
    /// The room's conversation: the same `id` went out on every open channel.
    Room,
    /// The conversation with this one peer.
    Direct,
}

/// One JSON message on the `chat` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PeerMessage {
    /// The first message each side sends once the channel opens.
    Hello {
        name: String,
        app: String,
        /// The sender's DTLS certificate, DER in base64 (a Confab addition): what checks
        /// the signatures of the messages it writes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cert: Option<String>,
    },
    /// A chat message; receivers show each `id` once.
    Chat {
        id: String,
        text: String,
        ts: u64,
        scope: ChatScope,
        /// The author's signature of a room message, base64 (a Confab addition): what lets
        /// others pass it on in the room's history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sig: Option<String>,
    },
    /// Receipt of a `chat`, sent for every copy received.
    Ack { id: String },
    /// Asks the peer to join a voice call.
    CallInvite { call: String, members: Vec<String> },
    /// Sent to every member by a peer that joins the call.
    CallAccept { call: String },
    /// Sent to the inviter by a peer that will not join.
    CallDecline { call: String },
    /// Sent to every member by a peer that leaves the call.
    CallEnd { call: String },
    /// Tells the members whether this peer sends audio.
    Mute { call: String, muted: bool },
    /// How much of the recipient's voice this peer lost lately, in percent (a Confab
    /// addition): the recipient sizes its encoder's FEC to the worst such report.
    VoiceLoss { call: String, percent: u8 },
    /// Offers a file.
    FileOffer {
        file: String,
        name: String,
        size: u64,
        sha256: String,
    },
    /// Accepts a file; the sender sends from `offset` on.
    FileAccept { file: String, offset: u64 },
    /// Declines an offer or cancels a transfer under way (either side).
    FileReject { file: String },
    /// The receiver's verdict once it holds `size` bytes.
    FileReceived { file: String, ok: bool },
    /// History reconcile (a Confab addition, docs/protocol.md): the oldest time (unix ms)
    /// of the room history this peer offers to reconcile.
    HistorySince { since: u64 },
    /// History reconcile: ranges of the room's history, each summed up or listed; an empty
    /// list ends the exchange.
    HistoryRanges { ranges: Vec<HistoryRange> },
    /// History reconcile: messages the sender holds and the receiver lacks.
    HistoryHave { ids: Vec<String> },
    /// History reconcile: send these messages.
    HistoryWant { ids: Vec<String> },
    /// History reconcile: wanted messages the sender no longer holds.
    HistoryMissing { ids: Vec<String> },
    /// History reconcile: an author's DTLS certificate (DER in base64), sent before the
    /// first of its messages in an exchange.
    HistoryCert { cert: String },
    /// History reconcile: one room message as its author wrote and signed it.
    HistoryMessage {
        id: String,
        ts: u64,
        name: String,
        text: String,
        /// The author's key: its certificate's fingerprint.
        author: String,
        sig: String,
    },
}

/// A point in a room's history: messages are ordered by time, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HistoryBound {
    pub ts: u64,
    pub id: String,
}

/// One range of a `history-ranges` message: the messages from `from` (inclusive) up to
/// `upto` (exclusive; absent: no end), summed up by `count` and `digest` or listed by `ids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRange {
    pub from: HistoryBound,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upto: Option<HistoryBound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

impl PeerMessage {
    const TYPES: &'static [&'static str] = &[
        "hello",
        "chat",
        "ack",
        "call-invite",
        "call-accept",
        "call-decline",
        "call-end",
        "mute",
        "voice-loss",
        "file-offer",
        "file-accept",
        "file-reject",
        "file-received",
        "history-since",
        "history-ranges",
        "history-have",
        "history-want",
        "history-missing",
        "history-cert",
        "history-message",
    ];

    /// Parses one message. An unknown `type` is [`FrameError::UnknownTag`], which the
    /// protocol says to ignore; every other error is bad input from the peer.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let message: Self = parse_tagged(text, "type", Self::TYPES)?;
        if let Self::Chat { text, .. } | Self::HistoryMessage { text, .. } = &message
            && text.len() > MAX_CHAT_TEXT_BYTES
        {
            return Err(FrameError::BadField {
                kind: "chat".to_owned(),
                reason: format!(
                    "text is {} bytes, over the limit of {MAX_CHAT_TEXT_BYTES}",
                    text.len()
                ),
            });
        }
        Ok(message)
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Only strings, numbers and booleans: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
