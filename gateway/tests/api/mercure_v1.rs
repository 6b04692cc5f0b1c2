//! The Mercure hub speaking 1.0 (draft-08), in process on the embedded bus: `match=` and
//! `match_urlpattern=` matchers, RFC 9068 access tokens checked against the resource and the
//! trusted issuers, RFC 6750 challenges, `last_event_id` and `Mercure-Last-Event-ID`.

use gateway::config::Protocol;
use serde_json::json;

use support::app::*;
use support::jwks::*;
use support::mercure::*;

const MULTI_LINE: &str = "data for\n\n        URL pattern";

#[tokio::test]
async fn exact_and_url_pattern_matchers_choose_what_a_subscriber_receives() {
    let app = spawn_hub(Protocol::V1, true).await;
    let token = access_token(&["*"], &[]);
    let mut pattern = subscribe_hub(app.client.get(hub_url(&app.base, &[("match_urlpattern", "https://example.net/foo/:random")]))).await;
    let mut exact = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "foo"), ("match", "raw")]))).await;
    let mut none = subscribe_hub(app.client.get(hub_url(
        &app.base,
        &[
            ("match", "another-name"),
            ("match_exact", "https://example.net/foo/another-name"),
            ("match_urlpattern", "https://example.net/bar/:var"),
        ],
    )))
    .await;
    let id =
        publish_update(&app, &app.base, &token, &[("topic", "https://example.net/foo/abc"), ("id", "id-1"), ("data", MULTI_LINE)]).await;
    assert_eq!(id, "id-1");
    publish_update(&app, &app.base, &token, &[("topic", "raw"), ("data", "raw string")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "https://example.net/foo/abc"), ("data", "private"), ("private", "on")]).await;
    let e = pattern.next_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), (MULTI_LINE, "id-1"));
    assert_eq!(exact.next_event().await.data, "raw string");
    none.expect_no_event(NOT_DELIVERED).await;
    pattern.expect_no_event(std::time::Duration::from_millis(200)).await;
}

#[tokio::test]
async fn private_updates_follow_the_authorization_details_of_the_subscriber() {
    let app = spawn_hub(Protocol::V1, false).await;
    let publisher = access_token(&["*"], &[]);
    let granted = access_token(&[], &["https://example.com/users/alice"]);
    let mut alice = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "*")])).bearer_auth(&granted)).await;
    let cookie = format!("__Secure-mercure_access_token={granted}");
    let mut by_cookie =
        subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "https://example.com/books/1")])).header("cookie", cookie)).await;
    let mut bob = subscribe_hub(
        app.client.get(hub_url(&app.base, &[("match", "*")])).bearer_auth(access_token(&[], &["https://example.com/users/bob"])),
    )
    .await;
    let pairs =
        [("topic", "https://example.com/books/1"), ("topic", "https://example.com/users/alice"), ("data", "secret"), ("private", "")];
    publish_update(&app, &app.base, &publisher, &pairs).await;
    publish_update(&app, &app.base, &publisher, &[("topic", "https://example.com/books/1"), ("data", "public")]).await;
    assert_eq!(data(&alice.events(2).await), ["secret", "public"]);
    assert_eq!(data(&by_cookie.events(2).await), ["secret", "public"]);
    assert_eq!(bob.next_event().await.data, "public");
}

