//! The compose stack's topology, from processes: one Redis, three gateway processes (the real
//! binary, configured by environment variables as `docker-compose.yml` configures its replicas,
//! sharing one JWT secret) and nginx in front, with the compose stack's own SSE settings: the
//! generated nginx config includes `deploy/nginx/sse-proxy.conf` itself. Everything listens on
//! loopback; every wait is bounded.
//!
//! nginx must be installed (Debian/Ubuntu: `apt-get install nginx`); CI installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use shared::sse::ParsedEvent;
use tokio::process::{Child, Command};

use super::helpers::*;
use super::redis_support::*;

/// The SSE proxy settings the compose stack's nginx includes.
const SSE_PROXY_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx/sse-proxy.conf");
/// The compose stack's nginx server and upstream.
const COMPOSE_NGINX_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx/gateway.conf");
/// Startup of a process (a node connecting to Redis, nginx) may take longer than one request.
const START: Duration = Duration::from_secs(30);

/// A scratch directory for configs and logs, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gateway-{what}-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A gateway process. Killed (SIGKILL) when dropped.
struct Node {
    addr: SocketAddr,
    /// `GATEWAY_METRICS_ADDR`, as in the compose stack: metrics are not on the client-facing port.
    admin: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    async fn start(redis: &TestRedis, prefix: &str, public_url: &str, dir: &Path, index: usize) -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = dir.join(format!("gateway-{index}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env_clear()
            // The compose file's settings (docker-compose.yml, x-gateway), with loopback addresses.
            .env("GATEWAY_LISTEN_ADDR", addr.to_string())
            .env("GATEWAY_METRICS_ADDR", admin.to_string())
            .env("GATEWAY_REDIS_URL", &redis.url)
            .env("GATEWAY_JWT_SECRET", SECRET)
            .env("GATEWAY_DEMO", "true")
            .env("GATEWAY_PUBLIC_URL", public_url)
            // The test's own: keys of its own, no clock ticks, and no reconcile safety net, so
            // that delivery comes from the notification and reconnect paths.
            .env("GATEWAY_REDIS_PREFIX", prefix)
            .env("GATEWAY_CLOCK_INTERVAL", "0s")
            .env("GATEWAY_REDIS_RECONCILE", "1h")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("the gateway binary starts");
        Self { addr, admin, child: Some(child), log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("wait")) {
                panic!("gateway {} exited ({status}):\n{}", self.addr, read_log(&self.log));
            }
            assert!(tokio::time::Instant::now() < deadline, "gateway {} not ready in {START:?}:\n{}", self.addr, read_log(&self.log));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Event streams open on this node now, from its metrics.
    async fn streams_open(&self, client: &reqwest::Client) -> f64 {
        let text = client.get(format!("http://{}/metrics", self.admin)).send().await.expect("metrics").text().await.expect("metrics body");
        Metrics(text).value("sse_gateway_connections_open")
    }

    /// SIGKILL: the node vanishes as in a crash, without closing its streams cleanly.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("a running node");
        tokio::time::timeout(WAIT, child.kill()).await.expect("killed in time").expect("kill");
    }
}

/// Where nginx is: on PATH, or where Debian puts it (`/usr/sbin`, not on every user's PATH).
fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the balanced-topology tests need nginx, the compose stack's load balancer: it is not on PATH nor at \
                 /usr/sbin/nginx. Install it (Debian/Ubuntu: apt-get install nginx)"
            )
        })
}

/// An nginx config with `http` inside its `http {}` block, that runs unprivileged in `dir`: in
/// the foreground, as one process (a master's workers would outlive a killed master), with every
/// path of its own.
fn nginx_conf(dir: &Path, http: &str) -> String {
    let dir = dir.display();
    format!(
        r#"# Generated by gateway/tests/api/topology.rs.
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http}
}}
"#
    )
}

/// nginx as the compose stack runs it, on loopback: the same upstream settings as
/// `deploy/nginx/gateway.conf`, and `deploy/nginx/sse-proxy.conf` included as it is.
struct Balancer {
    addr: SocketAddr,
    _child: Child,
}

