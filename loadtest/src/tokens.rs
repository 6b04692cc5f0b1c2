//! Tokens for the streams and the publisher: minted from a shared secret or a private key, or
//! read from a file (one per line, used in turn).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared::{Claims, TopicPattern};

pub(crate) enum Tokens {
    Mint { key: EncodingKey, algorithm: Algorithm },
    List(Vec<String>),
}

impl Tokens {
    pub(crate) fn from_secret(secret: &str) -> Self {
        Self::Mint { key: EncodingKey::from_secret(secret.as_bytes()), algorithm: Algorithm::HS256 }
    }

    /// A PEM private key for `algorithm` (RS*/PS*, ES256/ES384, EdDSA).
    pub(crate) fn from_key_file(path: &Path, algorithm: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let algorithm: Algorithm = algorithm.parse().with_context(|| format!("unknown algorithm {algorithm}"))?;
        let key = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => {
                EncodingKey::from_rsa_pem(&pem)
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            _ => bail!("{algorithm:?} takes a secret: use --secret"),
        }
        .context("the key file is not a PEM private key for that algorithm")?;
        Ok(Self::Mint { key, algorithm })
    }

    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let list: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        if list.is_empty() {
            bail!("{} holds no token", path.display());
        }
        Ok(Self::List(list))
    }

    /// A token for client `n` (its subject), allowed to follow and publish everything, valid
    /// for `ttl`.
    pub(crate) fn token(&self, n: usize, ttl: Duration) -> anyhow::Result<String> {
        match self {
            Self::List(list) => Ok(list[n % list.len()].clone()),
            Self::Mint { key, algorithm } => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let any = vec![TopicPattern::parse("*").context("pattern")?];
                let claims = Claims {
                    sub: Some(format!("loadtest-{n}")),
                    exp: now + ttl.as_secs().max(60),
                    iat: Some(now),
                    subscribe: any.clone(),
                    publish: any,
                    ..Claims::default()
                };
                jsonwebtoken::encode(&Header::new(*algorithm), &claims, key).context("minting a token")
            }
        }
    }

    /// A Mercure 0.x token for client `n`, allowed to subscribe to and publish every topic.
    pub(crate) fn mercure(&self, n: usize, ttl: Duration) -> anyhow::Result<String> {
        match self {
            Self::List(list) => Ok(list[n % list.len()].clone()),
            Self::Mint { key, algorithm } => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let claims = serde_json::json!({
                    "sub": format!("loadtest-{n}"),
                    "exp": now + ttl.as_secs().max(60),
                    "mercure": { "subscribe": ["*"], "publish": ["*"] },
                });
                jsonwebtoken::encode(&Header::new(*algorithm), &claims, key).context("minting a token")
            }
        }
    }
}
