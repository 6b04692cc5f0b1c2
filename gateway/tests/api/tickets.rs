//! One-time stream tickets: `POST /tickets` trades a token (header or cookie, never the query
//! string) for a ticket that opens one stream, once, on any node sharing the bus, with the
//! token's claims (or fewer), and never after the token's `exp`. Every refusal is a `401` whose
//! `error_description` says which (`ticket_used`, `ticket_expired`, `ticket_unknown`,
//! `ticket_foreign`, `ticket_malformed`) and echoes nothing of the ticket.
//!
//! Waits for an expiry poll the clock until it has passed: nothing here depends on how fast the
//! machine is.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use gateway::counters::Counters;
use serde_json::{Value, json};
use shared::Claims;

use support::app::*;
use support::redis::*;

on_every_shape!(a_ticket_issued_on_one_node_opens_a_stream_on_another_once_and_only_once);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

/// Polls the wall clock until it is past `ms`.
async fn wait_until_past(ms: u64) {
    eventually(format!("the clock to pass {ms}"), WAIT, async || now_ms() > ms).await;
}

/// `POST /tickets` with `bearer` in the Authorization header and an optional JSON body.
async fn post_tickets(app: &TestApp, bearer: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/tickets")).bearer_auth(bearer);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("POST /tickets")
}

/// A ticket for `bearer`, asserting the answer's shape.
async fn ticket(app: &TestApp, bearer: &str) -> String {
    issued(post_tickets(app, bearer, None).await).await
}

async fn issued(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200, "POST /tickets: {:?}", resp.text().await);
    assert_eq!(resp.headers()["cache-control"], "no-store", "a credential is not cached");
    let body: Value = resp.json().await.expect("json");
    assert!(body["expires_in"].as_u64().is_some(), "{body}");
    body["ticket"].as_str().expect("a ticket").to_owned()
}

/// `GET /events` for `topics` with `ticket`, properly encoded.
async fn open(app: &TestApp, topics: &[&str], ticket: &str) -> reqwest::Response {
    let mut query: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
    query.push(("ticket", ticket));
    app.client.get(app.url("/events")).query(&query).send().await.expect("GET /events")
}

