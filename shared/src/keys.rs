//! The Redis key layout, which publishers in any language rely on:
//! - `{prefix}:stream:{T}`: the stream of topic `T` (history and ids); a gateway's publish sets it
//!   to expire the history's age after its last event, so idle topics cost nothing;
//! - `{prefix}:live:{T}`: its pub/sub channel for live-only events;
//! - `{prefix}:receipt:{T}:{token}`: for a few seconds after a gateway publish, the ids it
//!   appended, so that a publish sent again (its reply was lost with the connection) appends
//!   nothing twice;
//! - `{prefix}:control`: the control channel (revocations, counts, refreshes), a stream every node
//!   reads, trimmed and set to expire minutes after its last message;
//! - `{prefix}:revoked`: the standing revocations, a hash of `kind:value` → Unix ms it lapses,
//!   expiring with the last of them;
//! - `{prefix}:nodes`: the live nodes, a sorted set of node name → Unix ms last seen, expiring a
//!   minute after the last node left.
//! - `{prefix}:ticket:{digest}`: one stream ticket (`POST /tickets`), under the SHA-256 of the
//!   ticket (base64url), so that reading Redis does not yield usable tickets; it holds the
//!   ticket's claims until it is used, then an empty tombstone, and expires with the ticket;
//! - `{prefix}:deployment`: the tag every node of the deployment puts in its tickets, so that a
//!   ticket from another deployment is told apart; each node refreshes its short expiry.
//! - `{prefix}:alias:{T}:{name}`: the stream id of the event of topic `T` that its publisher
//!   named `name` (a Mercure update id), expiring with the history's max age, so that a client
//!   resuming from that name finds its place.
//!
//! Mercure updates live in the internal topic `$mercure` (`{prefix}:stream:{$mercure}`); its `$`
//! is not a character native topics may use, so the two namespaces never meet.
//!
//! The braces are literal: they make `T` a Redis Cluster hash tag, so every key of one topic
//! lives on one shard. Topic names cannot contain braces, so the tag is always exactly `T`.

use crate::event::Topic;

/// The default prefix (`GATEWAY_REDIS_PREFIX`).
pub const DEFAULT_PREFIX: &str = "sse";

/// Builds and parses the keys of one deployment (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    stream_prefix: String,
    live_prefix: String,
    receipt_prefix: String,
    prefix: String,
    ticket_prefix: String,
    deployment: String,
    alias_prefix: String,
}

impl KeyLayout {
    /// The layout under `prefix` (`GATEWAY_REDIS_PREFIX`): deployments sharing one Redis keep
    /// apart by prefix. The fixed parts are formatted once here, not per key.
    pub fn new(prefix: &str) -> Self {
        Self {
            stream_prefix: format!("{prefix}:stream:{{"),
            live_prefix: format!("{prefix}:live:{{"),
            receipt_prefix: format!("{prefix}:receipt:{{"),
            prefix: prefix.to_owned(),
            ticket_prefix: format!("{prefix}:ticket:"),
            deployment: format!("{prefix}:deployment"),
            alias_prefix: format!("{prefix}:alias:{{"),
        }
    }

    /// The stream of `topic`: its history and ids.
    pub fn stream(&self, topic: &Topic) -> String {
        format!("{}{topic}}}", self.stream_prefix)
    }

    /// The pub/sub channel of `topic`'s live-only events (same hash tag as its stream).
    pub fn live(&self, topic: &Topic) -> String {
        format!("{}{topic}}}", self.live_prefix)
    }

    /// The receipt of one publish call on `topic` (same hash tag, so same shard as the stream).
    pub fn receipt(&self, topic: &Topic, token: &str) -> String {
        format!("{}{topic}}}:{token}", self.receipt_prefix)
    }

    /// Where the id of the event of `topic` named `alias` is kept (same shard as the stream).
    pub fn alias(&self, topic: &Topic, alias: &str) -> String {
        format!("{}{topic}}}:{alias}", self.alias_prefix)
    }

    /// The control channel every node reads.
    pub fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// The standing revocations.
    pub fn revoked(&self) -> String {
        format!("{}:revoked", self.prefix)
    }

    /// The live nodes.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The entry of the ticket whose digest is `digest` (no hash tag: tickets spread over shards).
    pub fn ticket(&self, digest: &str) -> String {
        format!("{}{digest}", self.ticket_prefix)
    }

