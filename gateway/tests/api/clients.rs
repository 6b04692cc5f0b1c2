//! Other real clients, each with its own parser and reconnection logic: the `eventsource` npm
//! package in Node (`e2e/eventsource.mjs`) and the `reqwest-eventsource` crate. Both follow one
//! topic through the balanced topology (nginx, three gateway processes, Redis), live through a
//! server-side close (the node drains on SIGTERM: a last `retry:`, then the end of the stream) and
//! a crash (SIGKILL), resume with `Last-Event-ID`, and end with the same complete sequence.
//!
//! Needs Node.js 20+, `npm ci --prefix e2e`, and nginx.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest_eventsource::{Event, EventSource, retry::Constant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use support::app::*;
use support::e2e::*;
use support::processes::*;
use support::topology::*;
use support::wait::Lazily;

/// Longest a client may take to show what it is waiting for: the `eventsource` package waits
/// for the gateway's `retry:` (3 s plus up to 2 s of jitter by default) before reconnecting.
const CLIENT_WAIT: Duration = Duration::from_secs(20);
/// reqwest-eventsource's reconnection delay. It cannot take the gateway's `retry:` hint: its
/// parser (eventsource-stream) drops a frame without data, and the gateway sends `retry:` alone.
/// Under the gateway's 3 s, so that this client comes back first.
const RUST_RETRY: Duration = Duration::from_secs(1);
/// nginx (`max_fails=1 fail_timeout=10s`) skips a node for 10 s after one failed connect, which
/// a reconnecting client may have made while the node was down; when every node is skipped it
/// answers 502, which ends an EventSource for good. The test waits that out after a restart.
const NGINX_FAIL_TIMEOUT: Duration = Duration::from_secs(11);

/// What one client received, as it arrived.
#[derive(Debug, Default)]
struct Received {
    /// (id, data) of each event.
    events: Vec<(String, String)>,
    arrived: Vec<Instant>,
    /// Connections opened, connections lost.
    opens: usize,
    drops: usize,
    /// Anything else (named events, a permanent close): a failure message shows it.
    other: Vec<String>,
}

/// A client following the topic in a task of its own.
struct Follower {
    name: &'static str,
    received: Arc<Mutex<Received>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Follower {
    /// The `eventsource` npm package, in Node.
    fn eventsource_package(url: &str, bearer: &str, log_dir: &Path) -> Self {
        require_package("eventsource");
        let mut script = Script::spawn("eventsource.mjs", &[("EVENTS_URL", url), ("TOKEN", bearer)], log_dir);
        let received = Arc::new(Mutex::new(Received::default()));
        let (stop, mut stopped) = oneshot::channel();
        let rec = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let line = tokio::select! {
                    _ = &mut stopped => break,
                    line = script.read() => line,
                };
                let Some(v) = line else {
                    rec.lock().expect("lock").other.push(format!("the script exited; stderr:\n{}", script.stderr()));
                    return;
                };
                let mut r = rec.lock().expect("lock");
                match v["kind"].as_str() {
                    Some("open") => r.opens += 1,
                    Some("error") => r.drops += 1,
                    Some("event") if v["event"] == "message" => {
                        r.events.push((v["id"].as_str().unwrap_or_default().to_owned(), v["data"].as_str().unwrap_or_default().to_owned()));
                        r.arrived.push(Instant::now());
                    }
                    _ => r.other.push(v.to_string()),
                }
            }
            script.close().await;
        });
        Self { name: "eventsource (npm)", received, stop: Some(stop), task }
    }

    /// The `reqwest-eventsource` crate.
    fn reqwest_eventsource(url: &str, bearer: &str) -> Self {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let mut es = EventSource::new(client.get(url).bearer_auth(bearer)).expect("a cloneable request");
        es.set_retry_policy(Box::new(Constant::new(RUST_RETRY, None)));
        let received = Arc::new(Mutex::new(Received::default()));
        let (stop, mut stopped) = oneshot::channel();
        let rec = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    _ = &mut stopped => break,
                    item = es.next() => item,
                };
                let mut r = rec.lock().expect("lock");
                match item {
                    None => {
                        r.other.push("the EventSource closed for good".into());
                        return;
                    }
                    Some(Ok(Event::Open)) => r.opens += 1,
                    Some(Ok(Event::Message(m))) if m.event == "message" => {
                        r.events.push((m.id, m.data));
                        r.arrived.push(Instant::now());
                    }
                    Some(Ok(Event::Message(m))) => r.other.push(format!("{m:?}")),
                    Some(Err(e)) => {
                        r.drops += 1;
                        if !matches!(e, reqwest_eventsource::Error::StreamEnded | reqwest_eventsource::Error::Transport(_)) {
                            r.other.push(e.to_string());
                        }
                    }
                }
            }
            es.close();
        });
        Self { name: "reqwest-eventsource", received, stop: Some(stop), task }
    }

    fn events(&self) -> Vec<(String, String)> {
        self.received.lock().expect("lock").events.clone()
    }

    /// Waits until the client has `n` events.
    async fn wait_for(&self, n: usize, t: &Topology) {
        let what = Lazily(|| format!("{} to have {n} events: {:#?}\n{}", self.name, self.received.lock().expect("lock"), t.logs()));
        eventually(what, CLIENT_WAIT, async || {
            let has = self.events().len();
            if has >= n { Ok(()) } else { Err(format!("{has} of {n}")) }
        })
        .await;
    }

    /// How long after `since` the first event arrived.
    fn first_event_after(&self, since: Instant) -> Duration {
        let r = self.received.lock().expect("lock");
        let first = r.arrived.iter().find(|at| **at > since).expect("an event after the disruption");
        *first - since
    }

    /// Stops following; returns what was received.
    async fn finish(mut self) -> Received {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(START, &mut self.task).await.expect("the client stops in time").expect("the client task");
        std::mem::take(&mut *self.received.lock().expect("lock"))
    }
}

