//! What the hostile cases run against and measure: one gateway process on its own Redis, its
//! footprint (what a leak would show in), a bystander stream, and raw sockets and tokens.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use fred::interfaces::PubsubInterface;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use support::app::*;
use support::processes::*;
use support::redis::*;

/// `GATEWAY_HEADER_TIMEOUT` for the hostile cases: short, so that the slowloris cases end
/// quickly. The flood runs with the default (10 s): a second is too short for 10,000 request
/// heads at once on a debug build sharing two cores with the clients.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
pub(super) const AUDIENCE: &str = "hostile-suite";
/// Connections of the flood.
pub(super) const FLOOD: usize = 10_000;

/// What a leak would show in, from the node's metrics and from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Footprint {
    pub(super) sockets: u64,
    pub(super) streams: u64,
    pub(super) tasks: u64,
    pub(super) upstream: u64,
    /// Redis pub/sub channels (live and keyspace) with the node's key prefix, and patterns.
    pub(super) redis_channels: usize,
}

/// One gateway process with a short header timeout and a required audience, on its own Redis.
pub(super) struct Target {
    pub(super) node: Node,
    /// No connection pool: an idle pooled socket would count as an open socket of the node.
    pub(super) client: reqwest::Client,
    pub(super) redis: fred::clients::Client,
    pub(super) prefix: String,
    pub(super) _redis: TestRedis,
    pub(super) _dir: Scratch,
}

impl Target {
    /// A node with `header_timeout`, a required audience and no per-subject limit.
    pub(super) async fn start(header_timeout: Duration) -> Self {
        // The flood needs ~10,000 descriptors here and as many in the node (which raises its
        // own soft limit to the hard one, as this does).
        rlimit::increase_nofile_limit(u64::MAX).expect("raise the open files limit");
        let dir = Scratch::new("hostile");
        let redis_server = TestRedis::start().await;
        let prefix = unique_prefix();
        let timeout = format!("{}ms", header_timeout.as_millis());
        let env = [
            ("GATEWAY_HEADER_TIMEOUT", timeout.as_str()),
            ("GATEWAY_WRITE_TIMEOUT", "2s"),
            ("GATEWAY_JWT_AUDIENCE", AUDIENCE),
            ("GATEWAY_MAX_CONNECTIONS_PER_SUBJECT", "0"),
            // One glibc arena: with one per thread, resident memory wanders by tens of MB
            // between equal rounds, which would hide a leak rather than show one.
            ("MALLOC_ARENA_MAX", "1"),
        ];
        let mut node = Node::start_with(&redis_server, &prefix, "http://127.0.0.1", &dir.0, 1, &env).await;
        let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).timeout(WAIT).build().expect("client");
        node.wait_ready(&client).await;
        let redis = redis_client(&redis_server).await;
        Self { node, client, redis, prefix, _redis: redis_server, _dir: dir }
    }

    pub(super) fn url(&self, path: &str) -> String {
        self.node.url(path)
    }

    pub(super) async fn footprint(&self) -> Footprint {
        let m = self.node.metrics(&self.client).await;
        let count = |series: &str| m.value(series) as u64;
        let channels: Vec<String> = self.redis.pubsub_channels(format!("*{}*", self.prefix)).await.expect("PUBSUB CHANNELS");
        let patterns: usize = self.redis.pubsub_numpat().await.expect("PUBSUB NUMPAT");
        Footprint {
            sockets: count("sse_gateway_sockets_open"),
            streams: count("sse_gateway_connections_open"),
            tasks: count("sse_gateway_runtime_tasks_alive"),
            upstream: count("sse_gateway_upstream_subscriptions"),
            redis_channels: channels.len() + patterns,
        }
    }

    pub(super) async fn resident_bytes(&self) -> u64 {
        let m = self.node.metrics(&self.client).await;
        m.value("sse_gateway_resident_memory_bytes") as u64
    }

    /// The footprint once the node holds exactly `sockets` and `streams` and nothing else is
    /// still settling (two reads in a row agree): a socket the client closed, or a connection
    /// just opened, is counted by the node a moment later. Fails after 30 s with what it saw.
    pub(super) async fn footprint_with(&self, sockets: u64, streams: u64) -> Footprint {
        let mut last = self.footprint().await;
        eventually(format!("{sockets} sockets and {streams} streams, settled"), Duration::from_secs(30), async || {
            // Settled: the same over this gap.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.footprint().await;
            let settled = now == last && (now.sockets, now.streams) == (sockets, streams);
            last = now;
            if settled { Ok(now) } else { Err(format!("{now:?}")) }
        })
        .await
    }

    /// Waits until the footprint is `baseline` again; fails with both after 30 s.
    pub(super) async fn settles_to(&self, baseline: Footprint, after: &str) -> Duration {
        let start = Instant::now();
        eventually(format!("the baseline {baseline:?} after {after}"), Duration::from_secs(30), async || {
            let now = self.footprint().await;
            if now == baseline { Ok(()) } else { Err(format!("{now:?}")) }
        })
        .await;
        start.elapsed()
    }

    pub(super) fn log(&self) -> String {
        read_log(&self.node.log)
    }
}

