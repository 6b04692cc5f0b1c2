//! The resumption cursor: the `id:` a connection following several topics sends, so that one
//! `Last-Event-ID` resumes every topic at its own position.
//!
//! Two forms are accepted as `Last-Event-ID`:
//! - a plain stream id `<ms>-<seq>` (what a single-topic connection sends, and what Redis
//!   assigns): every topic of the connection resumes after that position;
//! - a multi-topic cursor: entries `<key>.<ms>-<seq>` joined by `,`, where `<key>` is the
//!   base-36 [`topic_key`] of a topic name and `<ms>`/`<seq>` are base 36 too, e.g.
//!   `1a2b3c4d5e.m3u5w7hc-0,9z8y7x6w5v.m3u5w7hd-2`. Keys rather than positions in a list make the
//!   cursor independent of the order of `topic=` parameters; a topic missing from the cursor
//!   starts live, an entry for a topic the connection does not follow is ignored.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::event::{StreamId, Topic};

/// Longest cursor accepted: a bound on work and memory for hostile input, generous for
/// hundreds of topics (an entry is at most ~40 bytes).
pub const MAX_CURSOR_LEN: usize = 16 * 1024;

/// Why a `Last-Event-ID` is neither a stream id nor a cursor; the gateway answers 400 rather
/// than guess a position, since a wrong guess silently loses or repeats events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Longer than [`MAX_CURSOR_LEN`]: refused before any parsing work.
    #[error("cursor is longer than {MAX_CURSOR_LEN} bytes")]
    TooLong,
    /// The entry at this index (from 0) is not `<key>.<ms>-<seq>` in base 36.
    #[error("cursor entry {0} is malformed: expected <key>.<ms>-<seq> in base 36")]
    Entry(usize),
    /// Two entries for one topic key: which position would win is ambiguous.
    #[error("cursor names the same topic twice")]
    Duplicate,
    /// No `.`, so it had to be a plain stream id, and it is not one.
    #[error("not a stream id or a cursor")]
    Unparseable,
}

/// A parsed `Last-Event-ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// One position for every topic.
    Position(StreamId),
    /// A position per topic, keyed by [`topic_key`].
    Topics(HashMap<u64, StreamId>),
}

impl Cursor {
    /// Parses a `Last-Event-ID`: a plain stream id, or a multi-topic cursor (module docs).
    pub fn parse(s: &str) -> Result<Self, CursorError> {
        if s.len() > MAX_CURSOR_LEN {
            return Err(CursorError::TooLong);
        }
        if !s.contains('.') {
            return StreamId::parse(s).map(Cursor::Position).map_err(|_| CursorError::Unparseable);
        }
        let mut map = HashMap::new();
        for (i, entry) in s.split(',').enumerate() {
            let (key, pos) = parse_entry(entry).ok_or(CursorError::Entry(i))?;
            if map.insert(key, pos).is_some() {
                return Err(CursorError::Duplicate);
            }
        }
        Ok(Cursor::Topics(map))
    }

    /// Where `topic` resumes, if the cursor says.
    pub fn position(&self, topic: &Topic) -> Option<StreamId> {
        match self {
            Cursor::Position(id) => Some(*id),
            Cursor::Topics(map) => map.get(&topic_key(topic)).copied(),
        }
    }
}

fn parse_entry(entry: &str) -> Option<(u64, StreamId)> {
    let (key, pos) = entry.split_once('.')?;
    let (ms, seq) = pos.split_once('-')?;
    Some((parse_b36(key)?, StreamId::new(parse_b36(ms)?, parse_b36(seq)?)))
}

fn parse_b36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 || !s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        return None;
    }
    u64::from_str_radix(s, 36).ok()
}

fn push_b36(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 13];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| b as char));
}

/// The key of a topic in a cursor: 48 bits of FNV-1a 64 of its name.
///
/// Hand-written because the value is part of the wire format: it must be identical on every node
/// and every version, which a general-purpose hasher does not promise. 48 bits keep entries short;
/// two topics of one connection colliding has odds below 1 in 10^11 at 32 topics, and the gateway
/// refuses such a connection rather than mixing up positions.
pub fn topic_key(topic: &Topic) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h >> 16
}

/// Writes a multi-topic cursor for `(topic_key, position)` pairs.
pub fn encode(entries: impl IntoIterator<Item = (u64, StreamId)>) -> String {
    let mut out = String::with_capacity(64);
    for (i, (key, pos)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_b36(&mut out, key);
        out.push('.');
        push_b36(&mut out, pos.ms);
        out.push('-');
        push_b36(&mut out, pos.seq);
    }
    out
}

/// A plain stream id, for single-topic connections.
pub fn encode_single(pos: StreamId) -> String {
    let mut out = String::with_capacity(24);
    let _ = write!(out, "{pos}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Topic {
        Topic::parse(s).expect("topic")
    }

    #[test]
    fn multi_topic_cursors_round_trip() {
        let (a, b) = (topic("orders"), topic("user:42"));
        let text = encode([(topic_key(&a), StreamId::new(1_732_400_000_000, 0)), (topic_key(&b), StreamId::new(1_732_400_000_123, 7))]);
        assert!(!text.contains(['\r', '\n', '\0']));
        let c = Cursor::parse(&text).expect("parses");
        assert_eq!(c.position(&a), Some(StreamId::new(1_732_400_000_000, 0)));
        assert_eq!(c.position(&b), Some(StreamId::new(1_732_400_000_123, 7)));
        assert_eq!(c.position(&topic("other")), None);
    }

    #[test]
    fn plain_ids_apply_to_every_topic() {
        let c = Cursor::parse("1700000000000-3").expect("parses");
        assert_eq!(c.position(&topic("x")), Some(StreamId::new(1_700_000_000_000, 3)));
        assert_eq!(Cursor::parse(&encode_single(StreamId::new(5, 1))), Ok(Cursor::Position(StreamId::new(5, 1))));
    }

    #[test]
    fn topic_keys_are_stable() {
        // Part of the wire format: changing this breaks every client's stored cursor.
        assert_eq!(topic_key(&topic("orders")), 0x0012_5d92_50be);
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in ["", "abc", "1-2-3", "a.b", "a.1", "a.1-", "A.1-1", "a.1-1,", ",a.1-1", "a.1-1,a.2-2", "zzzzzzzzzzzzzz.1-1", "a.1-1\n"] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Cursor::parse(&"1".repeat(MAX_CURSOR_LEN + 1)), Err(CursorError::TooLong));
    }
}
