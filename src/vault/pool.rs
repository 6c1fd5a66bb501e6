//! HTTP clients per Vault address and TLS configuration, so connections are
//! pooled and reused across mounts.

use std::collections::HashMap;
use std::sync::Mutex;

use super::client::{ClientOptions, VaultClient};
use super::error::VaultError;
use super::limit::{Limiter, VaultLoad};
use super::tls::{self, FileStamps};
use crate::spc::{Connection, TlsConfig, VaultAddress};

/// Most distinct (address, TLS) clients kept; past it the pool starts over.
/// SecretProviderClass authors choose addresses, so this must be bounded.
const MAX_CLIENTS: usize = 256;

/// A built client, with what it was built from.
#[derive(Debug, Clone)]
struct Entry {
    /// The HTTP client.
    http: reqwest::Client,
    /// The base URL requests are built from.
    base: reqwest::Url,
    /// The TLS files it read, to notice rotation.
    files: FileStamps,
}

/// Builds and keeps one HTTP client per (address, TLS settings).
///
/// A client is rebuilt when a TLS file it read (CA bundle, CA directory or
/// one of its files, client certificate or key) has changed on disk since:
/// each lookup stats those few files, which is cheaper than a filesystem
/// watcher and takes effect on the next mount after a rotation.
#[derive(Debug)]
pub struct ClientPool {
    /// Built clients.
    clients: Mutex<HashMap<(VaultAddress, TlsConfig), Entry>>,
    /// Options every client gets.
    options: ClientOptions,
    /// Request slots per Vault address (`--vault-max-concurrent-requests`),
    /// shared by every TLS configuration and namespace of the address: they
    /// all load the same server.
    limiter: Limiter,
}

impl ClientPool {
    /// An empty pool.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            limiter: Limiter::new(options.max_concurrent_requests),
            options,
        }
    }

    /// The options every client gets.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// How busy `address`'s request slots are now; `None` without a limit
    /// or before its first request.
    pub fn load(&self, address: &VaultAddress) -> Option<VaultLoad> {
        self.limiter.load(address)
    }

    /// A client for `connection`, built on first use and again after its TLS
    /// files change.
    pub fn client(&self, connection: &Connection) -> Result<VaultClient, VaultError> {
        let key = (connection.address.clone(), connection.tls.clone());
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        // Stat outside the lock: mounts of other connections need not wait.
        let entry = match cached {
            Some(entry) if entry.files.unchanged() => entry,
            _ => {
                let entry = build(&connection.address, &connection.tls, &self.options)?;
                let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
                if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
                    clients.clear();
                }
                clients.insert(key, entry.clone());
                entry
            }
        };
        Ok(VaultClient {
            http: entry.http,
            base: entry.base,
            namespace: connection.namespace.clone(),
            over_socket: matches!(connection.address, VaultAddress::Unix { .. }),
            options: self.options.clone(),
            slots: self.limiter.slots(&connection.address),
        })
    }
}

/// Builds a reqwest client for one address and TLS configuration.
fn build(
    address: &VaultAddress,
    tls: &TlsConfig,
    options: &ClientOptions,
) -> Result<Entry, VaultError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        // Redirects are followed by the client itself, to listed hosts
        // only (redirect.rs): reqwest would carry X-Vault-Token anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vault-csi/", env!("CARGO_PKG_VERSION")));
    if let VaultAddress::Unix { socket } = address {
        // reqwest already ignores proxies for a socket; said twice, to be sure.
        builder = builder.unix_socket(socket.clone()).no_proxy();
    } else if tls::is_loopback(address) {
        // HTTPS_PROXY / HTTP_PROXY / NO_PROXY are otherwise honoured by
        // reqwest as by Go; Go also never proxies loopback, so neither do we.
        builder = builder.no_proxy();
    }
    let configured = tls::configure(builder, address, tls)?;
    let http = configured.builder.build().map_err(|e| VaultError::Config {
        detail: format!(
            "could not build the HTTP client for {address}: {}",
            super::error::error_chain(&e)
        ),
    })?;
    Ok(Entry {
        http,
        base: configured.base,
        files: configured.files,
    })
}
