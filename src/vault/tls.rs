//! TLS to Vault: CA bundles and directories, client certificates, the
//! server name and skip-verify, applied to a reqwest client builder.
//!
//! Every file is parsed here before reqwest sees it, so a bad one gives an
//! error naming the file and what is wrong with it.  Errors never quote a
//! file's contents: the paths come from tenants' SecretProviderClasses and
//! point into the provider's own filesystem.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zeroize::Zeroizing;

use super::error::VaultError;
use crate::spc::{TlsConfig, VaultAddress};

/// The settings' names as users write them, for messages.
const CA_CERT: &str = "vaultCACertPath / --vault-tls-ca-cert / VAULT_CACERT";
/// See [`CA_CERT`].
const CA_DIRECTORY: &str = "vaultCADirectory / --vault-tls-ca-directory / VAULT_CAPATH";
/// See [`CA_CERT`].
const CLIENT_CERT: &str = "vaultTLSClientCertPath / --vault-tls-client-cert / VAULT_CLIENT_CERT";
/// See [`CA_CERT`].
const CLIENT_KEY: &str = "vaultTLSClientKeyPath / --vault-tls-client-key / VAULT_CLIENT_KEY";
/// See [`CA_CERT`].
const SERVER_NAME: &str = "vaultTLSServerName / --vault-tls-server-name / VAULT_TLS_SERVER_NAME";

/// Most files read from a CA directory; a tenant may name any directory.
const MAX_CA_DIRECTORY_FILES: usize = 1000;

/// A builder with TLS applied, and the URL requests are built from.
pub(super) struct Configured {
    /// The client builder, ready to build.
    pub(super) builder: reqwest::ClientBuilder,
    /// The base URL; its host is the server name when one is set.
    pub(super) base: reqwest::Url,
    /// The files read, to notice when they change on disk.
    pub(super) files: FileStamps,
}

/// Applies `tls` to `builder` for requests to `address`.
pub(super) fn configure(
    mut builder: reqwest::ClientBuilder,
    address: &VaultAddress,
    tls: &TlsConfig,
) -> Result<Configured, VaultError> {
    // rustls speaks only TLS 1.2 and 1.3; saying so keeps the floor explicit
    // should a later backend offer less.
    builder = builder.tls_version_min(reqwest::tls::Version::TLS_1_2);
    let mut files = FileStamps::default();
    let mut roots = Vec::new();
    if let Some(path) = &tls.ca_cert {
        let what = format!("CA certificate file {path} ({CA_CERT})");
        roots.extend(read_certificates(Path::new(path), &what, &mut files)?);
    }
    if let Some(dir) = &tls.ca_directory {
        roots.extend(read_ca_directory(Path::new(dir), &mut files)?);
    }
    if !roots.is_empty() {
        // Like Go's client: configured CAs replace the system's.
        builder = builder.tls_certs_only(roots);
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            builder = builder.identity(read_identity(Path::new(cert), Path::new(key), &mut files)?);
        }
        (Some(cert), None) => {
            return Err(config(format!(
                "mutual TLS needs a client key as well as the client certificate {cert}; set {CLIENT_KEY}"
            )));
        }
        (None, Some(key)) => {
            return Err(config(format!(
                "mutual TLS needs a client certificate as well as the client key {key}; set {CLIENT_CERT}"
            )));
        }
        (None, None) => {}
    }
    if tls.skip_verify {
        tracing::warn!(vault = %address, "TLS verification of Vault's certificate is OFF (vaultSkipTLSVerify / VAULT_SKIP_VERIFY)");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let mut base = reqwest::Url::parse(address.base_url())
        .map_err(|e| config(format!("bad Vault address {address}: {e}")))?;
    if let (Some(name), true) = (&tls.server_name, address.is_https()) {
        builder = route_by_server_name(builder, &mut base, name)?;
    }
    Ok(Configured {
        builder,
        base,
        files,
    })
}

