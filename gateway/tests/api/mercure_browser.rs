//! The Mercure hub in a real browser, for both protocol versions: Debian's headless Chromium
//! (`e2e/browser.mjs`, its `mercure` command) subscribes with `EventSource` and publishes with
//! `fetch` from a page of the balancer's origin, through the balanced topology (nginx, three gateway
//! processes, Redis). The balancer spreads the streams over the nodes and sends each publication
//! to one of them, so updates reach most subscribers from another node, through Redis; the nodes'
//! metrics confirm it.
//!
//! What is checked is what Mercure's public conformance suite asks of a hub, written here anew:
//! - an anonymous subscriber receives a matching public update within 2 s of its publication,
//!   with the update's id as `lastEventId` and its data exactly (an empty line and leading spaces
//!   included);
//! - the publisher is answered 200, `text/plain`, with the update's id: its own, or one the hub
//!   chose;
//! - a subscription with several selectors of which one matches receives the update, and so does
//!   one whose selector is a URI template (0.x) or a URL pattern (1.0, `match_urlpattern`);
//! - a raw string, a URI, a template or pattern that does not match receives nothing in 2 s;
//! - a private update does not reach an anonymous subscriber (which does receive the public update
//!   published right after it on the same topic).
//!
//! Needs what `browser.rs` needs (Node.js 20+, `npm ci --prefix e2e`, Chromium, nginx) and Redis.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;

use support::app::*;
use support::browser::*;
use support::topology::*;

/// The hub, on the page's (the balancer's) origin.
const HUB: &str = "/.well-known/mercure";
/// How soon a subscriber must receive an update, and how long one that must not is watched.
const WITHIN: Duration = Duration::from_secs(2);
/// Longest the page waits for its streams to open, or for the answer to one publication.
const OPEN: Duration = Duration::from_secs(10);
/// The one issuer the 1.0 hub trusts.
const ISSUER: &str = "https://issuer.example.test";
const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// How a protocol version spells a subscription.
#[derive(Clone, Copy)]
struct Dialect {
    /// `GATEWAY_MERCURE`.
    version: &'static str,
    /// The query parameter of a selector matched exactly.
    exact: &'static str,
    /// A parameter and selector that choose every `https://example.net/foo/<segment>`.
    pattern: (&'static str, &'static str),
    /// A selector of the same kind that chooses none of the topics published here.
    other_pattern: &'static str,
}

const LEGACY: Dialect = Dialect {
    version: "0.x",
    exact: "topic",
    pattern: ("topic", "https://example.net/foo/{id}"),
    other_pattern: "https://example.net/bar/{id}",
};
const V1: Dialect = Dialect {
    version: "1.0",
    exact: "match",
    pattern: ("match_urlpattern", "https://example.net/foo/:id"),
    other_pattern: "https://example.net/bar/:id",
};

impl Dialect {
    /// The balanced topology with the hub on, open to anonymous subscribers. The 1.0 hub's
    /// resource is the default one: the public URL (the balancer's) and the hub's path.
    async fn start(&self) -> Topology {
        let mut env = vec![("GATEWAY_MERCURE", self.version), ("GATEWAY_MERCURE_ANONYMOUS", "true")];
        if self.version == V1.version {
            env.push(("GATEWAY_MERCURE_ISSUERS", ISSUER));
        }
        Topology::start_with(&env).await
    }

    /// A token that may publish on every topic: for 0.x a `mercure` claim, with the fractional
    /// `exp` 0.x allows; for 1.0 an `at+jwt` access token for the hub's resource.
    fn publisher(&self, t: &Topology) -> String {
        let exp = now() + 3600;
        let mut header = Header::new(Algorithm::HS256);
        let claims = if self.version == V1.version {
            header.typ = Some("at+jwt".into());
            json!({
                "iss": ISSUER,
                "aud": t.url(HUB),
                "sub": "publisher",
                "exp": exp,
                "authorization_details": [{ "type": DETAIL_TYPE, "actions": ["publish"], "topics": [{ "match": "*" }] }],
            })
        } else {
            json!({ "mercure": { "publish": ["*"] }, "exp": exp as f64 + 0.5 })
        };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign")
    }
}

/// One update the page publishes.
struct Update {
    topic: &'static str,
    data: &'static str,
    /// `None`: the hub chooses the id.
    id: Option<&'static str>,
    private: bool,
}