/// The running nodes holding at least one stream.
async fn holders(t: &Topology) -> Vec<usize> {
    t.streams_per_node().await.iter().enumerate().filter(|(_, n)| **n > 0.0).map(|(i, _)| i).collect()
}

/// Waits until `n` streams are open across the nodes.
async fn wait_streams(t: &Topology, n: f64) {
    eventually(Lazily(|| format!("{n} streams open\n{}", t.logs())), CLIENT_WAIT, async || {
        let open = t.streams_per_node().await;
        if open.iter().sum::<f64>() == n { Ok(()) } else { Err(format!("streams per node: {open:?}")) }
    })
    .await;
}

/// Publishes `n` events named `{label}-{i}` on the running nodes in turn; asserts that no stream
/// was open meanwhile, so that they can reach the clients only by resumption.
async fn publish_while_disconnected(t: &Topology, label: &str, n: usize, topic: &str) -> Vec<(String, String)> {
    let running: Vec<usize> = (0..t.nodes.len()).filter(|i| t.nodes[*i].child.is_some()).collect();
    let mut published = Vec::new();
    for i in 0..n {
        let data = format!("{label}-{i}");
        published.push((t.publish_on(running[i % running.len()], topic, &data).await, data));
    }
    let open = t.streams_per_node().await;
    assert!(open.iter().all(|n| *n == 0.0), "a client reconnected before the {label} events were all published: {open:?}");
    published
}

#[tokio::test]
async fn the_eventsource_package_and_reqwest_eventsource_resume_after_a_drain_and_a_kill_with_identical_complete_sequences() {
    require_package("eventsource");
    let mut t = Topology::start().await;
    let topic = "ledger";
    let url = t.url(&format!("/events?topic={topic}"));
    let bearer = token(&[topic], &[]);
    let clients = [Follower::eventsource_package(&url, &bearer, &t.dir.0), Follower::reqwest_eventsource(&url, &bearer)];
    wait_streams(&t, 2.0).await;

    // Live, published on each node in turn.
    let mut published = Vec::new();
    for i in 0..5 {
        let data = format!("live-{i}");
        published.push((t.publish_on(i % 3, topic, &data).await, data));
    }
    for c in &clients {
        c.wait_for(published.len(), &t).await;
    }

    // A server-side close: every node holding a stream drains (SIGTERM), which ends the stream
    // after a last `retry:`. Events are published meanwhile; the nodes come back on their ports.
    let drained = holders(&t).await;
    let closed_at = Instant::now();
    for &node in &drained {
        t.nodes[node].terminate().await;
    }
    published.extend(publish_while_disconnected(&t, "drained", 4, topic).await);
    for &node in &drained {
        t.restart(node).await;
    }
    let restarted_at = Instant::now();
    for c in &clients {
        c.wait_for(published.len(), &t).await;
        println!("{}: first event {:?} after the drain (SIGTERM) began", c.name, c.first_event_after(closed_at));
    }

    tokio::time::sleep_until((restarted_at + NGINX_FAIL_TIMEOUT).into()).await;
    for i in 0..2 {
        let data = format!("between-{i}");
        published.push((t.publish_on(i, topic, &data).await, data));
    }
    for c in &clients {
        c.wait_for(published.len(), &t).await;
    }

    // A crash: every node holding a stream is killed (SIGKILL).
    let killed = holders(&t).await;
    let killed_at = Instant::now();
    for &node in &killed {
        t.nodes[node].kill().await;
    }
    published.extend(publish_while_disconnected(&t, "killed", 4, topic).await);
    for c in &clients {
        c.wait_for(published.len(), &t).await;
        println!("{}: first event {:?} after the kill", c.name, c.first_event_after(killed_at));
    }

    // Live again, through the balancer too.
    for i in 0..3 {
        let data = format!("after-{i}");
        let id = t.publish_at(&t.url("/publish"), topic, &data).await;
        published.push((id, data));
    }
    for c in &clients {
        c.wait_for(published.len(), &t).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let [node_client, rust_client] = clients;
    let (node_name, rust_name) = (node_client.name, rust_client.name);
    let (from_node, from_rust) = (node_client.finish().await, rust_client.finish().await);
    for (name, r) in [(node_name, &from_node), (rust_name, &from_rust)] {
        assert_eq!(r.events, published, "{name}: every published event once, in order, with its id\n{r:#?}");
        assert!(r.other.is_empty(), "{name}: nothing else: {:?}", r.other);
        assert!(r.opens >= 3 && r.drops >= 2, "{name} saw its stream end twice and reopen: {r:?}");
        println!("{name}: {} events published, {} received, {} connections", published.len(), r.events.len(), r.opens);
    }
    assert_eq!(from_node.events, from_rust.events, "both clients received the same sequence");
    println!("drained nodes {drained:?}, killed nodes {killed:?}");
}
