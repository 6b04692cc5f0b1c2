//! Topic selectors (0.x) and topic matchers (1.0): parsed and compiled once, when a subscription
//! opens or a token is read, then matched against the topics of many updates.
//!
//! - 0.x: a `topic=` value is `*` (every topic), or a string matched exactly, or, when it is a
//!   valid RFC 6570 URI template, any topic that could be an expansion of it (`template.rs`).
//!   Any string is a valid 0.x selector; one that is not a valid template is matched exactly.
//! - 1.0: `match=` / `match_exact=` compare byte for byte; `match_urlpattern=` is a WHATWG URL
//!   Pattern (the `urlpattern` crate, which compiles patterns to `regex`, a linear-time engine),
//!   evaluated against the topic resolved on the hub's URL. `*` means every topic in both.
//!
//! Every form matches in time linear in the topic, so neither a subscriber's selectors nor a
//! token's can make fan-out slow; sizes and counts are bounded here so compiling is cheap too.

use std::cell::OnceCell;
use std::sync::{Arc, LazyLock};

use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions};

use super::intern::Interner;
use super::template::UriTemplate;
use super::text::forbidden_char;

/// Longest selector accepted, in bytes (a long URL, well past any real topic).
pub(crate) const MAX_SELECTOR_LEN: usize = 2048;
/// Most selectors accepted in one subscription request or one token's list.
pub(crate) const MAX_SELECTORS: usize = 128;
/// The selector that matches every topic, in both versions.
pub(crate) const WILDCARD: &str = "*";

/// Why a selector or a subscription's selector list was refused (400 on a subscription; in a
/// 1.0 token, the token is invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectorError {
    #[error("a topic selector must not be empty")]
    Empty,
    #[error("a topic selector is longer than {MAX_SELECTOR_LEN} bytes")]
    TooLong,
    #[error("a topic selector contains the forbidden character U+{:04X}", u32::from(*.0))]
    Forbidden(char),
    #[error("more than {MAX_SELECTORS} topic selectors")]
    TooMany,
    #[error("no topic selector given")]
    Missing,
    #[error("unknown matcher type {0:?}")]
    UnknownMatcherType(String),
    #[error("invalid URL pattern: {0}")]
    UrlPattern(String),
}

/// The 1.0 matcher types this hub supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MatcherType {
    Exact,
    UrlPattern,
}

impl MatcherType {
    /// The canonical name (`match_type` in tokens and subscription events).
    pub(crate) fn name(self) -> &'static str {
        match self {
            MatcherType::Exact => "exact",
            MatcherType::UrlPattern => "urlpattern",
        }
    }

    /// The `match_type` value in a token's topic list (absent means [`MatcherType::Exact`]).
    pub(crate) fn from_name(name: &str) -> Result<Self, SelectorError> {
        match name {
            "exact" => Ok(MatcherType::Exact),
            "urlpattern" => Ok(MatcherType::UrlPattern),
            other => Err(SelectorError::UnknownMatcherType(truncate(other))),
        }
    }

    /// The matcher type a subscription query parameter selects: `None` for a parameter outside
    /// the `match` namespace. The draft reserves every name starting with `match` (compared
    /// ASCII case-insensitively), so a misspelled or unsupported type fails loudly (400) instead
    /// of being ignored, while the names we support are case-sensitive.
    pub(crate) fn from_param(name: &str) -> Result<Option<Self>, SelectorError> {
        match name {
            "match" | "match_exact" => Ok(Some(MatcherType::Exact)),
            "match_urlpattern" => Ok(Some(MatcherType::UrlPattern)),
            other if other.len() >= 5 && other.as_bytes()[..5].eq_ignore_ascii_case(b"match") => {
                Err(SelectorError::UnknownMatcherType(truncate(other)))
            }
            _ => Ok(None),
        }
    }
}

/// Compiled URI templates, by source.
static TEMPLATES: LazyLock<Interner<String, UriTemplate>> = LazyLock::new(Interner::default);
/// Compiled URL patterns, by the hub URL they resolve on and source.
static PATTERNS: LazyLock<Interner<(String, String), UrlPattern>> = LazyLock::new(Interner::default);

/// A compiled selector; cheap to clone (compiled templates and patterns are shared, not copied).
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    /// `*`: every topic.
    Any,
    /// Byte-for-byte equality.
    Exact(String),
    /// 0.x: equality, or a topic that could be an expansion of the template (compiled once per
    /// process and shared: `intern.rs`).
    Template { source: String, template: Arc<UriTemplate> },
    /// 1.0 `urlpattern`.
    UrlPattern {
        /// The pattern as written, which the unit tests read back.
        #[cfg_attr(not(test), expect(dead_code, reason = "read by the unit tests only"))]
        source: String,
        pattern: Arc<UrlPattern>,
    },
}

impl Selector {
    /// A 0.x selector (a `topic=` value, or an entry of `mercure.publish` / `mercure.subscribe`).
    pub(crate) fn legacy(s: &str) -> Result<Self, SelectorError> {
        check_size(s)?;
        if s == WILDCARD {
            return Ok(Selector::Any);
        }
        if !s.contains('{') {
            return Ok(Selector::Exact(s.to_owned()));
        }
        // The draft: "if the selector is a valid URI template" — an invalid one is still a valid
        // selector, matched exactly.
        Ok(match TEMPLATES.get_or_compile(&s.to_owned(), || UriTemplate::compile(s)) {
            Ok(template) => Selector::Template { source: s.to_owned(), template },
            Err(_) => Selector::Exact(s.to_owned()),
        })
    }

