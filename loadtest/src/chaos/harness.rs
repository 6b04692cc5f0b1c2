//! The processes a local chaos run starts and breaks: one `redis-server` that keeps its streams
//! across a restart (append-only file, fsync on every write, in the run's directory) and gateway
//! nodes sharing it, each on a fixed loopback port so a restarted node comes back at the same
//! address. Every process is killed when the harness is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How long a process may take to be ready (a Redis loading its file, a node connecting).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The gateway settings of a chaos run, shortened so that faults show within seconds; the
/// report's notes list them.
pub(super) const GATEWAY_ENV: &[(&str, &str)] = &[
    // A client that stops reading is cut after 1 s of a full socket (default 30 s).
    ("GATEWAY_WRITE_TIMEOUT", "1s"),
    // A draining node gives its streams and requests 5 s (default 10 s).
    ("GATEWAY_SHUTDOWN_GRACE", "5s"),
    // Every followed stream is read every second whatever the notifications said (default 5 s).
    ("GATEWAY_REDIS_RECONCILE", "1s"),
    // History is never trimmed, so that the run can compare against all of it.
    ("GATEWAY_HISTORY_MAX_LEN", "0"),
    ("GATEWAY_CLOCK_INTERVAL", "0s"),
];

/// A loopback port for a server the harness starts: outside the range its clients' sockets take
/// theirs from, so that none takes it before the server binds it (see `shared::ports`).
pub(super) fn free_port() -> anyhow::Result<u16> {
    shared::ports::free_loopback_port().context("no free loopback port")
}

pub(super) struct Redis {
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub(super) async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut redis = Self { port: free_port()?, dir: dir.to_owned(), binary: binary.to_owned(), child: None };
        redis.spawn().await?;
        Ok(redis)
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("redis.log"))?;
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (is redis-server installed?)", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while !self.pong().await {
            if Instant::now() > deadline {
                bail!("redis-server on port {} is not ready (see {}/redis.log)", self.port, self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Whether Redis answers PING (not while it loads its file).
    async fn pong(&self) -> bool {
        let ping = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            s.write_all(b"PING\r\n").await?;
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
        };
        matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Ok(true)))
    }

    /// Stops Redis as an operator would (SIGTERM: it syncs its file and exits), leaves it down
    /// for `down_for`, and starts it again on the same port and directory. Returns how long
    /// Redis was away.
    pub(super) async fn restart(&mut self, down_for: Duration) -> anyhow::Result<Duration> {
        let down = Instant::now();
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10)).await?;
        }
        tokio::time::sleep(down_for).await;
        self.spawn().await?;
        Ok(down.elapsed())
    }
}

pub(super) struct Node {
    pub port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub(super) async fn start(binary: &Path, env: Vec<(String, String)>, log: PathBuf) -> anyhow::Result<Self> {
        let mut node = Self { port: free_port()?, binary: binary.to_owned(), env, log, child: None };
        node.spawn().await?;
        Ok(node)
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.url())).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the gateway on port {} exited with {status} (see {})", self.port, self.log.display());
            }
            if Instant::now() > deadline {
                bail!("the gateway on port {} is not ready (see {})", self.port, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and started again on the same port after `down_for`. Returns how long the node
    /// was away.
    pub(super) async fn kill_and_restart(&mut self, down_for: Duration) -> anyhow::Result<Duration> {
        let down = Instant::now();
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        tokio::time::sleep(down_for).await;
        self.spawn().await?;
        Ok(down.elapsed())
    }

    /// SIGTERM (the node drains), waits for it to exit, starts it again and waits until it is
    /// ready. Returns how long the node took to exit and how long it was away.
    pub(super) async fn roll(&mut self) -> anyhow::Result<(Duration, Duration)> {
        let down = Instant::now();
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(30)).await?;
        }
        let exited = down.elapsed();
        self.spawn().await?;
        Ok((exited, down.elapsed()))
    }
}

/// SIGTERM, then waits for the exit (SIGKILL after `within`, and an error).
async fn terminate(child: &mut Child, within: Duration) -> anyhow::Result<()> {
    let Some(pid) = child.id() else { return Ok(()) };
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    if !status.success() {
        bail!("kill -TERM {pid} failed");
    }
    match tokio::time::timeout(within, child.wait()).await {
        Ok(r) => {
            r?;
            Ok(())
        }
        Err(_) => {
            child.kill().await?;
            bail!("process {pid} did not exit within {within:?} of SIGTERM")
        }
    }
}