/// Makes SNI and certificate verification use `name` while connections
/// still go to `base`'s host, as Go's `tls.Config.ServerName` does.
///
/// reqwest takes both the SNI and the name it verifies from the URL's host,
/// so the URL's host becomes `name` and a resolver maps `name` back to the
/// address's real host.  The resolver looks the host up on every new
/// connection, so DNS changes are followed without rebuilding the client.
/// Behind an HTTP proxy, the CONNECT request names `name` (the proxy must be
/// able to resolve it) and `NO_PROXY` is matched against it.
fn route_by_server_name(
    builder: reqwest::ClientBuilder,
    base: &mut reqwest::Url,
    name: &str,
) -> Result<reqwest::ClientBuilder, VaultError> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(_)) => {}
        _ => {
            return Err(config(format!(
                "the server name {name:?} ({SERVER_NAME}) is not a DNS name; give the name \
                 Vault's certificate is issued for"
            )));
        }
    }
    let host = base
        .host_str()
        .ok_or_else(|| config("the Vault address has no host".into()))?
        .to_string();
    if host.eq_ignore_ascii_case(&name) {
        return Ok(builder);
    }
    let port = base.port_or_known_default().unwrap_or(443);
    base.set_host(Some(&name))
        .map_err(|e| config(format!("the server name {name:?} ({SERVER_NAME}): {e}")))?;
    let resolver = ServerNameResolver {
        server_name: name,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    };
    Ok(builder.dns_resolver(Arc::new(resolver)))
}

/// Resolves the configured server name to the Vault address's real host;
/// any other name (an HTTP proxy's) resolves normally.
#[derive(Debug)]
struct ServerNameResolver {
    /// The name in request URLs (lower case).
    server_name: String,
    /// The address's host: a DNS name or an IP address without brackets.
    host: String,
    /// The address's port.
    port: u16,
}

