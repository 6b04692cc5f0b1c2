//! Demo mode: a demo page URL and ready-to-use tokens printed at start (24 h, every topic).
//!
//! With no key configured the gateway must not run open, so it makes a random secret and signs the
//! tokens with it; they work until the process exits. A random secret is one process's own, so
//! several nodes behind a load balancer would refuse each other's tokens: `GATEWAY_DEMO` signs
//! them with the configured `GATEWAY_JWT_SECRET` instead, which every node shares.

use std::net::SocketAddr;

use jsonwebtoken::{EncodingKey, Header};
use rand::RngCore;
use shared::{Claims, TopicPattern};

use crate::config::{JwtConfig, KeyMaterial, is_hmac};
use crate::epoch::now_secs;

#[derive(Debug)]
pub struct DemoTokens {
    pub subscribe: String,
    pub publish: String,
    pub secret: SecretSource,
}

/// Where the signing secret came from, which decides who else accepts the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// Made up at start: only this process accepts the tokens.
    Random,
    /// `GATEWAY_JWT_SECRET` with `GATEWAY_DEMO`: every node sharing the secret accepts them.
    Configured,
}

pub(crate) fn random_secret() -> KeyMaterial {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    KeyMaterial::Secret(secret)
}

/// Tokens the verifier configured by `jwt` accepts: signed with `secret` by its first HS algorithm
/// (the secret is an HMAC key; with a JWKS the list also holds public-key ones), carrying its
/// required issuer and audience.
pub(crate) fn tokens(secret: &[u8], jwt: &JwtConfig, source: SecretSource) -> Result<DemoTokens, jsonwebtoken::errors::Error> {
    let all = vec![TopicPattern::parse("*").expect("* is a valid pattern")];
    let base = Claims {
        sub: Some("demo".into()),
        exp: now_secs() + 24 * 3600,
        iat: Some(now_secs()),
        iss: jwt.issuer.clone(),
        aud: jwt.audience.clone().map(serde_json::Value::String),
        ..Claims::default()
    };
    let alg = jwt.algorithms.iter().copied().find(|a| is_hmac(*a)).unwrap_or(jsonwebtoken::Algorithm::HS256);
    let (header, key) = (Header::new(alg), EncodingKey::from_secret(secret));
    Ok(DemoTokens {
        subscribe: jsonwebtoken::encode(&header, &Claims { subscribe: all.clone(), ..base.clone() }, &key)?,
        publish: jsonwebtoken::encode(&header, &Claims { publish: all, ..base }, &key)?,
        secret: source,
    })
}

/// The base URL a person on this machine can open.
pub(crate) fn base_url(listen: SocketAddr, public: Option<&str>) -> String {
    match public {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if listen.ip().is_unspecified() => format!("http://localhost:{}", listen.port()),
        None => format!("http://{listen}"),
    }
}

/// The banner printed to stdout (not the log) in demo mode. The page's tokens come after `#`: a
/// browser never sends a URL's fragment, so they reach no server or proxy log (the page trades
/// its token for a one-time ticket to open its stream: `tickets.rs`).
pub(crate) fn banner(base: &str, clock_topic: &str, t: &DemoTokens) -> String {
    let why = match t.secret {
        SecretSource::Random => {
            "Demo mode: neither GATEWAY_JWT_SECRET nor GATEWAY_JWT_PUBLIC_KEY is set, so the gateway made a random\n\
             secret; these tokens work until it exits. Configure a key for real use."
        }
        SecretSource::Configured => {
            "Demo mode (GATEWAY_DEMO): these tokens are signed with GATEWAY_JWT_SECRET, so every node sharing it\n\
             accepts them, for 24 hours. They grant every topic: turn GATEWAY_DEMO off for real use."
        }
    };
    format!(
        "\n{why}\n\n\
         \x20 Demo page:  {base}/#topic={clock_topic}&access_token={sub}&publish_token={publ}\n\n\
         \x20 Subscribe:  curl -N '{base}/events?topic={clock_topic}' -H 'Authorization: Bearer {sub}'\n\
         \x20 Publish:    curl '{base}/publish' -H 'Authorization: Bearer {publ}' -H 'Content-Type: application/json' \\\n\
         \x20               -d '{{\"topic\":\"{clock_topic}\",\"data\":\"hello\"}}'\n",
        sub = t.subscribe,
        publ = t.publish,
    )
}
