//! The chaos run's report: per phase (the steady start, then each fault), what was published,
//! lost and duplicated (placed by each event's publish time) and how long the interrupted
//! clients took to be back; as JSON and as a summary.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::publish::Tally;
use crate::report::Report;

/// A distribution of durations, in milliseconds (exact, from every sample).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct Spread {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub(super) fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // Nearest rank.
        let at = |q: f64| ms(samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]);
        Self { count: samples.len() as u64, min: ms(samples[0]), p50: at(0.5), p99: at(0.99), max: ms(samples[samples.len() - 1]) }
    }
}

/// One phase of the run: the steady start, or a fault and the pause after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Phase {
    pub name: String,
    /// What was done, with the times the processes took.
    pub detail: String,
    /// Start, in seconds from the first publish.
    pub at_s: f64,
    /// How long the fault itself took (0 for the steady phase).
    pub took_s: f64,
    /// Stream entries published in this phase (by publish time).
    pub events: u64,
    /// Distinct streams that lost their connection in this phase.
    pub streams_interrupted: u64,
    pub interruptions: u64,
    /// Distinct streams that kept their connection but received nothing for longer than the
    /// run's `--silence`, and then received again.
    pub streams_delayed: u64,
    /// Those silences, from the last event before to the first event after.
    pub delayed_ms: Spread,
    /// Interruptions never reopened / never followed by an event before the run ended.
    pub not_reopened: u64,
    pub not_caught_up: u64,
    /// From the stream breaking to a new stream open.
    pub reopened_ms: Spread,
    /// From the stream breaking to the first event after the gap received.
    pub caught_up_ms: Spread,
    /// Deliveries of this phase's events missing or repeated, over every stream.
    pub lost: u64,
    pub duplicated: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ChaosReport {
    pub scenario: String,
    pub nodes: usize,
    pub connections: u64,
    pub topics: usize,
    pub rate: f64,
    pub payload: usize,
    /// Streams that stop reading in the stall fault.
    pub stalled_streams: u64,
    pub publish: Tally,
    /// Entries the topics' streams hold at the end (the truth every client is held to).
    pub stream_entries: u64,
    /// Of the publishes with an unknown outcome, how many are in the streams.
    pub unknown_landed: u64,
    /// Events the gateway accepted (200) that their stream does not hold.
    pub accepted_missing: u64,
    /// Sequence numbers a stream holds twice (the publisher never sends one twice).
    pub stream_duplicates: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Events received that no stream holds.
    pub phantom: u64,
    pub out_of_order: u64,
    pub lost_signals: u64,
    pub phases: Vec<Phase>,
    /// The gateway settings the harness changed from their defaults.
    pub gateway_env: Vec<String>,
    /// Connections, latencies and resume times over the whole run, as the other scenarios report them.
    pub streams: Report,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ChaosReport {
    /// Every stream event reached every client exactly once.
    pub(super) fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.phantom == 0 && self.stream_duplicates == 0 && self.accepted_missing == 0
    }

    /// The run did what was asked: every stream opened, every fault interrupted someone, and
    /// every interrupted client came back.
    pub(super) fn is_complete(&self) -> bool {
        self.streams.connections_failed == 0
            && self.phases.iter().skip(1).all(|p| p.streams_interrupted + p.streams_delayed > 0)
            && self.phases.iter().all(|p| p.not_reopened == 0 && p.not_caught_up == 0)
    }

    pub(super) fn human(&self) -> String {
        let s = &self.streams;
        let p = &self.publish;
        let mut out = format!(
            "scenario            chaos: {} nodes, {} streams ({} stall) over {} topics, {:.0} events/s of {} bytes\n\
             connections         {} established, {} failed\n\
             published           {} events in {:.1} s: {} accepted, {} unknown ({} of them landed), {} refused everywhere; {} batches sent again\n\
             streams hold        {} entries ({} accepted events missing), {} sequence numbers twice\n\
             deliveries          {} received of {} expected: {} lost, {} duplicated, {} not in any stream, {} out of order\n\
             latency (ms)        p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
            self.nodes,
            self.connections,
            self.stalled_streams,
            self.topics,
            self.rate,
            self.payload,
            s.connections_established,
            s.connections_failed,
            p.sent,
            p.seconds,
            p.accepted,
            p.unknown,
            self.unknown_landed,
            p.failed,
            p.retried,
            self.stream_entries,
            self.accepted_missing,
            self.stream_duplicates,
            self.deliveries_received,
            self.deliveries_expected,
            self.lost,
            self.duplicated,
            self.phantom,
            self.out_of_order,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.latency_ms.p999,
            s.latency_ms.max,
        );
        for ph in &self.phases {
            out.push_str(&format!(
                "phase {:<13} at {:>6.1} s: {} events, {} lost, {} duplicated; {} streams interrupted ({} times)",
                ph.name, ph.at_s, ph.events, ph.lost, ph.duplicated, ph.streams_interrupted, ph.interruptions
            ));
            if ph.interruptions > 0 {
                let (r, c) = (&ph.reopened_ms, &ph.caught_up_ms);
                out.push_str(&format!(
                    "\n                    reopened (ms) min {:.0} p50 {:.0} p99 {:.0} max {:.0}; caught up (ms) min {:.0} p50 {:.0} p99 {:.0} max {:.0}",
                    r.min, r.p50, r.p99, r.max, c.min, c.p50, c.p99, c.max
                ));
                if ph.not_reopened + ph.not_caught_up > 0 {
                    out.push_str(&format!("; {} never reopened, {} never caught up", ph.not_reopened, ph.not_caught_up));
                }
            }
            if ph.streams_delayed > 0 {
                let d = &ph.delayed_ms;
                out.push_str(&format!(
                    "\n                    {} streams delayed on an open connection: silent (ms) min {:.0} p50 {:.0} p99 {:.0} max {:.0}",
                    ph.streams_delayed, d.min, d.p50, d.p99, d.max
                ));
            }
            if !ph.detail.is_empty() {
                out.push_str(&format!("\n                    {}", ph.detail));
            }
            out.push('\n');
        }
        out.push_str(&format!("gateway settings    {}\n", self.gateway_env.join(" ")));
        for n in &self.notes {
            out.push_str(&format!("note                {n}\n"));
        }
        out.push_str(match (self.is_clean(), self.is_complete()) {
            (false, _) => "result              FAILED: events lost or duplicated\n",
            (true, false) => {
                "result              INCOMPLETE: nothing lost or duplicated, but the run did not do all it was asked (see above)\n"
            }
            (true, true) => "result              OK: nothing lost or duplicated, every fault interrupted clients and every one resumed\n",
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_use_nearest_ranks() {
        let s = Spread::of((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!((s.count, s.min, s.p50, s.p99, s.max), (100, 1.0, 50.0, 99.0, 100.0));
        assert_eq!(Spread::of(vec![]), Spread::default());
        assert_eq!(Spread::of(vec![Duration::from_millis(7)]).p99, 7.0);
    }
}
