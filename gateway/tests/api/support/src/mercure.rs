//! What the Mercure suites share: a hub's configuration per version, tokens shaped as each
//! draft's publishers mint them, and publishing and subscribing the way Mercure clients do.

use std::time::Duration;

use gateway::config::AccessTokenPolicy;
use gateway::config::MercureConfig;
use gateway::config::Protocol;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::app::*;

pub const HUB: &str = "/.well-known/mercure";
/// The 1.0 hub's resource identifier and trusted issuer in these tests.
pub const RESOURCE: &str = "https://hub.example/.well-known/mercure";
pub const ISSUER: &str = "https://issuer.example";
/// How long "not delivered" is watched for: what the conformance suite waits too.
pub const NOT_DELIVERED: Duration = Duration::from_secs(2);

pub fn hub_config(protocol: Protocol, anonymous: bool) -> MercureConfig {
    let hub_url = url::Url::parse(RESOURCE).expect("url");
    let access = (protocol == Protocol::V1).then(|| AccessTokenPolicy {
        resource: RESOURCE.into(),
        issuers: vec![ISSUER.into()],
        hub_url: hub_url.clone(),
    });
    MercureConfig { protocol, anonymous, subscriptions: false, hub_url, access }
}

/// An in-process gateway with the hub on, speaking `protocol`.
pub async fn spawn_hub(protocol: Protocol, anonymous: bool) -> TestApp {
    spawn_with(|c| c.mercure = Some(hub_config(protocol, anonymous))).await
}

/// Signs `claims` with the tests' secret and a JOSE `typ`.
pub fn sign(typ: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some(typ.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign")
}

/// A 0.x token as Symfony mints it: `typ: JWT`, the `mercure` claim, a float `exp`.
pub fn legacy_token(publish: &[&str], subscribe: &[&str]) -> String {
    sign("JWT", &json!({ "mercure": { "publish": publish, "subscribe": subscribe }, "exp": now() as f64 + 3600.5 }))
}

/// A 1.0 access token granting `publish` and `subscribe` on exact matchers (`*` for all).
pub fn access_token(publish: &[&str], subscribe: &[&str]) -> String {
    access_token_with(publish, subscribe, |_| {})
}

/// A 1.0 access token whose claims `edit` may change before signing.
pub fn access_token_with(publish: &[&str], subscribe: &[&str], edit: impl FnOnce(&mut Value)) -> String {
    sign("at+jwt", &access_claims(publish, subscribe, edit))
}

/// The claims of [`access_token_with`].
pub fn access_claims(publish: &[&str], subscribe: &[&str], edit: impl FnOnce(&mut Value)) -> Value {
    let detail = |action: &str, topics: &[&str]| {
        let topics: Vec<Value> = topics.iter().map(|t| json!({ "match": t })).collect();
        json!({ "type": "https://mercure.rocks/authorization-detail", "actions": [action], "topics": topics })
    };
    let mut details = Vec::new();
    if !publish.is_empty() {
        details.push(detail("publish", publish));
    }
    if !subscribe.is_empty() {
        details.push(detail("subscribe", subscribe));
    }
    let mut claims = json!({ "iss": ISSUER, "aud": RESOURCE, "sub": "tester", "exp": now() + 3600, "authorization_details": details });
    edit(&mut claims);
    claims
}

/// Posts a form (pairs in order, keys may repeat) to the hub with `token`.
pub async fn post_form(app: &TestApp, base: &str, token: Option<&str>, pairs: &[(&str, &str)]) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let mut req =
        app.client.post(format!("{base}{HUB}")).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("publish request")
}

/// Publishes and returns the id the hub answered, checking the answer's shape.
pub async fn publish_update(app: &TestApp, base: &str, token: &str, pairs: &[(&str, &str)]) -> String {
    let r = post_form(app, base, Some(token), pairs).await;
    assert_eq!(r.status(), 200, "publish refused: {:?}", r.text().await);
    let content_type = r.headers()[reqwest::header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    r.text().await.expect("body")
}

/// The hub URL with `params` as its query.
pub fn hub_url(base: &str, params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{base}{HUB}?{query}")
}

/// Sends a subscription request as built by `req`.
pub async fn open(req: reqwest::RequestBuilder) -> reqwest::Response {
    tokio::time::timeout(WAIT, req.send()).await.unwrap_or_else(|_| panic!("waited {WAIT:?} for the hub's response head")).expect("connect")
}

/// Opens a subscription that must succeed.
pub async fn subscribe_hub(req: reqwest::RequestBuilder) -> SseClient {
    let resp = open(req).await;
    assert_eq!(resp.status(), 200, "subscription refused: {:?}", resp.text().await);
    assert_eq!(resp.headers()[reqwest::header::CONTENT_TYPE], "text/event-stream");
    SseClient::new(resp)
}

/// The `WWW-Authenticate` challenge of a refusal.
pub fn challenge(r: &reqwest::Response) -> String {
    r.headers().get(reqwest::header::WWW_AUTHENTICATE).map(|v| v.to_str().expect("ascii").to_owned()).unwrap_or_default()
}
