//! A Mercure update as it travels on the bus, and as every node decodes it once.
//!
//! Updates are stored as native events of the internal topic `$mercure` (see
//! `shared::Topic::mercure`), their data a small JSON document (`Stored`). Storing them as
//! events is what gives Mercure the native guarantees for free: ids from one Redis stream (so one
//! order for every node), history, resumption on any node, cluster and failover handling.
//!
//! A node decodes each update once, into a [`Dispatch`] shared by all its Mercure streams: the
//! SSE frame (encoded once) and the topics to match. What stays per stream is the matching
//! itself: each stream has its own selectors and grant.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use url::Url;

use super::frame;
use super::selector::TopicRef;
use super::update::Update;

/// The stored form of an update (the data of its `$mercure` event). Short field names: it is
/// written once per update but read by every node and kept in history.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The update id (the publisher's, or generated).
    id: String,
    /// Topics, the canonical one first.
    t: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<u64>,
    data: String,
}

/// The stored form of `update`.
pub(crate) fn store(update: &Update) -> String {
    let stored = Stored {
        id: update.id.clone(),
        t: update.topics.clone(),
        private: update.private,
        r#type: update.event_type.clone(),
        retry: update.retry,
        data: update.data.clone(),
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// An update as a node's streams need it.
#[derive(Debug)]
pub(crate) struct Dispatch {
    /// The update's id, which the unit tests check dispatch keeps; streams take it from `frame`.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the unit tests only"))]
    pub id: String,
    pub topics: Vec<String>,
    pub private: bool,
    /// The SSE frame, shared by every stream that sends it.
    pub frame: Bytes,
    /// The topics resolved on the hub's URL (for URL patterns), parsed on first need.
    urls: OnceLock<Vec<Option<Url>>>,
}

impl Dispatch {
    /// Reads a stored update; `None` for data that is not one (an entry added to the internal
    /// stream by hand), which no stream then sends.
    pub(crate) fn decode(raw: &str) -> Option<Self> {
        let s: Stored = serde_json::from_str(raw).ok()?;
        if s.t.is_empty() || s.id.is_empty() {
            return None;
        }
        let update =
            Update { topics: s.t, data: s.data, id: s.id, publisher_id: true, event_type: s.r#type, retry: s.retry, private: s.private };
        let frame = frame::encode(&update);
        Some(Self { id: update.id, topics: update.topics, private: update.private, frame, urls: OnceLock::new() })
    }

    /// The update's topics, ready for matching. `hub` is the same for every caller of a node.
    pub(crate) fn topic_refs<'a>(&'a self, hub: &'a Url) -> Vec<TopicRef<'a>> {
        let urls = self.urls.get_or_init(|| self.topics.iter().map(|t| hub.join(t).ok()).collect());
        self.topics.iter().zip(urls).map(|(t, url)| TopicRef::resolved(t, url.as_ref())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mercure::selector::{MatcherType, Selector};

    fn update() -> Update {
        Update {
            topics: vec!["https://example.com/books/1".into(), "/alt/1".into()],
            data: "line 1\n\n  line 3".into(),
            id: "urn:uuid:x".into(),
            publisher_id: false,
            event_type: Some("book".into()),
            retry: Some(10),
            private: true,
        }
    }

    #[test]
    fn an_update_survives_storage_with_its_frame() {
        let d = Dispatch::decode(&store(&update())).expect("decodes");
        assert_eq!((d.id.as_str(), d.private, d.topics.len()), ("urn:uuid:x", true, 2));
        assert_eq!(d.frame, frame::encode(&update()));
    }

    #[test]
    fn what_is_not_a_stored_update_is_skipped() {
        for raw in ["", "hello", "{}", r#"{"id":"a","t":[],"data":""}"#, r#"{"id":"","t":["x"],"data":""}"#] {
            assert!(Dispatch::decode(raw).is_none(), "{raw:?}");
        }
    }

    #[test]
    fn topics_resolve_once_on_the_hub_for_url_patterns() {
        let hub = Url::parse("https://hub.example/.well-known/mercure").expect("url");
        let d = Dispatch::decode(&store(&update())).expect("decodes");
        let pattern = Selector::v1(MatcherType::UrlPattern, "https://hub.example/alt/:id", &hub).expect("pattern");
        let refs = d.topic_refs(&hub);
        assert!(!pattern.matches(&refs[0]));
        assert!(pattern.matches(&refs[1]), "the relative alternate topic resolves on the hub");
    }
}
