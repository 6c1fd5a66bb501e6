//! Mount failures as people read them: what went wrong, where, and what to
//! do, with the gRPC code the driver and kubelet act on.

use tonic::Code;

use crate::k8s::MintError;
use crate::spc::{AuthMethod, MountConfig, RequestKey, SpcError};
use crate::vault::{Refusal, TransportKind, VaultError};

/// A failed Mount: a gRPC code and a message for `kubectl describe pod`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MountError {
    /// The gRPC status code.
    pub code: Code,
    /// The message; never contains secret values or tokens.
    pub message: String,
    /// Vault was unreachable, timed out, sealed or answered 502/503/504:
    /// the failures stale-if-error may answer from cache.
    pub vault_down: bool,
}

impl MountError {
    /// An error with an explicit code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            vault_down: false,
        }
    }

    /// A SecretProviderClass or request problem.
    pub fn from_spc(error: SpcError) -> Self {
        let code = if error.missing_credential {
            Code::FailedPrecondition
        } else {
            Code::InvalidArgument
        };
        Self::new(code, error.message)
    }
}

impl From<MountError> for tonic::Status {
    fn from(error: MountError) -> Self {
        tonic::Status::new(error.code, error.message)
    }
}

/// The error for a pod token the provider could not mint.
pub(crate) fn mint_error(cfg: &MountConfig, error: &MintError) -> MountError {
    let pod = format!("{}/{}", cfg.pod.namespace, cfg.pod.name);
    let sa = format!("{}/{}", cfg.pod.namespace, cfg.pod.service_account);
    let tokens_hint = format!(
        "set tokenRequests on the CSIDriver secrets-store.csi.k8s.io so the driver passes the pod's \
         token (driver chart: --set tokenRequests[0].audience={}), or set the SecretProviderClass \
         parameter 'audience' to an audience it already requests",
        cfg.auth.audience
    );
    let (code, message) = match error {
        MintError::NoKubernetes => (
            Code::FailedPrecondition,
            format!(
                "the driver passed no service-account token for audience {:?}, and the provider has no \
                 Kubernetes configuration to request one for pod {pod} itself. Hint: {tokens_hint}",
                cfg.auth.audience
            ),
        ),
        MintError::Forbidden(said) => (
            Code::FailedPrecondition,
            format!(
                "the driver passed no service-account token for audience {:?}, and the Kubernetes API \
                 refused the provider's TokenRequest for service account {sa} ({said}). Hint: grant the \
                 provider's service account a ClusterRole rule {{apiGroups: [\"\"], resources: \
                 [\"serviceaccounts/token\"], verbs: [\"create\"]}}, or {tokens_hint} (then that \
                 permission is not needed)",
                cfg.auth.audience
            ),
        ),
        MintError::Failed(why) => (
            Code::Unavailable,
            format!(
                "could not request a service-account token for pod {pod} from the Kubernetes API: {why}"
            ),
        ),
    };
    MountError::new(code, format!("SecretProviderClass {}: {message}", cfg.spc))
}

/// The error for a failed login.
pub(crate) fn login_error(cfg: &MountConfig, error: &VaultError) -> MountError {
    let (mount, address) = (&cfg.auth.mount, &cfg.connection.address);
    let who = match cfg.auth.method {
        AuthMethod::Kubernetes | AuthMethod::Jwt => format!(
            "role {:?} at auth/{mount} of {address} as service account {}/{}",
            cfg.auth.role, cfg.pod.namespace, cfg.pod.service_account
        ),
        AuthMethod::AppRole => format!(
            "AppRole at auth/{mount} of {address} (roleId and secretId from the volume's \
             nodePublishSecretRef Secret)"
        ),
        AuthMethod::Token => format!(
            "the Vault token from the volume's nodePublishSecretRef Secret (key token) at {address}"
        ),
    };
    let (code, what) = match error {
        VaultError::Status {
            status: 400 | 401 | 403,
            ..
        } => (
            Code::PermissionDenied,
            format!("Vault refused the login ({})", error.vault_message()),
        ),
        VaultError::Status { status: 404, .. } => (
            Code::FailedPrecondition,
            format!(
                "no auth method is enabled at auth/{} ({}); enable it or set vaultAuthMountPath",
                cfg.auth.mount,
                error.vault_message()
            ),
        ),
        VaultError::Status { status: 500, .. } => (
            Code::FailedPrecondition,
            format!(
                "Vault failed the login with an internal error, which usually means the auth method \
                 is misconfigured (for Kubernetes auth: kubernetes_host, CA or reviewer token): {}",
                error.vault_message()
            ),
        ),
        VaultError::Status { status, .. } if (300..400).contains(status) => {
            return answer_mount_error(cfg, &format!("login at auth/{mount}"), error);
        }
        VaultError::Redirect { .. } | VaultError::TooLarge { .. } | VaultError::Body { .. } => {
            return answer_mount_error(cfg, &format!("login at auth/{mount}"), error);
        }
        other => return vault_unreachable(cfg, "logging in", other),
    };
    let hint = login_hint(&error.vault_message(), cfg);
    MountError::new(
        code,
        format!(
            "SecretProviderClass {}: login with {who} failed: {what}{hint}",
            cfg.spc
        ),
    )
}

