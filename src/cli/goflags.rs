//! Go `flag` package syntax in front of clap.
//!
//! HashiCorp's provider parses its command line with Go's `flag` package,
//! where long flags take one dash (`-endpoint=/provider/vault.sock`) or two.
//! Manifests in the wild use both, so single-dash long flags we know are
//! rewritten to the double-dash form clap expects.  Everything else (values,
//! short flags, subcommands) passes through untouched.

/// Rewrites `-name` / `-name=value` to `--name` / `--name=value` when `name`
/// is one of `long_flags`.  Stops at `--`, as Go does.
pub fn normalize<I, S>(args: I, long_flags: &[&str]) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = Vec::new();
    let mut done = false;
    for arg in args {
        let arg: String = arg.into();
        if done {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            done = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .filter(|rest| {
                let name = rest.split_once('=').map_or(*rest, |(n, _)| n);
                long_flags.contains(&name)
            })
            .map(|rest| format!("--{rest}"));
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn rewrites_known_single_dash_long_flags_only() {
        let flags = ["endpoint", "debug", "log-level"];
        let out = normalize(
            [
                "vault-csi",
                "-endpoint=/p/vault.sock",
                "-debug",
                "--log-level",
                "info",
                "-x",
                "-endpoint",
                "v",
                "--",
                "-debug",
            ],
            &flags,
        );
        assert_eq!(
            out,
            [
                "vault-csi",
                "--endpoint=/p/vault.sock",
                "--debug",
                "--log-level",
                "info",
                "-x",
                "--endpoint",
                "v",
                "--",
                "-debug"
            ]
        );
    }
}
