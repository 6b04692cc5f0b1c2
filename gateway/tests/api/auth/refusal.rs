//! Why a token is refused, and that the refusal says why: missing, malformed, a bad signature,
//! `alg: none`, expiry and `nbf`, audience and issuer.

use gateway::counters::Counters;
use serde_json::json;

use super::common::*;
use support::app::*;

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
