//! `vault-csi mount --spc FILE --out DIR`: one Mount against a real Vault
//! from a laptop, with the provider's own code ([`Mounter`]) in process.
//!
//! The request is the one the driver would send for the SPC and a pod
//! given by flags; the credential is a Vault token (`--token-file`,
//! `VAULT_TOKEN`: sent as token auth, as a `nodePublishSecretRef` Secret
//! would carry it) or a service-account JWT (`--jwt-file`: the SPC's own
//! auth method and role, as kubelet would pass it).  Files are written like
//! the driver writes them; their contents are printed only with
//! `--show-values`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use zeroize::{Zeroize as _, Zeroizing};

use super::files;
use super::tools::{self, VaultToolArgs};
use crate::check::{Entry, Manifest, PodIdentity, RequestParts, Severity};
use crate::k8s::{HmacKeys, TokenMinter};
use crate::mount::{CacheScope, Mounter, MounterSettings};
use crate::proto::MountResponse;
use crate::secret::SecretString;
use crate::spc::{Defaults, MountConfig, VaultAddress};
use crate::vault::SecretJsonMap;

/// A whole mount from a laptop normally takes a second; this bounds a hang.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(120);

/// Flags of `mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// The SecretProviderClass YAML file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub spc: String,
    /// Folder to write the files into (created owner-only if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Which SecretProviderClass, when the file holds several.
    #[arg(long)]
    pub name: Option<String>,
    /// Vault address and token.
    #[command(flatten)]
    pub vault: VaultToolArgs,
    /// A service-account token (JWT) to log in with the SPC's auth method
    /// and role, instead of a Vault token.
    #[arg(long = "jwt-file", value_name = "FILE", conflicts_with = "token_file")]
    pub jwt_file: Option<PathBuf>,
    /// The pod's name, as kubelet would pass it.
    #[arg(long = "pod-name", default_value = "vault-csi-mount")]
    pub pod_name: String,
    /// The pod's namespace (default: the SPC's metadata.namespace, else `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    /// The pod's service account.
    #[arg(long = "service-account", default_value = "default")]
    pub service_account: String,
    /// The pod's UID.
    #[arg(
        long = "pod-uid",
        default_value = "00000000-0000-0000-0000-000000000000"
    )]
    pub pod_uid: String,
    /// Also print each file's contents (they are secrets).
    #[arg(long = "show-values")]
    pub show_values: bool,
}

/// What the mount authenticates with.
#[derive(Debug)]
enum Login {
    /// A Vault token, used as token auth.
    Token(SecretString),
    /// A service-account JWT for the SPC's auth method.
    Jwt(SecretString),
}

/// `mount`, resolved.
#[derive(Debug)]
pub struct MountSettings {
    /// The SPC file.
    spc: String,
    /// Which SPC in it.
    name: Option<String>,
    /// Output folder.
    out: PathBuf,
    /// `--vault-addr`: replaces the SPC's address, with this machine's TLS settings.
    address: Option<VaultAddress>,
    /// Defaults for an SPC without its own settings (environment).
    defaults: Defaults,
    /// The credential.
    login: Login,
    /// The pod's kubelet attributes.
    pod: PodArgs,
    /// Print contents.
    show_values: bool,
}

/// The pod flags; the namespace defaults to the SPC's, known only later.
#[derive(Debug)]
struct PodArgs {
    /// `--pod-name`.
    name: String,
    /// `--namespace`, if given.
    namespace: Option<String>,
    /// `--pod-uid`.
    uid: String,
    /// `--service-account`.
    service_account: String,
}

impl MountSettings {
    /// Resolves the flags and reads the credential.
    pub fn from_args(
        args: MountArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut defaults = Defaults {
            tls: tools::env_tls(env)?,
            ..Defaults::default()
        };
        if let Some(address) = tools::env_address(env)? {
            defaults.vault_address = address;
        }
        let login = match &args.jwt_file {
            Some(path) => Login::Jwt(tools::read_secret_file(path, "--jwt-file")?),
            None => Login::Token(
                tools::read_token(args.vault.token_file.as_deref(), env)?.ok_or(
                    "mount needs a credential: --token-file FILE or VAULT_TOKEN (a Vault token), or \
                     --jwt-file FILE (a service-account token for the SPC's role)",
                )?,
            ),
        };
        Ok(Self {
            address: tools::flag_address(&args.vault)?,
            spc: args.spc,
            name: args.name,
            out: args.out,
            defaults,
            login,
            pod: PodArgs {
                name: args.pod_name,
                namespace: args.namespace,
                uid: args.pod_uid,
                service_account: args.service_account,
            },
            show_values: args.show_values,
        })
    }
}