    /// A 1.0 matcher of type `kind`; relative URL patterns are resolved on `hub`, the hub's URL.
    pub(crate) fn v1(kind: MatcherType, s: &str, hub: &Url) -> Result<Self, SelectorError> {
        check_size(s)?;
        if let Some(c) = forbidden_char(s) {
            return Err(SelectorError::Forbidden(c));
        }
        // The wildcard is recognised before the matcher type is.
        if s == WILDCARD {
            return Ok(Selector::Any);
        }
        match kind {
            MatcherType::Exact => Ok(Selector::Exact(s.to_owned())),
            MatcherType::UrlPattern => {
                let pattern = PATTERNS.get_or_compile(&(hub.as_str().to_owned(), s.to_owned()), || {
                    let invalid = |e: urlpattern::Error| SelectorError::UrlPattern(e.to_string());
                    let init = UrlPatternInit::parse_constructor_string::<regex::Regex>(s, Some(hub.clone())).map_err(invalid)?;
                    // `ignore_case` stays off, as the draft requires: only hosts are case-insensitive.
                    UrlPattern::parse(init, UrlPatternOptions::default()).map_err(invalid)
                })?;
                Ok(Selector::UrlPattern { source: s.to_owned(), pattern })
            }
        }
    }

    /// The selector as written.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Selector::Any => WILDCARD,
            Selector::Exact(s) => s,
            Selector::Template { source, .. } | Selector::UrlPattern { source, .. } => source,
        }
    }

    /// Whether this selector matches `topic`.
    pub(crate) fn matches(&self, topic: &TopicRef<'_>) -> bool {
        match self {
            Selector::Any => true,
            Selector::Exact(s) => s == topic.raw,
            Selector::Template { source, template } => source == topic.raw || template.matches(topic.raw),
            Selector::UrlPattern { pattern, .. } => match topic.url() {
                Some(url) => pattern.test(UrlPatternMatchInput::Url(url.clone())).unwrap_or(false),
                // A topic that is not a URL reference is matched by no URL pattern.
                None => false,
            },
        }
    }
}

/// A topic about to be matched against many selectors. For 1.0, the topic is parsed as a URL
/// reference against the hub's URL at most once, on the first URL pattern that needs it, instead
/// of once per selector.
#[derive(Debug)]
pub(crate) struct TopicRef<'a> {
    raw: &'a str,
    base: Option<&'a Url>,
    /// Set when the caller resolved the topic already (once per update, for every stream).
    resolved: Option<Option<&'a Url>>,
    url: OnceCell<Option<Url>>,
}

impl<'a> TopicRef<'a> {
    /// A topic for 0.x selectors (which never need it as a URL).
    pub(crate) fn plain(raw: &'a str) -> Self {
        Self { raw, base: None, resolved: None, url: OnceCell::new() }
    }

    /// A topic for 1.0 matchers; relative topics resolve on `hub`, the hub's URL.
    pub(crate) fn on_hub(raw: &'a str, hub: &'a Url) -> Self {
        Self { raw, base: Some(hub), resolved: None, url: OnceCell::new() }
    }

    /// A 1.0 topic already resolved on the hub's URL (`None`: it is not a URL reference).
    pub(crate) fn resolved(raw: &'a str, url: Option<&'a Url>) -> Self {
        Self { raw, base: None, resolved: Some(url), url: OnceCell::new() }
    }

    fn url(&self) -> Option<&Url> {
        if let Some(resolved) = self.resolved {
            return resolved;
        }
        self.url.get_or_init(|| self.base.and_then(|base| base.join(self.raw).ok())).as_ref()
    }
}

/// Whether any of `selectors` matches `topic`.
pub(crate) fn any_matches(selectors: &[Selector], topic: &TopicRef<'_>) -> bool {
    selectors.iter().any(|s| s.matches(topic))
}

/// The selectors of a 0.x subscription: every `topic` query parameter. Other parameters
/// (`lastEventID`, `authorization`, unknown ones) are not ours to judge here.
pub(crate) fn legacy_subscription<'p>(params: impl IntoIterator<Item = (&'p str, &'p str)>) -> Result<Vec<Selector>, SelectorError> {
    collect(params.into_iter().filter(|(name, _)| *name == "topic").map(|(_, value)| Selector::legacy(value)))
}

/// The matchers of a 1.0 subscription: every parameter of the `match` namespace.
pub(crate) fn v1_subscription<'p>(params: impl IntoIterator<Item = (&'p str, &'p str)>, hub: &Url) -> Result<Vec<Selector>, SelectorError> {
    let mut out = Vec::new();
    for (name, value) in params {
        if let Some(kind) = MatcherType::from_param(name)? {
            if out.len() == MAX_SELECTORS {
                return Err(SelectorError::TooMany);
            }
            out.push(Selector::v1(kind, value, hub)?);
        }
    }
    if out.is_empty() { Err(SelectorError::Missing) } else { Ok(out) }
}

fn collect(selectors: impl Iterator<Item = Result<Selector, SelectorError>>) -> Result<Vec<Selector>, SelectorError> {
    let mut out = Vec::new();
    for s in selectors {
        if out.len() == MAX_SELECTORS {
            return Err(SelectorError::TooMany);
        }
        out.push(s?);
    }
    if out.is_empty() { Err(SelectorError::Missing) } else { Ok(out) }
}

fn check_size(s: &str) -> Result<(), SelectorError> {
    match s.len() {
        0 => Err(SelectorError::Empty),
        n if n > MAX_SELECTOR_LEN => Err(SelectorError::TooLong),
        _ => Ok(()),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
