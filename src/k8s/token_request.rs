//! Pod-bound service-account tokens from the Kubernetes TokenRequest API, for
//! clusters whose CSIDriver object passes none (no `tokenRequests`).  This is
//! what HashiCorp's provider does; it needs `create` on
//! `serviceaccounts/token`, which the driver's `tokenRequests` makes
//! unnecessary.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use crate::secret::SecretString;
use crate::spc::PodInfo;

/// Lifetime of a minted token, as HashiCorp's provider requests it.
const EXPIRATION_SECONDS: i64 = 900;
/// Timeout of one TokenRequest call.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    /// The provider has no Kubernetes configuration.
    NoKubernetes,
    /// The API server refused: the provider lacks RBAC.
    Forbidden(String),
    /// Any other failure (network, timeout, a missing service account…).
    Failed(String),
}

/// Requests tokens for pods.
pub struct TokenMinter {
    /// The API client; `None` when the provider runs without Kubernetes.
    client: Option<kube::Client>,
}

impl TokenMinter {
    /// A minter using in-cluster configuration (or `KUBECONFIG`); without
    /// either it can only explain that tokens must come from the driver.
    pub async fn from_environment() -> Self {
        let client = match kube::Config::infer().await {
            Ok(config) => kube::Client::try_from(config).ok(),
            Err(_) => None,
        };
        Self { client }
    }

    /// A minter that never mints (tests, the demo).
    pub fn disabled() -> Self {
        Self { client: None }
    }

    /// A pod-bound token for `pod`'s service account, valid 15 minutes, for
    /// `audiences` (empty: the API server's default audiences).
    pub async fn mint(
        &self,
        pod: &PodInfo,
        audiences: &[String],
    ) -> Result<SecretString, MintError> {
        let client = self.client.clone().ok_or(MintError::NoKubernetes)?;
        let api: Api<ServiceAccount> = Api::namespaced(client, &pod.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audiences.to_vec(),
                expiration_seconds: Some(EXPIRATION_SECONDS),
                bound_object_ref: Some(BoundObjectReference {
                    kind: Some("Pod".into()),
                    api_version: Some("v1".into()),
                    name: Some(pod.name.clone()),
                    uid: Some(pod.uid.clone()),
                }),
            },
            ..Default::default()
        };
        let params = PostParams::default();
        let call = api.create_token_request(&pod.service_account, &params, &request);
        match tokio::time::timeout(API_TIMEOUT, call).await {
            Err(_) => Err(MintError::Failed(format!(
                "no answer from the Kubernetes API within {API_TIMEOUT:?}"
            ))),
            Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
                Err(MintError::Forbidden(status.message.clone()))
            }
            Ok(Err(e)) => Err(MintError::Failed(e.to_string())),
            Ok(Ok(answer)) => answer
                .status
                .map(|s| SecretString::new(s.token))
                .filter(|t| !t.is_empty())
                .ok_or_else(|| MintError::Failed("the TokenRequest answer holds no token".into())),
        }
    }
}