#[tokio::test]
async fn access_tokens_are_checked_as_rfc_9068_asks_with_rfc_6750_challenges() {
    let app = spawn_hub(Protocol::V1, true).await;
    let topic = [("topic", "https://example.com/books/1"), ("data", "x")];
    let r = post_form(&app, &app.base, None, &topic).await;
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), r#"Bearer realm="mercure""#, "no token: no error code");
    let invalid = [
        ("typ JWT", sign("JWT", &json!({ "iss": ISSUER, "aud": RESOURCE, "exp": now() + 60 }))),
        ("another audience", access_token_with(&["*"], &[], |c| c["aud"] = json!("https://elsewhere.example/.well-known/mercure"))),
        ("an untrusted issuer", access_token_with(&["*"], &[], |c| c["iss"] = json!("https://evil.example"))),
        ("no exp", access_token_with(&["*"], &[], |c| c.as_object_mut().expect("object").retain(|k, _| k != "exp"))),
        ("expired", access_token_with(&["*"], &[], |c| c["exp"] = json!(now() - 30))),
        ("a malformed detail", access_token_with(&["*"], &[], |c| c["authorization_details"][0]["topics"] = json!("*"))),
    ];
    for (what, token) in invalid {
        let r = post_form(&app, &app.base, Some(&token), &topic).await;
        assert_eq!(r.status(), 401, "{what}");
        assert!(challenge(&r).contains(r#"error="invalid_token""#), "{what}: {}", challenge(&r));
    }
    let audience_list = access_token_with(&["*"], &[], |c| c["aud"] = json!(["https://other.example", RESOURCE]));
    publish_update(&app, &app.base, &audience_list, &topic).await;
    let r = post_form(&app, &app.base, Some(&access_token(&[], &["*"])), &topic).await;
    assert_eq!(r.status(), 403, "subscribe rights do not publish");
    assert!(challenge(&r).contains(r#"error="insufficient_scope""#));
    let r = app.client.post(format!("{}{HUB}", app.base)).header("Authorization", "Basic abc").form(&topic).send().await.expect("send");
    assert_eq!(r.status(), 400);
    assert!(challenge(&r).contains(r#"error="invalid_request""#));
    let by_query = hub_url(&app.base, &[("authorization", &access_token(&["*"], &[]))]);
    let r = app.client.post(by_query).form(&topic).send().await.expect("send");
    assert_eq!(r.status(), 401, "1.0 takes no token from the query string");
}

#[tokio::test]
async fn the_drafts_validation_rules_are_answered_with_their_statuses() {
    let app = spawn_hub(Protocol::V1, true).await;
    let token = access_token(&["*"], &[]);
    for (pairs, status) in [
        (vec![("topic", "*")], 400),
        (vec![("topic", "/.well-known/mercure/subscriptions/x")], 400),
        (vec![("topic", "https://other.example/.well-known/%6Dercure")], 400),
        (vec![("topic", "a"), ("type", "mercure")], 400),
        (vec![("topic", "a\u{200b}b")], 400),
        (vec![("topic", "a"), ("id", "earliest")], 400),
    ] {
        assert_eq!(post_form(&app, &app.base, Some(&token), &pairs).await.status(), status, "{pairs:?}");
    }
    for params in [vec![("matchfoo", "a")], vec![("MATCH", "a")], vec![("match_urlpattern", "https://[")], vec![("topic", "a")]] {
        let r = open(app.client.get(hub_url(&app.base, &params))).await;
        assert_eq!(r.status(), 400, "{params:?}");
    }
}

#[tokio::test]
async fn reconnection_uses_last_event_id_and_answers_mercure_last_event_id() {
    let app = spawn_hub(Protocol::V1, true).await;
    let token = access_token(&["*"], &[]);
    let first = publish_update(&app, &app.base, &token, &[("topic", "a"), ("data", "1")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "a"), ("id", "urn:example:2"), ("data", "2")]).await;
    let mut header = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "a")])).header("Last-Event-ID", &first)).await;
    assert_eq!(header.headers["mercure-last-event-id"], first.as_str());
    assert_eq!(header.next_event().await.last_event_id, "urn:example:2");
    let mut query = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "a"), ("last_event_id", "earliest")]))).await;
    assert_eq!(query.headers["mercure-last-event-id"], "earliest");
    assert_eq!(data(&query.events(2).await), ["1", "2"]);
    let legacy_param = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "a"), ("lastEventID", &first)]))).await;
    assert!(legacy_param.headers.get("mercure-last-event-id").is_none(), "the 0.x parameter is not read by 1.0");
}

