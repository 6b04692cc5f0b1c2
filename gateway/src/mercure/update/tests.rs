//! Publish bodies per version: the drafts' rules with their statuses, and the shapes real
//! publishers send.

use super::*;

fn rules(protocol: Protocol) -> UpdateRules {
    UpdateRules {
        protocol,
        hub_url: Url::parse("https://hub.example.com/.well-known/mercure").expect("valid"),
        limits: UpdateLimits::default(),
    }
}

fn parse(body: &str, protocol: Protocol) -> Result<Update, UpdateError> {
    parse_update(body.as_bytes(), &rules(protocol))
}

const BOTH: [Protocol; 2] = [Protocol::Legacy, Protocol::V1];

#[test]
fn the_drafts_example_body_parses_with_a_generated_uuid_v7_urn() {
    for p in BOTH {
        let u = parse("topic=https://example.com/foo&data=the%20content", p).expect("valid");
        assert_eq!(u.topics, ["https://example.com/foo"]);
        assert_eq!(u.data, "the content");
        assert!(!u.publisher_id && !u.private);
        let uuid = u.id.strip_prefix("urn:uuid:").expect("a UUID URN");
        assert_eq!(Uuid::parse_str(uuid).expect("a UUID").get_version_num(), 7);
    }
}

#[test]
fn a_symfony_shaped_body_with_repeated_topics_and_plus_for_spaces() {
    // What Symfony's HttpClient-based publisher sends: one `topic` key per topic, spaces as `+`.
    let body = "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&topic=https%3A%2F%2Fexample.com%2Fusers%2Fdunglas%2F%3Ftopic%3Dbooks&data=%7B%22status%22%3A+%22out+of+stock%22%7D&private=on&id=urn%3Auuid%3A42&type=book.updated&retry=1500";
    for p in BOTH {
        let u = parse(body, p).expect("valid");
        assert_eq!(u.canonical_topic(), "https://example.com/books/1");
        assert_eq!(u.topics[1], "https://example.com/users/dunglas/?topic=books");
        assert_eq!(u.data, r#"{"status": "out of stock"}"#);
        assert!(u.private && u.publisher_id);
        assert_eq!(u.id, "urn:uuid:42");
        assert_eq!(u.event_type.as_deref(), Some("book.updated"));
        assert_eq!(u.retry, Some(1500));
    }
}

#[test]
fn private_is_set_by_presence_whatever_its_value() {
    for body in ["topic=a&private", "topic=a&private=", "topic=a&private=on", "topic=a&private=false"] {
        assert!(parse(body, Protocol::V1).expect(body).private, "{body}");
    }
    assert!(!parse("topic=a&privately=on", Protocol::V1).expect("valid").private);
}

#[test]
fn a_missing_topic_is_a_400() {
    for p in BOTH {
        for body in ["", "data=x", "topics=a"] {
            let err = parse(body, p).expect_err(body);
            assert_eq!(err, UpdateError::MissingTopic);
            assert_eq!((err.status(), err.field()), (StatusCode::BAD_REQUEST, Field::Topic));
        }
    }
}

#[test]
fn an_id_starting_with_hash_is_a_400_in_both_versions() {
    for p in BOTH {
        let err = parse("topic=a&id=%23123", p).expect_err("reserved");
        assert_eq!((err.clone(), err.status(), err.field()), (UpdateError::IdStartsWithHash, StatusCode::BAD_REQUEST, Field::Id));
        assert_eq!(parse("topic=a&id=earliest", p), Err(UpdateError::ReservedId));
    }
}

#[test]
fn an_empty_id_is_taken_as_none() {
    let u = parse("topic=a&id=", Protocol::V1).expect("valid");
    assert!(!u.publisher_id && u.id.starts_with("urn:uuid:"));
}

#[test]
fn v1_refuses_control_and_format_characters_in_topics_ids_and_types() {
    for (body, field, c) in [
        ("topic=a%0Ab", Field::Topic, '\n'),
        ("topic=a%E2%80%8Bb", Field::Topic, '\u{200b}'),
        ("topic=a&id=x%7Fy", Field::Id, '\u{7f}'),
        ("topic=a&id=x%C2%85", Field::Id, '\u{85}'),
        ("topic=a&type=x%E2%80%AEy", Field::Type, '\u{202e}'),
        ("topic=a&type=x%0D", Field::Type, '\r'),
    ] {
        let err = parse(body, Protocol::V1).expect_err(body);
        assert_eq!(err, UpdateError::Forbidden(field, c), "{body}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn legacy_refuses_only_what_could_break_an_sse_line() {
    assert_eq!(parse("topic=a&id=x%0Aid:+forged", Protocol::Legacy), Err(UpdateError::Forbidden(Field::Id, '\n')));
    assert_eq!(parse("topic=a&type=x%00", Protocol::Legacy), Err(UpdateError::Forbidden(Field::Type, '\0')));
    assert!(parse("topic=a&id=x%E2%80%8By", Protocol::Legacy).is_ok(), "format characters are 1.0's rule");
    assert!(parse("topic=a&data=line%0Aline", Protocol::Legacy).is_ok(), "data may hold line breaks");
}

#[test]
fn v1_reserves_the_wildcard_topic_and_the_mercure_type() {
    assert_eq!(parse("topic=a&topic=*", Protocol::V1), Err(UpdateError::WildcardTopic));
    assert_eq!(parse("topic=a&type=mercure", Protocol::V1), Err(UpdateError::ReservedType));
    assert!(parse("topic=*&type=mercure", Protocol::Legacy).is_ok(), "0.x has neither rule");
}

#[test]
fn v1_refuses_topics_in_the_hubs_namespace_however_spelled() {
    for topic in [
        "/.well-known/mercure",
        "/.well-known/mercure/subscriptions/x/y",
        "https://hub.example.com/.well-known/mercure/subscriptions/x",
        "https://elsewhere.example/.well-known/mercure/x",
        "/.well-known/%6Dercure/x",
        "/a/../.well-known/mercure/x",
        "/.well-known/mercure/%2E%2E/mercure/x",
        "mercure/x",
    ] {
        let body = format!("topic={}", form_urlencoded::byte_serialize(topic.as_bytes()).collect::<String>());
        assert_eq!(parse(&body, Protocol::V1), Err(UpdateError::ReservedTopic), "{topic}");
    }
    for topic in ["/.well-known/mercurex", "https://example.com/books/1", "urn:isbn:123", "plain-name", "/.well-known/%4Dercure/x"] {
        let body = format!("topic={}", form_urlencoded::byte_serialize(topic.as_bytes()).collect::<String>());
        assert!(parse(&body, Protocol::V1).is_ok(), "{topic}");
    }
}

#[test]
fn retry_must_be_ascii_digits() {
    for p in BOTH {
        assert_eq!(parse("topic=a&retry=10", p).expect("valid").retry, Some(10));
        for bad in ["", "-1", "1.5", "+1", "1e3", "%EF%BC%91", "99999999999999999999999"] {
            let err = parse(&format!("topic=a&retry={bad}"), p).expect_err(bad);
            assert_eq!((err.clone(), err.field()), (UpdateError::InvalidRetry, Field::Retry), "{bad}");
        }
    }
}

#[test]
fn repeated_single_fields_keep_the_first_and_unknown_fields_are_ignored() {
    let u = parse("topic=a&data=first&data=second&id=one&id=two&future=1", Protocol::V1).expect("valid");
    assert_eq!((u.data.as_str(), u.id.as_str()), ("first", "one"));
}

#[test]
fn limits_answer_413_and_name_the_field() {
    let mut r = rules(Protocol::V1);
    r.limits.max_topics = 2;
    assert_eq!(parse_update(b"topic=a&topic=b&topic=c", &r), Err(UpdateError::TooManyTopics(2)));
    r.limits.max_id_len = 3;
    let err = parse_update(b"topic=a&id=abcd", &r).expect_err("too long");
    assert_eq!((err.status(), err.field()), (StatusCode::PAYLOAD_TOO_LARGE, Field::Id));
    r.limits.max_data_len = 2;
    assert_eq!(parse_update(b"topic=a&data=abc", &r).map(|_| ()), Err(UpdateError::TooLong(Field::Data, 2)));
}

#[test]
fn malformed_utf8_decodes_to_replacement_characters_like_a_browser() {
    let u = parse("topic=a&data=%FF", Protocol::V1).expect("valid");
    assert_eq!(u.data, "\u{fffd}");
}

#[test]
fn generated_ids_are_unique_and_time_ordered() {
    let a = generate_id();
    let b = generate_id();
    assert_ne!(a, b);
    assert!(a < b, "{a} then {b}");
}
