//! Short-lived TURN credentials in the TURN REST convention (coturn's `use-auth-secret`):
//! the username is `EXPIRY:PEER_ID` and the password base64(HMAC-SHA1(secret, username)).
//! The signaling server makes them for each `welcome`; the relay checks them, and counts
//! each peer's allocations against its quota.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use turn::auth::AuthHandler;

use crate::metrics::{Refusal, RelayMetrics};

/// base64(HMAC-SHA1(secret, username)), as coturn computes it for `use-auth-secret`.
pub fn rest_credential(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks REST credentials and holds each peer to `max_per_peer` client addresses (one
/// per allocation) at a time.
pub(crate) struct RestAuth {
    secret: String,
    max_per_peer: usize,
    /// The client addresses each username has open allocations from.
    clients: Mutex<HashMap<String, HashSet<SocketAddr>>>,
    metrics: Arc<RelayMetrics>,
}

impl RestAuth {
    pub(crate) fn new(secret: String, max_per_peer: usize, metrics: Arc<RelayMetrics>) -> Self {
        Self {
            secret,
            max_per_peer,
            clients: Mutex::default(),
            metrics,
        }
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<String, HashSet<SocketAddr>>> {
        // Each change is one insert or remove: a poisoned map is still whole.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An allocation of `username`'s from `client` has ended: its place in the quota frees.
    pub(crate) fn release(&self, username: &str, client: SocketAddr) {
        let mut clients = self.clients();
        if let Some(set) = clients.get_mut(username) {
            set.remove(&client);
            if set.is_empty() {
                clients.remove(username);
            }
        }
    }

    fn admit(&self, username: &str, client: SocketAddr, now: SystemTime) -> Result<(), String> {
        let expiry = username
            .split_once(':')
            .and_then(|(expiry, _peer)| expiry.parse::<u64>().ok())
            .ok_or_else(|| format!("`{username}` is not EXPIRY:PEER_ID"))?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if expiry < now {
            return Err(format!("`{username}` expired"));
        }
        let mut clients = self.clients();
        let set = clients.entry(username.to_owned()).or_default();
        if !set.contains(&client) && set.len() >= self.max_per_peer {
            return Err(format!(
                "`{username}` already has {} allocations",
                set.len()
            ));
        }
        set.insert(client);
        Ok(())
    }
}

impl AuthHandler for RestAuth {
    /// The long-term key (RFC 8489 section 9.2.2) of `username`'s REST password; the turn
    /// crate checks the request's integrity with it.
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        if let Err(why) = self.admit(username, src_addr, SystemTime::now()) {
            tracing::debug!(%src_addr, "TURN request refused: {why}");
            self.metrics.refuse(Refusal::Credentials);
            return Err(turn::Error::Other(why));
        }
        let password = rest_credential(&self.secret, username);
        let mut md5 = Md5::new();
        md5.update(format!("{username}:{realm}:{password}").as_bytes());
        Ok(md5.finalize().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, 7], port))
    }

    #[test]
    fn the_credential_is_rfc_2202s_hmac_sha1_in_base64() {
        assert_eq!(
            rest_credential("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn expired_and_malformed_usernames_are_refused_and_quotas_free_on_release() {
        let auth = RestAuth::new("s".into(), 2, Arc::default());
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(auth.admit("999:p1", addr(1), now).is_err(), "expired");
        assert!(auth.admit("p1", addr(1), now).is_err(), "no expiry");
        assert!(auth.admit("soon:p1", addr(1), now).is_err(), "not a number");
        assert!(auth.admit("2000:p1", addr(1), now).is_ok());
        assert!(
            auth.admit("2000:p1", addr(1), now).is_ok(),
            "the same client again"
        );
        assert!(auth.admit("2000:p1", addr(2), now).is_ok());
        assert!(
            auth.admit("2000:p1", addr(3), now).is_err(),
            "a third allocation"
        );
        assert!(
            auth.admit("2000:p2", addr(3), now).is_ok(),
            "another peer's own quota"
        );
        auth.release("2000:p1", addr(1));
        assert!(auth.admit("2000:p1", addr(3), now).is_ok());
    }
}