/// A hint for Vault's common login refusals.
fn login_hint(message: &str, cfg: &MountConfig) -> String {
    let m = message.to_ascii_lowercase();
    let hint = if m.contains("service account name not authorized") {
        format!(
            "add {:?} to the role's bound_service_account_names",
            cfg.pod.service_account
        )
    } else if m.contains("namespace not authorized") {
        format!(
            "add {:?} to the role's bound_service_account_namespaces",
            cfg.pod.namespace
        )
    } else if m.contains("invalid audience") || m.contains("aud claim") {
        format!(
            "the token's audience is {:?} (SecretProviderClass parameter 'audience'); the role's \
             audience / bound_audiences must include it",
            cfg.auth.audience
        )
    } else if m.contains("\"iss\"") || m.contains("issuer") {
        "the token's issuer must match the auth method's issuer / bound_issuer setting (the cluster's \
         service-account issuer)"
            .to_string()
    } else if cfg.auth.method == AuthMethod::AppRole {
        "check roleId and secretId in the Secret; secret ids expire (secret_id_ttl) and may be \
         limited in uses (secret_id_num_uses)"
            .to_string()
    } else if cfg.auth.method == AuthMethod::Token {
        "the token is expired, revoked, or not valid in this Vault and namespace; put a valid \
         token in the Secret"
            .to_string()
    } else if m.contains("token is expired") || m.contains("exp) claim") {
        "the pod's service-account token has expired; kubelet refreshes projected tokens, so check the \
         node's clock and the CSIDriver's tokenRequests expirationSeconds"
            .to_string()
    } else if m.contains("role")
        && (m.contains("not found")
            || m.contains("could not be found")
            || m.contains("invalid role"))
    {
        format!(
            "create role {:?} at auth/{} or fix roleName",
            cfg.auth.role, cfg.auth.mount
        )
    } else if m.contains("permission denied") {
        format!(
            "check that role {:?} binds service account {:?} in namespace {:?}, and that Vault can \
             reach the Kubernetes TokenReview API",
            cfg.auth.role, cfg.pod.service_account, cfg.pod.namespace
        )
    } else {
        return String::new();
    };
    format!(". Hint: {hint}")
}

