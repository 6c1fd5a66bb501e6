//! Who a mount is to Vault, and logging in as it.

use std::sync::Arc;

use super::error;
use super::{CacheScope, MountError, Mounter};
use crate::cache::{Identity, TokenKey, TokenSlot};
use crate::k8s::TokenMinter;
use crate::secret::SecretString;
use crate::spc::{AuthMethod, Credential, MountConfig};
use crate::vault::{LoginResponse, VaultClient};

impl Mounter {
    /// The token slot for this mount, and the identity it stands for.
    ///
    /// Kubernetes auth with the driver's token shares one token per service
    /// account — but only when this mount's own token is an unexpired token
    /// of exactly this pod (so a mount cannot borrow a service account it
    /// cannot prove), and only while logins prove service-account scope.
    /// JWT auth and self-minted tokens stay per pod (a JWT role may bind
    /// pod-specific claims); AppRole and token auth are keyed by the
    /// credential.
    /// Also returns the pod's own identity, the scope of dynamic secrets
    /// under `dynamicSecretReuse: pod`.
    pub(super) fn token_slot(
        &self,
        cfg: &MountConfig,
    ) -> (Arc<TokenKey>, Arc<TokenKey>, Arc<TokenSlot>) {
        let key = |identity| {
            Arc::new(TokenKey {
                connection: cfg.connection.clone(),
                auth: cfg.auth.clone(),
                identity,
            })
        };
        let pod = Identity::Pod {
            pod: cfg.pod.clone(),
            credential: credential_digest(&cfg.credential),
        };
        let shared = match (self.scope, cfg.auth.method, &cfg.credential) {
            (CacheScope::Pod, ..) => None,
            (_, AuthMethod::AppRole | AuthMethod::Token, credential) => {
                credential_digest(credential).map(Identity::Credential)
            }
            (_, AuthMethod::Kubernetes, Credential::ServiceAccount(token))
                if token.belongs_to(&cfg.pod, &cfg.auth.audience) =>
            {
                Some(Identity::ServiceAccount {
                    namespace: cfg.pod.namespace.clone(),
                    name: cfg.pod.service_account.clone(),
                })
            }
            _ => None,
        };
        let pod = key(pod);
        if let Some(identity) = shared {
            let shared = key(identity);
            let slot = self.tokens.slot(&shared);
            if !slot.refuses_sharing() {
                return (shared, pod, slot);
            }
        }
        let slot = self.tokens.slot(&pod);
        (pod.clone(), pod, slot)
    }
}

/// Logs in with a mount's credential, and renews the tokens it got.
pub(super) struct Authenticator<'a> {
    /// The mount.
    pub cfg: &'a MountConfig,
    /// Its Vault.
    pub client: &'a VaultClient,
    /// Mints pod tokens when the driver passes none.
    pub minter: &'a TokenMinter,
}

impl Authenticator<'_> {
    /// Logs in with the mount's auth method.
    pub async fn login(&self) -> Result<LoginResponse, MountError> {
        let cfg = self.cfg;
        let (mount, role) = (&cfg.auth.mount, &cfg.auth.role);
        let result = match &cfg.credential {
            Credential::ServiceAccount(sa) => self.client.login_jwt(mount, role, &sa.token).await,
            Credential::SelfMint => {
                let jwt = self
                    .minter
                    .mint(&cfg.pod, &cfg.auth.mint_audiences)
                    .await
                    .map_err(|e| error::mint_error(cfg, &e))?;
                self.client.login_jwt(mount, role, &jwt).await
            }
            Credential::AppRole { role_id, secret_id } => {
                self.client.login_approle(mount, role_id, secret_id).await
            }
            Credential::VaultToken(token) => self.client.lookup_self(token).await,
        };
        result.map_err(|e| error::login_error(cfg, &e))
    }

    /// Renews a token (`renew-self`).
    pub async fn renew(&self, token: Arc<SecretString>) -> Result<LoginResponse, MountError> {
        let renewed = self.client.renew_self(&token).await;
        if let Err(e) = &renewed {
            tracing::debug!(spc = %self.cfg.spc, error = %e, "token renewal failed; logging in again");
        }
        renewed.map_err(|e| error::login_error(self.cfg, &e))
    }
}

/// SHA-256 of an AppRole or Vault-token credential.
fn credential_digest(credential: &Credential) -> Option<[u8; 32]> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    match credential {
        Credential::AppRole { role_id, secret_id } => {
            ctx.update(role_id.expose().as_bytes());
            ctx.update(&[0]);
            ctx.update(secret_id.expose().as_bytes());
        }
        Credential::VaultToken(token) => ctx.update(token.expose().as_bytes()),
        Credential::ServiceAccount(_) | Credential::SelfMint => return None,
    }
    ctx.finish().as_ref().try_into().ok()
}
