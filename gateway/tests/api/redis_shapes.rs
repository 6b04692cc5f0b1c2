//! Nodes on the other Redis deployments: behind Sentinel (and through a failover), on a Cluster
//! whose slot moves to another master, and over TLS with a private CA.

use std::time::Duration;

use fred::interfaces::StreamsInterface;
use shared::sse::Item;

use support::app::*;
use support::redis::*;

/// On topic "t": `{label}{i}` over HTTP on node `i`, each followed by `raw{i}` from a plain `XADD`.
/// Returns the data in publish order.
async fn interleave_http_and_xadd(nodes: &[TestApp], redis: &fred::clients::Client, prefix: &str, label: &str) -> Vec<String> {
    let mut published = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        published.push(format!("{label}{i}"));
        node.publish("t", &published[published.len() - 1]).await;
        published.push(format!("raw{i}"));
        let fields = vec![("data", published[published.len() - 1].clone())];
        let _: String = redis.xadd(stream_key(prefix, "t"), false, None::<()>, "*", fields).await.expect("xadd");
    }
    published
}

/// Every client receives exactly `expected`, in order, and nothing more.
async fn expect_on_every_client(clients: &mut [SseClient], expected: &[String]) {
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(data(&c.events(expected.len()).await), expected, "client {i}");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
}

/// Three nodes on the Redis behind `sentinel`, each with a client following "t".
async fn sentinel_nodes(sentinel: &TestSentinel, prefix: &str) -> (Vec<TestApp>, Vec<SseClient>) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_at(&sentinel.url, prefix, |_| {}).await);
    }
    let mut clients = Vec::new();
    for node in &nodes {
        clients.push(node.subscribe(&["t"], None).await);
    }
    (nodes, clients)
}

#[tokio::test]
async fn nodes_work_through_sentinel() {
    let sentinel = TestSentinel::start().await;
    let prefix = unique_prefix();
    let (nodes, mut clients) = sentinel_nodes(&sentinel, &prefix).await;
    let redis = redis_client_at(&sentinel.url).await;
    let expected = interleave_http_and_xadd(&nodes, &redis, &prefix, "http").await;
    assert_eq!(expected, ["http0", "raw0", "http1", "raw1", "http2", "raw2"]);
    expect_on_every_client(&mut clients, &expected).await;
}

