//! Selector matching per version: the drafts' examples, the conformance suite's shapes, and the
//! bounds.

use super::*;

fn hub() -> Url {
    Url::parse("https://hub.example.com/.well-known/mercure").expect("valid URL")
}

fn legacy(selector: &str, topic: &str) -> bool {
    Selector::legacy(selector).expect(selector).matches(&TopicRef::plain(topic))
}

fn v1(kind: MatcherType, selector: &str, topic: &str) -> bool {
    let hub = hub();
    Selector::v1(kind, selector, &hub).expect(selector).matches(&TopicRef::on_hub(topic, &hub))
}

#[test]
fn legacy_wildcard_matches_every_topic() {
    assert!(matches!(Selector::legacy("*"), Ok(Selector::Any)));
    for topic in ["a", "https://example.com/books/1", "{x}", "*"] {
        assert!(legacy("*", topic), "{topic}");
    }
}

#[test]
fn legacy_strings_match_exactly() {
    assert!(legacy("https://example.com/foo", "https://example.com/foo"));
    assert!(legacy("bar", "bar"));
    assert!(!legacy("another-name", "will-not-match"));
    assert!(!legacy("https://example.net/foo/another-name", "https://example.net/foo/will-not-match"));
    assert!(!legacy("bar", "Bar"), "case-sensitive");
}

#[test]
fn legacy_templates_match_their_expansions_and_not_other_topics() {
    assert!(legacy("https://example.com/books/{id}", "https://example.com/books/1"));
    assert!(!legacy("https://example.com/books/{id}", "https://example.com/books/1/chapters/2"));
    assert!(!legacy("https://example.net/bar/{var}", "https://example.net/foo/will-not-match"));
    assert!(legacy("https://example.com/users/foo/{?topic}", "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"));
}

#[test]
fn legacy_templates_also_match_themselves_so_selectors_can_be_granted_by_selectors() {
    assert!(legacy("https://example.com/books/{id}", "https://example.com/books/{id}"));
}

#[test]
fn legacy_invalid_templates_are_still_selectors_matched_exactly() {
    let s = Selector::legacy("will-not-match}").expect("any string is a selector");
    assert!(matches!(s, Selector::Exact(_)));
    assert!(s.matches(&TopicRef::plain("will-not-match}")));
    assert!(legacy("a{b", "a{b"));
    assert!(!legacy("a{b", "ab"));
}

#[test]
fn v1_exact_is_byte_for_byte_without_normalisation() {
    assert!(v1(MatcherType::Exact, "https://example.com/foo", "https://example.com/foo"));
    assert!(!v1(MatcherType::Exact, "https://example.com/foo", "https://EXAMPLE.com/foo"));
    assert!(!v1(MatcherType::Exact, "https://example.com/a%2Fb", "https://example.com/a/b"));
    assert!(!v1(MatcherType::Exact, "/foo", "https://hub.example.com/foo"), "no resolution on the hub URL");
    assert!(!v1(MatcherType::Exact, "https://example.com/books/{id}", "https://example.com/books/1"), "no templates in 1.0");
}

#[test]
fn v1_wildcard_matches_every_topic_whatever_the_type() {
    for kind in [MatcherType::Exact, MatcherType::UrlPattern] {
        assert!(matches!(Selector::v1(kind, "*", &hub()), Ok(Selector::Any)));
        assert!(v1(kind, "*", "not a url at all"));
    }
}

#[test]
fn v1_url_patterns_match_like_the_conformance_suite() {
    assert!(v1(MatcherType::UrlPattern, "https://example.net/foo/:random", "https://example.net/foo/4a5b6c"));
    assert!(!v1(MatcherType::UrlPattern, "https://example.net/bar/:var", "https://example.net/foo/will-not-match"));
    assert!(!v1(MatcherType::UrlPattern, "https://example.com/books/:id", "https://example.com/books/1/reviews"));
    assert!(v1(MatcherType::UrlPattern, "https://example.com/users/42/*", "https://example.com/users/42/books/1"));
    assert!(!v1(MatcherType::UrlPattern, "https://example.com/users/42/*", "https://example.com/users/43/books/1"));
}

#[test]
fn v1_url_patterns_are_case_sensitive_except_in_the_host() {
    assert!(v1(MatcherType::UrlPattern, "https://example.com/Books/:id", "https://EXAMPLE.com/Books/1"));
    assert!(!v1(MatcherType::UrlPattern, "https://example.com/Books/:id", "https://example.com/books/1"));
}

#[test]
fn v1_relative_patterns_and_topics_resolve_on_the_hub_url() {
    let pattern = "/.well-known/mercure/subscriptions/exact/:topic/:subscriber";
    assert!(v1(MatcherType::UrlPattern, pattern, "/.well-known/mercure/subscriptions/exact/t/s"));
    assert!(v1(MatcherType::UrlPattern, pattern, "https://hub.example.com/.well-known/mercure/subscriptions/exact/t/s"));
    assert!(!v1(MatcherType::UrlPattern, pattern, "https://other.example.com/.well-known/mercure/subscriptions/exact/t/s"));
}

