//! Conformance of the parser to the WHATWG event-stream rules, and of the encoder by round trip.

use super::*;
use crate::event::{EventName, StreamId, Topic};

fn parse_all(input: &[u8]) -> Vec<Item> {
    Parser::new().feed(input)
}

/// Feeds `input` split at every possible byte position and checks the result never depends on
/// how the bytes were chunked (a CR at the end of one chunk and an LF at the start of the next are
/// one line end; a BOM may arrive byte by byte).
fn parse_every_split(input: &[u8]) -> Vec<Item> {
    let whole = parse_all(input);
    for cut in 0..=input.len() {
        let mut p = Parser::new();
        let mut items = p.feed(&input[..cut]);
        items.extend(p.feed(&input[cut..]));
        assert_eq!(items, whole, "split at {cut} of {:?}", String::from_utf8_lossy(input));
    }
    let mut p = Parser::new();
    let bytewise: Vec<Item> = input.iter().flat_map(|b| p.feed(std::slice::from_ref(b))).collect();
    assert_eq!(bytewise, whole, "byte by byte");
    whole
}

fn ev(event: &str, data: &str, id: &str) -> Item {
    Item::Event(ParsedEvent { event: event.into(), data: data.into(), last_event_id: id.into() })
}

#[test]
fn lines_end_with_lf_cr_or_crlf() {
    for input in ["data: a\n\n", "data: a\r\r", "data: a\r\n\r\n", "data: a\r\n\n", "data: a\n\r\n"] {
        assert_eq!(parse_every_split(input.as_bytes()), vec![ev("message", "a", "")], "{input:?}");
    }
}

#[test]
fn several_data_lines_join_with_lf() {
    assert_eq!(parse_every_split(b"data: a\ndata\ndata: b\n\n"), vec![ev("message", "a\n\nb", "")]);
}

