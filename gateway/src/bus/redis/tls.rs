//! TLS to Redis (`rediss://`): by default the system's trusted roots (fred's own set-up); with
//! `GATEWAY_REDIS_CA_FILE`, only the CA certificates of that file, for a Redis whose certificate
//! comes from a private CA (managed Redis services, an in-cluster CA). The file is read and
//! parsed by the configuration (`config/redis.rs`), which checked it at start.

use std::path::Path;
use std::sync::Arc;

use fred::types::config::TlsConnector;
use rustls::RootCertStore;

use crate::config::{CaError, read_ca};

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// A TLS connector trusting exactly the CA certificates of `path`.
pub(crate) fn connector(path: &Path) -> Result<TlsConnector, TlsError> {
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