#[test]
fn v1_topics_that_are_not_urls_never_match_a_url_pattern() {
    assert!(!v1(MatcherType::UrlPattern, "https://example.com/*", "http://[not-a-host/x"));
}

#[test]
fn v1_invalid_url_patterns_and_characters_are_refused() {
    let hub = hub();
    assert!(matches!(Selector::v1(MatcherType::UrlPattern, "https://example.com/(unclosed", &hub), Err(SelectorError::UrlPattern(_))));
    assert_eq!(Selector::v1(MatcherType::Exact, "a\u{200b}b", &hub).map(|_| ()), Err(SelectorError::Forbidden('\u{200b}')));
    assert_eq!(Selector::v1(MatcherType::Exact, "a\nb", &hub).map(|_| ()), Err(SelectorError::Forbidden('\n')));
}

#[test]
#[expect(clippy::disallowed_methods, reason = "the bound is on real CPU time spent matching")]
fn v1_hostile_url_patterns_match_in_bounded_time() {
    let hub = hub();
    let pattern = format!("https://example.com/{}", "(a+)+".repeat(8) + "b");
    let start = std::time::Instant::now();
    if let Ok(s) = Selector::v1(MatcherType::UrlPattern, &pattern, &hub) {
        let topic = format!("https://example.com/{}c", "a".repeat(1_500));
        assert!(!s.matches(&TopicRef::on_hub(&topic, &hub)));
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
}

#[test]
fn sizes_are_bounded() {
    let long = "x".repeat(MAX_SELECTOR_LEN + 1);
    assert_eq!(Selector::legacy(&long).map(|_| ()), Err(SelectorError::TooLong));
    assert_eq!(Selector::v1(MatcherType::Exact, &long, &hub()).map(|_| ()), Err(SelectorError::TooLong));
    assert_eq!(Selector::legacy("").map(|_| ()), Err(SelectorError::Empty));
    assert!(Selector::legacy(&"x".repeat(MAX_SELECTOR_LEN)).is_ok());
}

#[test]
fn the_match_namespace_is_reserved_and_case_sensitive_for_supported_names() {
    assert_eq!(MatcherType::from_param("match"), Ok(Some(MatcherType::Exact)));
    assert_eq!(MatcherType::from_param("match_exact"), Ok(Some(MatcherType::Exact)));
    assert_eq!(MatcherType::from_param("match_urlpattern"), Ok(Some(MatcherType::UrlPattern)));
    for name in ["Match", "MATCH_exact", "match_regex", "matches", "match_URLPattern"] {
        assert!(matches!(MatcherType::from_param(name), Err(SelectorError::UnknownMatcherType(_))), "{name}");
    }
    for name in ["topic", "last_event_id", "mat", "lastEventID"] {
        assert_eq!(MatcherType::from_param(name), Ok(None), "{name}");
    }
    assert_eq!(MatcherType::from_name("urlpattern"), Ok(MatcherType::UrlPattern));
    assert!(MatcherType::from_name("URLPattern").is_err());
}

#[test]
fn a_v1_subscription_collects_every_matcher_and_refuses_unknown_types() {
    let hub = hub();
    let params = [("match", "https://example.com/foo"), ("last_event_id", "x"), ("match_urlpattern", "https://example.com/bar/:id")];
    let selectors = v1_subscription(params, &hub).expect("valid");
    assert_eq!(selectors.iter().map(Selector::as_str).collect::<Vec<_>>(), ["https://example.com/foo", "https://example.com/bar/:id"]);
    assert!(matches!(v1_subscription([("match_regex", ".*")], &hub), Err(SelectorError::UnknownMatcherType(_))));
    assert_eq!(v1_subscription([("topic", "a")], &hub).map(|_| ()), Err(SelectorError::Missing));
}

#[test]
fn a_legacy_subscription_takes_topic_parameters_up_to_the_bound() {
    let selectors = legacy_subscription([("topic", "https://example.com/foo"), ("topic", "bar"), ("lastEventID", "x")]).expect("valid");
    assert_eq!(selectors.len(), 2);
    assert_eq!(legacy_subscription([("lastEventID", "x")]).map(|_| ()), Err(SelectorError::Missing));
    let many: Vec<(&str, &str)> = (0..=MAX_SELECTORS).map(|_| ("topic", "t")).collect();
    assert_eq!(legacy_subscription(many).map(|_| ()), Err(SelectorError::TooMany));
}

#[test]
fn a_topic_is_resolved_once_for_many_patterns() {
    let hub = hub();
    let topic = TopicRef::on_hub("/books/1", &hub);
    let selectors: Vec<Selector> =
        (0..10).map(|i| Selector::v1(MatcherType::UrlPattern, &format!("/books/{i}"), &hub).expect("valid")).collect();
    assert!(any_matches(&selectors, &topic));
    assert_eq!(topic.url().map(Url::as_str), Some("https://hub.example.com/books/1"));
}
