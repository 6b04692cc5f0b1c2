//! Grants from 0.x and 1.0 claims, and the publish / private-receive decisions.

use serde_json::json;

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_700_000_000;

fn policy() -> AccessTokenPolicy {
    AccessTokenPolicy {
        resource: "https://localhost/.well-known/mercure".into(),
        issuers: vec!["https://localhost".into(), "https://auth.example.com".into()],
        hub_url: Url::parse("https://localhost/.well-known/mercure").expect("valid"),
    }
}

fn plain(topics: &[&'static str]) -> Vec<TopicRef<'static>> {
    topics.iter().map(|t| TopicRef::plain(t)).collect()
}

/// The claims a 1.0 publisher presents in the conformance suite's shape: publish and subscribe
/// on everything, no `sub`, `iat` or `jti` (the hub enforces only `iss`, `aud` and `exp`).
fn v1_claims() -> Value {
    json!({
        "aud": "https://localhost/.well-known/mercure",
        "iss": "https://localhost",
        "exp": 4_102_444_800u64,
        "authorization_details": [
            {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": "*"}]},
            {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "*"}]}
        ]
    })
}

#[test]
fn a_legacy_mercure_claim_grants_its_selectors() {
    let claims = json!({"mercure": {"publish": ["https://example.com/books/{id}"], "subscribe": ["*"], "payload": {"user": 1}}});
    let grant = legacy_grant(&claims, at(NOW)).expect("valid");
    assert!(grant.authorize_publish(&plain(&["https://example.com/books/1"])).is_ok());
    assert!(grant.may_receive_private(&plain(&["anything"])));
    assert_eq!(grant.payload_for(&TopicRef::plain("any-subscription")), Some(&json!({"user": 1})));
    assert_eq!(grant.exp, None);
}

#[test]
fn the_mercure_rocks_claim_name_is_accepted_too() {
    let claims = json!({"https://mercure.rocks/": {"publish": ["*"]}});
    let grant = legacy_grant(&claims, at(NOW)).expect("valid");
    assert!(grant.authorize_publish(&plain(&["a"])).is_ok());
    assert!(!grant.may_receive_private(&plain(&["a"])));
}

#[test]
fn a_float_exp_is_accepted_and_kept_exactly() {
    // What Symfony's token factory writes: a NumericDate with a fraction.
    let claims = json!({"mercure": {"publish": ["*"]}, "exp": 1_700_000_060.5});
    let grant = legacy_grant(&claims, at(NOW)).expect("valid");
    assert_eq!(grant.exp, Some(1_700_000_060.5));
    assert_eq!(grant.expires_at(), Some(UNIX_EPOCH + Duration::from_millis(1_700_000_060_500)));
    assert_eq!(legacy_grant(&claims, at(NOW + 61)).map(|_| ()), Err(GrantError::Expired));
}

#[test]
fn legacy_tokens_without_exp_aud_or_iss_are_valid() {
    let grant = legacy_grant(&json!({"mercure": {"subscribe": ["x"]}}), at(NOW)).expect("valid");
    assert!(grant.may_receive_private(&plain(&["x"])));
}

#[test]
fn a_legacy_token_without_a_mercure_claim_grants_nothing() {
    let grant = legacy_grant(&json!({"sub": "alice"}), at(NOW)).expect("valid");
    assert_eq!(grant.authorize_publish(&plain(&["a"])), Err(GrantError::NotGranted("publish")));
    assert!(!grant.may_receive_private(&plain(&["a"])));
    assert_eq!(grant.subject.as_deref(), Some("alice"));
}

#[test]
fn malformed_legacy_claims_are_invalid_tokens() {
    for (claims, field) in [
        (json!({"mercure": "publish"}), "mercure"),
        (json!({"mercure": {"publish": "*"}}), "publish"),
        (json!({"mercure": {"subscribe": [1]}}), "subscribe"),
        (json!({"exp": "tomorrow"}), "exp"),
    ] {
        let err = legacy_grant(&claims, at(NOW)).expect_err("malformed");
        assert_eq!(err, GrantError::Malformed(field));
        assert_eq!(err.bearer(), BearerError::InvalidToken);
    }
    assert_eq!(legacy_grant(&json!({"nbf": NOW + 10}), at(NOW)).map(|_| ()), Err(GrantError::NotYetValid));
}

#[test]
fn a_publisher_must_be_granted_every_topic_of_the_update() {
    let grant = legacy_grant(&json!({"mercure": {"publish": ["https://example.com/books/{id}"]}}), at(NOW)).expect("valid");
    let err = grant.authorize_publish(&plain(&["https://example.com/books/1", "https://example.com/secret"])).expect_err("one not granted");
    assert_eq!(err.bearer(), BearerError::InsufficientScope);
    assert_eq!(err.bearer().status(), http::StatusCode::FORBIDDEN);
    assert!(grant.authorize_publish(&plain(&[])).is_err(), "an update without topics is never granted");
}

#[test]
fn a_private_update_reaches_a_subscriber_granted_one_alternate_topic() {
    let grant = legacy_grant(&json!({"mercure": {"subscribe": ["https://example.com/users/foo/{?topic}"]}}), at(NOW)).expect("valid");
    let canonical = "https://example.com/books/1";
    let alternate = "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1";
    assert!(may_receive(Some(&grant), true, &plain(&[canonical, alternate])));
    assert!(!may_receive(Some(&grant), true, &plain(&[canonical])));
    assert!(may_receive(Some(&grant), false, &plain(&[canonical])), "public updates need no grant");
    assert!(may_receive(None, false, &plain(&[canonical])));
    assert!(!may_receive(None, true, &plain(&[canonical, alternate])), "anonymous subscribers never get private updates");
}

#[test]
fn a_conformance_shaped_access_token_grants_everything() {
    let grant = access_token_grant(&v1_claims(), &policy(), at(NOW)).expect("valid");
    let hub = policy().hub_url;
    let topics = [TopicRef::on_hub("https://example.net/foo/x", &hub)];
    assert!(grant.authorize_publish(&topics).is_ok());
    assert!(grant.may_receive_private(&topics));
    assert_eq!(grant.exp, Some(4_102_444_800.0));
}

#[test]
fn an_access_token_for_another_hub_is_refused() {
    for aud in [json!("https://other.example.com/.well-known/mercure"), json!(["https://a.example"]), json!(null), json!(7)] {
        let mut claims = v1_claims();
        claims["aud"] = aud;
        let err = access_token_grant(&claims, &policy(), at(NOW)).expect_err("wrong audience");
        assert_eq!(err, GrantError::WrongAudience);
        assert_eq!(err.bearer().code(), "invalid_token");
        assert_eq!(err.bearer().status(), http::StatusCode::UNAUTHORIZED);
    }
    let mut claims = v1_claims();
    claims["aud"] = json!(["https://a.example", "https://localhost/.well-known/mercure"]);
    assert!(access_token_grant(&claims, &policy(), at(NOW)).is_ok(), "an array holding the resource is enough");
}

#[test]
fn an_access_token_from_an_untrusted_issuer_is_refused() {
    for iss in [json!("https://evil.example"), json!("https://localhost/"), json!(null)] {
        let mut claims = v1_claims();
        claims["iss"] = iss;
        assert_eq!(access_token_grant(&claims, &policy(), at(NOW)).map(|_| ()), Err(GrantError::UntrustedIssuer));
    }
}

#[test]
fn an_access_token_needs_an_unexpired_exp() {
    let mut claims = v1_claims();
    claims.as_object_mut().expect("object").remove("exp");
    assert_eq!(access_token_grant(&claims, &policy(), at(NOW)).map(|_| ()), Err(GrantError::MissingExpiry));
    claims["exp"] = json!(NOW);
    assert_eq!(access_token_grant(&claims, &policy(), at(NOW)).map(|_| ()), Err(GrantError::Expired));
}

#[test]
fn only_at_jwt_tokens_are_access_tokens() {
    for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
        assert!(check_access_token_type(Some(ok)).is_ok(), "{ok}");
    }
    for bad in [None, Some("JWT"), Some("application/jwt"), Some("at+jwt2"), Some("")] {
        assert!(matches!(check_access_token_type(bad), Err(GrantError::TokenType(_))), "{bad:?}");
    }
}

