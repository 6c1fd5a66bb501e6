//! vault-csi: a Vault / OpenBao provider for the Kubernetes Secrets Store CSI
//! driver.
//!
//! Data flows one way through the modules:
//! [`server`] (gRPC edge) → [`spc`] (mount request → typed config) →
//! [`vault`] (authenticate and fetch) → [`mount`] (render files and versions)
//! → back to [`server`].  [`cache`] keeps Vault tokens between mounts,
//! [`k8s`] talks to the Kubernetes API, and [`cli`] turns the command line
//! into a [`cli::Command`].

pub mod cache;
pub mod check;
pub mod cli;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod k8s;
pub mod metrics;
pub mod mount;
pub mod secret;
pub mod server;
pub mod spc;
pub mod vault;

/// Code generated from `proto/service.proto`: the driver's provider protocol.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("v1alpha1");
}

/// The provider's name in `Version` answers and logs.
pub const RUNTIME_NAME: &str = "vault-csi";

/// The crate version, reported as `runtime_version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