#[tokio::test]
async fn subscription_events_announce_a_subscription_and_its_end_to_authorized_watchers() {
    let app = spawn_with(|c| {
        let mut hub = hub_config(Protocol::V1, false);
        hub.subscriptions = true;
        c.mercure = Some(hub);
    })
    .await;
    let events = "/.well-known/mercure/subscriptions/*";
    let watcher_token = access_token_with(&[], &[], |c| {
        c["authorization_details"] = json!([{
            "type": "https://mercure.rocks/authorization-detail", "actions": ["subscribe"],
            "topics": [{ "match": events, "match_type": "urlpattern" }],
        }]);
    });
    let mut watcher = subscribe_hub(app.client.get(hub_url(&app.base, &[("match_urlpattern", events)])).bearer_auth(&watcher_token)).await;
    let reader = access_token_with(&[], &["books/1"], |c| c["authorization_details"][0]["payload"] = json!({ "name": "Alice" }));
    let mut outsider = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "*")])).bearer_auth(&reader)).await;
    let mut reading = subscribe_hub(app.client.get(hub_url(&app.base, &[("match", "books/1")])).bearer_auth(&reader)).await;
    reading.next_item().await;
    // The watcher's own subscription, the outsider's, then the reader's: each announced before
    // its response head.
    let started = watcher.events(3).await;
    let doc = |e: &shared::sse::ParsedEvent| serde_json::from_str::<serde_json::Value>(&e.data).expect("json");
    assert_eq!(
        started.iter().map(|e| doc(e)["match"].as_str().map(str::to_owned)).collect::<Vec<_>>(),
        [Some(events.to_owned()), Some("*".into()), Some("books/1".into())]
    );
    let mine = doc(&started[2]);
    let subscriber = mine["subscriber"].as_str().expect("subscriber").to_owned();
    assert!(started.iter().all(|e| e.event == "mercure"), "typed as the hub's own events");
    assert_eq!(
        (mine["type"].as_str(), mine["match_type"].as_str(), mine["match"].as_str()),
        (Some("subscription"), Some("exact"), Some("books/1"))
    );
    assert_eq!((mine["active"].as_bool(), &mine["payload"]), (Some(true), &json!({ "name": "Alice" })));
    let topic = mine["id"].as_str().expect("id");
    assert!(topic.starts_with("/.well-known/mercure/subscriptions/exact/books%2F1/urn%3Auuid%3A"), "{topic}");
    assert_ne!(doc(&started[1])["subscriber"], mine["subscriber"], "one identifier per connection");
    drop(reading);
    let ended = doc(&watcher.next_event().await);
    assert_eq!((ended["subscriber"].as_str(), ended["active"].as_bool()), (Some(subscriber.as_str()), Some(false)));
    outsider.expect_no_event(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn access_tokens_from_an_identity_provider_verify_with_its_key_set() {
    let idp = TestIdp::start(Answer::Keys(vec![EC.jwk()], None)).await;
    let app = spawn_with(|c| {
        c.jwt = Some(jwt_config(&[&idp.url], false, std::time::Duration::from_secs(3600), std::time::Duration::from_secs(5)));
        c.mercure = Some(hub_config(Protocol::V1, true));
    })
    .await;
    let claims = access_claims(&["*"], &[], |_| {});
    let pairs = [("topic", "https://example.com/books/1"), ("data", "x")];
    publish_update(&app, &app.base, &EC.sign("at+jwt", &claims), &pairs).await;
    let r = post_form(&app, &app.base, Some(&sign("at+jwt", &claims)), &pairs).await;
    assert_eq!(r.status(), 401, "no secret is configured: an HMAC token verifies with nothing");
    let r = post_form(&app, &app.base, Some(&EC.sign("JWT", &claims)), &pairs).await;
    assert_eq!(r.status(), 401, "the provider's ID token is not an access token");
}
