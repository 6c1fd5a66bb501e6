//! Logging setup: `tracing` to stderr, as text or JSON.

use tracing_subscriber::EnvFilter;

use super::args::LogArgs;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Resolved logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `tracing` filter directive (`info`, `debug`, `off`…).
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl LogSettings {
    /// Validates the flags; `--debug` raises the level to debug.
    pub fn from_args(args: &LogArgs, debug: bool) -> Result<Self, String> {
        let level = args.level.to_ascii_lowercase();
        let level = match level.as_str() {
            "trace" | "debug" | "info" | "warn" | "error" | "off" => level,
            "warning" => "warn".into(),
            other => {
                return Err(format!(
                    "--log-level {other:?} is not one of trace, debug, info, warn, error, off"
                ));
            }
        };
        let level = if debug && level != "trace" {
            "debug".into()
        } else {
            level
        };
        let format = match args.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(format!("--log-format {other:?} is not text or json")),
        };
        Ok(Self { level, format })
    }
}

/// Installs the global subscriber.  Our own crate logs at the chosen level;
/// dependencies only from warn up, so their debug output cannot carry
/// request details.
pub fn init(settings: &LogSettings) {
    let directive = if settings.level == "off" {
        "off".to_string()
    } else {
        format!("warn,vault_csi={}", settings.level)
    };
    let filter = EnvFilter::new(directive);
    // Colours only on a terminal: log collectors would store escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
