//! One problem `vault-csi check` found, and where.

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The mount fails, or does something the author cannot have meant.
    Error,
    /// Works, but is risky or probably not what was meant.
    Warning,
}

impl Severity {
    /// The lowercase name used in both output formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Where a document was found: file, position in the file, and the
/// object's name.  Serialised flat into findings and document entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DocumentRef {
    /// The file as given on the command line (`-` for stdin), or a file
    /// found under a given directory.
    pub file: String,
    /// 1-based number of the YAML document in the file, counting non-empty
    /// documents; `None` for a problem with the file as a whole.
    pub document: Option<usize>,
    /// 1-based line where the document starts.
    pub line: Option<u64>,
    /// 1-based position in the `items` of a `kind: List` document.
    pub item: Option<usize>,
    /// `metadata.name`, when the document has one.
    pub name: Option<String>,
    /// `metadata.namespace`, when the document has one.
    pub namespace: Option<String>,
}

impl DocumentRef {
    /// A reference to a whole file.
    pub fn file(file: &str) -> Self {
        Self {
            file: file.to_string(),
            ..Self::default()
        }
    }

    /// `file:line (document 2, item 3, ns/name)` for people.
    pub fn describe(&self) -> String {
        let mut text = self.file.clone();
        if let Some(line) = self.line {
            text.push_str(&format!(":{line}"));
        }
        let mut parts = Vec::new();
        if let Some(document) = self.document {
            parts.push(format!("document {document}"));
        }
        if let Some(item) = self.item {
            parts.push(format!("item {item}"));
        }
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => parts.push(format!("{ns}/{name}")),
            (None, Some(name)) => parts.push(name.clone()),
            _ => {}
        }
        if !parts.is_empty() {
            text.push_str(&format!(" ({})", parts.join(", ")));
        }
        text
    }
}

/// One problem, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// A stable identifier of the rule that found it (`misspelt-parameter`,
    /// `kv2-path`, …), for scripts and tests; messages may be reworded.
    pub rule: &'static str,
    /// The document.
    #[serde(flatten)]
    pub at: DocumentRef,
    /// The `objectName` of the object concerned, if any.
    pub object: Option<String>,
    /// The SPC parameter (or object field) concerned, if any.
    pub parameter: Option<String>,
    /// What is wrong.  Never contains a secret value or a token.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    /// An error finding.
    pub fn error(rule: &'static str, at: &DocumentRef, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, rule, at, message)
    }

    /// A warning finding.
    pub fn warning(rule: &'static str, at: &DocumentRef, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, rule, at, message)
    }

    fn new(
        severity: Severity,
        rule: &'static str,
        at: &DocumentRef,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            rule,
            at: at.clone(),
            object: None,
            parameter: None,
            message: message.into(),
            fix: String::new(),
        }
    }

    /// Sets the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    /// Names the object concerned.
    pub fn object(mut self, name: impl Into<String>) -> Self {
        self.object = Some(name.into());
        self
    }

    /// Names the parameter or field concerned.
    pub fn parameter(mut self, name: impl Into<String>) -> Self {
        self.parameter = Some(name.into());
        self
    }
}
