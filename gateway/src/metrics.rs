//! `GET /metrics`: the node's counters in the Prometheus (OpenMetrics) text format.
//!
//! The hot-path counters are plain atomics in [`Counters`]; a collector reads them at scrape time, so
//! counting costs the request path nothing beyond the atomic add.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::bus::fanout::Fanout;
use crate::counters::Counters;

/// The content type of [`Metrics::render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(counters: Arc<Counters>, fanout: Arc<Fanout>) -> Self {
        let mut registry = Registry::with_prefix("sse_gateway");
        registry.register("auth_failures", "Refused tokens, by reason", counters.auth_failures.clone());
        registry.register("refreshes", "Fresh tokens presented for held streams, by outcome", counters.refreshes.clone());
        registry.register("tickets", "Stream tickets: issued, redeemed, full, or the reason one was refused", counters.tickets.clone());
        registry.register("jwks_fetches", "JWKS fetches, by result (ok, error)", counters.jwks_fetches.clone());
        registry.register_with_unit(
            "redis_command_duration",
            "Redis round trips, by operation",
            Unit::Seconds,
            counters.redis_latency.clone(),
        );
        registry.register("redis_errors", "Failed Redis round trips, by operation", counters.redis_errors.clone());
        registry.register("redis_malformed", "Redis replies and stream entries this node could not read", counters.redis_malformed.clone());
        registry.register_with_unit(
            "publish_to_deliver",
            "From an event's id time to this node handing it to its connections",
            Unit::Seconds,
            counters.publish_to_deliver.clone(),
        );
        registry.register_collector(Box::new(CounterCollector { counters, fanout }));
        Self { registry }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The atomics of [`Counters`] and the fan-out's table size, read at scrape time.
#[derive(Debug)]
struct CounterCollector {
    counters: Arc<Counters>,
    fanout: Arc<Fanout>,
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter with one label, one series per `(value, count)`.
fn labelled(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    series: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
    for (value, count) in series {
        let c = ConstCounter::new(*count);
        c.encode(metric.encode_family(&[(label, *value)])?)?;
    }
    Ok(())
}

impl Collector for CounterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &*self.counters;
        let get = |c: &AtomicU64| Counters::get(c);
        gauge(&mut encoder, "sockets_open", "Open client sockets, whatever they carry", get(&s.sockets_open))?;
        gauge(&mut encoder, "connections_open", "Open event streams", get(&s.streams_open))?;
        gauge(&mut encoder, "streams_lean", "Open event streams held on the lean path", get(&s.lean_streams))?;
        counter(&mut encoder, "connections_opened", "Event streams opened", get(&s.streams_total))?;
        let (slow, timeout, expired, shutdown, limit, revoked) = (
            get(&s.slow_disconnects),
            get(&s.write_timeouts),
            get(&s.token_expired_disconnects),
            get(&s.shutdown_disconnects),
            get(&s.limit_refusals),
            get(&s.revoked_disconnects),
        );
        // Every closed stream has one reason; the ones the gateway did not cause are the rest.
        let closed = get(&s.streams_total).saturating_sub(get(&s.streams_open));
        let client_gone = closed.saturating_sub(slow + timeout + expired + shutdown + revoked);
        labelled(
            &mut encoder,
            "connections_closed",
            "Event streams closed (or, for limit, refused), by reason",
            "reason",
            &[
                ("client_gone", client_gone),
                ("slow", slow),
                ("write_timeout", timeout),
                ("token_expired", expired),
                ("shutdown", shutdown),
                ("revoked", revoked),
                ("limit", limit),
            ],
        )?;
        labelled(
            &mut encoder,
            "events_published",
            "Events that entered through this node, by path (xadd and publish: counted by every node that follows the topic)",
            "path",
            &[("http", get(&s.events_published)), ("xadd", get(&s.events_xadd)), ("publish", get(&s.events_live))],
        )?;
        counter(&mut encoder, "events_delivered", "Events sent to client streams, once per stream", get(&s.events_delivered))?;
        counter(&mut encoder, "bytes_written", "Bytes written to client sockets", get(&s.bytes_written))?;
        counter(&mut encoder, "resumptions", "Streams opened with a Last-Event-ID", get(&s.resumptions))?;
        counter(&mut encoder, "lost_signals", "gateway.lost events sent", get(&s.lost_signals))?;
        gauge(&mut encoder, "jwks_keys", "Usable keys in the JWKS cache", get(&s.jwks_keys))?;
        gauge(
            &mut encoder,
            "jwks_failing",
            "JWKS URLs whose last fetch failed or that never answered (their last good keys stay in use)",
            get(&s.jwks_failing),
        )?;
        gauge(
            &mut encoder,
            "upstream_subscriptions",
            "Topics this node follows (one upstream subscription each)",
            self.fanout.topic_count() as u64,
        )?;
        // Process-level figures that a leak would show in: tasks (one per socket and per stream
        // at least) and resident memory.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            gauge(&mut encoder, "runtime_tasks_alive", "Tasks alive in the node's runtime", runtime.metrics().num_alive_tasks() as u64)?;
        }
        if let Some(bytes) = resident_memory_bytes() {
            gauge(&mut encoder, "resident_memory_bytes", "Resident memory of the gateway process (Linux)", bytes)?;
        }
        Ok(())
    }
}

/// `VmRSS` of `/proc/self/status`; `None` where there is no procfs.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
