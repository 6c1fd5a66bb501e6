//! SecretProviderClass parameters → validated, typed mount configuration.
//!
//! The driver sends strings: a JSON object of attributes (the SPC's
//! `parameters` plus pod information), a JSON object of secrets, and a file
//! mode.  [`parse`] turns them into a [`MountConfig`] once, at the edge; no
//! other module sees a raw parameter map.

mod address;
mod credentials;
mod error;
mod fields;
mod gobool;
mod objects;
mod objects_cache;
mod parameters;
mod pod;
mod policy;
mod shown;
mod template;
mod yaml_limits;

use std::collections::{BTreeMap, HashMap};

pub use address::VaultAddress;
pub use error::{MAX_MESSAGE_BYTES, SpcError};
pub use fields::object_fields;
pub use gobool::parse_go_bool;
pub use objects::{
    Content, Encoding, Method, ObjectName, ObjectSpec, RequestKey, is_safe_key, parse_objects,
};
pub use objects_cache::ObjectsCache;
pub use parameters::{DRIVER_ATTRIBUTES, KUBELET_ATTRIBUTE_PREFIX, LEGACY_PARAMETERS, PARAMETERS};
pub use pod::{PodInfo, ServiceAccountToken};
pub use policy::{AddressAllowList, SpcPolicy};
pub use template::{MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL, Template, json_value};
pub use yaml_limits::{
    MAX_YAML_ALIASES, MAX_YAML_ANCHORS, MAX_YAML_DEPTH, MAX_YAML_NODES, MAX_YAML_REPLAYED_EVENTS,
    MAX_YAML_SCALAR_BYTES,
};

use crate::proto::MountRequest;
use crate::secret::SecretString;
use shown::Shown;

/// Most objects one SecretProviderClass may list.
pub const MAX_OBJECTS: usize = 500;
/// Largest `objects` YAML accepted, in bytes.
pub const MAX_OBJECTS_YAML_BYTES: usize = 1024 * 1024;
/// The attribute key holding the pod's service-account tokens.
pub const TOKENS_ATTRIBUTE: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// Connection settings from the provider's flags and environment, which a
/// SecretProviderClass may override (precedence: env < flags < SPC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Vault address used when the SPC has no `vaultAddress`.
    pub vault_address: String,
    /// Vault namespace used when the SPC has no `vaultNamespace`.
    pub vault_namespace: Option<String>,
    /// Auth mount given explicitly with `--vault-mount`, if any.
    pub auth_mount: Option<String>,
    /// TLS settings used when the SPC sets none of its own.
    pub tls: TlsConfig,
    /// What SecretProviderClasses may override (`--allowed-vault-addresses`,
    /// `--allow-spc-tls-overrides`).
    pub policy: SpcPolicy,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            vault_address: "https://127.0.0.1:8200".into(),
            vault_namespace: None,
            auth_mount: None,
            tls: TlsConfig::default(),
            policy: SpcPolicy::default(),
        }
    }
}

/// TLS settings for the connection to Vault.  Paths are on the provider's
/// own filesystem, not the application pod's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    /// PEM bundle of CA certificates to trust.
    pub ca_cert: Option<String>,
    /// Directory of PEM CA certificates to trust.
    pub ca_directory: Option<String>,
    /// Name to verify the server certificate against (and send as SNI).
    pub server_name: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<String>,
    /// Client private key (PEM) for mutual TLS.
    pub client_key: Option<String>,
    /// Accept any server certificate.  Dangerous; logged as a warning.
    pub skip_verify: bool,
}

/// How the provider reaches one Vault: everything that decides which server
/// answers and how the connection is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// Where Vault listens.
    pub address: VaultAddress,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// TLS settings for `https` addresses.
    pub tls: TlsConfig,
}

/// The Vault auth method (`vaultAuthMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Vault's Kubernetes auth method (TokenReview of the pod's token).
    Kubernetes,
    /// Vault's JWT auth method (signature check of the pod's token).
    Jwt,
    /// AppRole: role id and secret id from the nodePublishSecretRef Secret.
    AppRole,
    /// A Vault token from the nodePublishSecretRef Secret.
    Token,
}

impl AuthMethod {
    /// The method's name, which is also its default mount path.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Kubernetes => "kubernetes",
            AuthMethod::Jwt => "jwt",
            AuthMethod::AppRole => "approle",
            AuthMethod::Token => "token",
        }
    }

    /// Whether the method logs in with the pod's service-account token.
    pub fn uses_pod_token(self) -> bool {
        matches!(self, AuthMethod::Kubernetes | AuthMethod::Jwt)
    }
}

/// What the mount authenticates with.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The pod's service-account token, passed by the driver.
    ServiceAccount(ServiceAccountToken),
    /// No token was passed: the provider requests one for the pod from the
    /// Kubernetes TokenRequest API, as HashiCorp's provider does.
    SelfMint,
    /// AppRole credentials from the nodePublishSecretRef Secret.
    AppRole {
        /// The role id.
        role_id: SecretString,
        /// The secret id.
        secret_id: SecretString,
    },
    /// A Vault token from the nodePublishSecretRef Secret.
    VaultToken(SecretString),
}

