//! Topics and patterns: what parsing accepts is exactly the documented alphabet and length,
//! pattern matching agrees with a plain dynamic-programming glob, and the Redis key layout
//! gives every topic its own keys and reads them back.

use super::input::Input;
use crate::claims::TopicPattern;
use crate::event::{MAX_TOPIC_LEN, Topic};
use crate::keys::{DEFAULT_PREFIX, KeyLayout};

/// Layout: text `0xFF` text `0xFF` text (the rest): each is tried as a topic and a pattern; the
/// first two are topics for matching and keys, the third a pattern.
pub(super) fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let a = input.text();
    let b = input.text();
    let p = String::from_utf8_lossy(input.rest()).into_owned();
    let layouts = [KeyLayout::new(DEFAULT_PREFIX), KeyLayout::new("tenant:a")];

    for text in [&a, &b, &p] {
        let topic = Topic::parse(text);
        assert_eq!(topic.is_ok(), is_topic(text, false), "Topic::parse({text:?}) = {topic:?}");
        let pattern = TopicPattern::parse(text);
        // The subject placeholder is the one extra a pattern may hold, counted at its length.
        assert_eq!(pattern.is_ok(), is_topic(&text.replace("{sub}", "sssss"), true), "TopicPattern::parse({text:?}) = {pattern:?}");
        if let Ok(topic) = topic {
            assert_eq!(topic.as_str(), text);
            assert_eq!(serde_json::from_value::<Topic>(serde_json::Value::String(text.clone())).ok(), Some(topic.clone()));
            // A topic is a pattern granting itself and nothing else.
            assert!(pattern.as_ref().is_ok_and(|p| p.matches(&topic)));
            for k in &layouts {
                assert_eq!(k.topic_of_stream(&k.stream(&topic)).as_ref(), Some(&topic));
                assert_eq!(k.topic_of_live(&k.live(&topic)).as_ref(), Some(&topic));
                // The braces make the whole topic the Redis Cluster hash tag: one pair, around it.
                let key = k.stream(&topic);
                assert_eq!((key.matches('{').count(), key.matches('}').count()), (1, 1), "{key}");
                assert!(key.ends_with(&format!("{{{topic}}}")), "{key}");
            }
        }
        // Reading any key back gives a topic only if that topic's key is exactly that text.
        for k in &layouts {
            if let Some(t) = k.topic_of_stream(text) {
                assert_eq!(&k.stream(&t), text);
            }
            if let Some(t) = k.topic_of_live(text) {
                assert_eq!(&k.live(&t), text);
            }
        }
    }

    let (ta, tb) = (Topic::parse(&a), Topic::parse(&b));
    if let (Ok(ta), Ok(tb)) = (&ta, &tb) {
        // Different topics, different keys, in every layout; streams and channels never collide.
        for k in &layouts {
            assert_eq!(k.stream(ta) == k.stream(tb), ta == tb);
            assert_eq!(k.live(ta) == k.live(tb), ta == tb);
            assert_ne!(k.stream(ta), k.live(tb));
        }
        assert_ne!(layouts[0].stream(ta), layouts[1].stream(tb));
    }

    if let Ok(pattern) = TopicPattern::parse(&p) {
        for topic in [&ta, &tb].into_iter().flatten() {
            assert_eq!(pattern.matches(topic), glob(p.as_bytes(), topic.as_str().as_bytes()), "{p:?} on {topic:?}");
        }
        // Topics made from the pattern, its stars filled with nothing or with `a`, match it.
        for fill in ["", a.as_str()] {
            if let Ok(topic) = Topic::parse(&p.replace('*', fill)) {
                assert!(pattern.matches(&topic), "{p:?} on {topic:?}");
            }
        }
    }
}

/// The documented alphabet and bound, written out; `*` too for patterns.
fn is_topic(s: &str, pattern: bool) -> bool {
    let alphabet =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_uppercase() || b.is_ascii_digit() || b"._-:/@".contains(&b) || (pattern && b == b'*');
    !s.is_empty() && s.len() <= MAX_TOPIC_LEN && s.bytes().all(alphabet)
}

/// `*` matches any run of bytes: `m[j]` says whether the pattern so far matches `text[..j]`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let mut m = vec![false; text.len() + 1];
    m[0] = true;
    for &c in pattern {
        m = if c == b'*' {
            let mut any = false;
            m.iter()
                .map(|&x| {
                    any |= x;
                    any
                })
                .collect()
        } else {
            (0..=text.len()).map(|j| j > 0 && m[j - 1] && text[j - 1] == c).collect()
        };
    }
    m[text.len()]
}
