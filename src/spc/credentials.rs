//! Credentials from the nodePublishSecretRef Secret (the mount request's
//! `secrets`), for AppRole and token auth.

use std::collections::BTreeMap;

use super::{Credential, SpcError};
use crate::secret::SecretString;

/// The first non-empty value among `keys`.
fn first(secrets: &BTreeMap<String, SecretString>, keys: &[&str]) -> Option<SecretString> {
    keys.iter()
        .find_map(|k| secrets.get(*k).filter(|v| !v.is_empty()).cloned())
}

/// AppRole's role id and secret id (`roleId`/`secretId` or `role_id`/`secret_id`).
pub(super) fn approle(secrets: &BTreeMap<String, SecretString>) -> Result<Credential, SpcError> {
    let role_id = first(secrets, &["roleId", "role_id"]);
    let secret_id = first(secrets, &["secretId", "secret_id"]);
    match (role_id, secret_id) {
        (Some(role_id), Some(secret_id)) => Ok(Credential::AppRole { role_id, secret_id }),
        (role_id, _) => {
            let missing = if role_id.is_none() {
                "roleId (or role_id)"
            } else {
                "secretId (or secret_id)"
            };
            Err(SpcError::missing_credential(format!(
                "vaultAuthMethod approle needs key {missing} in the volume's nodePublishSecretRef Secret; \
                 create the Secret with keys roleId and secretId and reference it from the pod's volume"
            )))
        }
    }
}

/// A Vault token (key `token`).
pub(super) fn vault_token(
    secrets: &BTreeMap<String, SecretString>,
) -> Result<Credential, SpcError> {
    first(secrets, &["token"]).map(Credential::VaultToken).ok_or_else(|| {
        SpcError::missing_credential(
            "vaultAuthMethod token needs key token in the volume's nodePublishSecretRef Secret; create \
             the Secret with the Vault token under key token and reference it from the pod's volume",
        )
    })
}
