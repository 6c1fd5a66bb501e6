//! Mount requests shaped like the driver's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use vault_csi::demo::sa_token::{PodTokenClaims, TokenSigner, tokens_attribute};
use vault_csi::proto::MountRequest;

/// A pod that mounts a volume.
#[derive(Debug, Clone)]
pub struct TestPod {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// Service account.
    pub service_account: String,
}

static NEXT: AtomicU64 = AtomicU64::new(1);

impl TestPod {
    /// A new pod of `service_account` in `namespace`, with a unique name and UID.
    pub fn new(namespace: &str, service_account: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        TestPod {
            name: format!("{service_account}-{n}"),
            namespace: namespace.into(),
            uid: format!("00000000-0000-4000-8000-{pid:06x}{n:06x}"),
            service_account: service_account.into(),
        }
    }

    /// The pod's projected token for `audience`, signed like the API server's.
    pub fn token(&self, signer: &TokenSigner, audience: &str) -> String {
        signer.sign(&PodTokenClaims {
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            pod_name: self.name.clone(),
            pod_uid: self.uid.clone(),
            audience: vec![audience.into()],
            ttl: Duration::from_secs(3600),
        })
    }
}

/// Builds a [`MountRequest`].
#[derive(Debug, Clone)]
pub struct MountBuilder {
    attributes: Map<String, Value>,
    secrets: Value,
    permission: String,
}

impl MountBuilder {
    /// A request for SPC `spc` with `roleName` and `objects` (YAML), against
    /// Vault at `vault_addr`.
    pub fn new(vault_addr: &str, role: &str, objects: &str) -> Self {
        let mut attributes = Map::new();
        attributes.insert("secretProviderClass".into(), json!("test-spc"));
        attributes.insert("vaultAddress".into(), json!(vault_addr));
        attributes.insert("roleName".into(), json!(role));
        attributes.insert("objects".into(), json!(objects));
        MountBuilder {
            attributes,
            secrets: Value::Null,
            permission: "420".into(),
        }
    }

    /// A request for the SecretProviderClass `name` with its `parameters`
    /// exactly as written: nothing (address, role, objects) is added.
    pub fn from_parameters<'a>(
        name: &str,
        parameters: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let mut attributes = Map::new();
        attributes.insert("secretProviderClass".into(), json!(name));
        for (key, value) in parameters {
            attributes.insert(key.clone(), json!(value));
        }
        MountBuilder {
            attributes,
            secrets: Value::Null,
            permission: "420".into(),
        }
    }

    /// Sets an SPC parameter or attribute.
    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.attributes.insert(key.into(), json!(value));
        self
    }

    /// Removes an attribute.
    pub fn without(mut self, key: &str) -> Self {
        self.attributes.remove(key);
        self
    }

    /// Adds the pod's kubelet attributes and its token for `audience`.
    pub fn pod(self, pod: &TestPod, signer: &TokenSigner, audience: &str) -> Self {
        let token = pod.token(signer, audience);
        self.pod_with_token(pod, audience, &token)
    }

    /// Adds the pod's kubelet attributes and a given token for `audience`.
    pub fn pod_with_token(self, pod: &TestPod, audience: &str, token: &str) -> Self {
        let expiry = SystemTime::now() + Duration::from_secs(3600);
        let tokens = tokens_attribute(&[(audience, token, expiry)]);
        self.pod_info(pod)
            .param("csi.storage.k8s.io/serviceAccount.tokens", &tokens)
    }

    /// Adds only the pod's kubelet attributes (no token).
    pub fn pod_info(self, pod: &TestPod) -> Self {
        self.param("csi.storage.k8s.io/pod.name", &pod.name)
            .param("csi.storage.k8s.io/pod.namespace", &pod.namespace)
            .param("csi.storage.k8s.io/pod.uid", &pod.uid)
            .param(
                "csi.storage.k8s.io/serviceAccount.name",
                &pod.service_account,
            )
            .param("csi.storage.k8s.io/ephemeral", "true")
    }

    /// Sets the `secrets` field (nodePublishSecretRef data).
    pub fn secrets(mut self, secrets: Value) -> Self {
        self.secrets = secrets;
        self
    }

    /// Sets the request's default permission (decimal).
    pub fn permission(mut self, permission: &str) -> Self {
        self.permission = permission.into();
        self
    }

    /// The request.
    pub fn build(&self) -> MountRequest {
        MountRequest {
            attributes: Value::Object(self.attributes.clone()).to_string(),
            secrets: self.secrets.to_string(),
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/secrets/mount".into(),
            permission: self.permission.clone(),
            current_object_version: vec![],
        }
    }
}

/// The file named `path` in a response, as text.
pub fn file<'a>(response: &'a vault_csi::proto::MountResponse, path: &str) -> &'a str {
    let file = response
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no file {path} in {:?}",
                response.files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        });
    std::str::from_utf8(&file.contents).expect("utf-8 file")
}

/// The version of object `id` in a response.
pub fn version<'a>(response: &'a vault_csi::proto::MountResponse, id: &str) -> &'a str {
    &response
        .object_version
        .iter()
        .find(|v| v.id == id)
        .expect("version")
        .version
}
