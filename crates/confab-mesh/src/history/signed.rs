//! Signing room messages and checking the signatures of others'.
//!
//! A signature covers every field that makes a message what it is: the room, the author's
//! key, the id, the time, the author's name and the text. It is checked with the author's
//! certificate, which must hash to the author's key, so a certificate cannot be swapped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use webrtc::peer_connection::crypto::{self, PublicKey, PublicKeyEncoding, SignatureScheme};

use crate::{Identity, MeshError};

/// Tells these signatures from any other use of the same key.
const DOMAIN: &[u8] = b"confab room message v1";

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedFields<'a> {
    pub(crate) room: &'a str,
    /// The author's key (its certificate's fingerprint).
    pub(crate) author: &'a str,
    pub(crate) id: &'a str,
    pub(crate) ts: u64,
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
}

impl SignedFields<'_> {
    /// The signed bytes: each field length-prefixed, so no two messages share them.
    fn bytes(&self) -> Vec<u8> {
        let fields = [
            self.room.as_bytes(),
            self.author.as_bytes(),
            self.id.as_bytes(),
            &self.ts.to_be_bytes(),
            self.name.as_bytes(),
            self.text.as_bytes(),
        ];
        let mut bytes =
            Vec::with_capacity(DOMAIN.len() + fields.iter().map(|f| 8 + f.len()).sum::<usize>());
        bytes.extend_from_slice(DOMAIN);
        for field in fields {
            bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
            bytes.extend_from_slice(field);
        }
        bytes
    }
}

/// Why a signature or a certificate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SignatureError {
    #[error("the certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error("the certificate's key is not ECDSA P-256")]
    UnsupportedKey,
    #[error("the signature is not base64")]
    NotBase64,
    #[error("the signature does not match the message")]
    Mismatch,
    #[error("no certificate is known for its author")]
    UnknownAuthor,
}

/// This install's signature of one of its messages, in base64.
pub(crate) fn sign(identity: &Identity, fields: &SignedFields<'_>) -> Result<String, MeshError> {
    identity
        .sign(&fields.bytes())
        .map(|signature| BASE64.encode(signature))
}

/// The key (fingerprint) a certificate gives its holder, as SDP writes it.
pub(crate) fn fingerprint_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// An author's certificate, read: its key and the public key that checks its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorCert {
    pub(crate) key: String,
    /// The certificate as it came, to pass on with the author's messages.
    pub(crate) der: Vec<u8>,
    /// SEC1 uncompressed point.
    public_key: Vec<u8>,
}

impl AuthorCert {
    pub(crate) fn from_der(der: Vec<u8>) -> Result<Self, SignatureError> {
        let (_, certificate) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| SignatureError::BadCertificate(e.to_string()))?;
        let spki = &certificate.tbs_certificate.subject_pki;
        let public_key = spki.subject_public_key.data.to_vec();
        // An uncompressed P-256 point is 65 bytes starting 0x04 (SEC1).
        if spki.algorithm.algorithm != x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
            || public_key.len() != 65
        {
            return Err(SignatureError::UnsupportedKey);
        }
        Ok(Self {
            key: fingerprint_of(&der),
            der,
            public_key,
        })
    }

    /// Reads a certificate sent in base64.
    pub(crate) fn from_base64(text: &str) -> Result<Self, SignatureError> {
        let der = BASE64
            .decode(text)
            .map_err(|e| SignatureError::BadCertificate(e.to_string()))?;
        Self::from_der(der)
    }

    pub(crate) fn to_base64(&self) -> String {
        BASE64.encode(&self.der)
    }

    /// Whether `signature` (base64) is this author's signature of exactly these fields.
    pub(crate) fn verify(
        &self,
        fields: &SignedFields<'_>,
        signature: &str,
    ) -> Result<(), SignatureError> {
        if fields.author != self.key {
            return Err(SignatureError::Mismatch);
        }
        let signature = BASE64
            .decode(signature)
            .map_err(|_| SignatureError::NotBase64)?;
        let provider = crypto::default_provider()
            .map_err(|e| SignatureError::BadCertificate(e.to_string()))?;
        provider
            .crypto()
            .verify_signature(
                SignatureScheme::EcdsaP256Sha256,
                PublicKey {
                    encoding: PublicKeyEncoding::EcUncompressedPoint,
                    bytes: &self.public_key,
                },
                &fields.bytes(),
                &signature,
            )
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields<'a>(author: &'a str, text: &'a str, ts: u64) -> SignedFields<'a> {
        SignedFields {
            room: "lobby",
            author,
            id: "m1",
            ts,
            name: "Ada",
            text,
        }
    }

    #[test]
    fn a_signed_message_verifies_with_its_authors_certificate_only_as_written() {
        let ada = Identity::ephemeral().unwrap();
        let cert = AuthorCert::from_der(ada.certificate_der().to_vec()).unwrap();
        assert_eq!(cert.key, ada.fingerprint());
        let signature = sign(&ada, &fields(ada.fingerprint(), "hi", 5)).unwrap();
        assert_eq!(
            cert.verify(&fields(ada.fingerprint(), "hi", 5), &signature),
            Ok(())
        );

        let altered = fields(ada.fingerprint(), "hi!", 5);
        assert_eq!(
            cert.verify(&altered, &signature),
            Err(SignatureError::Mismatch)
        );
        let redated = fields(ada.fingerprint(), "hi", 6);
        assert_eq!(
            cert.verify(&redated, &signature),
            Err(SignatureError::Mismatch)
        );
        let other_room = SignedFields {
            room: "other",
            ..fields(ada.fingerprint(), "hi", 5)
        };
        assert_eq!(
            cert.verify(&other_room, &signature),
            Err(SignatureError::Mismatch)
        );
        let renamed = SignedFields {
            name: "Eve",
            ..fields(ada.fingerprint(), "hi", 5)
        };
        assert_eq!(
            cert.verify(&renamed, &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            cert.verify(&fields(ada.fingerprint(), "hi", 5), "not base64!"),
            Err(SignatureError::NotBase64)
        );
    }

    #[test]
    fn a_forger_cannot_sign_for_another_author() {
        let ada = Identity::ephemeral().unwrap();
        let eve = Identity::ephemeral().unwrap();
        let ada_cert = AuthorCert::from_der(ada.certificate_der().to_vec()).unwrap();
        let eve_cert = AuthorCert::from_der(eve.certificate_der().to_vec()).unwrap();
        // Eve signs a message that names Ada as its author: Ada's certificate refuses it,
        // and Eve's cannot stand in for Ada's key.
        let forged = sign(&eve, &fields(ada.fingerprint(), "send money", 5)).unwrap();
        assert_eq!(
            ada_cert.verify(&fields(ada.fingerprint(), "send money", 5), &forged),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            eve_cert.verify(&fields(ada.fingerprint(), "send money", 5), &forged),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_certificate_that_is_not_one_is_refused() {
        assert!(matches!(
            AuthorCert::from_der(b"not a certificate".to_vec()),
            Err(SignatureError::BadCertificate(_))
        ));
        assert!(matches!(
            AuthorCert::from_base64("%%%"),
            Err(SignatureError::BadCertificate(_))
        ));
        let ada = Identity::ephemeral().unwrap();
        let cert = AuthorCert::from_der(ada.certificate_der().to_vec()).unwrap();
        assert_eq!(AuthorCert::from_base64(&cert.to_base64()).unwrap(), cert);
    }
}