    /// The deployment's ticket tag.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The topic of a stream key of this layout.
    pub fn topic_of_stream(&self, key: &str) -> Option<Topic> {
        Self::tagged(key, &self.stream_prefix)
    }

    /// The topic of a live channel of this layout.
    pub fn topic_of_live(&self, channel: &str) -> Option<Topic> {
        Self::tagged(channel, &self.live_prefix)
    }

    fn tagged(s: &str, prefix: &str) -> Option<Topic> {
        Topic::parse_stored(s.strip_prefix(prefix)?.strip_suffix('}')?).ok()
    }
}

// The names the gateway's own jobs use, apart from the per-topic keys above.
impl KeyLayout {
    /// The name a node claims (`SET NX`, the bus's `claim`) to publish tick `slot` of the built-in
    /// clock on `topic`, so that with several nodes on one bus exactly one publishes each tick;
    /// on Redis it is the key `{prefix}:claim:clock:{T}:{slot}`, expiring after two ticks.
    pub fn clock_claim(topic: &Topic, slot: u128) -> String {
        format!("clock:{{{topic}}}:{slot}")
    }
}

/// Keyspace notifications: how nodes notice entries appended by any writer (a raw `XADD` too).
impl KeyLayout {
    /// The keyspace notification channel of topic `topic`'s stream in database `db`
    /// (`__keyspace@{db}__:{prefix}:stream:{T}`): Redis publishes the name of every command that
    /// changes the stream there (`xadd`, `del`, `expired`, …) when `notify-keyspace-events` includes
    /// `K` and `t` (or `A`). In a Cluster it is published only by the shard that holds the stream.
    pub fn keyspace(&self, db: u8, topic: &Topic) -> String {
        format!("__keyspace@{db}__:{}", self.stream(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout_and_parse_back() {
        let k = KeyLayout::new(DEFAULT_PREFIX);
        let t = Topic::parse("orders.eu").expect("topic");
        assert_eq!(k.stream(&t), "sse:stream:{orders.eu}");
        assert_eq!(k.live(&t), "sse:live:{orders.eu}");
        assert_eq!(k.receipt(&t, "ab12"), "sse:receipt:{orders.eu}:ab12");
        assert_eq!((k.control(), k.revoked(), k.nodes()), ("sse:control".into(), "sse:revoked".into(), "sse:nodes".into()));
        assert_eq!(k.ticket("q83v"), "sse:ticket:q83v");
        assert_eq!(k.deployment(), "sse:deployment");
        assert_eq!(k.topic_of_stream("sse:stream:{orders.eu}"), Some(t.clone()));
        assert_eq!(k.topic_of_live("sse:live:{orders.eu}"), Some(t));
        assert_eq!(k.topic_of_stream("sse:live:{orders.eu}"), None);
        assert_eq!(k.topic_of_stream("other:stream:{x}"), None);
        assert_eq!(k.topic_of_stream("sse:stream:{a b}"), None, "not a valid topic");
        assert_eq!(k.topic_of_stream("sse:stream:{$mercure}"), Some(Topic::mercure()));
        assert_eq!(k.topic_of_stream("sse:stream:{$other}"), None, "only the known internal topics");
        assert_eq!(k.alias(&Topic::mercure(), "urn:uuid:1"), "sse:alias:{$mercure}:urn:uuid:1");
        assert!(Topic::parse("$mercure").is_err(), "clients cannot name the internal topic");
    }

    #[test]
    fn the_clock_claims_one_name_per_topic_and_tick() {
        let clock = Topic::parse("clock").expect("topic");
        assert_eq!(KeyLayout::clock_claim(&clock, 42), "clock:{clock}:42");
        assert_ne!(KeyLayout::clock_claim(&clock, 42), KeyLayout::clock_claim(&clock, 43));
    }

    #[test]
    fn the_keyspace_channel_names_the_stream_key_in_its_database() {
        let k = KeyLayout::new(DEFAULT_PREFIX);
        let t = Topic::parse("orders.eu").expect("topic");
        assert_eq!(k.keyspace(0, &t), "__keyspace@0__:sse:stream:{orders.eu}");
        assert_eq!(k.keyspace(3, &t), format!("__keyspace@3__:{}", k.stream(&t)));
    }
}
