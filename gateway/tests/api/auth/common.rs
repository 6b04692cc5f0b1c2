//! What the authentication suites share: key fixtures, token makers and the refusal checks.

use std::time::Duration;

use gateway::config::JwtConfig;
use gateway::config::KeyMaterial;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use shared::Claims;

use support::app::*;

pub(super) const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_private.pem");
pub(super) const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa_public.pem");
pub(super) const EC_PRIVATE: &[u8] = include_bytes!("../fixtures/ec_private.pem");
pub(super) const EC_PUBLIC: &[u8] = include_bytes!("../fixtures/ec_public.pem");
pub(super) const ED_PRIVATE: &[u8] = include_bytes!("../fixtures/ed_private.pem");
pub(super) const ED_PUBLIC: &[u8] = include_bytes!("../fixtures/ed_public.pem");

/// An HS256 token over arbitrary claims, signed with the test secret.
pub(super) fn hs256(claims: &impl serde::Serialize) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()), claims)
}

pub(super) fn sign(alg: Algorithm, key: &EncodingKey, claims: &impl serde::Serialize) -> String {
    encode(&Header::new(alg), claims, key).expect("sign the token")
}

/// A token granting every topic with a tweak applied to its claims.
pub(super) fn token_with(tweak: impl FnOnce(&mut Claims)) -> String {
    let mut c = claims(&["*"], &["*"]);
    tweak(&mut c);
    hs256(&c)
}

/// `GET /events?topic=...` with the token in the `Authorization` header.
pub(super) async fn get_events(app: &TestApp, topics: &[&str], bearer: &str) -> reqwest::Response {
    app.client.get(app.events_url(topics)).bearer_auth(bearer).send().await.expect("request")
}

/// `POST /publish` of one event with the token in the `Authorization` header.
pub(super) async fn publish_as(app: &TestApp, bearer: &str, topic: &str) -> reqwest::Response {
    app.client.post(app.url("/publish")).bearer_auth(bearer).json(&json!({ "topic": topic, "data": "x" })).send().await.expect("request")
}

/// The status and body of an unexpected response; an event stream is not read (it never ends).
pub(super) async fn describe(resp: reqwest::Response) -> String {
    let status = resp.status();
    if resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
        return format!("{status} (an event stream)");
    }
    format!("{status} {:?}", resp.text().await)
}

pub(super) async fn body_json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the error body is not JSON ({e}): {text:?}"))
}

/// Asserts a 401 with the JSON error body and the RFC 6750 challenge. `reason`: `None` for a
/// missing token (bare challenge), else the `error_description` a bad token must carry.
pub(super) async fn assert_unauthorized(resp: reqwest::Response, reason: Option<&str>) {
    if resp.status() != 401 {
        panic!("expected 401 ({reason:?}), got {}", describe(resp).await);
    }
    let challenge = resp.headers().get("www-authenticate").expect("a 401 carries WWW-Authenticate").to_str().expect("ascii").to_owned();
    match reason {
        None => assert_eq!(challenge, r#"Bearer realm="sse-gateway""#),
        Some(code) => {
            assert!(challenge.starts_with(r#"Bearer realm="sse-gateway""#), "{challenge}");
            assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
            assert!(challenge.contains(&format!(r#"error_description="{code}""#)), "expected reason {code}: {challenge}");
        }
    }
    let body = body_json(resp).await;
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

pub(super) async fn assert_forbidden(resp: reqwest::Response, topic: &str) {
    if resp.status() != 403 {
        panic!("expected 403, got {}", describe(resp).await);
    }
    let body = body_json(resp).await;
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains(topic)), "the message names the topic: {body}");
}

/// An app that verifies with a public key and accepts exactly `alg`.
pub(super) async fn spawn_with_public_key(pem: &[u8], alg: Algorithm) -> TestApp {
    let pem = pem.to_vec();
    spawn_with(move |c| {
        c.jwt = Some(JwtConfig {
            key: Some(KeyMaterial::public_from_pem(pem).expect("a public key")),
            algorithms: vec![alg],
            jwks: None,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(5),
        });
    })
    .await
}