impl reqwest::dns::Resolve for ServerNameResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (host, port) = if name.as_str().eq_ignore_ascii_case(&self.server_name) {
            (self.host.clone(), self.port)
        } else {
            // reqwest puts the URL's port on addresses given with port 0.
            (name.as_str().to_string(), 0)
        };
        Box::pin(async move {
            if let Ok(ip) = host.parse::<IpAddr>() {
                let addrs: reqwest::dns::Addrs =
                    Box::new(std::iter::once(SocketAddr::new(ip, port)));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect();
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `address` is on this host (`localhost` or a loopback IP), which
/// Go's `http.ProxyFromEnvironment` never sends through a proxy.
pub(super) fn is_loopback(address: &VaultAddress) -> bool {
    let VaultAddress::Tcp { base } = address else {
        return false;
    };
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads a file for TLS setup; the error names the file, never its contents.
fn read_file(path: &Path, what: &str, files: &mut FileStamps) -> Result<Vec<u8>, VaultError> {
    // Stamp before reading: a change after the stamp shows up next time.
    files.record(path);
    std::fs::read(path).map_err(|e| {
        config(format!(
            "cannot read the {what} on the provider's filesystem: {e}"
        ))
    })
}

/// Reads a PEM file of certificates and checks each is usable as a CA; at
/// least one must be present.  Blocks other than certificates are skipped,
/// as Go's `AppendCertsFromPEM` does.
fn read_certificates(
    path: &Path,
    what: &str,
    files: &mut FileStamps,
) -> Result<Vec<reqwest::Certificate>, VaultError> {
    let bytes = read_file(path, what, files)?;
    let ders = parse_certificates(&bytes, what)?;
    let mut certs = Vec::with_capacity(ders.len());
    for (n, der) in ders.iter().enumerate() {
        // The same check reqwest makes when it builds the client, here so the
        // error can name the file and the certificate's place in it.
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| {
                config(format!(
                    "certificate {} of the {what} cannot be used as a CA: {}",
                    n + 1,
                    certificate_problem(&e)
                ))
            })?;
        certs.push(reqwest::Certificate::from_der(der).map_err(|e| {
            config(format!(
                "certificate {} of the {what} cannot be used as a CA: {e}",
                n + 1
            ))
        })?);
    }
    Ok(certs)
}

/// The certificates of a PEM text, in order.
fn parse_certificates(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, VaultError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config(format!("the {what} is not valid PEM: {}", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(config(format!(
            "the {what} holds no PEM certificate (no CERTIFICATE block)"
        )));
    }
    Ok(certs)
}

/// Reads every file of a CA directory (like Go's `VAULT_CAPATH`, without
/// descending into subdirectories).
fn read_ca_directory(
    dir: &Path,
    files: &mut FileStamps,
) -> Result<Vec<reqwest::Certificate>, VaultError> {
    let what = format!("CA directory {} ({CA_DIRECTORY})", dir.display());
    // The directory's own stamp changes when files are added or renamed in.
    files.record(dir);
    let entries = std::fs::read_dir(dir).map_err(|e| {
        config(format!(
            "cannot read the {what} on the provider's filesystem: {e}"
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        // Follows symlinks, so Kubernetes Secret volumes (file -> ..data/file)
        // work and their `..data` directory link is skipped.
        .filter(|path| path.is_file())
        .collect();
    if paths.len() > MAX_CA_DIRECTORY_FILES {
        return Err(config(format!(
            "the {what} holds more than {MAX_CA_DIRECTORY_FILES} files"
        )));
    }
    paths.sort();
    let mut certs = Vec::new();
    for path in paths {
        let file_what = format!(
            "file {} in the CA directory ({CA_DIRECTORY})",
            path.display()
        );
        certs.extend(read_certificates(&path, &file_what, files)?);
    }
    if certs.is_empty() {
        return Err(config(format!("the {what} holds no certificate file")));
    }
    Ok(certs)
}

/// Reads a client certificate and key, checks that they belong together,
/// and turns them into a reqwest identity.
fn read_identity(
    cert_path: &Path,
    key_path: &Path,
    files: &mut FileStamps,
) -> Result<reqwest::Identity, VaultError> {
    let cert_what = format!("client certificate {} ({CLIENT_CERT})", cert_path.display());
    let key_what = format!("client key {} ({CLIENT_KEY})", key_path.display());
    let cert_bytes = read_file(cert_path, &cert_what, files)?;
    let certs = parse_certificates(&cert_bytes, &cert_what)?;
    let key_bytes = Zeroizing::new(read_file(key_path, &key_what, files)?);
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => config(format!(
            "the {key_what} holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
        )),
        other => config(format!(
            "the {key_what} is not valid PEM: {}",
            pem_problem(&other)
        )),
    })?;
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|_| {
        config(format!(
            "the {key_what} is not a usable private key (RSA, ECDSA P-256/P-384/P-521 or Ed25519 expected)"
        ))
    })?;
    match rustls::sign::CertifiedKey::new(certs.clone(), signing_key).keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(config(format!(
                "the {key_what} does not belong to the {cert_what}: its public key differs from \
                 the certificate's"
            )));
        }
        // Unknown: the key type cannot tell its public key; let the server judge.
        Err(_) => {}
    }
    let label = match &key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    // reqwest wants one PEM text; written afresh so that stray blocks in the
    // files cannot upset its parser, and wiped afterwards.
    let mut text = Zeroizing::new(String::new());
    for cert in &certs {
        push_pem(&mut text, "CERTIFICATE", cert.as_ref());
    }
    push_pem(&mut text, label, key.secret_der());
    reqwest::Identity::from_pem(text.as_bytes()).map_err(|e| {
        config(format!(
            "the {cert_what} and {key_what} do not form a usable identity: {}",
            super::error::error_chain(&e)
        ))
    })
}

/// Appends one PEM block; the buffer is grown first so that no copy of the
/// key is left behind in a reallocated buffer.
fn push_pem(out: &mut Zeroizing<String>, label: &str, der: &[u8]) {
    use base64::Engine;
    let encoded_len = der.len().div_ceil(3) * 4;
    let needed = out.len() + encoded_len + 2 * label.len() + 40;
    if out.capacity() < needed {
        let mut bigger = Zeroizing::new(String::with_capacity(needed.max(2 * out.capacity())));
        bigger.push_str(out);
        *out = bigger;
    }
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    base64::engine::general_purpose::STANDARD.encode_string(der, out);
    out.push_str("\n-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// What is wrong with a PEM text, without quoting it.
fn pem_problem(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a block has no -----END line",
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a block is not valid base64",
        pem::Error::Io(_) => "it could not be read",
        pem::Error::NoItemsFound => "no PEM block found",
        pem::Error::SectionTooLarge => "a block is larger than 256 MB",
        _ => "unrecognised PEM",
    }
}

/// Why rustls refuses a CA certificate, without rustls's "peer" wording
/// (this certificate comes from a file, not from the server).
fn certificate_problem(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(e) => format!("{e:?}"),
        other => other.to_string(),
    }
}

/// A configuration error.
fn config(detail: String) -> VaultError {
    VaultError::Config { detail }
}

/// One version of a file as `stat` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    /// Modification time, where the filesystem keeps one.
    modified: Option<SystemTime>,
    /// Size in bytes.
    len: u64,
    /// Device and inode: a file replaced by rename (certificate rotation
    /// tools, Kubernetes Secret volumes) gets a new one.
    file: (u64, u64),
}

impl Stamp {
    /// The current stamp of `path` (following symlinks), or `None` if it
    /// cannot be stat'ed.
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            file: (meta.dev(), meta.ino()),
        })
    }
}

