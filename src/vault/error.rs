//! What went wrong talking to Vault, before the mount layer adds context.

use std::fmt;

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
        /// `Location` of a redirect, which is never followed.
        location: Option<String>,
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
        /// The configured limit in bytes.
        limit: usize,
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
            VaultError::Body { .. } | VaultError::Config { .. } | VaultError::TooLarge { .. } => {
                false
            }
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
            VaultError::Status {
                status,
                errors,
                location,
                ..
            } => {
                write!(f, "Vault answered {status}")?;
                if let Some(location) = location {
                    write!(f, " redirecting to {location} (redirects are not followed)")?;
                }
                if !errors.is_empty() {
                    write!(f, ": {}", errors.join("; "))?;
                }
                Ok(())
            }
            VaultError::Body { detail } => write!(f, "Vault's answer could not be read: {detail}"),
            VaultError::Config { detail } => f.write_str(detail),
            VaultError::TooLarge { limit } => {
                write!(f, "Vault's answer is larger than the {limit}-byte limit")
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
