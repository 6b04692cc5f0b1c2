//! RFC 6570 URI templates as 0.x topic selectors: does a topic look like an expansion of a template?
//!
//! Hand-written because no crate we can use does it: RFC 6570 defines only expansion, and the
//! crates that also match either stop at level 2 (the drafts' own example, `{?topic}`, is level 3)
//! or are AGPL-licensed, which an Apache-2.0 server cannot ship.
//!
//! A template is compiled once into one anchored `regex` regex, an engine without backtracking,
//! so matching a topic costs time linear in the topic whatever the template: a hostile subscriber
//! cannot make fan-out slow. The regex is deliberately a little more lenient than the exact set
//! of expansions (variable order and repetition inside one expression and `:n` prefix lengths are
//! not checked): what matters for routing is the shape each operator gives an expansion, e.g.
//! that `{id}` never spans a `/`, so `…/books/{id}` matches `…/books/1` and not `…/books/1/x`.

use regex::{Regex, RegexBuilder};

/// At most this many `{…}` expressions in one template.
pub(crate) const MAX_EXPRESSIONS: usize = 16;
/// At most this many variables in one expression.
pub(crate) const MAX_VARIABLES: usize = 16;
/// The compiled program of one template may not exceed this many bytes (the `regex` crate's own
/// bound on compiled size; what the limits above allow stays far below it).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a string is not a URI template (for a 0.x selector: it is then matched exactly).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("unbalanced braces")]
    Unbalanced,
    #[error("the literal character {0:?} is not allowed in a URI template")]
    Literal(char),
    #[error("invalid expression {0:?}")]
    Expression(String),
    #[error("more than {MAX_EXPRESSIONS} expressions or {MAX_VARIABLES} variables in one expression")]
    TooComplex,
    #[error("compiled template too large")]
    TooLarge,
}

/// A compiled template. Only templates with at least one expression are worth compiling; a
/// string without braces is just a literal.
#[derive(Debug, Clone)]
pub(crate) struct UriTemplate {
    regex: Regex,
}

impl UriTemplate {
    /// Parses and compiles `template`.
    pub(crate) fn compile(template: &str) -> Result<Self, TemplateError> {
        let mut pattern = String::from(r"\A");
        let mut rest = template;
        let mut expressions = 0;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(TemplateError::Unbalanced),
                Some(i) => {
                    push_literal(&mut pattern, &rest[..i])?;
                    let end = rest[i..].find('}').ok_or(TemplateError::Unbalanced)? + i;
                    expressions += 1;
                    if expressions > MAX_EXPRESSIONS {
                        return Err(TemplateError::TooComplex);
                    }
                    push_expression(&mut pattern, &rest[i + 1..end])?;
                    rest = &rest[end + 1..];
                }
                None => {
                    push_literal(&mut pattern, rest)?;
                    rest = "";
                }
            }
        }
        pattern.push_str(r"\z");
        let regex = RegexBuilder::new(&pattern).size_limit(REGEX_SIZE_LIMIT).build().map_err(|_| TemplateError::TooLarge)?;
        Ok(Self { regex })
    }

    /// Whether `topic` could be an expansion of the template.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

/// Literal text, checked against the RFC's `literals` rule and matched as itself.
fn push_literal(pattern: &mut String, literal: &str) -> Result<(), TemplateError> {
    let bytes = literal.as_bytes();
    for (i, c) in literal.char_indices() {
        let ok = match c {
            '%' => bytes.len() > i + 2 && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit(),
            ' ' | '"' | '\'' | '<' | '>' | '\\' | '^' | '`' | '|' => false,
            c => !c.is_control(),
        };
        if !ok {
            return Err(TemplateError::Literal(c));
        }
    }
    pattern.push_str(&regex::escape(literal));
    Ok(())
}

/// What one character of an expanded value may be. Unreserved characters and percent-encoded
/// octets are what expansion produces; non-ASCII characters are allowed too because topics are
/// IRIs, which carry them unencoded.
const VALUE: &str = r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])";
/// The same, plus the reserved set that `+` and `#` expansions leave as they are.
const VALUE_RESERVED: &str = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}|[^\x00-\x7F])";

