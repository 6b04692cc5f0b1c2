//! The SSE wire format: what the encoder writes is what a conforming EventSource reads, whatever
//! the payload and names; and the incremental parser reads any bytes the same however they are
//! chunked, and the same as a plain whole-input reading of the spec.

use super::input::Input;
use crate::cursor;
use crate::event::{Event, EventName, MAX_EVENT_NAME_LEN, RESERVED_EVENT_PREFIX, StreamId, Topic};
use crate::sse::{EncodedEvent, HEARTBEAT, Item, ParsedEvent, Parser, retry_frame};

pub(super) fn check(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() & 1 == 0 { round_trip(input) } else { parser(input) }
}

/// Layout: flags, [id ms, id seq], [retry], [cursor key], cut, name `0xFF`, data (the rest).
fn round_trip(mut input: Input<'_>) {
    let flags = input.byte();
    let id = (flags & 1 != 0).then(|| StreamId::new(input.u64(), input.u64()));
    let retry = (flags & 2 != 0).then(|| input.u64());
    let cursor_key = (flags & 4 != 0).then(|| input.u64());
    let cut = input.u64();
    let name = event_name(&input.text());
    let name = if flags & 8 != 0 { name } else { None };
    let data = String::from_utf8_lossy(input.rest()).into_owned();
    let event = Event { topic: Topic::parse("t").expect("a valid topic"), id, name, data, retry };
    let encoded = EncodedEvent::new(&event);
    let frame = encoded.frame();
    assert_one_event_without_injection(frame);

    let mut expected: Vec<Item> = retry.map(Item::Retry).into_iter().collect();
    expected.push(Item::Event(seen(&event, id.map(|id| id.to_string()).unwrap_or_default())));
    assert_eq!(parse_cut(frame, cut), expected, "frame {frame:?}");

    // A connection following several topics sends the fields without the `id:` line, then its
    // own cursor; the client's Last-Event-ID is the cursor.
    if let Some(key) = cursor_key {
        let cursor = cursor::encode([(key, id.unwrap_or_default())]);
        let mut multi = encoded.fields_without_id().to_vec();
        multi.extend_from_slice(format!("id: {cursor}\n\n").as_bytes());
        assert_one_event_without_injection(&multi);
        let mut expected_multi: Vec<Item> = retry.map(Item::Retry).into_iter().collect();
        expected_multi.push(Item::Event(seen(&event, cursor)));
        assert_eq!(parse_cut(&multi, cut), expected_multi);
    }

    // In a stream: a heartbeat, a reconnection delay, then a live-only event (no `id:`), which
    // leaves the Last-Event-ID where the first event put it.
    let live = Event { id: None, retry: None, ..event };
    let mut stream = frame.to_vec();
    stream.extend_from_slice(HEARTBEAT);
    stream.extend_from_slice(&retry_frame(1000));
    stream.extend_from_slice(EncodedEvent::new(&live).frame());
    let last_id = id.map(|id| id.to_string()).unwrap_or_default();
    let mut expected_stream = expected;
    expected_stream.extend([Item::Comment(String::new()), Item::Retry(1000), Item::Event(seen(&live, last_id))]);
    assert_eq!(parse_cut(&stream, cut), expected_stream);
}

/// Names are validated at construction: whatever the text, an accepted name is one line.
fn event_name(text: &str) -> Option<EventName> {
    let valid = !text.is_empty() && text.len() <= MAX_EVENT_NAME_LEN && !text.contains(['\r', '\n', '\0']);
    let any = EventName::parse_any(text);
    assert_eq!(any.is_ok(), valid, "parse_any({text:?}) = {any:?}");
    let publisher = EventName::parse(text);
    assert_eq!(publisher.is_ok(), valid && !text.starts_with(RESERVED_EVENT_PREFIX), "parse({text:?}) = {publisher:?}");
    any.ok()
}

/// What a conforming client dispatches for `event` under `last_event_id`: the data with every
/// CRLF, CR and LF read as LF, and `message` when the event has no name.
pub(super) fn seen(event: &Event, last_event_id: String) -> ParsedEvent {
    ParsedEvent {
        event: event.name.as_ref().map_or("message", EventName::as_str).to_owned(),
        data: event.data.replace("\r\n", "\n").replace('\r', "\n"),
        last_event_id,
    }
}

