//! Which Mercure protocol the hub endpoint speaks: `GATEWAY_MERCURE` = `0.x` | `1.0` | `off`.
//!
//! The two drafts are not dialects of one protocol that a hub could detect per request: they
//! differ in the token (a `mercure` claim vs. an RFC 9068 access token), the subscribe parameters
//! (`topic=` vs. `match=`), the matcher language (URI templates vs. URL patterns) and the header
//! names. A deployment therefore picks one, for every node.

use std::fmt;
use std::str::FromStr;

/// A protocol version the endpoint can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// draft-dunglas-mercure-07, what Symfony, API Platform and the 0.x hubs speak.
    Legacy,
    /// draft-dunglas-mercure-08 ("1.0"): OAuth access tokens and `match=` matchers.
    V1,
}

impl Protocol {
    /// The configuration value that selects this version.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Legacy => "0.x",
            Protocol::V1 => "1.0",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of `GATEWAY_MERCURE`.
///
/// The default is [`MercureSetting::Off`]. The endpoint is a second way to publish, under a
/// well-known path, and it must not appear on a deployment just because the gateway was upgraded.
/// Nor is there a safe version to guess: the two drafts reject each other's tokens and query
/// parameters, so an operator turning Mercure on has to say which one their clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MercureSetting {
    #[default]
    Off,
    On(Protocol),
}

impl MercureSetting {
    /// The protocol the endpoint speaks, or `None` when it is off.
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            MercureSetting::Off => None,
            MercureSetting::On(p) => Some(p),
        }
    }
}

/// An unknown `GATEWAY_MERCURE` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GATEWAY_MERCURE must be one of 0.x, 1.0 or off, not {0:?}")]
pub struct UnknownSetting(pub String);

impl FromStr for MercureSetting {
    type Err = UnknownSetting;

    /// Exact, lower-case spellings only (plus surrounding blanks, which env files often carry):
    /// a typo such as `1` or `v1` fails loudly at startup instead of silently picking a version.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "0.x" => Ok(MercureSetting::On(Protocol::Legacy)),
            "1.0" => Ok(MercureSetting::On(Protocol::V1)),
            "off" => Ok(MercureSetting::Off),
            other => Err(UnknownSetting(other.chars().take(32).collect())),
        }
    }
}

impl fmt::Display for MercureSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MercureSetting::Off => f.write_str("off"),
            MercureSetting::On(p) => p.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_documented_values_parse_and_print_back() {
        for (s, v) in
            [("0.x", MercureSetting::On(Protocol::Legacy)), ("1.0", MercureSetting::On(Protocol::V1)), ("off", MercureSetting::Off)]
        {
            assert_eq!(s.parse::<MercureSetting>(), Ok(v));
            assert_eq!(v.to_string(), s);
        }
        assert_eq!(" 1.0\n".parse::<MercureSetting>(), Ok(MercureSetting::On(Protocol::V1)));
    }

    #[test]
    fn near_misses_are_refused_with_the_variable_named() {
        for bad in ["", "1", "v1", "0.X", "OFF", "on", "true", "0.24"] {
            let err = bad.parse::<MercureSetting>().expect_err(bad);
            assert!(err.to_string().starts_with("GATEWAY_MERCURE must be one of"), "{err}");
        }
    }

    #[test]
    fn the_default_is_off() {
        assert_eq!(MercureSetting::default(), MercureSetting::Off);
        assert_eq!(MercureSetting::default().protocol(), None);
        assert_eq!(MercureSetting::On(Protocol::Legacy).protocol(), Some(Protocol::Legacy));
    }
}