#[test]
fn a_leading_bom_is_skipped_once() {
    assert_eq!(parse_every_split(b"\xEF\xBB\xBFdata: a\n\n"), vec![ev("message", "a", "")]);
    // A second BOM is part of the field name, so the line is an unknown field and ignored.
    assert_eq!(parse_every_split(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n"), vec![]);
}

#[test]
fn comments_are_reported_and_ignored() {
    assert_eq!(
        parse_every_split(b":\n: hi\ndata: a\n:x\n\n"),
        vec![Item::Comment(String::new()), Item::Comment(" hi".into()), Item::Comment("x".into()), ev("message", "a", "")]
    );
}

#[test]
fn a_field_without_colon_has_an_empty_value() {
    // A `data` line with no value still makes the buffer non-empty ("\n"), so it dispatches "".
    assert_eq!(parse_every_split(b"data\n\n"), vec![ev("message", "", "")]);
    assert_eq!(parse_every_split(b"data\ndata\n\n"), vec![ev("message", "\n", "")]);
    assert_eq!(parse_every_split(b"id\ndata: x\n\n"), vec![ev("message", "x", "")]);
}

#[test]
fn only_one_space_after_the_colon_is_stripped() {
    assert_eq!(parse_every_split(b"data:a\n\n"), vec![ev("message", "a", "")]);
    assert_eq!(parse_every_split(b"data:  a \n\n"), vec![ev("message", " a ", "")]);
}

#[test]
fn an_id_containing_nul_is_ignored() {
    assert_eq!(parse_every_split(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"), vec![ev("message", "a", "1"), ev("message", "b", "1")]);
}

#[test]
fn the_last_event_id_persists_and_can_be_cleared() {
    assert_eq!(
        parse_every_split(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"),
        vec![ev("message", "a", "7"), ev("message", "b", "7"), ev("message", "c", "")]
    );
}

#[test]
fn an_id_without_data_updates_the_last_event_id_without_dispatching() {
    let mut p = Parser::new();
    assert_eq!(p.feed(b"id: 9\n\n"), vec![]);
    assert_eq!(p.last_event_id(), "9");
}

#[test]
fn an_event_without_data_lines_is_not_dispatched() {
    assert_eq!(parse_every_split(b"event: x\n\ndata: a\n\n"), vec![ev("message", "a", "")], "event type resets");
}

#[test]
fn retry_accepts_only_digits() {
    assert_eq!(parse_every_split(b"retry: 1500\nretry: 1x\nretry: -1\nretry:\n"), vec![Item::Retry(1500)]);
}

#[test]
fn unknown_fields_are_ignored() {
    assert_eq!(parse_every_split(b"foo: bar\nDATA: x\ndata: a\n\n"), vec![ev("message", "a", "")]);
}

#[test]
fn a_last_event_without_a_blank_line_is_discarded() {
    let mut p = Parser::new();
    assert_eq!(p.feed(b"data: a\n\ndata: b\n"), vec![ev("message", "a", "")]);
    p.finish();
    assert_eq!(p.feed(b"\n"), vec![], "finish dropped the pending event");
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    assert_eq!(parse_every_split(b"data: \xFFa\n\n"), vec![ev("message", "\u{FFFD}a", "")]);
}

fn round_trip(event: &Event) -> Vec<Item> {
    parse_every_split(EncodedEvent::new(event).frame())
}

fn event(id: Option<StreamId>, name: Option<&str>, data: &str) -> Event {
    Event {
        topic: Topic::parse("t").expect("topic"),
        id,
        name: name.map(|n| EventName::parse(n).expect("name")),
        data: data.into(),
        retry: None,
    }
}

#[test]
fn the_encoder_round_trips_payloads_with_any_line_breaks() {
    for data in [
        "",
        "plain",
        "a\nb",
        "a\r\nb",
        "a\rb",
        "a\n\nb",
        "\n",
        "\r\n\r\n",
        "trailing\n",
        "data: x\nid: 9\n\nevent: y",
        " lead",
        "ünï\u{2028}code",
        "a\0b",
    ] {
        let expected_data = data.replace("\r\n", "\n").replace('\r', "\n");
        let items = round_trip(&event(Some(StreamId::new(3, 4)), Some("order.created"), data));
        assert_eq!(items, vec![ev("order.created", &expected_data, "3-4")], "{data:?}");
    }
}

#[test]
fn default_message_events_carry_no_event_field() {
    let frame = EncodedEvent::new(&event(Some(StreamId::new(1, 0)), None, "x"));
    assert_eq!(&frame.frame()[..], b"id: 1-0\ndata: x\n\n");
}

#[test]
fn live_only_events_carry_no_id_and_keep_the_last_one() {
    let mut p = Parser::new();
    p.feed(EncodedEvent::new(&event(Some(StreamId::new(1, 0)), None, "a")).frame());
    let items = p.feed(EncodedEvent::new(&event(None, None, "b")).frame());
    assert_eq!(items, vec![ev("message", "b", "1-0")]);
}

#[test]
fn the_fields_without_id_take_a_cursor_after_them() {
    let e = EncodedEvent::new(&Event { retry: Some(2500), ..event(Some(StreamId::new(1, 0)), Some("n"), "a\nb") });
    let mut bytes = e.fields_without_id().to_vec();
    bytes.extend_from_slice(b"id: k.1-0\n\n");
    assert_eq!(parse_every_split(&bytes), vec![Item::Retry(2500), ev("n", "a\nb", "k.1-0")]);
}

#[test]
fn retry_frames_set_the_delay_without_an_event() {
    assert_eq!(parse_every_split(&retry_frame(3000)), vec![Item::Retry(3000)]);
    assert_eq!(parse_every_split(HEARTBEAT), vec![Item::Comment(String::new())]);
}

#[test]
fn a_signal_is_a_named_event_without_an_id() {
    let frame = signal_frame(crate::event::LOST_EVENT, r#"{"after":"1-0"}"#);
    assert_eq!(&frame[..], b"event: gateway.lost\ndata: {\"after\":\"1-0\"}\n\n");
    let mut p = Parser::new();
    let items = p.feed(&frame);
    assert_eq!(
        items,
        vec![Item::Event(ParsedEvent { event: "gateway.lost".into(), data: r#"{"after":"1-0"}"#.into(), last_event_id: String::new() })]
    );
}

#[test]
fn a_signal_cannot_inject_a_field_through_its_data() {
    let frame = signal_frame(crate::event::REVOKED_EVENT, "a\r\nid: forged\nb");
    assert_eq!(&frame[..], b"event: gateway.revoked\ndata: a\ndata: id: forged\ndata: b\n\n");
    let mut p = Parser::new();
    p.feed(&frame);
    assert_eq!(p.last_event_id(), "", "the id stays where it was");
}

#[test]
fn an_id_line_ends_the_shared_fields_of_an_event() {
    let encoded = EncodedEvent::new(&event(Some(StreamId::new(5, 0)), None, "x"));
    let mut bytes = encoded.fields_without_id().to_vec();
    bytes.extend_from_slice(&id_and_end("t:5-0"));
    assert_eq!(&bytes[..], b"data: x\nid: t:5-0\n\n");
    let mut p = Parser::new();
    let parsed = events(p.feed(&bytes));
    assert_eq!(parsed.len(), 1);
    assert_eq!((parsed[0].data.as_str(), p.last_event_id()), ("x", "t:5-0"));
}
