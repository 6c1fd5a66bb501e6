//! State kept between mounts: Vault tokens per identity (so a rotation poll
//! does not log in again) and read responses per identity (so replicas and
//! polls share reads).

mod responses;
mod tokens;

pub use responses::{FetchResult, ResponseCache, ResponseKey, Source};
pub use tokens::{Identity, TokenCache, TokenHandle, TokenKey, TokenSlot};
