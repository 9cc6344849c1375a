//! Chat messages out: who reads each (present peers and everyone met in the room, by
//! key), sending on open channels, and sending again what was not acknowledged.

use confab_proto::peer::MAX_CHAT_TEXT_BYTES;
use confab_proto::{ChatScope, PeerMessage};

use super::{MeshTask, new_message_id};
use crate::api::{Event, LogLevel, unix_ms};
use crate::error::ErrorCode;
use crate::peer::PeerInput;
use crate::store;

/// A direct message to a present peer whose key is not known yet (so the store cannot
/// name its reader): it waits for that peer's channel.
#[derive(Debug)]
pub(super) struct WaitingChat {
    id: String,
    to: String,
    json: String,
}

impl MeshTask {
    pub(super) fn chat(&mut self, text: String, to: Option<String>, to_key: Option<String>) {
        if text.len() > MAX_CHAT_TEXT_BYTES {
            return self.error(
                ErrorCode::TooLarge,
                format!("a message holds at most {MAX_CHAT_TEXT_BYTES} bytes"),
                None,
            );
        }
        if let Some(peer) = &to
            && !self.peers.contains_key(peer)
        {
            return self.error(
                ErrorCode::UnknownPeer,
                format!("no peer {peer}"),
                Some(peer),
            );
        }
        let room = self.room();
        // Its readers, by key: a direct message's one, or everyone present or ever met in
        // the room. Each gets it when its channel next opens, until it acknowledges it.
        let (direct_to, readers): (Option<String>, Vec<String>) = match (&to, to_key) {
            (_, Some(key)) => (Some(key.clone()), vec![key]),
            (Some(peer), None) => {
                let key = self.fingerprint(peer);
                (key.clone(), key.into_iter().collect())
            }
            (None, None) => {
                let own = self.identity.fingerprint();
                let mut readers: Vec<String> = self
                    .peers
                    .values()
                    .filter_map(|p| p.fingerprint.clone())
                    .collect();
                let members = self.store.members(&room);
                readers.extend(self.report_store(members).unwrap_or_default());
                readers.retain(|key| key != own);
                readers.sort();
                readers.dedup();
                (None, readers)
            }
        };
        let id = new_message_id();
        let ts = unix_ms();
        let for_room = direct_to.is_none() && to.is_none();
        // Room messages are signed, so others can pass them on to latecomers.
        let sig = for_room
            .then(|| self.sign_room_message(&id, ts, &text))
            .flatten();
        let message = PeerMessage::Chat {
            id: id.clone(),
            text: text.clone(),
            ts,
            scope: if for_room {
                ChatScope::Room
            } else {
                ChatScope::Direct
            },
            sig: sig.clone(),
        };
        let json = message.to_json();
        let recorded = self.store.record_sent(
            &store::Outgoing {
                id: &id,
                room: &room,
                direct_to: direct_to.as_deref(),
                for_room,
                name: &self.name,
                text: &text,
                ts,
                json: &json,
                sig: sig.as_deref(),
            },
            &readers,
        );
        self.report_store(recorded);
        let sent_to = match (&to, &direct_to) {
            // A peer whose key is not known yet: it waits in memory for that peer.
            (Some(peer), None) => {
                let sent_to = self.send_chat(&id, &json, Some(peer));
                if sent_to.is_empty() {
                    self.waiting.push(WaitingChat {
                        id: id.clone(),
                        to: peer.clone(),
                        json,
                    });
                }
                sent_to
            }
            (_, Some(key)) => {
                let peer = self.peer_with_key(key);
                match peer {
                    Some(peer) => self.send_chat(&id, &json, Some(&peer)),
                    None => Vec::new(),
                }
            }
            (None, None) => self.send_chat(&id, &json, None),
        };
        self.emit(Event::ChatSent { id, to: sent_to });
    }

    /// Sends on the open chat channels `to` names (all of them when `None`), and notes
    /// which readers it reached.
    pub(super) fn send_chat(&self, id: &str, json: &str, to: Option<&str>) -> Vec<String> {
        let sent_to: Vec<(String, Option<String>)> = self
            .peers
            .iter()
            .filter(|(peer, p)| p.chat_open && to.is_none_or(|to| to == peer.as_str()))
            .filter_map(|(peer, p)| {
                let handle = p.handle.as_ref()?;
                handle.input.send(PeerInput::Send(json.to_owned())).ok()?;
                Some((peer.clone(), p.fingerprint.clone()))
            })
            .collect();
        for key in sent_to.iter().filter_map(|(_, key)| key.as_deref()) {
            self.report_store(self.store.mark_sent(id, key));
        }
        sent_to.into_iter().map(|(peer, _)| peer).collect()
    }

    /// The present peer with this key, if any.
    pub(super) fn peer_with_key(&self, key: &str) -> Option<String> {
        self.peers
            .iter()
            .find(|(_, p)| p.fingerprint.as_deref() == Some(key))
            .map(|(peer, _)| peer.clone())
    }

    /// A channel opened: what waited for it goes out now.
    pub(super) fn flush_waiting(&mut self, peer: &str) {
        let waiting = std::mem::take(&mut self.waiting);
        for chat in waiting {
            if chat.to == peer {
                let sent_to = self.send_chat(&chat.id, &chat.json, Some(peer));
                self.emit(Event::ChatSent {
                    id: chat.id,
                    to: sent_to,
                });
            } else {
                self.waiting.push(chat);
            }
        }
    }

    /// Own messages this peer has not acknowledged go out again (same ids: it shows each
    /// once), room messages that waited for anyone included.
    pub(super) fn resend_unacked(&mut self, peer: &str) {
        let Some(fingerprint) = self.fingerprint(peer) else {
            return;
        };
        let room = self.room();
        self.report_store(self.store.claim_waiting_for_anyone(&room, &fingerprint));
        let pending = self.store.unacked_for(&fingerprint);
        for (id, json) in self.report_store(pending).unwrap_or_default() {
            let sent_to = self.send_chat(&id, &json, Some(peer));
            self.log(LogLevel::Info, format!("resent {id} to {peer}"), Some(peer));
            self.emit(Event::ChatSent { id, to: sent_to });
        }
    }
}
