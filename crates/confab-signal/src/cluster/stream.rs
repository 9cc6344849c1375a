//! Numbered streams between two servers, in order, and none lost while both live: frames
//! from the owner of a room to the sockets another server holds, and those sockets'
//! relays (and leaves) to the owner.
//!
//! Core NATS delivers at most once: a message published while the receiver's
//! subscription is being restored (the bus restarting, a reconnect) is dropped. So each
//! sender numbers what it sends to each server and keeps the recent messages; a
//! receiver that sees a gap (a later number, or a heartbeat announcing one) asks for the
//! rest again, and holds what came early until the gap is filled. Messages queued
//! together for one receiver travel as one NATS message, a line each. A stream to an owner
//! is also acknowledged (see [`Incoming::done`]), so that what its owner never did can
//! be done elsewhere if it dies. Plain data: no IO, no clock but the `now` passed in.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Messages kept per receiving server for a resend: seconds of heavy traffic.
const KEPT: usize = 16_384;
/// A receiver asks again for a gap no sooner than this.
const ASK_AGAIN: Duration = Duration::from_millis(200);

/// One numbered message from `from` to a server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) from: String,
    pub(crate) seq: u64,
    /// The oldest number the sender still keeps: a receiver missing older ones will
    /// never get them, and goes on from here.
    pub(crate) floor: u64,
    pub(crate) item: T,
}

/// Which of the two streams between a pair of servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    /// From a room's owner to the sockets another server holds.
    Sockets,
    /// From sockets to the owner of their room.
    Relays,
}

/// "Send me again everything from `from` on", to the sender of a stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Resend {
    pub(crate) node: String,
    pub(crate) from: u64,
    pub(crate) stream: Kind,
}

/// "I have done everything up to `done`", to the sender of a stream of relays.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Ack {
    pub(crate) node: String,
    pub(crate) done: u64,
}

/// What this server has sent to each other server.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    streams: HashMap<String, OutStream>,
}

#[derive(Debug)]
struct OutStream {
    next: u64,
    kept: VecDeque<(u64, Bytes)>,
}

impl Outgoing {
    /// Numbers `item` for `to`, keeps it, and returns it encoded.
    pub(crate) fn stamp(&mut self, me: &str, to: &str, item: impl Serialize) -> Option<Bytes> {
        let stream = self
            .streams
            .entry(to.to_owned())
            .or_insert_with(|| OutStream {
                next: 1,
                kept: VecDeque::new(),
            });
        let seq = stream.next;
        if stream.kept.len() == KEPT {
            stream.kept.pop_front();
        }
        let floor = stream.kept.front().map_or(seq, |(s, _)| *s);
        let envelope = Envelope {
            from: me.to_owned(),
            seq,
            floor,
            item,
        };
        let bytes = Bytes::from(serde_json::to_vec(&envelope).ok()?);
        stream.next += 1;
        stream.kept.push_back((seq, bytes.clone()));
        Some(bytes)
    }

    /// The last number sent to each server: told in heartbeats, so that a receiver
    /// notices a loss at the end of a burst too.
    pub(crate) fn last_sent(&self) -> HashMap<String, u64> {
        self.streams
            .iter()
            .map(|(node, stream)| (node.clone(), stream.next - 1))
            .collect()
    }

    /// The kept messages for `to` from number `from` on, in order.
    pub(crate) fn resend(&self, to: &str, from: u64) -> Vec<Bytes> {
        self.streams.get(to).map_or_else(Vec::new, |stream| {
            stream
                .kept
                .iter()
                .filter(|(seq, _)| *seq >= from)
                .map(|(_, bytes)| bytes.clone())
                .collect()
        })
    }

    /// `to` has done everything up to `done`: that is no longer kept.
    pub(crate) fn ack(&mut self, to: &str, done: u64) {
        if let Some(stream) = self.streams.get_mut(to) {
            while stream.kept.front().is_some_and(|(seq, _)| *seq <= done) {
                stream.kept.pop_front();
            }
        }
    }

