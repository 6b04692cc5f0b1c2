//! Subscription events (1.0, "active subscriptions"): the private update the hub publishes when a
//! subscription starts and when it ends, so that an authorized client can keep a list of who is
//! subscribed to what (presence, "who is viewing this document").
//!
//! One event per matcher of the subscription. Its topic is the hub's path followed by
//! `/subscriptions/{match_type}/{match}/{subscriber}`, each variable percent-encoded once, whole;
//! its SSE type is the reserved `mercure` (publishers cannot forge it: `update.rs`); its data a
//! JSON document naming the matcher, the subscriber and whether the subscription is active, with
//! the payload the subscriber's token attaches to that matcher.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use url::Url;

use super::selector::MatcherType;
use super::update::{RESERVED_TYPE, Update, generate_id};

/// A fresh subscriber identifier: random, so that it discloses nothing about the token's `sub`
/// to the other clients allowed to see subscription events, and unique per stream.
pub(crate) fn subscriber_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// The topic of the events of one matcher of one subscriber.
pub(crate) fn topic(hub: &Url, kind: MatcherType, matcher: &str, subscriber: &str) -> String {
    // Everything but unreserved characters is encoded, `%` included: exactly once, whole.
    const SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let path = hub.path().trim_end_matches('/');
    format!("{path}/subscriptions/{}/{}/{}", kind.name(), utf8_percent_encode(matcher, SET), utf8_percent_encode(subscriber, SET))
}

/// Which end of a subscription an update announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Started,
    Ended,
}

/// The update announcing that the subscription of `subscriber` to `matcher` started or ended
/// (`"active"` in the document).
pub(crate) fn update(hub: &Url, kind: MatcherType, matcher: &str, subscriber: &str, phase: Phase, payload: Option<&Value>) -> Update {
    let topic = topic(hub, kind, matcher, subscriber);
    let mut doc = json!({
        "id": topic,
        "type": "subscription",
        "match_type": kind.name(),
        "match": matcher,
        "subscriber": subscriber,
        "active": phase == Phase::Started,
    });
    if let Some(payload) = payload {
        doc["payload"] = payload.clone();
    }
    Update {
        topics: vec![topic],
        data: doc.to_string(),
        id: generate_id(),
        publisher_id: false,
        event_type: Some(RESERVED_TYPE.to_owned()),
        retry: None,
        private: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_encodes_each_variable_once_and_whole() {
        let hub = Url::parse("https://example.com/.well-known/mercure").expect("url");
        let t = topic(&hub, MatcherType::UrlPattern, "https://example.com/:selector", "urn:uuid:bb3d");
        assert_eq!(t, "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2F%3Aselector/urn%3Auuid%3Abb3d");
        assert_eq!(
            topic(&hub, MatcherType::Exact, "a%20b", "s"),
            "/.well-known/mercure/subscriptions/exact/a%2520b/s",
            "no double meaning"
        );
    }

    #[test]
    fn the_event_is_private_typed_mercure_and_names_its_subscription() {
        let hub = Url::parse("https://example.com/.well-known/mercure").expect("url");
        let payload = json!({ "name": "Alice" });
        let u = update(&hub, MatcherType::Exact, "books/1", "urn:uuid:x", Phase::Ended, Some(&payload));
        assert!(u.private);
        assert_eq!(u.event_type.as_deref(), Some("mercure"));
        let doc: Value = serde_json::from_str(&u.data).expect("json");
        assert_eq!(doc["id"], u.topics[0].as_str());
        assert_eq!(
            (doc["type"].as_str(), doc["match_type"].as_str(), doc["match"].as_str()),
            (Some("subscription"), Some("exact"), Some("books/1"))
        );
        assert_eq!((doc["active"].as_bool(), &doc["payload"]), (Some(false), &payload));
        assert!(u.id.starts_with("urn:uuid:") && u.id != u.topics[0], "the SSE id is the hub's own");
        assert!(subscriber_id() != subscriber_id());
    }
}