/// Across a Sentinel failover, under a steady stream of HTTP and raw `XADD` publishes: the new
/// master has default settings (no keyspace notifications) and none of the subscriptions, and
/// the demoted one keeps accepting writes until the nodes move (writes Redis then discards: that
/// loss is inherent to asynchronous replication). What the nodes must do: deliver every entry of
/// the new master's history to every client, once and in its order, although before moving they
/// may have delivered (and advanced past) entries the new master never had.
#[tokio::test]
async fn nodes_follow_a_sentinel_failover_without_losing_later_events() {
    let sentinel = TestSentinel::start().await;
    let prefix = unique_prefix();
    let (nodes, mut clients) = sentinel_nodes(&sentinel, &prefix).await;
    nodes[0].publish("t", "before").await;
    for c in clients.iter_mut() {
        assert_eq!(c.next_event().await.data, "before");
    }

    // Publishers on every node and a raw XADD publisher, every 20 ms, until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut publishers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let (client, url, stop) = (node.client.clone(), node.url("/publish"), stop.clone());
        publishers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let body = serde_json::json!({ "topic": "t", "data": format!("http{n}-{i}") });
                let _ = client.post(&url).bearer_auth(token(&[], &["*"])).json(&body).send().await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    {
        let (url, key, stop) = (sentinel.url.clone(), stream_key(&prefix, "t"), stop.clone());
        publishers.push(tokio::spawn(async move {
            let redis = redis_client_at(&url).await;
            let mut i = 0;
            while !stop.is_cancelled() {
                let _: Result<String, _> = redis.xadd(&key, false, None::<()>, "*", vec![("data", format!("raw-{i}"))]).await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let key = stream_key(&prefix, "t");
    until_stream_holds(sentinel.master_port().await.expect("a master"), &key, 10).await;
    sentinel.fail_over().await;
    // The publishers go on through the failover, on the new master.
    until_stream_holds(sentinel.master_port().await.expect("a master"), &key, 60).await;
    stop.cancel();
    for p in publishers {
        p.await.expect("publisher");
    }

    let master = sentinel.master_port().await.expect("a master");
    let history: Vec<String> = redis_cli(master, &["XRANGE", &stream_key(&prefix, "t"), "-", "+"])
        .await
        .into_iter()
        .filter(|l| l.starts_with("http") || l.starts_with("raw-"))
        .collect();
    assert!(history.len() > 50, "the publishers kept publishing through the failover: {}", history.len());
    for (i, c) in clients.iter_mut().enumerate() {
        // Every entry of the new master's history, whatever comes before it; then whatever else
        // is on its way.
        let mut got: Vec<String> = Vec::new();
        while let Some(missing) = history.iter().find(|h| !got.contains(h)) {
            match c.next_item_within(WAIT).await {
                Ok(Some(Item::Event(e))) => got.push(e.data),
                Ok(Some(_)) => {}
                Ok(None) => panic!("client {i}: the stream ended before {missing} of the new master's history came"),
                Err(()) => panic!("client {i}: waited {WAIT:?} for {missing} of the new master's history; nothing came"),
            }
        }
        got.extend(c.events_until_quiet(Duration::from_millis(300)).await.into_iter().map(|e| e.data));
        let mut seen = std::collections::HashSet::new();
        assert!(got.iter().all(|d| seen.insert(d.clone())), "client {i} received an event twice");
        let held: Vec<&String> = got.iter().filter(|d| history.contains(d)).collect();
        assert_eq!(
            held,
            history.iter().collect::<Vec<_>>(),
            "client {i} missed entries of the new master's history, or got them out of order"
        );
        eprintln!("client {i}: {} events, {} of them discarded by the failover", got.len(), got.len() - held.len());
    }

    // Settled: what comes now arrives only by notifications from the new master, which the
    // nodes had to turn on there themselves.
    let redis = redis_client_at(&sentinel.url).await;
    let expected = interleave_http_and_xadd(&nodes, &redis, &prefix, "late").await;
    expect_on_every_client(&mut clients, &expected).await;
    let held = redis_cli(master, &["XRANGE", &stream_key(&prefix, "t"), "-", "+"]).await;
    for e in &expected {
        assert!(held.contains(e), "{e} is not on the new master: {held:?}");
    }
}

/// A resharding moves a followed topic's slot to another master while clients listen: the nodes
/// must notice (no command of theirs runs into the move), subscribe on the new owner and deliver
/// everything published there, by HTTP and by raw `XADD`, once and in order.
#[tokio::test]
async fn a_topic_whose_slot_moves_to_another_master_keeps_streaming() {
    let deployment = three_nodes(Shape::Cluster).await;
    let Store::Cluster(cluster) = &deployment.store else { unreachable!("a cluster") };
    let mut clients = deployment.clients(&["t"]).await;
    let redis = deployment.redis().await;
    let before = interleave_http_and_xadd(&deployment.nodes, &redis, &deployment.prefix, "before").await;
    expect_on_every_client(&mut clients, &before).await;

    let key = deployment.stream_key("t");
    let from = cluster.owner_of(&key).await;
    let to = *cluster.ports.iter().find(|p| **p != from).expect("another master");
    cluster.move_slot_of(&key, to).await;
    assert_eq!(cluster.owner_of(&key).await, to);
    // The history moved with the slot; the nodes learn of the move by their topology check.
    let after = interleave_http_and_xadd(&deployment.nodes, &redis, &deployment.prefix, "after").await;
    expect_on_every_client(&mut clients, &after).await;
    let held = redis_cli(to, &["XRANGE", &key, "-", "+"]).await;
    assert!(before.iter().chain(&after).all(|e| held.contains(e)), "the new owner holds the whole history: {held:?}");
}

/// `rediss://`: nodes reach a TLS-only Redis whose certificate comes from a private CA given by
/// `GATEWAY_REDIS_CA_FILE`, and every path works over it; a node trusting another CA refuses to
/// start.
#[tokio::test]
async fn nodes_reach_redis_over_tls_with_a_private_ca() {
    let redis = TestTlsRedis::start().await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let ca = redis.ca_file.clone();
        nodes.push(spawn_node_at(&redis.url, &prefix, move |c| c.redis_ca_file = Some(ca)).await);
    }
    let mut client = nodes[1].subscribe(&["t"], None).await;
    let mut resumed_from = String::new();
    for i in 0..3 {
        resumed_from = nodes[0].publish("t", &format!("over tls {i}")).await;
    }
    assert_eq!(data(&client.events(3).await), ["over tls 0", "over tls 1", "over tls 2"]);
    let mut resumed = nodes[1].subscribe(&["t"], Some(&resumed_from)).await;
    nodes[0].publish("t", "after").await;
    assert_eq!(resumed.next_event().await.data, "after", "resumption reads history over TLS");

    let mut config = gateway::Config::for_tests(SECRET);
    config.redis_url = Some(gateway::config::RedisUrl::parse(&redis.url).expect("url"));
    config.redis_ca_file = Some(redis.other_ca_file.clone());
    assert!(gateway::App::build(config).await.is_err(), "a certificate from another CA is refused");
}
