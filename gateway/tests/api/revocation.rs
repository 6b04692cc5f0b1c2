//! Revocation and kick: `POST /admin/disconnect` on any node closes the covered streams on every
//! node after a last `gateway.revoked`, and refuses the subject, token or topic for as long as
//! the revocation stands; `GET /admin/streams` counts across nodes. Authorized by the admin
//! claim only.

use serde_json::{Value, json};

use support::app::*;
use support::control::*;
use support::cutter::Cutter;
use support::redis::*;

async fn three_nodes(redis: &TestRedis) -> Vec<TestApp> {
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node(redis, &prefix).await);
    }
    nodes
}

#[tokio::test]
async fn a_revocation_issued_on_one_node_closes_the_subjects_streams_on_every_node_and_refuses_it() {
    let redis = TestRedis::start().await;
    let nodes = three_nodes(&redis).await;
    let mut on_b = follow(&nodes[1], &["t"], &user_token("alice", "a1")).await;
    let mut on_c = follow(&nodes[2], &["t", "u"], &user_token("alice", "a2")).await;
    let mut bob = follow(&nodes[1], &["t"], &user_token("bob", "b1")).await;
    assert_eq!(count(&nodes[0], "subject=alice").await, json!({ "streams": 2, "nodes": 3, "nodes_expected": 3 }));

    let (status, answer) = disconnect(&nodes[0], json!({ "subject": "alice", "duration": 600 })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["disconnected"].as_u64(), answer["nodes"].as_u64()), (Some(2), Some(3)), "{answer}");
    assert!(answer["until"].as_u64().is_some_and(|u| u > now() + 590), "{answer}");

    for stream in [&mut on_b, &mut on_c] {
        let last = revoked_event(stream).await;
        let data: Value = serde_json::from_str(&last.data).expect("json data");
        assert_eq!(data["reason"], "subject");
        assert_eq!(data["until"], answer["until"]);
    }
    // Any token of alice's is refused on every node; bob keeps streaming.
    for node in &nodes {
        let resp = open(node, &["t"], &user_token("alice", "a3")).await;
        assert_eq!(resp.status(), 401);
        assert!(challenge(&resp).contains(r#"error_description="revoked""#), "{}", challenge(&resp));
    }
    nodes[2].publish("t", "still here").await;
    assert_eq!(bob.next_event().await.data, "still here");
    assert_eq!(count(&nodes[2], "subject=alice").await["streams"], 0);

    // What the control plane keeps in Redis expires: a footprint bounded by what is live.
    use fred::interfaces::KeysInterface;
    let client = redis_client(&redis).await;
    let prefix = &nodes[0].state.config.redis_prefix;
    for key in ["control", "revoked", "nodes"] {
        let ttl: i64 = client.pttl(format!("{prefix}:{key}")).await.expect("PTTL");
        assert!(ttl > 0, "{prefix}:{key} would live for ever (PTTL {ttl})");
    }
    let revoked_ttl: i64 = client.pttl(format!("{prefix}:revoked")).await.expect("PTTL");
    assert!(revoked_ttl <= 600_000, "the revocations expire with the last that stands: PTTL {revoked_ttl}");
}

#[tokio::test]
async fn a_token_revoked_by_its_jti_is_refused_until_the_revocation_lapses_while_its_subject_keeps_others() {
    let app = spawn_app().await;
    let mut leaked = follow(&app, &["t"], &user_token("alice", "leaked")).await;
    let mut other = follow(&app, &["t"], &user_token("alice", "fresh")).await;
    let (status, answer) = disconnect(&app, json!({ "jti": "leaked", "duration": 1 })).await;
    assert_eq!((status, answer["disconnected"].as_u64()), (200, Some(1)), "{answer}");
    let data: Value = serde_json::from_str(&revoked_event(&mut leaked).await.data).expect("json");
    assert_eq!(data["reason"], "jti");
    assert_eq!(open(&app, &["t"], &user_token("alice", "leaked")).await.status(), 401);
    app.publish("t", "for the other token").await;
    assert_eq!(other.next_event().await.data, "for the other token");
    // One second later the revocation has lapsed.
    eventually("the revocation to lapse", WAIT, async || open(&app, &["t"], &user_token("alice", "leaked")).await.status() == 200).await;
}

#[tokio::test]
async fn a_kick_refuses_nothing_and_a_topic_revocation_closes_and_refuses_the_topic_only() {
    let app = spawn_app().await;
    let mut s = follow(&app, &["room"], &user_token("alice", "a1")).await;
    let (status, answer) = disconnect(&app, json!({ "topic": "room", "duration": 0 })).await;
    assert_eq!((status, answer["until"].clone()), (200, Value::Null), "{answer}");
    assert_eq!(serde_json::from_str::<Value>(&revoked_event(&mut s).await.data).expect("json")["until"], Value::Null);
    let mut back = follow(&app, &["room", "lobby"], &user_token("alice", "a1")).await;

    disconnect(&app, json!({ "topic": "room" })).await;
    revoked_event(&mut back).await;
    let refused = open(&app, &["lobby", "room"], &user_token("bob", "b1")).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await.expect("json")["error"], "topic_revoked");
    let mut lobby = follow(&app, &["lobby"], &user_token("alice", "a1")).await;
    app.publish("lobby", "open").await;
    assert_eq!(lobby.next_event().await.data, "open");
}

