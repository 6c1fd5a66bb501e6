//! The command-line flags.  Every flag of HashiCorp's provider is accepted
//! with its meaning and default; ours are marked.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::spc::parse_go_bool;

/// Long flag names, for Go-syntax normalisation (`-name` → `--name`).
pub const LONG_FLAGS: &[&str] = &[
    "endpoint",
    "health-addr",
    "vault-addr",
    "vault-mount",
    "vault-namespace",
    "vault-tls-ca-cert",
    "vault-tls-ca-directory",
    "vault-tls-server-name",
    "vault-tls-client-cert",
    "vault-tls-client-key",
    "vault-tls-skip-verify",
    "vault-redirect-hosts",
    "max-response-bytes",
    "log-level",
    "log-format",
    "debug",
    "cache-size",
    "cache-scope",
    "cache-ttl",
    "max-cache-ttl",
    "cache-max-bytes",
    "lease-idle-timeout",
    "stale-if-error",
    "hmac-secret-name",
    "allowed-vault-addresses",
    "allow-spc-tls-overrides",
    "vault-max-concurrent-requests",
    "hmac-key-file",
    "version",
    "output",
    "write-secrets",
    "out",
    "help",
];

/// vault-csi: a Vault / OpenBao provider for the Secrets Store CSI driver.
///
/// Without a subcommand, serves the provider (like HashiCorp's
/// `vault-csi-provider`); flags may be written `-name=value` or
/// `--name value`.
#[derive(Debug, Parser)]
#[command(
    name = "vault-csi",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand; none means serve.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Flags for serving without a subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Serve the provider on a unix socket (the default).
    Serve(Box<ServeArgs>),
    /// A first look without a cluster: real OpenBao, one mount, one rotation.
    Demo(DemoArgs),
    /// Report every problem of SecretProviderClass files (offline, and
    /// against Vault with --vault-addr and a token).
    Check(super::check::CheckArgs),
    /// Perform one Mount of a SecretProviderClass file against a real Vault
    /// and write the files.
    Mount(Box<super::mount::MountArgs>),
}

/// Flags of the `demo` subcommand.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to write the mounted files into.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Logging flags.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log level: trace, debug, info, warn, error or off.
    #[arg(long = "log-level", default_value = "info")]
    pub level: String,
    /// Log format: text or json (vault-csi addition).
    #[arg(long = "log-format", default_value = "text")]
    pub format: String,
}