/// One `{…}` expression: an optional operator and a comma-separated list of variables.
fn push_expression(pattern: &mut String, body: &str) -> Result<(), TemplateError> {
    let bad = || TemplateError::Expression(body.chars().take(64).collect());
    let (operator, list) = match body.chars().next() {
        Some(c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&')) => (Some(c), &body[1..]),
        Some('=' | ',' | '!' | '@' | '|') | None => return Err(bad()),
        Some(_) => (None, body),
    };
    let mut names = Vec::new();
    let mut explode = false;
    for spec in list.split(',') {
        if names.len() == MAX_VARIABLES {
            return Err(TemplateError::TooComplex);
        }
        let (name, exploded) = parse_varspec(spec).ok_or_else(bad)?;
        explode |= exploded;
        names.push(name);
    }
    // Values of a list or map are joined with commas (or the operator's separator when exploded);
    // an exploded map also writes `key=value`.
    let item = format!("(?:{VALUE}|,|=)*");
    // `;`, `?` and `&` write each variable as `name=value` (`;` drops `=` for an empty value). An
    // exploded map writes its own keys, so any name is then possible.
    let mut names: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
    if explode {
        names.push(format!("{VALUE}+"));
    }
    let named = format!("(?:{})(?:={item})?", names.join("|"));
    let expansion = match operator {
        None => item,
        Some('+') => format!("{VALUE_RESERVED}*"),
        Some('#') => format!("(?:#{VALUE_RESERVED}*)?"),
        Some('.') => format!(r"(?:\.{item})*"),
        Some('/') => format!("(?:/{item})*"),
        Some(';') => format!("(?:;{named})*"),
        // `?` starts the query and `&` continues one; later items are separated by `&` in both.
        Some('?') => format!(r"(?:\?{named}(?:&{named})*)?"),
        Some(_) => format!("(?:&{named})*"),
    };
    pattern.push_str(&expansion);
    Ok(())
}

/// `varname [ ":" max-length | "*" ]`; returns the name and whether it is exploded.
fn parse_varspec(spec: &str) -> Option<(&str, bool)> {
    let (name, explode) = if let Some(name) = spec.strip_suffix('*') {
        (name, true)
    } else if let Some((name, len)) = spec.split_once(':') {
        let valid = !len.is_empty() && len.len() <= 4 && !len.starts_with('0') && len.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            return None;
        }
        (name, false)
    } else {
        (spec, false)
    };
    valid_varname(name).then_some((name, explode))
}

