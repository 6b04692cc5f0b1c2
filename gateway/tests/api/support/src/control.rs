//! What the revocation and refresh suites share: tokens with a subject and an id, the admin
//! token, and calls to the admin and refresh endpoints.

use serde_json::Value;
use shared::Claims;
use shared::sse::{Item, ParsedEvent};

use crate::app::*;

/// A token of `sub` with id `jti` that may follow and publish every topic for an hour.
pub fn user_token(sub: &str, jti: &str) -> String {
    user_token_until(sub, jti, now() + 3600, &["*"])
}

/// A token of `sub` with id `jti`, expiring at `exp`, that may follow `grants`.
pub fn user_token_until(sub: &str, jti: &str, exp: u64, grants: &[&str]) -> String {
    let claims = Claims { sub: Some(sub.into()), jti: Some(jti.into()), exp, ..claims(grants, &["*"]) };
    gateway::mint(SECRET.as_bytes(), &claims).expect("mint")
}

/// A token with the admin claim and no topic.
pub fn admin_token() -> String {
    let claims = Claims { sub: Some("ops".into()), admin: true, ..claims(&[], &[]) };
    gateway::mint(SECRET.as_bytes(), &claims).expect("mint")
}

/// Opens `/events?topic=…` with `bearer`.
pub async fn open(app: &TestApp, topics: &[&str], bearer: &str) -> reqwest::Response {
    app.client.get(app.events_url(topics)).bearer_auth(bearer).send().await.expect("request")
}

/// Opens a stream that must be accepted.
pub async fn follow(app: &TestApp, topics: &[&str], bearer: &str) -> SseClient {
    let resp = open(app, topics, bearer).await;
    assert_eq!(resp.status(), 200, "the stream opens");
    SseClient::new(resp)
}

/// `POST /admin/disconnect` with `body`, as the admin: status and JSON answer.
pub async fn disconnect(app: &TestApp, body: Value) -> (u16, Value) {
    disconnect_as(app, body, &admin_token()).await
}

pub async fn disconnect_as(app: &TestApp, body: Value, bearer: &str) -> (u16, Value) {
    let resp = app.client.post(app.url("/admin/disconnect")).bearer_auth(bearer).json(&body).send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// `GET /admin/streams?{query}`, as the admin.
pub async fn count(app: &TestApp, query: &str) -> Value {
    let resp = app.client.get(app.url(&format!("/admin/streams?{query}"))).bearer_auth(admin_token()).send().await.expect("request");
    assert_eq!(resp.status(), 200, "counts");
    resp.json().await.expect("json")
}

/// Reads the stream to its end; its last event must be `gateway.revoked`, which is returned.
pub async fn revoked_event(stream: &mut SseClient) -> ParsedEvent {
    let items = stream.until_end().await;
    let last = items.into_iter().rev().find_map(|i| if let Item::Event(e) = i { Some(e) } else { None });
    let last = last.expect("the stream sent an event before it ended");
    assert_eq!(last.event, "gateway.revoked", "the last event says why the stream ended: {last:?}");
    last
}

/// Sleeps until the wall clock has passed `exp` (seconds): what a stream's first token allowed.
pub async fn past(exp: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    tokio::time::sleep(std::time::Duration::from_secs(exp + 1).saturating_sub(now)).await;
}

/// The `error_description` of a 401's challenge.
pub fn challenge(resp: &reqwest::Response) -> String {
    resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or_default().to_owned()).unwrap_or_default()
}