/// Sends `head` and reads until the stream's first frame: the stream is open.
pub(super) async fn open_stream(source: IpAddr, to: SocketAddr, head: &str) -> std::io::Result<TcpStream> {
    let mut s = connect_from(source, to).await?;
    s.write_all(head.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(6).any(|w| w == b"retry:") {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(s)
}

/// An HS256 token for the suite's audience.
pub(super) fn token_for(subscribe: &[&str], publish: &[&str]) -> String {
    let mut c = claims(subscribe, publish);
    c.aud = Some(json!(AUDIENCE));
    sign(&c)
}

pub(super) fn sign(claims: &impl serde::Serialize) -> String {
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign")
}

/// A stream followed throughout, with events published on it every 20 ms: whatever the
/// hostile clients do, it gets every one, in order.
pub(super) struct Bystander {
    pub(super) stream: SseClient,
    pub(super) stop: CancellationToken,
    pub(super) publisher: JoinHandle<usize>,
}

impl Bystander {
    pub(super) async fn start(t: &Target) -> Self {
        // Its own client: the target's has a total timeout, which would end a stream.
        let streaming = reqwest::Client::builder().no_proxy().build().expect("client");
        let resp =
            streaming.get(t.url("/events?topic=bystander")).bearer_auth(token_for(&["bystander"], &[])).send().await.expect("stream");
        assert_eq!(resp.status(), 200);
        let stream = SseClient::new(resp);
        let stop = CancellationToken::new();
        // One kept-alive connection for all its publishes: a constant part of the footprint, open
        // once the first publish is answered.
        let (client, url, token, stop_publishing) = (streaming.clone(), t.url("/publish"), token_for(&[], &["bystander"]), stop.clone());
        let body = json!({ "topic": "bystander", "data": "0" });
        let r = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("bystander publish");
        assert_eq!(r.status(), 200, "bystander publish: {:?}", r.text().await);
        let publisher = tokio::spawn(async move {
            let mut sent = 1;
            while !stop_publishing.is_cancelled() {
                let body = json!({ "topic": "bystander", "data": sent.to_string() });
                let r = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("bystander publish");
                assert_eq!(r.status(), 200, "bystander publish: {:?}", r.text().await);
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        });
        Self { stream, stop, publisher }
    }

    /// Stops publishing; the stream must have got every event, in order, once.
    pub(super) async fn got_everything(mut self) -> usize {
        self.stop.cancel();
        let sent = self.publisher.await.expect("publisher");
        let got: Vec<String> = self.stream.events(sent).await.into_iter().map(|e| e.data).collect();
        let expected: Vec<String> = (0..sent).map(|i| i.to_string()).collect();
        assert_eq!(got, expected, "the bystander misses or repeats events");
        self.stream.expect_no_event(Duration::from_millis(100)).await;
        sent
    }
}

/// A raw socket from `source` (several loopback sources spread the flood's ports).
pub(super) async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// Writes `bytes` and reads until the server closes or `within` passes: (what it answered,
/// whether it closed).
pub(super) async fn exchange(stream: &mut TcpStream, bytes: &[u8], within: Duration) -> (String, bool) {
    // The server may answer and close before it read everything: a failed write is no failure.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// Status and JSON body of a response; the body must be a short JSON error.
pub(super) async fn json_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: the error body is not JSON ({e}): {text:?}"));
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty() && m.len() < 300), "a short message: {body}");
    (status, body["error"].as_str().expect("an error code").to_owned())
}
