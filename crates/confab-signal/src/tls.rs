//! TLS for `wss://`: the server's certificate, and the client's trust roots.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read PEM from {path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("no certificate in the PEM data")]
    NoCertificate,
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server certificate chain and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path, e: rustls_pki_types::pem::Error| TlsError::Pem {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_error(cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(cert, e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
        Self::new(chain, key)
    }

    /// Builds from a DER certificate chain and key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(Self {
            server: Arc::new(server),
        })
    }

    /// The rustls settings, for the built-in relay's TURN over TLS.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

/// The client's TLS settings: the system's roots plus any extra ones (a self-signed
/// server's certificate, say).
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // A machine without a system store still reaches servers whose roots were given.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(extra_roots.iter().cloned());
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
