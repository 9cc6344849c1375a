//! Who a peer is across ids and runs: its key, the user's verification of it, and a
//! warning when a verified name comes back with another key.

use super::MeshTask;
use crate::api::{Event, TrustStatus};
use crate::error::ErrorCode;

impl MeshTask {
    pub(super) fn fingerprint(&self, peer: &str) -> Option<String> {
        self.peers.get(peer).and_then(|p| p.fingerprint.clone())
    }

    /// A peer said who it is: a name the user verified must come with the key it had
    /// then, and a name met before with another key is a warning too (trust on first use).
    /// Then it is a contact, and a reader of this room's messages.
    pub(super) fn check_trust(&self, peer: &str, name: &str) {
        let Some(fingerprint) = self.fingerprint(peer) else {
            return;
        };
        let verified = self
            .report_store(self.store.verified_fingerprint(name))
            .flatten();
        let known_otherwise = self
            .report_store(self.store.name_known_with_other_key(name, &fingerprint))
            .unwrap_or(false);
        let status = match verified {
            Some(verified) if verified == fingerprint => TrustStatus::Verified,
            Some(_) => {
                self.error(
                    ErrorCode::IdentityChanged,
                    format!("{name} was verified with another key: this may not be {name}"),
                    Some(peer),
                );
                TrustStatus::Changed
            }
            None if known_otherwise => {
                self.error(
                    ErrorCode::IdentityChanged,
                    format!("{name} was met before with another key: this may not be {name}"),
                    Some(peer),
                );
                TrustStatus::Changed
            }
            None => TrustStatus::Unverified,
        };
        self.emit(Event::Trust {
            peer: peer.to_owned(),
            name: name.to_owned(),
            fingerprint: fingerprint.clone(),
            status,
        });
        self.report_store(self.store.met(&fingerprint, name, &self.room()));
    }

    pub(super) fn verify(&mut self, peer: &str) {
        let Some(remote) = self.peers.get(peer) else {
            return self.error(
                ErrorCode::UnknownPeer,
                format!("no peer {peer}"),
                Some(peer),
            );
        };
        let Some(fingerprint) = remote.fingerprint.clone() else {
            return self.error(
                ErrorCode::NotConnected,
                format!("{peer} has no known key yet"),
                Some(peer),
            );
        };
        let name = remote.name.clone();
        if self
            .report_store(self.store.verify(&name, &fingerprint))
            .is_some()
        {
            self.emit(Event::Trust {
                peer: peer.to_owned(),
                name,
                fingerprint,
                status: TrustStatus::Verified,
            });
        }
    }
}
