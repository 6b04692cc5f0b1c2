//! The Node side of the real-client tests: the scripts in `e2e/` (Chromium through
//! playwright-core, the `eventsource` package), spawned as processes that speak one JSON object
//! per line on stdout. What they need is checked first, and a missing piece fails the test with
//! a message that names it: these tests never skip.
//!
//! Prerequisites: Node.js 20 or later, `npm ci --prefix e2e` (the pinned packages of
//! `e2e/package-lock.json`), and for the browser tests Debian's Chromium at `/usr/bin/chromium`
//! (`apt-get install chromium`). CI (`.ci/run`) installs them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::processes::{START, read_log};

/// The Node package with the client scripts.
pub const E2E_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../e2e");
/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// playwright-core and eventsource need at least this Node.js major version.
const NODE_MAJOR: u32 = 20;

/// `node` from PATH, checked to be recent enough.
pub fn node_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let node = std::env::split_paths(&path).map(|dir| dir.join("node")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("the real-client tests need Node.js {NODE_MAJOR}+ (`node` is not on PATH): install it, then run `npm ci --prefix e2e`")
    });
    let out = std::process::Command::new(&node).arg("--version").output().expect("node --version runs");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major: u32 = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= NODE_MAJOR, "the real-client tests need Node.js {NODE_MAJOR}+, found {version:?} at {}", node.display());
    node
}

/// Fails unless Node.js is there and `npm ci --prefix e2e` has installed `package`.
pub fn require_package(package: &str) {
    node_binary();
    let dir = Path::new(E2E_DIR).join("node_modules").join(package);
    assert!(
        dir.join("package.json").is_file(),
        "the real-client tests need the npm package {package:?} in e2e/node_modules: run `npm ci --prefix e2e` (it installs the \
         pinned versions of e2e/package-lock.json)"
    );
}

/// Fails unless Debian's Chromium is installed.
pub fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "the browser tests need Chromium at {CHROMIUM}: install it (Debian: apt-get install chromium chromium-driver); \
         playwright-core drives it and never downloads a browser"
    );
}

/// One of the `e2e/` scripts, running. Killed when dropped; its stderr is kept in a file for
/// failure messages.
#[derive(Debug)]
pub struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl Script {
    /// Starts `node e2e/<name>` with `env`, its stderr going to `<log_dir>/<name>.stderr`.
    pub fn spawn(name: &str, env: &[(&str, &str)], log_dir: &Path) -> Self {
        let node = node_binary();
        let stderr = log_dir.join(format!("{name}.stderr"));
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let mut command = Command::new(node);
        command
            .arg(name)
            .current_dir(E2E_DIR)
            // Everything is on loopback: no proxy may be in the way.
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("node starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self { name: name.to_owned(), child, stdin, stdout, stderr }
    }

    /// Where the script's stderr goes.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// The script's stderr so far.
    pub fn stderr(&self) -> String {
        read_log(&self.stderr)
    }

    /// The next line of output, as JSON; `None` once the script has exited.
    pub async fn read(&mut self) -> Option<Value> {
        let line = self.stdout.next_line().await.unwrap_or_else(|e| panic!("reading {}: {e}", self.name))?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{} printed a line that is not JSON ({e}): {line}", self.name)))
    }

    /// The next line of output, as JSON; fails if none comes `within`.
    pub async fn next(&mut self, within: Duration) -> Value {
        match tokio::time::timeout(within, self.read()).await {
            Ok(Some(value)) => value,
            Ok(None) => panic!("{} exited ({:?}); stderr:\n{}", self.name, self.child.try_wait(), self.stderr()),
            Err(_) => panic!("no output from {} in {within:?}; stderr:\n{}", self.name, self.stderr()),
        }
    }

    /// Sends one command line.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        tokio::time::timeout(START, write).await.expect("write in time").expect("write to the script");
    }

    /// Closes stdin, which the scripts take as the end, and waits for the exit.
    pub async fn close(mut self) {
        drop(self.stdin.take());
        let _ = tokio::time::timeout(START, self.child.wait()).await;
    }
}
