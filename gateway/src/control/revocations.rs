//! The revocations standing on this node: who may not hold or open a stream, and until when.
//!
//! The table is a copy: the bus keeps the deployment's list (so a node that starts, or comes back
//! after losing Redis, loads it), and every node applies the ones announced on the control
//! channel. Entries leave by time only, so a reload never undoes a revocation announced since.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shared::Topic;

/// What a revocation names. Serialized as `{"subject": "alice"}`, `{"jti": "…"}` or
/// `{"topic": "…"}`: the same shape the admin API takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every token of this subject.
    Subject(String),
    /// The one token with this id.
    Jti(String),
    /// Every stream following this topic.
    Topic(Topic),
}

impl Target {
    /// A stable label for logs, metrics and the `gateway.revoked` frame.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Subject(_) => "subject",
            Self::Jti(_) => "jti",
            Self::Topic(_) => "topic",
        }
    }

    /// The field under which the bus stores it: `kind:value`.
    pub fn key(&self) -> String {
        match self {
            Self::Subject(s) | Self::Jti(s) => format!("{}:{s}", self.kind()),
            Self::Topic(t) => format!("topic:{t}"),
        }
    }

    /// The inverse of [`Target::key`]; `None` for anything else (a newer node's kind, damage).
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, value) = key.split_once(':')?;
        match kind {
            "subject" => Some(Self::Subject(value.to_owned())),
            "jti" => Some(Self::Jti(value.to_owned())),
            "topic" => Topic::parse(value).ok().map(Self::Topic),
            _ => None,
        }
    }

    /// Whether a stream or token with these attributes falls under it.
    pub fn covers(&self, sub: Option<&str>, jti: Option<&str>, topics: &[Topic]) -> bool {
        match self {
            Self::Subject(s) => sub == Some(s.as_str()),
            Self::Jti(j) => jti == Some(j.as_str()),
            Self::Topic(t) => topics.contains(t),
        }
    }
}

/// Standing revocations, each with the time (Unix ms) it lapses.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    standing: HashMap<Target, u64>,
}

impl Revocations {
    /// Adds or lengthens a revocation; a shorter one never shortens a standing one.
    pub(crate) fn insert(&mut self, target: Target, until_ms: u64) {
        let until = self.standing.entry(target).or_default();
        *until = (*until).max(until_ms);
    }

    /// Whether `target` already stands at least until `until_ms`.
    pub(crate) fn holds(&self, target: &Target, until_ms: u64) -> bool {
        self.standing.get(target).is_some_and(|u| *u >= until_ms)
    }

    /// Forgets the revocations that lapsed by `now_ms`.
    pub(crate) fn prune(&mut self, now_ms: u64) {
        self.standing.retain(|_, until| *until > now_ms);
        crate::bus::shrink_idle(&mut self.standing);
    }

    /// The revocation that refuses these attributes at `now_ms`, if any.
    pub(crate) fn refusing(&self, sub: Option<&str>, jti: Option<&str>, topics: &[Topic], now_ms: u64) -> Option<(&Target, u64)> {
        if self.standing.is_empty() {
            return None;
        }
        // Looked up by key, not scanned: a node may hold many revocations.
        let mut candidates: Vec<Target> = Vec::with_capacity(2 + topics.len());
        candidates.extend(sub.map(|s| Target::Subject(s.to_owned())));
        candidates.extend(jti.map(|j| Target::Jti(j.to_owned())));
        candidates.extend(topics.iter().cloned().map(Target::Topic));
        candidates
            .into_iter()
            .find_map(|t| self.standing.get_key_value(&t).filter(|(_, until)| **until > now_ms).map(|(t, until)| (t, *until)))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.standing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Topic {
        Topic::parse(s).expect("topic")
    }

    #[test]
    fn keys_round_trip_and_unknown_kinds_are_ignored() {
        for t in [Target::Subject("alice".into()), Target::Jti("a:b".into()), Target::Topic(topic("orders.eu"))] {
            assert_eq!(Target::from_key(&t.key()), Some(t));
        }
        assert_eq!(Target::from_key("group:x"), None);
        assert_eq!(Target::from_key("topic:not a topic"), None);
        assert_eq!(Target::from_key("nocolon"), None);
    }

    #[test]
    fn a_revocation_refuses_what_it_names_until_it_lapses() {
        let mut r = Revocations::default();
        r.insert(Target::Subject("alice".into()), 1_000);
        r.insert(Target::Topic(topic("t")), 2_000);
        assert!(r.refusing(Some("alice"), None, &[], 999).is_some());
        assert!(r.refusing(Some("alice"), None, &[], 1_000).is_none(), "lapsed at its time");
        assert!(r.refusing(Some("bob"), Some("alice"), &[topic("u")], 10).is_none(), "a jti is not a subject");
        assert_eq!(r.refusing(Some("bob"), None, &[topic("u"), topic("t")], 10).map(|(t, _)| t.kind()), Some("topic"));
        r.insert(Target::Subject("alice".into()), 500);
        assert!(r.refusing(Some("alice"), None, &[], 999).is_some(), "a shorter revocation does not shorten it");
        r.prune(1_500);
        assert_eq!(r.len(), 1);
    }
}
