//! A Sentinel set-up: a master, a replica and one Sentinel, which a test can fail over.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Child;

use super::process::{free_port, redis_cli, redis_process, utf8};
use crate::wait::eventually;

/// How long the Sentinel set-up may take to settle (replication, discovery, a failover).
const SETTLE: Duration = Duration::from_secs(30);

/// A master, a replica and one Sentinel watching them, on loopback ports, all killed with it.
#[derive(Debug)]
pub struct TestSentinel {
    pub url: String,
    sentinel_port: u16,
    replica_port: u16,
    dir: PathBuf,
    _children: Vec<Child>,
}

impl TestSentinel {
    pub async fn start() -> Self {
        let (master, replica, sentinel) = (free_port(), free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("gateway-test-sentinel-{sentinel}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // Each server in a directory of its own: a full resynchronisation writes an RDB file into
        // the server's directory, which is the working directory (the source tree) without `--dir`.
        let (master_dir, replica_dir) = (dir.join("master"), dir.join("replica"));
        for d in [&master_dir, &replica_dir] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"];
        let m = redis_process(&[&["--port", &master.to_string(), "--dir", utf8(&master_dir)][..], &common[..]].concat());
        let r = redis_process(
            &[
                &["--port", &replica.to_string(), "--dir", utf8(&replica_dir), "--replicaof", "127.0.0.1", &master.to_string()][..],
                &common[..],
            ]
            .concat(),
        );
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
        eventually("the replica's link to its master to be up", SETTLE, async || {
            redis_cli(replica, &["INFO", "replication"]).await.iter().any(|l| l.starts_with("master_link_status:up"))
        })
        .await;
        eventually("the sentinel to name the master", SETTLE, async || this.master_port().await == Some(master)).await;
        // The sentinel must know the replica before it can fail over to it.
        eventually("the sentinel to know the replica", SETTLE, async || {
            redis_cli(sentinel, &["SENTINEL", "replicas", "gw"]).await.iter().any(|l| l == &replica.to_string())
        })
        .await;
        this
    }

    pub async fn master_port(&self) -> Option<u16> {
        redis_cli(self.sentinel_port, &["SENTINEL", "get-master-addr-by-name", "gw"]).await.get(1).and_then(|p| p.parse().ok())
    }

    /// Promotes the replica and waits until the sentinel names it master. The sentinel refuses
    /// (`NOGOODSLAVE`) until it has fresh information about the replica, so ask until it agrees.
    pub async fn fail_over(&self) {
        eventually("the sentinel to accept the failover", SETTLE, async || {
            redis_cli(self.sentinel_port, &["SENTINEL", "failover", "gw"]).await.first().is_some_and(|l| l == "OK")
        })
        .await;
        let replica = self.replica_port;
        eventually("the sentinel to name the replica master", SETTLE, async || self.master_port().await == Some(replica)).await;
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
