//! One `redis-server` per test (or the one at `REDIS_URL`, or a `redis:7` container), which a test
//! may stop, restart, or give another server's data.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::process::{free_port, ping};
use crate::wait::{WAIT, eventually};

#[derive(Debug)]
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
        let port = self.port;
        eventually(format!("redis-server to answer PING on port {port}"), WAIT, async || ping(port).await).await;
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
