//! The subscriber side of a run: N SSE streams, ramped in at a given rate, spread over the target
//! nodes and the local source addresses, each parsed with the `shared` parser and checked event
//! by event (sequence, duplicates, order, latency).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use shared::sse::{Item, Parser};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::payload;
use crate::report::{Report, histogram};
use crate::tracker::Tracker;

/// One stream to open.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub topic: String,
    /// Index of the target to connect to first (reconnections move on to the next ones).
    pub target: usize,
    pub token: String,
    /// Stops reading after its first event (a slow consumer).
    pub stall: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<String>,
    pub source_ips: Vec<IpAddr>,
    pub streams: Vec<StreamSpec>,
    /// New streams per second.
    pub ramp: f64,
    /// Reopen a stream the gateway ended or that failed, with its `Last-Event-ID`, on the next target.
    pub reconnect: bool,
    /// After the publisher is done: how long to wait for the last deliveries.
    pub drain: Duration,
}

/// Counters all streams share, for the progress line and the report.
#[derive(Debug, Default)]
pub struct Live {
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    pub reconnects: AtomicU64,
    pub lost_signals: AtomicU64,
}

/// Latency histograms in shards, so that thousands of streams do not queue on one lock.
struct Histograms {
    latency: Vec<Mutex<Histogram<u64>>>,
    connect: Mutex<Histogram<u64>>,
    resume: Mutex<Histogram<u64>>,
}

