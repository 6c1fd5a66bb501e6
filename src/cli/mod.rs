//! The command line: HashiCorp's flags (in Go `flag` syntax) and
//! environment, plus our own additions, turned into a [`Command`].
//!
//! Precedence for connection settings: environment < flags < the
//! SecretProviderClass (applied per mount by [`crate::spc`]).

mod args;
mod check;
mod demo;
mod files;
mod goflags;
mod logging;
mod mount;
mod tools;

use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, LogArgs, ServeArgs, Sub};
pub use logging::{LogFormat, LogSettings};

use crate::k8s::{HmacKeySource, HmacKeys};
use crate::metrics::Metrics;
use crate::mount::{Mounter, MounterSettings};
use crate::server::ServeOptions;
use crate::spc::{AddressAllowList, Defaults, SpcPolicy, TlsConfig, parse_go_bool};
use crate::vault::ClientOptions;

/// What the process was asked to do.
#[derive(Debug)]
pub enum Command {
    /// Serve the provider.
    Serve(Box<ServeSettings>),
    /// Run the demo.
    Demo(demo::DemoSettings),
    /// Check SecretProviderClass files.
    Check(Box<check::CheckSettings>),
    /// Mount a SecretProviderClass file from a laptop.
    Mount(Box<mount::MountSettings>),
    /// Print the version in a format (`--version`, `--output`).
    PrintVersion(String),
}

/// Everything `serve` needs, resolved from flags and environment.
#[derive(Debug)]
pub struct ServeSettings {
    /// Socket and health address.
    pub endpoint: std::path::PathBuf,
    /// Health endpoint address.
    pub health_addr: String,
    /// Connection defaults for mounts.
    pub defaults: Defaults,
    /// Vault client limits.
    pub client: ClientOptions,
    /// Token and response cache size.
    pub cache_size: usize,
    /// Response cache byte bound.
    pub cache_max_bytes: usize,
    /// Response TTL and its cap.
    pub cache_ttl: std::time::Duration,
    /// Cap on an SPC's `cacheTTL`.
    pub max_cache_ttl: std::time::Duration,
    /// Sharing between pods.
    pub cache_scope: crate::mount::CacheScope,
    /// `--lease-idle-timeout`.
    pub lease_idle_timeout: Option<std::time::Duration>,
    /// `--stale-if-error`.
    pub stale_if_error: std::time::Duration,
    /// Object-version key source.
    pub hmac: HmacKeySource,
    /// Logging.
    pub log: LogSettings,
    /// Warnings to log once logging is set up (accepted-but-inactive flags).
    pub warnings: Vec<String>,
}

/// Parses the command line (`args` includes the program name) with the
/// environment read through `env`.
pub fn parse_command<I, S>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let normalized = goflags::normalize(args, args::LONG_FLAGS);
    let cli = Cli::try_parse_from(normalized)?;
    let invalid = |msg: String| clap::Error::raw(clap::error::ErrorKind::InvalidValue, msg + "\n");
    match cli.command {
        Some(Sub::Demo(demo)) => Ok(Command::Demo(
            demo::DemoSettings::from_args(demo, env).map_err(invalid)?,
        )),
        Some(Sub::Check(args)) => Ok(Command::Check(Box::new(
            check::CheckSettings::from_args(args, env).map_err(invalid)?,
        ))),
        Some(Sub::Mount(args)) => Ok(Command::Mount(Box::new(
            mount::MountSettings::from_args(*args, env).map_err(invalid)?,
        ))),
        Some(Sub::Serve(serve)) => resolve_serve(*serve, env).map_err(invalid),
        None => resolve_serve(cli.serve, env).map_err(invalid),
    }
}

