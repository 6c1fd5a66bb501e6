//! The Kubernetes API, for what the provider itself needs from it: the
//! object-version key Secret, and pod tokens when the driver passes none.

mod hmac_key;
mod token_request;

pub use hmac_key::{HmacKeySource, HmacKeys};
pub use token_request::{MintError, TokenMinter};
