//! Authentication and authorization: where a token may come from, why one is refused (and that the
//! refusal says why), key families and algorithm confusion, per-topic grants, and the stream that
//! closes when its token expires.

use std::time::{Duration, Instant};

use gateway::config::JwtConfig;
use gateway::config::KeyMaterial;
use gateway::counters::Counters;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use shared::Claims;
use shared::sse::Item;

use support::app::*;

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("fixtures/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("fixtures/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("fixtures/ed_public.pem");

/// An HS256 token over arbitrary claims, signed with the test secret.
fn hs256(claims: &impl serde::Serialize) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()), claims)
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &impl serde::Serialize) -> String {
    encode(&Header::new(alg), claims, key).expect("sign the token")
}

/// A token granting every topic with a tweak applied to its claims.
fn token_with(tweak: impl FnOnce(&mut Claims)) -> String {
    let mut c = claims(&["*"], &["*"]);
    tweak(&mut c);
    hs256(&c)
}

/// `GET /events?topic=...` with the token in the `Authorization` header.
async fn get_events(app: &TestApp, topics: &[&str], bearer: &str) -> reqwest::Response {
    app.client.get(app.events_url(topics)).bearer_auth(bearer).send().await.expect("request")
}

/// `POST /publish` of one event with the token in the `Authorization` header.
async fn publish_as(app: &TestApp, bearer: &str, topic: &str) -> reqwest::Response {
    app.client.post(app.url("/publish")).bearer_auth(bearer).json(&json!({ "topic": topic, "data": "x" })).send().await.expect("request")
}

/// The status and body of an unexpected response; an event stream is not read (it never ends).
async fn describe(resp: reqwest::Response) -> String {
    let status = resp.status();
    if resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
        return format!("{status} (an event stream)");
    }
    format!("{status} {:?}", resp.text().await)
}

async fn body_json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the error body is not JSON ({e}): {text:?}"))
}

/// Asserts a 401 with the JSON error body and the RFC 6750 challenge. `reason`: `None` for a
/// missing token (bare challenge), else the `error_description` a bad token must carry.
async fn assert_unauthorized(resp: reqwest::Response, reason: Option<&str>) {
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

async fn assert_forbidden(resp: reqwest::Response, topic: &str) {
    if resp.status() != 403 {
        panic!("expected 403, got {}", describe(resp).await);
    }
    let body = body_json(resp).await;
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains(topic)), "the message names the topic: {body}");
}

