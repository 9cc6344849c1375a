//! Chat messages out, carried out: the outbox (`chat_outbox.rs`) decides who reads each
//! and which channels it goes out on; this signs and records it, sends, and notes in the
//! store which readers it reached.

use confab_proto::peer::MAX_CHAT_TEXT_BYTES;
use confab_proto::{ChatScope, PeerMessage};

use super::{MeshTask, new_message_id};
use crate::api::{Event, LogLevel, unix_ms};
use crate::chat_outbox::{Delivery, Target};
use crate::error::ErrorCode;
use crate::peer::PeerInput;
use crate::store;

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
        let target = match (to, to_key) {
            (_, Some(key)) => Target::Key(key),
            (Some(peer), None) => Target::Peer(peer),
            (None, None) => Target::Room,
        };
        let peer_key = match &target {
            Target::Peer(peer) => self.fingerprint(peer),
            _ => None,
        };
        // A room message is read by everyone present or ever met in the room.
        let (present, members) = if target == Target::Room {
            let present: Vec<String> = self
                .peers
                .values()
                .filter_map(|p| p.fingerprint.clone())
                .collect();
            let members = self.report_store(self.store.members(&room));
            (present, members.unwrap_or_default())
        } else {
            (Vec::new(), Vec::new())
        };
        let readers = self
            .outbox
            .readers(&target, peer_key.as_deref(), present, members);
        // A direct message's one reader, when its key is known.
        let direct_to = (target != Target::Room)
            .then(|| readers.first().cloned())
            .flatten();
        let id = new_message_id();
        let ts = unix_ms();
        let for_room = target == Target::Room;
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
        let deliveries = self.outbox.send(&target, peer_key.as_deref(), &id, &json);
        let sent_to = self.deliver(deliveries);
        self.emit(Event::ChatSent { id, to: sent_to });
    }

    /// Sends each delivery on its peer's chat channel, notes in the store which readers
    /// it reached, and says which peers it went to.
    fn deliver(&self, deliveries: Vec<Delivery>) -> Vec<String> {
        let mut sent_to = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let sent = self
                .peers
                .get(&delivery.peer)
                .and_then(|p| p.handle.as_ref())
                .is_some_and(|h| h.input.send(PeerInput::Send(delivery.json)).is_ok());
            if !sent {
                continue;
            }
            if let Some(key) = &delivery.key {
                self.report_store(self.store.mark_sent(&delivery.id, key));
            }
            if delivery.again {
                self.log(
                    LogLevel::Info,
                    format!("resent {} to {}", delivery.id, delivery.peer),
                    Some(&delivery.peer),
                );
            }
            sent_to.push(delivery.peer);
        }
        sent_to
    }

    /// A peer's chat channel opened: what waited for it goes out now, then its own
    /// messages it has not acknowledged (same ids: it shows each once), room messages that
    /// waited for anyone included.
    pub(super) fn chat_opened(&mut self, peer: &str) {
        let key = self.fingerprint(peer);
        let unacked = match &key {
            Some(key) => {
                let room = self.room();
                self.report_store(self.store.claim_waiting_for_anyone(&room, key));
                let pending = self.store.unacked_for(key);
                self.report_store(pending).unwrap_or_default()
            }
            None => Vec::new(),
        };
        for delivery in self.outbox.opened(peer, key, unacked) {
            let id = delivery.id.clone();
            let sent_to = self.deliver(vec![delivery]);
            self.emit(Event::ChatSent { id, to: sent_to });
        }
    }
}
