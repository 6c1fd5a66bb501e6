//! The error for a mount request or SecretProviderClass that cannot be used.

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
            message: message.into(),
            missing_credential: false,
        }
    }

    /// A missing credential, such as no service-account token for the audience.
    pub fn missing_credential(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            missing_credential: true,
        }
    }
}
