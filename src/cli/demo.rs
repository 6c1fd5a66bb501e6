//! `vault-csi demo`: filled in below.

use std::path::PathBuf;

use super::args::DemoArgs;
use super::logging::LogSettings;

/// Settings of the demo.
#[derive(Debug)]
pub struct DemoSettings {
    /// Where mounted files are written.
    pub out: PathBuf,
    /// Logging.
    pub log: LogSettings,
}

impl DemoSettings {
    /// Resolves the demo's flags.
    pub fn from_args(
        args: DemoArgs,
        _env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        Ok(Self {
            out: args.out,
            log: LogSettings::from_args(&args.log, false)?,
        })
    }
}

/// Runs the demo.
pub async fn run(_settings: DemoSettings) -> Result<(), String> {
    Err("not yet".into())
}