impl Update {
    fn public(topic: &'static str, data: &'static str, id: Option<&'static str>) -> Self {
        Self { topic, data, id, private: false }
    }

    /// The publish request's form body.
    fn form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("topic", self.topic).append_pair("data", self.data);
        if let Some(id) = self.id {
            form.append_pair("id", id);
        }
        if self.private {
            form.append_pair("private", "on");
        }
        form.finish()
    }
}

/// A subscription URL, on the page's origin, with `selectors` (parameter, value) as its query.
fn stream_url(selectors: &[(&str, &str)]) -> String {
    format!("{HUB}?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(selectors).finish())
}

/// What the page reports of one run (times in ms from the page's clock).
#[derive(Debug, Deserialize)]
struct Report {
    responses: Vec<Answer>,
    streams: Vec<Received>,
}

/// The hub's answer to one publication.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
    sent_at: f64,
}

/// What one `EventSource` received, and how many `error` events it fired.
#[derive(Debug, Deserialize)]
struct Received {
    events: Vec<Arrival>,
    errors: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arrival {
    r#type: String,
    data: String,
    last_event_id: String,
    at: f64,
}

/// Each node's count of updates published through it and of updates it sent to streams.
async fn per_node(t: &Topology) -> Vec<(f64, f64)> {
    let mut counts = Vec::new();
    for node in &t.nodes {
        let m = node.metrics(&t.client).await;
        counts.push((m.value(r#"sse_gateway_events_published_total{path="http"}"#), m.value("sse_gateway_events_delivered_total")));
    }
    counts
}

/// The page subscribes on every stream, publishes `updates` in order once all are open, and
/// watches for [`WITHIN`] more. Checks what every publisher gets back (200, `text/plain`, the
/// id) and that no stream failed; returns the report and, per node, how many updates were
/// published through it and sent from it meanwhile.
async fn run(page: &mut Page, t: &Topology, token: &str, streams: &[Vec<(&str, &str)>], updates: &[Update]) -> (Report, Vec<(f64, f64)>) {
    let before = per_node(t).await;
    let command = json!({
        "kind": "mercure",
        "streams": streams.iter().map(|s| stream_url(s)).collect::<Vec<_>>(),
        "publish": { "url": HUB, "token": token, "bodies": updates.iter().map(Update::form).collect::<Vec<_>>() },
        "settleMs": WITHIN.as_millis(),
        "openMs": OPEN.as_millis(),
    });
    page.0.send(&command.to_string()).await;
    let bound = OPEN * (1 + updates.len() as u32) + WITHIN + WAIT;
    let v = page.0.next(bound).await;
    assert_eq!(v["kind"], "mercure", "{v}");
    assert!(v.get("error").is_none(), "{}\nbrowser:\n{}\n{}", v["error"], page.0.stderr(), t.logs());
    let report: Report = serde_json::from_value(v).expect("the page's report");
    let after = per_node(t).await;
    let spread = before.iter().zip(&after).map(|(b, a)| (a.0 - b.0, a.1 - b.1)).collect();

    assert_eq!((report.responses.len(), report.streams.len()), (updates.len(), streams.len()), "{report:?}");
    for (answer, update) in report.responses.iter().zip(updates) {
        assert_eq!(answer.status, 200, "publishing {:?}: {answer:?}\n{}", update.topic, t.logs());
        let content_type = answer.content_type.as_deref().unwrap_or_default();
        assert!(content_type.starts_with("text/plain"), "the id comes as text/plain, not {content_type:?}");
        match update.id {
            Some(id) => assert_eq!(answer.body, id, "the hub answers the posted id"),
            None => assert!(
                !answer.body.is_empty() && !answer.body.contains(char::is_whitespace),
                "the hub answers the id it chose: {:?}",
                answer.body
            ),
        }
    }
    for (i, stream) in report.streams.iter().enumerate() {
        assert_eq!(stream.errors, 0, "the stream {:?} failed after it opened\nbrowser:\n{}", streams[i], page.0.stderr());
    }
    (report, spread)
}

/// Asserts that `stream` received exactly the updates at `expected` (indices into `updates`), in
/// order, each within [`WITHIN`] of its publication, as a `message` with its id and its data.
/// Returns the longest time from a publication to its arrival, in ms.
#[track_caller]
fn assert_received(what: &str, stream: &Received, expected: &[usize], updates: &[Update], answers: &[Answer]) -> f64 {
    let got: Vec<(&str, &str)> = stream.events.iter().map(|e| (e.last_event_id.as_str(), e.data.as_str())).collect();
    let want: Vec<(&str, &str)> = expected.iter().map(|&i| (answers[i].body.as_str(), updates[i].data)).collect();
    assert_eq!(got, want, "{what}: the updates received (id, data), in {WITHIN:?}");
    let mut slowest: f64 = 0.0;
    for (event, &i) in stream.events.iter().zip(expected) {
        assert_eq!(event.r#type, "message", "{what}");
        let latency = event.at - answers[i].sent_at;
        assert!(latency < WITHIN.as_millis() as f64, "{what}: update {i} arrived {latency:.0} ms after it was published");
        slowest = slowest.max(latency);
    }
    slowest
}

/// Every behaviour, for one protocol version, on a fresh topology.
async fn conformance(d: Dialect) {
    require_browser();
    let t = d.start().await;
    let token = d.publisher(&t);
    // Any page of the balancer's origin will do: the hub is then same-origin.
    let mut page = Page::open(&t.url("/healthz"), &t.dir.0).await;

    // Matching: three streams choose one topic, each by another selector; one update with the
    // publisher's id and multi-line data, one with an id the hub chooses.
    let topic = "https://example.net/foo/1";
    let streams = [
        vec![(d.exact, topic)],
        vec![(d.exact, "https://example.net/foo/2"), (d.exact, topic), (d.pattern.0, d.other_pattern)],
        vec![d.pattern],
    ];
    let updates = [
        Update::public(topic, "first line\n\n        eight spaces, after an empty line", Some("urn:example:update:1")),
        Update::public(topic, "an id of the hub's", None),
    ];
    let (report, spread) = run(&mut page, &t, &token, &streams, &updates).await;
    assert_ne!(report.responses[0].body, report.responses[1].body, "a fresh id");
    let mut slowest: f64 = 0.0;
    for (what, stream) in ["an exact selector", "several selectors, one matching", "a template or pattern"].iter().zip(&report.streams) {
        slowest = slowest.max(assert_received(what, stream, &[0, 1], &updates, &report.responses));
    }
    // The three streams are on different nodes (least_conn); the updates were published on one.
    assert!(
        spread.iter().any(|&(published, sent)| published == 0.0 && sent > 0.0),
        "an update reached a stream on another node than the one it was published on: (published, sent) per node {spread:?}"
    );
    println!("Mercure {}, matching: slowest arrival {slowest:.0} ms; (published, sent) per node {spread:?}", d.version);

    // Not matching, and private: a public update on a URI topic and one on a raw string topic
    // that no stream chooses, then a private update and a public one on a topic that the last
    // stream chooses, which must receive the public one only.
    let private_topic = "https://example.net/foo/4";
    let streams = [
        vec![(d.exact, "example-raw")],
        vec![(d.exact, "https://example.net/foo")],
        vec![(d.pattern.0, d.other_pattern)],
        vec![(d.exact, private_topic)],
    ];
    let updates = [
        Update::public("https://example.net/foo/3", "for nobody here", Some("urn:example:update:3")),
        Update::public("example-raw-topic", "for nobody either", Some("urn:example:update:4")),
        Update { private: true, ..Update::public(private_topic, "for granted subscribers only", Some("urn:example:update:5")) },
        Update::public(private_topic, "for everyone", Some("urn:example:update:6")),
    ];
    let (report, _) = run(&mut page, &t, &token, &streams, &updates).await;
    for (what, stream) in ["a raw string", "a URI", "a template or pattern"].iter().zip(&report.streams) {
        assert_received(&format!("{what} that does not match"), stream, &[], &updates, &report.responses);
    }
    let slowest =
        assert_received("an anonymous subscriber to a private update's topic", &report.streams[3], &[3], &updates, &report.responses);
    println!("Mercure {}, not matching and private: the public update after the private one arrived in {slowest:.0} ms", d.version);
    page.close().await;
}

#[tokio::test]
async fn mercure_0x_in_chromium_through_the_balancer_delivers_what_the_selectors_choose_and_nothing_else() {
    conformance(LEGACY).await;
}

#[tokio::test]
async fn mercure_1_0_in_chromium_through_the_balancer_delivers_what_the_matchers_choose_and_nothing_else() {
    conformance(V1).await;
}
