//! HTTP clients per Vault address and TLS configuration, so connections are
//! pooled and reused across mounts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::client::{ClientOptions, VaultClient};
use super::error::VaultError;
use crate::spc::{Connection, TlsConfig, VaultAddress};

/// Most distinct (address, TLS) clients kept; past it the pool starts over.
/// SecretProviderClass authors choose addresses, so this must be bounded.
const MAX_CLIENTS: usize = 256;

/// Builds and keeps one HTTP client per (address, TLS settings).
#[derive(Debug)]
pub struct ClientPool {
    /// Built clients.
    clients: Mutex<HashMap<(VaultAddress, TlsConfig), reqwest::Client>>,
    /// Options every client gets.
    options: ClientOptions,
}

impl ClientPool {
    /// An empty pool.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            options,
        }
    }

    /// The options every client gets.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// A client for `connection`, built on first use.
    pub fn client(&self, connection: &Connection) -> Result<VaultClient, VaultError> {
        let key = (connection.address.clone(), connection.tls.clone());
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let http = match cached {
            Some(http) => http,
            None => {
                let http = build_http(&connection.address, &connection.tls, &self.options)?;
                let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
                if clients.len() >= MAX_CLIENTS {
                    clients.clear();
                }
                clients.entry(key).or_insert(http).clone()
            }
        };
        let base =
            reqwest::Url::parse(connection.address.base_url()).map_err(|e| VaultError::Config {
                detail: format!("bad Vault address: {e}"),
            })?;
        Ok(VaultClient {
            http,
            base,
            namespace: connection.namespace.clone(),
            options: self.options.clone(),
        })
    }
}

/// Builds a reqwest client for one address and TLS configuration.
fn build_http(
    address: &VaultAddress,
    tls: &TlsConfig,
    options: &ClientOptions,
) -> Result<reqwest::Client, VaultError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .user_agent(concat!("vault-csi/", env!("CARGO_PKG_VERSION")));
    if let VaultAddress::Unix { socket } = address {
        builder = builder.unix_socket(socket.clone());
    }
    let mut roots = Vec::new();
    if let Some(path) = &tls.ca_cert {
        roots.extend(read_pem_certs(
            Path::new(path),
            "vaultCACertPath / VAULT_CACERT",
        )?);
    }
    if let Some(dir) = &tls.ca_directory {
        roots.extend(read_ca_directory(Path::new(dir))?);
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_only(roots);
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read_file(Path::new(cert), "client certificate")?;
            pem.push(b'\n');
            pem.extend(read_file(Path::new(key), "client key")?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| VaultError::Config {
                detail: format!(
                    "the client certificate {cert} and key {key} do not form a usable identity ({e})"
                ),
            });
            zeroize::Zeroize::zeroize(&mut pem);
            builder = builder.identity(identity?);
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(VaultError::Config {
                detail:
                    "mutual TLS needs both a client certificate and a client key; only one is set"
                        .into(),
            });
        }
        (None, None) => {}
    }
    if tls.server_name.is_some() {
        tracing::warn!(
            "vaultTLSServerName / VAULT_TLS_SERVER_NAME is not supported yet and is ignored"
        );
    }
    if tls.skip_verify {
        tracing::warn!(vault = %address, "TLS verification of Vault's certificate is OFF (vaultSkipTLSVerify / VAULT_SKIP_VERIFY)");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| VaultError::Config {
        detail: format!("could not build the HTTP client for {address}: {e}"),
    })
}

/// Reads a file for TLS setup; the error names the file, never its contents.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, VaultError> {
    std::fs::read(path).map_err(|e| VaultError::Config {
        detail: format!(
            "cannot read the {what} {} on the provider's filesystem: {e}",
            path.display()
        ),
    })
}

/// Reads a PEM bundle of certificates; at least one must be present.
fn read_pem_certs(path: &Path, what: &str) -> Result<Vec<reqwest::Certificate>, VaultError> {
    let pem = read_file(path, what)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| VaultError::Config {
        detail: format!(
            "{} ({what}) is not a PEM certificate bundle: {e}",
            path.display()
        ),
    })?;
    if certs.is_empty() {
        return Err(VaultError::Config {
            detail: format!("{} ({what}) contains no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}

/// Reads every certificate file of a CA directory (like Go's `VAULT_CAPATH`).
fn read_ca_directory(dir: &Path) -> Result<Vec<reqwest::Certificate>, VaultError> {
    let entries = std::fs::read_dir(dir).map_err(|e| VaultError::Config {
        detail: format!(
            "cannot read the CA directory {} (vaultCADirectory / VAULT_CAPATH): {e}",
            dir.display()
        ),
    })?;
    let mut certs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            certs.extend(read_pem_certs(&path, "file in the CA directory")?);
        }
    }
    if certs.is_empty() {
        return Err(VaultError::Config {
            detail: format!(
                "the CA directory {} holds no PEM certificate",
                dir.display()
            ),
        });
    }
    Ok(certs)
}
