//! The `chat` channel: opening it, what arrives on it (PROTOCOL.md section 2), and
//! which channel is which.

use std::sync::Arc;

use confab_proto::peer::MAX_CHAT_TEXT_BYTES;
use confab_proto::{FrameError, PeerMessage};
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use super::{APP, CHAT_LABEL, ChannelEvent, FILE_PREFIX, Peer, PeerInput, PeerOutput};
use crate::api::{ChannelState, Event, LogLevel};
use crate::error::ErrorCode;

impl Peer {
    /// Takes a data channel in: its events are polled by a task of their own, so the
    /// library's callback returns at once.
    pub(super) async fn adopt_channel(&mut self, channel: Arc<dyn DataChannel>, label: String) {
        if let Some(file) = label.strip_prefix(FILE_PREFIX) {
            return self.receive_file(file.to_owned(), channel);
        }
        let tx = self.channel_tx.clone();
        let poller = channel.clone();
        let is_chat = label == CHAT_LABEL;
        self.pollers.spawn(async move {
            while let Some(event) = poller.poll().await {
                let forwarded = match event {
                    DataChannelEvent::OnOpen => tx.send(ChannelEvent::Open(label.clone())),
                    DataChannelEvent::OnMessage(message) => {
                        tx.send(ChannelEvent::Message(label.clone(), message.data.to_vec()))
                    }
                    DataChannelEvent::OnClose => break,
                    _ => Ok(()),
                };
                if forwarded.is_err() {
                    return;
                }
            }
            let _ = tx.send(ChannelEvent::Closed(label));
        });
        // Only one chat channel per peer: a second one offered by a remote is ignored.
        if is_chat && self.chat.is_none() {
            self.chat = Some(channel);
        }
    }

    pub(super) async fn on_channel_event(&mut self, event: ChannelEvent) {
        match event {
            ChannelEvent::Open(label) => {
                self.log(LogLevel::Info, format!("channel {label} open"));
                if label == CHAT_LABEL {
                    self.chat_open = true;
                    self.set_up = true;
                    let hello = PeerMessage::Hello {
                        name: self.setup.local_name.clone(),
                        app: APP.to_owned(),
                        cert: Some(self.setup.identity.certificate_base64()),
                    };
                    self.on_input(PeerInput::Send(hello.to_json())).await;
                    for text in std::mem::take(&mut self.early_out) {
                        self.on_input(PeerInput::Send(text)).await;
                    }
                    // Before the event: whoever sees the channel open may chat at once.
                    self.out(PeerOutput::ChannelOpen);
                }
                self.emit(Event::Channel {
                    peer: self.setup.remote_id.clone(),
                    label,
                    state: ChannelState::Open,
                });
            }
            ChannelEvent::Message(label, bytes) if label == CHAT_LABEL => {
                self.on_chat_message(&bytes).await;
            }
            ChannelEvent::Message(label, _) => {
                self.log(
                    LogLevel::Debug,
                    format!("message on unknown channel {label} ignored"),
                );
            }
            ChannelEvent::Closed(label) => {
                self.log(LogLevel::Info, format!("channel {label} closed"));
                if label == CHAT_LABEL && self.chat_open {
                    self.chat_open = false;
                    self.out(PeerOutput::ChannelClosed);
                }
                self.emit(Event::Channel {
                    peer: self.setup.remote_id.clone(),
                    label,
                    state: ChannelState::Closed,
                });
            }
        }
    }

    pub(super) async fn on_chat_message(&mut self, bytes: &[u8]) {
        // Over-long input is refused before it is parsed.
        if bytes.len() > MAX_CHAT_TEXT_BYTES + 4096 {
            return self.bad_message(format!("message of {} bytes is too large", bytes.len()));
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return self.bad_message("message is not UTF-8".to_owned()),
        };
        match PeerMessage::parse(text) {
            Ok(PeerMessage::Hello { name, app, cert }) => {
                self.log(LogLevel::Info, format!("hello from {name} ({app})"));
                self.out(PeerOutput::Hello { name, cert });
            }
            Ok(PeerMessage::Chat {
                id,
                text,
                ts,
                scope,
                sig,
            }) => {
                // Acknowledge every copy: the sender may be resending one we already have.
                let ack = PeerMessage::Ack { id: id.clone() };
                self.on_input(PeerInput::Send(ack.to_json())).await;
                self.out(PeerOutput::Chat {
                    id,
                    text,
                    ts,
                    scope,
                    sig,
                });
            }
            Ok(PeerMessage::Ack { id }) => self.emit(Event::Ack {
                peer: self.setup.remote_id.clone(),
                id,
            }),
            Ok(PeerMessage::FileOffer {
                file,
                name,
                size,
                sha256,
            }) => {
                self.out(PeerOutput::FileOffer {
                    file,
                    name,
                    size,
                    sha256,
                });
            }
            Ok(PeerMessage::FileAccept { file, offset }) => {
                self.out(PeerOutput::FileAccepted { file, offset });
            }
            Ok(PeerMessage::FileReject { file }) => {
                self.expected_files.remove(&file);
                if let Some(handle) = self.transfer_handles.remove(&file) {
                    handle.abort();
                }
                self.out(PeerOutput::FileRejected { file });
            }
            Ok(PeerMessage::FileReceived { file, ok }) => {
                self.out(PeerOutput::FileReceived { file, ok });
            }
            Ok(
                message @ (PeerMessage::CallInvite { .. }
                | PeerMessage::CallAccept { .. }
                | PeerMessage::CallDecline { .. }
                | PeerMessage::CallEnd { .. }
                | PeerMessage::Mute { .. }
                | PeerMessage::VoiceLoss { .. }),
            ) => self.out(PeerOutput::Call(message)),
            Ok(
                message @ (PeerMessage::HistorySince { .. }
                | PeerMessage::HistoryRanges { .. }
                | PeerMessage::HistoryHave { .. }
                | PeerMessage::HistoryWant { .. }
                | PeerMessage::HistoryMissing { .. }
                | PeerMessage::HistoryCert { .. }
                | PeerMessage::HistoryMessage { .. }),
            ) => self.out(PeerOutput::History {
                message,
                bytes: bytes.len(),
            }),
            Ok(other) => self.log(
                LogLevel::Debug,
                format!("{} ignored: not supported yet", other.to_json()),
            ),
            Err(FrameError::UnknownTag { value, .. }) => {
                self.log(
                    LogLevel::Debug,
                    format!("unknown message type {value} ignored"),
                );
            }
            Err(e) => self.bad_message(e.to_string()),
        }
    }

    pub(super) fn bad_message(&self, message: String) {
        self.log(LogLevel::Warn, format!("bad message on chat: {message}"));
        self.emit(Event::error(
            ErrorCode::BadMessage,
            message,
            Some(&self.setup.remote_id),
        ));
    }
}
