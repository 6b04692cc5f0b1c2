//! The compose stack's topology, from processes (`processes.rs`): one Redis, three gateway
//! processes and nginx in front with the compose stack's own SSE settings.
//!
//! nginx must be installed (Debian/Ubuntu: `apt-get install nginx`); CI installs it.

use std::path::Path;
use std::time::Duration;

use shared::sse::ParsedEvent;
use tokio::process::Command;

use support::app::*;
use support::processes::*;
use support::redis::free_port;
use support::topology::*;
use support::wait::Lazily;

/// (data, id) of each event.
fn data_and_ids(events: &[ParsedEvent]) -> Vec<(String, String)> {
    events.iter().map(|e| (e.data.clone(), e.last_event_id.clone())).collect()
}

#[tokio::test]
async fn through_the_balancer_every_event_arrives_once_in_order_and_a_client_resumes_after_its_node_is_killed() {
    let mut t = Topology::start().await;
    let topic = "orders";
    let mut stream = t.subscribe(topic, None).await;

    // Published on each node in turn. Each event must reach the client before the next one is
    // published: nothing between them (buffering, compression) may hold an event back.
    let mut delivered = Vec::new();
    for i in 0..9 {
        let data = format!("before-{i}");
        let id = t.publish_on(i % 3, topic, &data).await;
        let event = stream.next_event().await;
        assert_eq!((event.data.as_str(), event.last_event_id.as_str()), (data.as_str(), id.as_str()), "{}", t.logs());
        delivered.push(id);
    }
    // A burst, published on all three nodes at once: the client gets each event once, in the
    // order of the topic's stream (the ids), however the publishes interleaved.
    let t_ref = &t;
    let burst = futures::future::join_all((0..30).map(|i| async move {
        let data = format!("burst-{i}");
        (t_ref.publish_on(i % 3, topic, &data).await, data)
    }))
    .await;
    let mut expected: Vec<(String, String)> = burst.into_iter().map(|(id, data)| (data, id)).collect();
    expected.sort_by_key(|(_, id)| id.parse::<shared::StreamId>().expect("a stream id"));
    let got = data_and_ids(&stream.events(expected.len()).await);
    assert_eq!(got, expected, "every event once, in stream order\n{}", t.logs());
    delivered.push(expected.last().expect("a burst").1.clone());
    stream.expect_no_event(Duration::from_millis(300)).await;

    // Kill the node holding the stream. The client is cut off; meanwhile events are published
    // on the nodes left.
    let holder = t.stream_holder().await;
    t.nodes[holder].kill().await;
    let alive: Vec<usize> = (0..3).filter(|i| *i != holder).collect();
    let mut missed = Vec::new();
    for i in 0..6 {
        let data = format!("during-{i}");
        let id = t.publish_on(alive[i % 2], topic, &data).await;
        missed.push((data, id));
    }
    let after_kill = stream.until_end().await;
    assert!(!after_kill.iter().any(|item| matches!(item, shared::sse::Item::Event(_))), "a dead node delivers nothing: {after_kill:?}");
    let last = stream.last_event_id().to_owned();
    assert_eq!(&last, delivered.last().expect("events"), "the client's position is the last event it got");

    // It reconnects through the balancer with its Last-Event-ID, as EventSource does, and gets
    // exactly what it missed. Several times: each attempt may be sent to the dead node first,
    // which the balancer must skip.
    let mut resumed = None;
    for _ in 0..3 {
        let mut s = t.subscribe(topic, Some(&last)).await;
        let got = s.events(missed.len()).await;
        assert_eq!(data_and_ids(&got), missed, "every missed event once, in order\n{}", t.logs());
        s.expect_no_event(Duration::from_millis(300)).await;
        resumed = Some(s);
    }
    let mut resumed = resumed.expect("a resumed stream");

    // Live again, from the nodes left and through the balancer.
    for i in 0..4 {
        let data = format!("after-{i}");
        let id = match i {
            3 => t.publish_at(&t.url("/publish"), topic, &data).await,
            _ => t.publish_on(alive[i % 2], topic, &data).await,
        };
        let event = resumed.next_event().await;
        assert_eq!((event.data, event.last_event_id), (data, id));
    }
    resumed.expect_no_event(Duration::from_millis(300)).await;
}