/// How to log in to Vault for this mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthConfig {
    /// The auth method.
    pub method: AuthMethod,
    /// Mount path of the auth method (`auth/<mount>/login`).
    pub mount: String,
    /// Vault role to log in as (`roleName`); empty for AppRole and token auth.
    pub role: String,
    /// Audience of the service-account token to present.
    pub audience: String,
    /// Audiences of a self-minted token: `[audience]` when the SPC sets
    /// `audience`, else empty (the API server's default audiences).
    pub mint_audiences: Vec<String>,
}

/// Everything one Mount needs, parsed and validated.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// `<namespace>/<name>` of the SecretProviderClass, for messages.
    pub spc: String,
    /// The pod the volume belongs to.
    pub pod: PodInfo,
    /// Which Vault, and how to reach it.
    pub connection: Connection,
    /// How to authenticate.
    pub auth: AuthConfig,
    /// What to authenticate with.
    pub credential: Credential,
    /// The objects to fetch, in the order written (shared with the
    /// [`ObjectsCache`]: many mounts name the same list).
    pub objects: std::sync::Arc<[ObjectSpec]>,
    /// File mode for objects without `filePermission`.
    pub default_mode: u32,
    /// How long read responses may be reused (`cacheTTL`); `None` means the
    /// provider's `--cache-ttl`.  Capped by `--max-cache-ttl`.
    pub cache_ttl: Option<std::time::Duration>,
    /// Who shares a dynamic secret (`dynamicSecretReuse`).
    pub dynamic_reuse: DynamicReuse,
    /// Whether cached content may be served while Vault is down
    /// (`staleIfError`, default true).
    pub stale_if_error: bool,
}

/// Who shares a dynamic secret (a lease or a certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicReuse {
    /// Every mount of the identity (the default).
    Identity,
    /// Each pod keeps its own.
    Pod,
    /// A new credential on every mount, as HashiCorp's provider does.
    Never,
}

/// Parses a driver's mount request into a [`MountConfig`].
pub fn parse(request: &MountRequest, defaults: &Defaults) -> Result<MountConfig, SpcError> {
    parse_with(request, defaults, &ObjectsCache::new(0))
}

/// `<namespace>/<name>` of the SecretProviderClass the attributes name.
fn spc_name(attributes: &HashMap<String, String>) -> String {
    let get = |key: &str| {
        attributes
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    match (
        get("secretProviderClass"),
        get("csi.storage.k8s.io/pod.namespace"),
    ) {
        (Some(name), Some(ns)) => format!("{ns}/{name}"),
        (Some(name), None) => name.to_string(),
        (None, _) => "(unnamed)".to_string(),
    }
}

/// The SecretProviderClass a request names, for messages about it; `None`
/// when the attributes are not a JSON object of strings.
pub fn requested_spc(request: &MountRequest) -> Option<String> {
    parse_string_map(&request.attributes, "attributes")
        .ok()
        .map(|attributes| spc_name(&attributes))
}

/// [`parse`], taking the `objects` list from `cache` when the same text was
/// parsed before (the server's path: rotation repeats the same text).
pub fn parse_with(
    request: &MountRequest,
    defaults: &Defaults,
    cache: &ObjectsCache,
) -> Result<MountConfig, SpcError> {
    let attributes = parse_string_map(&request.attributes, "attributes")?;
    let secrets = parse_secrets(&request.secrets)?;
    let default_mode = parse_permission(&request.permission)?;
    let get = |key: &str| {
        attributes
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };

    let spc = spc_name(&attributes);
    let pod = PodInfo::from_attributes(&attributes);

    let method = match get("vaultAuthMethod")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("kubernetes") => AuthMethod::Kubernetes,
        Some("jwt") => AuthMethod::Jwt,
        Some("approle") => AuthMethod::AppRole,
        Some("token") => AuthMethod::Token,
        Some(other) => {
            return Err(SpcError::new(format!(
                "vaultAuthMethod {} is not supported; use kubernetes, jwt, approle or token",
                Shown(other)
            )));
        }
    };
    let role = match get("roleName") {
        Some(role) => role.to_string(),
        None if !method.uses_pod_token() => String::new(),
        None => {
            return Err(SpcError::new(
                "missing 'roleName' in SecretProviderClass definition",
            ));
        }
    };
    let mount = match (get("vaultAuthMountPath"), get("vaultKubernetesMountPath")) {
        (Some(_), Some(_)) => {
            return Err(SpcError::new(
                "both vaultAuthMountPath and vaultKubernetesMountPath are set; set only \
                 vaultAuthMountPath (vaultKubernetesMountPath is its older name)",
            ));
        }
        (Some(m), None) | (None, Some(m)) => m,
        (None, None) => defaults.auth_mount.as_deref().unwrap_or(method.name()),
    };
    let mount = mount
        .trim_matches('/')
        .trim_start_matches("auth/")
        .to_string();
    if mount.is_empty() {
        return Err(SpcError::new("the auth mount path is empty"));
    }
    let audience = get("audience").unwrap_or("vault").to_string();
    let mint_audiences = get("audience")
        .map(|a| vec![a.to_string()])
        .unwrap_or_default();

    let address_text = get("vaultAddress").unwrap_or(&defaults.vault_address);
    let address = VaultAddress::parse(address_text)?;
    // The guardrails run here, before anything is fetched, so a refused
    // SecretProviderClass never sends a pod's token anywhere.
    defaults.policy.check_address(&spc, &address)?;
    let namespace = get("vaultNamespace")
        .map(str::to_string)
        .or_else(|| defaults.vault_namespace.clone());
    let tls = parse_tls(&get, &defaults.tls)?;
    defaults.policy.check_tls(&spc, &tls, &defaults.tls)?;

    let objects_yaml = get("objects").ok_or_else(|| {
        SpcError::new(
            "missing 'objects' in SecretProviderClass definition: list at least one object",
        )
    })?;
    let objects = cache.get_or_parse(objects_yaml)?;
    let dynamic_reuse = match get("dynamicSecretReuse")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("identity") => DynamicReuse::Identity,
        Some("pod") => DynamicReuse::Pod,
        Some(v) if parse_go_bool(v) == Some(false) => DynamicReuse::Never,
        Some(other) => {
            return Err(SpcError::new(format!(
                "dynamicSecretReuse {} is not identity, pod or false",
                Shown(other)
            )));
        }
    };
    let stale_if_error = match get("staleIfError") {
        None => true,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            SpcError::new(format!(
                "staleIfError {} is not a boolean; use \"true\" or \"false\"",
                Shown(v)
            ))
        })?,
    };
    let cache_ttl = get("cacheTTL")
        .map(|t| parse_duration(t).map_err(|e| SpcError::new(format!("cacheTTL: {e}"))))
        .transpose()?;

    let credential = match method {
        AuthMethod::Kubernetes | AuthMethod::Jwt => {
            pod::find_token(&secrets, &attributes, &audience)?
                .map_or(Credential::SelfMint, Credential::ServiceAccount)
        }
        AuthMethod::AppRole => credentials::approle(&secrets)?,
        AuthMethod::Token => credentials::vault_token(&secrets)?,
    };

    Ok(MountConfig {
        spc,
        pod,
        connection: Connection {
            address,
            namespace,
            tls,
        },
        auth: AuthConfig {
            method,
            mount,
            role,
            audience,
            mint_audiences,
        },
        credential,
        objects,
        default_mode,
        cache_ttl,
        dynamic_reuse,
        stale_if_error,
    })
}

