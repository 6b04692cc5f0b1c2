//! The event model: validated newtypes, parsed once at the edge and trusted everywhere after.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest topic name accepted, in bytes. Topics become Redis keys and URL query values, so they
/// are kept short and ASCII.
pub const MAX_TOPIC_LEN: usize = 200;
/// Longest event name accepted, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 100;
/// Event names starting with this prefix are reserved for signals the gateway itself sends.
pub const RESERVED_EVENT_PREFIX: &str = "gateway.";

// The signals in that namespace. Clients (and the load tester) match on these names, so they
// are part of the wire format and never change.

/// Tells a client that events were trimmed from history before it could resume; its data names
/// the topic and the id after which events are missing. Sent without an id, so the client's
/// `Last-Event-ID` does not move.
pub const LOST_EVENT: &str = "gateway.lost";
/// The last event of a stream an administrator revoked: why, and until when the revocation stands.
pub const REVOKED_EVENT: &str = "gateway.revoked";
/// Sent before a stream's token expires: where to present a fresh token to keep the stream, and
/// how long the current one has left.
pub const REFRESH_EVENT: &str = "gateway.refresh";

/// Why a topic, event name or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// An empty topic name.
    #[error("topic must not be empty")]
    EmptyTopic,
    /// A topic longer than [`MAX_TOPIC_LEN`].
    #[error("topic is longer than {MAX_TOPIC_LEN} bytes")]
    TopicTooLong,
    /// A character outside the topic alphabet (the first one found).
    #[error("topic contains {0:?}; allowed are ASCII letters, digits and . _ - : / @")]
    TopicCharacter(char),
    /// An empty event name.
    #[error("event name must not be empty")]
    EmptyEventName,
    /// An event name longer than [`MAX_EVENT_NAME_LEN`].
    #[error("event name is longer than {MAX_EVENT_NAME_LEN} bytes")]
    EventNameTooLong,
    /// CR, LF or NUL in an event name: it would inject SSE fields.
    #[error("event name must not contain CR, LF or NUL")]
    EventNameControl,
    /// A publisher's event name in the [`RESERVED_EVENT_PREFIX`] namespace.
    #[error("event names starting with \"gateway.\" are reserved")]
    EventNameReserved,
    /// Not `<ms>-<seq>` (or `<ms>`); holds the input, cut to 64 bytes.
    #[error("invalid stream id {0:?}: expected <milliseconds>-<sequence>")]
    StreamId(String),
}

/// Whether `c` may appear in a topic name. Excludes `*` (pattern wildcard), `{`/`}` (Redis Cluster
/// hash-tag delimiters in the key layout), `,` and whitespace, and everything outside ASCII, so
/// that no two topics look alike and no topic can break a key, a header or a frame.
fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@')
}

/// A validated topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic(String);

impl Topic {
    /// Validates and wraps a topic name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::EmptyTopic);
        }
        if s.len() > MAX_TOPIC_LEN {
            return Err(ValidationError::TopicTooLong);
        }
        if let Some(c) = s.chars().find(|c| !is_topic_char(*c)) {
            return Err(ValidationError::TopicCharacter(c));
        }
        Ok(Self(s.to_owned()))
    }

    /// The internal topic that holds Mercure updates (the hub at `/.well-known/mercure`). Its
    /// `$` is outside the characters [`Topic::parse`] allows, so no native client can publish to
    /// it or follow it: native topics and Mercure topics stay separate namespaces while Mercure
    /// updates use the same history, ids and fan-out as native events.
    pub fn mercure() -> Self {
        Self(MERCURE_TOPIC.to_owned())
    }

    /// Like [`Topic::parse`], and also accepts the gateway's internal topics: for names read back
    /// from the gateway's own storage (Redis keys and channels), never for names a client sent.
    pub fn parse_stored(s: &str) -> Result<Self, ValidationError> {
        if s == MERCURE_TOPIC { Ok(Self::mercure()) } else { Self::parse(s) }
    }

    /// Whether this is one of the gateway's internal topics.
    pub fn is_internal(&self) -> bool {
        self.0 == MERCURE_TOPIC
    }

    /// The topic's name, as it appears in keys, URLs and the publish body.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of [`Topic::mercure`].
