//! Personal topics: a grant holding `{sub}` stands for the token's own subject, so one claim
//! (`user.{sub}.*`) gives every user their own topics, to follow and to publish, on one node and
//! across nodes sharing Redis. A subject that is not one topic segment is refused.

use serde_json::json;
use shared::Claims;

use support::app::*;
use support::redis::*;

/// A token of `sub` that may follow and publish `user.{sub}.*`.
fn personal_token(sub: &str) -> String {
    let grant = patterns(&["user.{sub}.*"]);
    let claims = Claims { sub: Some(sub.to_owned()), subscribe: grant.clone(), publish: grant, ..claims(&[], &[]) };
    gateway::mint(SECRET.as_bytes(), &claims).expect("mint")
}

async fn follow(app: &TestApp, topic: &str, bearer: &str) -> reqwest::Response {
    app.client.get(app.events_url(&[topic])).bearer_auth(bearer).send().await.expect("request")
}

async fn publish(app: &TestApp, topic: &str, data: &str, bearer: &str) -> reqwest::Response {
    app.client.post(app.url("/publish")).bearer_auth(bearer).json(&json!({ "topic": topic, "data": data })).send().await.expect("request")
}

#[tokio::test]
async fn a_personal_grant_gives_each_subject_its_own_topics() {
    let app = spawn_app().await;
    let (alice, bob) = (personal_token("alice"), personal_token("bob"));
    let resp = follow(&app, "user.alice.inbox", &alice).await;
    assert_eq!(resp.status(), 200);
    let mut inbox = SseClient::new(resp);
    assert_eq!(follow(&app, "user.bob.inbox", &alice).await.status(), 403, "not another subject's topic");
    assert_eq!(follow(&app, "user.alicex.inbox", &alice).await.status(), 403, "nor one that merely starts like it");
    assert_eq!(publish(&app, "user.alice.inbox", "to alice, by bob", &bob).await.status(), 403);
    assert_eq!(publish(&app, "user.alice.inbox", "to alice, by alice", &alice).await.status(), 200);
    assert_eq!(inbox.next_event().await.data, "to alice, by alice");
}

#[tokio::test]
async fn a_subject_that_is_not_one_segment_is_refused() {
    let app = spawn_app().await;
    for sub in ["alice.inbox", "a:b", "a/b"] {
        let resp = follow(&app, &format!("user.{sub}.x"), &personal_token(sub)).await;
        assert_eq!(resp.status(), 401, "sub {sub:?}");
        let challenge = resp.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
        assert!(challenge.contains(r#"error_description="subject""#), "sub {sub:?}: {challenge}");
    }
    // Without a personal grant, the subject may be anything.
    let plain = gateway::mint(SECRET.as_bytes(), &Claims { sub: Some("a.b".into()), ..claims(&["news"], &[]) }).expect("mint");
    assert_eq!(follow(&app, "news", &plain).await.status(), 200);
}

/// Across nodes sharing Redis: what alice publishes on one node reaches her stream on another,
/// and bob's token is refused her topic on a third.
#[tokio::test]
async fn personal_topics_work_across_nodes() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_at(&redis.url, &prefix, |_| {}).await);
    }
    let (alice, bob) = (personal_token("alice"), personal_token("bob"));
    let resp = follow(&nodes[1], "user.alice.inbox", &alice).await;
    assert_eq!(resp.status(), 200);
    let mut inbox = SseClient::new(resp);
    assert_eq!(follow(&nodes[2], "user.alice.inbox", &bob).await.status(), 403);
    assert_eq!(publish(&nodes[0], "user.alice.inbox", "hello", &alice).await.status(), 200);
    assert_eq!(inbox.next_event().await.data, "hello");
}
