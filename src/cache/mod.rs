//! State kept between mounts, always per identity: Vault tokens (so a
//! rotation poll does not log in again), read responses (so replicas and
//! polls share reads), and dynamic secrets (so a poll does not issue a new
//! credential).

mod leases;
mod responses;
mod tokens;

pub use leases::{LeaseCache, LeaseOutcome};
pub use responses::{FetchResult, ResponseCache, ResponseKey, Source};
pub use tokens::{Identity, TokenCache, TokenHandle, TokenKey, TokenSlot};
