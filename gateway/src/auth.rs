//! Token verification: which key, which algorithms, where the token comes from, and why it was
//! refused. A token is never logged: errors carry the reason, not the token.
//!
//! Keys come from the static configuration (`GATEWAY_JWT_SECRET` or `GATEWAY_JWT_PUBLIC_KEY`)
//! and from identity providers' key sets (`GATEWAY_JWT_JWKS_URL`, see `jwks.rs`). Which one
//! verifies a token:
//! - an HMAC (`HS*`) token: the static secret only, never a JWKS key;
//! - a token whose `kid` is in a JWKS: that key only;
//! - any other token (no `kid`, or a `kid` no JWKS has): the static key if one is configured;
//!   when it does not verify the signature (or there is none) and the token has a `kid`, the key
//!   sets are fetched again (rate-limited) and a key found then verifies it.

mod decode;
mod error;
mod jwks;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use shared::Claims;

use crate::config::{JwtConfig, is_hmac};
use crate::counters::Counters;
use crate::epoch::now_secs;

pub(crate) use decode::RawToken;
pub(crate) use decode::{Checks, decode};
pub(crate) use error::AuthError;
pub(crate) use jwks::Jwks;

/// Why the verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the JWT key cannot be used")]
    Key(#[source] jsonwebtoken::errors::Error),
    #[error("cannot build the HTTP client that fetches the JWKS")]
    Client(#[source] reqwest::Error),
}

/// The static key with the validation it is used with (its algorithms only).
struct StaticKey {
    key: DecodingKey,
    validation: Validation,
}

/// Whether a request may carry its token in the auth cookie. Not for publishing or the admin API:
/// a cross-site form would carry the cookie and act as the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieToken {
    Accepted,
    Refused,
}

/// Verifies tokens against the configured keys, algorithms and registered claims.
pub struct Authenticator {
    fixed: Option<StaticKey>,
    jwks: Option<Arc<Jwks>>,
    cookie: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms = self.fixed.as_ref().map(|k| &k.validation.algorithms);
        f.debug_struct("Authenticator").field("algorithms", &algorithms).field("jwks", &self.jwks).finish_non_exhaustive()
    }
}

