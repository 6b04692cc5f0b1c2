//! The resumption cursor: any `Last-Event-ID` text decodes without panicking, what decodes
//! re-encodes to the same cursor, and every cursor the gateway writes decodes to what it meant.

use std::collections::HashMap;

use super::input::Input;
use crate::cursor::{Cursor, CursorError, MAX_CURSOR_LEN, encode, encode_single, topic_key};
use crate::event::{StreamId, Topic};

pub(super) fn check(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => decode(&String::from_utf8_lossy(input.rest())),
        1 => round_trip(input, false),
        _ => round_trip(input, true),
    }
}

/// Arbitrary text, as a client (or anyone) may send it in `Last-Event-ID`.
fn decode(text: &str) {
    match Cursor::parse(text) {
        Ok(Cursor::Position(id)) => {
            assert!(!text.contains('.'));
            assert_eq!(StreamId::parse(text), Ok(id));
            assert_eq!(Cursor::parse(&encode_single(id)), Ok(Cursor::Position(id)));
        }
        Ok(Cursor::Topics(map)) => {
            assert_eq!(map.len(), text.split(',').count(), "one entry per key in {text:?}");
            let again = encode(map.iter().map(|(k, p)| (*k, *p)));
            // The canonical form has no leading zeros: never longer than what was sent.
            assert!(again.len() <= text.len(), "{again:?} from {text:?}");
            assert!(again.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b",.-".contains(&b)), "{again:?}");
            assert_eq!(Cursor::parse(&again), Ok(Cursor::Topics(map)));
        }
        Err(CursorError::TooLong) => assert!(text.len() > MAX_CURSOR_LEN),
        Err(_) => assert!(text.len() <= MAX_CURSOR_LEN),
    }
}

/// Layout: entries until the input ends, each a key (a `u64`, or a topic name ending at `0xFF`
/// whose key is [`topic_key`]), then the position's ms and seq.
fn round_trip(mut input: Input<'_>, by_topic: bool) {
    let single = StreamId::new(input.u64(), input.u64());
    assert_eq!(Cursor::parse(&encode_single(single)), Ok(Cursor::Position(single)));
    assert_eq!(StreamId::parse(&single.to_string()), Ok(single));
    if single != StreamId::new(u64::MAX, u64::MAX) {
        assert!(single.successor() > single);
    }

    let mut map = HashMap::new();
    let mut topics = Vec::new();
    // At most ~42 bytes an entry: 300 stay under the length bound.
    while !input.is_empty() && map.len() < 300 {
        let key = if by_topic {
            match Topic::parse(&input.text()) {
                Ok(topic) => {
                    let key = topic_key(&topic);
                    assert!(key < 1 << 48);
                    topics.push(topic);
                    key
                }
                Err(_) => continue,
            }
        } else {
            input.u64()
        };
        map.entry(key).or_insert(StreamId::new(input.u64(), input.u64()));
    }
    let text = encode(map.iter().map(|(k, p)| (*k, *p)));
    assert!(!text.contains(['\r', '\n', '\0', ' ']), "{text:?} must fit an `id:` line");
    if map.is_empty() {
        assert_eq!(text, "");
        assert!(Cursor::parse(&text).is_err());
        return;
    }
    assert!(text.len() <= MAX_CURSOR_LEN);
    let cursor = Cursor::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    for topic in &topics {
        assert_eq!(cursor.position(topic), map.get(&topic_key(topic)).copied(), "{topic}");
    }
    assert_eq!(cursor, Cursor::Topics(map));
}