#[test]
fn authorization_details_grant_per_action_and_ignore_other_types_and_unknown_actions() {
    let mut claims = v1_claims();
    claims["authorization_details"] = json!([
        {"type": "https://other.example/detail", "whatever": true},
        {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe", "audit"],
         "topics": [{"match": "https://example.com/books/1", "match_type": "exact"},
                    {"match": "https://example.com/users/42/*", "match_type": "urlpattern"}]}
    ]);
    let grant = access_token_grant(&claims, &policy(), at(NOW)).expect("valid");
    let hub = policy().hub_url;
    let t = |s: &'static str| TopicRef::on_hub(s, &hub);
    assert!(grant.may_receive_private(&[t("https://example.com/books/1")]));
    assert!(!grant.may_receive_private(&[t("https://example.com/books/2")]));
    assert!(grant.may_receive_private(&[t("https://example.com/books/2"), t("https://example.com/users/42/books/2")]));
    assert!(grant.authorize_publish(&[t("https://example.com/books/1")]).is_err(), "subscribe does not grant publish");
}

#[test]
fn any_malformed_mercure_detail_invalidates_the_whole_token() {
    let good = json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": "*"}]});
    for bad in [
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": [], "topics": [{"match": "*"}]}),
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish", 3], "topics": [{"match": "*"}]}),
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"], "topics": []}),
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"], "topics": ["*"]}),
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": "x", "match_type": "regex"}]}),
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": "https://x/(", "match_type": "urlpattern"}]}),
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "x"}], "payload": "text"}),
        json!("not an object"),
    ] {
        let mut claims = v1_claims();
        claims["authorization_details"] = json!([good.clone(), bad.clone()]);
        let err = access_token_grant(&claims, &policy(), at(NOW)).expect_err("malformed");
        assert_eq!(err.bearer(), BearerError::InvalidToken, "{bad} gave {err}");
    }
    let mut claims = v1_claims();
    claims["authorization_details"] = json!(vec![good; MAX_DETAILS + 1]);
    assert_eq!(access_token_grant(&claims, &policy(), at(NOW)).map(|_| ()), Err(GrantError::TooManyDetails));
}

#[test]
fn the_first_subscribe_detail_matching_a_subscription_gives_its_payload() {
    let mut claims = v1_claims();
    claims["authorization_details"] = json!([
        {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "https://example.com/foo"}], "payload": {"n": 1}},
        {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": {"n": 3}}
    ]);
    let grant = access_token_grant(&claims, &policy(), at(NOW)).expect("valid");
    let hub = policy().hub_url;
    assert_eq!(grant.payload_for(&TopicRef::on_hub("https://example.com/foo", &hub)), Some(&json!({"n": 1})));
    assert_eq!(grant.payload_for(&TopicRef::on_hub("https://example.com/bar", &hub)), Some(&json!({"n": 3})));
}

#[test]
fn a_token_without_mercure_details_is_valid_and_grants_nothing() {
    let mut claims = v1_claims();
    claims.as_object_mut().expect("object").remove("authorization_details");
    let grant = access_token_grant(&claims, &policy(), at(NOW)).expect("valid");
    assert!(grant.publish.is_empty() && grant.subscribe.is_empty());
}
