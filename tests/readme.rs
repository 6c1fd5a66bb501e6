//! The README's Troubleshooting section stays true to the code.
//!
//! Users find an entry by pasting the message they see, so every message
//! fragment that heads an entry must be text the provider really writes: each
//! code span in a `#### ` heading must occur in the provider's source under
//! `src/` (test code and comments excluded), with `<…>` placeholders standing
//! for the values the code formats in.  Headings starting `Driver:` quote the
//! CSI driver or kubelet and are not checked against `src/`; headings starting
//! `No error:` describe a symptom without a message.  Every gRPC code the
//! section names must be one tonic knows.  No OpenBao needed.

use std::path::{Path, PathBuf};

/// The crate's root folder.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README's `## Troubleshooting` section, up to the next `## ` heading.
fn troubleshooting() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Troubleshooting\n")
        .expect("README has a ## Troubleshooting section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// One `#### ` entry: its heading and the lines under it.
struct Entry {
    /// The heading text after `#### `.
    heading: String,
    /// The lines up to the next heading.
    body: String,
}

/// The section's entries, in order.
fn entries(section: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut current: Option<Entry> = None;
    for line in section.lines() {
        if let Some(heading) = line.strip_prefix("#### ") {
            entries.extend(current.take());
            current = Some(Entry {
                heading: heading.to_string(),
                body: String::new(),
            });
        } else if line.starts_with('#') {
            entries.extend(current.take());
        } else if let Some(entry) = current.as_mut() {
            entry.body.push_str(line);
            entry.body.push('\n');
        }
    }
    entries.extend(current);
    entries
}

/// The contents of the single-backtick code spans in `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The literal pieces of a fragment between its `<placeholder>`s (a `<`,
/// lower-case letters, spaces or hyphens, and a `>`); any other `<` is
/// literal text.
fn literal_pieces(fragment: &str) -> Vec<&str> {
    let is_placeholder = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-')
    };
    let mut pieces = Vec::new();
    let (mut piece_start, mut search_from) = (0, 0);
    while let Some(open) = fragment[search_from..].find('<').map(|i| search_from + i) {
        match fragment[open..].find('>').map(|i| open + i) {
            Some(close) if is_placeholder(&fragment[open + 1..close]) => {
                pieces.push(&fragment[piece_start..open]);
                piece_start = close + 1;
                search_from = close + 1;
            }
            _ => search_from = open + 1,
        }
    }
    pieces.push(&fragment[piece_start..]);
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A source file as the strings in it read at run time: comments and
/// `#[cfg(test)]` items dropped, string continuations (`\` at the end of a
/// line) joined, `\"` unescaped.
fn runtime_text(source: &str) -> String {
    let mut kept = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed == "#[cfg(test)]" {
            // Skip the item (attributes included): up to the line where its
            // braces balance again, or its `;` when it has no body.
            let mut depth = 0i32;
            for item_line in lines.by_ref() {
                depth += item_line.matches('{').count() as i32;
                depth -= item_line.matches('}').count() as i32;
                let end = item_line.trim_end();
                if depth <= 0 && (item_line.contains('{') || end.ends_with([';', '}'])) {
                    break;
                }
            }
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let mut joined = String::with_capacity(kept.len());
    let mut rest = kept.as_str();
    while let Some(i) = rest.find("\\\n") {
        joined.push_str(&rest[..i]);
        rest = rest[i + 2..].trim_start_matches([' ', '\t']);
    }
    joined.push_str(rest);
    joined.replace("\\\"", "\"")
}

/// The provider's source text under `src/` (test files excluded), as read by
/// [`runtime_text`], plus the same with format braces unescaped (`{{` → `{`),
/// so a fragment matches what either a plain or a `format!` string prints.
fn source_text() -> [String; 2] {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut text = String::new();
    for file in files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        text.push_str(&runtime_text(&std::fs::read_to_string(&file).unwrap()));
    }
    let unescaped = text.replace("{{", "{").replace("}}", "}");
    [text, unescaped]
}

/// Most characters a placeholder may stand for in the source: a format
/// argument such as `{}` or `{name:?}`, or a value written into the string.
const MAX_GAP: usize = 40;

/// Whether `fragment` occurs in the source: its literal pieces in order, each
/// placeholder standing for 1 to [`MAX_GAP`] characters of one line.
fn in_source(fragment: &str, source: &[String; 2]) -> bool {
    let pieces = literal_pieces(fragment);
    let Some((first, rest)) = pieces.split_first() else {
        return false;
    };
    source.iter().any(|text| {
        text.match_indices(first)
            .any(|(at, _)| rest_matches(text, at + first.len(), rest))
    })
}

/// Whether `pieces` follow in `text` from byte `from`, each after a gap of 1
/// to [`MAX_GAP`] characters without a line break.
fn rest_matches(text: &str, from: usize, pieces: &[&str]) -> bool {
    let Some((next, rest)) = pieces.split_first() else {
        return true;
    };
    let window: String = text[from..].chars().take(MAX_GAP + next.len()).collect();
    let window = window.split('\n').next().unwrap_or_default();
    window
        .match_indices(next)
        .filter(|(gap, _)| *gap > 0 && *gap <= MAX_GAP)
        .any(|(gap, _)| rest_matches(text, from + gap + next.len(), rest))
}

/// The names of tonic's gRPC codes (`Ok`, `InvalidArgument`, …).
fn grpc_code_names() -> Vec<String> {
    (0..=16)
        .map(|i| format!("{:?}", tonic::Code::from_i32(i)))
        .collect()
}

#[test]
fn every_entry_heading_quotes_what_the_provider_writes() {
    let section = troubleshooting();
    let entries = entries(&section);
    assert!(
        entries.len() >= 20,
        "the Troubleshooting section has only {} entries",
        entries.len()
    );
    let source = source_text();
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in &entries {
        let spans = code_spans(&entry.heading);
        if entry.heading.starts_with("No error:") {
            continue;
        }
        if spans.is_empty() {
            problems.push(format!(
                "{:?}: a heading quotes a message in a code span (or starts with \"No error:\")",
                entry.heading
            ));
            continue;
        }
        if entry.heading.starts_with("Driver:") {
            continue;
        }
        for fragment in spans {
            let pieces = literal_pieces(&fragment);
            if pieces.iter().map(|p| p.len()).max().unwrap_or(0) < 12 {
                problems.push(format!(
                    "{fragment:?}: too short to find a message by; quote at least 12 characters in one piece"
                ));
            }
            if !in_source(&fragment, &source) {
                let missing: Vec<&str> = pieces
                    .iter()
                    .copied()
                    .filter(|p| !source.iter().any(|s| s.contains(p)))
                    .collect();
                problems.push(format!(
                    "{fragment:?}: not in src/ (pieces found nowhere: {missing:?}; else not in this \
                     order); the message changed, or the README misquotes it"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "README Troubleshooting:\n{}",
        problems.join("\n")
    );
    assert!(checked >= 20, "only {checked} fragments checked");
}

#[test]
fn every_entry_names_real_grpc_codes() {
    let section = troubleshooting();
    let names = grpc_code_names();
    let mut problems = Vec::new();
    for entry in entries(&section) {
        if entry.heading.starts_with("No error:") {
            continue;
        }
        let Some(line) = entry.body.lines().find(|l| l.starts_with("- **Code:**")) else {
            problems.push(format!("{:?}: no \"- **Code:**\" line", entry.heading));
            continue;
        };
        let codes = code_spans(line);
        if codes.is_empty() && !line.starts_with("- **Code:** none") {
            problems.push(format!("{:?}: the Code line names no code", entry.heading));
        }
        for code in codes {
            if !names.contains(&code) {
                problems.push(format!(
                    "{:?}: `{code}` is not a gRPC code ({names:?})",
                    entry.heading
                ));
            }
        }
    }
    // `code = X` as the driver's events print it.
    for part in section.split("code = ").skip(1) {
        let code: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !names.contains(&code) {
            problems.push(format!("`code = {code}` is not a gRPC code"));
        }
    }
    assert!(
        problems.is_empty(),
        "README Troubleshooting:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_section_follows_errors() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let errors = readme.find("\n## Errors\n").expect("## Errors");
    let troubleshooting = readme
        .find("\n## Troubleshooting\n")
        .expect("## Troubleshooting");
    let between = &readme[errors + 1..troubleshooting];
    assert_eq!(
        between.matches("\n## ").count(),
        0,
        "## Troubleshooting comes right after ## Errors"
    );
}

#[test]
fn the_matcher_fails_on_a_changed_message() {
    let source = source_text();
    // Real messages, with and without placeholders and continuations.
    for real in [
        "Vault is sealed; unseal it",
        "Vault has nothing at <path> (404)",
        "the limit for one rendered file",
        "is not a boolean; use \"true\" or \"false\"",
        "and that Vault can reach the Kubernetes TokenReview API",
    ] {
        assert!(in_source(real, &source), "{real}");
    }
    // The same with a word changed: not found.
    for changed in [
        "Vault is sealed; unseal it now",
        "Vault has nothing at <path> (403)",
        "the limit for one rendered files",
        "is not a boolean; use \"yes\" or \"no\"",
    ] {
        assert!(!in_source(changed, &source), "{changed}");
    }
    // Test code and comments do not count.
    let text = runtime_text(
        "fn a() { let m = \"real \\\n    message\"; }\n// \"commented message\"\n\
         #[cfg(test)]\nmod tests {\n    fn t() { assert!(x.contains(\"test-only message\")); }\n}\n",
    );
    assert!(text.contains("real message"), "{text}");
    assert!(!text.contains("commented message"), "{text}");
    assert!(!text.contains("test-only message"), "{text}");
    assert_eq!(
        literal_pieces("login with role <role> at auth/<mount> of <address>"),
        ["login with role ", " at auth/", " of "]
    );
    assert_eq!(literal_pieces("a <Not> b"), ["a <Not> b"]);
}
