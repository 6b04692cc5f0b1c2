//! The Mercure hub speaking 0.x (draft-07), in process on the embedded bus: what Symfony, API
//! Platform and the conformance suite rely on, in our own words.

use gateway::config::Protocol;
use shared::sse::Item;

use support::app::*;
use support::control::{disconnect, revoked_event};
use support::mercure::*;

const MULTI_LINE: &str = "data for\n\n        raw string";

#[tokio::test]
async fn an_anonymous_subscriber_receives_a_matching_update_exactly_with_the_posted_id() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let mut sub = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "foo"), ("topic", "books/1")]))).await;
    let id = publish_update(
        &app,
        &app.base,
        &legacy_token(&["*"], &[]),
        &[("topic", "books/1"), ("id", "id-[\"books/1\"]"), ("data", MULTI_LINE)],
    )
    .await;
    assert_eq!(id, "id-[\"books/1\"]", "the answer is the posted id");
    let e = sub.next_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str(), e.event.as_str()), (MULTI_LINE, id.as_str(), "message"));
}

#[tokio::test]
async fn a_generated_id_is_a_uuid_v7_urn_and_type_and_retry_reach_the_client() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let mut sub = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")]))).await;
    let token = legacy_token(&["*"], &[]);
    let id = publish_update(&app, &app.base, &token, &[("topic", "a"), ("data", "x"), ("type", "book.updated"), ("retry", "1234")]).await;
    let uuid = id.strip_prefix("urn:uuid:").expect("a urn:uuid id");
    assert_eq!(uuid::Uuid::parse_str(uuid).expect("a uuid").get_version_num(), 7);
    let mut retries = Vec::new();
    let event = loop {
        match sub.next_item().await.expect("open") {
            Item::Retry(ms) => retries.push(ms),
            Item::Event(e) => break e,
            _ => {}
        }
    };
    assert_eq!((event.event.as_str(), event.last_event_id.as_str()), ("book.updated", id.as_str()));
    assert_eq!(retries.last(), Some(&1234), "the update's retry came with it");
}

#[tokio::test]
async fn selectors_choose_exact_wildcard_and_template_matches_only() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let token = legacy_token(&["*"], &[]);
    let mut template = subscribe_hub(app.client.get(format!("{}{HUB}?topic=https://example.net/foo/{{id}}", app.base))).await;
    let mut exact = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "https://example.net/foo/another-name")]))).await;
    let mut none =
        subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "another-name"), ("topic", "https://example.net/bar/{x}")]))).await;
    publish_update(&app, &app.base, &token, &[("topic", "will-not-match"), ("data", "raw")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "https://example.net/foo/one"), ("data", "uri")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "https://example.net/foo/another-name"), ("data", "named")]).await;
    assert_eq!(data(&template.events(2).await), ["uri", "named"]);
    assert_eq!(exact.next_event().await.data, "named");
    none.expect_no_event(NOT_DELIVERED).await;
    exact.expect_no_event(std::time::Duration::from_millis(200)).await;
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_granted_one_of_their_topics() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let publisher = legacy_token(&["*"], &[]);
    let mut anonymous = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")]))).await;
    // Granted through the alternate topic only, with the token in the query string.
    let alice = legacy_token(&[], &["users/alice"]);
    let mut granted = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*"), ("authorization", &alice)]))).await;
    // The same grant in the cookie Symfony sets.
    let mut by_cookie = subscribe_hub(
        app.client.get(hub_url(&app.base, &[("topic", "books/{id}")])).header("cookie", format!("mercureAuthorization={alice}")),
    )
    .await;
    let other = legacy_token(&[], &["users/bob"]);
    let mut refused = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(&other)).await;
    let pairs = [("topic", "books/1"), ("topic", "users/alice"), ("data", "secret"), ("private", "on")];
    publish_update(&app, &app.base, &publisher, &pairs).await;
    publish_update(&app, &app.base, &publisher, &[("topic", "books/1"), ("data", "public")]).await;
    assert_eq!(data(&granted.events(2).await), ["secret", "public"]);
    assert_eq!(data(&by_cookie.events(2).await), ["secret", "public"]);
    assert_eq!(anonymous.next_event().await.data, "public", "the private update was skipped");
    assert_eq!(refused.next_event().await.data, "public");
}

