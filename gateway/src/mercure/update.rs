//! A publish request body (`application/x-www-form-urlencoded`) parsed into a validated
//! [`Update`], with each version's rules and the status the draft gives for breaking them.
//!
//! Fields: `topic` (repeatable: the first is canonical, the rest alternates; at least one),
//! `data`, `id`, `type`, `retry`, `private`. Unknown fields are ignored, as both drafts require. A
//! field given twice counts once, the first time (as the PHP and Go form readers do), except
//! `topic`. `private` is set by the field's presence, whatever its value (`on`, empty, anything):
//! both drafts say so, and the 1.0 draft forbids reading the value.
//!
//! Decoding is `form_urlencoded`'s: `+` is a space and malformed UTF-8 becomes U+FFFD, exactly as
//! the WHATWG parser the 1.0 draft cites (and `URLSearchParams`) does, so the hub reads a body the
//! way the browser that built it would.

use http::StatusCode;
use url::Url;
use uuid::Uuid;

use super::text::{forbidden_char, line_break_char};
use crate::config::Protocol;

/// The id value reserved for "replay everything" in `Last-Event-ID`.
pub(crate) const EARLIEST: &str = "earliest";
/// The event type a 1.0 hub keeps for the events it generates itself.
pub(crate) const RESERVED_TYPE: &str = "mercure";

/// A publish request's field, to say which one was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Topic,
    Data,
    Id,
    Type,
    /// Named only by [`UpdateError::field`], for the unit tests: no limit applies to `retry`.
    #[cfg(test)]
    Retry,
}

impl Field {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Topic => "topic",
            Field::Data => "data",
            Field::Id => "id",
            Field::Type => "type",
            #[cfg(test)]
            Field::Retry => "retry",
        }
    }
}

/// Why a publish request was refused; [`UpdateError::status`] is the draft's status for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpdateError {
    #[error("missing topic")]
    MissingTopic,
    #[error("more than {0} topics")]
    TooManyTopics(usize),
    #[error("the {} field is longer than {} bytes", .0.name(), .1)]
    TooLong(Field, usize),
    #[error("the {} field contains the forbidden character U+{:04X}", .0.name(), u32::from(*.1))]
    Forbidden(Field, char),
    #[error("the topic \"*\" is reserved for the wildcard")]
    WildcardTopic,
    #[error("the topic addresses the hub's reserved namespace")]
    ReservedTopic,
    #[error("the id must not start with #")]
    IdStartsWithHash,
    #[error("the id \"earliest\" is reserved")]
    ReservedId,
    #[error("the type \"mercure\" is reserved for the hub")]
    ReservedType,
    #[error("the retry field must be a number of milliseconds (ASCII digits)")]
    InvalidRetry,
}

impl UpdateError {
    /// 413 for what exceeds our limits (the 1.0 draft's "Content Too Large"), 400 for the rest.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            UpdateError::TooManyTopics(_) | UpdateError::TooLong(..) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The field at fault (what the unit tests check a refusal by).
    #[cfg(test)]
    pub(crate) fn field(&self) -> Field {
        match self {
            UpdateError::TooLong(f, _) | UpdateError::Forbidden(f, _) => *f,
            UpdateError::IdStartsWithHash | UpdateError::ReservedId => Field::Id,
            UpdateError::ReservedType => Field::Type,
            UpdateError::InvalidRetry => Field::Retry,
            _ => Field::Topic,
        }
    }
}

/// Bounds on one update (the body as a whole is bounded by the route's body limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpdateLimits {
    pub max_topics: usize,
    pub max_topic_len: usize,
    pub max_id_len: usize,
    pub max_type_len: usize,
    pub max_data_len: usize,
}

impl Default for UpdateLimits {
    /// Generous for real publishers (Symfony sends one to a few topics, ids are UUID URNs), small
    /// enough that one update cannot make fan-out match thousands of topics.
    fn default() -> Self {
        Self { max_topics: 32, max_topic_len: 2048, max_id_len: 256, max_type_len: 256, max_data_len: 1 << 20 }
    }
}

/// A validated update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Update {
    /// At least one; the first is the canonical topic.
    pub topics: Vec<String>,
    pub data: String,
    /// The publisher's id, or one generated here (`urn:uuid:` + UUIDv7).
    pub id: String,
    /// Whether `id` came from the publisher.
    pub publisher_id: bool,
    pub event_type: Option<String>,
    pub retry: Option<u64>,
    pub private: bool,
}

impl Update {
    pub(crate) fn canonical_topic(&self) -> &str {
        &self.topics[0]
    }
}

/// How to judge a publish request: the version's rules, the hub's URL (whose path subtree 1.0
/// reserves) and the bounds.
#[derive(Debug, Clone)]
pub(crate) struct UpdateRules {
    pub protocol: Protocol,
    pub hub_url: Url,
    pub limits: UpdateLimits,
}

