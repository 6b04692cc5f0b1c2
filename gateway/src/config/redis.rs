//! The Redis settings that need more than a scalar: the URL (`GATEWAY_REDIS_URL`), whose `Debug`
//! hides credentials, and the CA certificates of `GATEWAY_REDIS_CA_FILE`, read and parsed here so
//! that a bad file stops the gateway at start with a message naming its variable, and the bus's
//! TLS set-up (`bus/redis/tls.rs`) trusts exactly what was checked.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A Redis URL the gateway can use. Its `Debug` hides credentials, so a logged or printed config
/// never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "redis" | "redis-sentinel" | "redis-cluster" | "rediss" | "rediss-sentinel" | "rediss-cluster" => {}
            _ => {
                return Err(
                    "expected redis[s]://host:port[/db], redis[s]-cluster://host:port[?node=host:port…] or redis[s]-sentinel://".into()
                );
            }
        }
        fred::types::config::Config::from_url(url).map_err(|e| e.details().to_string())?;
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the URL asks for TLS (`rediss://`, `rediss-cluster://`, `rediss-sentinel://`).
    pub fn uses_tls(&self) -> bool {
        self.0.starts_with("rediss")
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once("://").and_then(|(scheme, rest)| rest.split_once('@').map(|(_, host)| (scheme, host))) {
            Some((scheme, host)) => write!(f, "{scheme}://***@{host}"),
            None => f.write_str(&self.0),
        }
    }
}

/// Why the CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read CA certificates from {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0} holds no CA certificate")]
    Empty(String),
}

/// The certificates of a PEM file: checked at start, and read again by the bus when it builds
/// its TLS connector.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CaError::Read { path: shown.clone(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(CaError::Empty(shown));
    }
    Ok(certs)
}
