//! `vault-csi check FILE...`: reports every problem of SecretProviderClass
//! manifests, offline, and with `--vault-addr` and a token also against
//! Vault (reads only).  Exit code 0: no errors; 1: errors (or warnings
//! with `--strict`); 2: the command line or token file is unusable.

use std::process::ExitCode;

use clap::Args;

use super::tools::{self, VaultToolArgs};
use crate::check::{CheckOptions, OnlineOptions};
use crate::spc::Defaults;

/// Flags of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// SecretProviderClass YAML files, folders of them, or `-` for stdin.
    /// Other kinds of documents are skipped with a note.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Output format.
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    pub format: String,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Vault to check the paths against (the online checks run only with
    /// --vault-addr), and the token.
    #[command(flatten)]
    pub vault: VaultToolArgs,
}

/// `check`, resolved.
#[derive(Debug)]
pub struct CheckSettings {
    /// What to read.
    files: Vec<String>,
    /// JSON instead of text.
    json: bool,
    /// Warnings fail too.
    strict: bool,
    /// Parser defaults and the online settings.
    options: CheckOptions,
}

impl CheckSettings {
    /// Resolves the flags; reads the token when the online checks run.
    pub fn from_args(
        args: CheckArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut defaults = Defaults::default();
        if let Some(address) = tools::env_address(env)? {
            defaults.vault_address = address;
        }
        let online = match tools::flag_address(&args.vault)? {
            None => {
                if args.vault.token_file.is_some() {
                    return Err(
                        "--token-file is used only by the online checks; add --vault-addr".into(),
                    );
                }
                None
            }
            Some(address) => {
                let token = tools::read_token(args.vault.token_file.as_deref(), env)?.ok_or(
                    "--vault-addr needs a token for the online checks: set VAULT_TOKEN or --token-file",
                )?;
                Some(OnlineOptions {
                    address,
                    tls: tools::env_tls(env)?,
                    token,
                    client: tools::client_options(),
                })
            }
        };
        Ok(Self {
            files: args.files,
            json: args.format == "json",
            strict: args.strict,
            options: CheckOptions { defaults, online },
        })
    }
}

/// Checks, prints the report, and gives the exit code.
pub async fn run(settings: CheckSettings) -> ExitCode {
    let inputs = crate::check::read_inputs(&settings.files);
    let report = crate::check::check(&inputs, &settings.options).await;
    let text = if settings.json {
        crate::check::json(&report)
    } else {
        crate::check::human(&report)
    };
    tools::print_out(&format!("{}\n", text.trim_end()));
    if report.failed(settings.strict) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
