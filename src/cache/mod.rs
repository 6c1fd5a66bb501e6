//! State kept between mounts.  Today: Vault tokens, one per pod and
//! connection, so a rotation poll does not log in again.

mod tokens;

pub use tokens::{TokenCache, TokenHandle, TokenKey, TokenSlot};
