//! A peer's identity: its DTLS certificate. A desktop install keeps one from run to run,
//! so its fingerprint (what other peers and safety codes know it by) stays the same.

use std::path::Path;

use webrtc::peer_connection::RTCCertificate;
use webrtc::peer_connection::crypto::{self, SignatureScheme};

use crate::MeshError;

const FILE_NAME: &str = "dtls-identity.pem";
const PROVIDER: &str = "loading the crypto provider";
const FINGERPRINT: &str = "taking the fingerprint";

/// A DTLS certificate and its SHA-256 fingerprint.
#[derive(Clone)]
pub struct Identity {
    pub(crate) certificate: RTCCertificate,
    fingerprint: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Identity {
    /// A fresh identity that lives as long as this process.
    pub fn ephemeral() -> Result<Self, MeshError> {
        let provider = crypto::default_provider().map_err(MeshError::identity(PROVIDER))?;
        let params = rcgen::CertificateParams::new(vec!["confab".to_owned()])
            .map_err(MeshError::identity("making a certificate"))?;
        let certificate =
            RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
                .map_err(MeshError::identity("making a certificate"))?;
        Self::from_certificate(certificate)
    }

    /// The identity kept in `dir`, created there on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, MeshError> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                let provider = crypto::default_provider().map_err(MeshError::identity(PROVIDER))?;
                let certificate = RTCCertificate::from_pem(&pem, provider.crypto())
                    .map_err(MeshError::identity("reading the kept certificate"))?;
                Self::from_certificate(certificate)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::ephemeral()?;
                identity.save(dir, &path)?;
                Ok(identity)
            }
            Err(source) => Err(MeshError::IdentityFile { path, source }),
        }
    }

    /// The `sha-256` fingerprint as SDP writes it: upper-case hex pairs with colons.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The certificate, DER-encoded: what others check this identity's signatures with.
    pub(crate) fn certificate_der(&self) -> &[u8] {
        self.certificate
            .dtls_certificate
            .certificate
            .first()
            .map_or(&[], |der| der.as_ref())
    }

    /// The certificate as `hello` carries it: DER in base64.
    pub(crate) fn certificate_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.certificate_der())
    }

    /// Signs `message` with the certificate's key (ECDSA P-256, SHA-256).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, MeshError> {
        self.certificate
            .dtls_certificate
            .private_key
            .signing_key
            .sign(SignatureScheme::EcdsaP256Sha256, message)
            .map_err(MeshError::identity("signing"))
    }

    fn from_certificate(certificate: RTCCertificate) -> Result<Self, MeshError> {
        let provider = crypto::default_provider().map_err(MeshError::identity(PROVIDER))?;
        let fingerprint = certificate
            .get_fingerprints(provider.crypto())
            .map_err(MeshError::identity(FINGERPRINT))?
            .into_iter()
            .find(|f| f.algorithm.eq_ignore_ascii_case("sha-256"))
            .map(|f| f.value.to_uppercase())
            .ok_or_else(|| MeshError::identity(FINGERPRINT)("no sha-256 fingerprint"))?;
        Ok(Self {
            certificate,
            fingerprint,
        })
    }

    fn save(&self, dir: &Path, path: &Path) -> Result<(), MeshError> {
        let io = |source| MeshError::IdentityFile {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let pem = self
            .certificate
            .serialize_pem()
            .map_err(MeshError::identity("writing the certificate"))?;
        // Written aside and renamed, so a crash never leaves half a key behind.
        let partial = path.with_extension("pem.partial");
        write_private(&partial, pem.as_bytes()).map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)
    }
}

/// Writes a file only its owner can read: it holds a private key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_kept_identity_has_the_same_fingerprint_next_time() {
        let dir = std::env::temp_dir().join(format!("confab-identity-{}", std::process::id()));
        let first = Identity::load_or_create(&dir).unwrap();
        let second = Identity::load_or_create(&dir).unwrap();
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        assert!(
            first
                .fingerprint()
                .chars()
                .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_ne!(
            Identity::ephemeral().unwrap().fingerprint(),
            first.fingerprint()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_identity_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("confab-identity-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), "not a pem").unwrap();
        assert!(matches!(
            Identity::load_or_create(&dir),
            Err(MeshError::Identity { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
