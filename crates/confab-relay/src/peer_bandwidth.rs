//! Bandwidth per peer id: all the allocations of one peer (every username of the form
//! `EXPIRY:PEER_ID` with its id, over UDP, TCP or TLS) draw on one token bucket, so a peer
//! cannot multiply its share by holding more allocations.
//!
//! The turn crate does not tell a relayed socket whose it is, but every byte a client
//! relays crosses the listener it reached: ChannelData and Send indications on the way in,
//! ChannelData and Data indications on the way out. So the listeners charge it there, to
//! the peer whose credentials the client signed its Allocate with: a signed request names
//! a candidate, and the server's success answer to an Allocate makes it the client's.
//! Control messages (allocating, refreshing, permissions) are never charged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use stun::message::{
    CLASS_INDICATION, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_DATA, METHOD_SEND,
};
use tokio::time::Instant;
use turn::proto::chandata::ChannelData;

use crate::farewell::{Signed, stun_type};
use crate::metrics::{Refusal, RelayMetrics};

/// A token bucket of bytes: `rate` per second, bursts of one second's worth.
#[derive(Debug)]
pub(crate) struct Bandwidth {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bandwidth {
    pub(crate) fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second as f64;
        Self {
            rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes `bytes` if the bucket holds them. A rate of 0 is no limit.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, since) = *state;
        let tokens = (tokens + now.duration_since(since).as_secs_f64() * self.rate).min(self.rate);
        let left = tokens - bytes as f64;
        *state = (if left >= 0.0 { left } else { tokens }, now);
        left >= 0.0
    }
}

/// Signed requests whose answer has not come, at most: past this all of them are dropped
/// and counted again from empty (a flood of requests from made-up addresses must not grow
/// the map without end; a real client signs its next request again).
const MAX_PENDING: usize = 4096;

/// Whether `raw`, as a client sends or receives it, carries relayed data.
fn is_relayed_data(raw: &[u8]) -> bool {
    ChannelData::is_channel_data(raw)
        || stun_type(raw).is_some_and(|typ| {
            typ.class == CLASS_INDICATION
                && (typ.method == METHOD_SEND || typ.method == METHOD_DATA)
        })
}

/// The peer id of a REST username (`EXPIRY:PEER_ID`).
fn peer_id(username: &str) -> &str {
    username.split_once(':').map_or(username, |(_, peer)| peer)
}

/// Each client address's bucket: its peer's, shared by all that peer's allocations.
#[derive(Debug)]
pub(crate) struct PeerBandwidth {
    bytes_per_second: u64,
    /// The peer each client address last signed a request as, until an Allocate succeeds.
    pending: Mutex<HashMap<SocketAddr, String>>,
    clients: Mutex<HashMap<SocketAddr, Arc<Bandwidth>>>,
    /// A peer's bucket lives while any of its client addresses holds it.
    peers: Mutex<HashMap<String, Weak<Bandwidth>>>,
    metrics: Arc<RelayMetrics>,
}

impl PeerBandwidth {
    /// `bytes_per_second` for each peer id, both directions together; 0 is no limit.
    pub(crate) fn new(bytes_per_second: u64, metrics: Arc<RelayMetrics>) -> Self {
        Self {
            bytes_per_second,
            pending: Mutex::default(),
            clients: Mutex::default(),
            peers: Mutex::default(),
            metrics,
        }
    }

