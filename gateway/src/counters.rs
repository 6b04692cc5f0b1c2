//! Counters the gateway keeps about itself. Plain atomics so that the hot path pays one relaxed
//! add; they are what tests assert on and what `metrics.rs` exports. Labelled series and
//! histograms, on paths that are not per frame, use prometheus-client's types directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// One label: `[(name, value)]`.
pub type Label = [(&'static str, &'static str); 1];
type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Counters {
    /// Client sockets open, whatever they carry (event streams, publishes, sockets that never
    /// sent a request yet): what a slowloris or a connection flood would pile up.
    pub sockets_open: AtomicU64,
    pub streams_open: AtomicU64,
    /// Event streams held on the lean path (`held/`): written straight to their sockets, without
    /// hyper's per-connection buffers. The rest of `streams_open` are served through hyper
    /// (HTTP/2, or a keep-alive connection whose first request was not a stream).
    pub lean_streams: AtomicU64,
    pub streams_total: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub write_timeouts: AtomicU64,
    pub token_expired_disconnects: AtomicU64,
    pub shutdown_disconnects: AtomicU64,
    /// Streams closed by a revocation (`POST /admin/disconnect`).
    pub revoked_disconnects: AtomicU64,
    /// Streams refused because a stream limit was reached.
    pub limit_refusals: AtomicU64,
    /// Events accepted by `POST /publish` on this node.
    pub events_published: AtomicU64,
    /// Stream entries this node read that no gateway published (a raw `XADD`).
    pub events_xadd: AtomicU64,
    /// Live-only messages this node received (`PUBLISH`/`SPUBLISH`).
    pub events_live: AtomicU64,
    /// Events queued to client streams (live, replayed or resumed), once per stream.
    pub events_delivered: AtomicU64,
    pub bytes_written: AtomicU64,
    pub resumptions: AtomicU64,
    pub lost_signals: AtomicU64,
    /// Usable keys in the JWKS cache, all URLs together.
    pub jwks_keys: AtomicU64,
    /// JWKS URLs whose last fetch failed, or that never answered: the keys in use may be stale.
    pub jwks_failing: AtomicU64,
    /// JWKS fetches, by result (`ok`, `error`).
    pub jwks_fetches: Family<Label, Counter>,
    /// Refused tokens, by reason (`AuthError::code`).
    pub auth_failures: Family<Label, Counter>,
    /// Fresh tokens presented for held streams, by outcome (`refreshed`, or why not).
    pub refreshes: Family<Label, Counter>,
    /// Stream tickets by outcome: `issued`, `redeemed`, `full` (not issued: the embedded bus's
    /// table is full), or the `AuthError::code` of a refused one (`ticket_used`, …).
    pub tickets: Family<Label, Counter>,
    /// Redis round trips by operation, and those that failed.
    pub redis_latency: HistogramFamily,
    pub redis_errors: Family<Label, Counter>,
    /// What Redis sent that this node could not read, by kind: `entry` (a stream entry, skipped),
    /// `reply` (a reply or a key of another type: its topic is set aside for a while).
    pub redis_malformed: Family<Label, Counter>,
    /// From an event's id time (the clock of whoever assigned it) to this node handing it to its
    /// streams.
    pub publish_to_deliver: Histogram,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            sockets_open: AtomicU64::default(),
            streams_open: AtomicU64::default(),
            lean_streams: AtomicU64::default(),
            streams_total: AtomicU64::default(),
            slow_disconnects: AtomicU64::default(),
            write_timeouts: AtomicU64::default(),
            token_expired_disconnects: AtomicU64::default(),
            shutdown_disconnects: AtomicU64::default(),
            revoked_disconnects: AtomicU64::default(),
            limit_refusals: AtomicU64::default(),
            events_published: AtomicU64::default(),
            events_xadd: AtomicU64::default(),
            events_live: AtomicU64::default(),
            events_delivered: AtomicU64::default(),
            bytes_written: AtomicU64::default(),
            resumptions: AtomicU64::default(),
            lost_signals: AtomicU64::default(),
            jwks_keys: AtomicU64::default(),
            jwks_failing: AtomicU64::default(),
            jwks_fetches: Family::default(),
            auth_failures: Family::default(),
            refreshes: Family::default(),
            tickets: Family::default(),
            redis_latency: Family::new_with_constructor(latency_histogram),
            redis_errors: Family::default(),
            redis_malformed: Family::default(),
            publish_to_deliver: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        }
    }
}

impl Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Runs one Redis round trip of `op`, recording its latency and whether it failed.
    #[expect(clippy::disallowed_methods, reason = "a round trip to a real Redis server takes real time, which the histogram reports")]
    pub async fn redis<T, E>(&self, op: &'static str, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let start = Instant::now();
        let result = call.await;
        self.redis_latency.get_or_create(&[("op", op)]).observe(start.elapsed().as_secs_f64());
        if result.is_err() {
            self.redis_errors.get_or_create(&[("op", op)]).inc();
        }
        result
    }
}
