//! Online checks against a real Vault, without side effects.
//!
//! Only reads are sent: the token's own lookup, the auth role, each path's
//! mount (`sys/internal/ui/mounts/<path>`), KV reads, and
//! `sys/capabilities-self` for every other engine.  A PUT or POST object
//! (a PKI certificate, a database login) is never requested, so `check`
//! never issues a credential or a certificate.  The checks use the given
//! token's policies, which may differ from the role's.

use serde_json::{Value, json};

use super::documents::Manifest;
use super::finding::Finding;
use crate::mount::render;
use crate::secret::SecretString;
use crate::spc::{
    AuthMethod, Connection, Method, MountConfig, ObjectSpec, RequestKey, TlsConfig, VaultAddress,
};
use crate::vault::{ClientOptions, ClientPool, VaultClient, VaultError, VaultResponse};

/// How to reach Vault for the online checks.
#[derive(Debug)]
pub struct OnlineOptions {
    /// The address (`--vault-addr`), used instead of the SPC's: the machine
    /// running `check` reaches Vault its own way (often a port-forward).
    pub address: VaultAddress,
    /// TLS settings of this machine (`VAULT_CACERT`, …), not the SPC's,
    /// whose paths are on the provider's filesystem.
    pub tls: TlsConfig,
    /// The token the checks use.
    pub token: SecretString,
    /// Timeouts and retries.
    pub client: ClientOptions,
}

/// What `sys/internal/ui/mounts/<path>` says about a path's engine.
struct MountInfo {
    /// Engine type (`kv`, `pki`, `database`, …).
    kind: String,
    /// KV version (`"2"`), if any.
    version: Option<String>,
    /// The mount's path with its trailing slash (`secret/`).
    path: String,
}

/// The checks for one SPC.
struct Checker<'a> {
    /// The SPC, for the findings' location.
    manifest: &'a Manifest,
    /// The client for `--vault-addr` with the SPC's namespace.
    client: VaultClient,
    /// The token every request carries.
    token: &'a SecretString,
    /// Where findings go.
    findings: &'a mut Vec<Finding>,
}

/// Checks `config`'s auth role and every object's path.
pub(super) async fn check(
    manifest: &Manifest,
    config: &MountConfig,
    options: &OnlineOptions,
    pool: &ClientPool,
    findings: &mut Vec<Finding>,
) {
    let connection = Connection {
        address: options.address.clone(),
        namespace: config.connection.namespace.clone(),
        tls: options.tls.clone(),
    };
    let client = match pool.client(&connection) {
        Ok(client) => client,
        Err(e) => {
            findings.push(
                Finding::error(
                    "vault-connection",
                    &manifest.at,
                    format!("cannot set up the connection to {}: {e}", options.address),
                )
                .fix("check --vault-addr and the VAULT_CACERT / VAULT_CLIENT_* files"),
            );
            return;
        }
    };
    let mut checker = Checker {
        manifest,
        client,
        token: &options.token,
        findings,
    };
    if !checker.token_works(&options.address).await {
        return;
    }
    checker.role(config).await;
    let mut requests: Vec<(&RequestKey, Vec<&ObjectSpec>)> = Vec::new();
    for object in config.objects.iter() {
        match requests.iter_mut().find(|(key, _)| **key == object.request) {
            Some((_, objects)) => objects.push(object),
            None => requests.push((&object.request, vec![object])),
        }
    }
    for (key, objects) in requests {
        if !checker.request(config, key, &objects).await {
            return;
        }
    }
}