    /// A message from `client`: one signed with a peer's credentials names the peer its
    /// allocation will be charged to. Says whether it may pass (relayed data over the
    /// peer's rate does not, and is counted as a bandwidth refusal).
    pub(crate) fn admit_from(&self, client: SocketAddr, raw: &[u8]) -> bool {
        if self.bytes_per_second > 0
            && let Some(signed) = Signed::of(raw)
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING && !pending.contains_key(&client) {
                pending.clear();
            }
            pending.insert(client, peer_id(&signed.username).to_owned());
        }
        self.admits(client, raw)
    }

    /// A message to `client`: whether it may go. The server's success answer to an
    /// Allocate ties the client to the peer it signed as.
    pub(crate) fn admit_to(&self, client: SocketAddr, raw: &[u8]) -> bool {
        if stun_type(raw)
            .is_some_and(|typ| typ.method == METHOD_ALLOCATE && typ.class == CLASS_SUCCESS_RESPONSE)
            && let Some(peer) = lock(&self.pending).remove(&client)
        {
            self.tie(client, &peer);
        }
        self.admits(client, raw)
    }

    /// `client` is gone (its allocation ended, or its stream).
    pub(crate) fn forget(&self, client: SocketAddr) {
        lock(&self.pending).remove(&client);
        lock(&self.clients).remove(&client);
        lock(&self.peers).retain(|_, bucket| bucket.strong_count() > 0);
    }

    fn tie(&self, client: SocketAddr, peer: &str) {
        let bucket = {
            let mut peers = lock(&self.peers);
            match peers.get(peer).and_then(Weak::upgrade) {
                Some(bucket) => bucket,
                None => {
                    let bucket = Arc::new(Bandwidth::new(self.bytes_per_second));
                    peers.insert(peer.to_owned(), Arc::downgrade(&bucket));
                    bucket
                }
            }
        };
        lock(&self.clients).insert(client, bucket);
    }

    fn admits(&self, client: SocketAddr, raw: &[u8]) -> bool {
        if !is_relayed_data(raw) {
            return true;
        }
        // A client that never signed a request has no allocation to relay through.
        let Some(bucket) = lock(&self.clients).get(&client).cloned() else {
            return true;
        };
        let admitted = bucket.take(raw.len());
        if !admitted {
            self.metrics.refuse(Refusal::Bandwidth);
        }
        admitted
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is one insert or remove: a poisoned map is still whole.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use stun::agent::TransactionId;
    use stun::message::{BINDING_REQUEST, Message, MessageType};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_one_seconds_worth_and_refills_at_its_rate() {
        let bucket = Bandwidth::new(1000);
        assert!(bucket.take(600));
        assert!(bucket.take(400));
        assert!(!bucket.take(1), "empty");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.take(100));
        assert!(!bucket.take(50));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!bucket.take(1001), "never more than one second's worth");
        assert!(Bandwidth::new(0).take(usize::MAX), "0 is no limit");
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// ChannelData on channel 0x4000 with `len` bytes.
    fn channel_data(len: usize) -> Vec<u8> {
        let mut raw = vec![0x40, 0x00];
        raw.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        raw.resize(4 + len, 7);
        raw
    }

    /// A request signed with `username`'s credentials.
    fn signed_by(username: &str) -> Vec<u8> {
        Signed::for_test(username).farewell("password").unwrap()
    }

    fn message(typ: MessageType) -> Vec<u8> {
        let mut message = Message::new();
        message
            .build(&[Box::new(TransactionId::new()), Box::new(typ)])
            .unwrap();
        message.raw
    }

    /// `client` allocates as `username`: its signed request, and the server's success.
    fn allocated(quota: &PeerBandwidth, client: SocketAddr, username: &str) {
        assert!(quota.admit_from(client, &signed_by(username)));
        assert!(quota.admit_to(
            client,
            &message(MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peers_allocations_share_one_rate_and_control_messages_are_free() {
        let metrics = Arc::new(RelayMetrics::default());
        let quota = PeerBandwidth::new(1000, metrics.clone());
        // Two allocations of p1 (two credentials, two client addresses), one of p2.
        allocated(&quota, addr(1), "100:p1");
        allocated(&quota, addr(2), "200:p1");
        allocated(&quota, addr(3), "100:p2");
        assert!(quota.admit_from(addr(1), &channel_data(596)));
        assert!(quota.admit_to(addr(2), &channel_data(396)));
        assert!(
            !quota.admit_from(addr(2), &channel_data(10)),
            "p1's second used up"
        );
        assert!(
            quota.admit_from(addr(3), &channel_data(596)),
            "p2 has its own"
        );
        assert_eq!(metrics.refusals(Refusal::Bandwidth), 1);
        // Requests and their answers are never charged.
        assert!(quota.admit_from(addr(1), &message(BINDING_REQUEST)));
        assert!(quota.admit_from(addr(1), &signed_by("100:p1")));
        // A client whose Allocate never succeeded has nothing to relay through.
        assert!(quota.admit_from(addr(9), &signed_by("100:p1")));
        assert!(quota.admit_from(addr(9), &channel_data(5000)));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(quota.admit_from(addr(2), &channel_data(496)));
    }

    #[test]
    fn a_forgotten_client_leaves_its_peers_bucket_to_the_others() {
        let quota = PeerBandwidth::new(1000, Arc::new(RelayMetrics::default()));
        allocated(&quota, addr(1), "100:p1");
        allocated(&quota, addr(2), "100:p1");
        quota.forget(addr(1));
        assert_eq!(lock(&quota.peers).len(), 1, "p1's second address holds it");
        quota.forget(addr(2));
        assert!(lock(&quota.peers).is_empty());
    }
}