/// An app that verifies with a public key and accepts exactly `alg`.
async fn spawn_with_public_key(pem: &[u8], alg: Algorithm) -> TestApp {
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

// --- Where the token comes from ------------------------------------------------------------------

#[tokio::test]
async fn events_accept_a_bearer_header() {
    let app = spawn_app().await;
    let resp = get_events(&app, &["t"], &token(&["*"], &[])).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn events_accept_an_access_token_query_parameter() {
    let app = spawn_app().await;
    let url = format!("{}&access_token={}", app.events_url(&["t"]), token(&["*"], &[]));
    let resp = app.client.get(url).send().await.expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn events_accept_the_default_auth_cookie() {
    let app = spawn_app().await;
    let cookie = format!("theme=dark; sse_token={}; other=1", token(&["*"], &[]));
    let resp = app.client.get(app.events_url(&["t"])).header("cookie", cookie).send().await.expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn events_read_the_cookie_named_by_the_config_and_no_other() {
    let app = spawn_with(|c| c.auth_cookie = "my_token".into()).await;
    let t = token(&["*"], &[]);
    let resp = app.client.get(app.events_url(&["t"])).header("cookie", format!("my_token={t}")).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let resp = app.client.get(app.events_url(&["t"])).header("cookie", format!("sse_token={t}")).send().await.expect("request");
    assert_unauthorized(resp, None).await;
}

#[tokio::test]
async fn the_header_wins_over_the_query_parameter_and_the_cookie() {
    let app = spawn_app().await;
    let good = token(&["*"], &[]);
    // A good header beside a bad query token and a bad cookie: the header is the one used.
    let url = format!("{}&access_token=garbage", app.events_url(&["t"]));
    let resp = app.client.get(&url).bearer_auth(&good).header("cookie", "sse_token=garbage").send().await.expect("request");
    assert_eq!(resp.status(), 200);
    // A bad header beside a good query token and a good cookie: still the header, refused.
    let url = format!("{}&access_token={good}", app.events_url(&["t"]));
    let resp = app.client.get(&url).bearer_auth("garbage").header("cookie", format!("sse_token={good}")).send().await.expect("request");
    assert_unauthorized(resp, Some("malformed")).await;
}

#[tokio::test]
async fn publish_accepts_the_header_and_the_query_parameter() {
    let app = spawn_app().await;
    let t = token(&[], &["*"]);
    assert_eq!(publish_as(&app, &t, "t").await.status(), 200);
    let resp = app
        .client
        .post(app.url(&format!("/publish?access_token={t}")))
        .json(&json!({ "topic": "t", "data": "x" }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

#[tokio::test]
async fn publish_ignores_the_cookie() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/publish"))
        .header("cookie", format!("sse_token={}", token(&[], &["*"])))
        .json(&json!({ "topic": "t", "data": "x" }))
        .send()
        .await
        .expect("request");
    assert_unauthorized(resp, None).await;
    assert_eq!(Counters::get(&app.counters().events_published), 0);
}

// --- Why a token is refused ------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_token_is_401_with_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let resp = app.client.get(app.events_url(&["t"])).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.post(app.url("/publish")).json(&json!({ "topic": "t", "data": "x" })).send().await.expect("request");
    assert_unauthorized(resp, None).await;
}

#[tokio::test]
async fn a_non_bearer_authorization_header_is_malformed_header() {
    let app = spawn_app().await;
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token-without-scheme"] {
        let resp = app.client.get(app.events_url(&["t"])).header("authorization", value).send().await.expect("request");
        assert_unauthorized(resp, Some("malformed_header")).await;
    }
}

#[tokio::test]
async fn a_garbage_token_is_malformed() {
    let app = spawn_app().await;
    assert_unauthorized(get_events(&app, &["t"], "abc").await, Some("malformed")).await;
    assert_unauthorized(publish_as(&app, "abc", "t").await, Some("malformed")).await;
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_a_bad_signature() {
    let app = spawn_app().await;
    let forged = gateway::mint(b"another-secret-another-secret-0123456789", &claims(&["*"], &["*"])).expect("mint");
    assert_unauthorized(get_events(&app, &["t"], &forged).await, Some("signature")).await;
    assert_unauthorized(publish_as(&app, &forged, "t").await, Some("signature")).await;
}

#[tokio::test]
async fn a_token_with_its_signature_stripped_is_refused() {
    let app = spawn_app().await;
    let t = token(&["*"], &[]);
    let unsigned = format!("{}.", t.rsplit_once('.').expect("three parts").0);
    assert_unauthorized(get_events(&app, &["t"], &unsigned).await, Some("signature")).await;
}

#[tokio::test]
async fn alg_none_is_never_accepted() {
    let app = spawn_app().await;
    let payload = serde_json::to_vec(&claims(&["*"], &["*"])).expect("json");
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None","typ":"JWT"}"#, r#"{"alg":"NONE"}"#] {
        let forged = format!("{}.{}.", b64url(header.as_bytes()), b64url(&payload));
        let resp = get_events(&app, &["t"], &forged).await;
        assert_eq!(resp.status(), 401, "{header} must be refused");
        let challenge = resp.headers().get("www-authenticate").expect("challenge").to_str().expect("ascii").to_owned();
        assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
        assert!(challenge.contains(r#"error_description="algorithm""#), "refused for its algorithm: {challenge}");
        assert_eq!(body_json(resp).await["error"], "unauthorized");
        assert_eq!(publish_as(&app, &forged, "t").await.status(), 401, "{header} must not publish");
    }
    assert_eq!(Counters::get(&app.counters().streams_total), 0);
    assert_eq!(Counters::get(&app.counters().events_published), 0);
}

#[tokio::test]
async fn exp_is_required() {
    let app = spawn_app().await;
    let t = hs256(&json!({ "sub": "tester", "subscribe": ["*"] }));
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("claims")).await;
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_expired() {
    let app = spawn_app().await;
    let t = token_with(|c| c.exp = now() - 60);
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("expired")).await;
    assert_unauthorized(publish_as(&app, &t, "t").await, Some("expired")).await;
}

#[tokio::test]
async fn a_token_expired_within_the_default_leeway_is_accepted() {
    let app = spawn_app().await;
    let t = token_with(|c| c.exp = now() - 1);
    assert_eq!(get_events(&app, &["t"], &t).await.status(), 200);
}

#[tokio::test]
async fn a_token_not_valid_yet_is_not_yet_valid() {
    let app = spawn_app().await;
    let t = token_with(|c| c.nbf = Some(now() + 60));
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("not_yet_valid")).await;
    let t = token_with(|c| c.nbf = Some(now() + 1));
    assert_eq!(get_events(&app, &["t"], &t).await.status(), 200, "nbf inside the leeway is accepted");
}

#[tokio::test]
async fn the_audience_is_checked_when_configured() {
    let app = spawn_with(|c| c.jwt.as_mut().expect("jwt").audience = Some("gw".into())).await;
    let wrong = token_with(|c| c.aud = Some(json!("other")));
    assert_unauthorized(get_events(&app, &["t"], &wrong).await, Some("audience")).await;
    let wrong_list = token_with(|c| c.aud = Some(json!(["other", "another"])));
    assert_unauthorized(get_events(&app, &["t"], &wrong_list).await, Some("audience")).await;
    let right = token_with(|c| c.aud = Some(json!("gw")));
    assert_eq!(get_events(&app, &["t"], &right).await.status(), 200);
    let right_in_list = token_with(|c| c.aud = Some(json!(["other", "gw"])));
    assert_eq!(get_events(&app, &["t"], &right_in_list).await.status(), 200);
}

#[tokio::test]
async fn the_issuer_is_checked_when_configured() {
    let app = spawn_with(|c| c.jwt.as_mut().expect("jwt").issuer = Some("https://issuer.example".into())).await;
    let wrong = token_with(|c| c.iss = Some("https://evil.example".into()));
    assert_unauthorized(get_events(&app, &["t"], &wrong).await, Some("issuer")).await;
    let right = token_with(|c| c.iss = Some("https://issuer.example".into()));
    assert_eq!(get_events(&app, &["t"], &right).await.status(), 200);
}

#[tokio::test]
async fn a_token_without_the_configured_audience_is_refused() {
    let app = spawn_with(|c| c.jwt.as_mut().expect("jwt").audience = Some("gw".into())).await;
    let no_aud = token(&["*"], &[]);
    assert_unauthorized(get_events(&app, &["t"], &no_aud).await, Some("audience")).await;
}

#[tokio::test]
async fn a_token_without_the_configured_issuer_is_refused() {
    let app = spawn_with(|c| c.jwt.as_mut().expect("jwt").issuer = Some("https://issuer.example".into())).await;
    let no_iss = token(&["*"], &[]);
    assert_unauthorized(get_events(&app, &["t"], &no_iss).await, Some("issuer")).await;
}

// --- Key families and algorithm confusion ---------------------------------------------------------

#[tokio::test]
async fn an_rs256_token_is_accepted_with_the_rsa_public_key() {
    let app = spawn_with_public_key(RSA_PUBLIC, Algorithm::RS256).await;
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa private key");
    let t = sign(Algorithm::RS256, &key, &claims(&["*"], &[]));
    assert_eq!(get_events(&app, &["t"], &t).await.status(), 200);
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    let app = spawn_with_public_key(RSA_PUBLIC, Algorithm::RS256).await;
    // The classic confusion: the public key, which anyone has, used as an HMAC secret.
    let t = sign(Algorithm::HS256, &EncodingKey::from_secret(RSA_PUBLIC), &claims(&["*"], &["*"]));
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("algorithm")).await;
    assert_unauthorized(publish_as(&app, &t, "t").await, Some("algorithm")).await;
    // And the gateway's own HMAC tokens mean nothing to an RSA-keyed gateway.
    assert_unauthorized(get_events(&app, &["t"], &token(&["*"], &[])).await, Some("algorithm")).await;
}

#[tokio::test]
async fn an_rs256_token_with_a_signature_from_another_token_is_a_bad_signature() {
    // Widening a token's grants by swapping its payload while keeping a valid signature of other claims.
    let app = spawn_with_public_key(RSA_PUBLIC, Algorithm::RS256).await;
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa private key");
    let good = sign(Algorithm::RS256, &key, &claims(&["*"], &[]));
    let other = sign(Algorithm::RS256, &key, &claims(&["other.*"], &[]));
    let (head_and_payload, _) = good.rsplit_once('.').expect("three parts");
    let (_, other_sig) = other.rsplit_once('.').expect("three parts");
    let spliced = format!("{head_and_payload}.{other_sig}");
    assert_unauthorized(get_events(&app, &["t"], &spliced).await, Some("signature")).await;
}

/// With `public` configured for `alg`, a token signed by the matching private key is accepted
/// and an HS256 token keyed with the public key itself is refused.
async fn assert_key_family(public: &[u8], alg: Algorithm, private: EncodingKey) {
    let app = spawn_with_public_key(public, alg).await;
    let t = sign(alg, &private, &claims(&["*"], &[]));
    assert_eq!(get_events(&app, &["t"], &t).await.status(), 200, "{alg:?}");
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(public), &claims(&["*"], &[]));
    assert_unauthorized(get_events(&app, &["t"], &confused).await, Some("algorithm")).await;
}

#[tokio::test]
async fn an_es256_token_is_accepted_with_the_ec_public_key() {
    assert_key_family(EC_PUBLIC, Algorithm::ES256, EncodingKey::from_ec_pem(EC_PRIVATE).expect("ec private key")).await;
}

#[tokio::test]
async fn an_eddsa_token_is_accepted_with_the_ed25519_public_key() {
    assert_key_family(ED_PUBLIC, Algorithm::EdDSA, EncodingKey::from_ed_pem(ED_PRIVATE).expect("ed25519 private key")).await;
}

// --- Per-topic grants -------------------------------------------------------------------------------

#[tokio::test]
async fn subscribing_needs_a_grant_for_every_topic() {
    let app = spawn_app().await;
    let t = token(&["orders.*"], &[]);
    assert_eq!(get_events(&app, &["orders.1"], &t).await.status(), 200);
    assert_forbidden(get_events(&app, &["orders.1", "secret"], &t).await, "secret").await;
    assert_forbidden(get_events(&app, &["orders"], &t).await, "orders").await;
    // A publish grant is not a subscribe grant.
    assert_forbidden(get_events(&app, &["orders.1"], &token(&[], &["*"])).await, "orders.1").await;
}

#[tokio::test]
async fn publishing_needs_a_grant_for_the_topic() {
    let app = spawn_app().await;
    let t = token(&[], &["orders.*"]);
    assert_forbidden(publish_as(&app, &t, "other").await, "other").await;
    assert_eq!(publish_as(&app, &t, "orders.1").await.status(), 200);
    // A subscribe grant is not a publish grant.
    assert_forbidden(publish_as(&app, &token(&["*"], &[]), "orders.1").await, "orders.1").await;
    assert_eq!(Counters::get(&app.counters().events_published), 1);
}

#[tokio::test]
async fn a_batch_with_one_forbidden_topic_publishes_nothing() {
    let app = spawn_app().await;
    let mut stream = app.subscribe(&["orders.1"], None).await;
    let batch = json!([
        { "topic": "orders.1", "data": "first" },
        { "topic": "other", "data": "forbidden" },
        { "topic": "orders.1", "data": "last" },
    ]);
    let resp = app.client.post(app.url("/publish")).bearer_auth(token(&[], &["orders.*"])).json(&batch).send().await.expect("request");
    assert_forbidden(resp, "other").await;
    stream.expect_no_event(Duration::from_millis(300)).await;
    assert_eq!(Counters::get(&app.counters().events_published), 0);
    // The stream is live: the next publish is the first event it sees.
    app.publish("orders.1", "after").await;
    assert_eq!(stream.next_event().await.data, "after");
}

#[tokio::test]
async fn authentication_comes_before_topic_validation() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/events?topic=bad%20topic")).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.get(app.url("/events")).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.post(app.url("/publish")).json(&json!({ "topic": "bad topic", "data": "x" })).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.post(app.url("/publish")).body("not json").send().await.expect("request");
    assert_unauthorized(resp, None).await;
}

// --- Expiry while streaming ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_closes_when_its_token_expires() {
    // No refresh offer either: this is the stream of a client that does not refresh (see refresh.rs).
    let app = spawn_with(|c| {
        c.jwt.as_mut().expect("jwt").leeway = Duration::ZERO;
        c.refresh_window = Duration::ZERO;
    })
    .await;
    let t = token_with(|c| c.exp = now() + 2);
    let opened = Instant::now();
    let resp = get_events(&app, &["t"], &t).await;
    assert_eq!(resp.status(), 200);
    let mut stream = SseClient::new(resp);
    let items = tokio::time::timeout(Duration::from_secs(5), stream.until_end()).await.expect("the stream ends by itself within 5 s");
    assert!(stream.ended);
    assert!(opened.elapsed() >= Duration::from_millis(900), "closed after {:?}, before the token expired", opened.elapsed());
    assert!(!items.iter().any(|i| matches!(i, Item::Event(_))), "no event was published: {items:?}");
    assert_eq!(Counters::get(&app.counters().token_expired_disconnects), 1);
    // The same token is now refused outright.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("expired")).await;
}
