//! The mesh's side of passing on a room's history (`history.rs`).
//!
//! Own room messages are signed when written; a peer's are kept with their signature when
//! it checks out against the certificate its `hello` carried. On every chat channel that
//! opens, both sides say where their recent history starts (`history-since`); the one
//! with the lower key then opens a range reconcile over the later of the two starts. Each
//! side learns what the other lacks and says so (`history-have`); each fetches what it
//! lacks a batch at a time (`history-want`, at most two batches on their way), so memory
//! and the channel's queue stay bounded however much is missing. Every message that comes is checked against its
//! author's certificate before it is kept or shown.

use std::collections::{HashMap, HashSet, VecDeque};

use confab_proto::{ChatScope, PeerMessage};
use tokio::time::Instant;

use super::MeshTask;
use crate::api::{Event, LogLevel, unix_ms};
use crate::history::reconcile;
use crate::history::signed::{self, AuthorCert, SignatureError, SignedFields};
use crate::peer::PeerInput;
use crate::store::{self, SignedMessage};

/// Messages fetched per `history-want`. Two batches are in flight at most: the next is
/// asked for as soon as one is in, so the link does not idle a round trip per batch.
const WANT_BATCH: usize = 32;
/// The most ids one `history-have` lists.
const HAVE_BATCH: usize = 500;
/// The most ids a peer may name in one `history-want`.
const WANT_MAX: usize = 2 * WANT_BATCH;
/// The most ids kept to fetch from one peer (a room's history holds at most 5,000).
const WANTED_MAX: usize = 10_000;
/// The most certificates kept from one exchange.
const CERTS_MAX: usize = 256;

/// One history exchange on one chat channel.
#[derive(Debug)]
pub(super) struct Exchange {
    /// Where the history this side offers starts (unix ms).
    since: u64,
    started: Instant,
    /// Ranges went one way or the other.
    began: bool,
    /// We sent ranges that need an answer.
    awaiting_answer: bool,
    wanted: VecDeque<String>,
    in_flight: HashSet<String>,
    /// Messages in and checked, kept in one transaction once a batch's worth is here.
    arrived: Vec<SignedMessage>,
    /// Certificates the peer sent in this exchange, by key.
    certs: HashMap<String, AuthorCert>,
    /// Authors whose certificate went to the peer in this exchange.
    certs_sent: HashSet<String>,
    bytes_out: usize,
    bytes_in: usize,
    got: usize,
    gave: usize,
    refused: usize,
    reported: bool,
}

impl Exchange {
    fn idle(&self) -> bool {
        self.began
            && !self.awaiting_answer
            && self.wanted.is_empty()
            && self.in_flight.is_empty()
            && self.arrived.is_empty()
    }
}

impl MeshTask {
    /// This install's signature of a room message it is about to send.
    pub(super) fn sign_room_message(&self, id: &str, ts: u64, text: &str) -> Option<String> {
        let room = self.room();
        let fields = SignedFields {
            room: &room,
            author: self.identity.fingerprint(),
            id,
            ts,
            name: &self.name,
            text,
        };
        self.report_store(signed::sign(&self.identity, &fields))
    }

    /// A peer's `hello` certificate: kept when it is the one its connection proved.
    pub(super) fn on_peer_certificate(&mut self, peer: &str, cert: &str) {
        let Some(fingerprint) = self.fingerprint(peer) else {
            return;
        };
        match AuthorCert::from_base64(cert) {
            Ok(cert) if cert.key == fingerprint => {
                self.report_store(self.store.save_cert(&cert.key, &cert.der));
                if let Some(remote) = self.peers.get_mut(peer) {
                    remote.cert = Some(cert);
                }
            }
            Ok(_) => self.log(
                LogLevel::Warn,
                format!("{peer} sent a certificate that is not its own: ignored"),
                Some(peer),
            ),
            Err(e) => self.log(
                LogLevel::Warn,
                format!("{peer}'s certificate ignored: {e}"),
                Some(peer),
            ),
        }
    }