    /// `to` is gone: nothing more is kept for it. Returns what it was still kept for,
    /// in order.
    pub(crate) fn forget(&mut self, to: &str) -> Vec<Bytes> {
        self.streams
            .remove(to)
            .map(|stream| stream.kept.into_iter().map(|(_, bytes)| bytes).collect())
            .unwrap_or_default()
    }
}

/// What this server has received from each other server.
#[derive(Debug)]
pub(crate) struct Incoming<T> {
    streams: HashMap<String, InStream<T>>,
}

impl<T> Default for Incoming<T> {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct InStream<T> {
    expected: u64,
    early: BTreeMap<u64, T>,
    asked: Option<Instant>,
    /// The last number told to the sender as done.
    acked: u64,
}

impl<T> Default for InStream<T> {
    fn default() -> Self {
        Self {
            expected: 1,
            early: BTreeMap::new(),
            asked: None,
            acked: 0,
        }
    }
}

impl<T> InStream<T> {
    /// The number to ask again from, unless asked too recently.
    fn ask(&mut self, now: Instant) -> Option<u64> {
        if self
            .asked
            .is_some_and(|at| now.duration_since(at) < ASK_AGAIN)
        {
            return None;
        }
        self.asked = Some(now);
        Some(self.expected)
    }
}

impl<T> Incoming<T> {
    /// Takes one message. Returns what can be delivered now, in order, and the number to
    /// ask again from when a gap showed.
    pub(crate) fn accept(&mut self, envelope: Envelope<T>, now: Instant) -> (Vec<T>, Option<u64>) {
        let stream = self.streams.entry(envelope.from).or_default();
        if stream.expected < envelope.floor {
            // Gone for good at the sender: go on from what it still has.
            stream.expected = envelope.floor;
            stream.early.retain(|seq, _| *seq >= envelope.floor);
        }
        if envelope.seq < stream.expected {
            return (Vec::new(), None);
        }
        stream.early.insert(envelope.seq, envelope.item);
        let mut ready = Vec::new();
        while let Some(next) = stream.early.remove(&stream.expected) {
            ready.push(next);
            stream.expected += 1;
            stream.asked = None;
        }
        let ask = if stream.early.is_empty() {
            None
        } else {
            stream.ask(now)
        };
        (ready, ask)
    }

    /// A heartbeat from `from` says it has sent up to `last`: the number to ask again
    /// from, if some of that never came.
    pub(crate) fn check(&mut self, from: &str, last: u64, now: Instant) -> Option<u64> {
        let stream = self.streams.entry(from.to_owned()).or_default();
        if last >= stream.expected {
            stream.ask(now)
        } else {
            None
        }
    }

    /// Each sender whose messages were all taken (in order) up to a number not yet told,
    /// with that number: once what they asked for is done, this is the acknowledgement.
    pub(crate) fn done(&mut self) -> Vec<(String, u64)> {
        self.streams
            .iter_mut()
            .filter(|(_, stream)| stream.expected - 1 > stream.acked)
            .map(|(from, stream)| {
                stream.acked = stream.expected - 1;
                (from.clone(), stream.acked)
            })
            .collect()
    }