/// Applies the SPC's TLS parameters over the provider's defaults.
fn parse_tls<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    defaults: &TlsConfig,
) -> Result<TlsConfig, SpcError> {
    let pick = |key: &str, default: &Option<String>| {
        get(key).map(str::to_string).or_else(|| default.clone())
    };
    let skip_verify = match get("vaultSkipTLSVerify") {
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            SpcError::new(format!(
                "vaultSkipTLSVerify {} is not a boolean; use \"true\" or \"false\"",
                Shown(v)
            ))
        })?,
        None => defaults.skip_verify,
    };
    Ok(TlsConfig {
        ca_cert: pick("vaultCACertPath", &defaults.ca_cert),
        ca_directory: pick("vaultCADirectory", &defaults.ca_directory),
        server_name: pick("vaultTLSServerName", &defaults.server_name),
        client_cert: pick("vaultTLSClientCertPath", &defaults.client_cert),
        client_key: pick("vaultTLSClientKeyPath", &defaults.client_key),
        skip_verify,
    })
}

/// Parses a duration: a bare number is seconds, otherwise units as in
/// `30s`, `2m`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{} is not a duration like 30s or 2m ({e})", Shown(text)))
}

/// Parses a JSON object whose values are all strings.
fn parse_string_map(text: &str, what: &str) -> Result<HashMap<String, String>, SpcError> {
    serde_json::from_str(text).map_err(|e| {
        SpcError::new(format!(
            "the mount request's {what} are not a JSON object of strings ({e}); this is a driver bug"
        ))
    })
}

/// Parses the `secrets` field: a JSON object of strings, or `null`.
fn parse_secrets(text: &str) -> Result<BTreeMap<String, SecretString>, SpcError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let map: Option<BTreeMap<String, String>> = serde_json::from_str(text).map_err(|e| {
        // serde_json's own message can quote a value, which here is a secret.
        SpcError::new(format!(
            "the mount request's secrets are not a JSON object of strings ({}); check the \
             nodePublishSecretRef Secret",
            shown::json_error_without_values(&e)
        ))
    })?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, SecretString::new(v)))
        .collect())
}

/// Parses `permission`, a decimal file mode such as `"420"` (0644).
fn parse_permission(text: &str) -> Result<u32, SpcError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0o644);
    }
    match text.parse::<u32>() {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(SpcError::new(format!(
            "the mount request's permission {} is not a file mode between 0 and 511",
            Shown(text)
        ))),
    }
}

#[cfg(test)]
mod tests;
