//! The configuration page (`docs/configuration.md`) against what the binary itself says: every
//! variable `gateway --help` lists has its row there, with its flag and default, and the page has
//! no row for a variable the binary no longer reads. Operators read the page, not the source, so a
//! variable added without its row (or renamed under it) would be a setting nobody can find.
//!
//! Self-contained on purpose (std only): it reads the built binary's `--help` and the page, and
//! needs no server, Redis or helper of the other suites.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Fewer variables than this in `--help` means the parsing below broke (or clap's format
/// changed), not that the gateway lost its settings: the test must not pass on an empty list.
const AT_LEAST: usize = 40;

/// One variable as `--help` prints it.
#[derive(Debug)]
struct HelpEntry {
    flag: String,
    default: Option<String>,
}

/// One table row of the configuration page whose first cell is a variable name.
#[derive(Debug)]
struct Row {
    line: usize,
    flag: String,
    default: String,
}

/// `--help`'s options, by variable. clap prints each option as a line starting with its flag
/// (`  -h, --help`, `      --listen-addr <LISTEN_ADDR>`), then its description ending with
/// `[env: NAME=…]` and `[default: …]`; whitespace is folded so that a wrapped description reads
/// the same.
fn help_entries() -> BTreeMap<String, HelpEntry> {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--help")
        .env("COLUMNS", "1000")
        .output()
        .expect("the gateway binary runs with --help");
    assert!(out.status.success(), "gateway --help failed: {}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8(out.stdout).expect("--help is UTF-8");

    // Each option's text, from its flag line up to the next flag line.
    let mut options: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let flag_line = trimmed.strip_prefix("-h, ").or_else(|| trimmed.strip_prefix("-V, ")).unwrap_or(trimmed);
        if let Some(rest) = flag_line.strip_prefix("--") {
            let flag: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            options.push((format!("--{flag}"), String::new()));
        } else if let Some((_, text)) = options.last_mut() {
            text.push(' ');
            text.push_str(trimmed);
        }
    }

    let mut entries = BTreeMap::new();
    for (flag, text) in options {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(name) = bracketed(&text, "[env: ") else { continue };
        let name = name.split('=').next().unwrap_or_default().to_owned();
        assert!(is_variable_name(&name), "{flag}: cannot read its variable out of {text:?}");
        let default = bracketed(&text, "[default: ");
        let previous = entries.insert(name.clone(), HelpEntry { flag, default });
        assert!(previous.is_none(), "--help lists {name} twice");
    }
    entries
}

/// The text between `open` and the next `]`.
fn bracketed(text: &str, open: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(']')?;
    Some(text[start..start + len].to_owned())
}

/// `GATEWAY_LISTEN_ADDR`, `OTEL_SERVICE_NAME`: what an environment variable's name looks like.
fn is_variable_name(s: &str) -> bool {
    s.len() > 2
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The page's rows whose first cell is a variable name in backticks, by variable.
fn page_rows(page: &str) -> (BTreeMap<String, Row>, Vec<String>) {
    let mut rows = BTreeMap::new();
    let mut twice = Vec::new();
    for (i, line) in page.lines().enumerate() {
        let Some(body) = line.trim().strip_prefix('|') else { continue };
        let cells: Vec<&str> = body.split('|').map(str::trim).collect();
        let Some(name) = cells.first().and_then(|c| c.strip_prefix('`')).and_then(|c| c.strip_suffix('`')) else { continue };
        if !is_variable_name(name) {
            continue;
        }
        let row = Row {
            line: i + 1,
            flag: cells.get(1).copied().unwrap_or_default().to_owned(),
            default: cells.get(2).copied().unwrap_or_default().to_owned(),
        };
        if let Some(first) = rows.insert(name.to_owned(), row) {
            twice.push(format!("{name} has two rows (lines {} and {})", first.line, i + 1));
        }
    }
    (rows, twice)
}

#[test]
fn every_variable_in_help_has_its_row_in_the_configuration_page_and_no_row_is_stale() {
    let help = help_entries();
    assert!(
        help.len() >= AT_LEAST,
        "--help listed only {} variables ({:?}); expected at least {AT_LEAST}: the parsing is broken",
        help.len(),
        help.keys().collect::<Vec<_>>()
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (rows, mut problems) = page_rows(&page);

    for (name, entry) in &help {
        let Some(row) = rows.get(name) else {
            problems.push(format!("{name} ({}) is in --help but has no row", entry.flag));
            continue;
        };
        if row.flag != format!("`{}`", entry.flag) {
            problems.push(format!("{name} (line {}): its flag cell says {}, --help says `{}`", row.line, row.flag, entry.flag));
        }
        if let Some(default) = &entry.default
            && !row.default.contains(&format!("`{default}`"))
        {
            problems.push(format!("{name} (line {}): its default cell says {}, --help says `{default}`", row.line, row.default));
        }
    }
    for (name, row) in &rows {
        if !help.contains_key(name) {
            problems.push(format!("{name} (line {}) has a row but --help does not list it (a stale row)", row.line));
        }
    }

    assert!(problems.is_empty(), "{} does not match gateway --help:\n  {}", path.display(), problems.join("\n  "));
}

/// The pages whose links are checked: the README, `docs/`, and the pages they link to and from.
const PAGES: &[&str] = &[
    "README.md",
    "BENCHMARKS.md",
    "RELIABILITY.md",
    "docs/api.md",
    "docs/architecture.md",
    "docs/configuration.md",
    "docs/development.md",
    "docs/mercure.md",
    "docs/operations.md",
    "docs/redis.md",
    "helm/sse-gateway/README.md",
    "loadtest/README.md",
    "fuzz/README.md",
];

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (outside code blocks), and its text outside code blocks.
fn read_page(path: &Path) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut anchors, mut prose, mut in_code) = (Vec::new(), String::new(), false);
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            anchors.push(anchor(&line[level..]));
        }
        prose.push_str(line);
        prose.push('\n');
    }
    (anchors, prose)
}

#[test]
fn every_relative_link_of_the_docs_names_a_file_and_a_heading_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in PAGES {
        let path = root.join(page);
        let (own, prose) = read_page(&path);
        for link in prose.split("](").skip(1).filter_map(|rest| rest.split_once(')').map(|(link, _)| link)) {
            if link.contains("://") || link.starts_with("mailto:") || link.contains(' ') {
                continue;
            }
            checked += 1;
            let (file, fragment) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() { path.clone() } else { path.parent().expect("a page has a directory").join(file) };
            if !target.exists() {
                problems.push(format!("{page}: {link}: no such file"));
            } else if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let anchors = if file.is_empty() { own.clone() } else { read_page(&target).0 };
                if !anchors.iter().any(|a| a == fragment) {
                    problems.push(format!("{page}: {link}: no such heading"));
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} links found: the parsing is broken");
    assert!(problems.is_empty(), "broken links:\n  {}", problems.join("\n  "));
}
