//! The subscriber side of a run: N SSE streams, ramped in at a given rate, spread over the target
//! nodes and the local source addresses, each read and checked event by event (sequence,
//! duplicates, order, latency) by `stream.rs`; here, the plan, the counters they share and the
//! report they make together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::report::{Report, histogram};
use crate::stream::Stream;
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
pub(crate) struct Histograms {
    pub latency: Vec<Mutex<Histogram<u64>>>,
    pub connect: Mutex<Histogram<u64>>,
    pub resume: Mutex<Histogram<u64>>,
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a duration, clamped into the histogram's range (1 µs to 10 min).
pub(crate) fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    let _ = lock(h).record((d.as_micros() as u64).clamp(1, 600_000_000));
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
            source: plan.source_ips[i % clients.len()],
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
