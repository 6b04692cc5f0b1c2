//! Runs against the gateway's Mercure hub (`--mercure`): streams subscribe at
//! `/.well-known/mercure` with `--selectors` topic selectors each, and events are published there
//! as updates, one form `POST` each (over `--publishers` connections). The event data is the same payload as on the native API, so
//! loss, order, duplicates and latency are tracked the same way; the update id is chosen by the
//! publisher (`<topic>#<seq>`) and checked by the streams.
//!
//! Topics are URLs, `https://example.com/<prefix>-<run>/books/<n>`. Of a stream's selectors, the
//! last one matches its topic (the topic itself, or with `--match-template` the URI template
//! `…/books/{id}`); the others do not, alternately a URI template (`…/authors/<k>/books/{id}`) and
//! an exact topic (`…/authors/<k>`), so that a stream evaluates every selector for every update.

use std::time::Duration;

use crate::tokens::Tokens;

/// The command line's Mercure options.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub(crate) struct Opts {
    /// Speak Mercure (the hub's GATEWAY_MERCURE version): streams subscribe at
    /// /.well-known/mercure and events are published there as updates.
    #[arg(long = "mercure", value_name = "VERSION", global = true, value_enum)]
    pub protocol: Option<Mercure>,
    /// Mercure: topic selectors per stream, the last of which matches its topic.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub selectors: u16,
    /// Mercure: the matching selector is the URI template …/books/{id}, not the topic itself.
    #[arg(long, global = true)]
    pub match_template: bool,
    /// Mercure: publishing connections. The hub takes one update per request; with more than
    /// one, each tick's updates are split over them and posted concurrently, so they may be
    /// stored (and received) out of order.
    #[arg(long, global = true, default_value_t = 1)]
    pub publishers: usize,
}

impl Opts {
    /// Topic `n` of the run named `name` (`<prefix>-<run>`), native or Mercure.
    pub(crate) fn topic(&self, name: &str, n: usize) -> String {
        match self.protocol {
            Some(_) => format!("https://example.com/{name}/books/{n}"),
            None => format!("{name}-{n}"),
        }
    }

    /// A token for client `n` that may subscribe and publish anywhere, native or Mercure.
    pub(crate) fn token(&self, tokens: &Tokens, n: usize, ttl: Duration) -> anyhow::Result<String> {
        if self.protocol.is_some() { tokens.mercure(n, ttl) } else { tokens.token(n, ttl) }
    }

    /// The request path and query of a stream on `topic`, native or at the hub.
    pub(crate) fn path(&self, name: &str, topic: &str) -> String {
        match self.protocol {
            Some(_) => subscribe_path(&selectors(name, topic, self.selectors.into(), self.match_template)),
            None => format!("/events?topic={topic}"),
        }
    }
}

/// The hub's protocol version (the gateway's `GATEWAY_MERCURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mercure {
    /// draft-dunglas-mercure-07: `topic=` selectors, a `mercure` claim.
    #[value(name = "0.x")]
    Legacy,
}

/// The hub's path on every node.
pub(crate) const HUB_PATH: &str = "/.well-known/mercure";

/// The selectors of a stream on `topic` (of run `name`): `count - 1` that do not match, then
/// the one that does.
pub(crate) fn selectors(name: &str, topic: &str, count: usize, match_template: bool) -> Vec<String> {
    let mut out: Vec<String> = (0..count.saturating_sub(1))
        .map(|k| {
            if k % 2 == 0 {
                format!("https://example.com/{name}/authors/{k}/books/{{id}}")
            } else {
                format!("https://example.com/{name}/authors/{k}")
            }
        })
        .collect();
    out.push(if match_template { format!("https://example.com/{name}/books/{{id}}") } else { topic.to_owned() });
    out
}

/// The subscription request's path and query.
pub(crate) fn subscribe_path(selectors: &[String]) -> String {
    let query: Vec<String> = selectors.iter().map(|s| format!("topic={}", encode(s))).collect();
    format!("{HUB_PATH}?{}", query.join("&"))
}

/// The id the publisher gives update `seq` of `topic`.
pub(crate) fn update_id(topic: &str, seq: u64) -> String {
    format!("{topic}#{seq}")
}

/// Whether `id` is the one `update_id` gave the update numbered `seq`.
pub(crate) fn id_matches(id: &str, seq: u64) -> bool {
    id.rsplit_once('#').and_then(|(_, n)| n.parse::<u64>().ok()) == Some(seq)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_selector_of_n_matches_last() {
        let t = "https://example.com/lt-x/books/0";
        let s = selectors("lt-x", t, 4, false);
        assert_eq!(
            s,
            [
                "https://example.com/lt-x/authors/0/books/{id}",
                "https://example.com/lt-x/authors/1",
                "https://example.com/lt-x/authors/2/books/{id}",
                "https://example.com/lt-x/books/0",
            ]
        );
        assert_eq!(selectors("lt-x", t, 1, true), ["https://example.com/lt-x/books/{id}"]);
        assert_eq!(
            subscribe_path(&s[3..]),
            "/.well-known/mercure?topic=https%3A%2F%2Fexample.com%2Flt-x%2Fbooks%2F0",
            "the query is percent-encoded"
        );
    }

    #[test]
    fn update_ids_carry_their_number() {
        let id = update_id("https://example.com/lt-x/books/3", 42);
        assert!(id_matches(&id, 42));
        assert!(!id_matches(&id, 41));
        assert!(!id_matches("urn:uuid:0190", 0));
    }
}