impl Balancer {
    async fn start(addr: SocketAddr, nodes: &[SocketAddr], dir: &Path, client: &reqwest::Client) -> Self {
        let servers: String = nodes.iter().map(|a| format!("    server {a} max_fails=1 fail_timeout=10s;\n")).collect();
        let http = format!(
            "upstream gateways {{\n    least_conn;\n{servers}    keepalive 16;\n}}\n\
             server {{\n    listen {addr};\n    include {SSE_PROXY_CONF};\n}}"
        );
        let conf = nginx_conf(dir, &http);
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let mut child = Command::new(nginx_binary())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx starts");
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
                && r.status() == 200
            {
                return Self { addr, _child: child };
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("nginx exited ({status}):\n{}", read_log(&dir.join("error.log")));
            }
            assert!(tokio::time::Instant::now() < deadline, "nginx not serving in {START:?}:\n{}", read_log(&dir.join("error.log")));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Redis, three nodes and nginx, as `docker compose up` starts them.
struct Topology {
    client: reqwest::Client,
    nodes: Vec<Node>,
    balancer: Balancer,
    _redis: TestRedis,
    // Last: the processes writing into it go first.
    dir: Scratch,
}

impl Topology {
    async fn start() -> Self {
        let dir = Scratch::new("topology");
        let redis = TestRedis::start().await;
        let prefix = unique_prefix();
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("client");
        let balancer_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let public_url = format!("http://{balancer_addr}");
        let mut nodes = Vec::new();
        for i in 1..=3 {
            nodes.push(Node::start(&redis, &prefix, &public_url, &dir.0, i).await);
        }
        for node in &mut nodes {
            node.wait_ready(&client).await;
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let balancer = Balancer::start(balancer_addr, &addrs, &dir.0, &client).await;
        Self { client, nodes, balancer, _redis: redis, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.balancer.addr)
    }

    /// Follows `topic` through the balancer, resuming after `last_event_id` if given.
    async fn subscribe(&self, topic: &str, last_event_id: Option<&str>) -> SseClient {
        // As a browser's EventSource asks: any compression would be accepted.
        let mut req = self
            .client
            .get(self.url(&format!("/events?topic={topic}")))
            .bearer_auth(token(&["*"], &[]))
            .header(reqwest::header::ACCEPT_ENCODING, "gzip, deflate, br");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(WAIT, req.send()).await.expect("connect in time").expect("connect");
        assert_eq!(resp.status(), 200, "subscribe through the balancer: {:?}", resp.text().await);
        let content_type = resp.headers()[reqwest::header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
        assert_eq!(content_type, "text/event-stream");
        assert!(resp.headers().get(reqwest::header::CONTENT_ENCODING).is_none(), "the stream must not be compressed");
        SseClient::new(resp)
    }

    /// Publishes on node `node` directly (`POST /publish`); returns the event's id.
    async fn publish_on(&self, node: usize, topic: &str, data: &str) -> String {
        self.publish_at(&self.nodes[node].url("/publish"), topic, data).await
    }

    async fn publish_at(&self, url: &str, topic: &str, data: &str) -> String {
        let body = serde_json::json!({ "topic": topic, "data": data });
        let send = self.client.post(url).bearer_auth(token(&[], &["*"])).json(&body).send();
        let r = tokio::time::timeout(WAIT, send).await.expect("publish in time").expect("publish");
        assert_eq!(r.status(), 200, "publish at {url}: {:?}", r.text().await);
        let v: serde_json::Value = r.json().await.expect("json");
        v["id"].as_str().expect("an id").to_owned()
    }

    /// The node holding the one open stream, from the nodes' metrics.
    async fn stream_holder(&self) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut open = Vec::new();
            for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.child.is_some()) {
                open.push((i, node.streams_open(&self.client).await));
            }
            let holders: Vec<(usize, f64)> = open.iter().copied().filter(|(_, n)| *n > 0.0).collect();
            if let [(holder, streams)] = holders[..]
                && streams == 1.0
            {
                return holder;
            }
            assert!(tokio::time::Instant::now() < deadline, "expected one node holding one stream, found {open:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log of every node, for failure messages.
    fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- {}\n{}", n.addr, read_log(&n.log))).collect::<Vec<_>>().join("\n")
            + &format!("\n--- nginx\n{}", read_log(&self.dir.0.join("error.log")))
    }
}

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
    let deadline = tokio::time::Instant::now() + WAIT;
    let line = loop {
        if let Some(line) = banner_line(&t.nodes[0].log) {
            break line;
        }
        assert!(tokio::time::Instant::now() < deadline, "no demo banner:\n{}", t.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let url = line.split_whitespace().last().expect("the demo URL").to_owned();
    assert!(url.starts_with(&t.url("/?topic=")), "the banner names the balancer's URL (GATEWAY_PUBLIC_URL): {url}");
    let page = t.client.get(&url).send().await.expect("demo page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("new EventSource("));

    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(url.split_once('?').expect("a query").1.as_bytes()).into_owned().collect();
    let (subscribe, publish) = (&query["access_token"], &query["publish_token"]);
    for node in &t.nodes {
        let r = t.client.get(node.url(&format!("/events?topic=clock&access_token={subscribe}"))).send().await.expect("stream");
        assert_eq!(r.status(), 200, "node {} refuses node 1's demo token", node.addr);
    }
    // As the page does it: follow through the balancer, publish through the balancer.
    let resp = t.client.get(t.url(&format!("/events?topic=clock&access_token={subscribe}"))).send().await.expect("stream");
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
