//! The rest of the surface: CORS, demo mode and page, the clock topic, and logs that never carry
//! a token.

use std::time::Duration;

use gateway::{App, Config};
use shared::sse::Item;

use support::app::*;
use support::processes::{Node, Scratch, read_log};

#[tokio::test]
async fn cors_allows_listed_origins_with_credentials_and_no_others() {
    let app = spawn_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/events"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "last-event-id,authorization")
            .send()
    };
    let ok = preflight("https://app.example").await.expect("preflight");
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let allowed_headers = ok.headers()["access-control-allow-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(allowed_headers.contains("last-event-id") && allowed_headers.contains("authorization"), "{allowed_headers}");
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_a_key_the_gateway_makes_one_and_prints_working_tokens() {
    let mut config = Config::for_tests(SECRET);
    config.jwt = None;
    let app = App::build(config).await.expect("app");
    let tokens = app.demo_tokens().expect("demo mode");
    let claims = app.state().auth.verify(&tokens.subscribe).await.expect("the printed subscribe token verifies");
    assert!(claims.may_subscribe(&shared::Topic::parse("anything").expect("topic")));
    assert!(!claims.may_publish(&shared::Topic::parse("anything").expect("topic")), "subscribe and publish tokens are separate");
    assert!(app.state().auth.verify(&tokens.publish).await.expect("publish token").may_publish(&shared::Topic::parse("x").expect("topic")));
    let banner = app.demo_banner().expect("banner");
    // The tokens come after `#`: a browser sends no fragment, so no server or proxy sees them.
    assert!(banner.contains(&format!("http://{}/#topic=clock&access_token={}", app.local_addr(), tokens.subscribe)), "{banner}");
    // A forged token signed with any fixed secret is refused: demo mode is not open.
    assert!(app.state().auth.verify(&token(&["*"], &["*"])).await.is_err());
}

#[tokio::test]
async fn with_a_key_there_is_no_demo_banner() {
    let app = App::build(Config::for_tests(SECRET)).await.expect("app");
    assert!(app.demo_tokens().is_none() && app.demo_banner().is_none());
}

/// `GATEWAY_DEMO`: the printed tokens are signed with the configured secret, so every node
/// sharing it accepts them, which a demo stack of several nodes behind one URL needs.
#[tokio::test]
async fn with_gateway_demo_the_printed_tokens_work_on_every_node_sharing_the_secret() {
    let demo_config = || {
        let mut config = Config::for_tests(SECRET);
        config.demo = true;
        config.public_url = Some("http://localhost:8080/".into());
        config
    };
    let printer = App::build(demo_config()).await.expect("app");
    let tokens = printer.demo_tokens().expect("demo tokens with a configured secret");
    let banner = printer.demo_banner().expect("banner");
    assert!(banner.contains("GATEWAY_DEMO") && banner.contains("GATEWAY_JWT_SECRET"), "{banner}");
    assert!(banner.contains(&format!("http://localhost:8080/#topic=clock&access_token={}", tokens.subscribe)), "{banner}");

    // Another node with the same secret, demo on or off, accepts them; so does any client minting
    // with the secret.
    let other = spawn_app().await;
    let topic = shared::Topic::parse("orders").expect("topic");
    assert!(other.state.auth.verify(&tokens.subscribe).await.expect("subscribe token").may_subscribe(&topic));
    assert!(other.state.auth.verify(&tokens.publish).await.expect("publish token").may_publish(&topic));
    let r = other.client.get(format!("{}&access_token={}", other.events_url(&["orders"]), tokens.subscribe)).send().await.expect("stream");
    assert_eq!(r.status(), 200);
    let r = other
        .client
        .post(other.url("/publish"))
        .bearer_auth(&tokens.publish)
        .json(&serde_json::json!({"topic": "orders", "data": "x"}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
    // A node with another secret does not.
    let stranger = App::build(Config::for_tests("another-secret-0123456789abcdef-0123456789")).await.expect("app");
    assert!(stranger.state().auth.verify(&tokens.subscribe).await.is_err());
}

#[tokio::test]
async fn gateway_demo_tokens_carry_what_the_verifier_requires() {
    let mut config = Config::for_tests(SECRET);
    config.demo = true;
    let jwt = config.jwt.as_mut().expect("a key");
    jwt.algorithms = vec![jsonwebtoken::Algorithm::HS512];
    jwt.issuer = Some("https://issuer.example".into());
    jwt.audience = Some("sse".into());
    let app = App::build(config).await.expect("app");
    let tokens = app.demo_tokens().expect("tokens");
    let claims = app.state().auth.verify(&tokens.subscribe).await.expect("accepted by this node's own verifier");
    assert_eq!(claims.iss.as_deref(), Some("https://issuer.example"));
    assert_eq!(jsonwebtoken::decode_header(&tokens.subscribe).expect("header").alg, jsonwebtoken::Algorithm::HS512);
}

#[tokio::test]
async fn the_demo_page_is_served_at_the_root() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/")).send().await.expect("page");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let page = resp.text().await.expect("text");
    assert!(page.contains("new EventSource(") && page.contains("gateway.lost"));
    assert!(
        page.contains("location.hash") && page.contains("'/tickets'"),
        "the page reads its tokens from the fragment and opens streams with tickets"
    );
}

#[tokio::test]
async fn the_clock_topic_ticks_with_the_current_time() {
    let app = spawn_with(|c| c.clock_interval = Some(Duration::from_millis(100))).await;
    let mut s = app.subscribe(&["clock"], None).await;
    let a = s.next_event().await;
    let b = s.next_event().await;
    for e in [&a, &b] {
        humantime::parse_rfc3339(&e.data).unwrap_or_else(|_| panic!("not an RFC 3339 time: {}", e.data));
    }
    assert!(a.last_event_id.parse::<shared::StreamId>().expect("id") < b.last_event_id.parse().expect("id"));
}

/// Issues tickets on `node` with `bearer` and presents them: one redeemed and replayed, one
/// narrowed and spent on a topic it does not open, one guessed. Returns the tickets presented.
async fn use_tickets(client: &reqwest::Client, node: &Node, bearer: &str) -> Vec<String> {
    let issue = async |body: serde_json::Value| {
        let resp = client.post(node.url("/tickets")).bearer_auth(bearer).json(&body).send().await.expect("POST /tickets");
        assert_eq!(resp.status(), 200);
        resp.json::<serde_json::Value>().await.expect("json")["ticket"].as_str().expect("a ticket").to_owned()
    };
    let present = async |topic: &str, ticket: &str| {
        client.get(node.url("/events")).query(&[("topic", topic), ("ticket", ticket)]).send().await.expect("GET /events").status()
    };
    let redeemed = issue(serde_json::json!({})).await;
    let resp = client.get(node.url("/events")).query(&[("topic", "t"), ("ticket", &redeemed)]).send().await.expect("stream");
    assert_eq!(resp.status(), 200);
    let mut s = SseClient::new(resp);
    assert!(matches!(s.next_item().await, Some(Item::Retry(_))));
    drop(s);
    assert_eq!(present("t", &redeemed).await, 401, "replayed");
    let narrowed = issue(serde_json::json!({ "topics": ["t"] })).await;
    assert_eq!(present("u", &narrowed).await, 403);
    let (head, _) = redeemed.rsplit_once('.').expect("a ticket");
    let guessed = format!("{head}.{}", b64url(&rand::random::<[u8; 16]>()));
    assert_eq!(present("t", &guessed).await, 401);
    vec![redeemed, narrowed, guessed]
}

/// Every log line a gateway process writes at DEBUG, its own and its libraries', in both log
/// formats, for requests that carry tokens in the query string, the header and a cookie,
/// accepted and refused, and tickets issued, redeemed and refused.
///
/// The gateway runs as a process of its own, as operators run it: `tracing` decides once per
/// process whether a log statement is enabled (its callsite cache), for the first thread that
/// reaches it. Captured inside this test binary, the gateway's lines would depend on which test
/// beside it, with no subscriber, reached each statement first.
#[tokio::test]
async fn tokens_never_appear_in_logs() {
    let good = token(&["t"], &["t"]);
    let expired = gateway::mint(SECRET.as_bytes(), &shared::Claims { exp: now() - 3600, ..claims(&["t"], &[]) }).expect("mint");
    let forged = format!("{}x", &good[..good.len() - 1]);
    let dir = Scratch::new("logs");
    let client = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("client");
    for (index, (format, route)) in [("text", r#"route="/events""#), ("json", r#""route":"/events""#)].into_iter().enumerate() {
        let mut node = Node::embedded(&dir.0, index, &[("RUST_LOG", "debug"), ("GATEWAY_LOG_FORMAT", format)]);
        node.wait_ready(&client).await;
        let events = node.url("/events?topic=t");
        for t in [&good, &expired, &forged] {
            let _ = client.get(format!("{events}&access_token={t}")).send().await.expect("request");
            let _ = client.get(&events).bearer_auth(t).send().await.expect("request");
            let _ = client.get(&events).header("cookie", format!("sse_token={t}")).send().await.expect("request");
            let _ = client.post(format!("{}?access_token={t}", node.url("/publish"))).body("{}").send().await.expect("request");
        }
        let resp = client.get(&events).bearer_auth(token(&["*"], &[])).send().await.expect("stream");
        assert_eq!(resp.status(), 200);
        let mut s = SseClient::new(resp);
        assert!(matches!(s.next_item().await, Some(Item::Retry(_))));
        drop(s);
        let tickets = use_tickets(&client, &node, &good).await;
        node.terminate().await;

        let logs = read_log(&node.log);
        assert!(logs.contains(route) && logs.contains("token refused"), "the {format} log holds the route spans:\n{logs}");
        assert!(logs.contains("/tickets") && logs.contains("ticket refused"), "the {format} log holds the ticket requests:\n{logs}");
        for t in [&good, &expired, &forged] {
            let signature = t.rsplit('.').next().expect("signature");
            assert!(!logs.contains(signature), "a token leaked into the {format} log:\n{logs}");
        }
        for t in &tickets {
            let secret = t.rsplit('.').next().expect("secret");
            assert!(!logs.contains(secret), "a ticket leaked into the {format} log:\n{logs}");
        }
        assert!(!logs.contains("access_token") && !logs.contains("ticket="), "the query string leaked into the {format} log:\n{logs}");
    }
}