/// What `docker compose up` promises: the URL a replica prints opens the demo page through the
/// balancer, and its tokens work on every replica, since they share `GATEWAY_JWT_SECRET`.
#[tokio::test]
async fn the_printed_demo_url_works_through_the_balancer_whichever_node_serves_it() {
    let t = Topology::start().await;
    let banner_line = |log: &Path| read_log(log).lines().find(|l| l.contains("Demo page:")).map(str::to_owned);
    let line = eventually(Lazily(|| format!("the demo banner:\n{}", t.logs())), WAIT, async || banner_line(&t.nodes[0].log)).await;
    let url = line.split_whitespace().last().expect("the demo URL").to_owned();
    assert!(url.starts_with(&t.url("/#topic=")), "the banner names the balancer's URL (GATEWAY_PUBLIC_URL): {url}");
    let page = t.client.get(&url).send().await.expect("demo page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("new EventSource("));

    let (sent, fragment) = url.split_once('#').expect("the tokens after #");
    let fragment: std::collections::HashMap<String, String> = form_urlencoded::parse(fragment.as_bytes()).into_owned().collect();
    let (subscribe, publish) = (&fragment["access_token"], &fragment["publish_token"]);
    assert!(!sent.contains(subscribe.as_str()) && !sent.contains(publish.as_str()), "no token in what a browser sends: {sent}");
    for node in &t.nodes {
        let r = t.client.get(node.url(&format!("/events?topic=clock&access_token={subscribe}"))).send().await.expect("stream");
        assert_eq!(r.status(), 200, "node {} refuses node 1's demo token", node.addr);
    }
    // As the page does it: a ticket through the balancer, the stream through the balancer with
    // it, a publish through the balancer.
    let r = t.client.post(t.url("/tickets")).bearer_auth(subscribe).json(&serde_json::json!({ "topics": ["clock"] })).send();
    let r = r.await.expect("POST /tickets");
    assert_eq!(r.status(), 200);
    let ticket = r.json::<serde_json::Value>().await.expect("json")["ticket"].as_str().expect("a ticket").to_owned();
    let resp = t.client.get(t.url(&format!("/events?topic=clock&ticket={ticket}"))).send().await.expect("stream");
    assert_eq!(resp.status(), 200);
    let mut stream = SseClient::new(resp);
    let body = serde_json::json!({ "topic": "clock", "data": "hello" });
    let r = t.client.post(t.url("/publish")).bearer_auth(publish).json(&body).send().await.expect("publish");
    assert_eq!(r.status(), 200);
    assert_eq!(stream.next_event().await.data, "hello");
}

/// The compose stack's own nginx config (deploy/nginx/gateway.conf) passes `nginx -t`, with the
/// compose service names and the container's include path swapped for loopback and this checkout.
#[tokio::test]
async fn the_compose_nginx_config_passes_nginx_t() {
    let dir = Scratch::new("compose-nginx");
    let mut conf = std::fs::read_to_string(COMPOSE_NGINX_CONF).expect("deploy/nginx/gateway.conf");
    for (from, to) in [
        ("gateway-1:8080", "127.0.0.1:18081".to_owned()),
        ("gateway-2:8080", "127.0.0.1:18082".to_owned()),
        ("gateway-3:8080", "127.0.0.1:18083".to_owned()),
        ("/etc/nginx/snippets/sse-proxy.conf", SSE_PROXY_CONF.to_owned()),
        ("listen 8080;", format!("listen 127.0.0.1:{};", free_port())),
    ] {
        assert!(conf.contains(from), "deploy/nginx/gateway.conf no longer has {from:?}: update this test and docker-compose.yml");
        conf = conf.replace(from, &to);
    }
    let conf_path = dir.0.join("nginx.conf");
    std::fs::write(&conf_path, nginx_conf(&dir.0, &conf)).expect("nginx.conf");
    let test = Command::new(nginx_binary())
        .arg("-t")
        .arg("-e")
        .arg(dir.0.join("error.log"))
        .arg("-p")
        .arg(&dir.0)
        .arg("-c")
        .arg(&conf_path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, test).await.expect("nginx -t in time").expect("nginx runs");
    assert!(out.status.success(), "nginx -t: {}", String::from_utf8_lossy(&out.stderr));
}
