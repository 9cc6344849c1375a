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
    Hello { name: String, app: String },
    /// A chat message; receivers show each `id` once.
    Chat {
        id: String,
        text: String,
        ts: u64,
        scope: ChatScope,
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
    ];

    /// Parses one message. An unknown `type` is [`FrameError::UnknownTag`], which the
    /// protocol says to ignore; every other error is bad input from the peer.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let message: Self = parse_tagged(text, "type", Self::TYPES)?;
        if let Self::Chat { text, .. } = &message
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
