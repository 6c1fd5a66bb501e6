//! The `vault-csi` binary: a thin wrapper over the library's [`vault_csi::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    vault_csi::cli::main()
}