impl Checker<'_> {
    /// Looks the token up; reports and returns false when it cannot be used.
    async fn token_works(&mut self, address: &VaultAddress) -> bool {
        match self.client.lookup_self(self.token).await {
            Ok(_) => true,
            Err(e) => {
                let (message, fix) = match e.status() {
                    Some(403) => (
                        "Vault refuses the token (403): it is invalid, expired or revoked, or lacks the default policy (auth/token/lookup-self)".to_string(),
                        "pass a valid token in VAULT_TOKEN or --token-file".to_string(),
                    ),
                    _ => (
                        format!("cannot reach Vault at {address}: {e}"),
                        "check --vault-addr (e.g. kubectl port-forward -n vault svc/vault 8200) and TLS settings"
                            .to_string(),
                    ),
                };
                self.findings
                    .push(Finding::error("vault-connection", &self.manifest.at, message).fix(fix));
                false
            }
        }
    }

    /// Checks that the Kubernetes / JWT role exists (and, for Kubernetes
    /// auth, admits the SPC's namespace).  A token that may not read roles
    /// learns nothing, and nothing is reported.
    async fn role(&mut self, config: &MountConfig) {
        if !config.auth.method.uses_pod_token() {
            return;
        }
        let path = format!("auth/{}/role/{}", config.auth.mount, config.auth.role);
        let at = &self.manifest.at;
        match self.get(&path).await {
            Ok(response) => {
                let namespaces = response
                    .data
                    .as_ref()
                    .and_then(|d| d.0.get("bound_service_account_namespaces"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>());
                if let (AuthMethod::Kubernetes, Some(bound), Some(namespace)) =
                    (config.auth.method, namespaces, at.namespace.as_deref())
                    && !bound.iter().any(|b| *b == "*" || *b == namespace)
                {
                    self.findings.push(
                        Finding::error(
                            "role-namespace",
                            at,
                            format!(
                                "role {} at auth/{} admits namespaces {}, not {namespace}; logins from this \
                                 namespace are refused",
                                config.auth.role,
                                config.auth.mount,
                                bound.join(", ")
                            ),
                        )
                        .parameter("roleName")
                        .fix(format!(
                            "add {namespace} to the role's bound_service_account_namespaces, or use a role bound to it"
                        )),
                    );
                }
            }
            Err(e) if e.status() == Some(404) || e.status() == Some(400) => {
                let no_mount = e.vault_message().contains("no handler")
                    || e.vault_message().contains("unsupported path");
                let finding = if no_mount {
                    Finding::error(
                        "auth-mount",
                        at,
                        format!("no auth method is mounted at auth/{}", config.auth.mount),
                    )
                    .parameter("vaultAuthMountPath")
                    .fix("set vaultAuthMountPath to the auth method's mount path (vault auth list)")
                } else {
                    Finding::error(
                        "role-missing",
                        at,
                        format!(
                            "role {} does not exist at auth/{}",
                            config.auth.role, config.auth.mount
                        ),
                    )
                    .parameter("roleName")
                    .fix(format!(
                        "create it (vault write {path} …) or correct roleName"
                    ))
                };
                self.findings.push(finding);
            }
            Err(_) => {}
        }
    }

    /// Checks one distinct request and the objects it serves; false when
    /// Vault cannot be reached any more.
    async fn request(
        &mut self,
        config: &MountConfig,
        key: &RequestKey,
        objects: &[&ObjectSpec],
    ) -> bool {
        let mount = match self
            .get(&format!("sys/internal/ui/mounts/{}", key.path))
            .await
        {
            Ok(response) => mount_info(&response),
            Err(e) => return self.mount_lookup_failed(key, objects, &e).await,
        };
        let Some(mount) = mount else {
            // An answer without the fields: decide by capabilities.
            return self.capabilities(key, objects).await;
        };
        let kv = matches!(mount.kind.as_str(), "kv" | "generic") && !mount.path.is_empty();
        if !kv {
            return self.capabilities(key, objects).await;
        }
        if !key.method.is_read() {
            self.each(objects, |at, object| {
                Finding::error(
                    "kv-write",
                    at,
                    format!(
                        "{} on KV path {} writes the secret on every mount",
                        key.method, key.path
                    ),
                )
                .object(object.name.as_str())
                .parameter("method")
                .fix("remove method (GET is the default) to read the secret")
            });
            return true;
        }
        let relative = key.path.strip_prefix(&mount.path).unwrap_or(&key.path);
        if mount.version.as_deref() == Some("2")
            && key.method == Method::Get
            && !["data/", "metadata/", "subkeys/"]
                .iter()
                .any(|p| relative.starts_with(p))
        {
            let fixed = format!("{}data/{relative}", mount.path);
            self.each(objects, |at, object| {
                Finding::error(
                    "kv2-path",
                    at,
                    format!(
                        "{} is on KV version 2 mount {}, whose secrets are read at {fixed}; this path \
                         answers 404",
                        key.path, mount.path
                    ),
                )
                .object(object.name.as_str())
                .parameter("secretPath")
                .fix(format!("write secretPath: {fixed}"))
            });
            return true;
        }
        if key.method == Method::List {
            return self.capabilities(key, objects).await;
        }
        self.read(config, key, objects, &mount).await
    }

    /// Reads a KV secret and renders each object from it as a mount would.
    async fn read(
        &mut self,
        config: &MountConfig,
        key: &RequestKey,
        objects: &[&ObjectSpec],
        mount: &MountInfo,
    ) -> bool {
        match self.client.request(self.token, key).await {
            Ok(response) => {
                for object in objects {
                    if let Err(e) = render(object, &response, &config.spc) {
                        // The finding names the SPC and object already.
                        let prefix = format!(
                            "SecretProviderClass {}, object {:?}: ",
                            config.spc,
                            object.name.as_str()
                        );
                        let text = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
                        let (message, fix) = match text.split_once(" Hint: ") {
                            Some((m, f)) => (m.trim_end_matches('.').to_string(), f.to_string()),
                            None => (text.to_string(), "correct secretKey or the secret".into()),
                        };
                        self.findings.push(
                            Finding::error("secret-key", &self.manifest.at, message)
                                .object(object.name.as_str())
                                .parameter("secretKey")
                                .fix(fix),
                        );
                    }
                }
                true
            }
            Err(e) if e.status() == Some(404) => {
                let version = mount.version.as_deref().unwrap_or("1");
                self.each(objects, |at, object| {
                    Finding::error(
                        "not-found",
                        at,
                        format!(
                            "nothing is stored at {key} (KV version {version} mount {}: 404)",
                            mount.path
                        ),
                    )
                    .object(object.name.as_str())
                    .parameter("secretPath")
                    .fix("write the secret there, or correct secretPath")
                });
                true
            }
            Err(e) if e.status() == Some(403) => {
                self.denied(key, objects);
                true
            }
            Err(e) => self.failed(key, objects, &e),
        }
    }

    /// Asks which capabilities the token has on the path, and compares
    /// them with what the object's method needs.
    async fn capabilities(&mut self, key: &RequestKey, objects: &[&ObjectSpec]) -> bool {
        match self.has_capability(key).await {
            Ok(true) => true,
            Ok(false) => {
                self.denied(key, objects);
                true
            }
            Err(e) => self.failed(key, objects, &e),
        }
    }

    /// Whether `sys/capabilities-self` grants what the method needs
    /// (read for GET, list for LIST, update for PUT and POST).
    async fn has_capability(&self, key: &RequestKey) -> Result<bool, VaultError> {
        let request = RequestKey {
            method: Method::Post,
            path: "sys/capabilities-self".into(),
            query: Vec::new(),
            body: Some(json!({ "paths": [key.path] }).to_string()),
        };
        let response = self.client.request(self.token, &request).await?;
        let needed = needed_capability(key.method);
        Ok(response
            .data
            .as_ref()
            .and_then(|d| d.0.get(&key.path).or_else(|| d.0.get("capabilities")))
            .and_then(Value::as_array)
            .is_some_and(|caps| {
                caps.iter()
                    .filter_map(Value::as_str)
                    .any(|c| c == needed || c == "root")
            }))
    }

    /// Reports why the mount lookup failed; false when Vault is gone.
    /// Vault answers 403 both when the token may not use the path and when
    /// nothing is mounted there, so the token's capabilities decide.
    async fn mount_lookup_failed(
        &mut self,
        key: &RequestKey,
        objects: &[&ObjectSpec],
        error: &VaultError,
    ) -> bool {
        let no_mount = match error.status() {
            Some(403) => match self.has_capability(key).await {
                Ok(allowed) => allowed,
                Err(e) => return self.failed(key, objects, &e),
            },
            Some(400 | 404) => true,
            _ => return self.failed(key, objects, error),
        };
        if !no_mount {
            self.denied(key, objects);
            return true;
        }
        let first = key.path.split('/').next().unwrap_or_default();
        self.each(objects, |at, object| {
            Finding::error(
                "no-mount",
                at,
                format!("no secrets engine is mounted at {}", key.path),
            )
            .object(object.name.as_str())
            .parameter("secretPath")
            .fix(format!(
                "correct secretPath: it must start with a mount listed by `vault secrets list` ({first}/ is not one)"
            ))
        });
        true
    }

    /// Reports a permission the token lacks.
    fn denied(&mut self, key: &RequestKey, objects: &[&ObjectSpec]) {
        let needed = needed_capability(key.method);
        self.each(objects, |at, object| {
            Finding::error(
                "permission-denied",
                at,
                format!("the token may not {needed} {} (a {} needs it)", key.path, key.method),
            )
            .object(object.name.as_str())
            .parameter("secretPath")
            .fix(format!(
                "give the role's policy: path \"{}\" {{ capabilities = [\"{needed}\"] }} (check runs with your \
                 token's policies, which may differ from the role's)",
                key.path
            ))
        });
    }

    /// Reports any other failure; false when Vault cannot be reached.
    fn failed(&mut self, key: &RequestKey, objects: &[&ObjectSpec], error: &VaultError) -> bool {
        let unreachable = matches!(error, VaultError::Transport { .. });
        self.each(objects, |at, object| {
            Finding::error("vault-error", at, format!("{key}: {error}"))
                .object(object.name.as_str())
                .fix("see Vault's message; rerun when Vault answers")
        });
        !unreachable
    }

    /// Adds one finding per object.
    fn each(
        &mut self,
        objects: &[&ObjectSpec],
        finding: impl Fn(&super::finding::DocumentRef, &ObjectSpec) -> Finding,
    ) {
        for object in objects {
            self.findings.push(finding(&self.manifest.at, object));
        }
    }

    /// A GET of a Vault API path with the token.
    async fn get(&self, path: &str) -> Result<VaultResponse, VaultError> {
        let key = RequestKey {
            method: Method::Get,
            path: path.to_string(),
            query: Vec::new(),
            body: None,
        };
        self.client.request(self.token, &key).await
    }
}

/// The capability a method needs on its path.
fn needed_capability(method: Method) -> &'static str {
    match method {
        Method::Get => "read",
        Method::List => "list",
        Method::Put | Method::Post => "update",
    }
}

/// Reads the mount description; `None` when the answer lacks the type.
fn mount_info(response: &VaultResponse) -> Option<MountInfo> {
    let data = &response.data.as_ref()?.0;
    let kind = data.get("type")?.as_str()?.to_string();
    let path = data
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = data
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Some(MountInfo {
        kind,
        version,
        path,
    })
}
