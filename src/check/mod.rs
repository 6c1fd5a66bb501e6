//! `vault-csi check`: finds what is wrong with SecretProviderClasses
//! before a pod does.
//!
//! Offline, every manifest goes through the server's own parser
//! ([`crate::spc::parse`], via the request the driver would send) and
//! through [`rules`] for what the parser accepts but is probably wrong.
//! Online (with `--vault-addr` and a token), [`online`] asks Vault about
//! each path without side effects.  [`output`] prints the [`Report`].

mod documents;
mod finding;
mod names;
mod objects;
mod online;
mod output;
mod parser;
mod request;
mod rules;

use serde::Serialize;

pub use documents::{Documents, Entry, Input, Manifest, parse_inputs, parse_text, read_inputs};
pub use finding::{DocumentRef, Finding, Severity};
pub use online::OnlineOptions;
pub use output::{human, json};
pub use request::{PodIdentity, RequestParts};

use crate::spc::Defaults;
use crate::vault::ClientPool;

/// How to check.
#[derive(Debug, Default)]
pub struct CheckOptions {
    /// Provider defaults the parser applies (address, namespace, TLS).
    pub defaults: Defaults,
    /// Vault to ask, if any.
    pub online: Option<OnlineOptions>,
}

/// What `check` found; the JSON output is this, serialised.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Every document read, checked or skipped, in input order.
    pub documents: Vec<DocumentEntry>,
    /// Every finding, in input order.
    pub findings: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
    /// The inputs' names in command-line order, to print files in order.
    #[serde(skip)]
    pub files: Vec<String>,
}

/// One document and what became of it.
#[derive(Debug, Serialize)]
pub struct DocumentEntry {
    /// Where it is.
    #[serde(flatten)]
    pub at: DocumentRef,
    /// Its `kind`, if it has one.
    pub kind: Option<String>,
    /// `checked` or `skipped`.
    pub status: &'static str,
    /// Why it was skipped, or why the online checks did not run.
    pub note: Option<String>,
    /// Whether the online checks ran for it.
    pub online: bool,
}

/// Counts over the report.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Findings of severity error.
    pub errors: usize,
    /// Findings of severity warning.
    pub warnings: usize,
    /// SecretProviderClasses checked.
    pub checked: usize,
    /// Documents skipped.
    pub skipped: usize,
}

impl Report {
    /// Whether the exit code is 1: any error, or with `strict` any warning.
    pub fn failed(&self, strict: bool) -> bool {
        self.summary.errors > 0 || (strict && self.summary.warnings > 0)
    }
}

/// Checks every document of `inputs`.
pub async fn check(inputs: &[Input], options: &CheckOptions) -> Report {
    let Documents {
        entries,
        mut findings,
    } = parse_inputs(inputs);
    let pool = options
        .online
        .as_ref()
        .map(|online| ClientPool::new(online.client.clone()));
    let mut documents = Vec::new();
    for entry in entries {
        match entry {
            Entry::Skipped { at, kind, note } => documents.push(DocumentEntry {
                at,
                kind,
                status: "skipped",
                note: Some(note),
                online: false,
            }),
            Entry::Spc(manifest) => {
                let objects = objects::ObjectList::read(
                    manifest.parameters.get("objects").map(String::as_str),
                );
                let config = parser::run(&manifest, &objects, &options.defaults, &mut findings);
                let context = rules::Context {
                    manifest: &manifest,
                    objects: &objects,
                    online: options.online.is_some(),
                };
                for rule in rules::RULES {
                    rule(&context, &mut findings);
                }
                let mut note = None;
                let mut online = false;
                match (&options.online, &pool, &config) {
                    (Some(settings), Some(pool), Some(config)) => {
                        online::check(&manifest, config, settings, pool, &mut findings).await;
                        online = true;
                    }
                    (Some(_), _, None) => {
                        note = Some(
                            "online checks skipped: the provider's parser refuses this SecretProviderClass"
                                .to_string(),
                        );
                    }
                    _ => {}
                }
                documents.push(DocumentEntry {
                    at: manifest.at,
                    kind: Some("SecretProviderClass".into()),
                    status: "checked",
                    note,
                    online,
                });
            }
        }
    }
    order_findings(inputs, &mut findings);
    let summary = Summary {
        errors: count(&findings, Severity::Error),
        warnings: count(&findings, Severity::Warning),
        checked: documents.iter().filter(|d| d.status == "checked").count(),
        skipped: documents.iter().filter(|d| d.status == "skipped").count(),
    };
    Report {
        documents,
        findings,
        summary,
        files: inputs.iter().map(|i| i.name.clone()).collect(),
    }
}

/// Sorts findings by input, document and list item, keeping each
/// document's findings in the order they were found.
fn order_findings(inputs: &[Input], findings: &mut [Finding]) {
    let position = |file: &str| inputs.iter().position(|i| i.name == file);
    findings.sort_by_key(|f| (position(&f.at.file), f.at.document, f.at.item));
}

/// Findings of one severity.
fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

#[cfg(test)]
mod tests {
    use super::{CheckOptions, Input, check};

    /// Checks one text offline; returns the rules found.
    fn rules(text: &str) -> Vec<&'static str> {
        let inputs = [Input {
            name: "t.yaml".into(),
            text: Ok(text.to_string()),
        }];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let report = runtime.block_on(check(&inputs, &CheckOptions::default()));
        report.findings.iter().map(|f| f.rule).collect()
    }

    /// An SPC with `objects` as given (indented by the caller).
    fn spc(objects: &str) -> String {
        format!(
            "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: x}}\n\
             spec:\n  provider: vault\n  parameters:\n    roleName: r\n    objects: |\n{objects}"
        )
    }

    #[test]
    fn too_many_objects_is_one_finding_not_one_per_object() {
        let objects: String = (0..600)
            .map(|i| format!("      - {{objectName: o{i}, secretPath: a/b, method: BAD}}\n"))
            .collect();
        assert_eq!(rules(&spc(&objects)), ["objects"]);
    }

    #[test]
    fn hostile_yaml_is_a_finding_not_a_hang_or_a_panic() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9u8 {
            let (prev, next) = ((b'a' + i) as char, (b'b' + i) as char);
            bomb.push_str(&format!(
                "{next}: &{next} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        assert_eq!(rules(&bomb), ["yaml"]);
        let deep = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(rules(&deep), ["yaml"]);
        let deep_objects = format!("      - {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(rules(&spc(&deep_objects)), ["objects-yaml"]);
    }
}
