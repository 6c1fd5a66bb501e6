//! A small, typed Vault client: connection pool, requests of any method with
//! lease fields kept, login, and errors that keep Vault's own words.

mod client;
mod error;
mod limit;
mod pool;
mod redirect;
mod response;
mod tls;

pub use client::{ClientOptions, DEFAULT_MAX_RESPONSE_BYTES, LoginResponse, VaultClient};
pub use error::{TransportKind, VaultError};
pub use limit::VaultLoad;
pub use pool::ClientPool;
pub use redirect::{RedirectHosts, Refusal};
pub use response::{SecretJson, SecretJsonMap, VaultResponse};