/// Applies flags over the environment.
fn resolve_serve(a: ServeArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    if a.version == Some(true) {
        return Ok(Command::PrintVersion(a.output));
    }
    let env_any = |keys: &[&str]| keys.iter().find_map(|k| env(k).filter(|v| !v.is_empty()));
    let mut warnings = Vec::new();
    let env_skip = match env_any(&["VAULT_SKIP_VERIFY"]) {
        Some(v) => {
            parse_go_bool(&v).ok_or_else(|| format!("VAULT_SKIP_VERIFY={v:?} is not a boolean"))?
        }
        None => false,
    };
    let tls = TlsConfig {
        ca_cert: a.vault_tls_ca_cert.or_else(|| env_any(&["VAULT_CACERT"])),
        ca_directory: a
            .vault_tls_ca_directory
            .or_else(|| env_any(&["VAULT_CAPATH"])),
        server_name: a
            .vault_tls_server_name
            .or_else(|| env_any(&["VAULT_TLS_SERVER_NAME"])),
        client_cert: a
            .vault_tls_client_cert
            .or_else(|| env_any(&["VAULT_CLIENT_CERT"])),
        client_key: a
            .vault_tls_client_key
            .or_else(|| env_any(&["VAULT_CLIENT_KEY"])),
        skip_verify: a.vault_tls_skip_verify.unwrap_or(env_skip),
    };
    if a.write_secrets.is_some() {
        warnings.push("--write-secrets was removed in HashiCorp's provider 1.0 and is ignored; the driver writes the files".into());
    }
    let vault_address = a
        .vault_addr
        .filter(|v| !v.is_empty())
        .or_else(|| env_any(&["VAULT_ADDR", "BAO_ADDR"]))
        .unwrap_or_else(|| "https://127.0.0.1:8200".into());
    let default_address = crate::spc::VaultAddress::parse(&vault_address)
        .map_err(|e| format!("--vault-addr / VAULT_ADDR: {e}"))?;
    let policy = SpcPolicy {
        allowed_addresses: AddressAllowList::parse(
            a.allowed_vault_addresses.as_deref().unwrap_or_default(),
            &default_address,
        )?,
        allow_tls_overrides: a.allow_spc_tls_overrides.unwrap_or(true),
    };
    let defaults = Defaults {
        vault_address,
        vault_namespace: a
            .vault_namespace
            .filter(|v| !v.is_empty())
            .or_else(|| env_any(&["VAULT_NAMESPACE", "BAO_NAMESPACE"])),
        auth_mount: a.vault_mount.filter(|v| !v.is_empty()),
        tls,
        policy,
    };
    let mut client = ClientOptions {
        max_concurrent_requests: a.vault_max_concurrent_requests,
        ..ClientOptions::default()
    };
    if let Some(timeout) = env_any(&["VAULT_CLIENT_TIMEOUT"]) {
        client.request_timeout =
            parse_duration(&timeout).map_err(|e| format!("VAULT_CLIENT_TIMEOUT: {e}"))?;
    }
    if let Some(retries) = env_any(&["VAULT_MAX_RETRIES"]) {
        client.max_retries = retries
            .parse()
            .map_err(|_| format!("VAULT_MAX_RETRIES={retries:?} is not a non-negative integer"))?;
    }
    client.redirect_hosts = crate::vault::RedirectHosts::parse(&a.vault_redirect_hosts)
        .map_err(|e| format!("--vault-redirect-hosts: {e}"))?;
    if a.max_response_bytes == 0 {
        return Err("--max-response-bytes must be at least 1".into());
    }
    client.max_response_bytes = a.max_response_bytes;
    let hmac = match a.hmac_key_file {
        Some(path) => HmacKeySource::File(path),
        None => HmacKeySource::Kubernetes {
            secret_name: a.hmac_secret_name,
        },
    };
    let log = LogSettings::from_args(&a.log, a.debug == Some(true))?;
    Ok(Command::Serve(Box::new(ServeSettings {
        endpoint: a.endpoint,
        health_addr: a.health_addr,
        defaults,
        client,
        cache_size: a.cache_size,
        cache_max_bytes: a.cache_max_bytes,
        cache_ttl: parse_duration(&a.cache_ttl).map_err(|e| format!("--cache-ttl: {e}"))?,
        max_cache_ttl: parse_duration(&a.max_cache_ttl)
            .map_err(|e| format!("--max-cache-ttl: {e}"))?,
        stale_if_error: parse_duration(&a.stale_if_error)
            .map_err(|e| format!("--stale-if-error: {e}"))?,
        lease_idle_timeout: a
            .lease_idle_timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| format!("--lease-idle-timeout: {e}"))?,
        cache_scope: match a.cache_scope.as_str() {
            "identity" => crate::mount::CacheScope::Identity,
            "pod" => crate::mount::CacheScope::Pod,
            other => return Err(format!("--cache-scope {other:?} is not identity or pod")),
        },
        hmac,
        log,
        warnings,
    })))
}