/// The error for a failed secret request.
pub(crate) fn read_error(
    cfg: &MountConfig,
    objects: &str,
    request: &RequestKey,
    error: &VaultError,
) -> MountError {
    let at = format!("SecretProviderClass {}, {objects}: {request}", cfg.spc);
    let (code, what, hint) = match error {
        VaultError::Status { status: 400, .. } => (
            Code::InvalidArgument,
            format!(
                "Vault rejected the request (400): {}",
                error.vault_message()
            ),
            "check secretPath, the ?query and secretArgs against the secrets engine's API"
                .to_string(),
        ),
        VaultError::Status {
            status: 401 | 403, ..
        } => (
            Code::PermissionDenied,
            format!(
                "Vault denied access ({}): {}",
                error.status().unwrap_or(403),
                error.vault_message()
            ),
            format!(
                "grant role {:?} a policy with {} on {}",
                cfg.auth.role,
                if request.method.is_read() {
                    "\"read\""
                } else {
                    "\"update\""
                },
                request.path
            ),
        ),
        VaultError::Status {
            status: 404,
            warnings,
            ..
        } => (
            Code::NotFound,
            format!("Vault has nothing at {} (404)", request.path),
            not_found_hint(request, warnings),
        ),
        VaultError::Status { status: 405, .. } => (
            Code::InvalidArgument,
            format!(
                "Vault does not allow {} on {} (405)",
                request.method, request.path
            ),
            "use the method the secrets engine documents for this path (GET to read, PUT to issue)"
                .to_string(),
        ),
        VaultError::Status { status: 500, .. } => (
            Code::Internal,
            format!(
                "Vault failed the request with an internal error (500): {}",
                error.vault_message()
            ),
            format!(
                "Vault's server log has the cause; a secrets engine that cannot reach its backend \
                 answers this way{}",
                if request.method.is_read() {
                    " (reads are retried before this error)"
                } else {
                    ""
                }
            ),
        ),
        // A gateway in front of Vault may have passed the write on before
        // failing: the driver retries Unavailable, so a second credential
        // could be issued.  Aborted is not retried.
        VaultError::Status {
            status: 502 | 504, ..
        } if !request.method.is_read() => (
            Code::Aborted,
            format!("{error}, after the request may have reached Vault"),
            WRITE_NOT_REPEATED.to_string(),
        ),
        VaultError::Status { status, .. } if *status == 429 || *status >= 500 => {
            return vault_unreachable(cfg, &format!("fetching {objects}: {request}"), error);
        }
        VaultError::Status { status, .. } if !(300..400).contains(status) => {
            (Code::InvalidArgument, error.to_string(), String::new())
        }
        VaultError::Transport {
            kind: TransportKind::Broken | TransportKind::Timeout,
            ..
        } if !request.method.is_read() => (
            Code::Aborted,
            format!("{error}, after the request may have reached Vault"),
            WRITE_NOT_REPEATED.to_string(),
        ),
        VaultError::Transport { .. } => {
            return vault_unreachable(cfg, &format!("fetching {objects}: {request}"), error);
        }
        VaultError::Status { .. }
        | VaultError::Redirect { .. }
        | VaultError::TooLarge { .. }
        | VaultError::Body { .. }
        | VaultError::Config { .. } => answer_error(error),
    };
    let hint = if hint.is_empty() {
        hint
    } else {
        format!(". Hint: {hint}")
    };
    MountError::new(code, format!("{at}: {what}{hint}"))
}

/// Why a failed write is not repeated.
const WRITE_NOT_REPEATED: &str = "a write can issue a new credential, so neither the provider nor \
     the driver repeats it; the next mount will";

/// Code, message and hint for an answer the provider cannot use, whatever
/// the request: a redirect it does not follow, an answer over the size
/// limit or not Vault's JSON, connection settings it cannot use.
fn answer_error(error: &VaultError) -> (Code, String, String) {
    const ACTIVE_NODE: &str = "point vaultAddress at the active Vault node, or at a load \
         balancer that forwards to it";
    match error {
        VaultError::Redirect { refusal, .. } => {
            let hint = match refusal {
                Refusal::NotListed { host } => format!(
                    "if {host} is a node of the same Vault cluster (a standby sends clients to the \
                     active node), add it to the provider's --vault-redirect-hosts; otherwise \
                     {ACTIVE_NODE}"
                ),
                Refusal::Downgrade => format!(
                    "the token is never sent over plain HTTP to follow a redirect; {ACTIVE_NODE}, \
                     or make the active node advertise an https address (api_addr)"
                ),
                _ => ACTIVE_NODE.to_string(),
            };
            (Code::FailedPrecondition, error.to_string(), hint)
        }
        VaultError::TooLarge { .. } => (
            Code::ResourceExhausted,
            error.to_string(),
            "raise the provider's --max-response-bytes and the driver's \
             --max-call-recv-msg-size together"
                .to_string(),
        ),
        VaultError::Config { detail } => (Code::InvalidArgument, detail.clone(), String::new()),
        VaultError::Body { detail } => (
            Code::FailedPrecondition,
            format!("Vault's answer could not be read: {detail}"),
            "check that vaultAddress points at Vault and not at a proxy or web page".to_string(),
        ),
        // 3xx without a Location, or anything else Vault should not answer.
        other => (
            Code::FailedPrecondition,
            other.to_string(),
            ACTIVE_NODE.to_string(),
        ),
    }
}