/// Parses and validates a publish request body.
pub(crate) fn parse_update(body: &[u8], rules: &UpdateRules) -> Result<Update, UpdateError> {
    let limits = &rules.limits;
    let mut topics = Vec::new();
    let (mut data, mut id, mut event_type, mut retry) = (None, None, None, None);
    let mut private = false;
    for (name, value) in form_urlencoded::parse(body) {
        match &*name {
            "topic" => {
                if topics.len() == limits.max_topics {
                    return Err(UpdateError::TooManyTopics(limits.max_topics));
                }
                topics.push(value.into_owned());
            }
            "data" => set_once(&mut data, value),
            "id" => set_once(&mut id, value),
            "type" => set_once(&mut event_type, value),
            "retry" => set_once(&mut retry, value),
            "private" => private = true,
            _ => {}
        }
    }
    if topics.is_empty() {
        return Err(UpdateError::MissingTopic);
    }
    for topic in &topics {
        check_topic(topic, rules)?;
    }
    let data = data.unwrap_or_default();
    bounded(Field::Data, &data, limits.max_data_len)?;
    // An empty `id` is taken as none: as an SSE `id:` it would reset the client's cursor.
    let publisher_id = id.filter(|id| !id.is_empty()).map(|id| check_id(id, rules)).transpose()?;
    let event_type = event_type.filter(|t| !t.is_empty()).map(|t| check_type(t, rules)).transpose()?;
    let retry = retry.map(|r| parse_retry(&r)).transpose()?;
    Ok(Update {
        topics,
        data,
        publisher_id: publisher_id.is_some(),
        id: publisher_id.unwrap_or_else(generate_id),
        event_type,
        retry,
        private,
    })
}

/// A fresh update id: a UUIDv7 URN, an IRI as both drafts ask, and time-ordered so ids sort
/// roughly by publication in logs and stores.
pub(crate) fn generate_id() -> String {
    format!("urn:uuid:{}", Uuid::now_v7())
}

fn set_once(slot: &mut Option<String>, value: std::borrow::Cow<'_, str>) {
    if slot.is_none() {
        *slot = Some(value.into_owned());
    }
}

fn bounded(field: Field, value: &str, max: usize) -> Result<(), UpdateError> {
    if value.len() > max { Err(UpdateError::TooLong(field, max)) } else { Ok(()) }
}

/// The characters a value of `field` may not hold: 1.0 forbids controls and format characters;
/// for 0.x only what could break an SSE line is refused.
fn check_chars(field: Field, value: &str, protocol: Protocol) -> Result<(), UpdateError> {
    let bad = match protocol {
        Protocol::V1 => forbidden_char(value),
        Protocol::Legacy => line_break_char(value),
    };
    bad.map_or(Ok(()), |c| Err(UpdateError::Forbidden(field, c)))
}

fn check_topic(topic: &str, rules: &UpdateRules) -> Result<(), UpdateError> {
    bounded(Field::Topic, topic, rules.limits.max_topic_len)?;
    check_chars(Field::Topic, topic, rules.protocol)?;
    if rules.protocol == Protocol::V1 {
        if topic == "*" {
            return Err(UpdateError::WildcardTopic);
        }
        if addresses_hub_namespace(topic, &rules.hub_url) {
            return Err(UpdateError::ReservedTopic);
        }
    }
    Ok(())
}

fn check_id(id: String, rules: &UpdateRules) -> Result<String, UpdateError> {
    bounded(Field::Id, &id, rules.limits.max_id_len)?;
    check_chars(Field::Id, &id, rules.protocol)?;
    if id.starts_with('#') {
        // Both drafts keep `#…` ids for the hub's own sequences.
        return Err(UpdateError::IdStartsWithHash);
    }
    if id == EARLIEST {
        // 1.0 forbids it; for 0.x too, since a cursor equal to it would mean "replay everything".
        return Err(UpdateError::ReservedId);
    }
    Ok(id)
}

fn check_type(event_type: String, rules: &UpdateRules) -> Result<String, UpdateError> {
    bounded(Field::Type, &event_type, rules.limits.max_type_len)?;
    check_chars(Field::Type, &event_type, rules.protocol)?;
    if rules.protocol == Protocol::V1 && event_type == RESERVED_TYPE {
        return Err(UpdateError::ReservedType);
    }
    Ok(event_type)
}

/// ASCII digits only. A value too large for a `u64` of milliseconds (half a billion years) is
/// refused too rather than clamped, so that what the subscriber receives is what was sent.
fn parse_retry(retry: &str) -> Result<u64, UpdateError> {
    if retry.is_empty() || !retry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UpdateError::InvalidRetry);
    }
    retry.parse().map_err(|_| UpdateError::InvalidRetry)
}

/// Whether `topic`, resolved on the hub's URL, names the hub's path or something under it. The
/// path is compared after the URL parser removed dot segments and after percent-encoded
/// unreserved characters are decoded, so `/.well-known/%6Dercure/x` and `/a/../.well-known/mercure`
/// are caught, whatever the scheme and host. A topic that is not a URL reference names no path.
pub(crate) fn addresses_hub_namespace(topic: &str, hub: &Url) -> bool {
    let Ok(url) = hub.join(topic) else { return false };
    let path = decode_unreserved(url.path());
    let hub_path = hub.path().trim_end_matches('/');
    path == hub_path || path.strip_prefix(hub_path).is_some_and(|rest| rest.starts_with('/'))
}

fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(c) = hex.filter(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')) {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
