//! An [`Update`] as a `text/event-stream` frame, encoded once per update and shared by every
//! subscriber it reaches.
//!
//! The lines are written by `shared::sse` (`put_field`, `put_data`), the encoder native events
//! use, so both kinds of stream split `data` the same way: one `data:` line per line of the
//! payload, on CR, LF or CRLF, which keeps empty lines and leading spaces intact (the parser strips
//! only the single space after the colon) and lets no payload inject a field. `id` and `type`
//! reach this point validated free of line breaks (`update.rs`).
//!
//! `EncodedEvent` itself does not fit: its id is a Redis stream id and its topic a native topic
//! name, while a Mercure update carries the publisher's id and IRIs.

use bytes::{BufMut, Bytes, BytesMut};
use shared::sse::{put_data, put_field};

use super::update::Update;

/// The SSE frame for `update`: `id:` first, then `event:` and `retry:` when given, the `data:`
/// lines, and the blank line that dispatches the event.
pub(crate) fn encode(update: &Update) -> Bytes {
    let mut buf = BytesMut::with_capacity(update.data.len() + update.id.len() + 32);
    put_field(&mut buf, "id", &update.id);
    if let Some(event_type) = &update.event_type {
        put_field(&mut buf, "event", event_type);
    }
    if let Some(retry) = update.retry {
        put_field(&mut buf, "retry", &retry.to_string());
    }
    put_data(&mut buf, &update.data);
    buf.put_u8(b'\n');
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use shared::sse::{Item, Parser};

    use super::*;

    fn update(data: &str) -> Update {
        Update {
            topics: vec!["https://example.com/books/1".into()],
            data: data.into(),
            id: "id-[\"abc\"]".into(),
            publisher_id: true,
            event_type: None,
            retry: None,
            private: false,
        }
    }

    fn parse(frame: &[u8]) -> Vec<Item> {
        Parser::new().feed(frame)
    }

    #[test]
    fn a_minimal_update_is_an_id_and_data() {
        assert_eq!(&encode(&update("hello"))[..], b"id: id-[\"abc\"]\ndata: hello\n\n");
    }

    #[test]
    fn multi_line_data_with_an_empty_line_and_leading_spaces_arrives_exactly() {
        let data = "data for\n\n        raw string";
        match parse(&encode(&update(data))).as_slice() {
            [Item::Event(e)] => {
                assert_eq!(e.data, data);
                assert_eq!(e.last_event_id, "id-[\"abc\"]");
                assert_eq!(e.event, "message");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_and_retry_become_event_and_retry_fields() {
        let mut u = update("x");
        u.event_type = Some("book.updated".into());
        u.retry = Some(2500);
        let frame = encode(&u);
        assert_eq!(&frame[..], b"id: id-[\"abc\"]\nevent: book.updated\nretry: 2500\ndata: x\n\n");
        let items = parse(&frame);
        assert_eq!(items[0], Item::Retry(2500));
        assert!(matches!(&items[1], Item::Event(e) if e.event == "book.updated" && e.data == "x"));
    }

    #[test]
    fn data_cannot_inject_fields_and_line_ends_normalise_to_lf() {
        let frame = encode(&update("a\r\nid: forged\revent: evil\nb"));
        match parse(&frame).as_slice() {
            [Item::Event(e)] => {
                assert_eq!(e.data, "a\nid: forged\nevent: evil\nb");
                assert_eq!(e.last_event_id, "id-[\"abc\"]");
                assert_eq!(e.event, "message");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_data_still_dispatches_an_event() {
        assert!(matches!(parse(&encode(&update(""))).as_slice(), [Item::Event(e)] if e.data.is_empty()));
    }
}
