//! Character rules shared by topics, matchers, ids and event types.
//!
//! The 1.0 draft forbids the same set of characters in every string that reaches the wire or a
//! header (topics, matcher values, `id`, `type`): C0 and C1 controls, DEL, and Unicode format
//! characters (general category `Cf`: the bidirectional and zero-width controls). Controls could
//! inject SSE fields or break a `Last-Event-ID` header; format characters are invisible and make
//! two different topics look alike. The 0.x draft only needs the injection part (CR, LF, NUL).
//!
//! One file because `selector.rs` and `update.rs` both need it (a helper living in either would
//! make the other reach into a sibling).

use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// The first character of `s` that the 1.0 draft forbids, if any.
pub(crate) fn forbidden_char(s: &str) -> Option<char> {
    // `CodePointMapData::new()` is a const lookup into data compiled into the binary: no allocation,
    // no I/O, cheap enough to call per string.
    let categories = CodePointMapData::<GeneralCategory>::new();
    s.chars().find(|&c| c.is_control() || categories.get(c) == GeneralCategory::Format)
}

/// The first character of `s` that could end an SSE line or field (CR, LF, NUL), if any: what a
/// 0.x value must still not contain, whatever the older draft says, so that no publisher can
/// forge a field.
pub(crate) fn line_break_char(s: &str) -> Option<char> {
    s.chars().find(|c| matches!(c, '\r' | '\n' | '\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_format_characters_are_forbidden() {
        for (s, c) in [
            ("a\u{0}b", '\u{0}'),
            ("a\nb", '\n'),
            ("a\u{7f}", '\u{7f}'),
            ("a\u{85}", '\u{85}'),
            ("a\u{200b}b", '\u{200b}'),
            ("\u{202e}evil", '\u{202e}'),
            ("bom\u{feff}", '\u{feff}'),
            ("tag\u{e007f}", '\u{e007f}'),
        ] {
            assert_eq!(forbidden_char(s), Some(c), "{s:?}");
        }
    }

    #[test]
    fn ordinary_text_including_non_ascii_is_allowed() {
        for s in ["https://example.com/books/1", "livres/é", "東京", "a b", "emoji 🎉", ""] {
            assert_eq!(forbidden_char(s), None, "{s:?}");
        }
    }

    #[test]
    fn line_breaks_are_found_for_the_older_draft() {
        assert_eq!(line_break_char("a\r\nb"), Some('\r'));
        assert_eq!(line_break_char("a\0"), Some('\0'));
        assert_eq!(line_break_char("a\u{200b}b"), None);
    }
}
