//! A real Redis for the tests: `REDIS_URL` if set (each test then isolates itself with its own key
//! prefix), else a `redis-server` from PATH started on a free loopback port for the test and
//! killed with it, else a `redis:7` container (testcontainers) when a Docker engine answers.
//! Without any of them the test fails and says what it needs. Tests that stop and restart the
//! server, and the Sentinel and Cluster set-ups, need `redis-server` (and `redis-cli`) on PATH.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::helpers::*;

pub struct TestRedis {
    pub url: String,
    port: u16,
    dir: Option<PathBuf>,
    child: Option<Child>,
    _container: Option<Box<testcontainers::ContainerAsync<testcontainers::GenericImage>>>,
}

/// A key prefix no other test uses, so tests can share one server.
pub fn unique_prefix() -> String {
    format!("t{}", rand::random::<u64>())
}

impl TestRedis {
    pub async fn start() -> Self {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Self { url, port: 0, dir: None, child: None, _container: None };
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("gateway-test-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self { url: format!("redis://127.0.0.1:{port}"), port, dir: Some(dir), child: None, _container: None };
        match redis.try_spawn().await {
            Ok(()) => redis,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::in_container(e).await,
            Err(e) => panic!("cannot start redis-server: {e}"),
        }
    }

    /// No `redis-server` on PATH: a container, if a Docker engine answers.
    async fn in_container(not_found: std::io::Error) -> Self {
        use testcontainers::core::{IntoContainerPort, WaitFor};
        use testcontainers::runners::AsyncRunner;
        let started = testcontainers::GenericImage::new("redis", "7")
            .with_exposed_port(6379.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .start()
            .await;
        let container = started.unwrap_or_else(|e| {
            panic!(
                "these tests need Redis: set REDIS_URL, put redis-server on PATH (apt-get install redis-server), \
                 or run a Docker engine for testcontainers (redis-server: {not_found}; Docker: {e})"
            )
        });
        let port = container.get_host_port_ipv4(6379.tcp()).await.expect("the container's Redis port");
        Self { url: format!("redis://127.0.0.1:{port}"), port, dir: None, child: None, _container: Some(Box::new(container)) }
    }

    /// Whether `stop` and `restart` work: only for a `redis-server` this harness spawned.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn can_restart(&self) -> bool {
        self.dir.is_some()
    }

    async fn spawn(&mut self) {
        self.try_spawn().await.unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    }

    async fn try_spawn(&mut self) -> std::io::Result<()> {
        let dir = self.dir.as_ref().expect("a spawned server has a dir");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--loglevel", "warning", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while !ping(self.port).await {
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not answer PING on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the server (as a crash would: SIGKILL), keeping its data directory.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("a spawned server to stop");
        child.kill().await.expect("kill redis");
    }

    /// Stops the server as an operator would (SIGTERM: it finishes the commands it read, syncs
    /// its file and exits), keeping its data directory.
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("a spawned server to stop");
        let pid = child.id().expect("a running server").to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill -TERM");
        assert!(status.success(), "kill -TERM {pid}");
        tokio::time::timeout(WAIT, child.wait()).await.expect("redis-server exits on SIGTERM").expect("wait");
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// Replaces this (stopped) server's data with a copy of `other`'s (stopped too): when it
    /// restarts it holds another history, as a promoted replica can.
    pub fn take_data_of(&self, other: &TestRedis) {
        let (to, from) = (self.dir.as_ref().expect("a spawned server"), other.dir.as_ref().expect("a spawned server"));
        std::fs::remove_dir_all(to).expect("clear data");
        copy_dir(from, to);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

async fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else { return false };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await, Ok(Ok(_))) && &buf == b"+PONG\r\n"
}

/// A gateway node on `redis` with key prefix `prefix`.
pub async fn spawn_node(redis: &TestRedis, prefix: &str) -> TestApp {
    spawn_node_with(redis, prefix, |_| {}).await
}

pub async fn spawn_node_with(redis: &TestRedis, prefix: &str, configure: impl FnOnce(&mut gateway::Config)) -> TestApp {
    spawn_node_at(&redis.url, prefix, configure).await
}

/// A gateway node on the Redis at `url` (a plain or a sentinel URL).
pub async fn spawn_node_at(url: &str, prefix: &str, configure: impl FnOnce(&mut gateway::Config)) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    spawn_with(move |c| {
        c.redis_url = Some(gateway::config::RedisUrl::parse(&url).expect("redis url"));
        c.redis_prefix = prefix;
        // No safety net in tests: delivery must come from the notification and reconnect paths.
        c.redis_reconcile = Duration::from_secs(3600);
        configure(c);
    })
    .await
}

/// A plain Redis client, for publishing the way other services do.
pub async fn redis_client(redis: &TestRedis) -> fred::clients::Client {
    redis_client_at(&redis.url).await
}

pub async fn redis_client_at(url: &str) -> fred::clients::Client {
    use fred::interfaces::ClientLike;
    let client = fred::types::Builder::from_config(fred::types::config::Config::from_url(url).expect("url")).build().expect("client");
    client.init().await.expect("connect to redis");
    client
}

