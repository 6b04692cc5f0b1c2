//! In-band token refresh: before its token expires a stream sends `gateway.refresh` with the URL
//! where the client posts a fresh token; any node accepts it, and the node holding the stream
//! extends it when the new token has the same subject and grants every topic of the stream.

use std::time::Duration;

use serde_json::Value;
use shared::sse::Item;

use support::app::*;
use support::control::*;
use support::redis::*;

/// No leeway, so that a stream ends exactly at its token's `exp`.
fn exact_expiry(c: &mut gateway::Config) {
    c.jwt.as_mut().expect("a key is configured").leeway = Duration::ZERO;
}

/// Reads up to the stream's `gateway.refresh` event and returns its data.
async fn refresh_offer(stream: &mut SseClient) -> Value {
    loop {
        match stream.next_item().await {
            Some(Item::Event(e)) if e.event == "gateway.refresh" => return serde_json::from_str(&e.data).expect("json data"),
            Some(Item::Event(e)) => panic!("unexpected event before the refresh offer: {e:?}"),
            Some(_) => continue,
            None => panic!("the stream ended without offering a refresh"),
        }
    }
}

async fn present(app: &TestApp, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let request = app.client.post(app.url(url));
    let request = match bearer {
        Some(b) => request.bearer_auth(b),
        None => request,
    };
    let resp = request.send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_refreshed_stream_outlives_its_first_token() {
    let app = spawn_with(exact_expiry).await;
    let exp = now() + 3;
    let mut stream = follow(&app, &["t"], &user_token_until("alice", "first", exp, &["*"])).await;
    let offer = refresh_offer(&mut stream).await;
    let url = offer["url"].as_str().expect("a url");
    assert!(url.starts_with("/streams/") && url.ends_with("/refresh"), "{offer}");
    assert!(offer["expires_in"].as_u64().is_some_and(|s| s <= 3), "{offer}");

    let (status, answer) = present(&app, url, Some(&user_token("alice", "second"))).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["expires_in"].as_u64().is_some_and(|s| s > 3500), "{answer}");
    past(exp).await;
    app.publish("t", "after the first token").await;
    assert_eq!(stream.next_event().await.data, "after the first token");
    // The stream now answers to the new token: revoking it ends the stream.
    assert_eq!(count(&app, "jti=second").await["streams"], 1);
}

#[tokio::test]
async fn a_refresh_presented_to_another_node_extends_the_stream_where_it_is_held() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_with(&redis, &prefix, exact_expiry).await);
    }
    let exp = now() + 3;
    let mut stream = follow(&nodes[0], &["t"], &user_token_until("alice", "first", exp, &["t"])).await;
    let offer = refresh_offer(&mut stream).await;
    let (status, answer) = present(&nodes[2], offer["url"].as_str().expect("url"), Some(&user_token("alice", "second"))).await;
    assert_eq!(status, 200, "{answer}");
    past(exp).await;
    nodes[1].publish("t", "still streaming").await;
    assert_eq!(stream.next_event().await.data, "still streaming");
}

#[tokio::test]
async fn a_fresh_token_that_is_not_good_enough_leaves_the_stream_to_end_at_its_expiry() {
    let app = spawn_with(exact_expiry).await;
    let exp = now() + 4;
    let topics = ["user.alice.a", "user.alice.b"];
    let mut stream = follow(&app, &topics, &user_token_until("alice", "first", exp, &["user.alice.*"])).await;
    let url = refresh_offer(&mut stream).await["url"].as_str().expect("url").to_owned();
    let later = now() + 3600;
    for (bearer, status, code) in [
        (user_token_until("bob", "b", later, &["*"]), 403, "refresh_subject"),
        (user_token_until("alice", "narrow", later, &["user.alice.a"]), 403, "refresh_topics"),
        (user_token_until("alice", "same", exp, &["user.alice.*"]), 403, "refresh_not_later"),
        (user_token_until("alice", "expired", now() - 60, &["*"]), 401, "unauthorized"),
    ] {
        let (got, answer) = present(&app, &url, Some(&bearer)).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{answer}");
    }
    assert_eq!(present(&app, &url, None).await.0, 401, "no token");
    disconnect(&app, serde_json::json!({ "jti": "revoked-one", "duration": 60 })).await;
    assert_eq!(present(&app, &url, Some(&user_token("alice", "revoked-one"))).await.0, 401, "a revoked token");
    for unknown in [format!("/streams/{:048x}/refresh", 42u8), "/streams/not-an-id/refresh".into(), url.replace("/refresh", "0/refresh")] {
        let (got, answer) = present(&app, &unknown, Some(&user_token("alice", "ok"))).await;
        assert_eq!((got, answer["error"].as_str()), (404, Some("unknown_stream")), "{unknown}");
    }
    // None of these extended it: it ends at the first token's expiry.
    let rest = stream.until_end().await;
    assert!(rest.iter().all(|i| !matches!(i, Item::Event(_))), "no event, just the end: {rest:?}");
    assert!(now() >= exp, "it ended at the token's expiry, not before");
}

/// Tokens presented for refresh and to the admin API, good or refused, never reach the log, in
/// either format (a gateway process at `RUST_LOG=debug`, as `surface::tokens_never_appear_in_logs`).
#[tokio::test]
async fn refresh_and_admin_tokens_never_appear_in_logs() {
    use support::processes::{Node, Scratch, read_log};
    let dir = Scratch::new("control-logs");
    let client = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("client");
    for (index, format) in ["text", "json"].into_iter().enumerate() {
        let mut node = Node::embedded(&dir.0, index, &[("RUST_LOG", "debug"), ("GATEWAY_LOG_FORMAT", format)]);
        node.wait_ready(&client).await;
        let first = user_token_until("alice", "first", now() + 30, &["*"]);
        let resp = client.get(node.url("/events?topic=t")).bearer_auth(&first).send().await.expect("stream");
        let mut stream = SseClient::new(resp);
        let url = node.url(refresh_offer(&mut stream).await["url"].as_str().expect("url"));
        let (fresh, other, admin, subscriber) = (user_token("alice", "second"), user_token("bob", "b"), admin_token(), token(&["*"], &[]));
        let forged = format!("{}x", &fresh[..fresh.len() - 1]);
        for t in [&fresh, &other, &forged] {
            let _ = client.post(&url).bearer_auth(t).send().await.expect("request");
            let _ = client.post(&url).header("cookie", format!("sse_token={t}")).send().await.expect("request");
        }
        let disconnect = node.url("/admin/disconnect");
        for t in [&admin, &subscriber, &forged] {
            let _ = client.post(&disconnect).bearer_auth(t).json(&serde_json::json!({ "subject": "alice" })).send().await.expect("request");
            let _ = client.get(node.url("/admin/streams?subject=alice")).bearer_auth(t).send().await.expect("request");
        }
        drop(stream);
        node.terminate().await;

        let logs = read_log(&node.log);
        assert!(logs.contains("revocation issued") && logs.contains("token refused"), "the {format} log holds the calls:\n{logs}");
        for t in [&first, &fresh, &other, &admin, &subscriber, &forged] {
            let signature = t.rsplit('.').next().expect("signature");
            assert!(!logs.contains(signature), "a token leaked into the {format} log:\n{logs}");
        }
    }
}
