//! A short run of every scenario against real gateway processes (and a real Redis), so the tool
//! keeps working: small numbers, loopback only, each run bounded. The figures are not checked
//! against targets here (that is BENCHMARKS.md's job), only that each run is clean.
//!
//! Needs the gateway binary built beside this one (`cargo test --workspace` builds it; alone:
//! `cargo build -p gateway`) and `redis-server` on PATH.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SECRET: &str = "loadtest-smoke-secret-0123456789abcdef";

/// A loopback port for a gateway process, outside the range client sockets take theirs from.
fn free_port() -> u16 {
    shared::ports::free_loopback_port().expect("a free loopback port")
}

/// A process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gateway_binary() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let gateway = loadtest.with_file_name(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    assert!(gateway.exists(), "{} is missing: run `cargo test --workspace`, or `cargo build -p gateway` first", gateway.display());
    gateway
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis() -> (Proc, String) {
    let port = free_port();
    // Its directory is the temp dir, not the working directory (the source tree): nothing is saved,
    // but whatever a server writes must not land there.
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(std::env::temp_dir())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs redis-server on PATH (apt-get install redis-server): {e}"));
    let proc = Proc(child);
    wait_for_port(port);
    (proc, format!("redis://127.0.0.1:{port}"))
}

/// A gateway process on a free port (on `redis` if given); returns it and its base URL.
fn gateway(redis: Option<&str>) -> (Proc, String) {
    gateway_with(redis, &[])
}

/// `gateway`, with more settings.
fn gateway_with(redis: Option<&str>, env: &[(&str, &str)]) -> (Proc, String) {
    let port = free_port();
    let mut cmd = Command::new(gateway_binary());
    cmd.envs(env.iter().copied());
    cmd.env("GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("GATEWAY_JWT_SECRET", SECRET)
        .env("GATEWAY_CLOCK_INTERVAL", "0s")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = redis {
        cmd.env("GATEWAY_REDIS_URL", url);
    }
    let proc = Proc(cmd.spawn().expect("start the gateway"));
    wait_for_port(port);
    (proc, format!("http://127.0.0.1:{port}"))
}

/// Runs `loadtest <args>` with a JSON report and returns the exit status and the report.
fn loadtest(args: &[&str]) -> (Output, Value) {
    let json = std::env::temp_dir().join(format!("loadtest-smoke-{}-{}.json", std::process::id(), rand_suffix()));
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .args(["--secret", SECRET, "--quiet", "--drain", "5s", "--json"])
        .arg(&json)
        .output()
        .expect("run loadtest");
    let report = std::fs::read_to_string(&json).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&json);
    (out, report)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The run exited 0 and its report says every stream opened and every event came once.
fn assert_clean(out: &Output, report: &Value, streams: u64) {
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "loadtest failed ({}):\n{said}", out.status);
    assert_eq!(report["connections_established"], streams, "{said}");
    assert_eq!(report["lost"], 0, "{said}");
    assert_eq!(report["duplicated"], 0, "{said}");
    assert_eq!(report["deliveries_received"], report["deliveries_expected"], "{said}");
    assert!(said.contains("result              OK"), "{said}");
}

#[test]
fn idle_reports_memory_per_connection() {
    let (node, url) = gateway(None);
    let pid = node.0.id().to_string();
    let (out, report) = loadtest(&["idle", "--target", &url, "-n", "50", "--hold", "200ms", "--gateway-pid", &pid]);
    assert_clean(&out, &report, 50);
    assert!(report["memory"]["rss_after_bytes"].as_u64().expect("rss") > 0);
}

#[test]
fn fanout_delivers_every_event_to_every_stream() {
    let (_node, url) = gateway(None);
    let (out, report) = loadtest(&["fanout", "--target", &url, "-n", "20", "-m", "100", "-r", "500", "--workers", "2"]);
    assert_clean(&out, &report, 20);
    assert_eq!(report["deliveries_expected"], 2000);
    assert!(report["latency_ms"]["count"].as_u64().expect("count") == 2000);
}

#[test]
fn many_topics_over_raw_xadd() {
    let (_redis, redis_url) = redis();
    let (_node, url) = gateway(Some(&redis_url));
    let (out, report) =
        loadtest(&["many-topics", "--target", &url, "-n", "30", "-m", "300", "-r", "600", "--via", "xadd", "--redis-url", &redis_url]);
    assert_clean(&out, &report, 30);
    assert_eq!(report["deliveries_expected"], 300);
}

#[test]
fn cross_node_and_reconnect_storm_lose_nothing() {
    let (_redis, redis_url) = redis();
    let nodes: Vec<(Proc, String)> = (0..3).map(|_| gateway(Some(&redis_url))).collect();
    let targets: Vec<&str> = nodes.iter().flat_map(|(_, u)| ["--target", u.as_str()]).collect();

    let mut args = vec!["cross-node", "-n", "30", "-m", "100", "-r", "200"];
    args.extend(&targets);
    let (out, report) = loadtest(&args);
    assert_clean(&out, &report, 30);

    let pid = nodes[0].0.0.id().to_string();
    let mut args =
        vec!["reconnect-storm", "-n", "30", "-m", "200", "-r", "200", "--kill-target", "0", "--publish-target", "1", "--kill-pid", &pid];
    args.extend(&targets);
    let (out, report) = loadtest(&args);
    assert_clean(&out, &report, 30);
    assert_eq!(report["reconnects"], 30, "every stream of the killed node resumed elsewhere");
}

#[test]
fn slow_consumers_do_not_hold_back_the_others() {
    let (_node, url) = gateway(None);
    let (out, report) = loadtest(&["slow-consumers", "--target", &url, "-n", "10", "-m", "300", "-r", "1000", "--slow-fraction", "0.2"]);
    assert_clean(&out, &report, 10);
    assert_eq!(report["deliveries_expected"], 8 * 300, "only the streams that read are counted");
}

#[test]
fn mercure_fanout_through_the_hub() {
    let (node, url) = gateway_with(None, &[("GATEWAY_MERCURE", "0.x")]);
    let pid = node.0.id().to_string();
    let base = ["fanout", "--target", &url, "-n", "20", "-m", "100", "-r", "500", "--mercure", "0.x"];
    let (out, report) = loadtest(&[&base[..], &["--selectors", "8", "--gateway-pid", &pid]].concat());
    assert_clean(&out, &report, 20);
    assert_eq!(report["deliveries_expected"], 2000);
    assert!(report["gateway_cpu"]["seconds"].as_f64().is_some_and(|s| s > 0.0), "{report}");
    let (out, report) = loadtest(&[&base[..], &["--match-template", "--workers", "2", "--publishers", "3"]].concat());
    assert_clean(&out, &report, 20);
}
