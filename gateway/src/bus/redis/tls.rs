//! TLS to Redis (`rediss://`): by default the system's trusted roots (fred's own set-up); with
//! `GATEWAY_REDIS_CA_FILE`, only the CA certificates of that file, for a Redis whose certificate
//! comes from a private CA (managed Redis services, an in-cluster CA).

use std::path::Path;
use std::sync::Arc;

use fred::types::config::TlsConnector;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA certificates from {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0} holds no CA certificate")]
    Empty(String),
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The certificates of a PEM file (checked at start, so that a bad file stops the gateway with
/// a message naming its variable).
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Read { path: shown.clone(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(shown));
    }
    Ok(certs)
}

/// A TLS connector trusting exactly the CA certificates of `path`.
pub fn connector(path: &Path) -> Result<TlsConnector, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_ca(path)? {
        roots.add(cert).map_err(|e| TlsError::Setup(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(config))
}
