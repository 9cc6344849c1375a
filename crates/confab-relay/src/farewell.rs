//! A client that reached the relay over TCP or TLS and whose stream ended (it closed, or
//! its network went) cannot come back to its allocation: a stream's 5-tuple is gone with
//! it. The turn crate deletes allocations only when refreshed with LIFETIME 0 or when
//! their lifetime runs out (10 minutes), and until then the allocation keeps its relay
//! port and its place in the peer's quota. So the relay says goodbye on the client's
//! behalf: from the last authenticated request the client sent, a Refresh with LIFETIME 0
//! signed with the same long-term credentials, handed to the turn crate as if from the
//! client's 5-tuple, which deletes the allocation at once (RFC 8656 section 7).

use std::time::Duration;

use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::{CLASS_REQUEST, METHOD_REFRESH, Message, MessageType, Setter};
use stun::textattrs::TextAttribute;
use turn::proto::lifetime::Lifetime;

/// The STUN type of `raw`, read from its header, if it is a STUN message.
pub(crate) fn stun_type(raw: &[u8]) -> Option<MessageType> {
    let &[high, low] = raw.first_chunk::<2>()?;
    if !stun::message::is_message(raw) {
        return None;
    }
    let mut typ = MessageType::default();
    typ.read_value(u16::from_be_bytes([high, low]));
    Some(typ)
}

/// The credentials of a client's last authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signed {
    pub username: String,
    realm: String,
    nonce: String,
}

impl Signed {
    /// The credentials `raw` carries if it is a signed STUN request (USERNAME, REALM and
    /// NONCE; the turn crate checks its integrity); `None` for anything else, ChannelData
    /// included.
    pub(crate) fn of(raw: &[u8]) -> Option<Self> {
        // Every datagram a client relays comes through here: only a request is decoded.
        if stun_type(raw)?.class != CLASS_REQUEST {
            return None;
        }
        let mut message = Message::new();
        message.raw = raw.to_vec();
        message.decode().ok()?;
        let text = |attr| {
            TextAttribute::get_from_as(&message, attr)
                .ok()
                .map(|a| a.text)
        };
        Some(Self {
            username: text(ATTR_USERNAME)?,
            realm: text(ATTR_REALM)?,
            nonce: text(ATTR_NONCE)?,
        })
    }

    /// Credentials as a client of `username` would sign with.
    #[cfg(test)]
    pub(crate) fn for_test(username: &str) -> Self {
        Self {
            username: username.to_owned(),
            realm: "confab".to_owned(),
            nonce: "n0nce".to_owned(),
        }
    }

    /// A Refresh request with LIFETIME 0 signed with the long-term key made from `password`.
    pub(crate) fn farewell(&self, password: &str) -> Result<Vec<u8>, stun::Error> {
        let mut message = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_REFRESH, CLASS_REQUEST)),
            Box::new(Lifetime(Duration::ZERO)),
            Box::new(TextAttribute::new(ATTR_USERNAME, self.username.clone())),
            Box::new(TextAttribute::new(ATTR_REALM, self.realm.clone())),
            Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())),
            Box::new(MessageIntegrity::new_long_term_integrity(
                self.username.clone(),
                self.realm.clone(),
                password.to_owned(),
            )),
        ];
        message.build(&setters)?;
        Ok(message.raw)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use stun::message::{BINDING_REQUEST, Getter};

    use super::*;

    fn signed() -> Signed {
        Signed {
            username: "2000000000:p1".into(),
            realm: "confab".into(),
            nonce: "n0nce".into(),
        }
    }

    #[test]
    fn a_farewell_is_a_signed_refresh_with_lifetime_zero_that_reads_back_its_credentials() {
        let raw = signed().farewell("secret").unwrap();
        assert_eq!(Signed::of(&raw), Some(signed()));
        let mut message = Message::new();
        message.raw = raw;
        message.decode().unwrap();
        assert_eq!(message.typ, MessageType::new(METHOD_REFRESH, CLASS_REQUEST));
        let mut lifetime = Lifetime::default();
        lifetime.get_from(&message).unwrap();
        assert_eq!(lifetime.0, Duration::ZERO);
        let key = MessageIntegrity::new_long_term_integrity(
            "2000000000:p1".into(),
            "confab".into(),
            "secret".into(),
        );
        key.check(&mut message).unwrap();
    }

    #[test]
    fn unsigned_requests_channel_data_and_garbage_carry_no_credentials() {
        let mut binding = Message::new();
        binding
            .build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])
            .unwrap();
        assert_eq!(Signed::of(&binding.raw), None);
        // ChannelData: channel 0x4000, 4 bytes of data.
        assert_eq!(Signed::of(&[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]), None);
        assert_eq!(Signed::of(&[0x00, 0x01, 0x00]), None);
    }
}
