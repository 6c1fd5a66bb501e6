//! What `check` and `mount` share: how they reach Vault from the machine
//! they run on, and the token they use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::secret::SecretString;
use crate::spc::{TlsConfig, VaultAddress, parse_go_bool};
use crate::vault::ClientOptions;

/// Vault flags of the tools.
#[derive(Debug, Args)]
pub struct VaultToolArgs {
    /// Vault address to use instead of the SecretProviderClass's
    /// `vaultAddress` (e.g. a `kubectl port-forward`).
    #[arg(long = "vault-addr")]
    pub vault_addr: Option<String>,
    /// File holding a Vault token (else the VAULT_TOKEN environment variable).
    #[arg(long = "token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `--vault-addr`, validated.
pub fn flag_address(args: &VaultToolArgs) -> Result<Option<VaultAddress>, String> {
    args.vault_addr
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|a| VaultAddress::parse(a).map_err(|e| format!("--vault-addr: {e}")))
        .transpose()
}

/// `VAULT_ADDR` or `BAO_ADDR`, the default for SPCs without `vaultAddress`.
pub fn env_address(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    let address = ["VAULT_ADDR", "BAO_ADDR"]
        .iter()
        .find_map(|k| env(k).filter(|v| !v.is_empty()));
    if let Some(a) = &address {
        VaultAddress::parse(a).map_err(|e| format!("VAULT_ADDR / BAO_ADDR: {e}"))?;
    }
    Ok(address)
}

/// The token from `--token-file`, else `VAULT_TOKEN`, if any.
pub fn read_token(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, String> {
    if let Some(path) = file {
        return read_secret_file(path, "--token-file").map(Some);
    }
    Ok(env("VAULT_TOKEN")
        .filter(|t| !t.trim().is_empty())
        .map(|t| SecretString::new(t.trim().to_string())))
}

/// A file holding one secret (token or JWT), surrounding whitespace removed.
pub fn read_secret_file(path: &Path, flag: &str) -> Result<SecretString, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))?,
    );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{flag} {} is empty", path.display()));
    }
    Ok(SecretString::new(trimmed.to_string()))
}

/// TLS settings of this machine, from the environment variables Vault's
/// CLI reads.
pub fn env_tls(env: &dyn Fn(&str) -> Option<String>) -> Result<TlsConfig, String> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let skip_verify = match get("VAULT_SKIP_VERIFY") {
        Some(v) => {
            parse_go_bool(&v).ok_or_else(|| format!("VAULT_SKIP_VERIFY={v:?} is not a boolean"))?
        }
        None => false,
    };
    Ok(TlsConfig {
        ca_cert: get("VAULT_CACERT"),
        ca_directory: get("VAULT_CAPATH"),
        server_name: get("VAULT_TLS_SERVER_NAME"),
        client_cert: get("VAULT_CLIENT_CERT"),
        client_key: get("VAULT_CLIENT_KEY"),
        skip_verify,
    })
}

/// Client limits for a command run by hand: a person is waiting, so fail
/// within seconds rather than the provider's minute.
pub fn client_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(15),
        connect_timeout: Duration::from_secs(5),
        max_retries: 1,
        ..ClientOptions::default()
    }
}

/// Writes a command's output to stdout.  A closed pipe (`| head`) is not
/// an error worth a panic: the reader has what it wanted.
pub fn print_out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}