#[tokio::test]
async fn the_admin_api_takes_only_admin_tokens_and_well_formed_selectors() {
    let app = spawn_app().await;
    let url = app.url("/admin/disconnect");
    let body = json!({ "subject": "alice" });
    let no_token = app.client.post(&url).json(&body).send().await.expect("request");
    assert_eq!(no_token.status(), 401);
    for (who, bearer) in [("subscriber", token(&["*"], &[])), ("publisher", token(&[], &["*"]))] {
        let (status, answer) = disconnect_as(&app, body.clone(), &bearer).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("not_admin")), "{who}");
    }
    let in_query = app.client.post(format!("{url}?access_token={}", admin_token())).json(&body).send().await.expect("request");
    assert_eq!(in_query.status(), 401, "an admin token is taken from the Authorization header only");
    let counted = app.client.get(app.url("/admin/streams?subject=a")).bearer_auth(token(&["*"], &["*"])).send().await.expect("request");
    assert_eq!(counted.status(), 403);

    for (bad, code) in [
        (json!({}), "invalid_selector"),
        (json!({ "subject": "a", "jti": "b" }), "invalid_selector"),
        (json!({ "subject": "" }), "invalid_selector"),
        (json!({ "topic": "no spaces" }), "invalid_topic"),
        (json!({ "subject": "a", "duration": 31 * 24 * 3600 }), "invalid_duration"),
        (json!({ "subject": "a", "duration": -1 }), "invalid_body"),
        (json!({ "subject": "a", "reason": "x" }), "invalid_body"),
        (json!(["subject"]), "invalid_body"),
    ] {
        let (status, answer) = disconnect(&app, bad.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some(code)), "{bad}: {answer}");
    }
    let not_json = app.client.post(&url).bearer_auth(admin_token()).body("subject=alice").send().await.expect("request");
    assert_eq!(not_json.status(), 400);
    let resp = app.client.get(app.url("/admin/streams?who=alice")).bearer_auth(admin_token()).send().await.expect("request");
    assert_eq!(resp.status(), 400);
}

/// A node cut off from Redis when the revocation is issued applies it once it is back: its
/// streams under it end and it refuses the subject.
#[tokio::test]
async fn a_node_cut_off_from_redis_applies_a_revocation_when_it_reconnects() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let a = spawn_node(&redis, &prefix).await;
    let cutter = Cutter::start(&redis.url).await;
    let b = spawn_node_at(&cutter.url, &prefix, |_| {}).await;
    let mut on_b = follow(&b, &["t"], &user_token("alice", "a1")).await;

    cutter.cut();
    let (status, answer) = disconnect(&a, json!({ "subject": "alice" })).await;
    assert_eq!(status, 200, "{answer}");
    cutter.restore();
    revoked_event(&mut on_b).await;
    assert_eq!(open(&b, &["t"], &user_token("alice", "a2")).await.status(), 401);
}

