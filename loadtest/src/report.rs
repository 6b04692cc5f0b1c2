//! The run's report: what was measured, as JSON (machine) and as a summary (human). Worker
//! processes each produce one; the parent merges them, histograms included.

use anyhow::Context;
use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};
use shared::event::LOST_EVENT;

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Gateway memory, from the process's RSS when it runs on this machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Memory {
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// (after - before) / connections established.
    pub per_connection_bytes: u64,
}

/// Gateway CPU time over the publish window (first publish to last), from `/proc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Cpu {
    /// User and system time of the gateway process(es).
    pub seconds: f64,
    /// `seconds` over the window's length: 1.0 is one core busy all along.
    pub cores: f64,
    /// `seconds` per delivery the window's events made (`deliveries_expected`), in microseconds.
    pub us_per_delivery: f64,
}

impl Cpu {
    pub(crate) fn new(seconds: f64, r: &Report) -> Self {
        Self {
            seconds,
            cores: if r.publish_seconds > 0.0 { seconds / r.publish_seconds } else { 0.0 },
            us_per_delivery: if r.deliveries_expected > 0 { seconds * 1e6 / r.deliveries_expected as f64 } else { 0.0 },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    pub scenario: String,
    pub connections_attempted: u64,
    pub connections_established: u64,
    pub connections_failed: u64,
    pub connect_latency_ms: Summary,
    pub events_published: u64,
    pub publish_errors: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Publish (the event's send time) to receipt, over every delivery.
    pub latency_ms: Summary,
    /// Deliveries received per second over the publishing window (first send to last receipt).
    pub delivered_per_sec: f64,
    pub publish_seconds: f64,
    /// Streams the gateway cut (or that failed) and that were reopened with `Last-Event-ID`.
    pub reconnects: u64,
    /// Per resumed stream: from losing its stream to receiving on a new one.
    pub resume_ms: Summary,
    /// `gateway.lost` signals received (history no longer held).
    pub lost_signals: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Raw histograms (HdrHistogram V2, base64), so that reports of several workers merge.
    #[serde(default)]
    pub raw: RawHistograms,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RawHistograms {
    pub latency: String,
    pub connect: String,
    pub resume: String,
}

pub(crate) fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(h, &mut bytes).expect("serializing to memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    if s.is_empty() {
        return Ok(histogram());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).context("histogram base64")?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).context("histogram bytes")
}

impl Report {
    /// Fills the summaries from the histograms and keeps the histograms for merging.
    pub(crate) fn set_histograms(&mut self, latency: &Histogram<u64>, connect: &Histogram<u64>, resume: &Histogram<u64>) {
        self.latency_ms = Summary::of(latency);
        self.connect_latency_ms = Summary::of(connect);
        self.resume_ms = Summary::of(resume);
        self.raw = RawHistograms { latency: encode(latency), connect: encode(connect), resume: encode(resume) };
    }

    /// Adds a worker's subscriber-side figures to this one.
    pub(crate) fn merge(&mut self, other: &Report) -> anyhow::Result<()> {
        let mut latency = decode(&self.raw.latency)?;
        let mut connect = decode(&self.raw.connect)?;
        let mut resume = decode(&self.raw.resume)?;
        latency.add(decode(&other.raw.latency)?).context("merging latency")?;
        connect.add(decode(&other.raw.connect)?).context("merging connect latency")?;
        resume.add(decode(&other.raw.resume)?).context("merging resume times")?;
        self.connections_attempted += other.connections_attempted;
        self.connections_established += other.connections_established;
        self.connections_failed += other.connections_failed;
        self.deliveries_expected += other.deliveries_expected;
        self.deliveries_received += other.deliveries_received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.reconnects += other.reconnects;
        self.lost_signals += other.lost_signals;
        self.notes.extend(other.notes.iter().cloned());
        self.set_histograms(&latency, &connect, &resume);
        Ok(())
    }

    /// Whether the run kept every stream event exactly once.
    pub(crate) fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }

    pub(crate) fn human(&self) -> String {
        let l = &self.latency_ms;
        let c = &self.connect_latency_ms;
        let mut out = format!(
            "scenario            {}\n\
             connections         {} established, {} failed (of {}); connect p50 {:.1} ms, p99 {:.1} ms\n\
             published           {} events in {:.2} s ({} errors)\n\
             deliveries          {} received of {} expected: {} lost, {} duplicated, {} out of order\n\
             latency (ms)        p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
             throughput          {:.0} deliveries/s\n",
            self.scenario,
            self.connections_established,
            self.connections_failed,
            self.connections_attempted,
            c.p50,
            c.p99,
            self.events_published,
            self.publish_seconds,
            self.publish_errors,
            self.deliveries_received,
            self.deliveries_expected,
            self.lost,
            self.duplicated,
            self.out_of_order,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            self.delivered_per_sec,
        );
        if self.reconnects > 0 {
            let r = &self.resume_ms;
            out.push_str(&format!(
                "resumed             {} streams; resume time p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} {LOST_EVENT}\n",
                self.reconnects, r.p50, r.p99, r.max, self.lost_signals
            ));
        }
        if let Some(m) = &self.memory {
            out.push_str(&format!(
                "gateway memory      RSS {:.1} MiB -> {:.1} MiB: {} bytes per connection\n",
                m.rss_before_bytes as f64 / 1048576.0,
                m.rss_after_bytes as f64 / 1048576.0,
                m.per_connection_bytes
            ));
        }
        if let Some(c) = &self.gateway_cpu {
            out.push_str(&format!(
                "gateway CPU         {:.2} s in the {:.1} s publish window ({:.0} % of a core): {:.2} µs per delivery\n",
                c.seconds,
                self.publish_seconds,
                c.cores * 100.0,
                c.us_per_delivery
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("note                {n}\n"));
        }
        out.push_str(if self.is_clean() {
            "result              OK: nothing lost or duplicated\n"
        } else {
            "result              FAILED: events lost or duplicated\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_workers_merge_counts_and_histograms() {
        let mut a = Report::default();
        let mut h = histogram();
        h.record(1000).expect("record");
        a.set_histograms(&h, &histogram(), &histogram());
        a.deliveries_received = 1;
        let mut b = Report::default();
        let mut h2 = histogram();
        h2.record(3000).expect("record");
        b.set_histograms(&h2, &histogram(), &histogram());
        b.deliveries_received = 1;
        b.lost = 2;
        a.merge(&b).expect("merge");
        assert_eq!(a.deliveries_received, 2);
        assert_eq!(a.latency_ms.count, 2);
        assert!((a.latency_ms.max - 3.0).abs() < 0.01);
        assert!(!a.is_clean());
        let json = serde_json::to_string(&a).expect("json");
        let back: Report = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.latency_ms, a.latency_ms);
    }
}
