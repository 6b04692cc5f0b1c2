//! What each published event carries: its per-topic sequence number and its send time, so every
//! subscriber can tell loss, duplication, order and latency without asking anyone.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// Position of the event within its topic, from 0.
    pub seq: u64,
    /// Send time, microseconds since the epoch (publisher and subscribers share the clock).
    pub ts: u64,
    /// Filler up to the asked payload size.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pad: String,
}

pub(crate) fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The event data for `seq`, padded to about `size` bytes.
pub(crate) fn make(seq: u64, size: usize) -> String {
    let mut p = Payload { seq, ts: now_micros(), pad: String::new() };
    let bare = serde_json::to_string(&p).unwrap_or_default().len();
    // `,"pad":""` adds 9 bytes.
    if size > bare + 9 {
        p.pad = "x".repeat(size - bare - 9);
    }
    serde_json::to_string(&p).unwrap_or_default()
}

/// The sequence number and send time of an event's data. The tool reads hundreds of thousands
/// of events a second on one core, so the shape `make` writes is read without a JSON parser (the
/// padding is never scanned); anything else goes through serde.
pub(crate) fn parse(data: &str) -> Option<(u64, u64)> {
    parse_bytes(data.as_bytes())
}

/// `parse` on the bytes of a stream, as they were read (not necessarily UTF-8).
pub(crate) fn parse_bytes(data: &[u8]) -> Option<(u64, u64)> {
    fast(data).or_else(|| serde_json::from_str::<Payload>(&String::from_utf8_lossy(data)).ok().map(|p| (p.seq, p.ts)))
}

fn fast(data: &[u8]) -> Option<(u64, u64)> {
    let rest = data.strip_prefix(b"{\"seq\":")?;
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(b",\"ts\":")?;
    let (ts, rest) = number(rest)?;
    matches!(rest.first(), Some(b',' | b'}')).then_some((seq, ts))
}

/// The decimal number `bytes` start with (as `u64::from_str` reads it), and what follows.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut n: u64 = 0;
    for &d in &bytes[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (digits > 0).then_some((n, &bytes[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_at_the_asked_size() {
        let data = make(42, 256);
        assert_eq!(data.len(), 256);
        let (seq, ts) = parse(&data).expect("parses");
        assert_eq!(seq, 42);
        assert!(ts > 0);
        let d = make(7, 300);
        let slow = serde_json::from_str::<Payload>(&d).map(|p| (p.seq, p.ts)).ok();
        assert_eq!(fast(d.as_bytes()), slow, "both paths agree");
        assert_eq!(parse(r#"{"seq":18446744073709551616,"ts":1}"#), None, "beyond u64 (serde too)");
        assert_eq!(parse(r#"{"seq":1,"ts":2 }"#), Some((1, 2)), "not the fast shape: serde");
        assert_eq!(parse_bytes(b"{\"seq\":4,\"ts\":9,\"pad\":\"\xff\"}"), Some((4, 9)), "padding is not read");
        assert_eq!(parse(r#"{"ts":5,"seq":3}"#), Some((3, 5)), "other key orders go through serde");
        assert_eq!(parse("not json"), None);
        assert!(make(1, 0).len() < 64, "no padding below the bare size");
    }
}