impl Histograms {
    fn new() -> Self {
        Self {
            latency: (0..64).map(|_| Mutex::new(histogram())).collect(),
            connect: Mutex::new(histogram()),
            resume: Mutex::new(histogram()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    record_micros(h, d.as_micros() as u64);
}

/// Records microseconds, clamped into the histogram's range (1 µs to 10 min).
fn record_micros(h: &Mutex<Histogram<u64>>, us: u64) {
    let _ = lock(h).record(us.clamp(1, 600_000_000));
}

/// What one stream ends with.
struct Outcome {
    topic: String,
    tracker: Tracker,
}

/// Opens every stream of `plan`, reports `ready` once all are open (or failed), then reads until
/// `done` brings the number of events published per topic and every stream has them all, or
/// `plan.drain` passes after that.
pub async fn run(
    plan: Plan,
    live: Arc<Live>,
    ready: oneshot::Sender<()>,
    done: oneshot::Receiver<HashMap<String, u64>>,
) -> anyhow::Result<Report> {
    let clients: Vec<reqwest::Client> = plan
        .source_ips
        .iter()
        .map(|ip| {
            reqwest::Client::builder()
                .local_address(*ip)
                .http1_only()
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let histograms = Arc::new(Histograms::new());
    let stop = CancellationToken::new();
    let targets = Arc::new(plan.targets.clone());
    let gap = Duration::from_secs_f64(1.0 / plan.ramp.max(1.0));
    let mut next = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(plan.streams.len());
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for (i, spec) in plan.streams.iter().cloned().enumerate() {
        tokio::time::sleep_until(next).await;
        next += gap;
        let stream = Stream {
            client: clients[i % clients.len()].clone(),
            targets: Arc::clone(&targets),
            spec,
            reconnect: plan.reconnect,
            live: Arc::clone(&live),
            histograms: Arc::clone(&histograms),
            shard: i % 64,
            stop: stop.clone(),
            opened: opened_tx.clone(),
        };
        tasks.push(tokio::spawn(stream.run()));
    }
    drop(opened_tx);
    // Every stream reports once: open, or failed for good.
    for _ in 0..plan.streams.len() {
        if opened_rx.recv().await.is_none() {
            break;
        }
    }
    let _ = ready.send(());

    let expected = done.await.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + plan.drain;
    let want: u64 = plan.streams.iter().filter(|s| !s.stall).map(|s| expected.get(&s.topic).copied().unwrap_or(0)).sum();
    // Wait until the streams that read have everything (stalled ones add at most one event
    // each), or the drain time is over.
    while live.received.load(Ordering::Relaxed) < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut report = Report { connections_attempted: plan.streams.len() as u64, ..Report::default() };
    for (task, spec) in tasks.into_iter().zip(&plan.streams) {
        let outcome = task.await?;
        if spec.stall {
            // A slow consumer is expected to be cut; its events are not counted.
            continue;
        }
        let exp = expected.get(&outcome.topic).copied().unwrap_or(0);
        report.deliveries_expected += exp;
        report.deliveries_received += outcome.tracker.received;
        report.lost += outcome.tracker.lost(exp);
        report.duplicated += outcome.tracker.duplicates;
        report.out_of_order += outcome.tracker.out_of_order;
    }
    report.connections_established = live.established.load(Ordering::Relaxed);
    report.connections_failed = live.failed.load(Ordering::Relaxed);
    report.reconnects = live.reconnects.load(Ordering::Relaxed);
    report.lost_signals = live.lost_signals.load(Ordering::Relaxed);
    let mut latency = histogram();
    for shard in &histograms.latency {
        latency.add(&*lock(shard))?;
    }
    report.set_histograms(&latency, &lock(&histograms.connect), &lock(&histograms.resume));
    Ok(report)
}

struct Stream {
    client: reqwest::Client,
    targets: Arc<Vec<String>>,
    spec: StreamSpec,
    reconnect: bool,
    live: Arc<Live>,
    histograms: Arc<Histograms>,
    shard: usize,
    stop: CancellationToken,
    opened: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Stream {
    async fn run(self) -> Outcome {
        let mut tracker = Tracker::default();
        let mut parser = Parser::new();
        let mut first_open = true;
        let mut attempt = 0usize;
        // When the previous stream was lost (for the resume time).
        let mut lost_at: Option<Instant> = None;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let target = &self.targets[(self.spec.target + attempt) % self.targets.len()];
            let url = format!("{target}/events?topic={}", self.spec.topic);
            let mut req = self.client.get(&url).bearer_auth(&self.spec.token);
            if !parser.last_event_id().is_empty() {
                req = req.header("Last-Event-ID", parser.last_event_id());
            }
            let started = Instant::now();
            let response = tokio::select! {
                _ = self.stop.cancelled() => break,
                r = req.send() => r,
            };
            let response = match response {
                Ok(r) if r.status() == 200 => r,
                other => {
                    if first_open && !self.reconnect {
                        self.live.failed.fetch_add(1, Ordering::Relaxed);
                        let _ = self.opened.send(());
                        tracing_note(&url, &other);
                        break;
                    }
                    attempt += 1;
                    if first_open && attempt > 20 {
                        self.live.failed.fetch_add(1, Ordering::Relaxed);
                        let _ = self.opened.send(());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if first_open {
                first_open = false;
                record(&self.histograms.connect, started.elapsed());
                self.live.established.fetch_add(1, Ordering::Relaxed);
                let _ = self.opened.send(());
            } else if let Some(at) = lost_at.take() {
                self.live.reconnects.fetch_add(1, Ordering::Relaxed);
                record(&self.histograms.resume, at.elapsed());
            }
            let mut body = response.bytes_stream();
            loop {
                let chunk = tokio::select! {
                    _ = self.stop.cancelled() => None,
                    c = body.next() => c,
                };
                let Some(Ok(chunk)) = chunk else { break };
                for item in parser.feed(&chunk) {
                    let Item::Event(e) = item else { continue };
                    if e.event == "gateway.lost" {
                        self.live.lost_signals.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let Some((seq, ts)) = payload::parse(&e.data) else { continue };
                    let now = payload::now_micros();
                    record_micros(&self.histograms.latency[self.shard], now.saturating_sub(ts));
                    tracker.record(seq);
                    self.live.received.fetch_add(1, Ordering::Relaxed);
                }
                if self.spec.stall && tracker.received > 0 {
                    // Hold the stream without reading until the run ends (or the gateway cuts it).
                    self.stop.cancelled().await;
                    break;
                }
            }
            if self.stop.is_cancelled() || !self.reconnect || self.spec.stall {
                break;
            }
            lost_at = Some(Instant::now());
            attempt += 1;
        }
        if first_open {
            // Never opened and never reported (stopped first).
            let _ = self.opened.send(());
        }
        Outcome { topic: self.spec.topic, tracker }
    }
}

/// Says why a stream could not open, for the first few only.
fn tracing_note(url: &str, r: &Result<reqwest::Response, reqwest::Error>) {
    static SAID: AtomicU64 = AtomicU64::new(0);
    if SAID.fetch_add(1, Ordering::Relaxed) >= 5 {
        return;
    }
    match r {
        Ok(resp) => eprintln!("stream {url} refused: {}", resp.status()),
        Err(e) => eprintln!("stream {url} failed: {e}"),
    }
}