#[tokio::test]
async fn publishing_needs_a_token_granting_every_topic_of_the_update() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let r = post_form(&app, &app.base, None, &[("topic", "a"), ("data", "x")]).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).starts_with("Bearer"), "{}", challenge(&r));
    let forged = format!("{}x", legacy_token(&["*"], &[]));
    let r = post_form(&app, &app.base, Some(&forged), &[("topic", "a")]).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains(r#"error="invalid_token""#), "{}", challenge(&r));
    let narrow = legacy_token(&["books/{id}"], &[]);
    let r = post_form(&app, &app.base, Some(&narrow), &[("topic", "books/1"), ("topic", "users/alice")]).await;
    assert_eq!(r.status(), 403, "an alternate topic outside the grant refuses the whole update");
    assert!(challenge(&r).contains(r#"error="insufficient_scope""#));
    publish_update(&app, &app.base, &narrow, &[("topic", "books/1")]).await;
    let expired = sign("JWT", &serde_json::json!({ "mercure": { "publish": ["*"] }, "exp": now() as f64 - 10.5 }));
    assert_eq!(post_form(&app, &app.base, Some(&expired), &[("topic", "a")]).await.status(), 401);
    let no_exp = sign("JWT", &serde_json::json!({ "mercure": { "publish": ["*"] } }));
    publish_update(&app, &app.base, &no_exp, &[("topic", "a")]).await;
    let cookie_only = app
        .client
        .post(format!("{}{HUB}", app.base))
        .header("cookie", format!("mercureAuthorization={narrow}"))
        .form(&[("topic", "books/1")]);
    assert_eq!(cookie_only.send().await.expect("send").status(), 401, "a cookie never publishes");
}

#[tokio::test]
async fn malformed_updates_are_refused_with_the_drafts_statuses() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let token = legacy_token(&["*"], &[]);
    for (pairs, status) in [
        (vec![("data", "no topic")], 400),
        (vec![("topic", "a"), ("id", "#internal")], 400),
        (vec![("topic", "a"), ("id", "earliest")], 400),
        (vec![("topic", "a"), ("retry", "soon")], 400),
        (vec![("topic", "a"), ("id", "a\nid: forged")], 400),
        (vec![("topic", "a"); 33], 413),
    ] {
        let r = post_form(&app, &app.base, Some(&token), &pairs).await;
        assert_eq!(r.status(), status, "{pairs:?}");
        let body: serde_json::Value = r.json().await.expect("a JSON error");
        assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    }
    let big = "x".repeat(2 * 1024 * 1024);
    assert_eq!(post_form(&app, &app.base, Some(&token), &[("topic", "a"), ("data", &big)]).await.status(), 413);
}

#[tokio::test]
async fn subscribing_without_a_token_needs_anonymous_access_turned_on() {
    let app = spawn_hub(Protocol::Legacy, false).await;
    let r = open(app.client.get(hub_url(&app.base, &[("topic", "*")]))).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).starts_with("Bearer"));
    let r = open(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth("not.a.token")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        open(app.client.get(format!("{}{HUB}", app.base)).bearer_auth(legacy_token(&[], &["*"]))).await.status(),
        400,
        "no selector"
    );
    subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(legacy_token(&[], &[]))).await;
}

