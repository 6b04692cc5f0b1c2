//! Redis going away and coming back under several nodes: stopped and restarted, stopped with a
//! publish in flight, or back with another history (a promoted replica's). No stream event
//! published after the fault is lost, and none is stored twice.

use std::time::Duration;

use fred::interfaces::StreamsInterface;
use shared::StreamId;

use support::app::*;
use support::redis::*;

async fn wait_for_status(node: &TestApp, path: &str, status: u16) {
    eventually(format!("{path} to answer {status}"), WAIT, async || {
        let got = node.client.get(node.url(path)).send().await.expect("request").status();
        if got == status { Ok(()) } else { Err(format!("{path} answered {got}")) }
    })
    .await;
}

/// Three nodes on a standalone Redis this harness can stop and restart; `None` (the test is
/// skipped, and says so) when the Redis is not its own process.
async fn restartable_nodes() -> Option<Nodes> {
    let deployment = three_nodes(Shape::Standalone).await;
    let Store::Standalone(redis) = &deployment.store else { unreachable!("a standalone Redis") };
    if !redis.can_restart() {
        eprintln!("skipped: this test stops and starts its own redis-server");
        return None;
    }
    Some(deployment)
}

#[tokio::test]
async fn redis_going_away_and_back_loses_no_later_stream_event() {
    let Some(mut deployment) = restartable_nodes().await else { return };
    let mut clients = deployment.clients(&["t"]).await;
    for i in 0..3 {
        deployment.nodes[i].publish("t", &format!("before{i}")).await;
    }
    for c in clients.iter_mut() {
        assert_eq!(data(&c.events(3).await), ["before0", "before1", "before2"]);
    }

    let Store::Standalone(redis) = &mut deployment.store else { unreachable!("a standalone Redis") };
    redis.stop().await;
    for node in &deployment.nodes {
        wait_for_status(node, "/readyz", 503).await;
        assert_eq!(node.client.get(node.url("/healthz")).send().await.expect("healthz").status(), 200, "alive while Redis is away");
    }
    let r = deployment.nodes[0].publish_raw(serde_json::json!({ "topic": "t", "data": "refused" })).await;
    assert_eq!(r.status(), 503, "publishing needs Redis");
    for c in clients.iter_mut() {
        c.expect_no_event(Duration::from_millis(100)).await;
        assert!(!c.ended, "client connections stay open while Redis is away");
    }

    // Back, with an event added before the nodes have reconnected: they must catch up on it.
    redis.restart().await;
    let redis = deployment.redis().await;
    let _: String = redis.xadd(deployment.stream_key("t"), false, None::<()>, "*", vec![("data", "during")]).await.expect("xadd");
    for node in &deployment.nodes {
        wait_for_status(node, "/readyz", 200).await;
    }
    for i in 0..3 {
        deployment.nodes[i].publish("t", &format!("after{i}")).await;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(data(&c.events(4).await), ["during", "after0", "after1", "after2"], "client {i}");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
}

/// A publish in flight when Redis stops may have been appended with its reply lost; the Redis
/// client sends it again after the reconnect. Its receipt must make the second run append
/// nothing (it was stored, and delivered, twice: a few events per restart). Publishers keep
/// publishing through three restarts (SIGTERM, as an operator stops Redis); every stored event
/// must be there once.
#[tokio::test]
async fn a_publish_in_flight_when_redis_stops_is_never_stored_twice() {
    let Some(mut deployment) = restartable_nodes().await else { return };
    let stop = tokio_util::sync::CancellationToken::new();
    let publishers: Vec<_> = (0..8)
        .map(|w| {
            let (client, url) = (deployment.nodes[w % 3].client.clone(), deployment.nodes[w % 3].url("/publish"));
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.is_cancelled() {
                    let r = client.post(&url).bearer_auth(token(&[], &["*"]));
                    let _ = r.json(&serde_json::json!({ "topic": "t", "data": format!("{w}-{n}") })).send().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let key = deployment.stream_key("t");
    let Store::Standalone(redis) = &mut deployment.store else { unreachable!("a standalone Redis") };
    let port = redis.port();
    for round in 1..=3 {
        // The publishers got through since the last restart; then Redis goes away for a moment.
        until_stream_holds(port, &key, 30 * round).await;
        redis.terminate().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.restart().await;
    }
    until_stream_holds(port, &key, 120).await;
    stop.cancel();
    let mut sent = 0;
    for p in publishers {
        sent += p.await.expect("publisher");
    }
    let entries: Vec<(String, std::collections::HashMap<String, String>)> =
        deployment.redis().await.xrange(deployment.stream_key("t"), "-", "+", None).await.expect("xrange");
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&str> = entries.iter().map(|(_, f)| f["data"].as_str()).filter(|d| !seen.insert(*d)).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?} (of {} entries, {sent} publishes)", entries.len());
    assert!(entries.len() > 100, "the publishers got through between the restarts ({} entries)", entries.len());
}

/// What a failover to a replica that missed the newest writes looks like to a node: the server
/// comes back holding the shared older history plus its own newer entries, with ids below the
/// ones the node already delivered. The node must rewind, deliver those entries (and nothing
/// twice), and its clients must accept them.
#[tokio::test]
async fn a_server_that_comes_back_with_another_history_is_followed_without_skipping() {
    let Some(mut deployment) = restartable_nodes().await else { return };
    let mut single = deployment.nodes[1].subscribe(&["t"], None).await;
    let mut multi = deployment.nodes[2].subscribe(&["t", "u"], None).await;
    let mut ids: Vec<StreamId> = Vec::new();
    for d in ["shared", "lost1", "lost2"] {
        ids.push(deployment.nodes[0].publish("t", d).await.parse().expect("stream id"));
    }
    for c in [&mut single, &mut multi] {
        assert_eq!(data(&c.events(3).await), ["shared", "lost1", "lost2"]);
    }

    // The "replica": the shared entry, then its own entry with an id between the shared one and
    // the ones it missed.
    let mut replica = TestRedis::start().await;
    let own = StreamId::new(ids[0].ms, ids[0].seq + 1);
    assert!(own < ids[1]);
    {
        let r = redis_client(&replica).await;
        let key = deployment.stream_key("t");
        let _: String = r.xadd(&key, false, None::<()>, ids[0].to_string(), vec![("data", "shared")]).await.expect("xadd");
        let _: String = r.xadd(&key, false, None::<()>, own.to_string(), vec![("data", "replica-own")]).await.expect("xadd");
    }
    replica.stop().await;
    let Store::Standalone(redis) = &mut deployment.store else { unreachable!("a standalone Redis") };
    redis.stop().await;
    redis.take_data_of(&replica);
    redis.restart().await;
    for c in [&mut single, &mut multi] {
        assert_eq!(c.next_event().await.data, "replica-own", "the new history's entry below the delivered ids");
    }
    for node in &deployment.nodes {
        wait_for_status(node, "/readyz", 200).await;
    }
    let after = deployment.nodes[0].publish("t", "after").await;
    for c in [&mut single, &mut multi] {
        assert_eq!(c.next_event().await.data, "after");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
    assert_eq!(single.last_event_id(), after, "the client's position is in the new history");

    // A client that saw the discarded events and resumes from one of them: its position was
    // never in this history, so it is told that events may be missing.
    let mut resumed = deployment.nodes[0].subscribe(&["t"], Some(&ids[2].to_string())).await;
    assert_eq!(resumed.next_event().await.event, "gateway.lost");
    assert_eq!(resumed.next_event().await.data, "after");
}
