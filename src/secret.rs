//! Wrappers for secret material: tokens, passwords, rendered file contents.
//!
//! Both types zeroize their buffer on drop and print `[redacted]` in `Debug`,
//! so a secret cannot reach a log line or an error message by accident.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (a Vault token, a service-account JWT, a credential).
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value`; the wrapper now owns (and will wipe) the buffer.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that must send it somewhere.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Secret bytes: file contents on their way to the driver.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `value`; the wrapper now owns (and will wipe) the buffer.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The bytes themselves.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} bytes]", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretString::new("hunter2-canary".into());
        let b = SecretBytes::new(b"hunter2-canary".to_vec());
        let out = format!("{s:?} {b:?}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("redacted"));
    }
}