pub const MERCURE_TOPIC: &str = "$mercure";

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Topic {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated SSE event name (the `event:` field).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventName(String);

impl EventName {
    /// Validates a name a publisher chose: no line breaks or NUL (they would inject SSE fields),
    /// bounded length, and not in the gateway's reserved namespace.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let name = Self::parse_any(s)?;
        if s.starts_with(RESERVED_EVENT_PREFIX) {
            return Err(ValidationError::EventNameReserved);
        }
        Ok(name)
    }

    /// Like [`EventName::parse`] but allows the reserved `gateway.` prefix; for the gateway's own
    /// signals and for parsing what a server sent.
    pub fn parse_any(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::EmptyEventName);
        }
        if s.len() > MAX_EVENT_NAME_LEN {
            return Err(ValidationError::EventNameTooLong);
        }
        if s.contains(['\r', '\n', '\0']) {
            return Err(ValidationError::EventNameControl);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name, as the `event:` field carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A position in a topic's history, in the shape of a Redis stream id: `<ms>-<seq>`.
///
/// The embedded bus mints ids of the same shape (wall-clock milliseconds, then a sequence within
/// the millisecond) so that cursors, the lost-events signal and client code are the same whichever
/// bus a deployment runs, and a raw stream id from Redis is a valid `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StreamId {
    /// Milliseconds since the epoch when the entry was added (Redis's or the embedded bus's clock).
    pub ms: u64,
    /// The entry's place among those added in the same millisecond.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, before every entry: reading after it reads a topic's whole history.
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// The id `<ms>-<seq>`.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Parses `<ms>-<seq>`, or `<ms>` alone (meaning `<ms>-0`, as Redis reads it).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::StreamId(truncate(s, 64));
        let digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        let (ms, seq) = match s.split_once('-') {
            Some((ms, seq)) => (ms, seq),
            None => (s, "0"),
        };
        if !digits(ms) || !digits(seq) {
            return Err(bad());
        }
        Ok(Self { ms: ms.parse().map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }

    /// The next id after `self` in Redis order (used to make exclusive ranges inclusive).
    pub fn successor(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self { ms: self.ms.saturating_add(1), seq: 0 },
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for StreamId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One event of one topic, as a bus stores and delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The topic the event was published to.
    pub topic: Topic,
    /// Position in the topic's history; `None` for live-only events (they have no history and
    /// so no `id:` line, which leaves the client's `Last-Event-ID` where it was).
    pub id: Option<StreamId>,
    /// The `event:` field; `None` means the default `message`.
    pub name: Option<EventName>,
    /// The payload; may contain any line breaks, the encoder splits it into `data:` lines.
    pub data: String,
    /// A reconnection delay (ms) to send with the event.
    pub retry: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_accept_the_documented_alphabet() {
        for ok in ["clock", "orders.eu-1", "user:42/inbox", "a@b_c", &"x".repeat(MAX_TOPIC_LEN)] {
            assert!(Topic::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn topics_refuse_what_could_inject_or_confuse() {
        assert_eq!(Topic::parse(""), Err(ValidationError::EmptyTopic));
        assert_eq!(Topic::parse(&"x".repeat(MAX_TOPIC_LEN + 1)), Err(ValidationError::TopicTooLong));
        for (bad, c) in [("a\nb", '\n'), ("a\0", '\0'), ("a b", ' '), ("a*", '*'), ("{a}", '{'), ("оrders", 'о'), ("a,b", ',')] {
            assert_eq!(Topic::parse(bad), Err(ValidationError::TopicCharacter(c)), "{bad:?}");
        }
    }

    #[test]
    fn event_names_refuse_line_breaks_and_the_reserved_prefix() {
        assert!(EventName::parse("order.created").is_ok());
        for bad in ["a\nb", "a\rb", "a\0"] {
            assert_eq!(EventName::parse(bad), Err(ValidationError::EventNameControl));
        }
        assert_eq!(EventName::parse(""), Err(ValidationError::EmptyEventName));
        assert_eq!(EventName::parse("gateway.lost"), Err(ValidationError::EventNameReserved));
        assert!(EventName::parse_any("gateway.lost").is_ok());
    }

    #[test]
    fn stream_ids_parse_like_redis_and_order_numerically() {
        assert_eq!(StreamId::parse("1700000000000-5"), Ok(StreamId::new(1_700_000_000_000, 5)));
        assert_eq!(StreamId::parse("17"), Ok(StreamId::new(17, 0)));
        for bad in ["", "-", "1-", "-1", "a-1", "1-2-3", "1 -2", "+1-2", "123456789012345678901-0"] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StreamId::new(2, 0) > StreamId::new(1, 99));
        assert_eq!(StreamId::new(1, u64::MAX).successor(), StreamId::new(2, 0));
        assert_eq!(StreamId::new(9, 3).to_string(), "9-3");
    }
}
