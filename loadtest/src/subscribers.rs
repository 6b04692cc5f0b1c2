//! The subscriber side of a run: N SSE streams, ramped in at a given rate, spread over the target
//! nodes and the local source addresses, each parsed with the `shared` parser and checked event
//! by event (sequence, duplicates, order, latency).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use shared::sse::{Item, Parser};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::payload;
use crate::report::{Report, histogram};
use crate::tracker::Tracker;

/// One stream to open.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub topic: String,
    /// The request's path and query (`/events?topic=…`, or the Mercure hub's with selectors).
    pub path: String,
    /// A Mercure stream: each event's id must be the update id the publisher gave it.
    pub mercure: bool,
    /// Index of the target to connect to first (reconnections move on to the next ones).
    pub target: usize,
    pub token: String,
    /// Stops reading after its first event (a slow consumer).
    pub stall: bool,
    /// Stops reading while `Live::pause` is on (the chaos run's stalled client). Its streams use
    /// a socket with a small receive buffer and segment size, so that the gateway's send buffer
    /// stays small and a stop in reading shows there within seconds, as it would over a WAN.
    pub pausable: bool,
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
    /// A stream that keeps its connection but receives nothing for longer than this, and then
    /// receives again, counts as interrupted (`None`: not watched).
    pub silence: Option<Duration>,
}

/// Counters all streams share, for the progress line and the report.
#[derive(Debug, Default)]
pub struct Live {
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    /// Of `received`, what the streams that keep reading got: what the end of a run waits for
    /// (a stalled stream's first chunk may hold several events, which must not count for them).
    pub received_by_readers: AtomicU64,
    pub reconnects: AtomicU64,
    pub lost_signals: AtomicU64,
    /// The chaos run's current fault (0 before the first); interruptions are put down to it.
    pub phase: AtomicUsize,
    /// Every interruption of a stream (reconnecting runs only).
    pub interruptions: Mutex<Vec<Interruption>>,
    /// On: the `pausable` streams stop reading.
    pub pause: watch::Sender<bool>,
    /// How many streams are `pausable`.
    pub pausable: u64,
}