/// The files a client was built from and their versions then, so a pool
/// can rebuild the client once any of them changes on disk (rotated CA or
/// client certificates) without watching the filesystem.
#[derive(Debug, Clone, Default)]
pub(super) struct FileStamps(Vec<(PathBuf, Option<Stamp>)>);

impl FileStamps {
    /// Notes `path`'s current version.
    fn record(&mut self, path: &Path) {
        self.0.push((path.to_path_buf(), Stamp::of(path)));
    }

    /// Whether every file is still the version read.
    pub(super) fn unchanged(&self) -> bool {
        self.0.iter().all(|(path, stamp)| Stamp::of(path) == *stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// What a ClientHello offers.
    #[derive(Debug, Default)]
    struct Hello {
        /// `legacy_version` of the ClientHello body.
        legacy_version: u16,
        /// The `supported_versions` extension's list.
        versions: Vec<u16>,
        /// The `server_name` extension's host name, if sent.
        sni: Option<String>,
    }

    /// Reads a big-endian number of `n` bytes at `*at`, moving past it.
    fn take(bytes: &[u8], at: &mut usize, n: usize) -> usize {
        let value = bytes[*at..*at + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        *at += n;
        value
    }

    /// Parses the first TLS record, a ClientHello (RFC 8446 §4.1.2).
    fn parse_hello(record: &[u8]) -> Hello {
        assert_eq!(record[0], 0x16, "a handshake record");
        assert_eq!(record[5], 0x01, "a ClientHello");
        let mut at = 9;
        let mut hello = Hello {
            legacy_version: take(record, &mut at, 2) as u16,
            ..Hello::default()
        };
        at += 32;
        let session = take(record, &mut at, 1);
        at += session;
        let suites = take(record, &mut at, 2);
        at += suites;
        let compression = take(record, &mut at, 1);
        at += compression;
        let end = take(record, &mut at, 2) + at;
        while at < end {
            let kind = take(record, &mut at, 2);
            let len = take(record, &mut at, 2);
            let data = &record[at..at + len];
            at += len;
            let mut p = 0;
            match kind {
                0x0000 => {
                    take(data, &mut p, 2);
                    assert_eq!(take(data, &mut p, 1), 0, "a host name");
                    let n = take(data, &mut p, 2);
                    hello.sni = Some(String::from_utf8(data[p..p + n].to_vec()).unwrap());
                }
                0x002b => {
                    let n = take(data, &mut p, 1);
                    while p < 1 + n {
                        hello.versions.push(take(data, &mut p, 2) as u16);
                    }
                }
                _ => {}
            }
        }
        hello
    }

    /// Sends one request with `tls` to a listener of ours on 127.0.0.1 and
    /// returns the ClientHello that reached it.
    async fn hello_for(tls: &TlsConfig) -> Hello {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address =
            VaultAddress::parse(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
        let configured = configure(reqwest::Client::builder().no_proxy(), &address, tls).unwrap();
        let http = configured.builder.build().unwrap();
        let url = configured.base.join("v1/sys/health").unwrap();
        let request = tokio::spawn(async move { http.get(url).send().await });
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut record = vec![0u8; 5];
        socket.read_exact(&mut record).await.unwrap();
        let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
        record.resize(5 + len, 0);
        socket.read_exact(&mut record[5..]).await.unwrap();
        drop(socket);
        assert!(request.await.unwrap().is_err(), "no TLS server answered");
        parse_hello(&record)
    }

    #[tokio::test]
    async fn offers_tls_1_2_at_least_and_sends_the_server_name_as_sni() {
        let hello = hello_for(&TlsConfig {
            server_name: Some("Vault.Test".into()),
            ..TlsConfig::default()
        })
        .await;
        // The connection reached 127.0.0.1 while SNI named the server name.
        assert_eq!(hello.sni.as_deref(), Some("vault.test"));
        assert_eq!(hello.legacy_version, 0x0303, "TLS 1.2 in legacy_version");
        assert!(hello.versions.contains(&0x0303), "{:x?}", hello.versions);
        assert!(
            hello.versions.iter().all(|v| *v >= 0x0303),
            "nothing below TLS 1.2: {:x?}",
            hello.versions
        );

        // Without a server name an IP address sends no SNI (RFC 6066).
        let hello = hello_for(&TlsConfig::default()).await;
        assert_eq!(hello.sni, None);
    }

    #[test]
    fn the_server_name_must_be_a_dns_name() {
        let address = VaultAddress::parse("https://10.0.0.1:8200").unwrap();
        for bad in ["10.0.0.2", "not a name", ""] {
            let tls = TlsConfig {
                server_name: Some(bad.into()),
                ..TlsConfig::default()
            };
            let Err(error) = configure(reqwest::Client::builder(), &address, &tls) else {
                panic!("{bad:?} accepted");
            };
            assert!(error.to_string().contains("vaultTLSServerName"), "{error}");
        }
    }

    #[test]
    fn the_server_name_replaces_the_host_of_https_urls_only() {
        let tls = TlsConfig {
            server_name: Some("vault.test".into()),
            ..TlsConfig::default()
        };
        let base = |addr: &str| {
            configure(
                reqwest::Client::builder(),
                &VaultAddress::parse(addr).unwrap(),
                &tls,
            )
            .unwrap()
            .base
            .to_string()
        };
        assert_eq!(base("https://10.0.0.1:8200"), "https://vault.test:8200/");
        assert_eq!(base("https://[::1]/prefix"), "https://vault.test/prefix");
        assert_eq!(base("http://10.0.0.1:8200"), "http://10.0.0.1:8200/");
        assert_eq!(base("unix:///run/agent.sock"), "http://localhost/");
    }

    #[tokio::test]
    async fn the_resolver_maps_the_server_name_to_the_real_host() {
        use reqwest::dns::Resolve;
        let resolver = ServerNameResolver {
            server_name: "vault.test".into(),
            host: "::1".into(),
            port: 8200,
        };
        let found: Vec<SocketAddr> = resolver
            .resolve("VAULT.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(found, vec!["[::1]:8200".parse().unwrap()]);
        let by_name = ServerNameResolver {
            host: "localhost".into(),
            ..resolver
        };
        let found: Vec<SocketAddr> = by_name
            .resolve("vault.test".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            !found.is_empty()
                && found
                    .iter()
                    .all(|a| a.ip().is_loopback() && a.port() == 8200)
        );
        // Other names (a proxy's) resolve as usual.
        let other: Vec<SocketAddr> = by_name
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(other, vec!["127.0.0.1:0".parse().unwrap()]);
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        let check = |a: &str| is_loopback(&VaultAddress::parse(a).unwrap());
        assert!(check("https://127.0.0.1:8200"));
        assert!(check("https://127.8.9.10"));
        assert!(check("http://localhost:8200"));
        assert!(check("https://[::1]:8200"));
        assert!(!check("https://vault.example:8200"));
        assert!(!check("https://10.0.0.1"));
        assert!(!check("unix:///run/agent.sock"));
    }

    /// A configuration error's text for `tls` (address is irrelevant).
    fn error_for(tls: &TlsConfig) -> String {
        let address = VaultAddress::parse("https://vault.example:8200").unwrap();
        match configure(reqwest::Client::builder(), &address, tls) {
            Ok(_) => panic!("{tls:?} accepted"),
            Err(VaultError::Config { detail }) => detail,
            Err(other) => panic!("not a config error: {other:?}"),
        }
    }

    #[test]
    fn bad_files_are_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        let garbage = write("garbage.pem", "SECRET-CANARY not pem at all\n");
        let bad_base64 = write(
            "bad64.pem",
            "-----BEGIN CERTIFICATE-----\nSECRET*CANARY!!\n-----END CERTIFICATE-----\n",
        );
        let bad_der = write(
            "bad-der.pem",
            "-----BEGIN CERTIFICATE-----\nU0VDUkVULUNBTkFSWQ==\n-----END CERTIFICATE-----\n",
        );
        let cases = [
            (
                TlsConfig {
                    ca_cert: Some(garbage.clone()),
                    ..TlsConfig::default()
                },
                "holds no PEM certificate",
                &garbage,
            ),
            (
                TlsConfig {
                    ca_cert: Some(bad_base64.clone()),
                    ..TlsConfig::default()
                },
                "not valid base64",
                &bad_base64,
            ),
            (
                TlsConfig {
                    ca_cert: Some(bad_der.clone()),
                    ..TlsConfig::default()
                },
                "certificate 1 of the CA certificate file",
                &bad_der,
            ),
            (
                TlsConfig {
                    ca_directory: Some(dir.path().to_string_lossy().into_owned()),
                    ..TlsConfig::default()
                },
                "in the CA directory",
                &bad_der,
            ),
        ];
        for (tls, expected, file) in cases {
            let message = error_for(&tls);
            assert!(message.contains(expected), "{message}");
            assert!(message.contains(file.as_str()), "{message}");
            assert!(!message.contains("CANARY"), "{message}");
        }
        let missing = dir
            .path()
            .join("missing.pem")
            .to_string_lossy()
            .into_owned();
        let message = error_for(&TlsConfig {
            ca_cert: Some(missing.clone()),
            ..TlsConfig::default()
        });
        assert!(
            message.contains(&missing) && message.contains("No such file"),
            "{message}"
        );
        let message = error_for(&TlsConfig {
            client_cert: Some(garbage.clone()),
            ..TlsConfig::default()
        });
        assert!(message.contains("needs a client key"), "{message}");
    }

    #[test]
    fn stamps_notice_rewritten_and_replaced_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "one").unwrap();
        let mut stamps = FileStamps::default();
        stamps.record(&path);
        assert!(stamps.unchanged());
        std::fs::write(&path, "three").unwrap();
        assert!(!stamps.unchanged(), "rewritten in place");

        let mut stamps = FileStamps::default();
        stamps.record(&path);
        let next = dir.path().join("next.pem");
        std::fs::write(&next, "three").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(!stamps.unchanged(), "replaced by rename");

        let mut stamps = FileStamps::default();
        stamps.record(&dir.path().join("absent"));
        assert!(stamps.unchanged(), "still absent");
    }
}
