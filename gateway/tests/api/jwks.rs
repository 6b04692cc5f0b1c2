//! Keys from identity providers (`GATEWAY_JWT_JWKS_URL`), served by a real HTTP server on
//! loopback whose key set changes mid-test: rotation without a restart, the rate limit on
//! unknown `kid`s, hostile key sets, and an identity provider that is unreachable, oversized or
//! slow, at start and later.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use support::app::*;
use support::jwks::*;
use support::processes::{Node, Scratch, read_log};

/// An hour: no refresh but the first one an unknown `kid` triggers happens during a test.
const HOUR: Duration = Duration::from_secs(3600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

async fn spawn_with_jwks(urls: &[&str], with_secret: bool, min_refresh: Duration, timeout: Duration) -> TestApp {
    let jwt = jwt_config(urls, with_secret, min_refresh, timeout);
    spawn_with(move |c| c.jwt = Some(jwt)).await
}

/// The status of `GET /events?topic=t` with `token`, and the reason of a 401 (its
/// `error_description`) or the error code of another refusal.
async fn try_token(app: &TestApp, token: &str) -> (u16, String) {
    let resp = app.client.get(app.events_url(&["t"])).bearer_auth(token).send().await.expect("request");
    let status = resp.status().as_u16();
    if status == 200 {
        return (200, String::new());
    }
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii").to_owned());
    let body: serde_json::Value = resp.json().await.expect("a JSON error");
    let reason = match challenge.as_deref().and_then(|c| c.split("error_description=\"").nth(1)) {
        Some(rest) => rest.trim_end_matches('"').to_owned(),
        None => body["error"].as_str().expect("an error code").to_owned(),
    };
    (status, reason)
}

async fn readyz(app: &TestApp) -> (u16, String) {
    let resp = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("JSON");
    (status, body["status"].as_str().expect("a status").to_owned())
}

#[tokio::test]
async fn a_rotated_key_verifies_without_a_restart_and_a_removed_key_gets_401_unknown_key() {
    let idp = TestIdp::start(Answer::Keys(vec![RSA.jwk()], None)).await;
    let app = spawn_with_jwks(&[&idp.url], false, HOUR, FETCH_TIMEOUT).await;
    assert_eq!(readyz(&app).await, (200, "ready".into()), "the keys were fetched at start");
    assert_eq!(try_token(&app, &RSA.token()).await, (200, String::new()));

    // The provider rotates: the EC key replaces the RSA one. The first token signed with it
    // makes the gateway fetch the set again.
    idp.set(Answer::Keys(vec![EC.jwk()], None));
    assert_eq!(try_token(&app, &EC.token()).await, (200, String::new()), "the new key verifies at once");
    assert_eq!(try_token(&app, &RSA.token()).await, (401, "unknown_key".into()), "the removed key no longer does");
    assert_eq!(idp.fetches(), 2, "one fetch at start, one for the new kid; the removed kid cost none (rate limit)");

    // Publishing uses the same keys.
    let resp = app.client.post(app.url("/publish")).bearer_auth(EC.token()).json(&json!({"topic": "t", "data": "x"})).send().await;
    assert_eq!(resp.expect("publish").status(), 200);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_the_identity_provider_one_fetch() {
    let idp = TestIdp::start(Answer::Keys(vec![RSA.jwk()], None)).await;
    let app = spawn_with_jwks(&[&idp.url], false, HOUR, FETCH_TIMEOUT).await;
    let bogus: Vec<String> = (0..100).map(|i| RSA.token_as(Some(&format!("bogus-{i}")), Algorithm::RS256)).collect();
    let answers = futures::future::join_all(bogus.iter().map(|t| try_token(&app, t))).await;
    for answer in &answers {
        assert_eq!(answer, &(401, "unknown_key".to_owned()));
    }
    assert_eq!(idp.fetches(), 2, "the start, and one fetch shared by the whole flood");
    let metrics = app.metrics().await;
    assert_eq!(metrics.value(r#"sse_gateway_auth_failures_total{reason="unknown_key"}"#), 100.0);
    assert_eq!(metrics.value(r#"sse_gateway_jwks_fetches_total{result="ok"}"#), 2.0);
    assert_eq!(try_token(&app, &RSA.token()).await, (200, String::new()), "a good token still verifies");
}

#[tokio::test]
async fn hostile_keys_in_a_jwks_are_ignored_and_the_good_ones_keep_working() {
    let oct_secret = b"a-shared-secret-published-in-a-jwks-0123456789";
    let keys = vec![
        json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url(oct_secret) }),
        RSA.jwk_with(json!({ "kid": "none", "alg": "none" })),
        RSA.jwk_with(json!({ "kid": "mismatch", "alg": "ES256" })),
        RSA.jwk_with(json!({ "kid": "encryption", "use": "enc", "alg": null })),
        json!({ "kty": "RSA", "kid": "garbage", "n": 42 }),
        RSA.jwk(),
        EC.jwk(),
        ED.jwk(),
    ];
    let idp = TestIdp::start(Answer::Keys(keys, None)).await;
    let app = spawn_with_jwks(&[&idp.url], false, HOUR, FETCH_TIMEOUT).await;
    assert_eq!(app.metrics().await.value("sse_gateway_jwks_keys"), 3.0, "only the RSA, EC and Ed25519 keys are usable");

    // An HMAC key from a JWKS verifies nothing: an HS token is never checked against a JWKS key.
    assert_eq!(try_token(&app, &hs256_with_kid(oct_secret, "hmac")).await, (401, "algorithm".into()));
    assert_eq!(try_token(&app, &unsigned(RSA.kid)).await, (401, "algorithm".into()), "alg none");
    for kid in ["none", "mismatch", "encryption", "garbage"] {
        assert_eq!(try_token(&app, &RSA.token_as(Some(kid), Algorithm::RS256)).await, (401, "unknown_key".into()), "{kid}");
    }
    // The key's `alg` pins the algorithm: a token's header cannot pick another one.
    assert_eq!(try_token(&app, &RSA.token_as(Some(RSA.kid), Algorithm::PS256)).await, (401, "algorithm".into()));
    assert_eq!(try_token(&app, &EC.token_as(Some(RSA.kid), Algorithm::ES256)).await, (401, "algorithm".into()));
    for key in [RSA, EC, ED] {
        assert_eq!(try_token(&app, &key.token()).await, (200, String::new()), "{}", key.kid);
    }
}

#[tokio::test]
async fn beside_a_static_secret_hs_tokens_use_the_secret_and_kid_tokens_the_jwks() {
    let oct_secret = b"a-shared-secret-published-in-a-jwks-0123456789";
    let keys = vec![json!({ "kty": "oct", "kid": "hmac", "k": b64url(oct_secret) }), RSA.jwk()];
    let idp = TestIdp::start(Answer::Keys(keys, None)).await;
    let app = spawn_with_jwks(&[&idp.url], true, HOUR, FETCH_TIMEOUT).await;
    assert_eq!(try_token(&app, &token(&["*"], &[])).await, (200, String::new()), "no kid: the static secret");
    assert_eq!(try_token(&app, &hs256_with_kid(SECRET.as_bytes(), "hmac")).await, (200, String::new()), "HS: the secret, whatever the kid");
    assert_eq!(try_token(&app, &hs256_with_kid(oct_secret, "hmac")).await, (401, "signature".into()), "never the JWKS's HMAC key");
    assert_eq!(try_token(&app, &RSA.token()).await, (200, String::new()));
    assert_eq!(try_token(&app, &EC.token()).await, (401, "unknown_key".into()), "a kid neither the secret nor the JWKS has");
    assert_eq!(try_token(&app, &RSA.token_as(None, Algorithm::RS256)).await, (401, "algorithm".into()), "no kid: only the secret is tried");
}

#[tokio::test]
async fn an_unreachable_jwks_at_start_leaves_the_node_unready_until_it_answers() {
    let port = shared::ports::free_loopback_port().expect("a free port");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let url = format!("http://{addr}/.well-known/jwks.json");
    let app = spawn_with_jwks(&[&url], true, Duration::from_millis(200), FETCH_TIMEOUT).await;
    assert_eq!(readyz(&app).await, (503, "keys_unavailable".into()));
    let (status, code) = try_token(&app, &RSA.token()).await;
    assert_eq!((status, code.as_str()), (503, "keys_unavailable"), "a token that needs the JWKS cannot be judged yet");
    assert_eq!(try_token(&app, &token(&["*"], &[])).await, (200, String::new()), "the static secret still verifies");
    assert_eq!(app.metrics().await.value("sse_gateway_jwks_failing"), 1.0);

    let _idp = TestIdp::start_at(addr, Answer::Keys(vec![RSA.jwk()], None)).await;
    eventually("/readyz to answer 200 once the identity provider is up", WAIT, || async { readyz(&app).await.0 == 200 }).await;
    assert_eq!(try_token(&app, &RSA.token()).await, (200, String::new()));
    assert_eq!(app.metrics().await.value("sse_gateway_jwks_failing"), 0.0);
}

#[tokio::test]
async fn an_oversized_jwks_is_refused_whether_announced_or_streamed() {
    let announced = TestIdp::start(Answer::Oversized { bytes: 300 * 1024, announced: true }).await;
    let streamed = TestIdp::start(Answer::Oversized { bytes: 300 * 1024, announced: false }).await;
    let app = spawn_with_jwks(&[&announced.url, &streamed.url], true, HOUR, FETCH_TIMEOUT).await;
    assert_eq!(readyz(&app).await, (503, "keys_unavailable".into()));
    let metrics = app.metrics().await;
    assert_eq!(metrics.value(r#"sse_gateway_jwks_fetches_total{result="error"}"#), 2.0);
    assert_eq!(metrics.value("sse_gateway_jwks_failing"), 2.0);
    assert_eq!(try_token(&app, &RSA.token()).await, (503, "keys_unavailable".into()));
    assert_eq!(try_token(&app, &token(&["*"], &[])).await, (200, String::new()), "the gateway keeps working");
}

#[tokio::test]
async fn a_slow_jwks_is_abandoned_at_the_fetch_timeout() {
    let idp = TestIdp::start(Answer::Stall).await;
    // Building the app includes the first fetch: it returns because the fetch gives up.
    let app = spawn_with_jwks(&[&idp.url], true, HOUR, Duration::from_millis(300)).await;
    assert!(idp.fetches() >= 1);
    assert_eq!(readyz(&app).await, (503, "keys_unavailable".into()));
    assert_eq!(app.metrics().await.value(r#"sse_gateway_jwks_fetches_total{result="error"}"#), 1.0);
    assert_eq!(try_token(&app, &RSA.token()).await, (503, "keys_unavailable".into()), "the fetch it triggers gives up too");
    assert_eq!(try_token(&app, &token(&["*"], &[])).await, (200, String::new()), "the gateway keeps working");
}

/// `max-age=0` is raised to the floor (`min_refresh`): the set is fetched again on schedule,
/// without any token asking, so a key the provider removes stops verifying and one that fails
/// leaves the last good keys in use.
#[tokio::test]
async fn the_jwks_is_refetched_when_its_cache_lifetime_ends_and_a_failing_provider_leaves_the_last_keys() {
    let idp = TestIdp::start(Answer::Keys(vec![RSA.jwk(), EC.jwk()], Some("max-age=0"))).await;
    let app = spawn_with_jwks(&[&idp.url], false, Duration::from_millis(200), FETCH_TIMEOUT).await;
    assert_eq!(try_token(&app, &EC.token()).await, (200, String::new()));

    idp.set(Answer::Status(500));
    eventually("the failed refetch to show in jwks_failing", WAIT, || async {
        app.metrics().await.value("sse_gateway_jwks_failing") == 1.0
    })
    .await;
    assert_eq!(readyz(&app).await, (200, "ready".into()), "a node that had keys stays ready");
    assert_eq!(try_token(&app, &EC.token()).await, (200, String::new()), "the last good keys stay in use");
    assert_eq!(try_token(&app, &ED.token()).await, (401, "unknown_key".into()));

    idp.set(Answer::Keys(vec![RSA.jwk()], Some("public, max-age=0")));
    eventually("a scheduled refetch to drop the removed EC key", WAIT, || async { try_token(&app, &EC.token()).await.0 == 401 }).await;
    assert_eq!(try_token(&app, &EC.token()).await, (401, "unknown_key".into()));
    assert_eq!(try_token(&app, &RSA.token()).await, (200, String::new()));
    assert_eq!(app.metrics().await.value("sse_gateway_jwks_failing"), 0.0);
}

/// The sibling of `surface::tokens_never_appear_in_logs` for a node verifying with a JWKS: a
/// gateway process at DEBUG, tokens accepted, refused for an unknown `kid` (which fetches the
/// set again), for a hostile key, and while the provider fails.
#[tokio::test]
async fn jwks_tokens_never_appear_in_logs() {
    let keys = vec![json!({ "kty": "oct", "kid": "hmac", "k": b64url(b"published-secret-0123456789abcdef") }), RSA.jwk(), EC.jwk()];
    let idp = TestIdp::start(Answer::Keys(keys, None)).await;
    let good = RSA.token();
    let unknown = ED.token();
    let bogus_kid = RSA.token_as(Some("bogus"), Algorithm::RS256);
    let hostile = hs256_with_kid(b"published-secret-0123456789abcdef", "hmac");
    let tokens = [&good, &unknown, &bogus_kid, &hostile];
    let dir = Scratch::new("jwks-logs");
    let client = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("client");
    let env = [("RUST_LOG", "debug"), ("GATEWAY_JWT_JWKS_URL", idp.url.as_str()), ("GATEWAY_JWT_JWKS_MIN_REFRESH", "100ms")];
    let mut node = Node::embedded(&dir.0, 0, &env);
    node.wait_ready(&client).await;
    let events = node.url("/events?topic=t");
    let send = |t: &String| {
        let (client, events, publish) = (client.clone(), events.clone(), node.url("/publish"));
        let t = t.clone();
        async move {
            let _ = client.get(format!("{events}&access_token={t}")).send().await.expect("request");
            let _ = client.get(&events).bearer_auth(&t).send().await.expect("request");
            let _ = client.post(publish).bearer_auth(&t).body("{}").send().await.expect("request");
        }
    };
    for t in tokens {
        send(t).await;
    }
    // The provider fails; unknown kids keep coming until a fetch has failed.
    idp.set(Answer::Status(500));
    eventually("a failed JWKS fetch", WAIT, || async {
        send(&bogus_kid).await;
        node.metrics(&client).await.value(r#"sse_gateway_jwks_fetches_total{result="error"}"#) >= 1.0
    })
    .await;
    node.terminate().await;

    let logs = read_log(&node.log);
    assert!(logs.contains("JWKS fetched") && logs.contains("JWKS key ignored") && logs.contains("token refused"), "{logs}");
    assert!(logs.contains("JWKS fetch failed"), "the failing provider is logged:\n{logs}");
    for t in tokens {
        let signature = t.rsplit('.').next().expect("signature");
        assert!(!logs.contains(signature), "a token leaked into the log:\n{logs}");
    }
    assert!(!logs.contains("access_token"), "the query string leaked into the log:\n{logs}");
}
