//! Starting and asking `redis-server` processes: ports, the process itself, `redis-cli`, `PING`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::wait::eventually;

/// A loopback port for a server the test starts: free now, outside the range client sockets take
/// theirs from (see `shared::ports`).
pub fn free_port() -> u16 {
    shared::ports::free_loopback_port().expect("a free loopback port")
}

pub(super) fn redis_process(args: &[&str]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("these tests need redis-server on PATH (apt-get install redis-server): {e}"))
}

/// `path` as a command-line argument.
pub(super) fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
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

pub(super) async fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else { return false };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await, Ok(Ok(_))) && &buf == b"+PONG\r\n"
}

/// Waits until the stream `key` on the server at `port` holds at least `n` entries: the
/// publishers running beside the test got that far. Fails after 30 s, saying how many it holds
/// (a node that never publishes again after a fault).
pub async fn until_stream_holds(port: u16, key: &str, n: usize) {
    eventually(format!("{n} entries in {key} on port {port}"), Duration::from_secs(30), async || {
        // While the server restarts, redis-cli answers nothing: 0.
        let len: usize = redis_cli(port, &["XLEN", key]).await.first().and_then(|l| l.parse().ok()).unwrap_or(0);
        if len >= n { Ok(()) } else { Err(format!("it holds {len}")) }
    })
    .await;
}