/// Reconnects racing a revocation: once `POST /admin/disconnect` has answered, no stream of the
/// subject is open on any node and every later attempt is refused.
#[tokio::test]
async fn reconnects_racing_a_revocation_end_refused_or_revoked() {
    let redis = TestRedis::start().await;
    let nodes = three_nodes(&redis).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut racers = Vec::new();
    for node in [&nodes[1], &nodes[2]] {
        let (client, url, stop) = (node.client.clone(), node.events_url(&["t"]), stop.clone());
        racers.push(tokio::spawn(async move {
            let mut opened = Vec::new();
            while !stop.is_cancelled() {
                let resp = client.get(&url).bearer_auth(user_token("alice", "a1")).send().await.expect("request");
                match resp.status().as_u16() {
                    200 => opened.push(SseClient::new(resp)),
                    401 => break,
                    other => panic!("unexpected status {other}"),
                }
            }
            opened
        }));
    }
    // The revocation goes out while the racers hold streams and keep opening more.
    eventually("the racers to open streams", WAIT, async || count(&nodes[0], "subject=alice").await["streams"].as_u64() >= Some(2)).await;
    let (status, answer) = disconnect(&nodes[0], json!({ "subject": "alice" })).await;
    assert_eq!((status, answer["nodes"].as_u64()), (200, Some(3)), "{answer}");
    assert_eq!(count(&nodes[0], "subject=alice").await["streams"], 0, "no stream survived the revocation");
    stop.cancel();
    for racer in racers {
        for mut stream in racer.await.expect("racer") {
            revoked_event(&mut stream).await;
        }
    }
    for node in &nodes {
        assert_eq!(open(node, &["t"], &user_token("alice", "a1")).await.status(), 401);
    }
}

on_every_shape!(the_control_plane_counts_refreshes_and_revokes_across_nodes);

/// Count, refresh and revoke between two nodes, on a standalone Redis and on a Redis Cluster
/// (where the control stream, the revocations and the node set live on whichever shards own them).
async fn the_control_plane_counts_refreshes_and_revokes_across_nodes(shape: Shape) {
    let store = Store::start(shape).await;
    let prefix = unique_prefix();
    let a = spawn_node_at(store.url(), &prefix, |_| {}).await;
    let b = spawn_node_at(store.url(), &prefix, |_| {}).await;
    // A token shorter than the refresh window: the offer comes at once.
    let mut stream = follow(&b, &["t"], &user_token_until("alice", "a1", now() + 30, &["*"])).await;
    assert_eq!(count(&a, "subject=alice").await, json!({ "streams": 1, "nodes": 2, "nodes_expected": 2 }));
    let offer = loop {
        if let Some(shared::sse::Item::Event(e)) = stream.next_item().await {
            assert_eq!(e.event, "gateway.refresh");
            break serde_json::from_str::<Value>(&e.data).expect("json");
        }
    };
    let url = a.url(offer["url"].as_str().expect("url"));
    let resp = a.client.post(url).bearer_auth(user_token("alice", "a2")).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(count(&a, "jti=a2").await["streams"], 1, "the stream answers to the fresh token");
    let (status, answer) = disconnect(&a, json!({ "jti": "a2" })).await;
    assert_eq!((status, answer["disconnected"].as_u64(), answer["nodes"].as_u64()), (200, Some(1), Some(2)), "{answer}");
    revoked_event(&mut stream).await;
    assert_eq!(open(&b, &["t"], &user_token("alice", "a2")).await.status(), 401);
}

/// Through Sentinel: the control link follows the master Sentinel names, as the bus does.
#[tokio::test]
async fn a_revocation_reaches_every_node_through_sentinel() {
    let sentinel = TestSentinel::start().await;
    let prefix = unique_prefix();
    let a = spawn_node_at(&sentinel.url, &prefix, |_| {}).await;
    let b = spawn_node_at(&sentinel.url, &prefix, |_| {}).await;
    let mut on_b = follow(&b, &["t"], &user_token("alice", "a1")).await;
    let (status, answer) = disconnect(&a, json!({ "subject": "alice" })).await;
    assert_eq!((status, answer["disconnected"].as_u64(), answer["nodes"].as_u64()), (200, Some(1), Some(2)), "{answer}");
    revoked_event(&mut on_b).await;
    assert_eq!(open(&b, &["t"], &user_token("alice", "a2")).await.status(), 401);
}
