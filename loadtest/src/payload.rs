//! What each published event carries: its per-topic sequence number and its send time, so every
//! subscriber can tell loss, duplication, order and latency without asking anyone.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Position of the event within its topic, from 0.
    pub seq: u64,
    /// Send time, microseconds since the epoch (publisher and subscribers share the clock).
    pub ts: u64,
    /// Filler up to the asked payload size.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pad: String,
}

pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The event data for `seq`, padded to about `size` bytes.
pub fn make(seq: u64, size: usize) -> String {
    let mut p = Payload { seq, ts: now_micros(), pad: String::new() };
    let bare = serde_json::to_string(&p).unwrap_or_default().len();
    // `,"pad":""` adds 9 bytes.
    if size > bare + 9 {
        p.pad = "x".repeat(size - bare - 9);
    }
    serde_json::to_string(&p).unwrap_or_default()
}

pub fn parse(data: &str) -> Option<Payload> {
    serde_json::from_str(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_at_the_asked_size() {
        let data = make(42, 256);
        assert_eq!(data.len(), 256);
        let p = parse(&data).expect("parses");
        assert_eq!(p.seq, 42);
        assert!(p.ts > 0);
        assert!(make(1, 0).len() < 64, "no padding below the bare size");
    }
}