    /// The signature of a room message received live, when it checks out: then the
    /// message may be passed on. Its channel already proved who sent it, so a message
    /// without one (a browser's) is shown all the same, only never passed on.
    pub(super) fn checked_live_signature(
        &self,
        peer: &str,
        fields: &SignedFields<'_>,
        sig: Option<String>,
    ) -> Option<String> {
        let sig = sig?;
        let checked = match self.peers.get(peer).and_then(|p| p.cert.as_ref()) {
            Some(cert) => cert.verify(fields, &sig),
            None => Err(SignatureError::UnknownAuthor),
        };
        match checked {
            Ok(()) => Some(sig),
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    format!(
                        "message {} from {peer}: signature refused ({e}): kept, never passed on",
                        fields.id
                    ),
                    Some(peer),
                );
                None
            }
        }
    }

    /// A chat channel opened: say where our history starts.
    pub(super) fn start_history(&mut self, peer: &str) {
        let room = self.room();
        let Some(since) = self.report_store(self.store.history_start(&room, unix_ms())) else {
            return;
        };
        let Some(remote) = self.peers.get_mut(peer) else {
            return;
        };
        remote.history = Some(Exchange {
            since,
            started: Instant::now(),
            began: false,
            awaiting_answer: false,
            wanted: VecDeque::new(),
            in_flight: HashSet::new(),
            arrived: Vec::new(),
            certs: HashMap::new(),
            certs_sent: HashSet::new(),
            bytes_out: 0,
            bytes_in: 0,
            got: 0,
            gave: 0,
            refused: 0,
            reported: false,
        });
        self.send_history(peer, &PeerMessage::HistorySince { since });
    }

    pub(super) fn on_history(&mut self, peer: &str, message: PeerMessage, bytes: usize) {
        let Some(exchange) = self.exchange(peer) else {
            return self.log(
                LogLevel::Debug,
                "history message outside an exchange ignored",
                Some(peer),
            );
        };
        exchange.bytes_in += bytes;
        match message {
            PeerMessage::HistorySince { since } => self.on_history_since(peer, since),
            PeerMessage::HistoryRanges { ranges } => self.on_history_ranges(peer, &ranges),
            PeerMessage::HistoryHave { ids } => self.on_history_have(peer, ids),
            PeerMessage::HistoryWant { ids } => self.on_history_want(peer, &ids),
            PeerMessage::HistoryMissing { ids } => {
                if let Some(exchange) = self.exchange(peer) {
                    for id in &ids {
                        exchange.in_flight.remove(id);
                    }
                }
            }
            PeerMessage::HistoryCert { cert } => self.on_history_cert(peer, &cert),
            PeerMessage::HistoryMessage {
                id,
                ts,
                name,
                text,
                author,
                sig,
            } => self.on_history_message(
                peer,
                SignedMessage {
                    id,
                    ts,
                    name,
                    text,
                    author,
                    sig,
                },
            ),
            _ => {}
        }
        self.keep_arrived(peer);
        self.fetch_more(peer);
        self.report_if_done(peer);
    }

    /// The lower key of the two opens the reconcile, over the later of the two starts.
    fn on_history_since(&mut self, peer: &str, theirs: u64) {
        let Some(their_key) = self.fingerprint(peer) else {
            return;
        };
        if self.identity.fingerprint() > their_key.as_str() {
            return;
        }
        let room = self.room();
        let Some(exchange) = self.exchange(peer) else {
            return;
        };
        let since = exchange.since.max(theirs);
        exchange.began = true;
        exchange.awaiting_answer = true;
        let Some(keys) = self.report_store(self.store.signed_keys(&room, since)) else {
            return;
        };
        let ranges = reconcile::opening(&keys, since);
        self.send_history(peer, &PeerMessage::HistoryRanges { ranges });
    }

    fn on_history_ranges(&mut self, peer: &str, ranges: &[confab_proto::HistoryRange]) {
        let room = self.room();
        let Some(exchange) = self.exchange(peer) else {
            return;
        };
        exchange.began = true;
        exchange.awaiting_answer = false;
        if ranges.is_empty() {
            return;
        }
        let since = exchange.since;
        let Some(keys) = self.report_store(self.store.signed_keys(&room, since)) else {
            return;
        };
        let answer = match reconcile::answer(&keys, ranges) {
            Ok(answer) => answer,
            Err(e) => {
                return self.log(
                    LogLevel::Warn,
                    format!("history ranges from {peer} refused: {e}"),
                    Some(peer),
                );
            }
        };
        for ids in answer.they_lack.chunks(HAVE_BATCH) {
            self.send_history(peer, &PeerMessage::HistoryHave { ids: ids.to_vec() });
        }
        self.want(peer, answer.we_lack);
        let awaiting = !answer.ranges.is_empty();
        self.send_history(
            peer,
            &PeerMessage::HistoryRanges {
                ranges: answer.ranges,
            },
        );
        if let Some(exchange) = self.exchange(peer) {
            exchange.awaiting_answer = awaiting;
        }
    }

    fn on_history_have(&mut self, peer: &str, ids: Vec<String>) {
        if ids.len() > HAVE_BATCH {
            return self.log(
                LogLevel::Warn,
                format!("history-have of {} ids from {peer} refused", ids.len()),
                Some(peer),
            );
        }
        self.want(peer, ids);
    }

    /// Notes ids to fetch: those not held, not already on their way.
    fn want(&mut self, peer: &str, ids: Vec<String>) {
        let held: Vec<bool> = ids
            .iter()
            .map(|id| self.report_store(self.store.holds(id)).unwrap_or(true))
            .collect();
        let Some(exchange) = self.exchange(peer) else {
            return;
        };
        for (id, held) in ids.into_iter().zip(held) {
            if !held
                && exchange.wanted.len() < WANTED_MAX
                && !exchange.in_flight.contains(&id)
                && !exchange.wanted.contains(&id)
            {
                exchange.wanted.push_back(id);
            }
        }
    }

    /// Keeps a batch's worth of checked messages (or the last of them) in one
    /// transaction, then shows those seen for the first time, in the order they came.
    fn keep_arrived(&mut self, peer: &str) {
        let room = self.room();
        let Some(exchange) = self.exchange(peer) else {
            return;
        };
        if exchange.arrived.len() < WANT_BATCH && !exchange.in_flight.is_empty() {
            return;
        }
        let arrived = std::mem::take(&mut exchange.arrived);
        let Some(first) = self.report_store(self.store.record_history(&room, &arrived)) else {
            return;
        };
        for (message, first) in arrived.into_iter().zip(first) {
            if !first {
                continue;
            }
            if let Some(exchange) = self.exchange(peer) {
                exchange.got += 1;
            }
            self.emit(Event::Chat {
                from: peer.to_owned(),
                id: message.id,
                text: message.text,
                ts: message.ts,
                scope: ChatScope::Room,
                author: store::Author {
                    name: message.name,
                    key: message.author,
                },
                history: true,
            });
        }
    }

    /// Asks for more while at most one batch is on its way.
    fn fetch_more(&mut self, peer: &str) {
        loop {
            let Some(exchange) = self.exchange(peer) else {
                return;
            };
            if exchange.in_flight.len() > WANT_BATCH || exchange.wanted.is_empty() {
                return;
            }
            let take = exchange.wanted.len().min(WANT_BATCH);
            let ids: Vec<String> = exchange.wanted.drain(..take).collect();
            exchange.in_flight.extend(ids.iter().cloned());
            self.send_history(peer, &PeerMessage::HistoryWant { ids });
        }
    }

    /// Sends the messages asked for, each author's certificate before its first one.
    fn on_history_want(&mut self, peer: &str, ids: &[String]) {
        if ids.len() > WANT_MAX {
            return self.log(
                LogLevel::Warn,
                format!("history-want of {} ids from {peer} refused", ids.len()),
                Some(peer),
            );
        }
        let room = self.room();
        let own_key = self.identity.fingerprint().to_owned();
        let mut missing = Vec::new();
        for id in ids {
            let message = self
                .report_store(self.store.signed_message(&room, id, &own_key))
                .flatten();
            let Some(message) = message else {
                missing.push(id.clone());
                continue;
            };
            if !self.send_author_cert(peer, &message.author) {
                missing.push(id.clone());
                continue;
            }
            if let Some(exchange) = self.exchange(peer) {
                exchange.gave += 1;
            }
            self.send_history(
                peer,
                &PeerMessage::HistoryMessage {
                    id: message.id,
                    ts: message.ts,
                    name: message.name,
                    text: message.text,
                    author: message.author,
                    sig: message.sig,
                },
            );
        }
        if !missing.is_empty() {
            self.send_history(peer, &PeerMessage::HistoryMissing { ids: missing });
        }
    }

    /// Sends an author's certificate unless it went already; false when it is not known.
    fn send_author_cert(&mut self, peer: &str, author: &str) -> bool {
        if self
            .exchange(peer)
            .is_some_and(|e| e.certs_sent.contains(author))
        {
            return true;
        }
        let Some(cert) = self.kept_cert(author) else {
            return false;
        };
        if let Some(exchange) = self.exchange(peer) {
            exchange.certs_sent.insert(author.to_owned());
        }
        self.send_history(
            peer,
            &PeerMessage::HistoryCert {
                cert: cert.to_base64(),
            },
        );
        true
    }

    fn on_history_cert(&mut self, peer: &str, cert: &str) {
        match AuthorCert::from_base64(cert) {
            Ok(cert) => {
                if let Some(exchange) = self.exchange(peer)
                    && exchange.certs.len() < CERTS_MAX
                {
                    exchange.certs.insert(cert.key.clone(), cert);
                }
            }
            Err(e) => self.log(
                LogLevel::Warn,
                format!("history certificate from {peer} refused: {e}"),
                Some(peer),
            ),
        }
    }

    /// A message asked for: kept (with its batch) and shown when its author's signature
    /// checks out.
    fn on_history_message(&mut self, peer: &str, message: SignedMessage) {
        let room = self.room();
        let Some(exchange) = self.exchange(peer) else {
            return;
        };
        if !exchange.in_flight.remove(&message.id) {
            return self.log(
                LogLevel::Warn,
                format!(
                    "history message {} from {peer} was not asked for: dropped",
                    message.id
                ),
                Some(peer),
            );
        }
        let cert = self.author_cert(peer, &message.author);
        let fields = SignedFields {
            room: &room,
            author: &message.author,
            id: &message.id,
            ts: message.ts,
            name: &message.name,
            text: &message.text,
        };
        let checked = match &cert {
            Some((cert, _)) => cert.verify(&fields, &message.sig),
            None => Err(SignatureError::UnknownAuthor),
        };
        if let Err(e) = checked {
            if let Some(exchange) = self.exchange(peer) {
                exchange.refused += 1;
            }
            return self.log(
                LogLevel::Warn,
                format!("history message {} from {peer} refused: {e}", message.id),
                Some(peer),
            );
        }
        // A certificate this install already held (the peer's, its own, a kept one) is
        // not written again for every message it checks.
        if let Some((cert, true)) = cert {
            self.report_store(self.store.save_cert(&cert.key, &cert.der));
        }
        if let Some(exchange) = self.exchange(peer) {
            exchange.arrived.push(message);
        }
    }

    /// The certificate that checks an author's messages, and whether it is new to this
    /// install (sent in this exchange, so worth keeping); else the peer's own from its
    /// `hello`, or one kept from before.
    fn author_cert(&self, peer: &str, author: &str) -> Option<(AuthorCert, bool)> {
        let remote = self.peers.get(peer)?;
        if let Some(cert) = remote.history.as_ref()?.certs.get(author) {
            return Some((cert.clone(), true));
        }
        if let Some(cert) = remote.cert.as_ref().filter(|c| c.key == author) {
            return Some((cert.clone(), false));
        }
        self.kept_cert(author).map(|cert| (cert, false))
    }

    /// This install's own certificate, or one kept from before.
    fn kept_cert(&self, author: &str) -> Option<AuthorCert> {
        let der = if author == self.identity.fingerprint() {
            Some(self.identity.certificate_der().to_vec())
        } else {
            self.report_store(self.store.cert(author)).flatten()
        };
        der.and_then(|der| AuthorCert::from_der(der).ok())
    }

    /// Logs the exchange's figures once it has nothing left to do.
    fn report_if_done(&mut self, peer: &str) {
        let Some(exchange) = self.exchange(peer) else {
            return;
        };
        if exchange.reported || !exchange.idle() {
            return;
        }
        exchange.reported = true;
        let msg = format!(
            "history with {peer}: got {}, gave {}, refused {}; {} bytes out, {} bytes in, {} ms",
            exchange.got,
            exchange.gave,
            exchange.refused,
            exchange.bytes_out,
            exchange.bytes_in,
            exchange.started.elapsed().as_millis()
        );
        self.log(LogLevel::Info, msg, Some(peer));
    }

    fn send_history(&mut self, peer: &str, message: &PeerMessage) {
        let json = message.to_json();
        let Some(remote) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(exchange) = remote.history.as_mut() {
            exchange.bytes_out += json.len();
        }
        if let Some(handle) = remote.handle.as_ref() {
            let _ = handle.input.send(PeerInput::Send(json));
        }
    }

    fn exchange(&mut self, peer: &str) -> Option<&mut Exchange> {
        self.peers.get_mut(peer)?.history.as_mut()
    }
}