/// One stream's interruption: from losing its stream to having it back and to receiving again.
#[derive(Debug, Clone)]
pub struct Interruption {
    /// `Live::phase` when the stream was lost (or, for a silence, when it ended).
    pub phase: usize,
    pub stream: usize,
    /// The connection ended (else it stayed open and went silent longer than `Plan::silence`).
    pub broke: bool,
    /// Lost → a new stream opened (`None`: never reopened before the run ended, or a silence).
    pub reopened: Option<Duration>,
    /// Lost (or the last event before a silence) → the first event after the gap received
    /// (`None`: none came before the run ended).
    pub caught_up: Option<Duration>,
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
pub struct Outcome {
    pub topic: String,
    pub tracker: Tracker,
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
    let (expected_tx, expected_rx) = oneshot::channel();
    let streams = plan.streams.clone();
    let finishing = async move {
        let expected = done.await.unwrap_or_default();
        let _ = expected_tx.send(expected.clone());
        expected
    };
    let (finished, expected) = tokio::join!(run_streams(plan, live, ready, expected_rx), finishing);
    let (mut report, outcomes) = finished?;
    for (outcome, spec) in outcomes.into_iter().zip(&streams) {
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
    Ok(report)
}

/// `run` without the accounting: the report has the connection figures and latencies, and every
/// stream's outcome comes back (in `plan.streams` order) for the caller to judge. `done` brings
/// how many events each topic's streams are to receive.
pub async fn run_streams(
    plan: Plan,
    live: Arc<Live>,
    ready: oneshot::Sender<()>,
    done: oneshot::Receiver<HashMap<String, u64>>,
) -> anyhow::Result<(Report, Vec<Outcome>)> {
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
            index: i,
            reconnect: plan.reconnect,
            silence: plan.silence,
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
    // Wait until the streams that read have everything, or the drain time is over.
    while live.received_by_readers.load(Ordering::Relaxed) < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut report = Report { connections_attempted: plan.streams.len() as u64, ..Report::default() };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
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
    Ok((report, outcomes))
}

struct Stream {
    client: reqwest::Client,
    targets: Arc<Vec<String>>,
    spec: StreamSpec,
    /// Position in `Plan::streams`.
    index: usize,
    reconnect: bool,
    silence: Option<Duration>,
    live: Arc<Live>,
    histograms: Arc<Histograms>,
    shard: usize,
    stop: CancellationToken,
    opened: tokio::sync::mpsc::UnboundedSender<()>,
}

/// An open stream's body.
pub type Body = futures::stream::BoxStream<'static, anyhow::Result<Bytes>>;

/// A stream lost and not yet caught up: when, in which phase, and when it was reopened.
struct Gap {
    phase: usize,
    at: Instant,
    reopened: Option<Duration>,
}

impl Stream {
    async fn run(self) -> Outcome {
        let mut tracker = Tracker::default();
        let mut parser = Parser::new();
        let mut first_open = true;
        let mut attempt = 0usize;
        let mut gap: Option<Gap> = None;
        let mut last_event: Option<Instant> = None;
        let mut pause = self.live.pause.subscribe();
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let target = &self.targets[(self.spec.target + attempt) % self.targets.len()];
            let started = Instant::now();
            let opened = tokio::select! {
                _ = self.stop.cancelled() => break,
                r = self.open(target, parser.last_event_id()) => r,
            };
            let mut body = match opened {
                Ok(body) => body,
                Err(e) => {
                    if first_open && !self.reconnect {
                        self.live.failed.fetch_add(1, Ordering::Relaxed);
                        let _ = self.opened.send(());
                        note_failure(target, &e);
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
            // A stream opened while paused starts stalled; an older one is reopened first (below).
            let mut fresh = *pause.borrow();
            let mut reopen = false;
            if first_open {
                first_open = false;
                record(&self.histograms.connect, started.elapsed());
                self.live.established.fetch_add(1, Ordering::Relaxed);
                let _ = self.opened.send(());
            } else if let Some(g) = gap.as_mut()
                && g.reopened.is_none()
            {
                self.live.reconnects.fetch_add(1, Ordering::Relaxed);
                let took = g.at.elapsed();
                record(&self.histograms.resume, took);
                g.reopened = Some(took);
            }
            loop {
                if self.spec.pausable && *pause.borrow_and_update() {
                    if !fresh {
                        // The stall starts on a new connection: the gateway's send buffer grew
                        // with what this one carried, and would hold minutes of events.
                        reopen = true;
                        break;
                    }
                    // The stalled client: no reading until the pause is over.
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = pause.wait_for(|on| !on) => {}
                    }
                    // Carries data from now on: a later stall reopens it first.
                    fresh = false;
                }
                let chunk = tokio::select! {
                    _ = self.stop.cancelled() => None,
                    c = body.next() => c,
                    _ = pause.changed(), if self.spec.pausable => continue,
                };
                let Some(Ok(chunk)) = chunk else { break };
                for item in parser.feed(&chunk) {
                    let Item::Event(e) = item else { continue };
                    if e.event == "gateway.lost" {
                        self.live.lost_signals.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let Some((seq, ts)) = payload::parse(&e.data) else { continue };
                    if self.spec.mercure && !crate::mercure::id_matches(&e.last_event_id, seq) {
                        // Not counted: the update shows as lost.
                        continue;
                    }
                    let now = payload::now_micros();
                    record_micros(&self.histograms.latency[self.shard], now.saturating_sub(ts));
                    tracker.record(seq);
                    self.live.received.fetch_add(1, Ordering::Relaxed);
                    if !self.spec.stall {
                        self.live.received_by_readers.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(g) = gap.take() {
                        let took = g.at.elapsed();
                        self.interrupted(g, true, Some(took));
                    } else if let (Some(limit), Some(at)) = (self.silence, last_event)
                        && at.elapsed() > limit
                    {
                        let phase = self.live.phase.load(Ordering::Relaxed);
                        self.interrupted(Gap { phase, at, reopened: None }, false, Some(at.elapsed()));
                    }
                    last_event = Some(Instant::now());
                }
                if self.spec.stall && tracker.received > 0 {
                    // Hold the stream without reading until the run ends (or the gateway cuts it).
                    self.stop.cancelled().await;
                    break;
                }
            }
            // An event cut off with its stream is discarded (as a browser does): its bytes must
            // not run into the next stream's, which replays it whole.
            parser.finish();
            if self.stop.is_cancelled() || !self.reconnect || self.spec.stall {
                break;
            }
            if reopen {
                // Chosen, not an interruption: same node, at once.
                continue;
            }
            if gap.is_none() {
                gap = Some(Gap { phase: self.live.phase.load(Ordering::Relaxed), at: Instant::now(), reopened: None });
            }
            attempt += 1;
        }
        if first_open {
            // Never opened and never reported (stopped first).
            let _ = self.opened.send(());
        }
        if let Some(g) = gap {
            self.interrupted(g, true, None);
        }
        Outcome { topic: self.spec.topic, tracker }
    }

    fn interrupted(&self, g: Gap, broke: bool, caught_up: Option<Duration>) {
        let record = Interruption { phase: g.phase, stream: self.index, broke, reopened: g.reopened, caught_up };
        lock(&self.live.interruptions).push(record);
    }

    /// Opens the stream on `target`, resuming after `last_id` if it is not empty.
    async fn open(&self, target: &str, last_id: &str) -> anyhow::Result<Body> {
        let path = &self.spec.path;
        if self.spec.pausable {
            return crate::rawstream::open(target, path, &self.spec.token, last_id).await;
        }
        let mut req = self.client.get(format!("{target}{path}")).bearer_auth(&self.spec.token);
        if !last_id.is_empty() {
            req = req.header("Last-Event-ID", last_id);
        }
        let response = req.send().await?;
        if response.status() != 200 {
            anyhow::bail!("refused: {}", response.status());
        }
        Ok(response.bytes_stream().map(|c| c.map_err(anyhow::Error::from)).boxed())
    }
}

/// Says why a stream could not open, for the first few only.
fn note_failure(target: &str, e: &anyhow::Error) {
    static SAID: AtomicU64 = AtomicU64::new(0);
    if SAID.fetch_add(1, Ordering::Relaxed) >= 5 {
        return;
    }
    eprintln!("stream on {target} failed: {e:#}");
}
