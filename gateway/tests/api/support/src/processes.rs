//! The compose stack's topology as processes, for the tests that need real gateway processes:
//! one Redis, gateway nodes (the real binary, configured by environment variables as
//! `docker-compose.yml` configures its replicas, sharing one JWT secret) and nginx in front, with
//! the compose stack's own SSE settings: the generated nginx config includes
//! `deploy/nginx/sse-proxy.conf` itself. Everything listens on loopback; every wait is bounded.
//!
//! nginx must be installed (Debian/Ubuntu: `apt-get install nginx`); CI installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::app::*;
use crate::redis::*;
use crate::wait::Lazily;

/// The SSE proxy settings the compose stack's nginx includes.
pub const SSE_PROXY_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../deploy/nginx/sse-proxy.conf");
/// The compose stack's nginx server and upstream.
pub const COMPOSE_NGINX_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../deploy/nginx/gateway.conf");
/// Startup of a process (a node connecting to Redis, nginx) may take longer than one request.
pub const START: Duration = Duration::from_secs(30);

/// The gateway binary Cargo built for the test that runs: beside the test binary's own `deps/`
/// directory (a library cannot name it with `CARGO_BIN_EXE_gateway`, which only the gateway's own
/// test targets are given).
pub fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(Path::parent).expect("the test binary is in target/<profile>/deps");
    let gateway = dir.join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    assert!(gateway.exists(), "{} is missing: the gateway's tests build it (`cargo test -p gateway`)", gateway.display());
    gateway
}

/// A scratch directory for configs and logs, removed at the end.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Self {
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

pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A gateway process. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Node {
    pub addr: SocketAddr,
    /// `GATEWAY_METRICS_ADDR`, as in the compose stack: metrics are not on the client-facing port.
    pub admin: SocketAddr,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Node {
    /// A node of the balanced topology (Redis, the compose file's settings), with `env` on top of
    /// the defaults (it wins).
    pub async fn start_with(redis: &TestRedis, prefix: &str, public_url: &str, dir: &Path, index: usize, env: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        Self::start_at(redis, prefix, public_url, dir, index, (addr, admin), env)
    }

    /// Starts a node on given addresses: a restarted node takes its old ports back, since the
    /// balancer's upstream list is fixed. Its log is appended to the old one.
    pub fn start_at(
        redis: &TestRedis,
        prefix: &str,
        public_url: &str,
        dir: &Path,
        index: usize,
        addrs: (SocketAddr, SocketAddr),
        env: &[(&str, &str)],
    ) -> Self {
        // The compose file's settings (docker-compose.yml, x-gateway), with loopback addresses,
        // and the test's own: keys of its own, and no reconcile safety net, so that delivery
        // comes from the notification and reconnect paths.
        let compose = [
            ("GATEWAY_REDIS_URL", redis.url.as_str()),
            ("GATEWAY_DEMO", "true"),
            ("GATEWAY_PUBLIC_URL", public_url),
            ("GATEWAY_REDIS_PREFIX", prefix),
            ("GATEWAY_REDIS_RECONCILE", "1h"),
        ];
        Self::spawn(dir, index, addrs, compose.iter().chain(env).copied())
    }

    /// A node on the embedded bus (no Redis), on fresh loopback ports, with `env` on top of the
    /// defaults. Not waited for: call [`Node::wait_ready`].
    pub fn embedded(dir: &Path, index: usize, env: &[(&str, &str)]) -> Self {
        let addrs = (([127, 0, 0, 1], free_port()).into(), ([127, 0, 0, 1], free_port()).into());
        Self::spawn(dir, index, addrs, env.iter().copied())
    }

    /// The gateway binary with a clean environment: its addresses, the shared JWT secret, no
    /// clock ticks, warnings only in its log, then `env` (which wins). Standard output and error
    /// are appended to `gateway-<index>.log` in `dir`.
    fn spawn<'a>(dir: &Path, index: usize, (addr, admin): (SocketAddr, SocketAddr), env: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let log = dir.join(format!("gateway-{index}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let child = Command::new(gateway_binary())
            .env_clear()
            .env("GATEWAY_LISTEN_ADDR", addr.to_string())
            .env("GATEWAY_METRICS_ADDR", admin.to_string())
            .env("GATEWAY_JWT_SECRET", SECRET)
            .env("GATEWAY_CLOCK_INTERVAL", "0s")
            .env("RUST_LOG", "warn")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("the gateway binary starts");
        Self { addr, admin, child: Some(child), log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn wait_ready(&mut self, client: &reqwest::Client) {
        let (addr, log) = (self.addr, self.log.clone());
        eventually(Lazily(|| format!("gateway {addr} to be ready:\n{}", read_log(&log))), START, async || {
            if client.get(self.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("wait")) {
                panic!("gateway {} exited ({status}):\n{}", self.addr, read_log(&self.log));
            }
            false
        })
        .await;
    }

    /// The node's metrics now, from its admin address.
    pub async fn metrics(&self, client: &reqwest::Client) -> Metrics {
        let text = client.get(format!("http://{}/metrics", self.admin)).send().await.expect("metrics").text().await.expect("metrics body");
        Metrics(text)
    }

    /// Event streams open on this node now, from its metrics.
    pub async fn streams_open(&self, client: &reqwest::Client) -> f64 {
        self.metrics(client).await.value("sse_gateway_connections_open")
    }

    /// SIGTERM, as an orchestrator stops a replica, and waits for the node to exit: its graceful
    /// drain ends every stream from the server side (after a last `retry:`).
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("a running node");
        let pid = child.id().expect("a running node has a pid");
        let signal = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let status = tokio::time::timeout(WAIT, signal).await.expect("kill in time").expect("kill(1) runs");
        assert!(status.success(), "kill -TERM {pid}: {status}");
        let exit = tokio::time::timeout(START, child.wait()).await.expect("the node exits within its drain grace").expect("wait");
        assert!(exit.success(), "gateway {} exited with {exit} on SIGTERM:\n{}", self.addr, read_log(&self.log));
    }

    /// SIGKILL: the node vanishes as in a crash, without closing its streams cleanly.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("a running node");
        tokio::time::timeout(WAIT, child.kill()).await.expect("killed in time").expect("kill");
    }
}

/// Where nginx is: on PATH, or where Debian puts it (`/usr/sbin`, not on every user's PATH).
pub fn nginx_binary() -> PathBuf {
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
pub fn nginx_conf(dir: &Path, http: &str) -> String {
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
