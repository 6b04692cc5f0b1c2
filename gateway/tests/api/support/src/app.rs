//! Spawning the app and talking to it. Every await that waits on the server has a timeout so a
//! broken stream fails the test instead of hanging it.

use std::net::SocketAddr;
use std::time::Duration;

use gateway::AppState;
use gateway::{App, Config};
use serde_json::{Value, json};
use shared::sse::ParsedEvent;
use shared::{Claims, TopicPattern};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::sse::SseClient;
pub use crate::wait::{WAIT, eventually};

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener, when `metrics_addr` is configured.
    pub metrics_addr: Option<SocketAddr>,
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::for_tests(SECRET);
    configure(&mut config);
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let state = app.state().clone();
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let handle = tokio::spawn(app.run(async move { signal.cancelled().await }));
    TestApp {
        addr,
        metrics_addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
        state,
        stop,
        handle,
    }
}

pub fn now() -> u64 {
    gateway::now_secs()
}

pub fn patterns(list: &[&str]) -> Vec<TopicPattern> {
    list.iter().map(|p| TopicPattern::parse(p).expect("pattern")).collect()
}

pub fn claims(subscribe: &[&str], publish: &[&str]) -> Claims {
    Claims {
        sub: Some("tester".into()),
        exp: now() + 3600,
        subscribe: patterns(subscribe),
        publish: patterns(publish),
        ..Claims::default()
    }
}

pub fn token(subscribe: &[&str], publish: &[&str]) -> String {
    gateway::mint(SECRET.as_bytes(), &claims(subscribe, publish)).expect("mint")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST /publish with a token that may publish anywhere; returns the response.
    pub async fn publish_raw(&self, body: Value) -> reqwest::Response {
        self.client.post(self.url("/publish")).bearer_auth(token(&[], &["*"])).json(&body).send().await.expect("publish request")
    }

    /// Publishes one event and returns its id.
    pub async fn publish(&self, topic: &str, data: &str) -> String {
        self.publish_event(json!({ "topic": topic, "data": data })).await
    }

    pub async fn publish_event(&self, body: Value) -> String {
        let r = self.publish_raw(body).await;
        assert_eq!(r.status(), 200, "publish failed: {:?}", r.text().await);
        let v: Value = r.json().await.expect("json");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Opens a stream with an all-topics token in the Authorization header.
    pub async fn subscribe(&self, topics: &[&str], last_event_id: Option<&str>) -> SseClient {
        let mut req = self.client.get(self.events_url(topics)).bearer_auth(token(&["*"], &[]));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(WAIT, req.send())
            .await
            .unwrap_or_else(|_| panic!("waited {WAIT:?} for the stream's response head"))
            .expect("connect");
        assert_eq!(resp.status(), 200, "subscribe failed: {:?}", resp.text().await);
        SseClient::new(resp)
    }

    pub fn events_url(&self, topics: &[&str]) -> String {
        let q: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
        self.url(&format!("/events?{}", q.join("&")))
    }

    /// Triggers shutdown as SIGTERM would, and waits for `run` to return.
    pub async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.handle).await.unwrap_or_else(|_| panic!("waited {WAIT:?} for the app to shut down")).expect("join");
    }

    pub fn counters(&self) -> &gateway::counters::Counters {
        &self.state.counters
    }

    /// The `/metrics` text, from the admin address if there is one.
    pub async fn metrics(&self) -> Metrics {
        let url = match self.metrics_addr {
            Some(a) => format!("http://{a}/metrics"),
            None => self.url("/metrics"),
        };
        let r = self.client.get(url).send().await.expect("metrics request");
        assert_eq!(r.status(), 200);
        let content_type = r.headers()[reqwest::header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        Metrics(r.text().await.expect("metrics body"))
    }
}

/// A scraped `/metrics` page.
#[derive(Debug)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the series written exactly `series` (name and labels), or 0 if absent.
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.split(' ').next().and_then(|v| v.parse().ok()).expect("a number"))
    }
}

/// Base64url without padding, as JWTs use it.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The data of each event.
pub fn data(events: &[ParsedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}