/// Asserts a 401 refusing the ticket for `code`, in the challenge and in the body's message, with
/// nothing of the ticket in the answer.
async fn assert_refused(resp: reqwest::Response, code: &str, presented: &str) {
    let status = resp.status();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii").to_owned()).unwrap_or_default();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 401, "expected 401 {code}, got {status}: {body}");
    assert!(challenge.contains(&format!(r#"error_description="{code}""#)), "expected {code}: {challenge}");
    let json: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(json["error"], "unauthorized", "{json}");
    assert!(json["message"].as_str().is_some_and(|m| m.contains(code)), "the message names {code}: {json}");
    for part in presented.split('.').filter(|p| p.len() >= 8) {
        assert!(!body.contains(part) && !challenge.contains(part), "the answer echoes the ticket: {challenge} {body}");
    }
}

async fn stream(resp: reqwest::Response) -> SseClient {
    assert_eq!(resp.status(), 200, "the ticket should open the stream: {:?}", resp.text().await);
    SseClient::new(resp)
}

#[tokio::test]
async fn a_ticket_opens_one_stream_with_its_tokens_grants_and_is_then_used() {
    let app = spawn_app().await;
    let bearer = token(&["orders.*"], &[]);
    let resp = post_tickets(&app, &bearer, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["expires_in"], 30, "GATEWAY_TICKET_TTL's default: {body}");
    let t = body["ticket"].as_str().expect("ticket").to_owned();
    let mut s = stream(open(&app, &["orders.1"], &t).await).await;
    app.publish("orders.1", "hello").await;
    assert_eq!(s.next_event().await.data, "hello");
    assert_refused(open(&app, &["orders.1"], &t).await, "ticket_used", &t).await;
    let other = ticket(&app, &bearer).await;
    assert_eq!(open(&app, &["news"], &other).await.status(), 403, "the token's grants hold");
    assert_refused(open(&app, &["orders.1"], &other).await, "ticket_used", &other).await;
    let m = app.metrics().await;
    let outcome = |o: &str| m.value(&format!(r#"sse_gateway_tickets_total{{outcome="{o}"}}"#));
    assert_eq!([outcome("issued"), outcome("redeemed"), outcome("ticket_used")], [2.0, 2.0, 2.0], "{}", m.0);
}

#[tokio::test]
async fn a_ticket_can_be_had_with_the_auth_cookie() {
    let app = spawn_app().await;
    let cookie = format!("sse_token={}", token(&["t"], &[]));
    let resp = app.client.post(app.url("/tickets")).header("cookie", cookie).send().await.expect("request");
    let t = issued(resp).await;
    stream(open(&app, &["t"], &t).await).await;
}

#[tokio::test]
async fn post_tickets_without_a_token_is_401_and_a_token_in_the_query_is_not_looked_at() {
    let app = spawn_app().await;
    let resp = app.client.post(app.url("/tickets")).send().await.expect("request");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="sse-gateway""#);
    let url = format!("{}?access_token={}", app.url("/tickets"), token(&["*"], &[]));
    let resp = app.client.post(url).send().await.expect("request");
    assert_eq!(resp.status(), 401, "the query string is not a place for tokens here");
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="sse-gateway""#);
    let resp = app.client.get(app.url("/tickets")).bearer_auth(token(&["*"], &[])).send().await.expect("request");
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn a_ticket_with_a_token_is_400_but_the_cookie_a_browser_adds_is_not_a_token() {
    let app = spawn_app().await;
    let bearer = token(&["t"], &[]);
    let t = ticket(&app, &bearer).await;
    let with_header = app.client.get(app.url("/events")).query(&[("topic", "t"), ("ticket", &t)]).bearer_auth(&bearer);
    let resp = with_header.send().await.expect("request");
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.expect("json")["error"], "ticket_and_token");
    let resp = app.client.get(app.url("/events")).query(&[("topic", "t"), ("ticket", &t), ("access_token", &bearer)]).send();
    assert_eq!(resp.await.expect("request").status(), 400);
    // Refused before it was looked at: the ticket is still good, with a cookie along.
    let resp = app.client.get(app.url("/events")).query(&[("topic", "t"), ("ticket", &t)]).header("cookie", format!("sse_token={bearer}"));
    stream(resp.send().await.expect("request")).await;
}

async fn a_ticket_issued_on_one_node_opens_a_stream_on_another_once_and_only_once(shape: Shape) {
    let store = Store::start(shape).await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_at(store.url(), &prefix, |_| {}).await);
    }
    let bearer = token(&["t"], &[]);
    let t = ticket(&nodes[0], &bearer).await;
    let mut s = stream(open(&nodes[1], &["t"], &t).await).await;
    nodes[2].publish("t", "from C").await;
    assert_eq!(s.next_event().await.data, "from C");
    assert_refused(open(&nodes[2], &["t"], &t).await, "ticket_used", &t).await;
    assert_refused(open(&nodes[0], &["t"], &t).await, "ticket_used", &t).await;

    // Replayed on every node at once: exactly one stream opens.
    let raced = ticket(&nodes[2], &bearer).await;
    let answers = futures::future::join_all(nodes.iter().map(|n| open(n, &["t"], &raced))).await;
    let (opened, refused): (Vec<_>, Vec<_>) = answers.into_iter().partition(|r| r.status() == 200);
    assert_eq!(opened.len(), 1, "one node redeems it");
    for resp in refused {
        assert_refused(resp, "ticket_used", &raced).await;
    }
}

#[tokio::test]
async fn a_ticket_expires_after_the_ticket_ttl_on_either_bus() {
    let redis = TestRedis::start().await;
    let ttl = |c: &mut gateway::Config| c.ticket_ttl = Duration::from_secs(1);
    for app in [spawn_with(ttl).await, spawn_node_at(&redis.url, &unique_prefix(), ttl).await] {
        let resp = post_tickets(&app, &token(&["t"], &[]), None).await;
        // The ticket's expiry is at most one second after the server read its clock, which was
        // before the answer came.
        let answered = now_ms();
        let t = issued(resp).await;
        wait_until_past(answered + 1_000).await;
        assert_refused(open(&app, &["t"], &t).await, "ticket_expired", &t).await;
    }
}

#[tokio::test]
async fn a_ticket_never_outlives_its_token_and_its_stream_ends_at_the_tokens_exp() {
    let app = spawn_with(|c| c.jwt.as_mut().expect("jwt").leeway = Duration::ZERO).await;
    let exp = now() + 3;
    let bearer = gateway::mint(SECRET.as_bytes(), &Claims { exp, ..claims(&["t"], &[]) }).expect("mint");
    let resp = post_tickets(&app, &bearer, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s <= 3), "not the 30 s TTL: {body}");
    let spare = ticket(&app, &bearer).await;
    let mut s = stream(open(&app, &["t"], body["ticket"].as_str().expect("ticket")).await).await;
    s.until_end().await;
    assert_eq!(Counters::get(&app.counters().token_expired_disconnects), 1, "the stream ended because its token expired");
    wait_until_past(exp * 1000).await;
    assert_refused(open(&app, &["t"], &spare).await, "ticket_expired", &spare).await;
}

#[tokio::test]
async fn a_ticket_from_another_deployment_is_ticket_foreign() {
    let (redis, other_redis) = (TestRedis::start().await, TestRedis::start().await);
    let prefix = unique_prefix();
    let home = spawn_node_at(&redis.url, &prefix, |_| {}).await;
    let neighbour = spawn_node_at(&redis.url, &unique_prefix(), |_| {}).await;
    let elsewhere = spawn_node_at(&other_redis.url, &prefix, |_| {}).await;
    let (embedded, other_embedded) = (spawn_app().await, spawn_app().await);
    let bearer = token(&["t"], &[]);
    for (issuer, presented_to) in [(&home, &neighbour), (&home, &elsewhere), (&elsewhere, &home), (&embedded, &other_embedded)] {
        let t = ticket(issuer, &bearer).await;
        assert_refused(open(presented_to, &["t"], &t).await, "ticket_foreign", &t).await;
        stream(open(issuer, &["t"], &t).await).await;
    }
}

/// How long to wait for the deployment tag: it is refreshed every 10 s, and the bound leaves room
/// for two refreshes on a busy machine.
const TAG_BOUND: Duration = Duration::from_secs(30);

/// A ticket string as the gateway writes them, with a deployment tag and expiry of our choosing.
fn forge(deployment: &str, expires_ms: u64) -> String {
    let mut digits = Vec::new();
    let mut n = expires_ms;
    while n > 0 {
        digits.push(char::from_digit((n % 36) as u32, 36).expect("a digit"));
        n /= 36;
    }
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    format!("{deployment}.{}.{secret}", digits.iter().rev().collect::<String>())
}

#[tokio::test]
async fn guessed_malformed_and_oversized_tickets_are_refused_and_nothing_leaks() {
    let app = spawn_app().await;
    let real = ticket(&app, &token(&["t"], &[])).await;
    let deployment = real.split('.').next().expect("the deployment tag");
    for _ in 0..50 {
        let guess = forge(deployment, now_ms() + 60_000);
        assert_refused(open(&app, &["t"], &guess).await, "ticket_unknown", &guess).await;
    }
    let foreign = forge("AAAAAAAAAAAA", now_ms() + 60_000);
    assert_refused(open(&app, &["t"], &foreign).await, "ticket_foreign", &foreign).await;
    let malformed = [
        String::new(),
        "ticket".into(),
        format!("{real}x"),
        format!("{real}.{real}"),
        real.replace('.', ""),
        format!("{deployment}.1A.{}", real.rsplit('.').next().expect("secret")),
        format!("{real}\r\nX-Injected: 1"),
        format!("{deployment}.-1.{}", real.rsplit('.').next().expect("secret")),
        "A".repeat(10_000),
    ];
    for bad in &malformed {
        assert_refused(open(&app, &["t"], bad).await, "ticket_malformed", bad).await;
    }
    stream(open(&app, &["t"], &real).await).await;
}

#[tokio::test]
async fn a_narrowed_ticket_opens_only_the_topics_it_names() {
    let app = spawn_app().await;
    let bearer = token(&["orders.*"], &[]);
    let narrowed = |topics: Value| post_tickets(&app, &bearer, Some(json!({ "topics": topics })));
    let t = issued(narrowed(json!(["orders.1", "orders.2"])).await).await;
    assert_eq!(open(&app, &["orders.3"], &t).await.status(), 403, "a topic the token grants but the ticket does not");
    let t = issued(narrowed(json!(["orders.1", "orders.2"])).await).await;
    stream(open(&app, &["orders.1", "orders.2"], &t).await).await;

    let forbidden = narrowed(json!(["news"])).await;
    assert_eq!(forbidden.status(), 403, "only what the token grants");
    assert!(forbidden.text().await.expect("body").contains("news"));
    let error = async |resp: reqwest::Response| (resp.status().as_u16(), resp.json::<Value>().await.expect("json")["error"].clone());
    assert_eq!(error(narrowed(json!([])).await).await, (400, json!("invalid_topic")));
    assert_eq!(error(narrowed(json!(["bad topic"])).await).await, (400, json!("invalid_topic")));
    assert_eq!(error(narrowed(json!("orders.1")).await).await, (400, json!("invalid_json")));
    assert_eq!(error(post_tickets(&app, &bearer, Some(json!({ "topic": ["orders.1"] }))).await).await, (400, json!("invalid_json")));
    let not_json = app.client.post(app.url("/tickets")).bearer_auth(&bearer).body("{topics").send().await.expect("request");
    assert_eq!(error(not_json).await, (400, json!("invalid_json")));
    assert!(announced_oversize_is_413(&app, &bearer).await);
    // No body, or one without topics: the token's grants.
    let t = issued(post_tickets(&app, &bearer, Some(json!({}))).await).await;
    stream(open(&app, &["orders.9"], &t).await).await;
}

/// A body announced far over the bound is refused before any of it is sent (a raw request: an
/// HTTP client would send the body).
async fn announced_oversize_is_413(app: &TestApp, bearer: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("write the head");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await.expect("an answer in time").expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    answer.contains("payload_too_large")
}

#[tokio::test]
async fn a_ticket_stream_counts_towards_its_subjects_limit_and_personal_grants_hold() {
    let app = spawn_with(|c| c.max_connections_per_subject = 1).await;
    let grant = patterns(&["user.{sub}.*"]);
    let alice = Claims { sub: Some("alice".into()), subscribe: grant, ..claims(&[], &[]) };
    let alice = gateway::mint(SECRET.as_bytes(), &alice).expect("mint");
    let _held = stream(open(&app, &["user.alice.inbox"], &ticket(&app, &alice).await).await).await;
    let resp = open(&app, &["user.alice.other"], &ticket(&app, &alice).await).await;
    assert_eq!(resp.status(), 429, "alice already holds her one stream");
    assert_eq!(open(&app, &["user.bob.inbox"], &ticket(&app, &alice).await).await.status(), 403, "{{sub}} is alice");
    let resp = post_tickets(&app, &alice, Some(json!({ "topics": ["user.bob.inbox"] }))).await;
    assert_eq!(resp.status(), 403);
}

/// The deployment's tag lives in Redis with a short expiry that every node refreshes. Lost while
/// the nodes run (Redis restarted empty), it comes back with the same value, so tickets keep
/// working across nodes; replaced (a node started in that gap wrote its own), every node adopts
/// the stored one.
#[tokio::test]
async fn the_deployment_tag_comes_back_when_its_key_is_lost_and_nodes_adopt_the_stored_one() {
    use fred::interfaces::KeysInterface;
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let nodes = [spawn_node_at(&redis.url, &prefix, |_| {}).await, spawn_node_at(&redis.url, &prefix, |_| {}).await];
    let client = redis_client(&redis).await;
    let key = format!("{prefix}:deployment");
    let tag: String = client.get(&key).await.expect("GET");
    let ttl: i64 = client.pttl(&key).await.expect("PTTL");
    assert!(0 < ttl && ttl <= 30_000, "the tag expires unless refreshed: PTTL {ttl}");
    let bearer = token(&["t"], &[]);
    assert!(ticket(&nodes[0], &bearer).await.starts_with(&format!("{tag}.")));

    let _: i64 = client.del(&key).await.expect("DEL");
    eventually("the tag to be written back", TAG_BOUND, || async {
        client.get::<Option<String>, _>(&key).await.expect("GET") == Some(tag.clone())
    })
    .await;
    let t = ticket(&nodes[0], &bearer).await;
    stream(open(&nodes[1], &["t"], &t).await).await;

    let other = "BBBBBBBBBBBB";
    let _: () = client.set(&key, other, None, None, false).await.expect("SET");
    for node in &nodes {
        eventually("the node to adopt the stored tag", TAG_BOUND, || async {
            ticket(node, &bearer).await.starts_with(&format!("{other}."))
        })
        .await;
    }
    let t = ticket(&nodes[1], &bearer).await;
    stream(open(&nodes[0], &["t"], &t).await).await;
}
