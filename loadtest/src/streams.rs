//! What the subscriber side's streams are given and share: each stream's spec, the run's plan,
//! the live counters and latency histograms they all update, and what each ends with. Its own
//! module so that `subscribers.rs` (the run) and `stream.rs` (one stream) both build on it
//! without importing each other.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::watch;

use crate::report::histogram;
use crate::tracker::Tracker;

/// One stream to open.
#[derive(Debug, Clone)]
pub(crate) struct StreamSpec {
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
pub(crate) struct Plan {
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
pub(crate) struct Live {
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
pub(crate) struct Interruption {
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
    pub(crate) fn new() -> Self {
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
pub(crate) struct Outcome {
    pub topic: String,
    pub tracker: Tracker,
}