/// Mounts, writes and prints; an error carries the provider's message.
pub async fn run(settings: MountSettings) -> Result<(), String> {
    tokio::time::timeout(MOUNT_TIMEOUT, mount(&settings))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the mount did not finish within {} s",
                MOUNT_TIMEOUT.as_secs()
            ))
        })
}

/// The steps, in order.
async fn mount(settings: &MountSettings) -> Result<(), String> {
    let manifest = load(settings)?;
    let pod = PodIdentity {
        name: settings.pod.name.clone(),
        namespace: settings
            .pod
            .namespace
            .clone()
            .or_else(|| manifest.at.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        uid: settings.pod.uid.clone(),
        service_account: settings.pod.service_account.clone(),
    };
    let mounter = Mounter::new(MounterSettings {
        defaults: settings.defaults.clone(),
        client: tools::client_options(),
        cache_size: 16,
        cache_max_bytes: 16 * 1024 * 1024,
        cache_ttl: Duration::ZERO,
        max_cache_ttl: Duration::ZERO,
        cache_scope: CacheScope::Identity,
        lease_idle_timeout: None,
        stale_if_error: Duration::ZERO,
        // Versions are HMACs with the cluster's key, which a laptop does
        // not have: a per-run key makes them comparable within one run only.
        hmac: HmacKeys::random()?,
        minter: TokenMinter::disabled(),
    });
    let mut cfg = parse(settings, &manifest, &pod, &mounter)?;
    if let Some(address) = &settings.address {
        // This machine's route to Vault: its TLS files, not the provider's.
        cfg.connection.address = address.clone();
        cfg.connection.tls = settings.defaults.tls.clone();
    }
    let response = mounter
        .mount(&cfg)
        .await
        .map_err(|e| format!("Mount failed ({:?}): {}", e.code, e.message))?;
    files::create_out_dir(&settings.out)?;
    for file in &response.files {
        files::write_file(&settings.out, file)?;
    }
    tools::print_out(&summary(settings, &cfg, &response));
    if settings.show_values {
        print_values(&response);
    }
    for mut file in response.files {
        file.contents.zeroize();
    }
    Ok(())
}

/// Reads the file and picks the SPC; prints reading warnings, refuses errors.
fn load(settings: &MountSettings) -> Result<Manifest, String> {
    let inputs = crate::check::read_inputs(std::slice::from_ref(&settings.spc));
    let documents = crate::check::parse_inputs(&inputs);
    let mut errors = Vec::new();
    for finding in &documents.findings {
        let line = format!(
            "{}: {}; fix: {}",
            finding.at.describe(),
            finding.message,
            finding.fix
        );
        match finding.severity {
            Severity::Error => errors.push(line),
            Severity::Warning => eprintln!("warning: {line}"),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let manifests: Vec<Manifest> = documents
        .entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Spc(m) => Some(m),
            Entry::Skipped { .. } => None,
        })
        .filter(|m| settings.name.is_none() || m.at.name == settings.name)
        .collect();
    let names = || {
        manifests
            .iter()
            .map(|m| m.at.name.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match manifests.len() {
        1 => Ok(manifests.into_iter().next().expect("one")),
        0 => Err(match &settings.name {
            Some(name) => format!(
                "{} has no SecretProviderClass named {name} for provider vault",
                settings.spc
            ),
            None => format!(
                "{} has no SecretProviderClass for provider vault",
                settings.spc
            ),
        }),
        _ => Err(format!(
            "{} holds several SecretProviderClasses ({}); choose one with --name",
            settings.spc,
            names()
        )),
    }
}

/// Builds the driver's request with the credential and parses it with the
/// provider's parser.
fn parse(
    settings: &MountSettings,
    manifest: &Manifest,
    pod: &PodIdentity,
    mounter: &Mounter,
) -> Result<MountConfig, String> {
    let failed = |e: crate::mount::MountError| format!("{} ({:?})", e.message, e.code);
    match &settings.login {
        Login::Token(token) => {
            // As a nodePublishSecretRef Secret with key `token` would.
            let secrets = Zeroizing::new(
                serde_json::to_string(&SecretJsonMap(
                    [(
                        "token".to_string(),
                        Value::String(token.expose().to_string()),
                    )]
                    .into_iter()
                    .collect(),
                ))
                .expect("a map of strings always serialises"),
            );
            let parts = RequestParts {
                overrides: vec![("vaultAuthMethod", "token".into())],
                secrets: Some(&secrets),
                ..RequestParts::default()
            };
            parse_request(manifest, pod, &parts, mounter).map_err(failed)
        }
        Login::Jwt(jwt) => {
            // Parsed once without the token, for the audience the parser
            // will look the token up by.
            let first =
                parse_request(manifest, pod, &RequestParts::default(), mounter).map_err(failed)?;
            if !first.auth.method.uses_pod_token() {
                return Err(format!(
                    "--jwt-file needs vaultAuthMethod kubernetes or jwt; this SecretProviderClass uses {}: \
                     pass a Vault token with --token-file instead",
                    first.auth.method.name()
                ));
            }
            let mut tokens = SecretJsonMap(Default::default());
            tokens.0.insert(
                first.auth.audience.clone(),
                json!({ "token": jwt.expose() }),
            );
            let tokens = Zeroizing::new(
                serde_json::to_string(&tokens).expect("a map of strings always serialises"),
            );
            let parts = RequestParts {
                tokens: Some(&tokens),
                ..RequestParts::default()
            };
            parse_request(manifest, pod, &parts, mounter).map_err(failed)
        }
    }
}

/// One parse of the request; wipes the request's copies of the credential.
fn parse_request(
    manifest: &Manifest,
    pod: &PodIdentity,
    parts: &RequestParts<'_>,
    mounter: &Mounter,
) -> Result<MountConfig, crate::mount::MountError> {
    let mut request = manifest.mount_request(pod, parts);
    let parsed = mounter.parse(&request);
    request.attributes.zeroize();
    request.secrets.zeroize();
    parsed
}

/// What was written: name, mode, size and version of each file, and the
/// contents only when asked.
fn summary(settings: &MountSettings, cfg: &MountConfig, response: &MountResponse) -> String {
    let mut out = format!(
        "Mounted SecretProviderClass {} from {} as pod {}/{} ({} auth{}) into {}:\n",
        cfg.spc,
        cfg.connection.address,
        cfg.pod.namespace,
        cfg.pod.name,
        cfg.auth.method.name(),
        if !cfg.auth.method.uses_pod_token() {
            String::new()
        } else {
            format!(", role {}", cfg.auth.role)
        },
        settings.out.display()
    );
    let width = response
        .files
        .iter()
        .map(|f| f.path.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(out, "  {:<width$}  MODE  {:>7}  VERSION", "FILE", "BYTES");
    for file in &response.files {
        let version = response
            .object_version
            .iter()
            .find(|v| v.id == file.path)
            .map_or("-", |v| v.version.as_str());
        let _ = writeln!(
            out,
            "  {:<width$}  {:04o}  {:>7}  {version}",
            file.path,
            file.mode,
            file.contents.len()
        );
    }
    if !settings.show_values {
        out.push_str("Contents are not shown; pass --show-values to print them.\n");
    }
    out
}

/// Prints each file's contents (`--show-values`), straight to stdout so no
/// other copy of them is made.
fn print_values(response: &MountResponse) {
    for file in &response.files {
        tools::print_out(&format!("--- {} ---\n", file.path));
        match std::str::from_utf8(&file.contents) {
            Ok(text) => {
                tools::print_out(text.trim_end_matches('\n'));
                tools::print_out("\n");
            }
            Err(_) => {
                tools::print_out(&format!("({} bytes of binary data)\n", file.contents.len()))
            }
        }
    }
}
