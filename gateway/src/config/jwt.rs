//! The token settings: a static key (`GATEWAY_JWT_SECRET` or `GATEWAY_JWT_PUBLIC_KEY`), JWKS URLs
//! (`GATEWAY_JWT_JWKS_URL`), or both, and the algorithms each may verify.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::Url;

use super::args::Args;
use super::error::{ConfigError, invalid};
use super::key::{ASYMMETRIC, KeyMaterial};

/// Most JWKS URLs: each is fetched on every refresh, so a long list multiplies the load an
/// unknown `kid` puts on identity providers.
const MAX_JWKS_URLS: usize = 8;

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The static key; `None` when only a JWKS is configured.
    pub key: Option<KeyMaterial>,
    /// Accepted algorithms: the static key uses those of its family, JWKS keys the asymmetric
    /// ones that fit each key.
    pub algorithms: Vec<Algorithm>,
    pub jwks: Option<JwksConfig>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
}

/// Where the JWKS come from and how often they may be fetched.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// In the configured order: a `kid` found in two sets is taken from the first.
    pub urls: Vec<Url>,
    pub min_refresh: Duration,
    pub timeout: Duration,
}

pub(super) fn jwt_config(a: &Args) -> Result<Option<JwtConfig>, ConfigError> {
    let key = static_key(a.jwt_secret.clone(), a.jwt_public_key.clone())?;
    let jwks = jwks_config(a)?;
    if key.is_none() && jwks.is_none() {
        if !a.jwt_algorithms.is_empty() {
            return Err(invalid("GATEWAY_JWT_ALGORITHMS", "set GATEWAY_JWT_SECRET, GATEWAY_JWT_PUBLIC_KEY or GATEWAY_JWT_JWKS_URL too"));
        }
        return Ok(None);
    }
    let algorithms = algorithms(&a.jwt_algorithms, key.as_ref(), jwks.is_some())?;
    Ok(Some(JwtConfig {
        key,
        algorithms,
        jwks,
        issuer: a.jwt_issuer.clone(),
        audience: a.jwt_audience.clone(),
        leeway: a.jwt_leeway.into(),
    }))
}

fn static_key(secret: Option<String>, public_key: Option<String>) -> Result<Option<KeyMaterial>, ConfigError> {
    match (secret, public_key) {
        (Some(_), Some(_)) => Err(invalid("GATEWAY_JWT_SECRET", "set either GATEWAY_JWT_SECRET or GATEWAY_JWT_PUBLIC_KEY, not both")),
        (None, None) => Ok(None),
        (Some(secret), None) => {
            if secret.len() < 32 {
                return Err(invalid("GATEWAY_JWT_SECRET", "must be at least 32 bytes (RFC 7518 requires a key as long as the hash)"));
            }
            Ok(Some(KeyMaterial::Secret(secret.into_bytes())))
        }
        (None, Some(pk)) => {
            let pem = if pk.trim_start().starts_with("-----BEGIN") {
                pk.into_bytes()
            } else {
                std::fs::read(Path::new(&pk))
                    .map_err(|e| invalid("GATEWAY_JWT_PUBLIC_KEY", format!("neither PEM text nor a readable file ({e})")))?
            };
            KeyMaterial::public_from_pem(pem).map(Some).map_err(|e| invalid("GATEWAY_JWT_PUBLIC_KEY", e))
        }
    }
}

fn jwks_config(a: &Args) -> Result<Option<JwksConfig>, ConfigError> {
    let var = "GATEWAY_JWT_JWKS_URL";
    let mut urls = Vec::new();
    for raw in a.jwt_jwks_url.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let url = Url::parse(raw).map_err(|e| invalid(var, format!("{raw:?} is not a URL ({e})")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(var, format!("{raw:?}: expected https://host/path (or http:// for a provider on a trusted network)")));
        }
        // The URL is logged when a fetch fails; a password in it would be too.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(var, "must not carry credentials (user:password@)"));
        }
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    if urls.len() > MAX_JWKS_URLS {
        return Err(invalid(var, format!("at most {MAX_JWKS_URLS} URLs")));
    }
    let min_refresh: Duration = a.jwt_jwks_min_refresh.into();
    if min_refresh < Duration::from_millis(100) || min_refresh > Duration::from_secs(3600) {
        return Err(invalid("GATEWAY_JWT_JWKS_MIN_REFRESH", "must be between 100ms and 1h"));
    }
    let timeout: Duration = a.jwt_jwks_timeout.into();
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
        return Err(invalid("GATEWAY_JWT_JWKS_TIMEOUT", "must be between 100ms and 60s"));
    }
    Ok(Some(JwksConfig { urls, min_refresh, timeout }))
}

/// The accepted algorithms. Unset: the static key's default and, with a JWKS, every asymmetric
/// algorithm (each JWKS key narrows them to its own `alg` or family). Set: each must be usable by
/// some key, so that no configuration can accept an HMAC token checked against a public key.
fn algorithms(names: &[String], key: Option<&KeyMaterial>, jwks: bool) -> Result<Vec<Algorithm>, ConfigError> {
    let var = "GATEWAY_JWT_ALGORITHMS";
    if names.is_empty() {
        let mut all: Vec<Algorithm> = key.map(KeyMaterial::default_algorithm).into_iter().collect();
        if jwks {
            all.extend(ASYMMETRIC.iter().filter(|a| !all.contains(a)).collect::<Vec<_>>());
        }
        return Ok(all);
    }
    let mut parsed = Vec::new();
    for name in names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let alg: Algorithm = name.parse().map_err(|_| invalid(var, format!("unknown algorithm {name:?}")))?;
        let for_key = key.is_some_and(|k| k.accepts(alg));
        let for_jwks = jwks && ASYMMETRIC.contains(&alg);
        if !for_key && !for_jwks {
            let reason = match key {
                Some(k) if jwks => {
                    format!("{name} fits neither the configured key ({}) nor a JWKS (HMAC never comes from a JWKS)", k.kind())
                }
                Some(k) => format!("{name} does not fit the configured key ({})", k.kind()),
                None => format!("{name} cannot come from a JWKS (HMAC needs GATEWAY_JWT_SECRET)"),
            };
            return Err(invalid(var, reason));
        }
        if !parsed.contains(&alg) {
            parsed.push(alg);
        }
    }
    if parsed.is_empty() {
        return Err(invalid(var, "no algorithm given"));
    }
    if let Some(k) = key.filter(|k| !parsed.iter().any(|a| k.accepts(*a))) {
        return Err(invalid(var, format!("none fits the configured key ({})", k.kind())));
    }
    if jwks && !parsed.iter().any(|a| ASYMMETRIC.contains(a)) {
        return Err(invalid(var, "none can verify JWKS keys (RS*, PS*, ES256, ES384, EdDSA)"));
    }
    Ok(parsed)
}
