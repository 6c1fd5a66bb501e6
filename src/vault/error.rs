//! What went wrong talking to Vault, before the mount layer adds context.

use std::fmt;

use super::redirect::Refusal;

/// Why a request never got an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The connection could not be made (refused, DNS, TLS handshake…):
    /// nothing reached Vault.
    Connect,
    /// No answer in time.
    Timeout,
    /// The connection broke after the request may have been sent.
    Broken,
    /// No slot under `--vault-max-concurrent-requests` came free in time:
    /// nothing was sent.
    Saturated,
}

/// A failed Vault request.  Messages never contain tokens or secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// No HTTP answer.
    Transport {
        /// What kind of failure.
        kind: TransportKind,
        /// The underlying error, without the URL.
        detail: String,
    },
    /// Vault answered with a non-success status.
    Status {
        /// HTTP status code.
        status: u16,
        /// Vault's `errors` list.
        errors: Vec<String>,
        /// Vault's `warnings` list (KV v2 explains wrong paths here).
        warnings: Vec<String>,
    },
    /// Vault redirected the request somewhere it is not followed.
    Redirect {
        /// The 3xx status.
        status: u16,
        /// Where to, without user info or query; `None` when the
        /// `Location` could not be read as a URL.
        target: Option<String>,
        /// Why it was not followed.
        refusal: Refusal,
    },
    /// The answer could not be used.
    Body {
        /// What was wrong with it.
        detail: String,
    },
    /// The connection settings cannot be used (bad CA file, missing key…).
    Config {
        /// What is wrong, naming the file or setting.
        detail: String,
    },
    /// The answer was larger than the provider accepts.
    TooLarge {
        /// The configured limit in bytes (`--max-response-bytes`).
        limit: usize,
        /// The answer's size in bytes, as declared or counted.
        size: u64,
        /// Whether `size` is only a lower bound (the provider stopped
        /// counting an answer that went on and on).
        at_least: bool,
    },
}

impl VaultError {
    /// The HTTP status, if Vault answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            VaultError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether retrying the same read could succeed (connection problems,
    /// 429, 502–504, a sealed Vault).
    pub fn is_transient(&self) -> bool {
        match self {
            // Under overload a retry only lengthens the queue.
            VaultError::Transport {
                kind: TransportKind::Saturated,
                ..
            } => false,
            VaultError::Transport { .. } => true,
            VaultError::Status { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            VaultError::Redirect { .. }
            | VaultError::Body { .. }
            | VaultError::Config { .. }
            | VaultError::TooLarge { .. } => false,
        }
    }

    /// Vault's error messages joined, or a placeholder.
    pub fn vault_message(&self) -> String {
        match self {
            VaultError::Status { errors, .. } if !errors.is_empty() => errors.join("; "),
            VaultError::Status { .. } => "no error message".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultError::Transport {
                kind: TransportKind::Connect,
                detail,
            } => {
                write!(f, "could not connect to Vault: {detail}")
            }
            VaultError::Transport {
                kind: TransportKind::Timeout,
                detail,
            } => {
                write!(f, "Vault did not answer in time: {detail}")
            }
            VaultError::Transport {
                kind: TransportKind::Broken,
                detail,
            } => {
                write!(f, "the connection to Vault broke: {detail}")
            }
            VaultError::Transport {
                kind: TransportKind::Saturated,
                detail,
            } => {
                write!(f, "Vault is saturated: {detail}")
            }
            VaultError::Status { status, errors, .. } => {
                write!(f, "Vault answered {status}")?;
                if !errors.is_empty() {
                    write!(f, ": {}", errors.join("; "))?;
                }
                Ok(())
            }
            VaultError::Body { detail } => write!(f, "Vault's answer could not be read: {detail}"),
            VaultError::Config { detail } => f.write_str(detail),
            VaultError::Redirect {
                status,
                target,
                refusal,
            } => {
                let target = target.as_deref().unwrap_or("an unusable Location");
                write!(
                    f,
                    "Vault answered {status} redirecting to {target}, which was not followed: {refusal}"
                )
            }
            VaultError::TooLarge {
                limit,
                size,
                at_least,
            } => {
                let more = if *at_least { "more than " } else { "" };
                write!(
                    f,
                    "Vault's answer is {more}{size} bytes, over the --max-response-bytes limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for VaultError {}

/// Turns a reqwest error into a [`VaultError`], dropping the URL.
pub(crate) fn from_reqwest(error: reqwest::Error) -> VaultError {
    let kind = if error.is_timeout() {
        TransportKind::Timeout
    } else if error.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Broken
    };
    VaultError::Transport {
        kind,
        detail: error_chain(&error.without_url()),
    }
}

/// An error and its sources on one line; these describe sockets and TLS,
/// never request contents.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A body that is not the JSON expected, described by where and how it
/// broke — never by serde's own message, which quotes the offending value
/// (`invalid type: string "…"`), and that value may be a secret.
pub(crate) fn json_error(what: &str, error: &serde_json::Error) -> VaultError {
    use serde_json::error::Category;
    let how = match error.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "JSON that ends early",
        Category::Data => "JSON of an unexpected shape",
        Category::Io => "unreadable JSON",
    };
    VaultError::Body {
        detail: format!(
            "{what} is not a Vault JSON response ({how} at line {}, column {})",
            error.line(),
            error.column()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_body() {
        for body in [
            r#"{"data": "canary-secret"}"#,
            r#"{"data": {"k": "canary-secret""#,
            r#"canary-secret"#,
            r#"{"data": ["canary-secret"]}"#,
        ] {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            struct Shape {
                data: Option<std::collections::HashMap<String, String>>,
            }
            let e = serde_json::from_str::<Shape>(body).err().expect(body);
            let text = json_error("the answer", &e).to_string();
            assert!(!text.contains("canary"), "{text}");
            assert!(text.contains("line 1, column"), "{text}");
        }
    }
}
