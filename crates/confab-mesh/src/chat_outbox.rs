//! The chat outbox as plain data, with no IO: who reads a message, which open chat channels
//! it goes out on now, what waits in memory for a channel, and what goes again when one
//! opens. The mesh carries out the deliveries; which reader acknowledged what is durable
//! and lives in its store, which hands back what is still unacknowledged when a channel
//! opens.

use std::collections::BTreeMap;

/// Whom a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Everyone in the room, present or met before.
    Room,
    /// A present peer, by id.
    Peer(String),
    /// Whoever holds this key, present or not.
    Key(String),
}

/// A message to send on one peer's chat channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub peer: String,
    /// The reader's key, to note in the store that it went out; `None` while unknown.
    pub key: Option<String>,
    pub id: String,
    pub json: String,
    /// Whether it went out before (to this reader, on an earlier channel).
    pub again: bool,
}

/// A direct message to a present peer whose key is not known yet (so the store cannot
/// name its reader): it waits for that peer's channel.
#[derive(Debug)]
struct Waiting {
    peer: String,
    id: String,
    json: String,
}

#[derive(Debug)]
pub(crate) struct ChatOutbox {
    own_key: String,
    /// Peers whose chat channel is open, with their key when known.
    open: BTreeMap<String, Option<String>>,
    waiting: Vec<Waiting>,
}

impl ChatOutbox {
    pub(crate) fn new(own_key: impl Into<String>) -> Self {
        Self {
            own_key: own_key.into(),
            open: BTreeMap::new(),
            waiting: Vec::new(),
        }
    }

    pub(crate) fn is_open(&self, peer: &str) -> bool {
        self.open.contains_key(peer)
    }

    /// The present peer whose channel is open under this key, if any.
    pub(crate) fn open_peer_with_key(&self, key: &str) -> Option<&str> {
        self.open
            .iter()
            .find(|(_, k)| k.as_deref() == Some(key))
            .map(|(peer, _)| peer.as_str())
    }

    /// The keys that read a message for `target`, each once, never our own: a direct
    /// message's one (`peer_key`, for a peer target), or for the room everyone present
    /// (`present`) or ever met in it (`members`). Each gets it when its channel next opens,
    /// until it acknowledges it.
    pub(crate) fn readers(
        &self,
        target: &Target,
        peer_key: Option<&str>,
        present: impl IntoIterator<Item = String>,
        members: impl IntoIterator<Item = String>,
    ) -> Vec<String> {
        match target {
            Target::Key(key) => vec![key.clone()],
            Target::Peer(_) => peer_key.map(str::to_owned).into_iter().collect(),
            Target::Room => {
                let mut readers: Vec<String> = present.into_iter().chain(members).collect();
                readers.retain(|key| *key != self.own_key);
                readers.sort();
                readers.dedup();
                readers
            }
        }
    }

    /// A new message: the open channels it goes out on now. One for a present peer whose
    /// key is not known (`peer_key` is `None`) and whose channel is not open waits here for
    /// that channel; any other reader not reached now gets it from the store when its
    /// channel opens.
    pub(crate) fn send(
        &mut self,
        target: &Target,
        peer_key: Option<&str>,
        id: &str,
        json: &str,
    ) -> Vec<Delivery> {
        let to = |peer: &str| self.delivery(peer, id, json, false);
        match target {
            Target::Room => self
                .open
                .keys()
                .filter_map(|peer| to(peer))
                .collect::<Vec<_>>(),
            Target::Key(key) => self
                .open_peer_with_key(key)
                .and_then(to)
                .into_iter()
                .collect(),
            Target::Peer(peer) => match to(peer) {
                Some(delivery) => vec![delivery],
                None => {
                    if peer_key.is_none() {
                        self.waiting.push(Waiting {
                            peer: peer.clone(),
                            id: id.to_owned(),
                            json: json.to_owned(),
                        });
                    }
                    Vec::new()
                }
            },
        }
    }

