//! The mount request the Secrets Store CSI driver would send for a
//! manifest: its parameters with kubelet's pod attributes copied over the
//! top, as the driver does (`maps.Copy`).

use serde_json::Value;

use super::documents::Manifest;
use crate::proto::MountRequest;
use crate::spc::TOKENS_ATTRIBUTE;
use crate::vault::SecretJsonMap;

/// The driver's default file mode, 0644, in the decimal it sends.
const DRIVER_PERMISSION: &str = "420";

/// The pod a request is made for (kubelet's `csi.storage.k8s.io/*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// The pod's service account.
    pub service_account: String,
}

/// What a request adds to the manifest's parameters.
#[derive(Debug, Default)]
pub struct RequestParts<'a> {
    /// Parameters replaced before the driver's attributes are added (e.g.
    /// `vaultAddress` from `--vault-addr`).
    pub overrides: Vec<(&'static str, String)>,
    /// kubelet's JSON of the pod's service-account tokens, if any.
    pub tokens: Option<&'a str>,
    /// The `nodePublishSecretRef` Secret's data as JSON, if any.
    pub secrets: Option<&'a str>,
}

impl Manifest {
    /// The request the driver would send for `pod`.  It may carry a token
    /// (in `secrets` or the tokens attribute): the caller zeroizes it after use.
    pub fn mount_request(&self, pod: &PodIdentity, parts: &RequestParts<'_>) -> MountRequest {
        // Wiped on drop: it may hold the pod's token.
        let mut attributes = SecretJsonMap(
            self.parameters
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
        let attributes = &mut attributes.0;
        for (key, value) in &parts.overrides {
            attributes.insert((*key).to_string(), Value::String(value.clone()));
        }
        let mut driver = vec![
            (
                "secretProviderClass",
                self.at.name.clone().unwrap_or_default(),
            ),
            ("csi.storage.k8s.io/pod.name", pod.name.clone()),
            ("csi.storage.k8s.io/pod.namespace", pod.namespace.clone()),
            ("csi.storage.k8s.io/pod.uid", pod.uid.clone()),
            (
                "csi.storage.k8s.io/serviceAccount.name",
                pod.service_account.clone(),
            ),
        ];
        if let Some(tokens) = parts.tokens {
            driver.push((TOKENS_ATTRIBUTE, tokens.to_string()));
        }
        for (key, value) in driver {
            attributes.insert(key.to_string(), Value::String(value));
        }
        MountRequest {
            attributes: serde_json::to_string(attributes)
                .expect("a map of strings always serialises"),
            secrets: parts.secrets.unwrap_or("null").to_string(),
            target_path: String::new(),
            permission: DRIVER_PERMISSION.into(),
            current_object_version: vec![],
        }
    }
}