#[tokio::test]
async fn reconnecting_replays_what_followed_the_last_id_and_echoes_it() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let token = legacy_token(&["*"], &[]);
    let first = publish_update(&app, &app.base, &token, &[("topic", "a"), ("data", "1")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "b"), ("data", "2")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "a"), ("id", "third"), ("data", "3")]).await;
    let url = hub_url(&app.base, &[("topic", "a")]);
    let mut header = subscribe_hub(app.client.get(&url).header("Last-Event-ID", &first)).await;
    assert_eq!(header.headers["last-event-id"], first.as_str(), "found: the id is echoed");
    let e = header.next_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("3", "third"), "only what matches, after the id");
    let mut query = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*"), ("lastEventID", &first)]))).await;
    assert_eq!(data(&query.events(2).await), ["2", "3"]);
    for start in ["earliest", "never-published"] {
        let mut all = subscribe_hub(app.client.get(&url).header("Last-Event-ID", start)).await;
        assert_eq!(all.headers["last-event-id"], "earliest", "{start}: everything held, and possible loss said");
        assert_eq!(data(&all.events(2).await), ["1", "3"]);
    }
    let mut live = subscribe_hub(app.client.get(&url)).await;
    assert!(live.headers.get("last-event-id").is_none(), "no resume asked, none answered");
    publish_update(&app, &app.base, &token, &[("topic", "a"), ("data", "4")]).await;
    assert_eq!(live.next_event().await.data, "4");
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let app = spawn_hub(Protocol::Legacy, false).await;
    let token = sign("JWT", &serde_json::json!({ "mercure": { "subscribe": ["*"] }, "exp": now() as f64 + 1.5 }));
    let mut sub = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(token)).await;
    sub.until_end().await;
    assert!(sub.ended);
}

#[tokio::test]
async fn mercure_and_native_topics_are_separate_namespaces() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let mut mercure = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")]))).await;
    let mut native = app.subscribe(&["books"], None).await;
    app.publish("books", "native").await;
    publish_update(&app, &app.base, &legacy_token(&["*"], &[]), &[("topic", "books"), ("data", "mercure")]).await;
    assert_eq!(mercure.next_event().await.data, "mercure");
    assert_eq!(native.next_event().await.data, "native");
    native.expect_no_event(std::time::Duration::from_millis(300)).await;
    let r = app.client.get(app.events_url(&["%24mercure"])).bearer_auth(token(&["*"], &[])).send().await.expect("send");
    assert_eq!(r.status(), 400, "the internal topic cannot be followed natively");
    let r = app.publish_raw(serde_json::json!({ "topic": "$mercure", "data": "{}" })).await;
    assert_eq!(r.status(), 400, "nor published to");
}

#[tokio::test]
async fn the_hub_is_off_by_default() {
    let app = spawn_app().await;
    assert_eq!(app.client.get(hub_url(&app.base, &[("topic", "*")])).send().await.expect("send").status(), 404);
}

/// Exactly what Symfony's Mercure component sends: a form with the `topic` key repeated and `+`
/// for spaces, an HS256 `JWT` token with the `mercure` claim and a float `exp`; and a subscriber
/// URL as its Twig `mercure()` helper builds it.
#[tokio::test]
async fn a_symfony_publisher_and_a_twig_built_subscriber_url_work_as_with_a_mercure_hub() {
    let app = spawn_hub(Protocol::Legacy, false).await;
    let jwt = sign(
        "JWT",
        &serde_json::json!({ "mercure": { "publish": ["*"], "subscribe": ["https://example.com/books/{id}"] }, "exp": 4102444800.25 }),
    );
    let subscriber = legacy_token(&[], &["https://example.com/books/{id}"]);
    let twig = format!("{}{HUB}?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&topic=https%3A%2F%2Fexample.com%2Fusers%2Fdunglas", app.base);
    let mut sub = subscribe_hub(app.client.get(twig).header("cookie", format!("mercureAuthorization={subscriber}"))).await;
    let body = "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&topic=https%3A%2F%2Fexample.com%2Fusers%2Fdunglas\
                &data=%7B%22status%22%3A+%22Out+of+stock%22%7D&private=on&id=%2Fbooks%2F1%2Fv2&type=stock&retry=3000";
    let r = app
        .client
        .post(format!("{}{HUB}", app.base))
        .header("Authorization", format!("Bearer {jwt}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "/books/1/v2");
    let e = sub.next_event().await;
    assert_eq!((e.data.as_str(), e.event.as_str(), e.last_event_id.as_str()), (r#"{"status": "Out of stock"}"#, "stock", "/books/1/v2"));
}

#[tokio::test]
async fn resuming_from_an_update_trimmed_from_history_says_earliest() {
    let app = spawn_with(|c| {
        c.mercure = Some(hub_config(Protocol::Legacy, true));
        c.history_max_len = 3;
    })
    .await;
    let token = legacy_token(&["*"], &[]);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(publish_update(&app, &app.base, &token, &[("topic", "a"), ("data", &i.to_string())]).await);
    }
    let mut trimmed = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "a")])).header("Last-Event-ID", &ids[0])).await;
    assert_eq!(trimmed.headers["last-event-id"], "earliest", "updates after it were trimmed");
    assert_eq!(data(&trimmed.events(3).await), ["2", "3", "4"], "what is held");
    let held = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "a")])).header("Last-Event-ID", &ids[2])).await;
    assert_eq!(held.headers["last-event-id"], ids[2].as_str());
}

