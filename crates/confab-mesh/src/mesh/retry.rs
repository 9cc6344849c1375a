//! Connections that fail are tried again while the peer is still in the room: a fresh
//! connection after a pause that doubles each time, offered by the impolite side (the
//! higher id, as in perfect negotiation) so that the two never cross; after the last try
//! the failure is an `ice-failed` error. A connection whose chat channel opens starts the
//! count again.

use std::time::Duration;

use super::MeshTask;
use crate::api::LogLevel;
use crate::error::ErrorCode;

/// Tries after the first failure, before giving up with `ice-failed`.
const RETRIES: u32 = 3;
/// The pause before the first retry; then 6 s and 12 s. Longer than the spread of the two
/// sides' failure timers, so the polite side has let its connection go when the new offer
/// comes.
const FIRST_PAUSE: Duration = Duration::from_secs(3);

fn pause_before(retry: u32) -> Duration {
    FIRST_PAUSE * 2u32.saturating_pow(retry.saturating_sub(1))
}

impl MeshTask {
    /// A peer's connection failed while the peer is still in the room.
    pub(super) fn on_connection_failed(&mut self, peer: &str) {
        let Some(remote) = self.peers.get_mut(peer) else {
            return;
        };
        remote.failures += 1;
        let failures = remote.failures;
        if failures > RETRIES {
            return self.error(
                ErrorCode::IceFailed,
                format!("no path to {peer} after {RETRIES} retries"),
                Some(peer),
            );
        }
        if !self.offers_again_to(peer) {
            return self.log(
                LogLevel::Info,
                format!("connection to {peer} failed: waiting for it to try again"),
                Some(peer),
            );
        }
        let pause = pause_before(failures);
        self.log(
            LogLevel::Info,
            format!("connection to {peer} failed: retry {failures} of {RETRIES} in {pause:?}"),
            Some(peer),
        );
        let due = self.retries.clone();
        let peer = peer.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            let _ = due.send(peer);
        });
    }

    /// A retry's pause is over: a fresh connection, if the peer is still there and no
    /// connection came up meanwhile.
    pub(super) fn on_retry_due(&mut self, peer: String) {
        if self
            .peers
            .get(&peer)
            .is_some_and(|p| p.handle.is_none() && !p.left_room)
        {
            self.connect_peer(&peer, true);
        }
    }

    /// The impolite side (the higher id) offers the new connection.
    fn offers_again_to(&self, peer: &str) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.id.as_deref())
            .is_some_and(|own| own > peer)
    }

    /// A connection is up: a later failure starts the count of retries again.
    pub(super) fn connection_up(&mut self, peer: &str) {
        if let Some(remote) = self.peers.get_mut(peer) {
            remote.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_from_three_seconds() {
        let pauses: Vec<u64> = (1..=RETRIES).map(|r| pause_before(r).as_secs()).collect();
        assert_eq!(pauses, [3, 6, 12]);
    }
}
