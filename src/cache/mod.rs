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

/// A key for unit tests: a per-pod identity (pod UID `uid`) reading `path`.
#[cfg(test)]
pub(crate) fn test_key(uid: &str, path: &str) -> ResponseKey {
    use std::sync::Arc;

    use crate::spc::{
        AuthConfig, AuthMethod, Connection, Method, PodInfo, RequestKey, VaultAddress,
    };

    ResponseKey {
        identity: Arc::new(TokenKey {
            connection: Connection {
                address: VaultAddress::parse("http://v:8200").unwrap(),
                namespace: None,
                tls: Default::default(),
            },
            auth: AuthConfig {
                method: AuthMethod::Kubernetes,
                mount: "kubernetes".into(),
                role: "r".into(),
                audience: "vault".into(),
                mint_audiences: vec![],
            },
            identity: Identity::Pod {
                pod: PodInfo {
                    uid: uid.into(),
                    ..Default::default()
                },
                credential: None,
            },
        }),
        request: RequestKey {
            method: Method::Get,
            path: path.into(),
            query: vec![],
            body: None,
        },
    }
}
