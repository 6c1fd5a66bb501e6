//! The report for people (default) and for programs (`--format json`).

use std::fmt::Write as _;

use super::{DocumentRef, Finding, Report};

/// The report as JSON: `{"documents": [...], "findings": [...], "summary": {...}}`
/// (the shape is documented in the README).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report always serialises")
}

/// The report as text: each document with its findings and their fixes,
/// then a summary line.
pub fn human(report: &Report) -> String {
    // Documents and findings of the same document print together.
    type Key = (Option<usize>, Option<usize>, Option<usize>);
    let key = |at: &DocumentRef| -> Key {
        (
            report.files.iter().position(|f| *f == at.file),
            at.document,
            at.item,
        )
    };
    let mut keys: Vec<(Key, &DocumentRef)> = report
        .documents
        .iter()
        .map(|d| (key(&d.at), &d.at))
        .chain(report.findings.iter().map(|f| (key(&f.at), &f.at)))
        .collect();
    keys.sort_by_key(|(k, _)| *k);
    keys.dedup_by_key(|(k, _)| *k);

    let mut out = String::new();
    for (k, at) in keys {
        let document = report.documents.iter().find(|d| key(&d.at) == k);
        let findings: Vec<&Finding> = report.findings.iter().filter(|f| key(&f.at) == k).collect();
        let at = document.map_or(at, |d| &d.at);
        match document {
            Some(d) if d.status == "skipped" => {
                let _ = writeln!(
                    out,
                    "{}: skipped: {}",
                    at.describe(),
                    d.note.as_deref().unwrap_or_default()
                );
            }
            Some(d) if findings.is_empty() => {
                let online = if d.online {
                    " (online checks passed)"
                } else {
                    ""
                };
                let _ = writeln!(out, "{}: ok{online}", at.describe());
            }
            _ => {
                let _ = writeln!(out, "{}:", at.describe());
            }
        }
        for finding in findings {
            write_finding(&mut out, finding);
        }
        if let Some(note) =
            document.and_then(|d| d.note.as_deref().filter(|_| d.status != "skipped"))
        {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    let s = &report.summary;
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "\n{}, {}; {} checked, {} skipped",
        count(s.errors, "error", "errors"),
        count(s.warnings, "warning", "warnings"),
        count(s.checked, "SecretProviderClass", "SecretProviderClasses"),
        count(s.skipped, "document", "documents"),
    );
    out
}

/// One finding: severity, rule, where inside the document, message, fix.
fn write_finding(out: &mut String, finding: &Finding) {
    let mut place = Vec::new();
    if let Some(object) = &finding.object {
        place.push(format!("object {object}"));
    }
    if let Some(parameter) = &finding.parameter {
        place.push(parameter.clone());
    }
    let place = if place.is_empty() {
        String::new()
    } else {
        format!("{}: ", place.join(", "))
    };
    let _ = writeln!(
        out,
        "  {:<7} [{}] {place}{}",
        finding.severity.as_str(),
        finding.rule,
        finding.message
    );
    if !finding.fix.is_empty() {
        let _ = writeln!(out, "          fix: {}", finding.fix);
    }
}
