//! JWT claim types and topic-pattern matching.
//!
//! A token grants topics through two claims, `subscribe` and `publish`, each an array of topic
//! patterns. A pattern is a topic name in which `*` matches any run of characters (dots included):
//! `orders.*` grants `orders.1` and `orders.eu.1`, `*.created` grants `orders.created`, `*` grants
//! every topic. Exact names grant just themselves.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{MAX_TOPIC_LEN, Topic, ValidationError};

/// Patterns are topics with `*` allowed, so they share the topic alphabet and length bound.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TopicPattern(String);

impl TopicPattern {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::EmptyTopic);
        }
        if s.len() > MAX_TOPIC_LEN {
            return Err(ValidationError::TopicTooLong);
        }
        // Validate the literal parts with the topic rules; `*` is the only extra character.
        for part in s.split('*').filter(|p| !p.is_empty()) {
            Topic::parse(part)?;
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern grants `topic`.
    pub fn matches(&self, topic: &Topic) -> bool {
        glob_match(self.0.as_bytes(), topic.as_str().as_bytes())
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TopicPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Wildcard match where `*` matches any run of bytes; linear-time greedy with one backtrack
/// point, so a hostile pattern like `*a*a*a*b` costs O(len(pattern) * len(topic)) at worst.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The claims the gateway reads from a token. Registered claims (`exp`, `nbf`, `iss`, `aud`) are
/// checked by the JWT library; they are listed here so that minting tools produce them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token is for; used in logs and (later) per-subject limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch. Required: the gateway closes a stream when it passes.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Topic patterns this token may follow with `GET /events`.
    #[serde(default)]
    pub subscribe: Vec<TopicPattern>,
    /// Topic patterns this token may publish to with `POST /publish`.
    #[serde(default)]
    pub publish: Vec<TopicPattern>,
}

impl Claims {
    pub fn may_subscribe(&self, topic: &Topic) -> bool {
        self.subscribe.iter().any(|p| p.matches(topic))
    }

    pub fn may_publish(&self, topic: &Topic) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        TopicPattern::parse(pattern).expect("pattern").matches(&Topic::parse(topic).expect("topic"))
    }

    #[test]
    fn exact_patterns_grant_only_themselves() {
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders.1"));
        assert!(!matches("orders.1", "orders"));
    }

    #[test]
    fn stars_match_any_run_including_dots() {
        assert!(matches("*", "anything.at/all"));
        assert!(matches("orders.*", "orders.1"));
        assert!(matches("orders.*", "orders.eu.1"));
        assert!(!matches("orders.*", "orders"));
        assert!(!matches("orders.*", "ordersX1"));
        assert!(matches("*.created", "orders.created"));
        assert!(!matches("*.created", "orders.created.x"));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(matches("a*b*c", "abbbc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("**", "x"));
    }

    #[test]
    fn patterns_refuse_bad_characters() {
        assert!(TopicPattern::parse("orders.*").is_ok());
        assert!(TopicPattern::parse("").is_err());
        assert!(TopicPattern::parse("a\nb.*").is_err());
        assert!(TopicPattern::parse("{x}*").is_err());
    }

    #[test]
    fn claims_deserialize_with_defaults() {
        let c: Claims = serde_json::from_str(r#"{"exp":1,"subscribe":["a.*"]}"#).expect("claims");
        assert!(c.may_subscribe(&Topic::parse("a.b").expect("topic")));
        assert!(!c.may_publish(&Topic::parse("a.b").expect("topic")));
        assert!(serde_json::from_str::<Claims>(r#"{"exp":1,"subscribe":["a\nb"]}"#).is_err());
        assert!(serde_json::from_str::<Claims>(r#"{"subscribe":["a"]}"#).is_err(), "exp is required");
    }
}