/// A master, a replica and one Sentinel watching them, on loopback ports, all killed with it.
pub struct TestSentinel {
    pub url: String,
    sentinel_port: u16,
    replica_port: u16,
    dir: PathBuf,
    _children: Vec<Child>,
}

/// A loopback port for a server the test starts: free now, outside the range client sockets take
/// theirs from (see `shared::ports`).
pub fn free_port() -> u16 {
    shared::ports::free_loopback_port().expect("a free loopback port")
}

fn redis_process(args: &[&str]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("these tests need redis-server on PATH (apt-get install redis-server): {e}"))
}

/// Runs `redis-cli -p port args…` and returns its output lines.
pub async fn redis_cli(port: u16, args: &[&str]) -> Vec<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("these tests need redis-cli on PATH (apt-get install redis-tools): {e}"));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

impl TestSentinel {
    pub async fn start() -> Self {
        let (master, replica, sentinel) = (free_port(), free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("gateway-test-sentinel-{sentinel}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"];
        let m = redis_process(&[&["--port", &master.to_string()][..], &common[..]].concat());
        let r =
            redis_process(&[&["--port", &replica.to_string(), "--replicaof", "127.0.0.1", &master.to_string()][..], &common[..]].concat());
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel}\nbind 127.0.0.1\ndir {}\nsentinel monitor gw 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds gw 1000\nsentinel failover-timeout gw 5000\n",
                dir.display()
            ),
        )
        .expect("sentinel.conf");
        let s = redis_process(&[conf.to_str().expect("utf8 path"), "--sentinel", "--loglevel", "warning"]);
        let this = Self {
            url: format!("redis-sentinel://127.0.0.1:{sentinel}/0?sentinelServiceName=gw"),
            sentinel_port: sentinel,
            replica_port: replica,
            dir,
            _children: vec![m, r, s],
        };
        this.wait_for(|| async {
            redis_cli(replica, &["INFO", "replication"]).await.iter().any(|l| l.starts_with("master_link_status:up"))
        })
        .await;
        this.wait_for(|| async { this.master_port().await == Some(master) }).await;
        // The sentinel must know the replica before it can fail over to it.
        this.wait_for(|| async { redis_cli(sentinel, &["SENTINEL", "replicas", "gw"]).await.iter().any(|l| l == &replica.to_string()) })
            .await;
        this
    }

    async fn wait_for<F: std::future::Future<Output = bool>>(&self, check: impl Fn() -> F) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "the sentinel setup did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn master_port(&self) -> Option<u16> {
        redis_cli(self.sentinel_port, &["SENTINEL", "get-master-addr-by-name", "gw"]).await.get(1).and_then(|p| p.parse().ok())
    }

    /// Promotes the replica and waits until the sentinel names it master. The sentinel refuses
    /// (`NOGOODSLAVE`) until it has fresh information about the replica, so ask until it agrees.
    pub async fn fail_over(&self) {
        self.wait_for(|| async { redis_cli(self.sentinel_port, &["SENTINEL", "failover", "gw"]).await.first().is_some_and(|l| l == "OK") })
            .await;
        let replica = self.replica_port;
        self.wait_for(|| async { self.master_port().await == Some(replica) }).await;
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on loopback ports (no replicas), made with
/// `redis-cli --cluster create`, all killed with it. `REDIS_CLUSTER_URL` (a `redis-cluster://`
/// URL) is used instead when set.
pub struct TestCluster {
    pub url: String,
    pub ports: Vec<u16>,
    dir: Option<PathBuf>,
    _children: Vec<Child>,
}

impl TestCluster {
    pub async fn start() -> Self {
        if let Ok(url) = std::env::var("REDIS_CLUSTER_URL") {
            return Self { url, ports: Vec::new(), dir: None, _children: Vec::new() };
        }
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("gateway-test-cluster-{}-{}", ports[0], std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut children = Vec::new();
        for &port in &ports {
            let (port, bus) = (port.to_string(), free_port().to_string());
            let conf = dir.join(format!("nodes-{port}.conf"));
            children.push(redis_process(
                &[
                    &["--port", &port, "--cluster-port", &bus, "--cluster-enabled", "yes"][..],
                    &["--cluster-config-file", conf.to_str().expect("utf8 path"), "--cluster-node-timeout", "2000"],
                    &["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                    &["--dir", dir.to_str().expect("utf8 path")],
                ]
                .concat(),
            ));
        }
        let this = Self {
            url: format!("redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}", ports[0], ports[1], ports[2]),
            ports: ports.clone(),
            dir: Some(dir),
            _children: children,
        };
        for &port in &ports {
            wait_until("a cluster node to answer", || async move { ping(port).await }).await;
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let create = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .unwrap_or_else(|e| panic!("these tests need redis-cli on PATH (apt-get install redis-tools): {e}"));
        assert!(create.status.success(), "redis-cli --cluster create failed: {}", String::from_utf8_lossy(&create.stdout));
        for &port in &ports {
            wait_until("the cluster to be ok on every node", || async move {
                redis_cli(port, &["CLUSTER", "INFO"]).await.iter().any(|l| l.trim() == "cluster_state:ok")
            })
            .await;
        }
        this
    }

    /// The port of the master that owns `key` now.
    pub async fn owner_of(&self, key: &str) -> u16 {
        let slot = redis_cli(self.ports[0], &["CLUSTER", "KEYSLOT", key]).await[0].parse::<u16>().expect("slot");
        for &port in &self.ports {
            if self.slots_of(port).await.iter().any(|(a, b)| (*a..=*b).contains(&slot)) {
                return port;
            }
        }
        panic!("no master owns slot {slot}");
    }

    async fn slots_of(&self, port: u16) -> Vec<(u16, u16)> {
        let id = redis_cli(port, &["CLUSTER", "MYID"]).await[0].clone();
        let nodes = redis_cli(port, &["CLUSTER", "NODES"]).await;
        let me = nodes.iter().find(|l| l.starts_with(&id)).expect("myself in CLUSTER NODES");
        me.split(' ')
            .skip(8)
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|s| (s, s)),
            })
            .collect()
    }

    /// Moves the slot of `key`, with its keys, from its owner to master `to`, the way a
    /// resharding does (`IMPORTING`/`MIGRATING`, `MIGRATE`, then `SETSLOT … NODE` everywhere).
    pub async fn move_slot_of(&self, key: &str, to: u16) {
        let from = self.owner_of(key).await;
        assert_ne!(from, to, "the slot is already there");
        let slot = redis_cli(from, &["CLUSTER", "KEYSLOT", key]).await[0].clone();
        let (from_id, to_id) =
            (redis_cli(from, &["CLUSTER", "MYID"]).await[0].clone(), redis_cli(to, &["CLUSTER", "MYID"]).await[0].clone());
        assert_eq!(redis_cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]).await, ["OK"]);
        assert_eq!(redis_cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]).await, ["OK"]);
        for k in redis_cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]).await {
            assert_eq!(redis_cli(from, &["MIGRATE", "127.0.0.1", &to.to_string(), &k, "0", "5000"]).await, ["OK"]);
        }
        for port in std::iter::once(to).chain(std::iter::once(from)).chain(self.ports.iter().copied().filter(|p| *p != to && *p != from)) {
            assert_eq!(redis_cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]).await, ["OK"]);
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `redis-server` speaking only TLS, on a free loopback port, with a certificate from a CA made
/// for the test (openssl), killed with it.
pub struct TestTlsRedis {
    pub url: String,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// Another CA, which did not.
    pub other_ca_file: PathBuf,
    dir: PathBuf,
    _child: Child,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs openssl on PATH to make its certificates: {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestTlsRedis {
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("gateway-test-tls-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            openssl(
                &dir,
                &[&["req", "-x509"][..], &ec, &["-keyout", &key, "-out", &crt, "-days", "1", "-subj", "/CN=gateway test CA"]].concat(),
            );
        }
        openssl(&dir, &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat());
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext.cnf");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
            ],
        );
        let path = |f: &str| dir.join(f).to_str().expect("utf8 path").to_owned();
        let child = redis_process(
            &[
                &["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"][..],
                &["--tls-cert-file", &path("server.crt"), "--tls-key-file", &path("server.key")],
                &["--tls-ca-cert-file", &path("ca.crt"), "--tls-auth-clients", "no", "--loglevel", "warning"],
            ]
            .concat(),
        );
        wait_until("the TLS redis-server to listen", || async move { TcpStream::connect(("127.0.0.1", port)).await.is_ok() }).await;
        Self {
            url: format!("rediss://127.0.0.1:{port}"),
            ca_file: dir.join("ca.crt"),
            other_ca_file: dir.join("other-ca.crt"),
            dir,
            _child: child,
        }
    }
}

impl Drop for TestTlsRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Redis shapes the same tests run on (`redis.rs`, `expiry.rs`).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Standalone,
    Cluster,
}

/// A Redis of either shape.
pub enum Store {
    Standalone(TestRedis),
    Cluster(TestCluster),
}

impl Store {
    pub async fn start(shape: Shape) -> Self {
        match shape {
            Shape::Standalone => Self::Standalone(TestRedis::start().await),
            Shape::Cluster => Self::Cluster(TestCluster::start().await),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Standalone(r) => &r.url,
            Self::Cluster(c) => &c.url,
        }
    }
}

/// Runs a test, written once as `async fn name(shape: Shape)`, on a standalone Redis and on a
/// three-master Redis Cluster: `name::standalone` and `name::cluster`.
#[allow(unused_macros)] // The traces binary includes this file and runs no test on both shapes.
macro_rules! on_every_shape {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn standalone() {
                super::$name(super::Shape::Standalone).await
            }
            #[tokio::test]
            async fn cluster() {
                super::$name(super::Shape::Cluster).await
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_every_shape;
