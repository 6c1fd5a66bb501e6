//! The Kubernetes API, for what the provider itself needs from it: the
//! object-version key Secret.

mod hmac_key;

pub use hmac_key::{HmacKeySource, HmacKeys};
