//! Demo mode: with no key configured the gateway must not run open, so it makes a random secret
//! and prints tokens signed with it, valid until the process exits (24 h at most).

use std::net::SocketAddr;

use rand::RngCore;
use shared::{Claims, TopicPattern};

use crate::auth::{self, KeyMaterial};

#[derive(Debug)]
pub struct DemoTokens {
    pub subscribe: String,
    pub publish: String,
}

pub fn random_secret() -> KeyMaterial {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    KeyMaterial::Secret(secret)
}

pub fn tokens(secret: &[u8]) -> Result<DemoTokens, jsonwebtoken::errors::Error> {
    let all = vec![TopicPattern::parse("*").expect("* is a valid pattern")];
    let base = Claims { sub: Some("demo".into()), exp: auth::now_secs() + 24 * 3600, iat: Some(auth::now_secs()), ..Claims::default() };
    Ok(DemoTokens {
        subscribe: auth::mint(secret, &Claims { subscribe: all.clone(), ..base.clone() })?,
        publish: auth::mint(secret, &Claims { publish: all, ..base })?,
    })
}

/// The base URL a person on this machine can open.
pub fn base_url(listen: SocketAddr, public: Option<&str>) -> String {
    match public {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if listen.ip().is_unspecified() => format!("http://localhost:{}", listen.port()),
        None => format!("http://{listen}"),
    }
}

/// The banner printed to stdout (not the log) in demo mode.
pub fn banner(base: &str, clock_topic: &str, t: &DemoTokens) -> String {
    format!(
        "\nDemo mode: neither GATEWAY_JWT_SECRET nor GATEWAY_JWT_PUBLIC_KEY is set, so the gateway made a random\n\
         secret; these tokens work until it exits. Configure a key for real use.\n\n\
         \x20 Demo page:  {base}/?topic={clock_topic}&access_token={sub}&publish_token={publ}\n\n\
         \x20 Subscribe:  curl -N '{base}/events?topic={clock_topic}' -H 'Authorization: Bearer {sub}'\n\
         \x20 Publish:    curl '{base}/publish' -H 'Authorization: Bearer {publ}' -H 'Content-Type: application/json' \\\n\
         \x20               -d '{{\"topic\":\"{clock_topic}\",\"data\":\"hello\"}}'\n",
        sub = t.subscribe,
        publ = t.publish,
    )
}