/// [`answer_error`] as a [`MountError`] for the step `doing`.
fn answer_mount_error(cfg: &MountConfig, doing: &str, error: &VaultError) -> MountError {
    let (code, what, hint) = answer_error(error);
    MountError::new(
        code,
        format!(
            "SecretProviderClass {}: {doing} at {}: {what}. Hint: {hint}",
            cfg.spc, cfg.connection.address
        ),
    )
}

/// Explains a 404: KV v2 paths need `data/`.
fn not_found_hint(request: &RequestKey, warnings: &[String]) -> String {
    let kv2_warning = warnings.iter().any(|w| w.contains("versioned K/V"));
    let mut parts = request.path.splitn(2, '/');
    let (mount, rest) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if kv2_warning {
        return format!(
            "{mount}/ is a KV version 2 engine, whose API path puts data/ after the mount: \
             secretPath: {mount}/data/{rest}"
        );
    }
    if !rest.starts_with("data/") && !rest.is_empty() && request.method.is_read() {
        return format!(
            "check that the secret exists; if {mount}/ is a KV version 2 engine, the path is \
             {mount}/data/{rest}"
        );
    }
    "check that the secret exists at this path and in this Vault namespace".to_string()
}

/// The error for an unreachable, sealed or overloaded Vault.
pub(crate) fn vault_unreachable(cfg: &MountConfig, doing: &str, error: &VaultError) -> MountError {
    let detail = match error {
        VaultError::Status {
            status: 503,
            errors,
            ..
        } if errors
            .iter()
            .any(|e| e.to_ascii_lowercase().contains("sealed")) =>
        {
            "Vault is sealed; unseal it".to_string()
        }
        VaultError::Status { status: 429, .. } => format!(
            "Vault is rate-limiting requests (429): {}",
            error.vault_message()
        ),
        other => other.to_string(),
    };
    let code = match error {
        VaultError::Config { .. } => Code::InvalidArgument,
        _ => Code::Unavailable,
    };
    // Under TLS 1.3 a server that rejects the client certificate often resets
    // the connection before its alert can be read: say what it usually means.
    let mtls_hint = match error {
        VaultError::Transport { kind, detail }
            if cfg.connection.address.is_https()
                && (*kind == TransportKind::Broken || detail.contains("alert")) =>
        {
            ". Hint: if Vault requires client certificates, check vaultTLSClientCertPath / \
             vaultTLSClientKeyPath and that Vault's tls_client_ca_file trusts them"
        }
        _ => "",
    };
    let mut error_out = MountError::new(
        code,
        format!(
            "SecretProviderClass {}: Vault at {} is unavailable while {doing}: {detail}{mtls_hint}",
            cfg.spc, cfg.connection.address
        ),
    );
    error_out.vault_down = vault_is_down(error);
    error_out
}

/// Whether an error means Vault is unreachable, timed out, sealed, or
/// answered 502/503/504 — not a refusal, and not a 500 (a bug or
/// misconfiguration that serving stale content would hide).
pub(crate) fn vault_is_down(error: &VaultError) -> bool {
    matches!(
        error,
        VaultError::Transport { .. }
            | VaultError::Status {
                status: 502..=504,
                ..
            }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_sealed_or_overloaded_vault_allows_stale_content() {
        let status = |status| VaultError::Status {
            status,
            errors: vec![],
            warnings: vec![],
        };
        for down in [
            VaultError::Transport {
                kind: TransportKind::Connect,
                detail: String::new(),
            },
            VaultError::Transport {
                kind: TransportKind::Timeout,
                detail: String::new(),
            },
            status(502),
            status(503),
            status(504),
        ] {
            assert!(vault_is_down(&down), "{down:?}");
        }
        for not_down in [
            status(500),
            status(429),
            status(403),
            status(404),
            status(400),
        ] {
            assert!(!vault_is_down(&not_down), "{not_down:?}");
        }
    }
}