    /// `from` is gone: its numbering starts again if it ever comes back.
    pub(crate) fn forget(&mut self, from: &str) {
        self.streams.remove(from);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cluster::wire::{SocketItem, ToSocket};

    fn socket(conn: u64) -> ToSocket {
        ToSocket {
            conn,
            what: SocketItem::Replaced,
        }
    }

    fn open(bytes: &[u8]) -> Envelope<ToSocket> {
        serde_json::from_slice(bytes).unwrap()
    }

    fn conns(ready: &[ToSocket]) -> Vec<u64> {
        ready.iter().map(|s| s.conn).collect()
    }

    #[test]
    fn a_lost_message_is_asked_for_and_everything_arrives_in_order() {
        let t = Instant::now();
        let mut out = Outgoing::default();
        let mut inc = Incoming::<ToSocket>::default();
        let sent: Vec<Bytes> = (1..=4)
            .map(|conn| out.stamp("a", "b", socket(conn)).unwrap())
            .collect();

        assert_eq!(conns(&inc.accept(open(&sent[0]), t).0), vec![1]);
        // The second is lost: the third and fourth wait, and the gap is asked for once.
        let (ready, ask) = inc.accept(open(&sent[2]), t);
        assert!(ready.is_empty());
        assert_eq!(ask, Some(2));
        assert_eq!(inc.accept(open(&sent[3]), t).1, None, "asked recently");

        let again = out.resend("b", 2);
        assert_eq!(again.len(), 3);
        let mut ready = Vec::new();
        for bytes in again {
            ready.extend(inc.accept(open(&bytes), t).0);
        }
        assert_eq!(
            conns(&ready),
            vec![2, 3, 4],
            "in order, the early ones once"
        );
    }

    #[test]
    fn a_loss_at_the_end_of_a_burst_shows_in_the_heartbeat() {
        let t = Instant::now();
        let mut out = Outgoing::default();
        let mut inc = Incoming::<ToSocket>::default();
        let first = out.stamp("a", "b", socket(1)).unwrap();
        let _lost = out.stamp("a", "b", socket(2)).unwrap();
        inc.accept(open(&first), t);
        assert_eq!(inc.check("a", out.last_sent()["b"], t), Some(2));
        assert_eq!(inc.check("a", 1, t + ASK_AGAIN), None, "nothing missing");
    }

    #[test]
    fn what_the_sender_no_longer_keeps_is_skipped() {
        let t = Instant::now();
        let mut out = Outgoing::default();
        let mut inc = Incoming::<ToSocket>::default();
        let mut last = Bytes::new();
        for conn in 0..(KEPT as u64 + 10) {
            last = out.stamp("a", "b", socket(conn)).unwrap();
        }
        let envelope = open(&last);
        assert!(envelope.floor > 1);
        let (ready, ask) = inc.accept(envelope, t);
        assert_eq!(ready.len(), 0, "a gap still open after the floor");
        assert!(ask.unwrap() >= 11);
    }

    #[test]
    fn duplicates_are_dropped() {
        let t = Instant::now();
        let mut out = Outgoing::default();
        let mut inc = Incoming::<ToSocket>::default();
        let bytes = out.stamp("a", "b", socket(7)).unwrap();
        assert_eq!(inc.accept(open(&bytes), t).0.len(), 1);
        assert_eq!(inc.accept(open(&bytes), t).0.len(), 0);
    }

    #[test]
    fn what_was_acknowledged_is_no_longer_kept_and_the_rest_is_handed_back() {
        let t = Instant::now();
        let mut out = Outgoing::default();
        let mut inc = Incoming::<ToSocket>::default();
        for conn in 1..=3 {
            let bytes = out.stamp("a", "owner", socket(conn)).unwrap();
            inc.accept(open(&bytes), t);
        }
        assert_eq!(inc.done(), vec![("a".to_owned(), 3)]);
        assert!(inc.done().is_empty(), "told once");
        out.ack("owner", 2);
        let undone: Vec<u64> = out
            .forget("owner")
            .iter()
            .map(|bytes| open(bytes).item.conn)
            .collect();
        assert_eq!(undone, vec![3]);
        assert!(out.forget("owner").is_empty());
    }

    #[test]
    fn messages_held_behind_a_gap_are_not_done() {
        let t = Instant::now();
        let mut out = Outgoing::default();
        let mut inc = Incoming::<ToSocket>::default();
        let first = out.stamp("a", "owner", socket(1)).unwrap();
        let _lost = out.stamp("a", "owner", socket(2)).unwrap();
        let third = out.stamp("a", "owner", socket(3)).unwrap();
        inc.accept(open(&first), t);
        inc.accept(open(&third), t);
        assert_eq!(inc.done(), vec![("a".to_owned(), 1)]);
    }
}