pub use crate::spc::parse_duration;

/// Runs the program; the binary's `main`.
pub fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("vault-csi: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(2);
        }
    };
    let command = match parse_command(args, &|k| std::env::var(k).ok()) {
        Ok(command) => command,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vault-csi: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::PrintVersion(format) => print_version(&format),
        Command::Serve(settings) => {
            logging::init(&settings.log);
            runtime.block_on(run_serve(*settings))
        }
        Command::Demo(settings) => {
            logging::init(&settings.log);
            runtime.block_on(demo::run(settings))
        }
        Command::Check(settings) => {
            logging::init(&tool_logging());
            return runtime.block_on(check::run(*settings));
        }
        Command::Mount(settings) => {
            logging::init(&tool_logging());
            // Printed once, without the log line the server's errors get.
            return match runtime.block_on(mount::run(*settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vault-csi: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("vault-csi: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check` and `mount` print their own results; the provider code they
/// run logs only warnings and errors.
fn tool_logging() -> LogSettings {
    LogSettings {
        level: "warn".into(),
        format: LogFormat::Text,
    }
}

/// Serves with resolved settings.
pub async fn run_serve(settings: ServeSettings) -> Result<(), String> {
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let hmac = HmacKeys::new(&settings.hmac).await?;
    // One registry for the whole process: the Vault clients record into it
    // and the health endpoint serves it.
    let metrics = Metrics::new();
    let mounter = Mounter::new(MounterSettings {
        defaults: settings.defaults,
        client: ClientOptions {
            metrics: metrics.clone(),
            ..settings.client
        },
        cache_size: settings.cache_size,
        cache_max_bytes: settings.cache_max_bytes,
        cache_ttl: settings.cache_ttl,
        max_cache_ttl: settings.max_cache_ttl,
        cache_scope: settings.cache_scope,
        lease_idle_timeout: settings.lease_idle_timeout,
        stale_if_error: settings.stale_if_error,
        hmac,
        minter: crate::k8s::TokenMinter::from_environment().await,
    });
    crate::server::serve(
        ServeOptions {
            endpoint: settings.endpoint,
            health_addr: settings.health_addr,
            metrics,
        },
        mounter,
    )
    .await
}

/// `--version` output, in HashiCorp's formats.
fn print_version(format: &str) -> Result<(), String> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        version: &'static str,
        runtime_name: &'static str,
        platform: String,
    }
    let info = Info {
        version: crate::VERSION,
        runtime_name: crate::RUNTIME_NAME,
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    };
    let text = match format {
        "json" => serde_json::to_string(&info).map_err(|e| e.to_string())?,
        "json-pretty" => serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?,
        "yaml" => serde_saphyr::to_string(&info).map_err(|e| e.to_string())?,
        other => {
            return Err(format!(
                "--output {other:?} is not one of yaml, json, json-pretty"
            ));
        }
    };
    println!("{}", text.trim_end());
    Ok(())
}

#[cfg(test)]
mod tests;