/// Flags of the provider server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Path of the unix socket the driver connects to.
    #[arg(long, default_value = "/tmp/vault.sock")]
    pub endpoint: PathBuf,
    /// Address of the health endpoint (`GET /health/ready`).
    #[arg(long = "health-addr", default_value = ":8080")]
    pub health_addr: String,
    /// Default Vault address (else VAULT_ADDR, BAO_ADDR, https://127.0.0.1:8200).
    #[arg(long = "vault-addr")]
    pub vault_addr: Option<String>,
    /// Default auth mount path (else the auth method's name, `kubernetes`).
    #[arg(long = "vault-mount")]
    pub vault_mount: Option<String>,
    /// Default Vault namespace (else VAULT_NAMESPACE, BAO_NAMESPACE).
    #[arg(long = "vault-namespace")]
    pub vault_namespace: Option<String>,
    /// PEM bundle of CAs to trust (else VAULT_CACERT).
    #[arg(long = "vault-tls-ca-cert")]
    pub vault_tls_ca_cert: Option<String>,
    /// Directory of PEM CAs to trust (else VAULT_CAPATH).
    #[arg(long = "vault-tls-ca-directory")]
    pub vault_tls_ca_directory: Option<String>,
    /// Name to verify Vault's certificate against (else VAULT_TLS_SERVER_NAME).
    #[arg(long = "vault-tls-server-name")]
    pub vault_tls_server_name: Option<String>,
    /// Client certificate for mutual TLS (else VAULT_CLIENT_CERT).
    #[arg(long = "vault-tls-client-cert")]
    pub vault_tls_client_cert: Option<String>,
    /// Client key for mutual TLS (else VAULT_CLIENT_KEY).
    #[arg(long = "vault-tls-client-key")]
    pub vault_tls_client_key: Option<String>,
    /// Skip verification of Vault's certificate (else VAULT_SKIP_VERIFY). Dangerous.
    #[arg(long = "vault-tls-skip-verify", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    pub vault_tls_skip_verify: Option<bool>,
    /// vault-csi: hosts (`host` or `host:port`, comma-separated) Vault may
    /// redirect requests to, with the token; other redirects fail the mount.
    #[arg(long = "vault-redirect-hosts", default_value = "")]
    pub vault_redirect_hosts: String,
    /// vault-csi: largest Vault answer, and largest Mount response, in bytes;
    /// keep it at most the driver's --max-call-recv-msg-size.
    #[arg(long = "max-response-bytes", default_value_t = crate::vault::DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// Most cached Vault tokens; 0 disables the cache.
    #[arg(long = "cache-size", default_value_t = 1000)]
    pub cache_size: usize,
    /// vault-csi: share tokens and responses within an identity (`identity`)
    /// or never between pods (`pod`).
    #[arg(long = "cache-scope", default_value = "identity")]
    pub cache_scope: String,
    /// vault-csi: how long read responses without a lease are reused
    /// (`30s`, `2m`; a bare number is seconds; 0 disables).
    #[arg(long = "cache-ttl", default_value = "30s")]
    pub cache_ttl: String,
    /// vault-csi: the most a SecretProviderClass's `cacheTTL` may ask for.
    #[arg(long = "max-cache-ttl", default_value = "5m")]
    pub max_cache_ttl: String,
    /// vault-csi: forget a dynamic secret not mounted for this long (its
    /// lease then expires on its own); default twice the observed poll
    /// interval.
    #[arg(long = "lease-idle-timeout")]
    pub lease_idle_timeout: Option<String>,
    /// vault-csi: while Vault is unreachable, sealed or answering 502-504,
    /// serve an identity's cached content for at most this long after the
    /// last good read (never past a lease's or certificate's expiry); 0 = off.
    #[arg(long = "stale-if-error", default_value = "1h")]
    pub stale_if_error: String,
    /// vault-csi: most bytes of cached responses.
    #[arg(long = "cache-max-bytes", default_value_t = 64 * 1024 * 1024)]
    pub cache_max_bytes: usize,
    /// vault-csi: the only Vault addresses a SecretProviderClass's
    /// `vaultAddress` may name, comma-separated: full addresses
    /// (`https://vault.example.com:8200`, `unix:///run/vault/agent.sock`) or
    /// hosts (`vault.example.com`, `*.vault.svc`).  The default address is
    /// always allowed.  Unset: any address.
    #[arg(long = "allowed-vault-addresses")]
    pub allowed_vault_addresses: Option<String>,
    /// vault-csi: whether a SecretProviderClass may change TLS settings
    /// (CA, server name, client certificate, skip-verify).
    #[arg(long = "allow-spc-tls-overrides", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    pub allow_spc_tls_overrides: Option<bool>,
    /// vault-csi: most HTTP requests in flight to one Vault address at a
    /// time, across all mounts; more wait their turn.  0: no limit.
    #[arg(long = "vault-max-concurrent-requests", default_value_t = 32)]
    pub vault_max_concurrent_requests: usize,
    /// Kubernetes Secret holding the object-version key.
    #[arg(
        long = "hmac-secret-name",
        default_value = "vault-csi-provider-hmac-key"
    )]
    pub hmac_secret_name: String,
    /// File holding the object-version key, at least 32 bytes (vault-csi addition).
    #[arg(long = "hmac-key-file")]
    pub hmac_key_file: Option<PathBuf>,
    /// Deprecated: same as --log-level=debug.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub debug: Option<bool>,
    /// Print version information and exit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub version: Option<bool>,
    /// Format of --version: yaml, json or json-pretty.
    #[arg(long, default_value = "json")]
    pub output: String,
    /// Removed in HashiCorp's provider 1.0; accepted and ignored.
    #[arg(long = "write-secrets", hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    pub write_secrets: Option<bool>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Go's boolean flag values.
fn go_bool(text: &str) -> Result<bool, String> {
    parse_go_bool(text).ok_or_else(|| format!("{text:?} is not a boolean (use true or false)"))
}
