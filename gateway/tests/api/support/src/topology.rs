//! The compose stack's topology as processes: Redis, three gateway nodes and nginx in front,
//! balancing with the compose stack's own upstream and SSE settings.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::app::*;
use crate::processes::{Node, SSE_PROXY_CONF, START, Scratch, nginx_binary, nginx_conf, read_log};
use crate::redis::*;
use crate::wait::Lazily;

/// nginx as the compose stack runs it, on loopback: the same upstream settings as
/// `deploy/nginx/gateway.conf`, and `deploy/nginx/sse-proxy.conf` included as it is.
#[derive(Debug)]
pub struct Balancer {
    pub addr: SocketAddr,
    _child: Child,
}

impl Balancer {
    pub async fn start(addr: SocketAddr, nodes: &[SocketAddr], dir: &Path, client: &reqwest::Client) -> Self {
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
        let error_log = dir.join("error.log");
        eventually(Lazily(|| format!("nginx to serve:\n{}", read_log(&error_log))), START, async || {
            if client.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("nginx exited ({status}):\n{}", read_log(&error_log));
            }
            false
        })
        .await;
        Self { addr, _child: child }
    }
}

/// Redis, three nodes and nginx, as `docker compose up` starts them.
#[derive(Debug)]
pub struct Topology {
    pub client: reqwest::Client,
    pub nodes: Vec<Node>,
    pub balancer: Balancer,
    _redis: TestRedis,
    /// What a restarted node is started with.
    prefix: String,
    public_url: String,
    env: Vec<(String, String)>,
    // Last: the processes writing into it go first.
    pub dir: Scratch,
}

impl Topology {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// As [`Topology::start`], every node (restarted ones too) with `env` on top of the defaults.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = Scratch::new("topology");
        let redis = TestRedis::start().await;
        let prefix = unique_prefix();
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("client");
        let balancer_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let public_url = format!("http://{balancer_addr}");
        let mut nodes = Vec::new();
        for i in 1..=3 {
            nodes.push(Node::start_with(&redis, &prefix, &public_url, &dir.0, i, env).await);
        }
        for node in &mut nodes {
            node.wait_ready(&client).await;
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let balancer = Balancer::start(balancer_addr, &addrs, &dir.0, &client).await;
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self { client, nodes, balancer, _redis: redis, prefix, public_url, env, dir }
    }

    /// Starts node `node` again, after a kill or a termination, on its old addresses, and waits
    /// until it is ready.
    pub async fn restart(&mut self, node: usize) {
        let old = &self.nodes[node];
        assert!(old.child.is_none(), "node {node} is still running");
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut fresh = Node::start_at(&self._redis, &self.prefix, &self.public_url, &self.dir.0, node + 1, (old.addr, old.admin), &env);
        fresh.wait_ready(&self.client).await;
        self.nodes[node] = fresh;
    }

    /// Event streams open on each running node (0 for a stopped one), from their metrics.
    pub async fn streams_per_node(&self) -> Vec<f64> {
        let mut open = Vec::new();
        for node in &self.nodes {
            open.push(if node.child.is_some() { node.streams_open(&self.client).await } else { 0.0 });
        }
        open
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.balancer.addr)
    }

    /// Follows `topic` through the balancer, resuming after `last_event_id` if given.
    pub async fn subscribe(&self, topic: &str, last_event_id: Option<&str>) -> SseClient {
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
    pub async fn publish_on(&self, node: usize, topic: &str, data: &str) -> String {
        self.publish_at(&self.nodes[node].url("/publish"), topic, data).await
    }

    pub async fn publish_at(&self, url: &str, topic: &str, data: &str) -> String {
        let body = serde_json::json!({ "topic": topic, "data": data });
        let send = self.client.post(url).bearer_auth(token(&[], &["*"])).json(&body).send();
        let r = tokio::time::timeout(WAIT, send)
            .await
            .unwrap_or_else(|_| panic!("publish at {url} took over {WAIT:?}\n{}", self.logs()))
            .unwrap_or_else(|e| panic!("publish at {url}: {e}\nnode processes: {:?}\n{}", self.exits(), self.logs()));
        assert_eq!(r.status(), 200, "publish at {url}: {:?}", r.text().await);
        let v: serde_json::Value = r.json().await.expect("json");
        v["id"].as_str().expect("an id").to_owned()
    }

    /// The node holding the one open stream, from the nodes' metrics.
    pub async fn stream_holder(&self) -> usize {
        eventually("one node holding one stream", WAIT, async || {
            let mut open = Vec::new();
            for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.child.is_some()) {
                open.push((i, node.streams_open(&self.client).await));
            }
            let holders: Vec<(usize, f64)> = open.iter().copied().filter(|(_, n)| *n > 0.0).collect();
            if let [(holder, streams)] = holders[..]
                && streams == 1.0
            {
                Ok(holder)
            } else {
                Err(format!("(node, streams): {open:?}"))
            }
        })
        .await
    }

    /// Each node's process as the kernel sees it (`R`, `S`: alive; `Z`: exited), or `stopped` by
    /// the test, for failure messages.
    fn exits(&self) -> Vec<String> {
        let state = |pid: u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            format!("pid {pid}: {}", stat.rsplit(')').next().unwrap_or_default().split_whitespace().next().unwrap_or("gone"))
        };
        self.nodes.iter().map(|n| n.child.as_ref().and_then(|c| c.id()).map_or_else(|| "stopped".to_owned(), state)).collect()
    }

    /// The log of every node, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- {}\n{}", n.addr, read_log(&n.log))).collect::<Vec<_>>().join("\n")
            + &format!("\n--- nginx\n{}", read_log(&self.dir.0.join("error.log")))
    }
}
