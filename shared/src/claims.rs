//! JWT claim types and topic-pattern matching.
//!
//! A token grants topics through two claims, `subscribe` and `publish`, each an array of topic
//! patterns. A pattern is a topic name in which `*` matches any run of characters (dots included):
//! `orders.*` grants `orders.1` and `orders.eu.1`, `*.created` grants `orders.created`, `*` grants
//! every topic. Exact names grant just themselves.
//!
//! Personal topics: a pattern may hold `{sub}`, which stands for the token's own subject, so an
//! identity provider grants every user their own topics with one claim (`user.{sub}.*`). The
//! subject must then be one segment ([`valid_subject`]), or the token is refused: a subject
//! holding a separator could reach into another subject's topics (`alice.x` inside
//! `user.alice.*`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{MAX_TOPIC_LEN, Topic, ValidationError};

/// What a pattern writes for the token's subject.
pub const SUBJECT_PLACEHOLDER: &str = "{sub}";

/// Patterns are topics with `*` (and [`SUBJECT_PLACEHOLDER`]) allowed, so they share the topic
/// alphabet and length bound. A pattern still holding the placeholder matches no topic (braces
/// are not topic characters): [`Claims::personalize`] fills it in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TopicPattern(String);

impl TopicPattern {
    /// Validates a pattern from a token's claim: non-empty, bounded like a topic, and with every
    /// literal part a valid topic piece, so a grant cannot name what no topic can be.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::EmptyTopic);
        }
        if s.len() > MAX_TOPIC_LEN {
            return Err(ValidationError::TopicTooLong);
        }
        // Validate the literal parts with the topic rules; `*` and the placeholder are the only
        // extras.
        for part in s.split(SUBJECT_PLACEHOLDER).flat_map(|piece| piece.split('*')).filter(|p| !p.is_empty()) {
            Topic::parse(part)?;
        }
        Ok(Self(s.to_owned()))
    }

    /// The pattern as the token wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern stands for each subject's own topics.
    pub fn is_personal(&self) -> bool {
        self.0.contains(SUBJECT_PLACEHOLDER)
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
    /// Not before, seconds since the epoch; checked by the JWT library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch; for the token's reader, the gateway does not check it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The issuer, checked against the configured one when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audience: a string or an array of them, as RFC 7519 allows, hence a raw JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Topic patterns this token may follow with `GET /events`.
    #[serde(default)]
    pub subscribe: Vec<TopicPattern>,
    /// Topic patterns this token may publish to with `POST /publish`.
    #[serde(default)]
    pub publish: Vec<TopicPattern>,
    /// The token's own id: what an administrator revokes to cut off one leaked token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Grants the admin API (`/admin/…`: disconnect, revoke, count). Subscriber and publisher
    /// grants say nothing about it, so a leaked subscriber token cannot revoke anyone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Why a token's subject cannot fill the `{sub}` of its grants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// A grant holds `{sub}` but the token names no subject to fill it with.
    #[error("the token grants personal topics ({{sub}}) but has no sub")]
    Missing,
    /// The subject is not one topic segment ([`valid_subject`]), so it could reach into another
    /// subject's topics.
    #[error("the token's sub is not one topic segment (letters, digits, '_', '-', '@')")]
    Invalid,
    /// The grant with the subject filled in breaks the pattern rules (too long, say).
    #[error("a grant with the token's sub filled in is not a valid pattern")]
    Pattern(#[source] ValidationError),
}

/// Whether `sub` can stand for `{sub}`: non-empty topic characters without the separators `.`,
/// `:` and `/`, so that no subject's topics can lie inside another's whichever of them a grant
/// puts after `{sub}`.
pub fn valid_subject(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= MAX_TOPIC_LEN && sub.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
}

impl Claims {
    /// The claims with `{sub}` in their grants replaced by the token's subject; unchanged when
    /// no grant is personal (then the subject may be anything).
    pub fn personalize(mut self) -> Result<Self, SubjectError> {
        if !self.subscribe.iter().chain(&self.publish).any(TopicPattern::is_personal) {
            return Ok(self);
        }
        let sub = self.sub.as_deref().ok_or(SubjectError::Missing)?;
        if !valid_subject(sub) {
            return Err(SubjectError::Invalid);
        }
        let fill = |patterns: &mut Vec<TopicPattern>| -> Result<(), SubjectError> {
            for p in patterns.iter_mut().filter(|p| p.is_personal()) {
                *p = TopicPattern::parse(&p.0.replace(SUBJECT_PLACEHOLDER, sub)).map_err(SubjectError::Pattern)?;
            }
            Ok(())
        };
        fill(&mut self.subscribe)?;
        fill(&mut self.publish)?;
        Ok(self)
    }

    /// Whether one of the `subscribe` grants covers `topic`.
    pub fn may_subscribe(&self, topic: &Topic) -> bool {
        self.subscribe.iter().any(|p| p.matches(topic))
    }

    /// Whether one of the `publish` grants covers `topic`.
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

    fn personal(sub: Option<&str>, subscribe: &[&str]) -> Result<Claims, SubjectError> {
        let subscribe = subscribe.iter().map(|p| TopicPattern::parse(p).expect("pattern")).collect();
        Claims { sub: sub.map(str::to_owned), exp: 1, subscribe, ..Claims::default() }.personalize()
    }

    #[test]
    fn sub_fills_personal_grants_and_nothing_else() {
        let c = personal(Some("alice"), &["user.{sub}.*", "news", "{sub}"]).expect("personalized");
        let may = |t: &str| c.may_subscribe(&Topic::parse(t).expect("topic"));
        assert!(may("user.alice.inbox") && may("news") && may("alice"));
        assert!(!may("user.bob.inbox") && !may("user.alicex.inbox") && !may("bob"));
        assert_eq!(personal(Some("a.b"), &["news"]).expect("no personal grant").sub.as_deref(), Some("a.b"), "any sub without {{sub}}");
    }

    #[test]
    fn a_sub_that_cannot_be_one_segment_is_refused() {
        assert_eq!(personal(None, &["user.{sub}"]), Err(SubjectError::Missing));
        for sub in ["", "alice.x", "a:b", "a/b", "a*", "a{sub}", "ünï", "a b", &"x".repeat(MAX_TOPIC_LEN + 1)] {
            assert_eq!(personal(Some(sub), &["user.{sub}.*"]), Err(SubjectError::Invalid), "{sub:?}");
        }
        assert!(matches!(personal(Some(&"x".repeat(196)), &["user.{sub}"]), Err(SubjectError::Pattern(_))), "too long once filled");
        assert!(personal(Some("3f2c-9a_b@idp"), &["user.{sub}"]).is_ok());
    }

    #[test]
    fn an_unfilled_placeholder_grants_nothing() {
        let p = TopicPattern::parse("user.{sub}.*").expect("pattern");
        assert!(!p.matches(&Topic::parse("user.alice.x").expect("topic")));
        assert!(TopicPattern::parse("user.{subject}").is_err() && TopicPattern::parse("{sub").is_err());
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