#[tokio::test]
async fn an_idle_subscription_gets_the_gateways_heartbeats() {
    let app = spawn_with(|c| {
        c.mercure = Some(hub_config(Protocol::Legacy, true));
        c.heartbeat = std::time::Duration::from_secs(1);
    })
    .await;
    let mut sub = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")]))).await;
    loop {
        match sub.next_item().await.expect("the stream stays open") {
            Item::Comment(_) => break,
            Item::Retry(_) => continue,
            Item::Event(e) => panic!("unexpected event {e:?}"),
        }
    }
}

#[tokio::test]
async fn an_id_outside_ascii_resumes_as_eventsource_sends_it_back() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let token = legacy_token(&["*"], &[]);
    let id = publish_update(&app, &app.base, &token, &[("topic", "livres"), ("id", "/livres/é/1"), ("data", "1")]).await;
    publish_update(&app, &app.base, &token, &[("topic", "livres"), ("data", "2")]).await;
    let header = reqwest::header::HeaderValue::from_bytes(id.as_bytes()).expect("UTF-8 bytes");
    let mut sub = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "livres")])).header("Last-Event-ID", header)).await;
    assert_eq!(sub.headers["last-event-id"].as_bytes(), id.as_bytes());
    assert_eq!(sub.next_event().await.data, "2");
}

#[tokio::test]
async fn the_admin_api_revokes_mercure_subscribers_and_publishers_by_subject() {
    let app = spawn_hub(Protocol::Legacy, false).await;
    let alice = sign("JWT", &serde_json::json!({ "sub": "alice", "mercure": { "publish": ["*"], "subscribe": ["*"] } }));
    let bob = sign("JWT", &serde_json::json!({ "sub": "bob", "jti": "bob-1", "mercure": { "subscribe": ["*"] } }));
    let mut hers = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(&alice)).await;
    let mut his = subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(&bob)).await;
    let (status, answer) = disconnect(&app, serde_json::json!({ "subject": "alice", "duration": 60 })).await;
    assert_eq!((status, answer["disconnected"].as_u64()), (200, Some(1)), "{answer}");
    revoked_event(&mut hers).await;
    assert_eq!(open(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(&alice)).await.status(), 401);
    assert_eq!(post_form(&app, &app.base, Some(&alice), &[("topic", "a")]).await.status(), 401, "nor may she publish");
    let (status, _) = disconnect(&app, serde_json::json!({ "jti": "bob-1", "duration": 0 })).await;
    assert_eq!(status, 200);
    revoked_event(&mut his).await;
    subscribe_hub(app.client.get(hub_url(&app.base, &[("topic", "*")])).bearer_auth(&bob)).await;
}
