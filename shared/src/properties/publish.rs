//! The `POST /publish` body: any bytes are answered with a 4xx code or events that hold the
//! product's invariants, and an accepted event reaches subscribers as exactly its payload.

use serde_json::Value;

use super::sse::{assert_one_event_without_injection, parse_cut, seen};
use crate::event::{Event, EventName, MAX_EVENT_NAME_LEN, RESERVED_EVENT_PREFIX, StreamId, Topic};
use crate::publish::{MAX_RETRY_MS, PublishError, parse_body};
use crate::sse::{EncodedEvent, Item};

/// A small batch bound, so that the fuzzer reaches it.
const MAX_BATCH: usize = 4;

pub(super) fn check(data: &[u8]) {
    let json = serde_json::from_slice::<Value>(data);
    let body = match parse_body(data, MAX_BATCH) {
        Ok(body) => body,
        Err(e) => {
            assert!(["invalid_json", "invalid_event", "empty_batch", "batch_too_large"].contains(&e.code()), "{e:?}");
            assert_eq!(matches!(e, PublishError::NotJson(_)), json.is_err(), "{e:?}");
            return;
        }
    };
    let json = json.expect("an accepted body is JSON");
    assert!((1..=MAX_BATCH).contains(&body.requests.len()));
    assert_eq!(body.single, json.is_object());
    assert!(body.single || json.is_array());

    for (i, request) in body.requests.into_iter().enumerate() {
        let index = (!body.single).then_some(i);
        let at = index.map(|i| format!("[{i}].")).unwrap_or_default();
        let topic_ok = Topic::parse(&request.topic).is_ok();
        let name_ok = request.event.as_deref().is_none_or(|n| EventName::parse(n).is_ok());
        let retry_ok = request.retry.is_none_or(|ms| ms <= MAX_RETRY_MS);
        match request.clone().validate(index) {
            Err(e) => {
                assert!(e.to_string().starts_with(&at), "{e} at {at:?}");
                match e {
                    PublishError::Topic { .. } => assert!(!topic_ok),
                    PublishError::EventName { .. } => assert!(topic_ok && !name_ok),
                    PublishError::Retry { .. } => assert!(topic_ok && name_ok && !retry_ok),
                    other => panic!("validation answered {other:?}"),
                }
                return;
            }
            Ok(p) => {
                assert!(topic_ok && name_ok && retry_ok);
                assert_eq!(p.topic.as_str(), request.topic);
                if let Some(name) = &p.name {
                    let name = name.as_str();
                    assert!(!name.is_empty() && name.len() <= MAX_EVENT_NAME_LEN && !name.contains(['\r', '\n', '\0']), "{name:?}");
                    assert!(!name.starts_with(RESERVED_EVENT_PREFIX), "{name:?}");
                }
                assert_eq!(p.name.as_ref().map(EventName::as_str), request.event.as_deref());
                assert!(p.retry.is_none_or(|ms| ms <= MAX_RETRY_MS));
                match &request.data {
                    Value::String(s) => assert_eq!(&p.data, s),
                    other => {
                        let back: Value = serde_json::from_str(&p.data).expect("serialized data is JSON");
                        // Floats go through f64 text both ways: compare them only as f64 text.
                        if !has_float(other) {
                            assert_eq!(&back, other);
                        }
                    }
                }
                // Through the encoder to a subscriber: exactly the payload, under its name.
                let event = Event { topic: p.topic, id: Some(StreamId::new(1, 2)), name: p.name, data: p.data, retry: p.retry };
                let frame = EncodedEvent::new(&event);
                assert_one_event_without_injection(frame.frame());
                let mut expected: Vec<Item> = event.retry.map(Item::Retry).into_iter().collect();
                expected.push(Item::Event(seen(&event, "1-2".to_owned())));
                assert_eq!(parse_cut(frame.frame(), i as u64 * 7), expected);
            }
        }
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
