//! The error for a mount request or SecretProviderClass that cannot be used.

/// Longest message kept, in bytes.  Messages quote values through
/// `Shown`, so this only cuts lists (such as duplicate object names) that
/// a hostile SecretProviderClass makes long; the message reaches the pod's
/// events and the provider's log.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// What is wrong with a mount request or its SecretProviderClass, phrased for
/// the person who wrote it.  Always maps to gRPC `InvalidArgument`, except
/// where noted by the constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpcError {
    /// The message shown to the user.
    pub message: String,
    /// True when the request is well formed but a credential is missing
    /// (gRPC `FailedPrecondition` rather than `InvalidArgument`).
    pub missing_credential: bool,
}

impl SpcError {
    /// A parameter or request error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: bounded(message.into()),
            missing_credential: false,
        }
    }

    /// The same error, its message led by `SecretProviderClass <spc>: `
    /// unless it names one already, so a pod's event says which class.
    pub fn in_spc(self, spc: &str) -> Self {
        if self.message.starts_with("SecretProviderClass ") {
            return self;
        }
        Self {
            message: bounded(format!("SecretProviderClass {spc}: {}", self.message)),
            ..self
        }
    }

    /// A missing credential, such as no service-account token for the audience.
    pub fn missing_credential(message: impl Into<String>) -> Self {
        Self {
            message: bounded(message.into()),
            missing_credential: true,
        }
    }
}

/// Cuts a message to [`MAX_MESSAGE_BYTES`] at a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - "…".len();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}
