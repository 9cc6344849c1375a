//! Room passwords: kept only as a salted SHA-256, compared in constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Serialisable so that a room can move to another server of a cluster with its password.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct PasswordHash {
    salt: [u8; 16],
    digest: [u8; 32],
}

impl PasswordHash {
    pub(crate) fn new(password: &str, salt: [u8; 16]) -> Self {
        Self {
            digest: digest(&salt, password),
            salt,
        }
    }

    pub(crate) fn matches(&self, candidate: &str) -> bool {
        digest(&self.salt, candidate).ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

fn digest(salt: &[u8; 16], password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_password() {
        let hash = PasswordHash::new("hunter2", [7; 16]);
        assert!(hash.matches("hunter2"));
        assert!(!hash.matches("hunter3"));
        assert!(!hash.matches(""));
    }

    #[test]
    fn the_salt_changes_the_digest() {
        assert_ne!(
            PasswordHash::new("pw", [1; 16]).digest,
            PasswordHash::new("pw", [2; 16]).digest
        );
    }
}