    /// `peer`'s chat channel opened: what waited here for it goes first, then what the
    /// store still holds unacknowledged for its key (`unacked`: ids and messages, oldest
    /// first), with the same ids, so it shows each once.
    pub(crate) fn opened(
        &mut self,
        peer: &str,
        key: Option<String>,
        unacked: Vec<(String, String)>,
    ) -> Vec<Delivery> {
        self.open.insert(peer.to_owned(), key);
        let (for_peer, others) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.peer == peer);
        self.waiting = others;
        let fresh = for_peer
            .into_iter()
            .filter_map(|w: Waiting| self.delivery(peer, &w.id, &w.json, false));
        let again = unacked
            .iter()
            .filter_map(|(id, json)| self.delivery(peer, id, json, true));
        fresh.chain(again).collect()
    }

    /// `peer`'s chat channel closed (or its connection went): nothing more goes out on it.
    pub(crate) fn closed(&mut self, peer: &str) {
        self.open.remove(peer);
    }

    /// `peer` is gone from the mesh: what waited for it waits no more.
    pub(crate) fn forget(&mut self, peer: &str) {
        self.open.remove(peer);
        self.waiting.retain(|w| w.peer != peer);
    }

    fn delivery(&self, peer: &str, id: &str, json: &str, again: bool) -> Option<Delivery> {
        let key = self.open.get(peer)?;
        Some(Delivery {
            peer: peer.to_owned(),
            key: key.clone(),
            id: id.to_owned(),
            json: json.to_owned(),
            again,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(deliveries: &[Delivery]) -> Vec<(&str, &str, bool)> {
        deliveries
            .iter()
            .map(|d| (d.peer.as_str(), d.id.as_str(), d.again))
            .collect()
    }

    fn unacked(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter()
            .map(|id| ((*id).to_owned(), format!("{{\"id\":\"{id}\"}}")))
            .collect()
    }

    #[test]
    fn a_room_message_goes_out_on_every_open_channel_and_no_other() {
        let mut outbox = ChatOutbox::new("own");
        outbox.opened("p1", Some("k1".into()), Vec::new());
        outbox.opened("p2", None, Vec::new());
        outbox.opened("p3", Some("k3".into()), Vec::new());
        outbox.closed("p3");
        let sent = outbox.send(&Target::Room, None, "m1", "{}");
        assert_eq!(peers(&sent), [("p1", "m1", false), ("p2", "m1", false)]);
        assert_eq!(sent[0].key.as_deref(), Some("k1"));
        assert_eq!(sent[1].key, None);
    }

    #[test]
    fn room_readers_are_everyone_present_or_met_once_but_never_ourselves() {
        let outbox = ChatOutbox::new("own");
        let readers = outbox.readers(
            &Target::Room,
            None,
            ["k2".to_owned(), "own".to_owned()],
            ["k1".to_owned(), "k2".to_owned()],
        );
        assert_eq!(readers, ["k1", "k2"]);
        let direct = outbox.readers(&Target::Peer("p1".into()), Some("k1"), [], []);
        assert_eq!(direct, ["k1"]);
        let unknown = outbox.readers(&Target::Peer("p1".into()), None, [], []);
        assert!(unknown.is_empty(), "{unknown:?}");
        let by_key = outbox.readers(&Target::Key("k9".into()), None, [], []);
        assert_eq!(by_key, ["k9"]);
    }

    #[test]
    fn a_direct_message_to_a_peer_not_yet_known_waits_for_its_channel_alone() {
        let mut outbox = ChatOutbox::new("own");
        let to_p1 = Target::Peer("p1".into());
        assert!(outbox.send(&to_p1, None, "m1", "{}").is_empty());
        // Another peer's channel does not take it.
        assert!(
            outbox
                .opened("p2", Some("k2".into()), Vec::new())
                .is_empty()
        );
        let flushed = outbox.opened("p1", Some("k1".into()), Vec::new());
        assert_eq!(peers(&flushed), [("p1", "m1", false)]);
        // Once only.
        outbox.closed("p1");
        assert!(
            outbox
                .opened("p1", Some("k1".into()), Vec::new())
                .is_empty()
        );
    }

    #[test]
    fn a_direct_message_to_a_known_key_is_left_to_the_store_when_its_channel_is_closed() {
        let mut outbox = ChatOutbox::new("own");
        let to_p1 = Target::Peer("p1".into());
        assert!(outbox.send(&to_p1, Some("k1"), "m1", "{}").is_empty());
        // Nothing waits in memory: the store hands it back as unacknowledged.
        let resent = outbox.opened("p1", Some("k1".into()), unacked(&["m1"]));
        assert_eq!(peers(&resent), [("p1", "m1", true)]);
    }

    #[test]
    fn a_message_to_a_key_finds_the_peer_holding_it_whatever_its_id() {
        let mut outbox = ChatOutbox::new("own");
        outbox.opened("p7", Some("k1".into()), Vec::new());
        let sent = outbox.send(&Target::Key("k1".into()), None, "m1", "{}");
        assert_eq!(peers(&sent), [("p7", "m1", false)]);
        assert!(
            outbox
                .send(&Target::Key("k2".into()), None, "m2", "{}")
                .is_empty()
        );
    }

    #[test]
    fn after_a_reconnect_what_waited_goes_first_then_the_unacknowledged_with_their_ids() {
        let mut outbox = ChatOutbox::new("own");
        outbox.opened("p1", Some("k1".into()), Vec::new());
        let sent = outbox.send(&Target::Room, None, "m1", "{}");
        assert_eq!(sent.len(), 1);
        // The connection drops before p1 acknowledges m1; a message for a newcomer whose
        // key is not known yet is typed meanwhile.
        outbox.closed("p1");
        assert!(outbox.send(&Target::Room, None, "m2", "{}").is_empty());
        assert!(
            outbox
                .send(&Target::Peer("p2".into()), None, "m3", "{}")
                .is_empty()
        );
        let back = outbox.opened("p1", Some("k1".into()), unacked(&["m1", "m2"]));
        assert_eq!(peers(&back), [("p1", "m1", true), ("p1", "m2", true)]);
        let newcomer = outbox.opened("p2", Some("k2".into()), Vec::new());
        assert_eq!(peers(&newcomer), [("p2", "m3", false)]);
    }

    #[test]
    fn a_peer_forgotten_drops_what_waited_for_it() {
        let mut outbox = ChatOutbox::new("own");
        let to_p1 = Target::Peer("p1".into());
        assert!(outbox.send(&to_p1, None, "m1", "{}").is_empty());
        outbox.forget("p1");
        assert!(outbox.opened("p1", None, Vec::new()).is_empty());
        assert!(!outbox.is_open("p2"));
        assert!(outbox.is_open("p1"));
    }
}