/// A frame is one event: known fields only, no CR, and one blank line, at its end.
pub(super) fn assert_one_event_without_injection(frame: &[u8]) {
    let text = std::str::from_utf8(frame).expect("frames are UTF-8");
    assert!(!text.contains('\r'), "CR in {text:?}");
    let body = text.strip_suffix("\n\n").unwrap_or_else(|| panic!("no blank line at the end of {text:?}"));
    for line in body.split('\n') {
        assert!(["id: ", "event: ", "retry: ", "data: "].iter().any(|f| line.starts_with(f)), "line {line:?} of {text:?}");
    }
}

/// Parses `bytes` fed at once, and in two chunks cut at `cut` (modulo the length): both must agree.
pub(super) fn parse_cut(bytes: &[u8], cut: u64) -> Vec<Item> {
    let whole = Parser::new().feed(bytes);
    let at = usize::try_from(cut % (bytes.len() as u64 + 1)).expect("below the length");
    let mut parser = Parser::new();
    let mut chunked = parser.feed(&bytes[..at]);
    chunked.extend(parser.feed(&bytes[at..]));
    assert_eq!(chunked, whole, "cut at {at} of {bytes:?}");
    whole
}

/// Layout: n (number of chunk sizes, mod 8), n sizes (mod 16; 0 feeds an empty chunk), stream.
fn parser(mut input: Input<'_>) {
    let n = input.byte() % 8;
    let mut sizes: Vec<usize> = (0..n).map(|_| usize::from(input.byte() % 16)).collect();
    if sizes.iter().all(|&s| s == 0) {
        sizes.push(1);
    }
    let stream = input.rest();

    let mut whole = Parser::new();
    let items = whole.feed(stream);
    for item in &items {
        match item {
            Item::Event(e) => {
                assert!(!e.event.is_empty() && !e.event.contains(['\r', '\n']), "{e:?}");
                assert!(!e.data.contains('\r'), "{e:?}");
                assert!(!e.last_event_id.contains(['\r', '\n', '\0']), "{e:?}");
            }
            Item::Comment(c) => assert!(!c.contains(['\r', '\n']), "{c:?}"),
            Item::Retry(_) => {}
        }
    }
    assert_eq!(items, reference(stream), "against the reference reading of {stream:?}");

    let mut chunked = Parser::new();
    let mut chunked_items = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < stream.len() {
        let end = (at + sizes[i % sizes.len()]).min(stream.len());
        chunked_items.extend(chunked.feed(&stream[at..end]));
        (at, i) = (end, i + 1);
    }
    assert_eq!(chunked_items, items, "chunks of {sizes:?} of {stream:?}");
    assert_eq!(chunked.last_event_id(), whole.last_event_id());
}

/// The WHATWG "interpreting an event stream" steps read literally over the whole input: decode
/// as UTF-8 with replacement, drop one leading BOM, split complete lines at CRLF, CR or LF.
fn reference(stream: &[u8]) -> Vec<Item> {
    let decoded = String::from_utf8_lossy(stream);
    let mut rest = decoded.strip_prefix('\u{FEFF}').unwrap_or(&decoded);
    let (mut data, mut event_type, mut id_buffer) = (String::new(), String::new(), String::new());
    let mut items = Vec::new();
    while let Some(i) = rest.find(['\r', '\n']) {
        let line = &rest[..i];
        rest = &rest[i + if rest[i..].starts_with("\r\n") { 2 } else { 1 }..];
        if line.is_empty() {
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            data.pop();
            let event = if event_type.is_empty() { "message".to_owned() } else { std::mem::take(&mut event_type) };
            items.push(Item::Event(ParsedEvent { event, data: std::mem::take(&mut data), last_event_id: id_buffer.clone() }));
            event_type.clear();
            continue;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(Item::Comment(comment.to_owned()));
            continue;
        }
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    items.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }
    items
}
