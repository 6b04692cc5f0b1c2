//! The `POST /publish` body, the one wire format every publisher writes: one event
//! `{"topic","data","event"?,"retry"?}` or a JSON array of them (a batch). `data` is a string,
//! sent as is, or any other JSON value, sent serialized.
//!
//! Parsing is pure (bytes in, validated events or a typed error out) so that the gateway's
//! handler and the fuzz targets run the same code.

use serde::Deserialize;
use serde_json::Value;

use crate::event::{EventName, Topic, ValidationError};

/// Longest `retry` a publisher may ask for: a day, in milliseconds.
pub const MAX_RETRY_MS: u64 = 86_400_000;

/// One event as a publisher wrote it, before validation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The topic's name, validated into a [`Topic`] by [`PublishRequest::validate`].
    pub topic: String,
    /// The payload: a string is sent as is, any other JSON value serialized.
    pub data: Value,
    /// The `event:` name, if any; a publisher may not use the reserved `gateway.` names.
    pub event: Option<String>,
    /// The `retry:` a client should wait before reconnecting, in milliseconds.
    pub retry: Option<u64>,
}

/// A body that has the right shape and size; each request is validated on its own
/// ([`PublishRequest::validate`]) so that the caller can authorize it before looking at the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// One or more requests, in the order of the body.
    pub requests: Vec<PublishRequest>,
    /// The body was one object, not an array (errors then name no index, and the answer is one id).
    pub single: bool,
}

/// A validated event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The topic it goes to.
    pub topic: Topic,
    /// The `event:` field; `None` means the default `message`.
    pub name: Option<EventName>,
    /// The payload as it goes on the wire: a JSON string as is, any other value serialized.
    pub data: String,
    /// The `retry:` field, at most [`MAX_RETRY_MS`].
    pub retry: Option<u64>,
}

/// Why a body was refused. Every variant is the publisher's fault (a 400 with [`PublishError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The body does not parse as JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but an event misses a field, has an unknown one, or one of the wrong type.
    #[error("{0}")]
    Shape(#[source] serde_json::Error),
    /// JSON, but neither an object nor an array.
    #[error("expected an event object or an array of them")]
    NotAnEvent,
    /// An empty array: nothing to publish, most likely a publisher's bug.
    #[error("the batch has no events")]
    EmptyBatch,
    /// More events in one array than the gateway accepts in one request.
    #[error("{len} events in the batch, at most {max}")]
    BatchTooLarge {
        /// How many events the array held.
        len: usize,
        /// The most a batch may hold.
        max: usize,
    },
    /// An invalid topic name.
    #[error("{at}topic: {source}")]
    Topic {
        /// Which event of a batch (`[i].`), empty for a single event.
        at: String,
        /// What is wrong with the topic.
        source: ValidationError,
    },
    /// An invalid or reserved event name.
    #[error("{at}event: {source}")]
    EventName {
        /// Which event of a batch (`[i].`), empty for a single event.
        at: String,
        /// What is wrong with the name.
        source: ValidationError,
    },
    /// A `retry` over [`MAX_RETRY_MS`].
    #[error("{at}retry: at most {MAX_RETRY_MS} ms")]
    Retry {
        /// Which event of a batch (`[i].`), empty for a single event.
        at: String,
    },
}

impl PublishError {
    /// The stable code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::Shape(_) | Self::NotAnEvent | Self::EventName { .. } | Self::Retry { .. } => "invalid_event",
            Self::EmptyBatch => "empty_batch",
            Self::BatchTooLarge { .. } => "batch_too_large",
            Self::Topic { .. } => "invalid_topic",
        }
    }
}

/// Parses a body of at most `max_batch` events, saying what is wrong in terms of the API rather
/// than serde's enum talk. The events are not validated yet.
pub fn parse_body(body: &[u8], max_batch: usize) -> Result<Body, PublishError> {
    let value: Value = serde_json::from_slice(body).map_err(PublishError::NotJson)?;
    let (requests, single) = match value {
        Value::Array(_) => (serde_json::from_value::<Vec<PublishRequest>>(value).map_err(PublishError::Shape)?, false),
        Value::Object(_) => (vec![serde_json::from_value::<PublishRequest>(value).map_err(PublishError::Shape)?], true),
        _ => return Err(PublishError::NotAnEvent),
    };
    if requests.is_empty() {
        return Err(PublishError::EmptyBatch);
    }
    if requests.len() > max_batch {
        return Err(PublishError::BatchTooLarge { len: requests.len(), max: max_batch });
    }
    Ok(Body { requests, single })
}

impl PublishRequest {
    /// Validates the request at `index` of a batch (`None` for a single event, whose errors then
    /// name no index).
    pub fn validate(self, index: Option<usize>) -> Result<Publication, PublishError> {
        let at = || index.map(|i| format!("[{i}].")).unwrap_or_default();
        let topic = Topic::parse(&self.topic).map_err(|source| PublishError::Topic { at: at(), source })?;
        let name =
            self.event.as_deref().map(EventName::parse).transpose().map_err(|source| PublishError::EventName { at: at(), source })?;
        let data = match self.data {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if self.retry.is_some_and(|ms| ms > MAX_RETRY_MS) {
            return Err(PublishError::Retry { at: at() });
        }
        Ok(Publication { topic, name, data, retry: self.retry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> (String, &'static str) {
        let e = parse_body(body.as_bytes(), 2)
            .and_then(|b| b.requests.into_iter().enumerate().try_for_each(|(i, r)| r.validate((!b.single).then_some(i)).map(drop)));
        let e = e.expect_err("refused");
        (e.to_string(), e.code())
    }

    #[test]
    fn one_event_or_a_batch() {
        let one = parse_body(br#"{"topic":"t","data":{"a":1},"event":"e","retry":5}"#, 1).expect("parses");
        assert!(one.single);
        let p = one.requests[0].clone().validate(None).expect("valid");
        assert_eq!(
            (p.topic.as_str(), p.name.as_ref().map(EventName::as_str), p.data.as_str(), p.retry),
            ("t", Some("e"), r#"{"a":1}"#, Some(5))
        );
        let batch = parse_body(br#"[{"topic":"t","data":"x\ny"}]"#, 1).expect("parses");
        assert!(!batch.single);
        assert_eq!(batch.requests[0].clone().validate(Some(0)).expect("valid").data, "x\ny");
    }

    #[test]
    fn errors_keep_the_api_codes_and_messages() {
        assert_eq!(message("{").1, "invalid_json");
        assert_eq!(message("1"), ("expected an event object or an array of them".into(), "invalid_event"));
        assert_eq!(message(r#"{"topic":"t"}"#).1, "invalid_event");
        assert_eq!(message("[]"), ("the batch has no events".into(), "empty_batch"));
        assert_eq!(
            message(r#"[{"topic":"t","data":1},{"topic":"t","data":1},{"topic":"t","data":1}]"#),
            ("3 events in the batch, at most 2".into(), "batch_too_large")
        );
        assert_eq!(message(r#"[{"topic":"t","data":1},{"topic":"a b","data":1}]"#).1, "invalid_topic");
        assert!(message(r#"[{"topic":"t","data":1},{"topic":"a b","data":1}]"#).0.starts_with("[1].topic: "));
        assert_eq!(message(r#"{"topic":"t","data":1,"event":"a\nb"}"#).1, "invalid_event");
        assert_eq!(message(r#"[{"topic":"t","data":1,"retry":86400001}]"#), ("[0].retry: at most 86400000 ms".into(), "invalid_event"));
    }
}
