//! A three-master Redis Cluster whose slots a test can move.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::process::{free_port, ping, redis_cli, redis_process};
use crate::wait::eventually;

/// How long the cluster may take to come up.
const SETTLE: Duration = Duration::from_secs(30);

/// A three-master Redis Cluster on loopback ports (no replicas), made with
/// `redis-cli --cluster create`, all killed with it. `REDIS_CLUSTER_URL` (a `redis-cluster://`
/// URL) is used instead when set.
#[derive(Debug)]
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
            eventually("a cluster node to answer", SETTLE, async || ping(port).await).await;
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
            eventually("the cluster to be ok on every node", SETTLE, async || {
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
