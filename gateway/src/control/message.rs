//! What nodes say to each other on the control channel (JSON, one message per entry).
//!
//! Asks go to every node; each node that has something to say answers with a [`Message::Reply`]
//! addressed to the asking node, on the same channel. Nodes ignore what is not theirs, and a
//! message they cannot parse (a newer node's kind) is skipped with a warning.

use serde::{Deserialize, Serialize};
use shared::Claims;

use super::revocations::Target;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Message {
    /// Close the streams under `target` (after a last `gateway.revoked`) and refuse it until
    /// `until_ms` (Unix ms; in the past for a disconnect that refuses nothing). Every node
    /// answers with how many streams it closed.
    Revoke {
        ask: String,
        from: String,
        target: Target,
        until_ms: u64,
    },
    /// How many streams fall under `target`; every node answers.
    Count {
        ask: String,
        from: String,
        target: Target,
    },
    /// Extend stream `stream` with these (verified) claims; only the holder answers.
    Refresh {
        ask: String,
        from: String,
        stream: String,
        claims: Claims,
    },
    Reply {
        ask: String,
        to: String,
        node: String,
        answer: Answer,
    },
}

/// A node's answer to an ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Answer {
    /// Streams closed (revoke) or counted (count) on the answering node.
    Streams { streams: usize },
    /// The stream now lives until the new token's `exp`.
    Refreshed { exp: u64 },
    /// The stream keeps its old expiry: the new token is not good enough for it.
    RefreshRefused { reason: RefreshRefusal },
}

/// Why a fresh token cannot extend a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RefreshRefusal {
    #[error("the new token's subject is not the stream's")]
    Subject,
    #[error("the new token does not grant every topic of the stream")]
    Topics,
    #[error("the new token expires no later than the stream's")]
    NotLater,
}

impl RefreshRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Subject => "refresh_subject",
            Self::Topics => "refresh_topics",
            Self::NotLater => "refresh_not_later",
        }
    }
}

impl Message {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_their_documented_shape() {
        let m = Message::Revoke { ask: "a1".into(), from: "n1".into(), target: Target::Subject("alice".into()), until_ms: 5 };
        let json = m.encode();
        assert_eq!(json, r#"{"kind":"revoke","ask":"a1","from":"n1","target":{"subject":"alice"},"until_ms":5}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).expect("parses"), m);
        let r = Message::Reply {
            ask: "a1".into(),
            to: "n1".into(),
            node: "n2".into(),
            answer: Answer::RefreshRefused { reason: RefreshRefusal::Topics },
        };
        assert_eq!(serde_json::from_str::<Message>(&r.encode()).expect("parses"), r);
    }
}