/// `varchar *( ["."] varchar )` with `varchar = ALPHA / DIGIT / "_" / pct-encoded`.
fn valid_varname(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b[0] == b'.' || b[b.len() - 1] == b'.' {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => i += 3,
            b'.' if b[i - 1] != b'.' => i += 1,
            c if c.is_ascii_alphanumeric() || c == b'_' => i += 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &str, topic: &str) -> bool {
        UriTemplate::compile(template).expect(template).matches(topic)
    }

    #[test]
    fn a_simple_variable_matches_one_path_segment_and_nothing_more() {
        let t = "https://example.com/books/{id}";
        assert!(matches(t, "https://example.com/books/1"));
        assert!(matches(t, "https://example.com/books/a-b_c.d~e%20f"));
        assert!(matches(t, "https://example.com/books/"), "an empty value is an expansion");
        assert!(!matches(t, "https://example.com/books/1/reviews"));
        assert!(!matches(t, "https://example.com/authors/1"));
        assert!(!matches(t, "https://example.com/books/1?x=y"));
        assert!(!matches(t, "prefix https://example.com/books/1"));
    }

    #[test]
    fn the_conformance_shapes_match_and_do_not_match() {
        assert!(matches("https://example.net/foo/{random}", "https://example.net/foo/3f9a0c"));
        assert!(!matches("https://example.net/bar/{var}", "https://example.net/foo/will-not-match"));
    }

    #[test]
    fn the_query_operator_matches_the_drafts_alternate_topic_example() {
        let t = "https://example.com/users/foo/{?topic}";
        assert!(matches(t, "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"));
        assert!(matches(t, "https://example.com/users/foo/"));
        assert!(!matches(t, "https://example.com/users/foo/?other=1"));
        assert!(!matches(t, "https://example.com/users/bar/?topic=x"));
        assert!(!matches(t, "https://example.com/users/foo/?topic=a/b"), "a raw / is not an expansion of {{?topic}}");
    }

    #[test]
    fn each_operator_has_its_own_shape() {
        assert!(matches("/search{?q,lang}", "/search?q=cat&lang=fr"));
        assert!(matches("/search{?q}{&page}", "/search?q=cat&page=2"));
        assert!(matches("{+path}/here", "/foo/bar/here"));
        assert!(!matches("{path}/here", "/foo/bar/here"));
        assert!(matches("X{#frag}", "X#a/b,c"));
        assert!(matches("X{#frag}", "X"));
        assert!(matches("file{.ext}", "file.tar.gz"));
        assert!(!matches("file{.ext}", "file-tar"));
        assert!(matches("{/segments*}", "/a/b/c"));
        assert!(matches("/map{;x,y}", "/map;x=1;y"));
        assert!(!matches("/map{;x,y}", "/map;z=1"));
        assert!(matches("/map{;keys*}", "/map;z=1;w=2"));
        assert!(matches("{list}", "red,green,blue"));
        assert!(matches("/user/{name:3}", "/user/bob"));
        assert!(matches("http://example.com/{%C3%A9t%C3%A9}", "http://example.com/summer"));
    }

    #[test]
    fn literals_must_match_exactly_and_are_not_regex_syntax() {
        assert!(matches("a.b/{x}", "a.b/1"));
        assert!(!matches("a.b/{x}", "aXb/1"));
        assert!(matches("(x)+[y]/{v}", "(x)+[y]/1"));
    }

    #[test]
    fn invalid_templates_are_refused() {
        for (t, e) in [
            ("a{b", TemplateError::Unbalanced),
            ("a}b{c}", TemplateError::Unbalanced),
            ("a{}", TemplateError::Expression(String::new())),
            ("a{=b}", TemplateError::Expression("=b".into())),
            ("a{b c}", TemplateError::Expression("b c".into())),
            ("a{b:0}", TemplateError::Expression("b:0".into())),
            ("a{b:10000}", TemplateError::Expression("b:10000".into())),
            ("a{b..c}", TemplateError::Expression("b..c".into())),
            ("a{.b.}", TemplateError::Expression(".b.".into())),
            ("has space/{x}", TemplateError::Literal(' ')),
            ("bad%zz/{x}", TemplateError::Literal('%')),
        ] {
            assert_eq!(UriTemplate::compile(t).map(|_| ()), Err(e), "{t}");
        }
    }

    #[test]
    fn complexity_is_bounded() {
        let many = "{a}".repeat(MAX_EXPRESSIONS + 1);
        assert_eq!(UriTemplate::compile(&many).map(|_| ()), Err(TemplateError::TooComplex));
        let wide = format!("{{{}}}", vec!["v"; MAX_VARIABLES + 1].join(","));
        assert_eq!(UriTemplate::compile(&wide).map(|_| ()), Err(TemplateError::TooComplex));
        assert!(UriTemplate::compile(&"{?a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p}".repeat(MAX_EXPRESSIONS)).is_ok());
    }

    #[test]
    #[expect(clippy::disallowed_methods, reason = "the bound is on real CPU time spent matching")]
    fn a_long_hostile_topic_is_matched_quickly() {
        let t = UriTemplate::compile(&"{x}a".repeat(MAX_EXPRESSIONS)).expect("valid");
        let topic = "a".repeat(100_000) + "!";
        let start = std::time::Instant::now();
        assert!(!t.matches(&topic));
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
    }
}