/// What every key checks besides the signature: `exp`, `nbf`, and the configured `aud` and `iss`.
/// `algorithms` is set per key.
fn claim_checks(jwt: &JwtConfig) -> Validation {
    let mut validation = Validation::new(jwt.algorithms[0]);
    validation.leeway = jwt.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // The library checks `aud` and `iss` only when a token carries them, so a configured
    // audience or issuer must also be a required claim, or leaving it out would bypass it.
    let mut required = vec!["exp"];
    match &jwt.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    if let Some(iss) = &jwt.issuer {
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

impl Authenticator {
    /// Builds the verifier. The JWKS (if any) are not fetched yet: see [`Authenticator::jwks`].
    pub fn new(jwt: &JwtConfig, cookie: &str, counters: Arc<Counters>) -> Result<Self, SetupError> {
        let checks = claim_checks(jwt);
        let fixed = match &jwt.key {
            Some(key) => {
                let mut validation = checks.clone();
                validation.algorithms = jwt.algorithms.iter().copied().filter(|a| key.accepts(*a)).collect();
                Some(StaticKey { key: key.decoding_key().map_err(SetupError::Key)?, validation })
            }
            None => None,
        };
        let jwks = match &jwt.jwks {
            Some(config) => Some(Arc::new(Jwks::new(config, &jwt.algorithms, checks, counters).map_err(SetupError::Client)?)),
            None => None,
        };
        Ok(Self { fixed, jwks, cookie: cookie.to_owned() })
    }

    /// The key sets, when `GATEWAY_JWT_JWKS_URL` is set: the app fetches them at start and keeps
    /// them fresh.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Whether every key source has answered at least once (readiness).
    pub fn keys_ready(&self) -> bool {
        self.jwks.as_ref().is_none_or(|j| j.ready())
    }

    /// Verifies `token`, and fills its personal grants (`{sub}`) with its subject; may wait for
    /// a (rate-limited, shared) JWKS refresh when its `kid` is unknown, so that the first token
    /// signed with a freshly rotated key passes.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_signature::<Claims>(token, Checks::Full).await?.personalize().map_err(|_| AuthError::Subject)
    }

    /// Verifies `token`'s signature with the same keys as [`Authenticator::verify`], and hands
    /// back its claims unjudged (the signature and algorithm only: `decode.rs`).
    pub async fn verify_raw(&self, token: &str) -> Result<RawToken, AuthError> {
        let claims = self.verify_signature::<serde_json::Value>(token, Checks::SignatureOnly).await?;
        let typ = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?.typ;
        Ok(RawToken { typ, claims })
    }

    async fn verify_signature<T: serde::de::DeserializeOwned>(&self, token: &str, checks: Checks) -> Result<T, AuthError> {
        // The header first: one the library cannot read (`alg: none`, an unknown algorithm) is
        // refused for its algorithm rather than reported as a claims error.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => AuthError::Algorithm,
            _ => AuthError::Malformed,
        })?;
        let by_static = || match &self.fixed {
            Some(k) => decode(token, &k.key, &k.validation, checks),
            None if self.jwks.is_some() && header.kid.is_none() && !is_hmac(header.alg) => Err(AuthError::UnknownKey),
            None => Err(AuthError::Algorithm),
        };
        let (Some(jwks), Some(kid)) = (&self.jwks, header.kid.as_deref()) else { return by_static() };
        if is_hmac(header.alg) {
            return by_static();
        }
        if let Some(key) = jwks.find(kid) {
            return key.verify(token, checks);
        }
        // A `kid` the static key may own: no need to bother the identity provider when it
        // verifies. A token it refuses for a reason other than its signature is refused for that.
        if self.fixed.as_ref().is_some_and(|k| k.validation.algorithms.contains(&header.alg)) {
            match by_static() {
                Err(AuthError::Signature) => {}
                other => return other,
            }
        }
        jwks.find_after_refresh(kid).await?.verify(token, checks)
    }

    /// Finds the token: `Authorization: Bearer` first, then the `access_token` query parameter
    /// (browsers' `EventSource` cannot set headers), then the cookie when it is accepted.
    pub(crate) fn token<'a>(
        &self,
        headers: &'a HeaderMap,
        query_token: Option<&'a str>,
        cookie_token: CookieToken,
    ) -> Result<&'a str, AuthError> {
        if let Some(token) = bearer(headers)? {
            return Ok(token);
        }
        if let Some(t) = query_token {
            return Ok(t);
        }
        let cookie = if cookie_token == CookieToken::Accepted { cookie(headers, &self.cookie) } else { None };
        cookie.ok_or(AuthError::Missing)
    }
}

/// The token of an `Authorization: Bearer` header, `None` without the header. A header that is
/// there but not a bearer token is an error, not "no token": the client meant to authenticate.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(Some(token.trim())),
        _ => Err(AuthError::MalformedHeader),
    }
}

/// The non-empty value of the cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, token)| *n == name && !token.is_empty())
        .map(|(_, token)| token)
}

/// Mints an HS256 token; used for the demo tokens printed at start.
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
}

/// How long until `exp` passes, counting the leeway the verifier allowed.
pub(crate) fn time_left(claims: &Claims, leeway: Duration) -> Duration {
    time_left_until(claims.exp, leeway)
}

/// How long until `exp` (seconds since the epoch) plus the leeway.
pub(crate) fn time_left_until(exp: u64, leeway: Duration) -> Duration {
    let deadline = exp.saturating_add(leeway.as_secs());
    Duration::from_secs(deadline.saturating_sub(now_secs()))
}
